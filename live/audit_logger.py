"""The audit logger: the only writer of the audit database (every insert goes through it),
and the command line `python -m live.audit_logger verify|query DB`.

Rows are appended to the append-only, hash-chained tables of `audit_schema`; `audit_chain`
makes and checks the hashes; `audit_reader` holds the queries.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from live.audit_chain import (
    ChainKeyError,
    ChainReport,
    ensure_chain_keys,
    head_text,
    key_file_for,
    last_hash,
    load_key,
    load_or_create_key,
    recorded_heads,
    row_hash,
    stored_value,
)
from live.audit_reader import AuditReader
from live.audit_schema import COLUMNS, connect, failure_text, iso, migrate, utc_now
from live.errors import AuditWriteError

__all__ = ["AuditLogger", "main"]

logger = logging.getLogger(__name__)


class AuditLogger:
    """Writes the audit trail. Every failure to write raises AuditWriteError.

    One connection per thread (the trading loop and the alert worker both write). `now` is
    injectable so tests control timestamps.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        key_file: str | Path | None = None,
        now: Callable[[], datetime] = utc_now,
        busy_timeout_s: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self.key_file = Path(key_file) if key_file else key_file_for(self.path)
        self._now = now
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._types: dict[str, dict[str, str]] = {}
        self._key = self._open_key()
        try:
            if not self.path.exists():
                self._create_aside()
            self.schema_version = migrate(self._conn(), finish=self._keyed)
        except ChainKeyError as exc:
            raise AuditWriteError(str(exc)) from None
        except (sqlite3.Error, OSError) as exc:
            raise AuditWriteError(
                f"cannot open audit database {self.path}: {failure_text(self.path, exc)}"
            ) from exc
        self.reader = AuditReader(self.path, connection_factory=self._conn)

    def _open_key(self) -> bytes:
        try:
            return load_or_create_key(self.key_file)
        except ChainKeyError as exc:
            raise AuditWriteError(str(exc)) from None
        except OSError as exc:
            raise AuditWriteError(
                f"cannot create the audit chain key {self.key_file}: "
                f"{failure_text(self.key_file, exc)}"
            ) from None

    def verify(self) -> list[ChainReport]:
        """Verify every chain with this logger's key (see `AuditReader.verify`)."""
        return self.reader.verify(self._key)

    def _keyed(self, conn: sqlite3.Connection) -> None:
        ensure_chain_keys(conn, self._key)

    def _create_aside(self) -> None:
        """Build a new database under another name and rename it into place once whole, so a
        failure (a full disk) leaves either no database or a complete one, never half."""
        aside = self.path.with_name(f"{self.path.name}.new-{os.getpid()}")
        _remove_database(aside)
        try:
            # a rollback journal while building: once committed, the file alone is whole
            conn = connect(aside, busy_timeout_s=self._busy_timeout_s, wal=False)
            try:
                migrate(conn, finish=self._keyed)
            finally:
                conn.close()
            os.replace(aside, self.path)
        except BaseException:
            _remove_database(aside)
            raise

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, busy_timeout_s=self._busy_timeout_s)
            self._local.conn = conn
        return conn

    def use_clock(self, now: Callable[[], datetime]) -> None:
        """Stamp rows with this clock from now on (the trader's market clock, so a replay's
        rows carry the replayed time and daily limits count in it)."""
        self._now = now

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ------------------------------------------------------------ writing

    def insert(self, table: str, row: Mapping[str, object]) -> int:
        """Append one row (missing columns are NULL, ts defaults to now); returns its id."""
        return self.insert_many(table, [row])[-1]

    def insert_many(self, table: str, rows: list[Mapping[str, object]]) -> list[int]:
        """Append rows in one transaction, chaining their hashes; returns their ids."""
        columns = COLUMNS.get(table)
        if columns is None:
            raise ValueError(f"unknown audit table {table!r}")
        unknown = {key for row in rows for key in row} - set(columns)
        if unknown:
            raise ValueError(f"unknown columns for {table}: {sorted(unknown)}")
        placeholders = ", ".join("?" * (len(columns) + 2))
        sql = (
            f"INSERT INTO {table} ({', '.join(columns)}, prev_hash, row_hash) "
            f"VALUES ({placeholders})"
        )
        try:
            with self._write() as conn:
                prev = last_hash(conn, table)
                ids = []
                types = self._declared_types(conn, table)
                for row in rows:
                    values = [stored_value(row.get(c), types[c]) for c in columns]
                    if values[0] is None:
                        values[0] = iso(self._now())
                    digest = row_hash(prev, values, self._key)
                    ids.append(conn.execute(sql, (*values, prev, digest)).lastrowid)
                    prev = digest
            return ids
        except (sqlite3.Error, OSError) as exc:
            raise AuditWriteError(
                f"audit write to {table} in {self.path} failed: {failure_text(self.path, exc)}"
            ) from exc

    def _declared_types(self, conn: sqlite3.Connection, table: str) -> dict[str, str]:
        types = self._types.get(table)
        if types is None:
            types = {row[1]: row[2].upper() for row in conn.execute(f"PRAGMA table_info({table})")}
            self._types[table] = types
        return types

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")  # take the write lock before reading the chain head
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def record_signal(
        self,
        *,
        symbol: str,
        bar_time: datetime,
        action: str,
        outcome: str,
        timeframe: str = "",
        strategy: str = "",
        position: int | None = None,
        entry: bool = False,
        detail: str = "",
        client_order_id: str | None = None,
    ) -> int:
        """One decision of the strategy on one closed bar and what became of it."""
        return self.insert(
            "signals",
            {
                "symbol": symbol,
                "timeframe": timeframe,
                "bar_time": bar_time,
                "strategy": strategy,
                "position": position,
                "entry": entry,
                "action": action,
                "outcome": outcome,
                "detail": detail,
                "client_order_id": client_order_id,
            },
        )

    def record_order(
        self, *, client_order_id: str, status: str, symbol: str, dry_run: bool, **fields: object
    ) -> int:
        """One step in an order's life (intent, sent, filled, rejected, ...)."""
        return self.insert(
            "orders",
            {
                "client_order_id": client_order_id,
                "status": status,
                "symbol": symbol,
                "dry_run": dry_run,
                **fields,
            },
        )

    def record_trade(
        self, *, symbol: str, position_ticket: int, dry_run: bool, **fields: object
    ) -> int | None:
        """A closed round trip. Recording the same position twice is ignored (returns None)."""
        if self.reader.trade_for_position(position_ticket, dry_run) is not None:
            return None
        return self.insert(
            "trades",
            {"symbol": symbol, "position_ticket": position_ticket, "dry_run": dry_run, **fields},
        )

    def record_event(
        self,
        kind: str,
        message: str = "",
        *,
        level: str = "info",
        symbol: str | None = None,
        data: Mapping[str, object] | None = None,
    ) -> int:
        """Something that happened: startup, kill switch, reconnect, error, heartbeat, ..."""
        return self.insert(
            "events",
            {
                "level": level,
                "kind": kind,
                "symbol": symbol,
                "message": message,
                "data": json.dumps(data, default=str) if data else None,
            },
        )

    def record_alert(self, *, channel: str, kind: str, severity: str, text: str) -> int:
        """Queue an alert for one channel (kept until a delivery row says it is done)."""
        return self._plain_insert(
            "INSERT INTO alerts (ts, channel, kind, severity, text) VALUES (?, ?, ?, ?, ?)",
            (iso(self._now()), channel, kind, severity, text),
        )

    def record_alert_delivery(
        self, alert_id: int, *, status: str, attempts: int, detail: str = ""
    ) -> int:
        """An attempt's outcome: delivered, failed (will retry) or dropped (given up)."""
        return self._plain_insert(
            "INSERT INTO alert_deliveries (alert_id, ts, status, attempts, detail) "
            "VALUES (?, ?, ?, ?, ?)",
            (alert_id, iso(self._now()), status, attempts, detail),
        )

    def _plain_insert(self, sql: str, params: tuple[object, ...]) -> int:
        try:
            with self._write() as conn:
                return int(conn.execute(sql, params).lastrowid)
        except (sqlite3.Error, OSError) as exc:
            raise AuditWriteError(f"audit write failed: {exc}") from exc

    def record_snapshot(
        self,
        *,
        balance: float,
        equity: float,
        margin: float,
        margin_free: float,
        margin_level: float,
        profit: float,
        open_positions: int,
        dry_run: bool,
    ) -> int:
        return self.insert(
            "account_snapshots",
            {
                "balance": balance,
                "equity": equity,
                "margin": margin,
                "margin_free": margin_free,
                "margin_level": margin_level,
                "profit": profit,
                "open_positions": open_positions,
                "dry_run": dry_run,
            },
        )


def main(argv: list[str] | None = None) -> int:
    """`python -m live.audit_logger verify DB` (exit 1 when a chain is broken) and
    `python -m live.audit_logger query DB SQL` (read-only; exit 2 on a bad query)."""
    parser = argparse.ArgumentParser(
        prog="python -m live.audit_logger", description="Audit database tools."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="check the hash chains of every audit table")
    verify.add_argument("db", type=Path)
    verify.add_argument(
        "--key",
        type=Path,
        metavar="FILE",
        help="the chain key the database was written with (default: DB.key beside it)",
    )
    verify.add_argument(
        "--anchor",
        type=Path,
        action="append",
        default=[],
        metavar="LOG",
        help="the trader's log (logs/live_trader.log, repeatable for rotated "
        "ones): every chain head it recorded must still be in the DB",
    )
    verify.add_argument(
        "--expect",
        action="append",
        default=[],
        metavar="TABLE:ID:HASH",
        help="a chain head as the shutdown alert gives it (repeatable)",
    )
    query = commands.add_parser("query", help="run a read-only SQL query, print the rows")
    query.add_argument("db", type=Path)
    query.add_argument("sql")
    args = parser.parse_args(argv)
    try:
        reader = AuditReader(args.db)
        if args.command == "query":
            _print_rows(reader.query(args.sql))
            return 0
        key = load_key(args.key) if args.key else _verify_key(key_file_for(args.db))
        reports = reader.verify(key)
        recorded = recorded_heads(args.anchor, args.expect)
        problems = reader.missing_heads(recorded)
        heads = reader.heads()
    except (FileNotFoundError, sqlite3.Error, ValueError) as exc:  # ChainKeyError included
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_reports(reports, heads)
    for kind, problem in problems:
        print(f"{kind:<10} {problem}")
    if recorded and not problems:
        print(f"recorded heads: all {len(recorded)} still in place")
    return 0 if all(r.ok for r in reports) and not problems else 1


def _verify_key(path: Path) -> bytes | None:
    """The key to verify with; None when there is no key file (an older, unkeyed database
    verifies without one; a keyed one then says it needs it)."""
    return load_key(path) if path.exists() else None


def _print_reports(reports: list, heads: dict[str, tuple[int, str]]) -> None:
    for report in reports:
        if report.ok:
            row_id, digest = heads.get(report.table, (0, ""))
            head = f", head {head_text(report.table, row_id, digest)}" if row_id else ""
            print(f"{report.table:<18} ok      {report.rows} rows{head}")
        else:
            print(
                f"{report.table:<18} BROKEN  at id {report.broken_id} after {report.rows} "
                f"good rows: {report.reason}"
            )
        if report.unkeyed:
            print(
                f"{'':<18} note    its first {report.unkeyed} rows were written before keyed "
                "chains (plain SHA-256): anyone could rewrite those and their chain"
            )


def _print_rows(rows: list[dict[str, object]]) -> None:
    if not rows:
        print("(no rows)")
        return
    columns = list(rows[0])
    cells = [[("" if row[c] is None else str(row[c])) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def _remove_database(path: Path) -> None:
    """A database file and its WAL companions, which SQLite needs removed together."""
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        name.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
