"""A small version of bench/edge_trials.py (second traders, a locked database, a filling
disk, rewritten chains), and its measure of positions held past their exit decision."""

from __future__ import annotations

import sqlite3
from types import SimpleNamespace

import pytest

from bench.edge_trials import held_past_exit, run_all


def test_the_held_past_exit_measure_counts_a_position_kept_after_its_exit_decision(tmp_path):
    db = tmp_path / "audit.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE signals (symbol, ts, position, action)")
    conn.execute(
        "INSERT INTO signals VALUES ('EURUSD', '2020-01-01T10:00:00.000+00:00', -1, 'close')"
    )
    conn.commit()
    conn.close()
    at = 1577872800  # 2020-01-01 10:00 UTC

    def deal(position, entry, time, kind=0):
        return SimpleNamespace(
            position_id=position, entry=entry, time=time, type=kind, symbol="EURUSD"
        )

    closed_in_time = [deal(1, 0, at - 7200), deal(1, 1, at)]
    closed_3_bars_late = [deal(2, 0, at - 7200), deal(2, 1, at + 3 * 3600)]
    window = ("2020-01-01", "2020-01-02")
    assert held_past_exit(db, closed_in_time, *window) == (0, 1)
    assert held_past_exit(db, closed_3_bars_late, *window) == (3, 1)


@pytest.mark.slow
@pytest.mark.served
def test_edge_trials_hold_every_invariant(tmp_path):
    figures = run_all(tmp_path, attempts=3, lock_seconds=4.0)
    assert figures.violations == []
    assert figures.second_refused == figures.second_starts == 3
    assert figures.duplicates == 0 and figures.held_past_exit_bars == 0
    assert figures.outage_exits > 0 and figures.journaled > 0
    assert figures.moved == figures.journaled
    assert figures.chains_caught == figures.chains_rewritten == 2
