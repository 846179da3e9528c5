"""Position sizing shared by the backtest engine and the live trader: fixed lots or risk %."""

from __future__ import annotations

import math
from dataclasses import dataclass

from backtest.errors import BacktestError, UsageError
from backtest.symbols import SymbolSpec


class SizingError(BacktestError, ValueError):
    """The requested sizing cannot be computed (e.g. risk sizing without a stop-loss)."""


@dataclass(frozen=True)
class Sizing:
    """How big each entry is.

    mode "fixed": always `lots` lots. mode "risk": lose at most `risk_percent` % of equity
    when the stop-loss is hit (needs an SL distance on every entry).
    """

    mode: str = "fixed"
    lots: float = 0.1
    risk_percent: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in ("fixed", "risk"):
            raise UsageError(f"sizing mode must be 'fixed' or 'risk', got {self.mode!r}")
        if self.mode == "fixed" and not (self.lots > 0 and math.isfinite(self.lots)):
            raise UsageError(f"lots must be a positive number, got {self.lots!r}")
        if self.mode == "risk" and not 0 < self.risk_percent <= 100:
            raise UsageError(f"risk percent must be in (0, 100], got {self.risk_percent!r}")

    @classmethod
    def fixed(cls, lots: float) -> Sizing:
        return cls(mode="fixed", lots=lots)

    @classmethod
    def risk(cls, percent: float) -> Sizing:
        return cls(mode="risk", risk_percent=percent)

    def describe(self) -> str:
        return f"{self.lots:g} lots" if self.mode == "fixed" else f"risk {self.risk_percent:g}%"


def position_size(
    *,
    sizing: Sizing,
    spec: SymbolSpec,
    equity: float,
    sl_distance: float | None = None,
    price: float | None = None,
    account_currency: str = "USD",
) -> float:
    """Volume in lots for a new entry, snapped down to the volume step and clamped to min/max.

    `sl_distance` is the distance from entry to stop-loss in price units (not points);
    `price` (entry price) converts the risk into the account currency where the profit
    currency differs (USDJPY for a USD account). Raises SizingError when risk sizing has
    no usable stop-loss distance or equity is not positive.
    """
    if sizing.mode == "fixed":
        return spec.clamp_volume(sizing.lots)
    if sl_distance is None or not math.isfinite(sl_distance) or sl_distance <= 0:
        raise SizingError(
            f"risk sizing needs a positive stop-loss distance for {spec.name}, "
            f"got {sl_distance if sl_distance is None else float(sl_distance)}; give the "
            "strategy a stop-loss or use fixed lots"
        )
    if not equity > 0:
        raise SizingError(
            f"cannot size a {spec.name} entry with equity {float(equity):.2f}: the account "
            "is blown; risk less per trade"
        )
    risk_money = equity * sizing.risk_percent / 100.0
    loss_per_lot = spec.profit_to_account(
        sl_distance * spec.contract_size, price if price else 0.0, account_currency
    )
    return spec.clamp_volume(risk_money / loss_per_lot)


def volume_rule(spec: SymbolSpec, sizing: Sizing, account_currency: str):
    """The full volume of trade k as (balance, price, SL distance, k) -> lots: fixed lots,
    or risk sizing on the balance before it (SizingError naming the trade)."""
    if sizing.mode == "fixed":
        lots = spec.clamp_volume(sizing.lots)
        return lambda balance, price, distance, k: lots

    def risk_volume(balance: float, price: float, distance: float, k: int) -> float:
        try:
            return position_size(
                sizing=sizing,
                spec=spec,
                equity=balance,
                sl_distance=distance,
                price=price,
                account_currency=account_currency,
            )
        except SizingError as exc:
            raise SizingError(f"trade {k + 1}: {exc}") from None

    return risk_volume
