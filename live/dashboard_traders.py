"""Which audit databases the dashboard serves, each one trader known by a name: the files given
(`--db`, several allowed) and the `*.db` files of a folder (`--db-dir`, looked at again on every
request, so a trader started later appears). A request names its trader with `?trader=`; the
name is looked up among these, never turned into a path.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from live.dashboard_status import Database

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class Traders:
    """The databases by name, in the order given, then the folder's in name order. The first
    is the default: a request without `trader` reads it, as a one-database dashboard does."""

    def __init__(self, paths: Sequence[str | Path], folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder else None
        self._lock = threading.Lock()
        self._by_name: dict[str, Database] = {}
        self._named: dict[Path, str] = {}  # resolved path -> name, kept across rescans
        for path in paths:
            self._add(Path(path))
        if not paths and self.folder is None:
            raise ValueError("no audit database given: a path, or a folder of them")
        self._explicit = list(self._by_name)
        self._listed = list(self._explicit)
        # an empty folder reads as a database not there yet: "no data", naming the folder
        self._fallback = Database(self.folder or Path(paths[0]))

    def names(self) -> list[str]:
        """Every trader's name, the default first."""
        self._rescan()
        return list(self._listed)

    def get(self, name: str | None) -> Database | None:
        """The trader's database (the default for None), None for a name not served."""
        names = self.names()
        if name is None:
            return self._by_name[names[0]] if names else self._fallback
        return self._by_name.get(name) if name in names else None

    def name_of(self, path: str | Path) -> str | None:
        """The name of the trader whose database is `path` (symbolic links and relative
        parts resolved), None when that database is not served."""
        served = self.names()  # a folder's new file first gets its name
        name = self._named.get(Path(path).resolve())
        return name if name in served else None

    def listing(self) -> list[dict[str, Any]]:
        """Name, database and what its last heartbeat says (strategy, account, mode)."""
        listed = []
        for index, name in enumerate(self.names()):
            database = self._by_name[name]
            about = _about(database)
            listed.append({"name": name, "db": str(database.path), "default": index == 0, **about})
        return listed

    def _rescan(self) -> None:
        if self.folder is None:
            return
        try:
            found = sorted(p for p in self.folder.glob("*.db") if p.is_file())
        except OSError:  # the folder is gone or unreadable: its traders are not served now
            found = []
        with self._lock:
            present = [self._add(path) for path in found]
            self._listed = self._explicit + [n for n in present if n not in self._explicit]

    def _add(self, path: Path) -> str:
        key = path.resolve()
        name = self._named.get(key)
        if name is None:
            name = self._named[key] = self._free_name(path)
            self._by_name[name] = Database(path)
        return name

    def _free_name(self, path: Path) -> str:
        """The file's name without .db; a second file of that name gets its folder's too."""
        stem = _UNSAFE.sub("_", path.stem)[:40] or "trader"
        candidates = [stem, f"{_UNSAFE.sub('_', path.parent.name)[:20]}-{stem}"]
        candidates += [f"{stem}-{n}" for n in range(2, 1000)]
        return next(c for c in candidates if c not in self._by_name)


def last_heartbeat(database: Database) -> dict[str, Any]:
    """What the trader's last heartbeat says; {} for none, or for anything that is not an
    audit database's heartbeat (one odd file must not break the page of every trader)."""
    try:
        reader = database.reader()
        beat = reader.last_event("heartbeat") if reader else None
        data = json.loads(str(beat["data"] or "{}")) if beat else {}
    except (sqlite3.Error, ValueError):  # not an audit database (yet), or not JSON
        return {}
    return data if isinstance(data, dict) else {}


def _about(database: Database) -> dict[str, Any]:
    data = last_heartbeat(database)
    account = data.get("account")
    account = account if isinstance(account, dict) else {}
    return {
        "strategy": data.get("strategy"),
        "mode": data.get("mode"),
        "account": account.get("login"),
        "server": account.get("server"),
    }
