"""Keyed hash chains: a chain rewritten without the key does not verify, the key file is made
once with mode 0600 and verify needs it, older (unkeyed) databases go on keyed, and anchors
tell a rewritten chain from a truncated one."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from live import audit_schema
from live.audit_chain import GENESIS_HASH, key_file_for, key_id, load_key, row_hash
from live.audit_logger import AuditLogger, main
from live.audit_schema import CHAINED_TABLES, COLUMNS
from live.errors import AuditWriteError
from tests.live.conftest import ROOT

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def written(path: Path, orders: int = 4) -> AuditLogger:
    clock = iter(T0 + timedelta(seconds=i) for i in range(10_000))
    audit = AuditLogger(path, now=lambda: next(clock))
    for n in range(orders):
        audit.record_order(
            client_order_id=f"LT{n:04d}",
            status="filled",
            symbol="EURUSD",
            side="buy",
            kind="open",
            volume=0.1,
            fill_price=1.1 + n / 1000,
            dry_run=False,
        )
    audit.record_event("startup", "trader started")
    return audit


def rewrite_chain(path: Path, table: str, edit_sql: str, key: bytes | None) -> None:
    """What an attacker with write access does: drop the guards, edit a row, then recompute
    every hash of the table with `key` (None: plain SHA-256, as the chain used to be)."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    for guarded in CHAINED_TABLES:
        conn.execute(f"DROP TRIGGER IF EXISTS {guarded}_no_update")
    conn.execute(edit_sql)
    prev = GENESIS_HASH
    columns = COLUMNS[table]
    for row in conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall():
        digest = row_hash(prev, [row[c] for c in columns], key)
        conn.execute(
            f"UPDATE {table} SET prev_hash = ?, row_hash = ? WHERE id = ?",
            (prev, digest, row["id"]),
        )
        prev = digest
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    "attacker_key", [None, b"a guessed key of the attacker"], ids=["sha256", "guessed-key"]
)
def test_a_rewritten_chain_does_not_verify_without_the_key(tmp_path, attacker_key, capsys):
    audit = written(tmp_path / "audit.db")
    audit.close()
    rewrite_chain(
        tmp_path / "audit.db",
        "orders",
        "UPDATE orders SET fill_price = 1.5 WHERE id = 2",
        attacker_key,
    )
    assert main(["verify", str(tmp_path / "audit.db")]) == 1
    out = capsys.readouterr().out
    assert "orders             BROKEN  at id 1 after 0 good rows" in out
    assert "events             ok" in out  # the other tables were not touched


def test_the_key_is_made_once_with_mode_0600_beside_the_database(tmp_path):
    audit = written(tmp_path / "audit.db")
    key_file = key_file_for(tmp_path / "audit.db")
    assert key_file == tmp_path / "audit.db.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = load_key(key_file)
    assert len(key) == 32 and key.hex() not in (tmp_path / "audit.db").read_bytes().hex()
    audit.close()
    again = AuditLogger(tmp_path / "audit.db")  # reopened: the same key, nothing new made
    again.record_event("restart")
    assert load_key(key_file) == key and all(r.ok for r in again.verify())


def test_the_key_file_can_live_elsewhere(tmp_path):
    elsewhere = tmp_path / "vault" / "trader.key"
    audit = AuditLogger(tmp_path / "audit.db", key_file=elsewhere)
    audit.record_event("startup")
    assert elsewhere.exists() and not key_file_for(tmp_path / "audit.db").exists()
    assert main(["verify", str(tmp_path / "audit.db"), "--key", str(elsewhere)]) == 0


def test_verify_needs_the_key_and_names_it(tmp_path):
    written(tmp_path / "audit.db").close()
    key_file = key_file_for(tmp_path / "audit.db")
    moved = key_file.rename(tmp_path / "backup.key")
    done = subprocess.run(
        [sys.executable, "-m", "live.audit_logger", "verify", str(tmp_path / "audit.db")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "verify needs its key file" in done.stderr and "--key" in done.stderr
    assert moved.read_text().strip() not in done.stderr + done.stdout
    assert main(["verify", str(tmp_path / "audit.db"), "--key", str(moved)]) == 0


def test_another_key_is_refused_by_the_writer_and_by_verify(tmp_path, capsys):
    written(tmp_path / "audit.db").close()
    key_file = key_file_for(tmp_path / "audit.db")
    original = load_key(key_file)
    key_file.write_text(bytes(range(32)).hex())
    with pytest.raises(AuditWriteError, match=f"keyed with key {key_id(original)}"):
        AuditLogger(tmp_path / "audit.db")
    assert main(["verify", str(tmp_path / "audit.db")]) == 2
    assert key_id(original) in capsys.readouterr().err


def legacy_database(path: Path) -> None:
    """A database as versions before keyed chains wrote it: migrations 001-003 and plain
    SHA-256 chains."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    for name, sql in audit_schema.MIGRATIONS[:3]:
        for statement in audit_schema._statements(sql):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (name, T0.isoformat()))
    prev = GENESIS_HASH
    for n in range(3):
        values = [f"2024-03-01T12:00:0{n}.000+00:00", "info", "old", None, f"old {n}", None]
        digest = row_hash(prev, values)
        conn.execute(
            "INSERT INTO events (ts, level, kind, symbol, message, data, prev_hash, row_hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (*values, prev, digest),
        )
        prev = digest
    conn.close()


def test_an_older_database_goes_on_keyed_and_its_old_rows_stay_bound(tmp_path, capsys):
    path = tmp_path / "audit.db"
    legacy_database(path)
    audit = AuditLogger(path)
    audit.record_event("new", "written with the key")
    audit.close()
    assert main(["verify", str(path)]) == 0
    out = capsys.readouterr().out
    assert "its first 3 rows were written before keyed chains" in out
    # old rows rewritten with a recomputed plain chain: the first keyed row cannot follow
    rewrite_chain(path, "events", "UPDATE events SET message = 'forged' WHERE id = 1", None)
    assert main(["verify", str(path)]) == 1
    assert "events             BROKEN  at id 4" in capsys.readouterr().out


def test_a_removed_key_record_is_reported(tmp_path, capsys):
    written(tmp_path / "audit.db").close()
    conn = sqlite3.connect(tmp_path / "audit.db")
    conn.execute("DROP TRIGGER chain_keys_no_delete")
    conn.execute("DELETE FROM chain_keys WHERE tbl = 'orders'")
    conn.commit()
    conn.close()
    assert main(["verify", str(tmp_path / "audit.db")]) == 1
    assert "where its keyed chain starts is missing" in capsys.readouterr().out


def test_anchors_tell_a_rewritten_chain_from_a_truncated_one(tmp_path, capsys):
    path = tmp_path / "audit.db"
    audit = written(path)
    head_id, head_hash = audit.reader.heads()["orders"]
    key = load_key(key_file_for(path))
    audit.close()
    expect = f"orders:{head_id}:{head_hash[:16]}"
    # rewritten by someone holding the key: the chain verifies, the anchor does not
    rewrite_chain(path, "orders", "UPDATE orders SET fill_price = 9.9 WHERE id = 1", key)
    assert main(["verify", str(path), "--expect", expect]) == 1
    out = capsys.readouterr().out
    assert "orders             ok" in out
    assert f"REWRITTEN  orders: row {head_id} no longer has the hash" in out
    assert "TRUNCATED" not in out
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER IF EXISTS orders_no_delete")
    conn.execute("DELETE FROM orders WHERE id = ?", (head_id,))
    conn.commit()
    conn.close()
    assert main(["verify", str(path), "--expect", expect]) == 1
    out = capsys.readouterr().out
    assert f"TRUNCATED  orders: row {head_id}, recorded as the head, is gone" in out


def test_the_heads_in_a_log_anchor_like_expect(tmp_path, capsys):
    path = tmp_path / "audit.db"
    audit = written(path)
    heads = audit.reader.heads()
    audit.close()
    log = tmp_path / "live_trader.log"
    log.write_text(json.dumps({"message": "audit chain heads " + json.dumps(heads)}) + "\n")
    assert main(["verify", str(path), "--anchor", str(log)]) == 0
    assert f"recorded heads: all {len(heads)} still in place" in capsys.readouterr().out
