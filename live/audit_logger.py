"""The SQLite audit log: the only module that writes SQL (tables, migrations, inserts, queries).

Tables signals, orders, trades, events and account_snapshots are append-only (triggers refuse
UPDATE and DELETE) and tamper-evident: every row stores the hash of the previous row of its
table and its own hash, sha256(prev_hash + canonical JSON of its values), so editing, inserting
or removing a row in the middle breaks the chain. `python -m live.audit_logger verify DB`
reports the first broken link. An order's life is a sequence of rows (intent, sent, filled,
...) sharing one client_order_id; its state is its latest row.

The database runs in WAL mode, so the dashboard can read while the trader writes. Writes go
through `AuditLogger`; `AuditReader` opens the file read-only for the dashboard and tools.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from live.errors import AuditWriteError

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
CHAINED_TABLES = ("signals", "orders", "trades", "events", "account_snapshots")

# Column order is part of each row's hash: append new columns at the end, never reorder.
COLUMNS: dict[str, tuple[str, ...]] = {
    "signals": (
        "ts",
        "symbol",
        "timeframe",
        "bar_time",
        "strategy",
        "position",
        "entry",
        "action",
        "outcome",
        "detail",
        "client_order_id",
    ),
    "orders": (
        "ts",
        "client_order_id",
        "status",
        "symbol",
        "side",
        "kind",
        "volume",
        "price",
        "sl",
        "tp",
        "position_ticket",
        "attempt",
        "retcode",
        "broker_order",
        "broker_deal",
        "fill_price",
        "fill_volume",
        "comment",
        "detail",
        "dry_run",
    ),
    "trades": (
        "ts",
        "symbol",
        "direction",
        "volume",
        "entry_time",
        "entry_price",
        "exit_time",
        "exit_price",
        "pnl",
        "commission",
        "swap",
        "exit_reason",
        "position_ticket",
        "entry_client_order_id",
        "exit_client_order_id",
        "dry_run",
    ),
    "events": ("ts", "level", "kind", "symbol", "message", "data"),
    "account_snapshots": (
        "ts",
        "balance",
        "equity",
        "margin",
        "margin_free",
        "margin_level",
        "profit",
        "open_positions",
        "dry_run",
    ),
}

# Order statuses after which nothing more happens to that client_order_id.
FINAL_ORDER_STATUSES = frozenset(
    {
        "filled",
        "partial",
        "placed",
        "rejected",
        "failed",
        "reconciled_filled",
        "reconciled_absent",
        "dry_filled",
        "dry_rejected",
        "not_needed",
    }
)
FILLED_ORDER_STATUSES = frozenset({"filled", "partial", "reconciled_filled", "dry_filled"})

_CHAIN_COLUMNS = "prev_hash TEXT NOT NULL, row_hash TEXT NOT NULL"

MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "001_audit_tables",
        f"""
        CREATE TABLE signals (
            id INTEGER PRIMARY KEY, ts TEXT NOT NULL, symbol TEXT NOT NULL, timeframe TEXT,
            bar_time TEXT NOT NULL, strategy TEXT, position INTEGER, entry INTEGER,
            action TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT, client_order_id TEXT,
            {_CHAIN_COLUMNS});
        CREATE INDEX signals_symbol_bar ON signals (symbol, bar_time);
        CREATE INDEX signals_ts ON signals (ts);
        CREATE TABLE orders (
            id INTEGER PRIMARY KEY, ts TEXT NOT NULL, client_order_id TEXT NOT NULL,
            status TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT, kind TEXT, volume REAL,
            price REAL, sl REAL, tp REAL, position_ticket INTEGER, attempt INTEGER,
            retcode INTEGER, broker_order INTEGER, broker_deal INTEGER, fill_price REAL,
            fill_volume REAL, comment TEXT, detail TEXT, dry_run INTEGER NOT NULL,
            {_CHAIN_COLUMNS});
        CREATE INDEX orders_cid ON orders (client_order_id);
        CREATE INDEX orders_ts ON orders (ts);
        CREATE INDEX orders_symbol ON orders (symbol, ts);
        CREATE TABLE trades (
            id INTEGER PRIMARY KEY, ts TEXT NOT NULL, symbol TEXT NOT NULL, direction TEXT,
            volume REAL, entry_time TEXT, entry_price REAL, exit_time TEXT, exit_price REAL,
            pnl REAL, commission REAL, swap REAL, exit_reason TEXT, position_ticket INTEGER,
            entry_client_order_id TEXT, exit_client_order_id TEXT, dry_run INTEGER NOT NULL,
            {_CHAIN_COLUMNS});
        CREATE INDEX trades_exit_time ON trades (exit_time);
        CREATE INDEX trades_symbol ON trades (symbol, exit_time);
        CREATE UNIQUE INDEX trades_position ON trades (position_ticket, dry_run);
        CREATE TABLE events (
            id INTEGER PRIMARY KEY, ts TEXT NOT NULL, level TEXT NOT NULL, kind TEXT NOT NULL,
            symbol TEXT, message TEXT, data TEXT, {_CHAIN_COLUMNS});
        CREATE INDEX events_kind_ts ON events (kind, ts);
        CREATE INDEX events_ts ON events (ts);
        CREATE TABLE account_snapshots (
            id INTEGER PRIMARY KEY, ts TEXT NOT NULL, balance REAL, equity REAL, margin REAL,
            margin_free REAL, margin_level REAL, profit REAL, open_positions INTEGER,
            dry_run INTEGER NOT NULL, {_CHAIN_COLUMNS});
        CREATE INDEX account_snapshots_ts ON account_snapshots (ts);
    """
        + "".join(
            f"""
        CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
            BEGIN SELECT RAISE(ABORT, 'audit table {table} is append-only'); END;
        CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
            BEGIN SELECT RAISE(ABORT, 'audit table {table} is append-only'); END;"""
            for table in CHAINED_TABLES
        ),
    ),
    (
        "002_alert_outbox",
        """
        CREATE TABLE alerts (
            id INTEGER PRIMARY KEY, ts TEXT NOT NULL, channel TEXT NOT NULL, kind TEXT NOT NULL,
            severity TEXT NOT NULL, text TEXT NOT NULL);
        CREATE INDEX alerts_channel ON alerts (channel, id);
        CREATE TABLE alert_deliveries (
            id INTEGER PRIMARY KEY, alert_id INTEGER NOT NULL REFERENCES alerts (id),
            ts TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL, detail TEXT);
        CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert_id);
    """,
    ),
    (
        "003_paging_indexes",
        """
        CREATE INDEX events_kind_id ON events (kind, id);
        CREATE INDEX events_level_id ON events (level, id);
        CREATE INDEX orders_symbol_id ON orders (symbol, id);
        CREATE INDEX signals_symbol_id ON signals (symbol, id);
        CREATE INDEX trades_dry_run_id ON trades (dry_run, id);
    """,
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
# Alert delivery outcomes after which an alert is no longer waiting to be sent.
ALERT_FINAL_STATUSES = ("delivered", "dropped")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    """UTC ISO-8601 with milliseconds: sorts as text in time order."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given to the audit log; use UTC-aware datetimes")
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def row_hash(prev_hash: str, values: Iterable[object]) -> str:
    """The chain hash of one row: sha256 over the previous hash and the row's values as JSON."""
    payload = json.dumps(list(values), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + payload).encode("utf-8")).hexdigest()


def _stored(value: object, declared_type: str) -> object:
    """The value exactly as SQLite stores and returns it under the column's declared type, so
    the hash computed on insert is the hash recomputed on read (1 in a REAL column reads
    1.0, -0.0 reads 0.0, 2.0 in an INTEGER column reads 2)."""
    value = _normalise(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if declared_type == "REAL":
            return float(value) + 0.0
        if declared_type == "INTEGER" and isinstance(value, float) and value.is_integer():
            return int(value)
        if declared_type == "TEXT":
            return repr(value)
    return value


def _normalise(value: object) -> object:
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
        return _normalise(value.item())
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def connect(
    path: Path, *, read_only: bool = False, busy_timeout_s: float = 5.0
) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with WAL and foreign keys."""
    if read_only:
        uri = f"file:{Path(path).resolve().as_posix()}?mode=ro"
        conn = sqlite3.connect(
            uri, uri=True, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA query_only = ON")
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    conn.row_factory = sqlite3.Row
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations not yet recorded; returns the schema version."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
    for name, sql in MIGRATIONS:
        if name in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                (name, iso(utc_now())),
            )
            conn.execute(f"PRAGMA user_version = {len(done) + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        done.add(name)
        logger.info("audit database migrated: %s", name)
    known = {name for name, _ in MIGRATIONS}
    if done - known:
        raise AuditWriteError(
            f"audit database has migrations this version does not know: {sorted(done - known)}"
        )
    return len(done)


def _statements(sql: str) -> Iterator[str]:
    """Split a migration script on statement ends, keeping trigger bodies whole."""
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                yield buffer.strip()
            buffer = ""
    if buffer.strip():
        yield buffer.strip()


class AuditLogger:
    """Writes the audit trail. Every failure to write raises AuditWriteError.

    One connection per thread (the trading loop and the alert worker both write). `now` is
    injectable so tests control timestamps.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        now: Callable[[], datetime] = utc_now,
        busy_timeout_s: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self._now = now
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._types: dict[str, dict[str, str]] = {}
        try:
            self.schema_version = migrate(self._conn())
        except (sqlite3.Error, OSError) as exc:
            raise AuditWriteError(f"cannot open audit database {self.path}: {exc}") from exc
        self.reader = AuditReader(self.path, connection_factory=self._conn)

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
                prev = _last_hash(conn, table)
                ids = []
                types = self._declared_types(conn, table)
                for row in rows:
                    values = [_stored(row.get(c), types[c]) for c in columns]
                    if values[0] is None:
                        values[0] = iso(self._now())
                    digest = row_hash(prev, values)
                    ids.append(conn.execute(sql, (*values, prev, digest)).lastrowid)
                    prev = digest
            return ids
        except (sqlite3.Error, OSError) as exc:
            raise AuditWriteError(f"audit write to {table} in {self.path} failed: {exc}") from exc

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


def _last_hash(conn: sqlite3.Connection, table: str) -> str:
    row = conn.execute(f"SELECT row_hash FROM {table} ORDER BY id DESC LIMIT 1").fetchone()
    return row[0] if row else GENESIS_HASH


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


@dataclass
class _TradeTally:
    """Running totals of trade P/L, extended row by row."""

    last_id: int = 0
    count: int = 0
    wins: int = 0
    losses: int = 0
    gross_win: float = 0.0
    gross_loss: float = 0.0
    running: float = 0.0
    peak: float = 0.0
    drawdown: float = 0.0

    def add(self, trade_id: int, pnl: float) -> None:
        self.last_id, self.count = trade_id, self.count + 1
        if pnl > 0:
            self.wins, self.gross_win = self.wins + 1, self.gross_win + pnl
        elif pnl < 0:
            self.losses, self.gross_loss = self.losses + 1, self.gross_loss - pnl
        self.running += pnl
        self.peak = max(self.peak, self.running)
        self.drawdown = min(self.drawdown, self.running - self.peak)

    def summary(self) -> dict[str, object]:
        return {
            "count": self.count,
            "wins": self.wins,
            "losses": self.losses,
            "win_rate_pct": 100.0 * self.wins / self.count if self.count else None,
            "profit_factor": self.gross_win / self.gross_loss if self.gross_loss else None,
            "net_pnl": round(self.running, 2),
            "max_drawdown": round(self.drawdown, 2),
        }


class AuditReader:
    """Queries over the audit database. Opened read-only unless given the writer's connection."""

    def __init__(
        self, path: str | Path, connection_factory: Callable[[], sqlite3.Connection] | None = None
    ) -> None:
        self.path = Path(path)
        self._summaries: dict[bool | None, _TradeTally] = {}
        self._summary_lock = threading.Lock()
        if connection_factory is None:
            if not self.path.is_file():
                raise FileNotFoundError(f"audit database not found: {self.path}")
            local = threading.local()

            def factory() -> sqlite3.Connection:
                conn = getattr(local, "conn", None)
                if conn is None:
                    conn = local.conn = connect(self.path, read_only=True)
                return conn

            connection_factory = factory
        self._conn = connection_factory

    def query(self, sql: str, params: Iterable[object] = ()) -> list[dict[str, object]]:
        return [dict(row) for row in self._conn().execute(sql, tuple(params))]

    def _one(self, sql: str, params: Iterable[object] = ()) -> dict[str, object] | None:
        row = self._conn().execute(sql, tuple(params)).fetchone()
        return dict(row) if row else None

    # ------------------------------------------------------------ orders

    def order_rows(self, client_order_id: str) -> list[dict[str, object]]:
        return self.query(
            "SELECT * FROM orders WHERE client_order_id = ? ORDER BY id", (client_order_id,)
        )

    def latest_order(self, client_order_id: str) -> dict[str, object] | None:
        return self._one(
            "SELECT * FROM orders WHERE client_order_id = ? ORDER BY id DESC LIMIT 1",
            (client_order_id,),
        )

    def unresolved_orders(self) -> list[dict[str, object]]:
        """The latest row of every order whose life has not reached a final status."""
        final = ",".join("?" * len(FINAL_ORDER_STATUSES))
        return self.query(
            f"SELECT o.* FROM orders o JOIN (SELECT client_order_id, MAX(id) AS id FROM orders "
            f"GROUP BY client_order_id) last ON o.id = last.id "
            f"WHERE o.status NOT IN ({final}) ORDER BY o.id",
            sorted(FINAL_ORDER_STATUSES),
        )

    def entries_filled_since(self, since: datetime, *, dry_run: bool) -> int:
        """New positions opened since `since` (distinct orders, kind 'open')."""
        filled = ",".join("?" * len(FILLED_ORDER_STATUSES))
        row = self._one(
            f"SELECT COUNT(DISTINCT client_order_id) AS n FROM orders WHERE kind = 'open' "
            f"AND status IN ({filled}) AND ts >= ? AND dry_run = ?",
            (*sorted(FILLED_ORDER_STATUSES), iso(since), int(dry_run)),
        )
        return int(row["n"]) if row else 0

    def page(
        self,
        table: str,
        *,
        limit: int = 50,
        offset: int = 0,
        exclude: Mapping[str, object] | None = None,
        **equals: object,
    ) -> list[dict[str, object]]:
        """Newest rows first, filtered on equality (`equals`) and inequality (`exclude`) of
        known columns."""
        columns = COLUMNS.get(table)
        if columns is None:
            raise ValueError(f"unknown audit table {table!r}")
        exclude = exclude or {}
        unknown = (set(equals) | set(exclude)) - set(columns)
        if unknown:
            raise ValueError(f"unknown columns for {table}: {sorted(unknown)}")
        clauses = [f"{column} = ?" for column in equals]
        clauses += [f"{column} != ?" for column in exclude]
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self.query(
            f"SELECT * FROM {table} {where} ORDER BY id DESC LIMIT ? OFFSET ?",
            (*equals.values(), *exclude.values(), limit, offset),
        )

    def recent_orders(self, limit: int = 50, offset: int = 0) -> list[dict[str, object]]:
        return self.query("SELECT * FROM orders ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset))

    # ------------------------------------------------------------ signals, events, trades

    def recent_signals(self, limit: int = 50, offset: int = 0) -> list[dict[str, object]]:
        return self.query(
            "SELECT * FROM signals ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset)
        )

    def last_signal(self, symbol: str) -> dict[str, object] | None:
        return self._one(
            "SELECT * FROM signals WHERE symbol = ? ORDER BY id DESC LIMIT 1", (symbol,)
        )

    def recent_events(
        self, limit: int = 50, offset: int = 0, kind: str | None = None
    ) -> list[dict[str, object]]:
        if kind:
            return self.query(
                "SELECT * FROM events WHERE kind = ? ORDER BY id DESC LIMIT ? OFFSET ?",
                (kind, limit, offset),
            )
        return self.query("SELECT * FROM events ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset))

    def last_event(self, kind: str | tuple[str, ...]) -> dict[str, object] | None:
        kinds = (kind,) if isinstance(kind, str) else kind
        marks = ",".join("?" * len(kinds))
        return self._one(
            f"SELECT * FROM events WHERE kind IN ({marks}) ORDER BY id DESC LIMIT 1", kinds
        )

    def events_of_kind(self, kind: str, since_id: int = 0) -> list[dict[str, object]]:
        return self.query(
            "SELECT * FROM events WHERE kind = ? AND id > ? ORDER BY id", (kind, since_id)
        )

    def last_trade_exit(self, *, dry_run: bool) -> datetime | None:
        """The exit time of the latest recorded trade."""
        row = self._one("SELECT max(exit_time) AS t FROM trades WHERE dry_run = ?", (int(dry_run),))
        return datetime.fromisoformat(row["t"]) if row and row["t"] else None

    def first_order_time(self, *, dry_run: bool) -> datetime | None:
        row = self._one("SELECT min(ts) AS t FROM orders WHERE dry_run = ?", (int(dry_run),))
        return datetime.fromisoformat(row["t"]) if row and row["t"] else None

    def positions_with_failed_exit(self, *, dry_run: bool) -> list[int]:
        """Positions whose latest close order ended failed or rejected (none filled since)."""
        rows = self.query(
            "SELECT o.position_ticket AS t, o.status FROM orders o JOIN (SELECT "
            "position_ticket, MAX(id) AS id FROM orders WHERE kind = 'close' AND dry_run = ? "
            "AND position_ticket IS NOT NULL GROUP BY position_ticket) last ON o.id = last.id",
            (int(dry_run),),
        )
        return [int(r["t"]) for r in rows if r["status"] in ("failed", "rejected")]

    def order_reason(self, client_order_id: str) -> str | None:
        """Why the order was made: the detail of its first intent row."""
        row = self._one(
            "SELECT detail FROM orders WHERE client_order_id = ? AND status = "
            "'intent' ORDER BY id LIMIT 1",
            (client_order_id,),
        )
        return row["detail"] if row else None

    def trade_for_position(self, position_ticket: int, dry_run: bool) -> dict[str, object] | None:
        return self._one(
            "SELECT * FROM trades WHERE position_ticket = ? AND dry_run = ?",
            (position_ticket, int(dry_run)),
        )

    def recent_trades(self, limit: int = 50, offset: int = 0) -> list[dict[str, object]]:
        return self.query("SELECT * FROM trades ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset))

    def trades(
        self, *, dry_run: bool | None = None, since: str | None = None, until: str | None = None
    ) -> list[dict[str, object]]:
        clauses, params = [], []
        if dry_run is not None:
            clauses.append("dry_run = ?")
            params.append(int(dry_run))
        if since:
            clauses.append("exit_time >= ?")
            params.append(since)
        if until:
            clauses.append("exit_time <= ?")
            params.append(until)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self.query(f"SELECT * FROM trades {where} ORDER BY exit_time, id", params)

    def trades_summary(self, *, dry_run: bool | None = None) -> dict[str, object]:
        """Count, win rate %, profit factor, net P/L and max drawdown of the closed trades' P/L
        in recording order. Incremental: rows are append-only, so each call reads only the
        trades recorded since the previous one."""
        with self._summary_lock:
            tally = self._summaries.setdefault(dry_run, _TradeTally())
            where, params = ("AND dry_run = ?", [int(dry_run)]) if dry_run is not None else ("", [])
            rows = (
                self._conn()
                .execute(
                    f"SELECT id, pnl FROM trades WHERE id > ? {where} ORDER BY id",
                    [tally.last_id, *params],
                )
                .fetchall()
            )
            for trade_id, pnl in rows:
                tally.add(int(trade_id), float(pnl or 0.0))
            return tally.summary()

    # ------------------------------------------------------------ snapshots

    def undelivered_alerts(self, channel: str) -> list[dict[str, object]]:
        """Alerts of `channel` with no delivered/dropped outcome yet, oldest first."""
        return self.query(
            "SELECT a.* FROM alerts a WHERE a.channel = ? AND NOT EXISTS (SELECT 1 FROM "
            "alert_deliveries d WHERE d.alert_id = a.id AND d.status IN (?, ?)) ORDER BY a.id",
            (channel, *ALERT_FINAL_STATUSES),
        )

    def latest_snapshot(self) -> dict[str, object] | None:
        return self._one("SELECT * FROM account_snapshots ORDER BY id DESC LIMIT 1")

    def equity_series(self, limit: int = 1000) -> list[dict[str, object]]:
        rows = self.query(
            "SELECT ts, balance, equity FROM account_snapshots ORDER BY id DESC LIMIT ?", (limit,)
        )
        return rows[::-1]

    def equity_page(self, limit: int, offset: int = 0) -> list[dict[str, object]]:
        """`limit` snapshots (id, ts, balance, equity) before the newest `offset`, oldest
        first."""
        rows = self.query(
            "SELECT id, ts, balance, equity FROM account_snapshots ORDER BY id "
            "DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return rows[::-1]

    def peak_equity(self, from_id: int, before_id: int) -> float | None:
        """The highest equity of the snapshots with from_id <= id < before_id."""
        row = self._one(
            "SELECT max(equity) AS peak FROM account_snapshots WHERE id >= ? AND id < ?",
            (from_id, before_id),
        )
        return None if row is None or row["peak"] is None else float(row["peak"])

    def identity(self) -> tuple[object, object]:
        """(hash of the first event, id of the last event): which database this is and how
        far it has grown; a different first hash or fewer events means another file."""
        row = self._one(
            "SELECT (SELECT row_hash FROM events ORDER BY id LIMIT 1) AS first, "
            "(SELECT max(id) FROM events) AS last"
        )
        return (row["first"], row["last"]) if row else (None, None)

    def traded_symbols(self) -> list[str]:
        """Symbols with recorded trades, sorted."""
        return sorted(str(r["symbol"]) for r in self.query("SELECT DISTINCT symbol FROM trades"))

    def entry_volumes(self, symbol: str) -> list[float]:
        """The distinct volumes of the entry orders of `symbol`, sorted."""
        rows = self.query(
            "SELECT DISTINCT volume FROM orders WHERE symbol = ? AND kind = "
            "'open' AND volume IS NOT NULL",
            (symbol,),
        )
        return sorted(float(r["volume"]) for r in rows)

    def signal_span(self, symbol: str) -> tuple[str, str] | None:
        """Bar times of the first and last signal of `symbol`, None without signals."""
        row = self._one(
            "SELECT min(bar_time) AS first, max(bar_time) AS last FROM signals WHERE symbol = ?",
            (symbol,),
        )
        return None if row is None or not row["first"] else (str(row["first"]), str(row["last"]))

    def count(self, table: str) -> int:
        if table not in COLUMNS:
            raise ValueError(f"unknown audit table {table!r}")
        return int(self._conn().execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    # ------------------------------------------------------------ verification

    def heads(self) -> dict[str, tuple[int, str]]:
        """Each chained table's last row: (id, row_hash). Kept outside the database (the
        log, an alert), they reveal rows later removed from the end, which no chain can."""
        heads = {}
        for table in CHAINED_TABLES:
            row = self._one(f"SELECT id, row_hash FROM {table} ORDER BY id DESC LIMIT 1")
            if row is not None:
                heads[table] = (int(row["id"]), str(row["row_hash"]))
        return heads

    def missing_heads(self, recorded: Mapping[str, tuple[int, str]]) -> list[str]:
        """What is wrong with heads recorded earlier: a row gone or different."""
        problems = []
        for table, (row_id, digest) in recorded.items():
            if table not in CHAINED_TABLES:
                continue
            row = self._one(f"SELECT row_hash FROM {table} WHERE id = ?", (row_id,))
            if row is None:
                problems.append(
                    f"{table}: row {row_id}, recorded as the head, is gone "
                    "(rows were removed from the end)"
                )
            elif not str(row["row_hash"]).startswith(digest):
                problems.append(f"{table}: row {row_id} is not the row recorded as the head")
        return problems

    def verify(self, batch: int = 5000) -> list[ChainReport]:
        """Recompute every table's hash chain; each report names the first broken row, if any."""
        return [self._verify_table(table, batch) for table in CHAINED_TABLES]

    def _verify_table(self, table: str, batch: int) -> ChainReport:
        columns = COLUMNS[table]
        sql = (
            f"SELECT id, {', '.join(columns)}, prev_hash, row_hash FROM {table} "
            f"WHERE id > ? ORDER BY id LIMIT ?"
        )
        prev, last_id, rows = GENESIS_HASH, 0, 0
        while True:
            chunk = self._conn().execute(sql, (last_id, batch)).fetchall()
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
        reports = reader.verify()
        recorded = _recorded_heads(args.anchor, args.expect)
        problems = reader.missing_heads(recorded)
        heads = reader.heads()
    except (FileNotFoundError, sqlite3.Error, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
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
    for problem in problems:
        print(f"TRUNCATED  {problem}")
    if recorded and not problems:
        print(f"recorded heads: all {len(recorded)} still in place")
    return 0 if all(r.ok for r in reports) and not problems else 1


HEADS_LOG_PREFIX = "audit chain heads "


def head_text(table: str, row_id: int, digest: str) -> str:
    """A head as `--expect` takes it: table:id:first 16 hex digits of the hash."""
    return f"{table}:{row_id}:{digest[:16]}"


def _recorded_heads(logs: list[Path], expected: list[str]) -> dict[str, tuple[int, str]]:
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


if __name__ == "__main__":
    sys.exit(main())
