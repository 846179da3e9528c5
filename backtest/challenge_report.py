"""The outcome of a prop-firm challenge on a backtest (`backtest.challenge`): passed, failed
(the breach: which rule, when, the numbers) or open, each phase's target and days, the trading
days and the consistency ratio; as text lines for the command line and as the --json document.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass(frozen=True)
class Breach:
    rule: str
    time: pd.Timestamp
    equity: float
    floor: float
    effect: str


@dataclass
class ChallengeReport:
    """The outcome of a preset on one run."""

    preset: str
    outcome: str = "open"  # passed | failed | open
    breach: Breach | None = None
    paused_days: int = 0
    phases: list[dict[str, object]] = field(default_factory=list)
    trading_days: int = 0
    consistency_ratio: float | None = None
    monte_carlo: dict[str, object] | None = None  # --mc: the bootstrap pass probability

    def lines(self) -> list[str]:
        """The report as text lines for the command line."""
        out = [f"challenge {self.preset}: {self.outcome.upper()}"]
        b = self.breach
        if b is not None and b.rule == "time limit":
            out.append(
                f"  time limit passed at {b.time:%Y-%m-%d %H:%M} UTC: balance {b.equity:,.2f}, "
                f"target {b.floor:,.2f}"
            )
        elif b is not None:
            out.append(
                f"  breach: {b.rule} at {b.time:%Y-%m-%d %H:%M} UTC, equity {b.equity:,.2f} "
                f"below {b.floor:,.2f} ({b.effect})"
            )
        for phase in self.phases:
            reached = phase["passed_at"]
            when = f"passed after {phase['days']} days" if reached else "not reached"
            out.append(f"  phase {phase['phase']}: target {phase['target_pct']:g}% {when}")
        ratio = "-" if self.consistency_ratio is None else f"{100 * self.consistency_ratio:.1f}%"
        out.append(f"  trading days {self.trading_days}; best day / profit {ratio}")
        if self.paused_days:
            out.append(f"  paused days (pause-type breaches): {self.paused_days}")
        return out

    def as_dict(self) -> dict[str, object]:
        breach = None
        if self.breach is not None:
            breach = {**vars(self.breach), "time": self.breach.time.isoformat()}
        return {
            "preset": self.preset,
            "outcome": self.outcome,
            "breach": breach,
            "paused_days": self.paused_days,
            "phases": [
                {**p, "passed_at": p["passed_at"].isoformat() if p["passed_at"] else None}
                for p in self.phases
            ],
            "trading_days": self.trading_days,
            "consistency_ratio": self.consistency_ratio,
            "monte_carlo": self.monte_carlo,
        }
