"""A small version of bench/fault_soak.py: hundreds of signals against a simulator that
requotes, rejects, times out, loses replies, fills partially and disconnects."""

from __future__ import annotations

import pytest

from bench.fault_soak import run_soak


@pytest.mark.slow
def test_faults_never_duplicate_lose_or_leave_an_order_unresolved(tmp_path):
    report = run_soak(200, tmp_path, seed=5)
    assert report.signals >= 200
    stats = report.execution
    assert stats["retries"] > 0 and stats["unknown"] > 0 and stats["reconciled_found"] > 0
    assert report.violations == []
