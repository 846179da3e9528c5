"""The audit logger: the only writer of the audit database (every insert goes through it).
`python -m live.audit_logger verify|query DB` runs `audit_cli`.

Rows are appended to the append-only, hash-chained tables of `audit_schema`; `audit_chain`
makes and checks the hashes; `audit_reader` holds the queries. When a write fails (a full
disk, a lock held too long) the logger is in an *outage*: rows that must not wait (`fallback`:
the records of exits, kill-switch changes) go to the fallback journal (`audit_journal`), other
writes fail at once without touching the database, and only `probe()` tries the database
again; when it succeeds, the journal's rows are moved in, in order, and the outage is over.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from live.audit_chain import (
    ChainKeyError,
    ChainReport,
    ensure_chain_keys,
    key_file_for,
    last_hash,
    load_or_create_key,
    row_hash,
    stored_value,
)
from live.audit_cli import main
from live.audit_journal import FallbackJournal
from live.audit_reader import AuditReader
from live.audit_schema import COLUMNS, connect, failure_text, iso, migrate, utc_now
from live.errors import AuditWriteError

__all__ = ["AuditLogger", "Outage", "main"]

logger = logging.getLogger(__name__)


@dataclass
class Outage:
    """The database has refused writes since `since` (the rows' clock), with `error`."""

    since: datetime
    error: str
    failed_writes: int = 0


class AuditLogger:
    """Writes the audit trail. A failure to write raises AuditWriteError, unless the row was
    kept in the fallback journal (`fallback=True`).

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
        self.outage: Outage | None = None
        self.journal = self._open_journal()

    def _open_journal(self) -> FallbackJournal:
        """The journal, made now while there is room; rows a crash left in it move in now."""
        path = Path(f"{self.path}.journal")
        try:
            journal = FallbackJournal(path)
        except OSError as exc:
            raise AuditWriteError(
                f"cannot create the fallback journal {path}: {failure_text(path, exc)}"
            ) from None
        if journal.records:
            try:
                moved = self._move_journal(journal)
            except (sqlite3.Error, OSError) as exc:
                raise AuditWriteError(
                    f"{len(journal.records)} rows of the fallback journal {path} cannot be moved "
                    f"into {self.path}: {failure_text(self.path, exc)}"
                ) from exc
            logger.warning("moved %d rows of the fallback journal into %s", moved, self.path)
        return journal

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
        if getattr(self, "journal", None) is not None:
            self.journal.close()

    # ------------------------------------------------------------ writing

    def insert(self, table: str, row: Mapping[str, object], *, fallback: bool = False) -> int:
        """Append one row (missing columns are NULL, ts defaults to now); returns its id, or 0
        when the database refused it and it went to the fallback journal (`fallback`)."""
        if self.outage is None:
            try:
                return self.insert_many(table, [row])[-1]
            except AuditWriteError as exc:
                self.outage = Outage(self._now(), str(exc))
                if not fallback:
                    raise
        self.outage.failed_writes += 1
        if not fallback:
            raise AuditWriteError(
                f"audit database {self.path} unwritable since {iso(self.outage.since)} "
                f"({self.outage.error}): {table} row not written"
            )
        return self._journal(table, row)

    def _journal(self, table: str, row: Mapping[str, object]) -> int:
        values = {column: stored_value(value, "") for column, value in row.items()}
        values.setdefault("ts", iso(self._now()))
        try:
            self.journal.append({"table": table, "row": values})
        except OSError as exc:  # JournalFull, or a disk that refuses even that
            raise AuditWriteError(
                f"audit database {self.path} unwritable and the fallback journal too: {exc}"
            ) from exc
        logger.warning(
            "%s row kept in the fallback journal %s (the audit database cannot be written)",
            table,
            self.journal.path,
        )
        return 0

    def probe(self) -> bool:
        """During an outage, try the database: move the journal's rows in and record that it
        is writable again, in one transaction. True when that worked (the outage is over)."""
        if self.outage is None:
            return True
        outage = self.outage
        try:
            moved = self._move_journal(
                self.journal,
                then=(
                    "events",
                    {
                        "level": "warning",
                        "kind": "audit_recovered",
                        "message": "audit database writable again",
                        "data": json.dumps(
                            {
                                "since": iso(outage.since),
                                "failed_writes": outage.failed_writes,
                                "error": outage.error,
                            }
                        ),
                    },
                ),
            )
        except (sqlite3.Error, OSError) as exc:
            outage.error = failure_text(self.path, exc)
            return False
        self.outage = None
        if moved:
            logger.warning("moved %d rows of the fallback journal into %s", moved, self.path)
        return True

    def latest_order(self, client_order_id: str) -> dict[str, object] | None:
        """The latest row of an order, the fallback journal's included."""
        for record in reversed(self.journal.records):
            row = record["row"]
            if record["table"] == "orders" and row.get("client_order_id") == client_order_id:
                return {column: row.get(column) for column in ("id", *COLUMNS["orders"])}
        return self.reader.latest_order(client_order_id)

    def _move_journal(
        self, journal: FallbackJournal, then: tuple[str, Mapping[str, object]] | None = None
    ) -> int:
        """Insert the journal's rows (those not in the database already: a crash may have
        come between the insert and the clearing) and `then`, in one transaction; then clear
        the journal. Returns how many rows moved."""
        moved = 0
        with self._write() as conn:
            for record in journal.records:
                table, row = record["table"], record["row"]
                if not self._present(conn, table, row):
                    self._insert_rows(conn, table, [row])
                    moved += 1
            if then is not None:
                self._insert_rows(conn, then[0], [then[1]])
        journal.clear()
        return moved

    def _present(self, conn: sqlite3.Connection, table: str, row: Mapping[str, object]) -> bool:
        types = self._declared_types(conn, table)
        names = [c for c in row if c in types]
        where = " AND ".join(f"{c} IS ?" for c in names)
        values = [stored_value(row[c], types[c]) for c in names]
        return (
            conn.execute(f"SELECT 1 FROM {table} WHERE {where} LIMIT 1", values).fetchone()
            is not None
        )

    def insert_many(self, table: str, rows: list[Mapping[str, object]]) -> list[int]:
        """Append rows in one transaction, chaining their hashes; returns their ids."""
        try:
            with self._write() as conn:
                return self._insert_rows(conn, table, rows)
        except (sqlite3.Error, OSError) as exc:
            raise AuditWriteError(
                f"audit write to {table} in {self.path} failed: {failure_text(self.path, exc)}"
            ) from exc

    def _insert_rows(
        self, conn: sqlite3.Connection, table: str, rows: list[Mapping[str, object]]
    ) -> list[int]:
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
        fallback: bool = False,
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
            fallback=fallback,
        )

    def record_order(
        self,
        *,
        client_order_id: str,
        status: str,
        symbol: str,
        dry_run: bool,
        fallback: bool = False,
        **fields: object,
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
            fallback=fallback,
        )

    def record_trade(
        self, *, symbol: str, position_ticket: int, dry_run: bool, **fields: object
    ) -> int | None:
        """A closed round trip, or a partial exit of a position (one row per exit). Recording
        the same exit twice is ignored (returns None)."""
        exit_key = tuple(
            str(stored_value(fields.get(name), "TEXT"))
            for name in ("exit_time", "exit_client_order_id")
        )
        if "exit_time" in fields and "exit_client_order_id" in fields:
            if exit_key in self.reader.recorded_exits(position_ticket, dry_run):
                return None
        elif self.reader.trade_for_position(position_ticket, dry_run) is not None:
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
        fallback: bool = False,
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
            fallback=fallback,
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


def _remove_database(path: Path) -> None:
    """A database file and its WAL companions, which SQLite needs removed together."""
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        name.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
