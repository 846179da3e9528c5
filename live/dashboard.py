"""The web dashboard: a Flask app over a read-only connection to the audit database (JSON API,
Prometheus metrics and a self-refreshing page), served by waitress.

    python live/dashboard.py [--db data/audit.db] [--host 127.0.0.1] [--port 5000]

It never writes: the database is opened with SQLite's read-only mode and `query_only`, so it
can run beside the trader and cannot change trading data; a file deleted or replaced under it
is noticed and reopened. Every error, 404 to 500, is a JSON body. Binding beyond loopback requires
DASHBOARD_TOKEN (16 characters or more); when a token is set every request must carry it: as
`Authorization: Bearer`, or in the HttpOnly cookie that a link with a valid `?token=` sets
(the link then redirects to itself without the token).
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import json
import logging
import os
import re
import sqlite3
import stat
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

if __package__ in (None, ""):  # run as a script: make `live` and `backtest` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import Flask, Response, jsonify, redirect, request, send_from_directory
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from live.audit_reader import AuditReader
from live.config import PROJECT_ROOT, LiveConfig
from live.errors import ConfigError

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
CHART_LIBRARY = PROJECT_ROOT / "backtest" / "static" / "vendor"
STALE_AFTER_S = 180.0  # heartbeats come every minute; three missed: the trader is gone
MAX_LIMIT, MAX_OFFSET, MAX_EQUITY_POINTS = 500, 10_000_000, 10_000
ALWAYS_ALLOWED = ("token",)  # the dashboard token may ride on any request
TOKEN_COOKIE = "dashboard_token"
MIN_TOKEN_LENGTH = 16  # a guessable token is no protection
TOKEN_HINT = 'make one with: python3 -c "import secrets; print(secrets.token_urlsafe(32))"'
_NAME = re.compile(r"^[A-Za-z0-9._#:+-]{1,40}$")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "frame-ancestors 'none'",  # the chart library sets inline styles
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class BadParameter(ValueError):
    """A query parameter out of range or malformed (answered with 400)."""


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
        self.peaks = PeakCache()

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
        self.peaks = PeakCache()

    def _recheck(self, stamp: tuple[int, ...]) -> None:
        """Same file, new content: usually the trader's writes reaching the main file (keep
        the caches, which only ever add rows), but it may be another database copied over
        it: then its first event differs or it has fewer events, and everything restarts."""
        fresh = AuditReader(self.path)
        mark = _mark(fresh)
        if not _continues(self._mark, mark):
            self._reader = fresh
            self.peaks = PeakCache()
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


def create_app(
    db_path: str | Path,
    *,
    token: str = "",
    trust_proxy: bool = False,
    wall_clock: Callable[[], float] = time.time,
) -> Flask:
    """The dashboard app for `db_path`; `token`, when set, is required on every request.
    `trust_proxy` believes one reverse proxy's X-Forwarded-Proto and -Host (HTTPS there marks
    the token cookie Secure)."""
    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    if trust_proxy:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)  # type: ignore[method-assign]
    app.config["JSON_SORT_KEYS"] = False
    database = Database(Path(db_path))
    _install_guards(app, token)
    _install_errors(app, database.path)
    _install_tables(app, database)
    _install_state(app, database, wall_clock)
    _install_pages(app)
    return app


# ---------------------------------------------------------------- security


def _install_guards(app: Flask, token: str) -> None:
    @app.before_request
    def require_token() -> Response | None:
        if not token:
            return None
        if "token" in request.args:  # a link with the token: check it, then trade it for a cookie
            return _exchange_token(request.args.get("token", ""), token)
        if _valid(_offered_token(), token):
            return None
        return _error(401, "a valid dashboard token is required")

    @app.after_request
    def harden(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        if request.path.startswith("/api/") or request.path == "/metrics":
            response.headers["Cache-Control"] = "no-store"
        return response


def _valid(offered: str, token: str) -> bool:
    return bool(offered) and hmac.compare_digest(offered.encode(), token.encode())


def _exchange_token(offered: str, token: str) -> Response:
    """A valid `?token=` becomes an HttpOnly cookie and a redirect to the same URL without
    it, so the token leaves the address bar and the history; anything else is a plain 401,
    with no cookie and no redirect."""
    if not _valid(offered, token):
        return _error(401, "a valid dashboard token is required")
    kept = [(k, v) for k, v in request.args.items(multi=True) if k != "token"]
    response = redirect(request.path + (f"?{urlencode(kept)}" if kept else ""), code=303)
    response.set_cookie(
        TOKEN_COOKIE, token, httponly=True, samesite="Strict", secure=request.is_secure, path="/"
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _install_errors(app: Flask, db_path: Path) -> None:
    """Every error as JSON: a script reading the API never has to parse an HTML page, and
    no traceback leaves the process (it goes to the dashboard's log)."""

    @app.errorhandler(BadParameter)
    def bad_parameter(exc: BadParameter) -> Response:
        return _error(400, str(exc))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        response = _error(exc.code or 500, _http_message(exc))
        if exc.code == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def failure(exc: Exception) -> Response:
        logger.exception("dashboard: %s %s failed", request.method, request.path)
        if isinstance(exc, sqlite3.Error):
            return _error(500, f"cannot read the audit database {db_path}: {exc}")
        return _error(500, f"internal error ({type(exc).__name__}); see the dashboard's log")


def _http_message(exc: HTTPException) -> str:
    if exc.code == 404:
        return f"no such page: {request.path}"
    if exc.code == 405:
        return (
            f"{request.method} is not allowed on {request.path}: the dashboard is "
            "read-only, use GET"
        )
    return exc.description or exc.name


def _offered_token() -> str:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer ") :].strip()
    return request.cookies.get(TOKEN_COOKIE) or ""


def _error(status: int, message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    return response


# ---------------------------------------------------------------- parameters


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadParameter(f"{name} must be an integer, got {text[:40]!r}") from None
    if not low <= value <= high:
        raise BadParameter(f"{name} must be between {low} and {high}, got {value}")
    return value


def _only(*names: str) -> None:
    """Refuse a parameter the endpoint does not know: a typo (?symbl=) must not silently
    return unfiltered rows."""
    for name in request.args:
        if name not in names and name not in ALWAYS_ALLOWED:
            known = ", ".join(names) or "none"
            raise BadParameter(
                f"unknown parameter {name[:40]!r} for {request.path} (known: {known})"
            )


def _paging() -> tuple[int, int]:
    return _int_arg("limit", 50, 1, MAX_LIMIT), _int_arg("offset", 0, 0, MAX_OFFSET)


def _filters(*names: str) -> dict[str, str]:
    """Equality filters from the query string, each a short plain name."""
    chosen = {}
    for name in names:
        value = request.args.get(name)
        if value is None:
            continue
        if not _NAME.match(value):
            raise BadParameter(f"{name} must be 1-40 letters, digits or ._#:+-, got {value[:40]!r}")
        chosen[name] = value
    return chosen


def _dry_run_arg() -> bool | None:
    text = request.args.get("dry_run")
    if text is None:
        return None
    if text.lower() not in ("0", "1", "true", "false"):
        raise BadParameter(f"dry_run must be true or false, got {text[:40]!r}")
    return text.lower() in ("1", "true")


# ---------------------------------------------------------------- API


def _install_tables(app: Flask, database: Database) -> None:
    def rows(table: str, *filters: str, exclude: str | None = None) -> Response:
        _only("limit", "offset", *filters, *([f"exclude_{exclude}"] if exclude else []))
        limit, offset = _paging()
        equals = _filters(*filters)
        excluded: dict[str, str] = {}
        if exclude:
            for value in _filters(f"exclude_{exclude}").values():
                excluded[exclude] = value
        reader = database.reader()
        found = (
            reader.page(table, limit=limit, offset=offset, exclude=excluded, **equals)
            if reader
            else []
        )
        for row in found:
            row.pop("prev_hash", None)
            row.pop("row_hash", None)
        return jsonify({"rows": found, "limit": limit, "offset": offset})

    @app.get("/api/orders")
    def orders() -> Response:
        return rows("orders", "symbol", "status", "client_order_id")

    @app.get("/api/signals")
    def signals() -> Response:
        return rows("signals", "symbol", "outcome")

    @app.get("/api/events")
    def events() -> Response:
        return rows("events", "kind", "level", "symbol", exclude="kind")

    @app.get("/api/trades")
    def trades() -> Response:
        return rows("trades", "symbol")


def _install_state(app: Flask, database: Database, wall_clock: Callable[[], float]) -> None:
    def status_now() -> dict[str, Any]:
        return trader_status(database.reader(), wall_clock(), db_path=database.path)

    @app.get("/api/status")
    def status() -> Response:
        _only()
        return jsonify(status_now())

    @app.get("/api/positions")
    def positions() -> Response:
        _only()
        state = status_now()
        return jsonify({"rows": state.get("positions", []), "as_of": state.get("heartbeat_ts")})

    @app.get("/api/summary")
    def summary() -> Response:
        _only("dry_run")
        reader = database.reader()
        dry_run = _dry_run_arg()
        return jsonify(reader.trades_summary(dry_run=dry_run) if reader else {"count": 0})

    @app.get("/api/equity")
    def equity() -> Response:
        _only("limit", "offset")
        limit = _int_arg("limit", 1000, 1, MAX_EQUITY_POINTS)
        offset = _int_arg("offset", 0, 0, MAX_OFFSET)
        return jsonify(
            {"points": equity_window(database, limit, offset), "limit": limit, "offset": offset}
        )

    @app.get("/metrics")
    def metrics() -> Response:
        from live.metrics import render_metrics

        _only()
        body, content_type = render_metrics(status_now())
        return Response(body, content_type=content_type)


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
    wall = datetime.fromisoformat(data["wall_ts"]).timestamp() if data.get("wall_ts") else None
    age = None if wall is None else max(0.0, now - wall)
    snapshot = reader.latest_snapshot()
    status = {
        "state": _state(reader, beat, age),
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


def _state(reader: AuditReader, beat: dict[str, Any], age: float | None) -> str:
    last = reader.last_event(("startup", "shutdown"))
    if last is not None and last["kind"] == "shutdown" and last["id"] > beat["id"]:
        return "stopped"
    return "running" if age is not None and age <= STALE_AFTER_S else "stale"


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


# ---------------------------------------------------------------- page


def _install_pages(app: Flask) -> None:
    @app.get("/")
    def index() -> Response:
        return send_from_directory(STATIC, "dashboard.html")

    @app.get("/vendor/<path:name>")
    def vendor(name: str) -> Response:
        return send_from_directory(CHART_LIBRARY, name)


# ---------------------------------------------------------------- command line


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_of(host: str, port: int) -> str:
    """http://127.0.0.1:5000, or http://[::1]:5000 for an IPv6 address."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dashboard.py", description="Serve the dashboard.")
    parser.add_argument("--db", help="audit database (AUDIT_DB, default data/audit.db)")
    parser.add_argument("--host", help="bind address (DASHBOARD_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (DASHBOARD_PORT, default 5000)")
    parser.add_argument("--config", help="settings file (default .env)")
    args = parser.parse_args(argv)
    try:
        config = LiveConfig.load(
            args.config,
            overrides={
                "audit_db": args.db,
                "dashboard_host": args.host,
                "dashboard_port": args.port,
            },
        )
        if not is_loopback(config.dashboard_host) and not config.dashboard_token:
            raise ConfigError(
                f"DASHBOARD_HOST={config.dashboard_host} is not loopback: set "
                f"DASHBOARD_TOKEN (every request must then carry it); {TOKEN_HINT}"
            )
        if config.dashboard_token and len(config.dashboard_token) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                f"DASHBOARD_TOKEN is {len(config.dashboard_token)} characters: use at least "
                f"{MIN_TOKEN_LENGTH}; {TOKEN_HINT}"
            )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return serve(config)


def serve(config: LiveConfig) -> int:
    """Bind, then say where (only once the port is ours), then serve until Ctrl+C."""
    from waitress import create_server

    host, port = config.dashboard_host, config.dashboard_port
    app = create_app(
        config.audit_db, token=config.dashboard_token, trust_proxy=config.dashboard_trust_proxy
    )
    try:
        server = create_server(app, host=host, port=port, threads=8, ident="dashboard")
    except OSError as exc:  # port taken, address not on this machine, name unknown
        print(
            f"error: cannot listen on {url_of(host, port)[len('http://') :]}: "
            f"{exc.strerror or exc}; another program (a dashboard already running?) may "
            "hold the port: choose another with --port or DASHBOARD_PORT",
            file=sys.stderr,
        )
        return 2
    print(
        f"dashboard on {url_of(host, server.effective_port)} reading {config.audit_db}", flush=True
    )
    try:
        server.run()
    except KeyboardInterrupt:  # Ctrl+C is the normal way to stop it
        pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
