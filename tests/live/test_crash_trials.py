"""A small version of bench/crash_trials.py: SIGKILL the trader mid-run against a served
simulator that loses replies, restart it, and check nothing was sent twice or lost."""

from __future__ import annotations

import pytest

from bench.crash_trials import run_trials


@pytest.mark.slow
def test_killed_and_restarted_trader_never_duplicates_or_loses_an_order(tmp_path):
    report = run_trials(8, tmp_path, seed=3)
    assert report.trials == 8 and report.killed_mid_run >= 6
    assert report.broker_deals > 0 and report.closed_positions > 0
    assert report.violations == []
