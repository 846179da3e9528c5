"""The audit tables' hash chains: how a row's hash is made, verifying a chain, and the chain
heads kept outside the database (the trader's log, the shutdown alert).

Every row stores the hash of the previous row of its table and its own hash,
sha256(prev_hash + canonical JSON of its values), so editing, inserting or removing a row in
the middle breaks the chain. A chain cannot show rows cut from its end; the heads recorded
elsewhere can (`missing_heads`).
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from live.audit_schema import CHAINED_TABLES, COLUMNS, iso

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class ChainReport:
    """Result of verifying one table's hash chain."""

    table: str
    rows: int
    broken_id: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_id is None


def row_hash(prev_hash: str, values: Iterable[object]) -> str:
    """The chain hash of one row: sha256 over the previous hash and the row's values as JSON."""
    payload = json.dumps(list(values), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + payload).encode("utf-8")).hexdigest()


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


def verify_table(conn: sqlite3.Connection, table: str, batch: int = 5000) -> ChainReport:
    """Recompute `table`'s chain; the report names the first broken row, if any."""
    columns = COLUMNS[table]
    sql = (
        f"SELECT id, {', '.join(columns)}, prev_hash, row_hash FROM {table} "
        f"WHERE id > ? ORDER BY id LIMIT ?"
    )
    prev, last_id, rows = GENESIS_HASH, 0, 0
    while True:
        chunk = conn.execute(sql, (last_id, batch)).fetchall()
        if not chunk:
            return ChainReport(table, rows)
        for record in chunk:
            values = [record[c] for c in columns]
            if record["prev_hash"] != prev:
                return ChainReport(
                    table,
                    rows,
                    record["id"],
                    "prev_hash does not match the previous row (a row was "
                    "removed or inserted before it)",
                )
            if row_hash(prev, values) != record["row_hash"]:
                return ChainReport(
                    table, rows, record["id"], "row content does not match its hash (edited)"
                )
            prev, last_id, rows = record["row_hash"], record["id"], rows + 1


def heads(conn: sqlite3.Connection) -> dict[str, tuple[int, str]]:
    """Each chained table's last row: (id, row_hash). Kept outside the database (the log, an
    alert), they reveal rows later removed from the end, which no chain can."""
    found = {}
    for table in CHAINED_TABLES:
        row = conn.execute(f"SELECT id, row_hash FROM {table} ORDER BY id DESC LIMIT 1").fetchone()
        if row is not None:
            found[table] = (int(row[0]), str(row[1]))
    return found


def missing_heads(conn: sqlite3.Connection, recorded: Mapping[str, tuple[int, str]]) -> list[str]:
    """What is wrong with heads recorded earlier: a row gone or different."""
    problems = []
    for table, (row_id, digest) in recorded.items():
        if table not in CHAINED_TABLES:
            continue
        row = conn.execute(f"SELECT row_hash FROM {table} WHERE id = ?", (row_id,)).fetchone()
        if row is None:
            problems.append(
                f"{table}: row {row_id}, recorded as the head, is gone "
                "(rows were removed from the end)"
            )
        elif not str(row[0]).startswith(digest):
            problems.append(f"{table}: row {row_id} is not the row recorded as the head")
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
