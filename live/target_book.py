"""The target book: per symbol, what the strategy wants after the last closed bar decided on.

Filled from each decision (a Target per symbol); at start-up, before the first new bar, from
a decision on the last closed bar, so the positions adopted after downtime are reconciled
against what the strategy wants now, not against what it wanted when the trader stopped.
"""

from __future__ import annotations

from live.backtesting_bridge import Decision
from live.reconciler import Target


def target_of(decision: Decision) -> Target:
    """The reconciler's view of a decision."""
    return Target(
        symbol=decision.symbol,
        bar_time=decision.bar_time,
        direction=decision.position,
        acted=decision.act,
        entry=decision.entry,
        entry_bar=decision.entry_bar,
        entry_close=decision.entry_close,
    )


class TargetBook:
    """The latest target and its decision (sizing and stops of an entry need it) per symbol."""

    def __init__(self) -> None:
        self._decisions: dict[str, Decision] = {}

    def update(self, decision: Decision) -> Target:
        self._decisions[decision.symbol] = decision
        return target_of(decision)

    def decision(self, symbol: str) -> Decision | None:
        return self._decisions.get(symbol)

    def target(self, symbol: str) -> Target | None:
        decision = self._decisions.get(symbol)
        return None if decision is None else target_of(decision)

    def summary(self) -> dict[str, dict[str, object]]:
        """Each symbol's target direction and the bar that entered it (the heartbeat shows
        them; the crash trials check the broker against them)."""
        return {
            symbol: {
                "direction": d.position,
                "entry_bar": d.entry_bar.isoformat() if d.entry_bar else None,
            }
            for symbol, d in self._decisions.items()
        }
