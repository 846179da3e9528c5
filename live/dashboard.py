"""The web dashboard: a Flask app over a read-only connection to the audit database (JSON API,
Prometheus metrics and a self-refreshing page), served by waitress.

    python live/dashboard.py [--db data/audit.db] [--host 127.0.0.1] [--port 5000]

It never writes: the database is opened with SQLite's read-only mode and `query_only`, so it
can run beside the trader and cannot change trading data. Binding beyond loopback requires
DASHBOARD_TOKEN; when a token is set every request must carry it (`Authorization: Bearer`,
`?token=` once, after which an HttpOnly cookie carries it).
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import json
import logging
import re
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `live` and `backtest` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import Flask, Response, jsonify, request, send_from_directory

from live.audit_logger import AuditReader
from live.config import PROJECT_ROOT, LiveConfig
from live.errors import ConfigError

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
CHART_LIBRARY = PROJECT_ROOT / "backtest" / "static" / "vendor"
STALE_AFTER_S = 180.0  # heartbeats come every minute; three missed: the trader is gone
MAX_LIMIT, MAX_OFFSET = 500, 10_000_000
TOKEN_COOKIE = "dashboard_token"
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
    """Opens the audit DB read-only on first use, so the dashboard may start before it exists."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reader: AuditReader | None = None

    def reader(self) -> AuditReader | None:
        if self._reader is None and self.path.is_file():
            self._reader = AuditReader(self.path)
        return self._reader


def create_app(db_path: str | Path, *, token: str = "",
               wall_clock: Callable[[], float] = time.time) -> Flask:
    """The dashboard app for `db_path`; `token`, when set, is required on every request."""
    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    app.config["JSON_SORT_KEYS"] = False
    database = Database(Path(db_path))
    _install_guards(app, token)
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
        offered = _offered_token()
        if offered and hmac.compare_digest(offered.encode(), token.encode()):
            return None
        return _error(401, "a valid dashboard token is required")

    @app.after_request
    def harden(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        if request.path.startswith("/api/") or request.path == "/metrics":
            response.headers["Cache-Control"] = "no-store"
        if token and request.args.get("token"):
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
        return response

    @app.errorhandler(BadParameter)
    def bad_parameter(exc: BadParameter) -> Response:
        return _error(400, str(exc))

    @app.errorhandler(404)
    def not_found(_exc: Exception) -> Response:
        return _error(404, f"no such page: {request.path}")


def _offered_token() -> str:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer "):].strip()
    return request.args.get("token") or request.cookies.get(TOKEN_COOKIE) or ""


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
            raise BadParameter(f"{name} must be 1-40 letters, digits or ._#:+-, got "
                               f"{value[:40]!r}")
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
        limit, offset = _paging()
        equals = _filters(*filters)
        excluded: dict[str, str] = {}
        if exclude:
            for value in _filters(f"exclude_{exclude}").values():
                excluded[exclude] = value
        reader = database.reader()
        found = reader.page(table, limit=limit, offset=offset, exclude=excluded,
                            **equals) if reader else []
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
    @app.get("/api/status")
    def status() -> Response:
        return jsonify(trader_status(database.reader(), wall_clock()))

    @app.get("/api/positions")
    def positions() -> Response:
        state = trader_status(database.reader(), wall_clock())
        return jsonify({"rows": state.get("positions", []), "as_of": state.get("heartbeat_ts")})

    @app.get("/api/summary")
    def summary() -> Response:
        reader = database.reader()
        dry_run = _dry_run_arg()
        return jsonify(reader.trades_summary(dry_run=dry_run) if reader else {"count": 0})

    @app.get("/api/equity")
    def equity() -> Response:
        limit = _int_arg("limit", 1000, 1, 10_000)
        reader = database.reader()
        return jsonify({"points": equity_points(reader.equity_series(limit) if reader else [])})

    @app.get("/metrics")
    def metrics() -> Response:
        from live.metrics import render_metrics

        body, content_type = render_metrics(trader_status(database.reader(), wall_clock()))
        return Response(body, content_type=content_type)


def trader_status(reader: AuditReader | None, now: float) -> dict[str, Any]:
    """What the last heartbeat said, and whether the trader is running, stale or stopped."""
    if reader is None:
        return {"state": "no data", "message": "no audit database yet: start the trader"}
    beat = reader.last_event("heartbeat")
    if beat is None:
        return {"state": "no data", "message": "no heartbeat recorded yet"}
    data = json.loads(beat["data"] or "{}")
    wall = datetime.fromisoformat(data["wall_ts"]).timestamp() if data.get("wall_ts") else None
    age = None if wall is None else max(0.0, now - wall)
    last = reader.last_event(("startup", "shutdown"))
    if last is not None and last["kind"] == "shutdown" and last["id"] > beat["id"]:
        state = "stopped"
    else:
        state = "running" if age is not None and age <= STALE_AFTER_S else "stale"
    snapshot = reader.latest_snapshot()
    return {"state": state, "heartbeat_age_s": None if age is None else round(age, 1),
            "heartbeat_ts": beat["ts"], **data,
            "snapshot": {k: snapshot[k] for k in ("ts", "balance", "equity", "margin",
                                                  "margin_free", "open_positions")}
            if snapshot else None}


def equity_points(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Snapshots with the drawdown from the running equity peak (amount and %)."""
    peak = float("-inf")
    points = []
    for row in series:
        equity = float(row["equity"] or 0.0)
        peak = max(peak, equity)
        drawdown = equity - peak
        points.append({"ts": row["ts"], "equity": equity, "balance": row["balance"],
                       "drawdown": round(drawdown, 2),
                       "drawdown_pct": round(100.0 * drawdown / peak, 3) if peak > 0 else 0.0})
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dashboard.py", description="Serve the dashboard.")
    parser.add_argument("--db", help="audit database (AUDIT_DB, default data/audit.db)")
    parser.add_argument("--host", help="bind address (DASHBOARD_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (DASHBOARD_PORT, default 5000)")
    parser.add_argument("--config", help="settings file (default .env)")
    args = parser.parse_args(argv)
    try:
        config = LiveConfig.load(args.config, overrides={
            "audit_db": args.db, "dashboard_host": args.host, "dashboard_port": args.port})
        if not is_loopback(config.dashboard_host) and not config.dashboard_token:
            raise ConfigError(f"DASHBOARD_HOST={config.dashboard_host} is not loopback: set "
                              "DASHBOARD_TOKEN (every request must then carry it)")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from waitress import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    app = create_app(config.audit_db, token=config.dashboard_token)
    print(f"dashboard on http://{config.dashboard_host}:{config.dashboard_port} reading "
          f"{config.audit_db}", flush=True)
    serve(app, host=config.dashboard_host, port=config.dashboard_port, threads=8,
          ident="dashboard")
    return 0


if __name__ == "__main__":
    sys.exit(main())
