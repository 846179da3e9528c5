"""The cache of parsed bar files: a CSV's canonical frame (UTC times, validated) kept as raw
columns in one file, so the next backtest of the same CSV maps them instead of parsing again
(a million H1 bars: 0.2-0.3 s of parsing becomes about 0.02 s, its checks included).

An entry is keyed by the CSV's resolved path, size and modification time, the clock its
naive times were read on and this format's version: any change to the file misses. Only a
frame that passed validation is written. The columns are mapped copy-on-write, so the frame
is writable and a write never reaches the file. The cache never stops a run: a cache that
cannot be read, written or made is skipped (logged at debug), and the CSV is parsed.

An entry is trusted only when it is exactly what this module writes: its header names its
key, and the canonical columns (backtest.data.BAR_COLUMNS) with their dtypes and offsets for
its row count, which the file's size must match to the byte; each column's checksum must
match, and the mapped frame must pass backtest.data.validate_bars. Anything else (an edited,
cut or foreign file) is a miss, and the entry is written again. Where the columns lie and
what they hold comes from this module, never from the header, so no header maps past the
file or as another type.

Where: BACKTEST_CACHE_DIR, else $XDG_CACHE_HOME/mt5-backtest/bars, else
~/.cache/mt5-backtest/bars. `off` (or --no-cache) turns it off. The least recently used
entries go when the folder passes MAX_BYTES.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
from pathlib import Path

import numpy as np
import pandas as pd

from backtest.atomic import atomic_file
from backtest.data import BAR_COLUMNS, PRICE_COLUMNS, validate_bars

logger = logging.getLogger(__name__)

# bump when the parsed frame's meaning or the layout changes: old entries then miss
# (bars-2: checked header and checksums; times with UTC offsets in a CSV read anew)
FORMAT = "bars-2"
MAX_BYTES = 2 << 30
_HEADER_BYTES = 4096  # the JSON header, padded; columns start on page boundaries
_PAGE_BYTES = 4096
_SUFFIX = ".bars"
# how each column of BAR_COLUMNS is stored (times as int64 nanoseconds since 1970 UTC): the
# only dtypes ever mapped, all of 8 bytes
_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(np.float64 if name in PRICE_COLUMNS else np.int64) for name in BAR_COLUMNS
}
_ITEM_BYTES = 8


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
        """The frame cached for `source` read on clock `tz`, or None (a miss)."""
        key = self._key(source, tz)
        entry = None if key is None else self._entry_of(key)
        if entry is None or not entry.is_file():
            return None
        try:
            frame = _read(entry, key)
        except Exception as exc:  # whatever a bad entry raises, the CSV is still there
            logger.debug("bar cache: %s unusable (%s); parsing the file", entry, exc)
            return None
        try:
            os.utime(entry)  # recently used: pruned last
        except OSError as exc:  # a read-only cache still serves
            logger.debug("bar cache: cannot touch %s (%s)", entry, exc)
        return frame

    def put(self, source: Path, tz: str, frame: pd.DataFrame) -> None:
        """Keep `frame` (validated bars of `source`) for the next run; never raises."""
        key = self._key(source, tz)
        if key is None:
            return
        entry = self._entry_of(key)
        try:
            _write(entry, key, frame)
            self._prune(keep=entry)
        except Exception as exc:  # a cache that cannot be written is no cache, not an error
            logger.debug("bar cache: cannot write %s (%s)", entry, exc)

    def _key(self, source: Path, tz: str) -> str | None:
        """What an entry is for: format, file, file version and clock, hashed."""
        try:
            resolved = source.resolve()
            info = resolved.stat()
        except OSError:
            return None
        text = f"{FORMAT}|{resolved}|{info.st_size}|{info.st_mtime_ns}|{tz}"
        return hashlib.sha256(text.encode()).hexdigest()

    def _entry_of(self, key: str) -> Path:
        return self.folder / (key[:32] + _SUFFIX)

    def _entry(self, source: Path, tz: str) -> Path | None:
        """The entry `source` read on `tz` has (or would have)."""
        key = self._key(source, tz)
        return None if key is None else self._entry_of(key)

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


def _offsets(rows: int) -> list[int]:
    """Where each column of an entry of `rows` bars starts: after the header, on pages."""
    padded = -(-rows * _ITEM_BYTES // _PAGE_BYTES) * _PAGE_BYTES
    return [_HEADER_BYTES + k * padded for k in range(len(_DTYPES))]


def _file_bytes(rows: int) -> int:
    return _offsets(rows)[-1] + rows * _ITEM_BYTES


def _layout(rows: int) -> list[dict[str, object]]:
    """The columns of an entry of `rows` bars as its header lists them (checksums aside)."""
    return [
        {"name": name, "dtype": dtype.str, "offset": offset}
        for (name, dtype), offset in zip(_DTYPES.items(), _offsets(rows), strict=True)
    ]


def _checksum(values: np.ndarray) -> int:
    """The column's 8-byte words summed (wrapping): any word changed in place changes it.
    A check against corruption, not a digest against tampering."""
    return int(values.view(np.int64).sum())


def _raw(column: pd.Series) -> np.ndarray:
    """A column's values as stored: times as int64 nanoseconds since 1970 UTC."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return pd.DatetimeIndex(column).tz_convert("UTC").as_unit("ns").asi8
    values = column.to_numpy()
    if values.dtype != _DTYPES[str(column.name)]:
        raise TypeError(f"column {column.name} is {values.dtype}: not cached")
    return np.ascontiguousarray(values)


def _write(entry: Path, key: str, frame: pd.DataFrame) -> None:
    if tuple(frame.columns) != BAR_COLUMNS or frame.empty:
        raise ValueError(f"not canonical bars (columns {list(frame.columns)}, {len(frame)} rows)")
    raws = [_raw(frame[name]) for name in BAR_COLUMNS]
    columns = _layout(len(frame))
    for column, values in zip(columns, raws, strict=True):
        column["checksum"] = _checksum(values)
    header = {"format": FORMAT, "key": key, "rows": len(frame), "columns": columns}
    text = json.dumps(header).encode()
    if len(text) > _HEADER_BYTES:
        raise ValueError("the header does not fit")
    with atomic_file(entry, "wb") as handle:
        handle.write(text.ljust(_HEADER_BYTES, b" "))
        for column, values in zip(columns, raws, strict=True):
            handle.seek(int(column["offset"]))
            handle.write(memoryview(values))


def _read(entry: Path, key: str) -> pd.DataFrame:
    """The entry's bars; ValueError when it is not exactly what _write writes for `key`."""
    with entry.open("rb") as handle:
        header = json.loads(handle.read(_HEADER_BYTES))
        rows = _checked_rows(header, key, os.fstat(handle.fileno()).st_size)
        # one mapping of the file checked above (not of whatever the path names by now)
        mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
    data = {}
    for column, (name, dtype), offset in zip(
        header["columns"], _DTYPES.items(), _offsets(rows), strict=True
    ):
        values = np.frombuffer(mapping, dtype=dtype, count=rows, offset=offset)
        if _checksum(values) != column["checksum"]:
            raise ValueError(f"column {name} changed since it was written")
        if name == "time":
            data[name] = pd.DatetimeIndex(values.view("datetime64[ns]")).tz_localize("UTC")
        else:
            data[name] = values  # a plain array over the mapping
    frame = pd.DataFrame(data, copy=False)
    validate_bars(frame, str(entry))
    return frame


def _checked_rows(header: object, key: str, file_bytes: int) -> int:
    """The rows of an entry whose header is exactly the one _write writes for `key` and this
    file size; ValueError otherwise. Nothing of the header chooses what is mapped where."""
    if not isinstance(header, dict) or set(header) != {"format", "key", "rows", "columns"}:
        raise ValueError("the header is not {format, key, rows, columns}")
    if header["format"] != FORMAT:
        raise ValueError(f"format {header['format']!r}, not {FORMAT!r}")
    if header["key"] != key:
        raise ValueError("written for another file, file version or clock")
    rows = header["rows"]
    if type(rows) is not int or rows < 1:  # type(): True is an int too
        raise ValueError(f"rows {rows!r}: not a positive integer")
    mismatch = _columns_mismatch(header["columns"], rows)
    if mismatch:
        raise ValueError(mismatch)
    if file_bytes != _file_bytes(rows):
        raise ValueError(f"{file_bytes} bytes; {rows} rows take {_file_bytes(rows)}")
    return rows


def _columns_mismatch(columns: object, rows: int) -> str | None:
    """How `columns` differs from the canonical columns, dtypes and offsets for `rows` bars
    (each with its checksum), or None."""
    expected = _layout(rows)
    if not isinstance(columns, list) or len(columns) != len(expected):
        return f"the columns are not the {len(expected)} of {', '.join(BAR_COLUMNS)}"
    for column, layout in zip(columns, expected, strict=True):
        checksum = column.get("checksum") if isinstance(column, dict) else None
        if type(checksum) is not int or column != {**layout, "checksum": checksum}:
            return f"column {column!r:.120}, not {layout}"
    return None
