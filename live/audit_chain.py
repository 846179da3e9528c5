"""The audit tables' hash chains: the chain key, how a row's hash is made, verifying a chain,
and the chain heads kept outside the database (the trader's log, the shutdown alert).

Every row stores the hash of the previous row of its table and its own hash,
HMAC-SHA256(key, prev_hash + canonical JSON of its values), so editing, inserting or removing
a row in the middle breaks the chain, and without the key nobody can compute a rewritten
chain that verifies. The key lives outside the database, in a file made at the first start
with mode 0600 (`<AUDIT_DB>.key` unless AUDIT_KEY_FILE says otherwise); `verify` needs it.
Rows written before keyed chains (older databases) keep their plain SHA-256 chain up to the
row recorded in `chain_keys`. A chain cannot show rows cut from its end; the heads recorded
elsewhere can (`missing_heads`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import secrets
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from live.audit_schema import CHAINED_TABLES, COLUMNS, iso

GENESIS_HASH = "0" * 64


KEY_BYTES = 32


class ChainKeyError(ValueError):
    """The chain key is missing, unreadable, or not the one this database was keyed with."""


@dataclass(frozen=True)
class ChainReport:
    """Result of verifying one table's hash chain; `unkeyed` rows (written before keyed
    chains) were checked with plain SHA-256."""

    table: str
    rows: int
    broken_id: int | None = None
    reason: str = ""
    unkeyed: int = 0

    @property
    def ok(self) -> bool:
        return self.broken_id is None


def row_hash(prev_hash: str, values: Iterable[object], key: bytes | None = None) -> str:
    """The chain hash of one row over the previous hash and the row's values as JSON:
    HMAC-SHA256 with `key`, plain SHA-256 without (rows of older databases)."""
    payload = json.dumps(list(values), separators=(",", ":"), ensure_ascii=False)
    data = (prev_hash + payload).encode("utf-8")
    if key is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


# ---------------------------------------------------------------- the key


def key_file_for(db: Path) -> Path:
    """The default key file of a database: beside it, `<db>.key`."""
    return Path(f"{db}.key")


def key_id(key: bytes) -> str:
    """A fingerprint that names a key without revealing it."""
    return hashlib.sha256(b"audit-chain-key-id:" + key).hexdigest()[:16]


def load_key(path: Path) -> bytes:
    """The key in `path` (hex text); ChainKeyError naming the file when it is not usable."""
    try:
        key = bytes.fromhex(Path(path).read_text(encoding="ascii").strip())
    except FileNotFoundError:
        raise ChainKeyError(
            f"the audit chain key {path} is missing: restore it from your backup, or pass "
            "--key with its path (verify needs the key the database was written with)"
        ) from None
    except (OSError, ValueError) as exc:
        raise ChainKeyError(f"the audit chain key {path} cannot be read: {exc}") from None
    if len(key) < 16:
        raise ChainKeyError(f"the audit chain key {path} is too short ({len(key)} bytes)")
    return key


def load_or_create_key(path: Path) -> bytes:
    """The key in `path`, made there first (random, mode 0600) when the file does not exist."""
    path = Path(path)
    if path.exists():
        return load_key(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(descriptor, key.hex().encode("ascii") + b"\n")
        os.fsync(descriptor)
    except OSError:
        os.close(descriptor)
        path.unlink(missing_ok=True)  # never leave a half-written key
        raise
    os.close(descriptor)
    return key


def _key_record_mac(key: bytes, table: str, first_id: int) -> str:
    return hmac.new(key, f"chain-start|{table}|{first_id}".encode(), hashlib.sha256).hexdigest()


def ensure_chain_keys(conn: sqlite3.Connection, key: bytes) -> None:
    """Record where each table's keyed chain starts (the next row), once per database, inside
    the caller's transaction; ChainKeyError when the database was keyed with another key."""
    recorded = {r[0]: r[1] for r in conn.execute("SELECT tbl, key_id FROM chain_keys")}
    mine = key_id(key)
    for table in CHAINED_TABLES:
        if table in recorded:
            if recorded[table] != mine:
                raise ChainKeyError(
                    f"the audit database was keyed with key {recorded[table]} but the key "
                    f"file holds key {mine}: use the key file made with this database"
                )
            continue
        first = int(conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]) + 1
        conn.execute(
            "INSERT INTO chain_keys (tbl, first_id, key_id, mac) VALUES (?, ?, ?, ?)",
            (table, first, mine, _key_record_mac(key, table, first)),
        )


def stored_value(value: object, declared_type: str) -> object:
    """The value exactly as SQLite stores and returns it under the column's declared type, so
    the hash computed on insert is the hash recomputed on read (1 in a REAL column reads
    1.0, -0.0 reads 0.0, 2.0 in an INTEGER column reads 2)."""
    value = normalise(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if declared_type == "REAL":
            return float(value) + 0.0
        if declared_type == "INTEGER" and isinstance(value, float) and value.is_integer():
            return int(value)
        if declared_type == "TEXT":
            return repr(value)
    return value


def normalise(value: object) -> object:
    """Values as SQLite will give them back, so hashes recomputed on read match."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return iso(value)
    if hasattr(value, "item"):  # numpy scalars
        return normalise(value.item())
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def last_hash(conn: sqlite3.Connection, table: str) -> str:
    """The hash the next row of `table` chains to."""
    row = conn.execute(f"SELECT row_hash FROM {table} ORDER BY id DESC LIMIT 1").fetchone()
    return row[0] if row else GENESIS_HASH


def verify_table(
    conn: sqlite3.Connection, table: str, key: bytes | None, batch: int = 5000
) -> ChainReport:
    """Recompute `table`'s chain; the report names the first broken row, if any.
    ChainKeyError when the chain is keyed and `key` is missing or another one."""
    first_keyed, broken = _keyed_from(conn, table, key)
    if broken is not None:
        return broken
    columns = COLUMNS[table]
    sql = (
        f"SELECT id, {', '.join(columns)}, prev_hash, row_hash FROM {table} "
        f"WHERE id > ? ORDER BY id LIMIT ?"
    )
    prev, last_id, rows, unkeyed = GENESIS_HASH, 0, 0, 0
    while True:
        chunk = conn.execute(sql, (last_id, batch)).fetchall()
        if not chunk:
            return ChainReport(table, rows, unkeyed=unkeyed)
        for record in chunk:
            keyed = first_keyed is not None and record["id"] >= first_keyed
            if record["prev_hash"] != prev:
                return ChainReport(
                    table,
                    rows,
                    record["id"],
                    "prev_hash does not match the previous row (a row was "
                    "removed or inserted before it)",
                )
            values = [record[c] for c in columns]
            if row_hash(prev, values, key if keyed else None) != record["row_hash"]:
                return ChainReport(
                    table, rows, record["id"], "row content does not match its hash (edited)"
                )
            prev, last_id, rows = record["row_hash"], record["id"], rows + 1
            unkeyed += not keyed


def _keyed_from(
    conn: sqlite3.Connection, table: str, key: bytes | None
) -> tuple[int | None, ChainReport | None]:
    """(first keyed row id or None for a wholly unkeyed table, a report when the key record
    itself is missing or forged)."""
    if not _has_table(conn, "chain_keys"):
        return None, None  # a database from before keyed chains
    record = conn.execute(
        "SELECT first_id, key_id, mac FROM chain_keys WHERE tbl = ?", (table,)
    ).fetchone()
    if record is None:
        return None, ChainReport(
            table, 0, 1, "the record of where its keyed chain starts is missing from chain_keys"
        )
    first_id, recorded_id, mac = int(record[0]), str(record[1]), str(record[2])
    if key is None:
        raise ChainKeyError(
            f"this database's chains are keyed (key {recorded_id}): verify needs its key "
            "file; pass --key with the path of your copy"
        )
    if key_id(key) != recorded_id:
        raise ChainKeyError(
            f"the key given is key {key_id(key)}, but this database was keyed with key "
            f"{recorded_id}: use the key file made with this database"
        )
    if not hmac.compare_digest(_key_record_mac(key, table, first_id), mac):
        return None, ChainReport(
            table, 0, first_id, "the record of where its keyed chain starts was forged"
        )
    return first_id, None


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


def heads(conn: sqlite3.Connection) -> dict[str, tuple[int, str]]:
    """Each chained table's last row: (id, row_hash). Kept outside the database (the log, an
    alert), they reveal rows later removed from the end, which no chain can."""
    found = {}
    for table in CHAINED_TABLES:
        row = conn.execute(f"SELECT id, row_hash FROM {table} ORDER BY id DESC LIMIT 1").fetchone()
        if row is not None:
            found[table] = (int(row[0]), str(row[1]))
    return found


def missing_heads(
    conn: sqlite3.Connection, recorded: Mapping[str, tuple[int, str]]
) -> list[tuple[str, str]]:
    """What is wrong with heads recorded earlier, as (TRUNCATED or REWRITTEN, what): a row
    gone, or a row that is no longer the one recorded."""
    problems = []
    for table, (row_id, digest) in recorded.items():
        if table not in CHAINED_TABLES:
            continue
        row = conn.execute(f"SELECT row_hash FROM {table} WHERE id = ?", (row_id,)).fetchone()
        if row is None:
            problems.append(
                (
                    "TRUNCATED",
                    f"{table}: row {row_id}, recorded as the head, is gone "
                    "(rows were removed from the end)",
                )
            )
        elif not str(row[0]).startswith(digest):
            problems.append(
                (
                    "REWRITTEN",
                    f"{table}: row {row_id} no longer has the hash recorded for it (the "
                    "chain up to it was rewritten)",
                )
            )
    return problems


HEADS_LOG_PREFIX = "audit chain heads "


def head_text(table: str, row_id: int, digest: str) -> str:
    """A head as `--expect` takes it: table:id:first 16 hex digits of the hash."""
    return f"{table}:{row_id}:{digest[:16]}"


def recorded_heads(logs: list[Path], expected: list[str]) -> dict[str, tuple[int, str]]:
    """The latest head per table from the trader's logs, then the --expect ones."""
    heads: dict[str, tuple[int, str]] = {}
    for log in logs:
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            message = _log_message(line)
            if message.startswith(HEADS_LOG_PREFIX):
                for table, (row_id, digest) in json.loads(message[len(HEADS_LOG_PREFIX) :]).items():
                    if row_id >= heads.get(table, (0, ""))[0]:
                        heads[table] = (int(row_id), str(digest))
    for text in expected:
        table, _, rest = text.partition(":")
        row_id, _, digest = rest.partition(":")
        if not (table and row_id.isdigit() and digest):
            raise ValueError(f"--expect {text!r}: give TABLE:ID:HASH, e.g. orders:42:3fa9c0...")
        heads[table] = (int(row_id), digest)
    return heads


def _log_message(line: str) -> str:
    try:
        entry = json.loads(line)
    except ValueError:
        return ""
    return str(entry.get("message", "")) if isinstance(entry, dict) else ""
