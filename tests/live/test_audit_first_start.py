"""The audit database at the first start: on a full disk the trader says "disk full" (the path
and the space left) and leaves no database; otherwise the database is whole; migrations apply
in one transaction."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

from live.audit_logger import AuditLogger, main
from live.errors import AuditWriteError
from tests.live.conftest import ROOT, SMA_CROSS, on_tiny_disk
from tests.live.test_audit_chain import legacy_database


def first_start(tmp_path: Path, disk_size: str):
    disk, keep = tmp_path / "disk", tmp_path / "after"
    env = tmp_path / "trader.env"
    env.write_text(
        f"AUDIT_DB={disk / 'audit.db'}\nLOG_DIR={tmp_path / 'logs'}\n"
        f"KILL_SWITCH_FILE={tmp_path / 'KILL'}\nLOCK_DIR={tmp_path / 'locks'}\nMT5_BACKEND=sim\n"
    )
    command = [
        sys.executable,
        str(ROOT / "live" / "live_trader.py"),
        "--config",
        str(env),
        "--strategy",
        str(SMA_CROSS),
        "--dry-run",
        "--max-bars",
        "3",
    ]
    return on_tiny_disk(disk_size, disk, keep, command), disk, keep


@pytest.mark.slow
def test_a_full_disk_at_the_first_start_says_so_and_leaves_no_database(tmp_path):
    done, disk, keep = first_start(tmp_path, "64k")
    assert done.returncode == 2, done.stderr
    assert f"disk full: {disk / 'audit.db'} cannot be written" in done.stderr
    assert "free on that disk" in done.stderr
    assert "cannot rollback" not in done.stderr and "Traceback" not in done.stderr
    left = sorted(p.name for p in keep.iterdir())
    assert "audit.db" not in left and not [n for n in left if ".new-" in n], left


@pytest.mark.slow
def test_with_room_enough_the_first_start_leaves_a_whole_database(tmp_path, capsys):
    done, _, keep = first_start(tmp_path, "8m")
    assert done.returncode == 0, done.stderr
    assert main(["verify", str(keep / "audit.db")]) == 0
    assert "events             ok" in capsys.readouterr().out


def test_migrations_apply_in_one_transaction(tmp_path):
    """A migration that fails leaves the schema as it was: nothing of the ones before it in
    the same run is kept (a half-migrated database is what a crash or a full disk left)."""
    path = tmp_path / "audit.db"
    legacy_database(path)
    conn = sqlite3.connect(path)
    conn.execute("CREATE VIEW chain_keys AS SELECT 1")  # makes 004_chain_keys fail
    conn.execute("DELETE FROM schema_migrations WHERE name = '003_paging_indexes'")
    for index in ("events_kind_id", "events_level_id", "orders_symbol_id", "signals_symbol_id"):
        conn.execute(f"DROP INDEX {index}")
    conn.execute("DROP INDEX trades_dry_run_id")
    conn.commit()
    before = conn.execute("SELECT name FROM sqlite_master ORDER BY name").fetchall()
    conn.close()
    with pytest.raises(AuditWriteError, match="chain_keys"):
        AuditLogger(path)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT name FROM sqlite_master ORDER BY name").fetchall() == before
    assert [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY name")] == [
        "001_audit_tables",
        "002_alert_outbox",
    ]
    conn.close()
