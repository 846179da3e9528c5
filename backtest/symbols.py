"""Symbol specifications: digits, point, contract size, volume limits, and money conversion.

The backtest uses the defaults below; the live trader builds the same `SymbolSpec` from the
broker's `symbol_info`, so sizing and rounding are computed by one piece of code in both.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

from backtest.errors import UsageError

logger = logging.getLogger(__name__)

# Tolerance used when snapping volumes to the step: 0.30000000000000004 lots is 0.3 lots.
_VOLUME_EPSILON = 1e-9


@dataclass(frozen=True)
class SymbolSpec:
    """Trading facts of one symbol.

    Prices are in the quote (profit) currency; `point` is the smallest price increment;
    volumes are in lots, one lot being `contract_size` units of the base currency (or ounces).
    `stops_level` is the minimum SL/TP distance from the current price, in points.
    """

    name: str
    digits: int = 5
    point: float = 0.00001
    contract_size: float = 100_000.0
    volume_min: float = 0.01
    volume_max: float = 100.0
    volume_step: float = 0.01
    currency_base: str = "EUR"
    currency_profit: str = "USD"
    currency_margin: str = "EUR"
    stops_level: int = 0

    def __post_init__(self) -> None:
        if self.digits < 0 or self.point <= 0 or self.contract_size <= 0:
            raise UsageError(
                f"symbol {self.name}: digits, point and contract_size must be positive"
            )
        if not 0 < self.volume_min <= self.volume_max or self.volume_step <= 0:
            raise UsageError(
                f"symbol {self.name}: need 0 < volume_min <= volume_max and volume_step > 0, "
                f"got min={self.volume_min} max={self.volume_max} step={self.volume_step}"
            )

    def round_price(self, price: float) -> float:
        """Round a price to the symbol's digits."""
        return round(float(price), self.digits)

    def floor_volume(self, lots: float) -> float:
        """Snap a volume down to the volume step (tolerant of float noise), without clamping."""
        steps = math.floor(lots / self.volume_step + _VOLUME_EPSILON)
        return self._step_decimals_round(steps * self.volume_step)

    def clamp_volume(self, lots: float) -> float:
        """Snap down to the step, then clamp into [volume_min, volume_max]."""
        snapped = self.floor_volume(lots)
        return self._step_decimals_round(min(max(snapped, self.volume_min), self.volume_max))

    def is_valid_volume(self, lots: float) -> bool:
        """True when `lots` lies in [min, max] and is a whole number of steps from volume_min."""
        if lots < self.volume_min - _VOLUME_EPSILON or lots > self.volume_max + _VOLUME_EPSILON:
            return False
        steps = (lots - self.volume_min) / self.volume_step
        return abs(steps - round(steps)) < 1e-6

    def units(self, lots: float) -> float:
        """Units of the base asset for a volume in lots."""
        return lots * self.contract_size

    def profit_to_account(
        self, profit_in_quote: float, price: float, account_currency: str
    ) -> float:
        """Convert an amount in the profit currency into the account currency.

        Direct when the profit currency is the account currency (EURUSD for a USD account);
        divided by the price when the base currency is (USDJPY for a USD account). Other
        crosses are returned unconverted with a one-time warning, as no rate is available.
        """
        if self.currency_profit == account_currency:
            return profit_in_quote
        if self.currency_base == account_currency and price > 0:
            return profit_in_quote / price
        _warn_no_conversion(self.name, self.currency_profit, account_currency)
        return profit_in_quote

    def with_overrides(self, **changes: object) -> SymbolSpec:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def _step_decimals_round(self, lots: float) -> float:
        decimals = max(0, -math.floor(math.log10(self.volume_step)) + 2)
        return round(lots, decimals)


_warned_pairs: set[tuple[str, str, str]] = set()


def _warn_no_conversion(symbol: str, currency: str, account_currency: str) -> None:
    key = (symbol, currency, account_currency)
    if key not in _warned_pairs:
        _warned_pairs.add(key)
        logger.warning(
            "no rate to convert %s profit of %s into %s; P/L is left in %s",
            currency,
            symbol,
            account_currency,
            currency,
        )


DEFAULT_SYMBOLS: dict[str, SymbolSpec] = {
    "EURUSD": SymbolSpec(
        "EURUSD",
        5,
        0.00001,
        100_000.0,
        currency_base="EUR",
        currency_profit="USD",
        currency_margin="EUR",
    ),
    "GBPUSD": SymbolSpec(
        "GBPUSD",
        5,
        0.00001,
        100_000.0,
        currency_base="GBP",
        currency_profit="USD",
        currency_margin="GBP",
    ),
    "USDJPY": SymbolSpec(
        "USDJPY",
        3,
        0.001,
        100_000.0,
        currency_base="USD",
        currency_profit="JPY",
        currency_margin="USD",
    ),
    "XAUUSD": SymbolSpec(
        "XAUUSD",
        2,
        0.01,
        100.0,
        volume_max=50.0,
        currency_base="XAU",
        currency_profit="USD",
        currency_margin="XAU",
    ),
}


def get_symbol_spec(name: str) -> SymbolSpec:
    """The default spec for a known symbol, or a generic FX spec for others (5 digits, 3
    for yen pairs, currencies from the name).

    A broker suffix (EURUSD.m, EURUSDpro) is matched to its base name.
    """
    key = name.upper()
    if key in DEFAULT_SYMBOLS:
        return replace(DEFAULT_SYMBOLS[key], name=name)
    for known, spec in DEFAULT_SYMBOLS.items():
        if key.startswith(known):
            return replace(spec, name=name)
    logger.warning(
        "no default spec for symbol %r; using a generic FX spec (known: %s)",
        name,
        ", ".join(DEFAULT_SYMBOLS),
    )
    base, quote = (key[:3], key[3:6]) if len(key) >= 6 else (key, "USD")
    digits = 3 if quote == "JPY" else 5  # yen pairs are quoted to 0.001
    return SymbolSpec(
        name,
        digits,
        10.0**-digits,
        currency_base=base,
        currency_profit=quote or "USD",
        currency_margin=base,
    )
