"""Account protection, live: a preset's floors (backtest/prop_rules.py) held against the
account's equity on every loop, the worst-case check before an entry, and the memory that
survives a restart.

The guard decides and remembers; the risk gate acts on what it says (live/risk_gate.py) and
the position manager closes. Its memory is audit events, read back at start:
`account_rules` (the initial balance), `account_day` (a day's base and the high-water mark
at its reset), `account_mark` (an intraday equity peak, recorded in steps of 0.01% of the
initial balance), `account_breach` and `account_resume` (a halt or pause and its end).
Floors are the firm's levels; the trader stops `buffer_pct` inside them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from backtest.broker_clock import DAY, BrokerZone, parse_zone
from backtest.prop_rules import Preset
from live.audit_reader import AuditReader
from live.errors import AuditWriteError

logger = logging.getLogger(__name__)

DAILY, MAX_LOSS = "daily floor", "maximum loss"
MARK_STEP = 1e-4  # an intraday peak is recorded when it rises this fraction of the initial


@dataclass(frozen=True)
class Floor:
    """One floor now: the firm's `level`, where the trader acts (`stop_at`, the level plus
    the buffer), the equity it is held against and when it next resets (None: never)."""

    rule: str
    level: float
    stop_at: float
    equity: float
    effect: str
    next_reset: datetime | None

    @property
    def distance(self) -> float:
        """Money left before the trader acts."""
        return self.equity - self.stop_at

    def as_dict(self, initial: float) -> dict[str, object]:
        return {
            "rule": self.rule,
            "level": round(self.level, 2),
            "stop_at": round(self.stop_at, 2),
            "distance": round(self.distance, 2),
            "distance_pct": round(100.0 * self.distance / initial, 3) if initial else None,
            "effect": self.effect,
            "next_reset": self.next_reset.isoformat() if self.next_reset else None,
        }


@dataclass(frozen=True)
class Breach:
    """A floor touched: the numbers, and until when entries stay blocked (None: for good)."""

    rule: str
    effect: str
    equity: float
    stop_at: float
    level: float
    day: str
    until: datetime | None

    @property
    def closes(self) -> bool:
        return self.effect == "fail"

    def text(self) -> str:
        until = f"until {self.until:%Y-%m-%d %H:%M} UTC" if self.until else "for good"
        act = "closed everything; halted" if self.closes else "entries paused"
        return (
            f"account rules: {self.rule} breached, equity {self.equity:,.2f} at or below "
            f"{self.stop_at:,.2f} (firm's level {self.level:,.2f}); {act} {until}"
        )

    def data(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "effect": self.effect,
            "equity": round(self.equity, 2),
            "stop_at": round(self.stop_at, 2),
            "level": round(self.level, 2),
            "day": self.day,
            "until": self.until.isoformat() if self.until else None,
        }


@dataclass
class _Day:
    label: int  # days since the epoch in the reset's zone, shifted by the reset time
    base: float
    mark: float  # the high-water mark at the reset (the end-of-day balance peak)
    next_reset: float  # UTC epoch


class AccountGuard:
    """The preset's floors for one account. `reader` holds the memory (None: none yet) and
    `record` writes it (AuditLogger.record_event; None for a look that changes nothing, as
    `--check`'s). `zone` gives the broker's zone (for resets named `broker`);
    `account_size` 0 means the balance the rules first saw."""

    def __init__(
        self,
        preset: Preset,
        reader: AuditReader | None,
        *,
        record: Callable[..., object] | None,
        zone: Callable[[], BrokerZone],
        now: Callable[[], datetime],
        account_size: float = 0.0,
    ) -> None:
        self.preset = preset
        self._write = record
        self._broker_zone = zone
        self._now = now
        self.initial = account_size
        self._day: _Day | None = None
        self._mark = 0.0  # the intraday equity peak (intraday_equity rules)
        self._mark_recorded = 0.0
        self.breach: Breach | None = None  # in force
        self.floors: list[Floor] = []
        if reader is not None:
            self._restore(reader)

    # ------------------------------------------------------------ every loop

    def check(self, balance: float, equity: float) -> Breach | None:
        """Update the day, the marks and the floors; a new breach, or None (also while one
        is in force: see `breach`)."""
        now = self._now()
        if not self.initial:
            self._start(balance)
        self._lift_if_over(now)
        self._roll_day(now, balance, equity)
        if equity > self._mark:
            self._raise_mark(equity)
        self.floors = self._floors(equity)
        held = self.breach
        if held is not None and held.until is None:
            return None  # halted for good: nothing more to find
        touched = [  # a daily halt or pause may still become a failure
            floor
            for floor in self.floors
            if equity <= floor.stop_at and (held is None or held.rule != floor.rule)
        ]
        if not touched:
            return None
        worst = min(touched, key=_severity)  # both at once: the maximum loss's failure
        self.breach = self._breach(worst)
        return self.breach

    def blocker(self) -> str | None:
        """Why entries are blocked by the rules now, or None."""
        return None if self.breach is None else self.breach.text()

    @property
    def flattening(self) -> bool:
        """A fail-type breach is in force: everything this trader holds must be closed."""
        return self.breach is not None and self.breach.closes

    # ------------------------------------------------------------ before an entry

    def entry_refusal(self, *, new_risk: float | None, open_risk: float, equity: float,
                      lots: float, open_lots: float) -> str | None:  # fmt: skip
        """Why an entry must not open: the exposure limits, then the floors if the new
        entry's stop (`new_risk`, a loss in money; None without a stop) and every open
        position's stop (`open_risk`) were all hit."""
        exposure = self.preset.exposure
        if exposure.require_stop and new_risk is None:
            return "account rules: every entry needs a stop-loss (exposure.require_stop)"
        if exposure.max_lots_per_order and lots > exposure.max_lots_per_order + 1e-9:
            return (
                f"account rules: {lots:g} lots is over exposure.max_lots_per_order "
                f"{exposure.max_lots_per_order:g}"
            )
        if exposure.max_open_lots and open_lots + lots > exposure.max_open_lots + 1e-9:
            return (
                f"account rules: {open_lots:g} open + {lots:g} lots is over "
                f"exposure.max_open_lots {exposure.max_open_lots:g}"
            )
        risk = new_risk or 0.0
        if (
            exposure.max_risk_pct
            and self.initial
            and 100.0 * risk / self.initial > exposure.max_risk_pct
        ):
            return (
                f"account rules: a loss of {risk:,.2f} at the stop is "
                f"{100.0 * risk / self.initial:.2f}% of {self.initial:,.2f}, over "
                f"exposure.max_risk_pct {exposure.max_risk_pct:g}%"
            )
        worst = equity - open_risk - risk
        for floor in self.floors:
            if worst <= floor.stop_at:
                return (
                    f"account rules: if every stop were hit, equity {worst:,.2f} would be at "
                    f"or below the {floor.rule} {floor.stop_at:,.2f} (open stops risk "
                    f"{open_risk:,.2f}, this entry {risk:,.2f})"
                )
        return None

    # ------------------------------------------------------------ for the dashboard

    def describe(self) -> dict[str, object]:
        """The preset, the initial balance, each floor's level, distance and next reset,
        and a breach in force."""
        return {
            "preset": self.preset.name,
            "initial": self.initial,
            "buffer_pct": self.preset.buffer_pct,
            "floors": [floor.as_dict(self.initial) for floor in self.floors],
            "breach": None if self.breach is None else self.breach.data(),
        }

    # ------------------------------------------------------------ days and marks

    def _reset_zone(self) -> BrokerZone:
        zone = self.preset.daily_floor.reset.zone if self.preset.daily_floor else "broker"
        return self._broker_zone() if zone == "broker" else parse_zone(zone, "reset")

    def _day_of(self, now: datetime) -> tuple[int, float]:
        """The trading day of `now` (by the preset's reset) and the UTC epoch it ends at."""
        reset = self.preset.daily_floor.reset.seconds if self.preset.daily_floor else 0
        zone, utc = self._reset_zone(), now.timestamp()
        label = int((utc + zone.offset_at(utc) - reset) // DAY)
        return label, float(zone.to_utc((label + 1) * DAY + reset))

    def _roll_day(self, now: datetime, balance: float, equity: float) -> None:
        day = self._day
        if day is not None and now.timestamp() < day.next_reset:
            return
        label, next_reset = self._day_of(now)
        if day is not None and day.label == label:  # the zone moved the reset: follow it
            day.next_reset = next_reset
            return
        rule = self.preset.daily_floor
        base = float(rule.base_of(balance, equity)) if rule else balance
        mark = max(day.mark if day else self.initial, balance)  # the end-of-day balance peak
        self._day = _Day(label, base, mark, next_reset)
        self._record(
            "account_day",
            f"account rules: trading day {self._day_text(label)} starts, base {base:,.2f}",
            {"day": label, "base": base, "mark": mark, "balance": balance, "equity": equity},
        )

    def _raise_mark(self, equity: float) -> None:
        self._mark = equity
        if equity - self._mark_recorded >= MARK_STEP * self.initial:
            self._mark_recorded = equity
            self._record("account_mark", f"equity peak {equity:,.2f}", {"mark": equity})

    def _floors(self, equity: float) -> list[Floor]:
        preset, day, initial = self.preset, self._day, self.initial
        buffer = preset.buffer(initial)
        floors = []
        if preset.daily_floor is not None and day is not None:
            level = float(preset.daily_floor.level(day.base, initial))
            reset = datetime.fromtimestamp(day.next_reset, UTC)
            floors.append(
                Floor(DAILY, level, level + buffer, equity, preset.daily_floor.effect, reset)
            )
        rule = preset.max_loss
        if rule is not None:
            mark = self._mark if rule.high_water == "intraday_equity" else day.mark
            level = float(rule.level(mark, initial))
            floors.append(Floor(MAX_LOSS, level, level + buffer, equity, "fail", None))
        return floors

    def _breach(self, floor: Floor) -> Breach:
        until = floor.next_reset if floor.rule == DAILY else None
        day = self._day_text(self._day.label) if self._day else ""
        return Breach(floor.rule, floor.effect, floor.equity, floor.stop_at, floor.level, day,
                      until)  # fmt: skip

    def _lift_if_over(self, now: datetime) -> None:
        """A daily halt or pause ends at the reset."""
        breach = self.breach
        if breach is None or breach.until is None or now < breach.until:
            return
        self.breach = None
        self._record(
            "account_resume",
            f"account rules: new trading day; the {breach.rule} {breach.effect} is over",
            {"rule": breach.rule},
            level="warning",
        )

    @staticmethod
    def _day_text(label: int) -> str:
        return datetime.fromtimestamp(label * DAY, UTC).date().isoformat()

    # ------------------------------------------------------------ memory

    def _start(self, balance: float) -> None:
        self.initial = balance
        self._record(
            "account_rules",
            f"account rules {self.preset.name}: initial balance {balance:,.2f}",
            {"preset": self.preset.name, "initial": balance},
        )

    def record_breach(self, breach: Breach) -> None:
        """The event with the numbers (kept through a full disk: the fallback journal)."""
        self._record("account_breach", breach.text(), breach.data(), level="critical")

    def _record(self, kind: str, message: str, data: dict[str, object], *, level: str = "info"):
        if self._write is None:
            return
        try:
            self._write(kind, message, level=level, data=data, fallback=True)
        except AuditWriteError as exc:  # the memory goes on; the logger's outage says so
            logger.error("%s not recorded: %s", kind, exc)

    def _restore(self, reader: AuditReader) -> None:
        """What earlier runs on this database left: the initial balance, the day, the marks
        and a halt or pause in force."""
        start = _data(reader.last_event("account_rules"))
        if start and not self.initial:
            self.initial = float(start["initial"])
        day = _data(reader.last_event("account_day"))
        if day:
            self._day = _Day(int(day["day"]), float(day["base"]), float(day["mark"]), 0.0)
            self._mark = max(self._mark, float(day["equity"]), float(day["mark"]))
        mark = _data(reader.last_event("account_mark"))
        if mark:
            self._mark = max(self._mark, float(mark["mark"]))
        self._mark_recorded = self._mark
        last = reader.last_event(("account_breach", "account_resume"))
        if last is not None and last["kind"] == "account_breach":
            data = _data(last)
            until = datetime.fromisoformat(data["until"]) if data.get("until") else None
            self.breach = Breach(
                data["rule"], data["effect"], float(data["equity"]), float(data["stop_at"]),
                float(data["level"]), str(data.get("day", "")), until,
            )  # fmt: skip


def _severity(floor: Floor) -> tuple[bool, bool]:
    """Sorts the floor that halts for good first, then one that closes, then a pause."""
    return (floor.next_reset is not None, floor.effect != "fail")


def _data(row: dict[str, Any] | None) -> dict[str, Any]:
    return json.loads(row["data"] or "{}") if row else {}
