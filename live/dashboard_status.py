"""What the dashboard computes from one audit database: the trader's state from its last
heartbeat, the account's latest figures, and the equity series with its drawdown from the
all-time peak. `Database` opens the file read-only and notices a file replaced under it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from live.audit_reader import AuditReader
from live.health import liveness


class Database:
    """The audit DB, opened read-only on first use (the dashboard may start before it exists)
    and checked on every request, so a deleted or replaced file is never served from a
    connection or a cache that still holds the old one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._reader: AuditReader | None = None
        self._stamp: tuple[int, ...] | None = None  # dev, inode, mtime, size when last seen
        self._mark: tuple[object, object] | None = None  # first event hash, last event id
        self._fresh_caches()

    def _fresh_caches(self) -> None:
        self.peaks = PeakCache()
        self.drawdowns = DrawdownTally()

    def reader(self) -> AuditReader | None:
        try:
            info = os.stat(self.path)
        except OSError:
            info = None
        with self._lock:
            if info is None or not stat.S_ISREG(info.st_mode):
                self._reader = self._stamp = self._mark = None
                return None
            stamp = (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)
            if self._reader is None or self._stamp is None or stamp[:2] != self._stamp[:2]:
                self._open(stamp)  # a new file at this path (deleted and made again, moved)
            elif stamp != self._stamp:
                self._recheck(stamp)
            return self._reader

    def _open(self, stamp: tuple[int, ...]) -> None:
        try:
            self._reader = AuditReader(self.path)
        except FileNotFoundError:  # gone between the stat and the open
            self._reader = self._stamp = self._mark = None
            return
        self._stamp, self._mark = stamp, _mark(self._reader)
        self._fresh_caches()

    def _recheck(self, stamp: tuple[int, ...]) -> None:
        """Same file, new content: usually the trader's writes reaching the main file (keep
        the caches, which only ever add rows), but it may be another database copied over
        it: then its first event differs or it has fewer events, and everything restarts."""
        fresh = AuditReader(self.path)
        mark = _mark(fresh)
        if not _continues(self._mark, mark):
            self._reader = fresh
            self._fresh_caches()
        self._stamp, self._mark = stamp, mark


def _mark(reader: AuditReader) -> tuple[object, object] | None:
    try:
        return reader.identity()
    except sqlite3.Error:  # not an audit database (yet): requests will say so
        return None


def _continues(old: tuple[object, object] | None, new: tuple[object, object] | None) -> bool:
    """Whether `new` is `old` with rows added (audit tables are append-only)."""
    if old is None or new is None or old[0] != new[0]:
        return False
    return int(new[1] or 0) >= int(old[1] or 0)


class PeakCache:
    """The highest equity recorded before a snapshot id, so drawdown is measured from the
    all-time peak, not the window's. Rows are append-only: a later window start only adds
    the rows between the two starts, which keeps the query small as snapshots arrive."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at: int | None = None
        self._peak: float | None = None

    def before(self, reader: AuditReader, first_id: int) -> float | None:
        with self._lock:
            if self._at is not None and first_id >= self._at:
                peak = _higher(self._peak, reader.peak_equity(self._at, first_id))
            else:
                peak = reader.peak_equity(0, first_id)
            self._at, self._peak = first_id, peak
            return peak


def _higher(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


@dataclass
class Drawdown:
    """Equity's all-time peak and its deepest fall below it so far; the amount and the % are
    each their own deepest, `ts` is when the amount was reached."""

    peak: float | None = None
    amount: float = 0.0
    pct: float = 0.0
    ts: object = None

    def add(self, ts: object, equity: float) -> None:
        self.peak = equity if self.peak is None else max(self.peak, equity)
        drawdown = equity - self.peak
        if drawdown < self.amount:
            self.amount, self.ts = drawdown, ts
        if self.peak > 0:
            self.pct = min(self.pct, 100.0 * drawdown / self.peak)


class DrawdownTally:
    """The drawdown of every snapshot so far, the basis of the equity chart's drawdown pane;
    each call reads only the snapshots recorded since the previous one (append-only rows)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_id = 0
        self._so_far = Drawdown()

    def extend(self, reader: AuditReader) -> Drawdown:
        with self._lock:
            for snapshot_id, ts, equity in reader.equity_since(self._last_id):
                self._last_id = int(snapshot_id)
                self._so_far.add(ts, float(equity or 0.0))
            return replace(self._so_far)


def max_drawdown(database: Database) -> dict[str, Any] | None:
    """The deepest drawdown of equity from its all-time peak over every snapshot and the
    newer heartbeat the chart ends on: the lowest point of the chart's drawdown pane when
    it shows everything."""
    reader = database.reader()
    if reader is None:
        return None
    deepest = database.drawdowns.extend(reader)
    latest = reader.latest_snapshot()
    for beat in _newer_heartbeat(reader, latest["ts"] if latest else ""):
        deepest.add(beat["ts"], float(beat["equity"]))
    if deepest.peak is None:
        return None
    return {
        "amount": round(deepest.amount, 2),
        "pct": round(deepest.pct, 3),
        "ts": deepest.ts,
        "peak": deepest.peak,
        "basis": "equity below its all-time peak",
    }


def equity_window(database: Database, limit: int, offset: int) -> list[dict[str, Any]]:
    """The `limit` snapshots before the newest `offset` ones, oldest first, with drawdown
    from the all-time peak; on the newest page, the last heartbeat's account as a final point
    when it is newer (heartbeats come every minute, snapshots every SNAPSHOT_SECONDS), so the
    chart ends where the balance and equity cards are."""
    reader = database.reader()
    if reader is None:
        return []
    rows = reader.equity_page(limit, offset)
    peak = database.peaks.before(reader, int(rows[0]["id"])) if rows else None
    if offset == 0:
        rows += _newer_heartbeat(reader, rows[-1]["ts"] if rows else "")
    return equity_points(rows, peak=peak)


def _newer_heartbeat(reader: AuditReader, after_ts: object) -> list[dict[str, Any]]:
    beat = reader.last_event("heartbeat")
    if beat is None or str(beat["ts"]) <= str(after_ts):
        return []
    account = json.loads(beat["data"] or "{}").get("account") or {}
    if account.get("equity") is None:
        return []
    return [
        {
            "ts": beat["ts"],
            "balance": account.get("balance"),
            "equity": account["equity"],
            "source": "heartbeat",
        }
    ]


def trader_status(
    reader: AuditReader | None, now: float, *, db_path: str | Path = ""
) -> dict[str, Any]:
    """What the last heartbeat said, and whether the trader is running, stale or stopped."""
    where = str(db_path) if db_path else "the audit database"
    if reader is None:
        return {
            "state": "no data",
            "db": str(db_path),
            "message": f"no audit database at {where} yet: start the trader, or point "
            "the dashboard at its database with --db",
        }
    beat = reader.last_event("heartbeat")
    if beat is None:
        return {
            "state": "no data",
            "db": str(db_path),
            "message": f"no heartbeat in {where} yet: is the trader running?",
        }
    data = json.loads(beat["data"] or "{}")
    state, age = liveness(beat, data, reader.last_event(("startup", "shutdown")), now)
    snapshot = reader.latest_snapshot()
    status = {
        "state": state,
        "db": str(db_path),
        "heartbeat_age_s": None if age is None else round(age, 1),
        "heartbeat_ts": beat["ts"],
        **data,
        "snapshot": {
            k: snapshot[k]
            for k in ("ts", "balance", "equity", "margin", "margin_free", "open_positions")
        }
        if snapshot
        else None,
    }
    status.setdefault("clock", "UTC")  # heartbeats before the clock was named were UTC
    status["latest_account"] = latest_account(status)
    if status.get("kill_switch"):  # whatever the heartbeat says, the switch blocks entries
        status["entries_enabled"] = False
    return status


def latest_account(status: dict[str, Any]) -> dict[str, Any] | None:
    """Balance, equity and margin from whichever is newer, the heartbeat or the last
    snapshot (the cards and the chart's last point then agree), and which one it was."""
    account, snapshot = status.get("account") or {}, status.get("snapshot") or {}
    keys = ("balance", "equity", "margin", "margin_free")
    if account.get("equity") is not None and str(status.get("heartbeat_ts")) >= str(
        snapshot.get("ts") or ""
    ):
        return {
            "ts": status.get("heartbeat_ts"),
            "source": "heartbeat",
            **{k: account.get(k) for k in keys},
        }
    if snapshot:
        return {"ts": snapshot["ts"], "source": "snapshot", **{k: snapshot.get(k) for k in keys}}
    return None


def equity_points(
    series: list[dict[str, Any]], *, peak: float | None = None
) -> list[dict[str, Any]]:
    """Points with the drawdown from the running equity peak (amount and %); `peak` is the
    highest equity before the first point, when the series is a window of a longer one."""
    high = float("-inf") if peak is None else float(peak)
    points = []
    for row in series:
        equity = float(row["equity"] or 0.0)
        high = max(high, equity)
        drawdown = equity - high
        points.append(
            {
                "ts": row["ts"],
                "equity": equity,
                "balance": row["balance"],
                "drawdown": round(drawdown, 2),
                "drawdown_pct": round(100.0 * drawdown / high, 3) if high > 0 else 0.0,
                "source": row.get("source", "snapshot"),
            }
        )
    return points
