"""A small version of bench/crash_trials.py: SIGKILL the trader mid-run against a served
simulator that loses replies, restart it, and check nothing was sent twice or lost, and that
each restart's first loop brought the broker to the target; on a hedging account, on a
netting one whose server cuts comments, lags its history and drops stops, with a strategy
that moves its stops and exits in parts and on time, with one that enters by pending
orders, and under a tight daily floor that closes and halts (no entry sent while a breach
holds, no snapshot below the floor without a breach)."""

from __future__ import annotations

import pytest

from bench.crash_trials import (
    BROKER_FAULTS,
    DEFAULT_FAULTS,
    STRATEGY,
    STRATEGY_PARAMS,
    _settings,
    run_trials,
)
from live.config import LiveConfig


def test_the_trials_traders_lock_their_account_in_the_trials_folder(tmp_path):
    """Not in the machine's lock folder: two runs at once (or a rehearsal beside them) on the
    same simulated account must not refuse each other."""
    settings = _settings(tmp_path, 18812, STRATEGY, STRATEGY_PARAMS, 0.01)
    assert LiveConfig.load(settings, environ={}).lock_dir == tmp_path / "locks"


@pytest.mark.slow
@pytest.mark.served
@pytest.mark.parametrize(
    ("netting", "faults", "kind"),
    [
        (False, DEFAULT_FAULTS, "plain"),
        (False, DEFAULT_FAULTS, "rules"),  # a daily floor breached again and again
        (True, f"{DEFAULT_FAULTS},{BROKER_FAULTS}", "plain"),
        (True, DEFAULT_FAULTS, "managed"),  # break-even stops, partial and time exits
        (False, DEFAULT_FAULTS, "pending"),  # stop entries that wait, fill or expire
    ],
    ids=["hedging", "hedging-rules", "netting-broker-faults", "netting-managed", "hedging-pending"],
)
def test_killed_and_restarted_trader_never_duplicates_or_loses_an_order(
    tmp_path, netting, faults, kind
):
    report = run_trials(
        10,
        tmp_path,
        seed=3,
        faults=faults,
        netting=netting,
        managed=kind == "managed",
        pending=kind == "pending",
        rules=kind == "rules",
    )
    assert report.trials == 10 and report.killed_mid_run >= 7
    assert report.broker_deals > 0 and report.closed_positions > 0
    assert report.restarts_checked > 0
    assert report.violations == []
    assert kind != "rules" or report.breaches > 0
    assert list((tmp_path / "locks").glob("account-*.lock"))  # taken there, not machine-wide
