"""The reconciler as a table: a target and what the broker holds in, actions out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from live.reconciler import (
    CANCEL,
    CLOSE,
    OPEN,
    SKIP_ENTRY,
    ChaseRule,
    Holding,
    Market,
    Target,
    Why,
    plan,
)

BAR = datetime(2024, 5, 6, 10, tzinfo=UTC)
EARLIER = BAR - timedelta(hours=5)


def target(direction: int, *, acted: bool = False, entry: bool = False, entered=BAR) -> Target:
    return Target("EURUSD", BAR, direction, acted, entry, entered if direction else None, 1.1)


LONG, SHORT = Holding(11, 1, 0.1), Holding(12, -1, 0.1)
OTHER_LONG = Holding(13, 1, 0.1)

CASES = {
    "flat, nothing held": (target(0), [], True, []),
    "flat, long held, on the signal": (
        target(0, acted=True),
        [LONG],
        True,
        [(CLOSE, Why.SIGNAL, 11)],
    ),
    "flat, long held since an earlier bar": (target(0), [LONG], False, [(CLOSE, Why.CHASED, 11)]),
    "long wanted, long held": (target(1), [LONG], True, []),
    "long wanted, long held, not fresh": (target(1, entered=EARLIER), [LONG], False, []),
    "reversal on the signal": (
        target(1, acted=True),
        [SHORT],
        True,
        [(CLOSE, Why.SIGNAL, 12), (OPEN, Why.SIGNAL, 0)],
    ),
    "reversal missed while down": (
        target(1, entered=EARLIER),
        [SHORT],
        False,
        [(CLOSE, Why.CHASED, 12), (SKIP_ENTRY, Why.MISSED, 0)],
    ),
    "an entry event in the direction held re-opens": (
        target(1, acted=True, entry=True),
        [LONG],
        True,
        [(CLOSE, Why.REENTRY, 11), (OPEN, Why.SIGNAL, 0)],
    ),
    "an entry event seen again in a later loop does nothing": (
        target(1, acted=True, entry=True),
        [LONG],
        False,
        [],
    ),
    "entry on its bar": (target(-1, acted=True), [], True, [(OPEN, Why.SIGNAL, 0)]),
    "entry refused earlier is not chased": (
        target(-1, entered=EARLIER),
        [],
        True,
        [(SKIP_ENTRY, Why.MISSED, 0)],
    ),
    "two unwanted positions both close": (
        target(-1, acted=True),
        [LONG, OTHER_LONG],
        True,
        [(CLOSE, Why.SIGNAL, 11), (CLOSE, Why.SIGNAL, 13), (OPEN, Why.SIGNAL, 0)],
    ),
    "hedged both ways: the wrong side closes, the right one stays": (
        target(1, entered=EARLIER),
        [LONG, SHORT],
        False,
        [(CLOSE, Why.CHASED, 12)],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_plan(case):
    wanted, holdings, fresh, expected = CASES[case]
    actions = plan(wanted, holdings, fresh=fresh)
    assert [(a.kind, a.why, a.ticket) for a in actions] == expected


@pytest.mark.parametrize(
    ("rule", "market", "chased"),
    [
        (ChaseRule(bars=3), Market(2, 50.0), True),
        (ChaseRule(bars=3), Market(4, 0.0), False),
        (ChaseRule(bars=3, max_points=20), Market(1, 25.0), False),
        (ChaseRule(bars=3, max_points=20), Market(1, 15.0), True),
        (ChaseRule(bars=0), Market(0, 0.0), False),
        (ChaseRule(bars=3), Market(1, float("nan")), False),  # no price, no chase
    ],
)
def test_a_missed_entry_is_chased_only_within_the_rule(rule, market, chased):
    actions = plan(target(1, entered=EARLIER), [], fresh=False, chase=rule, market=market)
    assert [(a.kind, a.why) for a in actions] == (
        [(OPEN, Why.CHASED_ENTRY)] if chased else [(SKIP_ENTRY, Why.MISSED)]
    )


def test_a_pending_order_goes_the_targets_way_or_is_cancelled():
    waiting_buy = Holding(21, 1, 0.1)
    against = plan(target(-1, acted=True), [], fresh=True, pending=[waiting_buy])
    assert [(a.kind, a.ticket) for a in against] == [(CANCEL, 21), (OPEN, 0)]
    along = plan(target(1, acted=True), [], fresh=True, pending=[waiting_buy])
    assert along == []  # the entry is on its way: no second one
