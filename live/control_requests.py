"""What other processes ask of a running trader, as files beside its kill-switch file: the one
owner of that file protocol. The dashboard and the Telegram commands write requests, the trader
reads them once per loop, acts, and records each in the audit log with who asked. Nothing here
touches the database: the askers never write it.

- The kill-switch file (KILL_SWITCH_FILE), as people write it by hand: its presence halts,
  its first word may name the level (halt, reduce, close_all). A request adds the line
  `origin {json}` saying who asked; readers of the level look at the first word only.
- Resume: who asked goes to `resume.json` in the control folder, then the kill-switch file is
  removed; the trader takes the note when it sees the switch gone (a note left with no
  switch to clear is dropped at the next loop, so it never explains a later removal).
- Close one position: `close-<time>-<ticket>-<id>.json` in the control folder; the trader
  closes the ticket if it is its own, records what it did, and removes the file.

The control folder is `<kill-switch file>.requests/`. Every file is written whole
(backtest/atomic.py), so a reader never sees half a request.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backtest.atomic import write_atomic
from live.config_values import KILL_SWITCH_ACTIONS

logger = logging.getLogger(__name__)

ORIGIN_PREFIX = "origin "
RESUME_NOTE = "resume.json"
CLOSE_PREFIX = "close-"
AGENT_CHARS = 120  # enough to tell one browser from another, not a whole fingerprint


@dataclass(frozen=True)
class Origin:
    """Who asked: `via` (dashboard, telegram), the remote `address` and user `agent` when
    known (the agent trimmed to printable text), `at` the UTC time of the request (ISO)."""

    via: str
    address: str = ""
    agent: str = ""
    at: str = ""

    def __post_init__(self) -> None:
        for spec in fields(self):
            limit = AGENT_CHARS if spec.name == "agent" else 60
            object.__setattr__(self, spec.name, _printable(getattr(self, spec.name), limit))

    @classmethod
    def now(
        cls, via: str, *, address: str = "", agent: str = "", at: datetime | None = None
    ) -> Origin:
        """An origin stamped with `at` (default: the current UTC time)."""
        moment = (at or datetime.now(UTC)).astimezone(UTC)
        return cls(via, address, agent, moment.isoformat(timespec="seconds"))

    @classmethod
    def from_dict(cls, data: object) -> Origin | None:
        if not isinstance(data, dict) or not data.get("via"):
            return None
        return cls(**{f.name: str(data.get(f.name) or "") for f in fields(cls)})

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def describe(self) -> str:
        """'dashboard (127.0.0.1, Mozilla/5.0 ...)', as an event message says it."""
        where = ", ".join(part for part in (self.address, self.agent) if part)
        return self.via + (f" ({where})" if where else "")


@dataclass(frozen=True)
class CloseRequest:
    """A request to close position `ticket`; `problem` says why a file was not one."""

    ticket: int
    origin: Origin | None
    file: Path
    problem: str = ""

    @property
    def key(self) -> str:
        """Unique per request (its file's name): one request, one client order id."""
        return self.file.stem


def control_folder(kill_switch_file: Path) -> Path:
    return kill_switch_file.with_name(kill_switch_file.name + ".requests")


# ---------------------------------------------------------------- the kill switch


def set_kill_switch(kill_switch_file: Path, level: str, origin: Origin) -> None:
    """Write the kill-switch file at `level` with who asked (a resume waiting to be seen is
    withdrawn: the switch is on again)."""
    if level not in KILL_SWITCH_ACTIONS:
        raise ValueError(f"kill-switch level must be one of {', '.join(KILL_SWITCH_ACTIONS)}")
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # no note, no folder
        (control_folder(kill_switch_file) / RESUME_NOTE).unlink()
    text = f"{level}\n{ORIGIN_PREFIX}{json.dumps(origin.as_dict())}\n"
    write_atomic(kill_switch_file, text, durable=True)


def clear_kill_switch(kill_switch_file: Path, origin: Origin) -> bool:
    """Remove the kill-switch file, leaving who asked for the trader; False if there was
    none. The note is written first, so the trader never sees the switch gone without it."""
    if not kill_switch_file.exists():
        return False
    note = control_folder(kill_switch_file) / RESUME_NOTE
    write_atomic(note, json.dumps(origin.as_dict()), durable=True)
    try:
        kill_switch_file.unlink()
    except FileNotFoundError:  # removed meanwhile by someone else: not this request's doing
        note.unlink(missing_ok=True)
        return False
    except OSError:
        note.unlink(missing_ok=True)
        raise
    return True


def kill_switch_origin(kill_switch_file: Path) -> Origin | None:
    """Who asked for the kill switch in force (None: written by hand, or no file)."""
    try:
        lines = kill_switch_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines[1:]:
        if line.startswith(ORIGIN_PREFIX):
            return Origin.from_dict(_json(line[len(ORIGIN_PREFIX) :]))
    return None


def take_resume_origin(kill_switch_file: Path) -> Origin | None:
    """Who removed the kill-switch file, once (the note is deleted as it is read)."""
    note = control_folder(kill_switch_file) / RESUME_NOTE
    try:
        text = note.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    note.unlink(missing_ok=True)
    return Origin.from_dict(_json(text))


# ---------------------------------------------------------------- closing one position


def request_close(
    kill_switch_file: Path, ticket: int, origin: Origin, *, at: datetime | None = None
) -> CloseRequest:
    """Ask the trader to close position `ticket` (a positive integer)."""
    if not _is_ticket(ticket):
        raise ValueError(f"a position ticket is a positive integer, got {ticket!r}")
    stamp = (at or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    name = f"{CLOSE_PREFIX}{stamp}-{ticket}-{secrets.token_hex(4)}.json"
    path = control_folder(kill_switch_file) / name
    body = {"action": "close_position", "ticket": ticket, "origin": origin.as_dict()}
    write_atomic(path, json.dumps(body), durable=True)
    return CloseRequest(ticket, origin, path)


def close_requests(kill_switch_file: Path) -> list[CloseRequest]:
    """The close requests waiting, oldest first; a file that is no request comes back with
    its `problem` (so the trader can say so and remove it)."""
    folder = control_folder(kill_switch_file)
    try:
        names = sorted(p for p in folder.iterdir() if p.name.startswith(CLOSE_PREFIX))
    except OSError:  # no folder: nothing was ever asked
        return []
    return [_read_close(path) for path in names if path.suffix == ".json"]


def forget(request: CloseRequest) -> None:
    """The request is done with: remove its file."""
    request.file.unlink(missing_ok=True)


def _read_close(path: Path) -> CloseRequest:
    try:
        data = _json(path.read_text(encoding="utf-8", errors="replace"))
    except OSError as exc:
        return CloseRequest(0, None, path, f"cannot read {path.name}: {exc.strerror or exc}")
    if not isinstance(data, dict):
        return CloseRequest(0, None, path, f"{path.name} is not a JSON object")
    ticket, origin = data.get("ticket"), Origin.from_dict(data.get("origin"))
    if data.get("action") != "close_position" or not _is_ticket(ticket):
        return CloseRequest(0, origin, path, f"{path.name} names no position ticket to close")
    return CloseRequest(ticket, origin, path)


def _is_ticket(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _printable(value: object, limit: int) -> str:
    text = "".join(ch if ch.isprintable() else " " for ch in str(value or ""))
    return text.strip()[:limit]
