"""A small version of bench/crash_trials.py: SIGKILL the trader mid-run against a served
simulator that loses replies, restart it, and check nothing was sent twice or lost, and that
each restart's first loop brought the broker to the target; on a hedging account, on a
netting one whose server cuts comments, lags its history and drops stops, and with a strategy
that moves its stops and exits in parts and on time."""

from __future__ import annotations

import pytest

from bench.crash_trials import BROKER_FAULTS, DEFAULT_FAULTS, run_trials


@pytest.mark.slow
@pytest.mark.served
@pytest.mark.parametrize(
    ("netting", "faults", "managed"),
    [
        (False, DEFAULT_FAULTS, False),
        (True, f"{DEFAULT_FAULTS},{BROKER_FAULTS}", False),
        (True, DEFAULT_FAULTS, True),  # break-even stops, partial and time exits under kills
    ],
    ids=["hedging", "netting-broker-faults", "netting-managed"],
)
def test_killed_and_restarted_trader_never_duplicates_or_loses_an_order(
    tmp_path, netting, faults, managed
):
    report = run_trials(10, tmp_path, seed=3, faults=faults, netting=netting, managed=managed)
    assert report.trials == 10 and report.killed_mid_run >= 7
    assert report.broker_deals > 0 and report.closed_positions > 0
    assert report.restarts_checked > 0
    assert report.violations == []
