"""Queries over the audit database, for the trader, the dashboard and the tools. Opened
read-only (SQLite's read-only mode and `query_only`) unless given the writer's connection.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from live import audit_chain
from live.audit_chain import ChainReport
from live.audit_schema import (
    ALERT_FINAL_STATUSES,
    CHAINED_TABLES,
    COLUMNS,
    FILLED_ORDER_STATUSES,
    FINAL_ORDER_STATUSES,
    connect,
    iso,
)


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

    def placed_orders(self) -> list[dict[str, object]]:
        """The latest row of every pending entry last known waiting at the broker."""
        return self.query(
            "SELECT o.* FROM orders o JOIN (SELECT client_order_id, MAX(id) AS id FROM orders "
            "WHERE kind = 'pending' GROUP BY client_order_id) last ON o.id = last.id "
            "WHERE o.status = 'placed' ORDER BY o.id"
        )

    def cancel_recorded(self, order_ticket: int) -> bool:
        """Whether this trader asked to remove the pending order `order_ticket`."""
        return bool(
            self.query(
                "SELECT 1 FROM orders WHERE kind = 'cancel' AND position_ticket = ? LIMIT 1",
                (order_ticket,),
            )
        )

    def entries_filled_since(self, since: datetime, *, dry_run: bool) -> int:
        """New positions opened since `since` (distinct orders, kind 'open')."""
        filled = ",".join("?" * len(FILLED_ORDER_STATUSES))
        row = self._one(
            f"SELECT COUNT(DISTINCT client_order_id) AS n FROM orders "
            f"WHERE kind IN ('open', 'pending') "
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

    def order_lives(
        self, *, limit: int = 50, offset: int = 0, symbol: str | None = None
    ) -> list[list[dict[str, object]]]:
        """Every row of the `limit` orders (client ids) with the newest activity after the
        first `offset` ones, newest first; each order's rows oldest first (intent, then what
        became of it)."""
        where, params = ("WHERE symbol = ?", [symbol]) if symbol else ("", [])
        rows = self.query(
            f"SELECT o.* FROM orders o JOIN (SELECT client_order_id, MAX(id) AS last FROM orders "
            f"{where} GROUP BY client_order_id ORDER BY last DESC LIMIT ? OFFSET ?) page "
            f"ON o.client_order_id = page.client_order_id ORDER BY page.last DESC, o.id",
            (*params, limit, offset),
        )
        lives: dict[object, list[dict[str, object]]] = {}
        for row in rows:
            lives.setdefault(row["client_order_id"], []).append(row)
        return list(lives.values())

    def trades_of_orders(self, client_order_ids: Iterable[str]) -> list[dict[str, object]]:
        """The trade rows these orders opened or closed."""
        ids = sorted(set(client_order_ids))
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        return self.query(
            f"SELECT * FROM trades WHERE entry_client_order_id IN ({marks}) "
            f"OR exit_client_order_id IN ({marks}) ORDER BY id",
            (*ids, *ids),
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

    def entry_stops(self, position_ticket: int) -> tuple[float, float] | None:
        """(sl, tp) the entry of a position asked for (0.0 for none), None when this trader
        has no record of opening it."""
        cid = self.open_order_of_position(position_ticket)
        row = cid and self._one(
            "SELECT sl, tp FROM orders WHERE client_order_id = ? AND status = 'intent' "
            "ORDER BY id LIMIT 1",
            (cid,),
        )
        return (float(row["sl"] or 0.0), float(row["tp"] or 0.0)) if row else None

    def open_order_of_position(self, position_ticket: int) -> str | None:
        """The client order id that opened a position, as recorded."""
        filled = ",".join("?" * len(FILLED_ORDER_STATUSES))
        row = self._one(
            f"SELECT client_order_id FROM orders WHERE kind IN ('open', 'pending') "
            f"AND position_ticket = ? "
            f"AND status IN ({filled}) ORDER BY id LIMIT 1",
            (position_ticket, *sorted(FILLED_ORDER_STATUSES)),
        )
        return str(row["client_order_id"]) if row else None

    def client_order_id_of(self, broker_order: int) -> str | None:
        """The client order id of the order the broker knows by `broker_order` (found by
        ticket, so a comment the broker truncated or rewrote does not matter)."""
        row = self._one(
            "SELECT client_order_id FROM orders WHERE broker_order = ? ORDER BY id LIMIT 1",
            (broker_order,),
        )
        return str(row["client_order_id"]) if row else None

    def order_reason(self, client_order_id: str) -> str | None:
        """Why the order was made: the detail of its first intent row."""
        row = self._one(
            "SELECT detail FROM orders WHERE client_order_id = ? AND status = "
            "'intent' ORDER BY id LIMIT 1",
            (client_order_id,),
        )
        return row["detail"] if row else None

    def trade_for_position(self, position_ticket: int, dry_run: bool) -> dict[str, object] | None:
        """The last trade row of a position (its final exit, or a partial one)."""
        return self._one(
            "SELECT * FROM trades WHERE position_ticket = ? AND dry_run = ? ORDER BY id DESC",
            (position_ticket, int(dry_run)),
        )

    def recorded_exits(self, position_ticket: int, dry_run: bool) -> set[tuple[str, str]]:
        """(exit time, exit client id) of the trade rows a position has: one per exit."""
        rows = self.query(
            "SELECT exit_time, exit_client_order_id FROM trades "
            "WHERE position_ticket = ? AND dry_run = ?",
            (position_ticket, int(dry_run)),
        )
        return {(str(r["exit_time"]), str(r["exit_client_order_id"])) for r in rows}

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

    def pnl_by(self, key: str, *, dry_run: bool | None = None) -> list[dict[str, object]]:
        """Closed trades' P/L per UTC exit day (`key` "day") or per symbol ("symbol"): count,
        wins, losses, net P/L, gross win and gross loss, lots; in day or symbol order."""
        column = {"day": "substr(exit_time, 1, 10)", "symbol": "symbol"}[key]
        where, params = ("WHERE dry_run = ?", [int(dry_run)]) if dry_run is not None else ("", [])
        return self.query(
            f"SELECT {column} AS {key}, COUNT(*) AS count, "
            "COUNT(CASE WHEN pnl > 0 THEN 1 END) AS wins, "
            "COUNT(CASE WHEN pnl < 0 THEN 1 END) AS losses, ROUND(TOTAL(pnl), 2) AS net_pnl, "
            "ROUND(TOTAL(CASE WHEN pnl > 0 THEN pnl END), 2) AS gross_win, "
            "ROUND(-TOTAL(CASE WHEN pnl < 0 THEN pnl END), 2) AS gross_loss, "
            f"TOTAL(volume) AS lots FROM trades {where} GROUP BY 1 ORDER BY 1",
            params,
        )

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

    def equity_since(self, after_id: int) -> sqlite3.Cursor:
        """(id, ts, equity) of the snapshots after `after_id`, in order, as a cursor (a long
        history is read row by row, not held in memory)."""
        return self._conn().execute(
            "SELECT id, ts, equity FROM account_snapshots WHERE id > ? ORDER BY id", (after_id,)
        )

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
        """Each chained table's last row: (id, row_hash); see `audit_chain.heads`."""
        return audit_chain.heads(self._conn())

    def missing_heads(self, recorded: Mapping[str, tuple[int, str]]) -> list[tuple[str, str]]:
        """What is wrong with heads recorded earlier: (TRUNCATED or REWRITTEN, what)."""
        return audit_chain.missing_heads(self._conn(), recorded)

    def verify(self, key: bytes | None = None, batch: int = 5000) -> list[ChainReport]:
        """Recompute every table's hash chain with the chain `key`; each report names the first
        broken row, if any. ChainKeyError when the chains are keyed and the key is missing or
        another one."""
        return [audit_chain.verify_table(self._conn(), t, key, batch) for t in CHAINED_TABLES]
