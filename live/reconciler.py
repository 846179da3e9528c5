"""The reconciler: the difference between what the strategy wants on a symbol (its target,
held in the TargetBook) and what the broker holds there under this trader's magic number, as
a list of actions. A pure function of (target, holdings, rules), tested as a table; the
PositionManager carries the actions out through the executor.

The rules (docs/live.md, "Reconciliation"):
- Exits and reductions are always chased: a position whose direction the target no longer
  wants is closed on every loop until it is gone (after downtime, a reconnect, a failed exit).
- An entry is sent on the bar that entered the target (an entry event or a change of
  position), as the backtest enters there; an entry event in the direction already held
  closes and re-opens, as the backtest does. An entry missed (the trader was down, or the
  entry was refused) is not chased later unless the chase rule allows it: within
  ENTRY_CHASE_BARS bars of its bar and ENTRY_CHASE_MAX_POINTS points of that bar's close.
- A position's stops are kept where its entry set them: when the broker's differ (a server
  that filled the entry without them, a hand change), they are sent again, if they differ by
  at least the minimum step (`stop_changes`).
- A pending order of this trader is an entry on its way: kept while it goes the target's
  way (no second entry is sent), cancelled when it does not.
- Positions of other magic numbers, or opened by hand, are never in `holdings`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

OPEN, CLOSE, SKIP_ENTRY, MODIFY, CANCEL = "open", "close", "skip_entry", "modify", "cancel"


class Why(Enum):
    """Why an action is planned (it becomes the order's reason and the trade's exit reason)."""

    SIGNAL = "strategy"  # on the bar the target changed
    REENTRY = "strategy re-entry"  # an entry event in the direction held
    CHASED = "exit retry"  # the target does not want a position held since an earlier bar
    CHASED_ENTRY = "entry chased"  # an entry of an earlier bar, within the chase rule
    MISSED = "entry not chased"
    STOPS = "stops"  # the broker's stops differ from those the entry set
    UNWANTED_ORDER = "pending order against the target"


@dataclass(frozen=True)
class Target:
    """What the strategy wants on one symbol after the bar `bar_time`."""

    symbol: str
    bar_time: datetime
    direction: int  # +1 long, -1 short, 0 flat
    acted: bool  # the target changed on this bar, or an entry event fired
    entry: bool  # an entry event fired on this bar
    entry_bar: datetime | None  # the bar that entered the current direction
    entry_close: float  # that bar's close


@dataclass(frozen=True)
class Holding:
    """A position of this trader on the symbol (stops as prices, 0 = none)."""

    ticket: int
    direction: int
    volume: float
    sl: float = 0.0
    tp: float = 0.0


@dataclass(frozen=True)
class Stops:
    """Where a position's stops belong (prices; 0 = none)."""

    sl: float
    tp: float


@dataclass(frozen=True)
class ChaseRule:
    """How far a missed entry may be chased: 0 bars = never (the default)."""

    bars: int = 0
    max_points: float = 0.0


@dataclass(frozen=True)
class Market:
    """What the chase rule needs to know of the market now."""

    bars_since_entry: int  # closed bars since the target's entry bar
    points_from_entry: float  # |price now - entry bar's close| in points


@dataclass(frozen=True)
class Action:
    kind: str
    why: Why
    ticket: int = 0  # the position a close or a stop change is for
    stops: Stops | None = None  # the stops a MODIFY sets


def plan(
    target: Target,
    holdings: Sequence[Holding],
    *,
    fresh: bool,
    chase: ChaseRule = ChaseRule(),
    market: Market | None = None,
    pending: Sequence[Holding] = (),
) -> list[Action]:
    """The actions that bring `holdings` (positions) and `pending` (orders not filled yet)
    to `target`. `fresh`: the target was decided in this loop on a bar not decided before
    (only then is an entry on that bar due)."""
    on_signal = fresh and target.acted
    reentry = on_signal and target.entry and target.direction != 0
    actions = [
        Action(CANCEL, Why.UNWANTED_ORDER, order.ticket)
        for order in pending
        if order.direction != target.direction
    ]
    keep = [order for order in pending if order.direction == target.direction]
    for holding in holdings:
        if holding.direction != target.direction or reentry:
            why = (
                Why.REENTRY
                if reentry and holding.direction == target.direction
                else (Why.SIGNAL if on_signal else Why.CHASED)
            )
            actions.append(Action(CLOSE, why, holding.ticket))
        else:
            keep.append(holding)
    if target.direction == 0 or keep:
        return actions
    if on_signal:
        actions.append(Action(OPEN, Why.SIGNAL))
    elif _chase_allows(chase, market):
        actions.append(Action(OPEN, Why.CHASED_ENTRY))
    else:
        actions.append(Action(SKIP_ENTRY, Why.MISSED))
    return actions


def _chase_allows(chase: ChaseRule, market: Market | None) -> bool:
    if chase.bars <= 0 or market is None:
        return False
    if market.bars_since_entry > chase.bars:
        return False
    if not math.isfinite(market.points_from_entry):
        return False
    return chase.max_points <= 0 or market.points_from_entry <= chase.max_points


def stop_changes(
    holdings: Sequence[Holding], wanted: dict[int, Stops], *, min_step: float
) -> list[Action]:
    """MODIFY actions for the positions whose stops differ from the wanted ones by at least
    `min_step` (a price distance); positions with no wanted stops are left as they are."""
    actions = []
    for holding in holdings:
        stops = wanted.get(holding.ticket)
        if stops is None:
            continue
        moved = max(abs(stops.sl - holding.sl), abs(stops.tp - holding.tp))
        if moved >= min_step - 1e-12 and moved > 0:
            actions.append(Action(MODIFY, Why.STOPS, holding.ticket, stops))
    return actions
