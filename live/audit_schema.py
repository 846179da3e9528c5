"""The audit database's schema: tables and their columns, order statuses, migrations, and
how a connection to the file is opened. `audit_logger` writes through it, `audit_reader` reads.

Tables signals, orders, trades, events and account_snapshots are append-only (triggers refuse
UPDATE and DELETE) and hash-chained (`audit_chain`). An order's life is a sequence of rows
(intent, sent, filled, ...) sharing one client_order_id; its state is its latest row. The
database runs in WAL mode, so the dashboard can read while the trader writes.
"""

from __future__ import annotations

import errno
import logging
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from live.errors import AuditWriteError

logger = logging.getLogger(__name__)

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
        "expired",  # a pending entry the broker expired unfilled
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
    (
        # where each table's keyed chain starts (`audit_chain`); rows before it (databases
        # made before keyed chains) stay chained with plain SHA-256
        "004_chain_keys",
        """
        CREATE TABLE chain_keys (
            tbl TEXT PRIMARY KEY, first_id INTEGER NOT NULL, key_id TEXT NOT NULL,
            mac TEXT NOT NULL);
        CREATE TRIGGER chain_keys_no_update BEFORE UPDATE ON chain_keys
            BEGIN SELECT RAISE(ABORT, 'chain_keys is append-only'); END;
        CREATE TRIGGER chain_keys_no_delete BEFORE DELETE ON chain_keys
            BEGIN SELECT RAISE(ABORT, 'chain_keys is append-only'); END;
    """,
    ),
    (
        "005_broker_order_index",
        """
        CREATE INDEX orders_broker_order ON orders (broker_order);
    """,
    ),
    (
        # a position's partial exits are trade rows of their own: one row per exit deal
        "006_trade_per_exit",
        """
        DROP INDEX trades_position;
        CREATE UNIQUE INDEX trades_position_exit
            ON trades (position_ticket, dry_run, exit_time, exit_client_order_id);
    """,
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
# Alert delivery outcomes after which an alert is no longer waiting to be sent.
ALERT_FINAL_STATUSES = ("delivered", "dropped")


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """UTC ISO-8601 with milliseconds: sorts as text in time order."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given to the audit log; use UTC-aware datetimes")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def connect(
    path: Path, *, read_only: bool = False, busy_timeout_s: float = 5.0, wal: bool = True
) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), in WAL mode unless `wal`
    is false (a database being built, which must be whole in its one file when closed)."""
    if read_only:
        uri = f"file:{Path(path).resolve().as_posix()}?mode=ro"
        conn = sqlite3.connect(
            uri, uri=True, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA query_only = ON")
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
        conn.execute(f"PRAGMA journal_mode = {'WAL' if wal else 'DELETE'}")
        conn.execute("PRAGMA synchronous = NORMAL")
    conn.row_factory = sqlite3.Row
    return conn


def migrate(
    conn: sqlite3.Connection, *, finish: Callable[[sqlite3.Connection], None] | None = None
) -> int:
    """Apply the migrations not yet recorded, all in one transaction together with `finish`
    (run inside it): a failure, a full disk included, leaves the schema as it was. Returns
    the schema version."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
        applied = _apply_missing(conn, done)
        if finish is not None:
            finish(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite may have rolled back by itself (a full disk)
            conn.execute("ROLLBACK")
        raise
    for name in applied:
        logger.info("audit database migrated: %s", name)
    unknown = done - {name for name, _ in MIGRATIONS}
    if unknown:
        raise AuditWriteError(
            f"audit database has migrations this version does not know: {sorted(unknown)}"
        )
    return len(done | set(applied))


def _apply_missing(conn: sqlite3.Connection, done: set[str]) -> list[str]:
    applied = []
    for name, sql in MIGRATIONS:
        if name in done:
            continue
        for statement in _statements(sql):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
            (name, iso(utc_now())),
        )
        applied.append(name)
    if applied:
        conn.execute(f"PRAGMA user_version = {len(done) + len(applied)}")
    return applied


LOW_SPACE_BYTES = 1 << 20  # below this, an I/O error writing the database is a full disk


def is_disk_full(exc: BaseException, path: Path | None = None) -> bool:
    """Whether a write failed for want of space: SQLite's SQLITE_FULL, ENOSPC, EDQUOT, or an
    I/O error on a disk with (almost) nothing free (a full disk in WAL mode shows as
    SQLITE_IOERR_SHMSIZE when the shared-memory file cannot grow)."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if not isinstance(exc, sqlite3.Error):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL or "disk is full" in str(exc):
        return True
    io_error = code is not None and code & 0xFF == sqlite3.SQLITE_IOERR
    return io_error and path is not None and (_free(path) or 0) < LOW_SPACE_BYTES


def failure_text(path: Path, exc: BaseException) -> str:
    """What went wrong writing `path`, in words: a full disk says so, with the space left."""
    if not is_disk_full(exc, path):
        return str(exc)
    free = _free(path)
    left = "" if free is None else f", {_size(free)} free on that disk"
    return f"disk full: {path} cannot be written{left} ({exc})"


def _free(path: Path) -> int | None:
    folder = Path(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _size(count: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:,} {unit}" if unit == "bytes" else f"{count:,.1f} {unit}"
        count /= 1024
    return f"{count} bytes"


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
