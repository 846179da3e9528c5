"""The dashboard's JSON API: the audit tables page by page, orders one row each, P/L per day
and per symbol, the trader's status, positions, trade summary, equity series and deepest
drawdown, the Prometheus metrics and the traders served. Every endpoint reads the trader named
by `?trader=` (the default one without); every query parameter is checked (an unknown or
malformed one is a 400 naming it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify, request

from live.dashboard_reports import order_groups, pnl_table
from live.dashboard_status import Database, equity_window, max_drawdown, trader_status
from live.dashboard_traders import Traders

MAX_LIMIT, MAX_OFFSET, MAX_EQUITY_POINTS = 500, 10_000_000, 10_000
ALWAYS_ALLOWED = ("token", "trader")  # the token and the trader chosen ride on any request
_NAME = re.compile(r"^[A-Za-z0-9._#:+-]{1,40}$")


class BadParameter(ValueError):
    """A query parameter out of range or malformed (answered with 400)."""


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


def _database(traders: Traders) -> Database:
    """The database of the trader the request names (`trader`), the default one without.
    The name is looked up among the traders served, never used as a path."""
    name = request.args.get("trader")
    database = traders.get(name)
    if database is None:
        known = ", ".join(traders.names()) or "none"
        raise BadParameter(f"unknown trader {str(name)[:40]!r} (known: {known})")
    return database


# ---------------------------------------------------------------- API


def install_tables(app: Flask, traders: Traders) -> None:
    def rows(table: str, *filters: str, exclude: str | None = None) -> Response:
        _only("limit", "offset", *filters, *([f"exclude_{exclude}"] if exclude else []))
        limit, offset = _paging()
        equals = _filters(*filters)
        excluded: dict[str, str] = {}
        if exclude:
            for value in _filters(f"exclude_{exclude}").values():
                excluded[exclude] = value
        reader = _database(traders).reader()
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


def install_reports(app: Flask, traders: Traders) -> None:
    """Orders one row each, P/L per day and per symbol, and the traders served."""

    @app.get("/api/order_groups")
    def grouped_orders() -> Response:
        _only("limit", "offset", "symbol")
        limit, offset = _paging()
        symbol = _filters("symbol").get("symbol")
        reader = _database(traders).reader()
        found = order_groups(reader, limit=limit, offset=offset, symbol=symbol) if reader else []
        return jsonify({"rows": found, "limit": limit, "offset": offset})

    def pnl(key: str) -> Response:
        _only("dry_run")
        dry_run, reader = _dry_run_arg(), _database(traders).reader()
        table = pnl_table(reader, key, dry_run=dry_run) if reader else {"rows": [], "total": None}
        return jsonify({**table, "clock": "UTC"} if key == "day" else table)

    @app.get("/api/daily_pnl")
    def daily_pnl() -> Response:
        return pnl("day")

    @app.get("/api/symbols")
    def symbols() -> Response:
        return pnl("symbol")

    @app.get("/api/traders")
    def listing() -> Response:
        _only()
        return jsonify({"traders": traders.listing()})


def install_state(app: Flask, traders: Traders, wall_clock: Callable[[], float]) -> None:
    def status_now() -> dict[str, Any]:
        database = _database(traders)
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
        reader = _database(traders).reader()
        dry_run = _dry_run_arg()
        return jsonify(reader.trades_summary(dry_run=dry_run) if reader else {"count": 0})

    @app.get("/api/equity")
    def equity() -> Response:
        _only("limit", "offset")
        limit = _int_arg("limit", 1000, 1, MAX_EQUITY_POINTS)
        offset = _int_arg("offset", 0, 0, MAX_OFFSET)
        database = _database(traders)
        return jsonify(
            {
                "points": equity_window(database, limit, offset),
                "max_drawdown": max_drawdown(database),
                "limit": limit,
                "offset": offset,
            }
        )

    @app.get("/metrics")
    def metrics() -> Response:
        from live.metrics import render_metrics

        _only()
        body, content_type = render_metrics(status_now())
        return Response(body, content_type=content_type)
