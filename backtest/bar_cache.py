"""The cache of parsed bar files: a CSV's canonical frame (UTC times, validated) kept as raw
columns in one file, so the next backtest of the same CSV maps them instead of parsing again
(a million H1 bars: 0.3 s of parsing becomes about 0.02 s).

An entry is keyed by the CSV's resolved path, size and modification time, the clock its
naive times were read on and this format's version: any change to the file misses. Only a
frame that passed validation is written. The columns are mapped copy-on-write, so the frame
is writable and a write never reaches the file. The cache never stops a run: a cache that
cannot be read, written or made is skipped (logged at debug), and the CSV is parsed.

Where: BACKTEST_CACHE_DIR, else $XDG_CACHE_HOME/mt5-backtest/bars, else
~/.cache/mt5-backtest/bars. `off` (or --no-cache) turns it off. The least recently used
entries go when the folder passes MAX_BYTES.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from backtest.atomic import atomic_file

logger = logging.getLogger(__name__)

FORMAT = "bars-1"  # bump when the parsed frame's meaning changes: old entries then miss
MAX_BYTES = 2 << 30
_HEADER_BYTES = 4096  # the JSON header, padded; columns start on page boundaries
_SUFFIX = ".bars"


class BarCache:
    """Parsed frames of bar files in `folder` (see the module docstring)."""

    def __init__(self, folder: Path, max_bytes: int = MAX_BYTES) -> None:
        self.folder = folder
        self.max_bytes = max_bytes

    @classmethod
    def from_environment(cls) -> BarCache | None:
        """The cache BACKTEST_CACHE_DIR names (None for `off`), else the user's cache folder."""
        chosen = os.environ.get("BACKTEST_CACHE_DIR", "").strip()
        if chosen.lower() in ("off", "0", "no", "false"):
            return None
        if chosen:
            return cls(Path(chosen).expanduser())
        base = os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache"
        return cls(Path(base) / "mt5-backtest" / "bars")

    def get(self, source: Path, tz: str) -> pd.DataFrame | None:
        """The frame cached for `source` read on clock `tz`, or None."""
        entry = self._entry(source, tz)
        if entry is None or not entry.is_file():
            return None
        try:
            frame = _read(entry)
            os.utime(entry)  # recently used: pruned last
        except (OSError, ValueError, KeyError) as exc:
            logger.debug("bar cache: %s unreadable (%s); parsing the file", entry, exc)
            return None
        return frame

    def put(self, source: Path, tz: str, frame: pd.DataFrame) -> None:
        """Keep `frame` (validated bars of `source`) for the next run; never raises."""
        entry = self._entry(source, tz)
        if entry is None:
            return
        try:
            _write(entry, frame)
            self._prune(keep=entry)
        except (OSError, ValueError, TypeError) as exc:
            logger.debug("bar cache: cannot write %s (%s)", entry, exc)

    def _entry(self, source: Path, tz: str) -> Path | None:
        try:
            resolved = source.resolve()
            info = resolved.stat()
        except OSError:
            return None
        key = f"{FORMAT}|{resolved}|{info.st_size}|{info.st_mtime_ns}|{tz}"
        return self.folder / (hashlib.sha256(key.encode()).hexdigest()[:32] + _SUFFIX)

    def _prune(self, keep: Path) -> None:
        entries = []
        for path in self.folder.glob(f"*{_SUFFIX}"):
            try:
                info = path.stat()
            except OSError:
                continue  # removed by another run meanwhile
            entries.append((info.st_mtime_ns, info.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):  # least recently used first
            if total <= self.max_bytes:
                break
            if path != keep:
                path.unlink(missing_ok=True)
                total -= size


def _layout(frame: pd.DataFrame) -> list[dict[str, object]]:
    columns, offset = [], _HEADER_BYTES
    for name in frame.columns:
        values = _raw(frame[name])
        columns.append({"name": name, "dtype": values.dtype.str, "offset": offset})
        offset += -(-values.nbytes // _HEADER_BYTES) * _HEADER_BYTES
    return columns


def _raw(column: pd.Series) -> np.ndarray:
    """A column's values as stored: times as int64 nanoseconds since 1970 UTC."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return pd.DatetimeIndex(column).tz_convert("UTC").as_unit("ns").asi8
    values = column.to_numpy()
    if values.dtype.kind not in "fiu":
        raise TypeError(f"column {column.name} is {values.dtype}: not cached")
    return np.ascontiguousarray(values)


def _write(entry: Path, frame: pd.DataFrame) -> None:
    columns = _layout(frame)
    header = json.dumps({"format": FORMAT, "rows": len(frame), "columns": columns}).encode()
    if len(header) > _HEADER_BYTES:
        raise ValueError("too many columns for the header")
    with atomic_file(entry, "wb") as handle:
        handle.write(header.ljust(_HEADER_BYTES, b" "))
        for column in columns:
            handle.seek(int(column["offset"]))
            handle.write(memoryview(_raw(frame[str(column["name"])])))


def _read(entry: Path) -> pd.DataFrame:
    with entry.open("rb") as handle:
        header = json.loads(handle.read(_HEADER_BYTES))
    if header["format"] != FORMAT:
        raise ValueError(f"format {header['format']!r}")
    rows, data = int(header["rows"]), {}
    for column in header["columns"]:
        values = np.memmap(
            entry, dtype=np.dtype(column["dtype"]), mode="c", offset=column["offset"], shape=rows
        )
        if column["name"] == "time":
            data["time"] = pd.DatetimeIndex(values.view("datetime64[ns]")).tz_localize("UTC")
        else:
            data[column["name"]] = np.asarray(values)  # a plain array over the mapping
    return pd.DataFrame(data, copy=False)
