"""The served simulator's state on disk, so the simulated broker outlives its own restarts.

Two files: `STATE` holds what changes (account, positions, pending orders, clock, counters)
and is rewritten atomically (a temp file, fsync, rename) after every change; `STATE.journal`
holds what never changes once written (history orders and deals), one JSON line each,
appended. A save costs what changed, not the whole history, so a long session does not get
slower per trade. The snapshot names how many journal bytes it covers: lines appended by a
save that died before its snapshot was renamed are cut off at load, so what is restored is
always one consistent moment.

An older state file with the history inline (no journal) still loads; the next save moves
its history into the journal.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from backtest.atomic import atomic_file
from live.sim_terminal.terminal import SimTerminal


class StateFileError(ValueError):
    """A state file or its journal that cannot be read back; names the file."""


class StateFile:
    """Load a terminal's state from `path` and save it after each change."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.journal = self.path.with_name(self.path.name + ".journal")
        self._orders_written = 0
        self._deals_written = 0
        self._journal_bytes = 0

    def load_into(self, terminal: SimTerminal) -> bool:
        """Restore `terminal` from the files; False when there is no state yet."""
        if not self.path.is_file():
            return False
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StateFileError(f"{self.path}: not a simulator state file ({exc})") from exc
        covered = state.pop("journal", None)
        if covered is None:  # the older, all-inline format
            self.journal.unlink(missing_ok=True)
        else:
            state["history_orders"], state["deals"] = self._read_journal(int(covered["bytes"]))
        terminal.sim_load_state(state)
        if covered is not None:
            self._orders_written = len(state["history_orders"])
            self._deals_written = len(state["deals"])
            self._journal_bytes = int(covered["bytes"])
        return True

    def save(self, terminal: SimTerminal) -> None:
        """Append the new history to the journal, then replace the snapshot."""
        with terminal.state_lock:  # every call holds it: this save sees one moment
            state = terminal.sim_state(self._orders_written, self._deals_written)
            orders, deals = state.pop("history_orders"), state.pop("deals")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            appended = (
                self._append([{"order": o} for o in orders] + [{"deal": d} for d in deals])
                if orders or deals
                else 0
            )
            state["journal"] = {
                "bytes": self._journal_bytes + appended,
                "history_orders": self._orders_written + len(orders),
                "deals": self._deals_written + len(deals),
            }
            self._replace_snapshot(state)
            # counted only now: had the snapshot failed, the next save rewrites these lines
            self._journal_bytes += appended
            self._orders_written += len(orders)
            self._deals_written += len(deals)

    # ------------------------------------------------------------ files

    def _read_journal(self, covered: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        if covered == 0:
            self.journal.unlink(missing_ok=True)
            return [], []
        try:
            with self.journal.open("rb+") as handle:
                data = handle.read(covered)
                handle.truncate(covered)  # lines of a save whose snapshot never landed
        except OSError as exc:
            raise StateFileError(
                f"{self.journal}: the history of {self.path} is missing ({exc})"
            ) from exc
        if len(data) < covered:
            raise StateFileError(
                f"{self.journal}: {len(data)} bytes, but {self.path} needs {covered}"
            )
        orders, deals = [], []
        for number, line in enumerate(data.splitlines(), start=1):
            try:
                entry = json.loads(line)
            except ValueError as exc:
                raise StateFileError(f"{self.journal}, line {number}: {exc}") from exc
            (orders.append(entry["order"]) if "order" in entry else deals.append(entry["deal"]))
        return orders, deals

    def _append(self, entries: list[dict[str, Any]]) -> int:
        """Write `entries` after the covered part of the journal; the bytes written."""
        data = "".join(json.dumps(entry, separators=(",", ":")) + "\n" for entry in entries)
        encoded = data.encode("utf-8")
        with self.journal.open("ab") as handle:
            if handle.tell() != self._journal_bytes:  # lines no snapshot covers
                handle.truncate(self._journal_bytes)
            handle.write(encoded)
            handle.flush()
            os.fsync(handle.fileno())
        return len(encoded)

    def _replace_snapshot(self, state: dict[str, Any]) -> None:
        with atomic_file(self.path, "w", durable=True) as handle:
            json.dump(state, handle)
