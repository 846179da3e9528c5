"""Which trader the dashboard's controls act on, and whether they may act on it now.

The controls write the KILL_SWITCH_FILE of the dashboard's settings, so they act on the trader
of those settings: the one whose database is their AUDIT_DB (paths resolved), known by the
name the page's selector uses. With several traders on one dashboard the buttons act on that
one only; an action names the trader it is meant for, and any other name is refused.

Each trader's heartbeat records the kill-switch file it reads. The controls refuse when that
trader reads another file than the settings' (it was started with other settings: a button
would write a file nobody reads), or when another trader served here reads the same file (a
button would act on both). A path found in a database is only ever compared, never written
to: a database can stop the buttons, never point them at another file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from live.dashboard_traders import Traders, last_heartbeat


@dataclass(frozen=True)
class Target:
    """The trader the controls act on (`name`, None when no trader served is theirs) and
    why they cannot act on it now (`problem`, "" when they can)."""

    name: str | None
    problem: str = ""


def control_target(traders: Traders, audit_db: Path | None, kill_switch_file: Path) -> Target:
    """The trader of the settings whose AUDIT_DB is `audit_db` and KILL_SWITCH_FILE is
    `kill_switch_file`; `audit_db` None: the one trader served, if there is only one."""
    names = traders.names()
    if audit_db is None:
        if len(names) == 1:
            return _checked(traders, names[0], kill_switch_file)
        return Target(
            None, "the controls were given no AUDIT_DB: which trader they act on is unknown"
        )
    name = traders.name_of(audit_db)
    if name is None:
        return Target(
            None,
            f"the controls act on the trader of the dashboard's settings, whose database "
            f"(AUDIT_DB={audit_db}) this dashboard does not serve: add it with --db, or start "
            "the dashboard with that trader's settings (--config)",
        )
    return _checked(traders, name, kill_switch_file)


def refusal(target: Target, chosen: str | None) -> str:
    """Why an action meant for trader `chosen` is not carried out ("" when it is)."""
    if target.problem:
        return f"nothing was done: {target.problem}"
    if chosen != target.name:
        return (
            f"nothing was done: the controls act on trader {target.name} only (the trader of "
            f"the dashboard's settings); {chosen} can only be watched here"
        )
    return ""


def notice(target: Target, chosen: str | None) -> str:
    """What the page says, instead of buttons, while trader `chosen` is shown ("" when the
    buttons are for it)."""
    if target.problem:
        return f"The controls cannot be used: {target.problem}."
    if chosen != target.name:
        return (
            f"The controls act on trader {target.name} only (the trader of this dashboard's "
            f"settings, AUDIT_DB). {chosen} can only be watched here: choose {target.name} "
            "above to use them."
        )
    return ""


def _checked(traders: Traders, name: str, kill_switch_file: Path) -> Target:
    """`name`, with the problem its heartbeat or another trader's shows, if any."""
    reads = _kill_switch_file_of(traders, name)
    if reads is not None and not _same(reads, kill_switch_file):
        return Target(
            name,
            f"trader {name} reads the kill-switch file {reads} (its last heartbeat says so), "
            f"the dashboard's settings name {kill_switch_file}: a button would write a file "
            f"the trader never reads; start the dashboard with that trader's settings "
            f"(--config), or KILL_SWITCH_FILE={reads}",
        )
    sharing = [
        other
        for other in traders.names()
        if other != name and _same(_kill_switch_file_of(traders, other), kill_switch_file)
    ]
    if sharing:
        return Target(
            name,
            f"traders {name} and {', '.join(sharing)} read the same kill-switch file "
            f"{kill_switch_file}: a button would act on all of them; give each trader its "
            "own KILL_SWITCH_FILE",
        )
    return Target(name)


def _kill_switch_file_of(traders: Traders, name: str) -> Path | None:
    database = traders.get(name)
    recorded = last_heartbeat(database).get("kill_switch_file") if database else None
    return Path(recorded) if isinstance(recorded, str) and recorded else None


def _same(recorded: Path | None, kill_switch_file: Path) -> bool:
    if recorded is None:
        return False
    try:
        return recorded.resolve() == kill_switch_file.resolve()
    except (OSError, RuntimeError, ValueError):  # unresolvable (a loop, a NUL): no match
        return False
