"""The dashboard's controls: halt, reduce, close all, resume and close one position. Each is a
POST that leaves a request for the trader (live/control_requests.py: the kill-switch file the
trader reads every loop, or a close request), with who asked; the trader acts on its next loop
and records the event. The dashboard itself still never writes the database.

They are on when a token protects the dashboard (DASHBOARD_CONTROLS=auto, the default), or
with DASHBOARD_CONTROLS=on, which without a token needs a loopback DASHBOARD_HOST. A POST
must pass, in order: the controls are on; without a token, a loopback Host (a DNS-rebinding
page reaches 127.0.0.1 under its own name); Sec-Fetch-Site same-origin and an Origin equal to
the dashboard's own, when the browser sends them; the session's CSRF token in the
X-CSRF-Token header (a form cannot set a header; the token is an HMAC of an HttpOnly,
SameSite=Strict session cookie, handed out by GET /api/controls). Anything else is a 403 that
changes nothing.

They act on one trader, the one of the settings' AUDIT_DB (live/control_target.py): GET
/api/controls says which (`acts_on`), and a POST names the trader shown (`?trader=`, needed
when the dashboard serves several); a name of another trader is a 409 that changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request

from live.config import LiveConfig
from live.config_values import KILL_SWITCH_ACTIONS
from live.control_requests import (
    Origin,
    clear_kill_switch,
    close_requests,
    kill_switch_origin,
    request_close,
    set_kill_switch,
)
from live.control_target import Target, control_target, notice, refusal
from live.dashboard_api import BadParameter
from live.dashboard_traders import Traders
from live.errors import ConfigError
from live.state_manager import kill_switch_file_level

logger = logging.getLogger(__name__)

SESSION_COOKIE = "dashboard_session"
CSRF_HEADER = "X-CSRF-Token"
LEVEL_TEXT = {
    "halt": "no new entries; exits and stops go on",
    "reduce": "no new entries; positions are only closed",
    "close_all": "every position and pending entry of this trader is closed, then it halts",
}


@dataclass(frozen=True)
class ControlSettings:
    """What the controls act on (the trader's KILL_SWITCH_FILE, and its AUDIT_DB: which of
    the traders served it is) and DASHBOARD_CONTROLS. Without `audit_db` they act on the one
    database served, and on none when there are several."""

    kill_switch_file: Path
    mode: str = "auto"
    kill_switch_action: str = "halt"  # what a kill-switch file with no level means
    audit_db: Path | None = None


def control_settings(config: LiveConfig) -> ControlSettings:
    """The controls of `config`; ConfigError for DASHBOARD_CONTROLS=on without a token on an
    address beyond loopback (anyone who reaches the port could then halt or flatten)."""
    if (
        config.dashboard_controls == "on"
        and not config.dashboard_token
        and not is_loopback_name(config.dashboard_host)
    ):
        raise ConfigError(
            f"DASHBOARD_CONTROLS=on without DASHBOARD_TOKEN needs a loopback DASHBOARD_HOST "
            f"(127.0.0.1, ::1 or localhost), not {config.dashboard_host}: set DASHBOARD_TOKEN, "
            "or DASHBOARD_CONTROLS=off"
        )
    return ControlSettings(
        config.kill_switch_file,
        config.dashboard_controls,
        config.kill_switch_action,
        audit_db=config.audit_db,
    )


def is_loopback_name(host: str) -> bool:
    """Whether a host name or address (no port) is this machine's loopback."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def install_controls(
    app: Flask,
    settings: ControlSettings | None,
    traders: Traders,
    *,
    protected: bool,
    wall_clock: Callable[[], float],
) -> None:
    """Add GET /api/controls and the POST routes for `settings`' trader among `traders`;
    `protected`: a token guards every request."""
    guard = _Guard(settings, protected)

    @app.get("/api/controls")
    def controls() -> Response:
        return _describe(guard, traders)

    @app.post("/api/controls/<action>")
    def kill_switch(action: str) -> Response:
        admitted = _admit(guard, traders)
        if isinstance(admitted, Response):
            return admitted
        if action != "resume" and action not in KILL_SWITCH_ACTIONS:
            return _answer(404, error=f"no such control: {action[:40]!r}")
        return _written(
            lambda: (
                _resume(admitted, _origin(wall_clock))
                if action == "resume"
                else _set_level(admitted, action, _origin(wall_clock))
            )
        )

    @app.post("/api/controls/close/<int:ticket>")
    def close_position(ticket: int) -> Response:
        admitted = _admit(guard, traders)
        if isinstance(admitted, Response):
            return admitted
        return _written(lambda: _close(admitted, ticket, _origin(wall_clock)))

    @app.get("/api/controls/<action>")
    @app.get("/api/controls/close/<int:ticket>")
    def not_a_get(**_: object) -> Response:
        response = _answer(405, error=f"{request.path} takes a POST, from the dashboard's page")
        response.headers["Allow"] = "POST"
        return response


class _Guard:
    """The checks every control request passes (see the module's docstring)."""

    def __init__(self, settings: ControlSettings | None, protected: bool) -> None:
        self.settings = settings
        self.protected = protected
        self._secret = secrets.token_bytes(32)  # a restart ends every session: reload the page

    def why_off(self) -> str:
        settings = self.settings
        if settings is None:
            return "the dashboard was started without the trader's settings"
        if settings.mode == "off":
            return "DASHBOARD_CONTROLS=off"
        if settings.mode == "auto" and not self.protected:
            return (
                "no DASHBOARD_TOKEN protects the dashboard: set one, or DASHBOARD_CONTROLS=on "
                "on a loopback address"
            )
        return ""

    def host_refusal(self) -> str:
        """Without a token, only a loopback Host: a DNS-rebinding page has its own name."""
        if self.protected or is_loopback_name(_host_name(request.host)):
            return ""
        return "without DASHBOARD_TOKEN the controls answer only on a loopback address"

    def admit(self) -> tuple[ControlSettings | None, str]:
        """The settings to act on when this POST passes every check, else why not."""
        off = self.why_off()
        why = (
            f"the dashboard controls are off: {off}"
            if off
            else self.host_refusal() or _cross_site() or self._csrf_refusal()
        )
        return (None, why) if why else (self.settings, "")

    def session_id(self) -> str:
        offered = request.cookies.get(SESSION_COOKIE, "")
        return offered if 20 <= len(offered) <= 100 else secrets.token_urlsafe(32)

    def csrf(self, session: str) -> str:
        return hmac.new(self._secret, session.encode(), hashlib.sha256).hexdigest()

    def _csrf_refusal(self) -> str:
        session = request.cookies.get(SESSION_COOKIE, "")
        offered = request.headers.get(CSRF_HEADER, "").encode()
        if session and offered and hmac.compare_digest(offered, self.csrf(session).encode()):
            return ""
        return (
            f"the {CSRF_HEADER} header does not match this session: reload the page (a "
            "restarted dashboard starts new sessions)"
        )


def _admit(guard: _Guard, traders: Traders) -> ControlSettings | Response:
    """The settings to act on when this POST passes the guard (else a 403) and names the
    trader the controls act on (else a 400 for a name not served, or for none where several
    are; a 409 for another trader's)."""
    admitted, why = guard.admit()
    if admitted is None:
        return _answer(403, error=why)
    names = traders.names()
    if "trader" not in request.args and len(names) > 1:
        raise BadParameter(
            f"name the trader this action is for: ?trader=NAME (known: {', '.join(names)})"
        )
    chosen = _chosen(traders)
    target = _target(admitted, traders)
    refused = refusal(target, chosen)
    if refused:
        logger.warning("dashboard: a control meant for %s refused: %s", chosen, refused)
        return _answer(409, error=refused, acts_on=target.name, trader=chosen)
    return admitted


def _chosen(traders: Traders) -> str | None:
    """The trader the request names (`trader`), the default one without; a name not served
    is a 400, as on every endpoint (looked up, never used as a path)."""
    name = request.args.get("trader")
    names = traders.names()
    if name is None:
        return names[0] if names else None
    if name not in names:
        known = ", ".join(names) or "none"
        raise BadParameter(f"unknown trader {name[:40]!r} (known: {known})")
    return name


def _target(settings: ControlSettings, traders: Traders) -> Target:
    return control_target(traders, settings.audit_db, settings.kill_switch_file)


def _cross_site() -> str:
    """What the browser says about where the request comes from (absent outside browsers)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site != "same-origin":
        return f"a {site[:20]} request (Sec-Fetch-Site) cannot use the controls"
    origin = request.headers.get("Origin")
    if origin is not None and origin != request.host_url.rstrip("/"):
        return f"a request from {origin[:80]} cannot use the controls of {request.host_url}"
    return ""


def _host_name(host: str) -> str:
    """The Host header without its port: '[::1]:5000' -> '::1', 'localhost:5000' -> 'localhost'."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _origin(wall_clock: Callable[[], float]) -> Origin:
    return Origin.now(
        "dashboard",
        address=request.remote_addr or "",
        agent=request.headers.get("User-Agent", ""),
        at=datetime.fromtimestamp(wall_clock(), UTC),
    )


def _describe(guard: _Guard, traders: Traders) -> Response:
    """Whether the controls are on and, when they are, the trader they act on (`acts_on`)
    beside the one the request names (`trader`), what the page says instead of buttons while
    another is shown (`notice`), the session's CSRF token (its cookie set on first use), the
    kill switch the file asks for and the closes not yet taken."""
    off = guard.why_off() or guard.host_refusal()
    if off or guard.settings is None:
        return jsonify({"enabled": False, "why": off})
    chosen, target = _chosen(traders), _target(guard.settings, traders)
    about = {"acts_on": target.name, "trader": chosen, "notice": notice(target, chosen)}
    if target.problem:
        return jsonify({"enabled": False, "why": target.problem, **about})
    session = guard.session_id()
    response = jsonify(
        {"enabled": True, **about, "csrf_token": guard.csrf(session), **_state(guard.settings)}
    )
    if session != request.cookies.get(SESSION_COOKIE):
        response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="Strict",
                            secure=request.is_secure, path="/")  # fmt: skip
    return response


def _state(settings: ControlSettings) -> dict[str, Any]:
    """The kill switch the file asks for, who asked, and the close requests not yet taken."""
    path = settings.kill_switch_file
    level = kill_switch_file_level(path, settings.kill_switch_action)
    origin = kill_switch_origin(path) if level else None
    return {
        "kill_switch": level,
        "kill_switch_file": str(path),
        "asked_by": origin.as_dict() if origin else None,
        "closes_waiting": [r.ticket for r in close_requests(path) if r.ticket],
    }


def _set_level(settings: ControlSettings, level: str, origin: Origin) -> Response:
    path = settings.kill_switch_file
    before = kill_switch_file_level(path, settings.kill_switch_action)
    if before == level:
        return _answer(200, message=f"the kill switch is at {level} already", kill_switch=level)
    set_kill_switch(path, level, origin)
    logger.warning("dashboard: kill switch %s asked from %s", level, origin.describe())
    return _answer(
        200,
        message=f"kill switch set to {level} ({LEVEL_TEXT[level]}): the trader acts on its "
        "next loop",
        kill_switch=level,
    )


def _resume(settings: ControlSettings, origin: Origin) -> Response:
    if not clear_kill_switch(settings.kill_switch_file, origin):
        return _answer(409, error="no kill switch is on: nothing to resume", kill_switch=None)
    logger.warning("dashboard: kill switch removed, asked from %s", origin.describe())
    return _answer(
        200,
        message="kill switch removed: trading resumes on the trader's next loop",
        kill_switch=None,
    )


def _close(settings: ControlSettings, ticket: int, origin: Origin) -> Response:
    if ticket <= 0:
        return _answer(400, error=f"a position ticket is a positive integer, got {ticket}")
    if any(r.ticket == ticket for r in close_requests(settings.kill_switch_file)):
        return _answer(200, message=f"the close of #{ticket} is asked already", ticket=ticket)
    request_close(settings.kill_switch_file, ticket, origin)
    logger.warning("dashboard: close of #%s asked from %s", ticket, origin.describe())
    return _answer(
        202,
        message=f"asked the trader to close position #{ticket}: it acts on its next loop "
        "(the events list says what it did)",
        ticket=ticket,
    )


def _written(act: Callable[[], Response]) -> Response:
    """The action's answer; a request that cannot be written is a 500 that says why."""
    try:
        return act()
    except OSError as exc:
        logger.error("dashboard: %s", exc)
        return _answer(
            500,
            error=f"{exc}: the dashboard needs write access to the kill-switch file's folder",
        )


def _answer(status: int, **body: object) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response
