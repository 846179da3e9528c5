"""Whether a trader is alive, read from its audit database: the last heartbeat's age, whether
the terminal was connected then, and whether the trader has shut down since. One answer for
the dashboard's `/healthz`, Docker's HEALTHCHECK and monitoring scripts:

    python -m live.health [--db data/audit.db] [--max-age 180]

prints the report as JSON and exits 0 when healthy, 1 when not, 2 on a usage or settings
error. Healthy means: a heartbeat at most `max_age` seconds old (the trader writes one every
minute), no shutdown recorded after it, and the terminal connected. Nothing secret is in the
report: no account, no path, no setting.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from live.audit_reader import AuditReader

DEFAULT_MAX_AGE_S = 180.0  # heartbeats come every minute; three missed: the trader is gone
MAX_AGE_RANGE = (10.0, 86_400.0)
EXIT_HEALTHY, EXIT_UNHEALTHY, EXIT_USAGE = 0, 1, 2


def health_report(
    reader: AuditReader | None, now: float, *, max_age: float = DEFAULT_MAX_AGE_S
) -> dict[str, Any]:
    """The health of the trader writing the database `reader` reads (None: no database yet)
    at wall-clock `now` (epoch seconds)."""
    if reader is None:
        return _unhealthy("no data", "no audit database yet: is the trader started?", max_age)
    try:
        beat = reader.last_event("heartbeat")
        last = reader.last_event(("startup", "shutdown"))
    except sqlite3.Error as exc:
        return _unhealthy("unreadable", f"cannot read the audit database: {exc}", max_age)
    if beat is None:
        return _unhealthy("no data", "no heartbeat recorded yet: is the trader running?", max_age)
    data = json.loads(str(beat["data"] or "{}"))
    state, age = liveness(beat, data, last, now, max_age)
    alive = state == "running"
    connected = bool(data.get("connected"))
    report = {
        "healthy": alive and connected,
        "state": state,
        "alive": alive,
        "connected": connected,
        "heartbeat_age_s": None if age is None else round(age, 1),
        "heartbeat_wall_ts": data.get("wall_ts"),
        "max_age_s": max_age,
        "mode": data.get("mode"),
        "backend": data.get("backend"),
    }
    report["reason"] = _reason(report)
    return report


def liveness(
    beat: Any, data: dict[str, Any], last: Any, now: float, max_age: float = DEFAULT_MAX_AGE_S
) -> tuple[str, float | None]:
    """The state of the trader behind heartbeat row `beat` (its `data` decoded) and its age
    in seconds at `now`: 'stopped' when `last`, the newest startup or shutdown event, is a
    shutdown after it; 'running' when it is at most `max_age` old; else 'stale'."""
    age = _age(data.get("wall_ts"), now)
    if last is not None and last["kind"] == "shutdown" and int(last["id"]) > int(beat["id"]):
        return "stopped", age
    return ("running" if age is not None and age <= max_age else "stale"), age


def _unhealthy(state: str, reason: str, max_age: float) -> dict[str, Any]:
    return {
        "healthy": False,
        "state": state,
        "alive": False,
        "connected": None,  # unknown: no heartbeat says
        "heartbeat_age_s": None,
        "heartbeat_wall_ts": None,
        "max_age_s": max_age,
        "mode": None,
        "backend": None,
        "reason": reason,
    }


def _age(wall_ts: object, now: float) -> float | None:
    if not wall_ts:
        return None
    try:
        return max(0.0, now - datetime.fromisoformat(str(wall_ts)).timestamp())
    except ValueError:
        return None


def _reason(report: dict[str, Any]) -> str:
    if report["state"] == "stopped":
        return "the trader shut down after its last heartbeat"
    if report["heartbeat_age_s"] is None:
        return "the last heartbeat has no time: cannot tell whether the trader runs"
    if not report["alive"]:
        return (
            f"the last heartbeat is {report['heartbeat_age_s']} s old (more than "
            f"{report['max_age_s']:g} s): the trader is stuck or gone"
        )
    if not report["connected"]:
        return "the trader runs but its MT5 terminal is unreachable (it keeps retrying)"
    return "ok"


def open_reader(path: Path) -> AuditReader | None:
    """A read-only reader of the audit database at `path`, None when there is none."""
    try:
        return AuditReader(path) if path.is_file() else None
    except (FileNotFoundError, sqlite3.Error):
        return None


# ---------------------------------------------------------------- the dashboard's route


def install_health(app: Any, traders: Any, wall_clock: Callable[[], float]) -> None:
    """`GET /healthz` on the dashboard `app`: every trader's report (`?trader=NAME`: that
    one's), `healthy` when all are, 200 then, else 503; `?max_age=SECONDS` sets the allowed
    heartbeat age. The dashboard's token guard covers it like every route: a monitor sends
    `Authorization: Bearer <token>` (SETUP_AND_TESTING.md, "Running unattended").
    `traders` is the dashboard's (live/dashboard_traders.py): `names()` and `get(name)`."""
    from flask import request

    @app.get("/healthz")
    def healthz() -> Any:
        unknown = [name for name in request.args if name not in ("max_age", "trader", "token")]
        max_age, problem = _max_age_arg(request.args.get("max_age"))
        if unknown:
            problem = f"unknown parameter {unknown[0][:40]!r} for /healthz (known: max_age, trader)"
        if problem:
            return _json({"error": problem}, 400)
        chosen = request.args.get("trader")
        names = [chosen] if chosen is not None else (traders.names() or [None])
        databases = [traders.get(name) for name in names]
        if None in databases:
            return _json({"error": f"no trader named {str(chosen)[:40]!r}"}, 404)
        now = wall_clock()
        reports = [
            {"name": name, **health_report(_reader(db), now, max_age=max_age)}
            for name, db in zip(names, databases, strict=True)
        ]
        healthy = all(report["healthy"] for report in reports)
        return _json({"healthy": healthy, "traders": reports}, 200 if healthy else 503)


def _reader(database: Any) -> AuditReader | None:
    try:
        return database.reader()
    except sqlite3.Error:  # not an audit database: reported as no data
        return None


def _json(body: dict[str, Any], status: int) -> Any:
    from flask import jsonify

    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def _max_age_arg(text: str | None) -> tuple[float, str]:
    """(max_age, "") from `?max_age=`, or (default, the problem)."""
    if text is None:
        return DEFAULT_MAX_AGE_S, ""
    low, high = MAX_AGE_RANGE
    try:
        value = float(text)
    except ValueError:
        return DEFAULT_MAX_AGE_S, f"max_age must be a number of seconds, got {text[:40]!r}"
    if not low <= value <= high:
        return DEFAULT_MAX_AGE_S, f"max_age must be between {low:g} and {high:g}, got {value:g}"
    return value, ""


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None, *, now: Callable[[], float] = time.time) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m live.health",
        description="Is the trader alive? Reads its audit database; prints JSON; exit 0 "
        "healthy, 1 unhealthy, 2 usage or settings error.",
    )
    parser.add_argument("--db", help="audit database (AUDIT_DB, default data/audit.db)")
    parser.add_argument(
        "--max-age",
        type=float,
        default=DEFAULT_MAX_AGE_S,
        help=f"allowed heartbeat age in seconds (default {DEFAULT_MAX_AGE_S:g})",
    )
    parser.add_argument("--config", help="settings file (default .env)")
    args = parser.parse_args(argv)
    low, high = MAX_AGE_RANGE
    if not low <= args.max_age <= high:
        parser.error(f"--max-age must be between {low:g} and {high:g} seconds")
    db = _audit_db(args.db, args.config)
    if db is None:
        return EXIT_USAGE
    report = health_report(open_reader(db), now(), max_age=args.max_age)
    print(json.dumps(report, indent=2))
    return EXIT_HEALTHY if report["healthy"] else EXIT_UNHEALTHY


def _audit_db(db: str | None, config_file: str | None) -> Path | None:
    """The database to read: --db, else AUDIT_DB from the settings (None after printing a
    settings error)."""
    from live.config import LiveConfig
    from live.errors import ConfigError

    try:
        return LiveConfig.load(config_file, overrides={"audit_db": db}).audit_db
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


if __name__ == "__main__":
    sys.exit(main())
