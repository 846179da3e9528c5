"""The web dashboard: a Flask app over read-only connections to audit databases (JSON API,
Prometheus metrics and a self-refreshing page), served by waitress. This module owns the app,
its guards and error pages, the page and the command line; the API is dashboard_api.py, what
it computes dashboard_status.py and dashboard_reports.py, the traders served
dashboard_traders.py.

    python live/dashboard.py [--db data/audit.db] [--db more.db] [--db-dir FOLDER]
                             [--host 127.0.0.1] [--port 5000]

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
import logging
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlencode

if __package__ in (None, ""):  # run as a script: make `live` and `backtest` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import Flask, Response, jsonify, redirect, request, send_from_directory
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from live.config import PROJECT_ROOT, LiveConfig, resolve_path
from live.dashboard_api import (
    MAX_LIMIT,
    BadParameter,
    install_reports,
    install_state,
    install_tables,
)
from live.dashboard_controls import ControlSettings, control_settings, install_controls
from live.dashboard_status import equity_points, trader_status
from live.dashboard_traders import Traders
from live.errors import ConfigError
from live.health import install_health

__all__ = ["MAX_LIMIT", "TOKEN_COOKIE", "create_app", "equity_points", "main", "trader_status"]

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
CHART_LIBRARY = PROJECT_ROOT / "backtest" / "static" / "vendor"
TOKEN_COOKIE = "dashboard_token"
MIN_TOKEN_LENGTH = 16  # a guessable token is no protection
TOKEN_HINT = 'make one with: python3 -c "import secrets; print(secrets.token_urlsafe(32))"'
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",  # the chart library sets
    # inline styles; the page has no form, and no <base> may redirect its scripts
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def create_app(
    db_path: str | Path | Sequence[str | Path],
    *,
    db_dir: str | Path | None = None,
    token: str = "",
    trust_proxy: bool = False,
    wall_clock: Callable[[], float] = time.time,
    controls: ControlSettings | None = None,
) -> Flask:
    """The dashboard app for `db_path` (several: one trader each, the first the default),
    and the databases in `db_dir`; `token`, when set, is required on every request.
    `trust_proxy` believes one reverse proxy's X-Forwarded-Proto and -Host (HTTPS there marks
    the token cookie Secure). `controls`: the settings of the trader the buttons act on, the
    one served whose database is their AUDIT_DB (dashboard_controls.py)."""
    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    if trust_proxy:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)  # type: ignore[method-assign]
    app.config["JSON_SORT_KEYS"] = False
    paths = [db_path] if isinstance(db_path, str | Path) else list(db_path)
    traders = Traders(paths, folder=db_dir)
    _install_guards(app, token)
    _install_errors(app, traders)
    install_tables(app, traders)
    install_state(app, traders, wall_clock)
    install_reports(app, traders)
    _install_pages(app)
    install_controls(app, controls, traders, protected=bool(token), wall_clock=wall_clock)
    install_health(app, traders, wall_clock)  # /healthz (live/health.py)
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


def _install_errors(app: Flask, traders: Traders) -> None:
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
            database = traders.get(request.args.get("trader"))
            where = database.path if database else "of this trader"
            return _error(500, f"cannot read the audit database {where}: {exc}")
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


# ---------------------------------------------------------------- page


def _install_pages(app: Flask) -> None:
    @app.get("/")
    def index() -> Response:
        return send_from_directory(STATIC, "dashboard.html")

    @app.get("/vendor/<path:name>")
    def vendor(name: str) -> Response:
        return send_from_directory(CHART_LIBRARY, name)

    @app.get("/charts.js")
    def chart_helpers() -> Response:  # the backtest report's axis labels and chart defaults
        return send_from_directory(CHART_LIBRARY.parent, "charts.js")


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
    try:
        config, dbs = settings_from_args(argv)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return serve(config, dbs)


def settings_from_args(argv: list[str] | None = None) -> tuple[LiveConfig, list[Path] | None]:
    """The dashboard's settings and its --db files (None: none given) from the command line;
    ConfigError for a setting that cannot be served (argparse exits 2 on a usage error)."""
    parser = argparse.ArgumentParser(prog="dashboard.py", description="Serve the dashboard.")
    parser.add_argument(
        "--db",
        action="append",
        help="audit database (AUDIT_DB, default data/audit.db); give it again for more "
        "traders, the first is shown first (the controls then act on the settings' AUDIT_DB)",
    )
    parser.add_argument(
        "--db-dir", help="folder of audit databases, one trader each (DASHBOARD_DB_DIR)"
    )
    parser.add_argument("--host", help="bind address (DASHBOARD_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (DASHBOARD_PORT, default 5000)")
    parser.add_argument("--config", help="settings file (default .env)")
    args = parser.parse_args(argv)
    config = LiveConfig.load(
        args.config,
        overrides={
            # one --db is the trader's AUDIT_DB, as `live_trader.py --db` makes it (the
            # controls act on it); of several, none is: the settings' AUDIT_DB stays
            "audit_db": args.db[0] if args.db and len(args.db) == 1 else None,
            "dashboard_db_dir": args.db_dir,
            "dashboard_host": args.host,
            "dashboard_port": args.port,
        },
    )
    control_settings(config)  # DASHBOARD_CONTROLS=on: a token, or a loopback address
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
    return config, [resolve_path(db) for db in args.db] if args.db else None


def app_for(config: LiveConfig, dbs: Sequence[Path] | None = None) -> Flask:
    """The app `serve` runs: the traders of `dbs` (the --db files) and DASHBOARD_DB_DIR's,
    without either AUDIT_DB's, with the controls of `config`'s trader."""
    folder = config.dashboard_db_dir
    return create_app(
        _served(config, dbs),
        db_dir=folder,
        token=config.dashboard_token,
        trust_proxy=config.dashboard_trust_proxy,
        controls=control_settings(config),
    )


def _served(config: LiveConfig, dbs: Sequence[Path] | None) -> list[Path]:
    if dbs is not None:
        return list(dbs)
    return [] if config.dashboard_db_dir else [config.audit_db]


def serve(config: LiveConfig, dbs: Sequence[Path] | None = None) -> int:
    """Bind, then say where (only once the port is ours), then serve until Ctrl+C."""
    from waitress import create_server

    host, port = config.dashboard_host, config.dashboard_port
    folder = config.dashboard_db_dir
    app = app_for(config, dbs)
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
    sources = [str(db) for db in _served(config, dbs)] + ([str(folder / "*.db")] if folder else [])
    print(
        f"dashboard on {url_of(host, server.effective_port)} reading {', '.join(sources)}",
        flush=True,
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
