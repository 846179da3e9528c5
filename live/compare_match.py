"""Matching live trades to the backtest's, one to one: same direction, entries at most a bar
apart; slippage per fill in points, missed and extra trades, and the P/L difference."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from backtest.symbols import SymbolSpec


@dataclass
class Comparison:
    """Matched pairs (live row, backtest row), and the unmatched on each side."""

    symbol: str
    strategy: str
    matched: list[dict[str, object]] = field(default_factory=list)
    missed: list[dict[str, object]] = field(default_factory=list)  # backtest only
    extra: list[dict[str, object]] = field(default_factory=list)  # live only
    live_pnl: float = 0.0
    backtest_pnl: float = 0.0  # matched trades at their live volume, missed at missed_volume
    missed_volume: float | None = None  # what missed trades were scaled to (None: unscaled)
    volume_note: str = "the backtest's own volume"  # where missed_volume came from
    bars_note: str = ""  # where the bars came from

    @property
    def pnl_difference(self) -> float:
        return round(self.live_pnl - self.backtest_pnl, 2)


def compare(
    live: pd.DataFrame,
    backtest: pd.DataFrame,
    *,
    spec: SymbolSpec,
    bar_seconds: int,
    symbol: str,
    strategy: str,
    volume: float | None = None,
    volume_note: str = "",
) -> Comparison:
    """Match trades one to one: same direction, entries at most one bar apart, in time order.

    Slippage is in points, positive when the live fill was worse than the backtest's. Missed
    trades (backtest only) count at `volume`, the volume the trader would have used (None:
    at the backtest's volume), so their P/L compares with live P/L at the same size.
    """
    result = Comparison(
        symbol=symbol,
        strategy=strategy,
        missed_volume=volume,
        volume_note=volume_note or Comparison.volume_note,
    )
    pending = backtest.to_dict("records")
    tolerance = pd.Timedelta(seconds=bar_seconds)
    for trade in live.to_dict("records"):
        partner = next(
            (
                b
                for b in pending
                if b["direction"] == trade["direction"]
                and abs(b["entry_time"] - trade["entry_time"]) <= tolerance
            ),
            None,
        )
        if partner is None:
            result.extra.append(trade)
            continue
        pending.remove(partner)
        result.matched.append(_pair(trade, partner, spec))
    result.missed = [_missed(trade, volume) for trade in pending]
    result.live_pnl = round(float(live["pnl"].sum()) if len(live) else 0.0, 2)
    result.backtest_pnl = round(
        sum(p["backtest_pnl"] for p in result.matched)
        + sum(float(m["pnl"]) for m in result.missed),
        2,
    )
    return result


def _missed(trade: dict, volume: float | None) -> dict[str, object]:
    """A backtest-only trade at the trader's volume; its own volume and P/L kept beside."""
    own = float(trade["volume"])
    scale = volume / own if volume and own else 1.0
    return {
        **trade,
        "volume": volume if volume and own else own,
        "pnl": round(float(trade["pnl"]) * scale, 2),
        "backtest_volume": own,
        "backtest_pnl": round(float(trade["pnl"]), 2),
    }


def _pair(trade: dict, partner: dict, spec: SymbolSpec) -> dict[str, object]:
    sign = 1 if trade["direction"] == "long" else -1
    scale = float(trade["volume"]) / float(partner["volume"]) if partner["volume"] else 0.0
    return {
        "direction": trade["direction"],
        "volume": trade["volume"],
        "live_entry_time": trade["entry_time"],
        "backtest_entry_time": partner["entry_time"],
        "live_entry": trade["entry_price"],
        "backtest_entry": partner["entry_price"],
        "entry_slippage_points": _points(
            sign * (trade["entry_price"] - partner["entry_price"]), spec
        ),
        "live_exit_time": trade["exit_time"],
        "backtest_exit_time": partner["exit_time"],
        "live_exit": trade["exit_price"],
        "backtest_exit": partner["exit_price"],
        "exit_slippage_points": _points(
            -sign * (trade["exit_price"] - partner["exit_price"]), spec
        ),
        "live_pnl": round(float(trade["pnl"]), 2),
        "backtest_pnl": round(float(partner["pnl"]) * scale, 2),
    }


def _points(price_difference: float, spec: SymbolSpec) -> float:
    return round(price_difference / spec.point, 1) + 0.0  # + 0.0: no "-0.0" in the table
