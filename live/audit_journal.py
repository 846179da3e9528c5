"""The fallback journal: where audit rows that must not wait go while the database cannot be
written (a full disk, a lock held too long), until they are moved into it.

It is a file beside the database, `<AUDIT_DB>.journal`, of fixed size, filled with zeros when
it is made (at the start, while there is room), so appending to it later needs no new space
on the disk: a full disk cannot stop it. Records are JSON lines written at the end of the used
part, each flushed to the disk (fsync) before `append` returns, so a record an order was sent
after survives a crash. The used part ends at the first zero byte; a record cut short by a
crash is dropped when the file is read again (its order was never sent).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)

JOURNAL_BYTES = 512 * 1024  # a few hundred exits' rows; the journal only bridges an outage


class JournalFull(OSError):
    """The journal has no room for another record."""


class FallbackJournal:
    """Append-only records in a preallocated file; `records` are those not yet moved."""

    def __init__(self, path: Path, capacity: int = JOURNAL_BYTES) -> None:
        self.path = Path(path)
        self.capacity = capacity
        self._file: IO[bytes] = _open_preallocated(self.path, capacity)
        self.records: list[dict[str, Any]] = []
        self._end = 0
        self._read()

    def append(self, record: dict[str, Any]) -> None:
        """Write one record and flush it to the disk; JournalFull when it does not fit."""
        line = json.dumps(record, separators=(",", ":"), default=str).encode("utf-8") + b"\n"
        if self._end + len(line) > self.capacity:
            raise JournalFull(f"the fallback journal {self.path} is full ({self.capacity} bytes)")
        self._file.seek(self._end)
        self._file.write(line)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._end += len(line)
        self.records.append(record)

    def clear(self) -> None:
        """Forget every record (they are in the database now): zero the used part again."""
        if self._end:
            self._file.seek(0)
            self._file.write(bytes(self._end))
            self._file.flush()
            os.fsync(self._file.fileno())
        self._end = 0
        self.records = []

    def close(self) -> None:
        self._file.close()

    def _read(self) -> None:
        self._file.seek(0)
        data = self._file.read(self.capacity)
        used = data.find(b"\0")
        used = len(data) if used < 0 else used
        end = 0
        for line in data[:used].split(b"\n")[:-1]:  # the last piece has no newline: cut short
            try:
                self.records.append(json.loads(line))
            except ValueError:
                logger.warning("fallback journal %s: an unreadable record dropped", self.path)
                break
            end += len(line) + 1
        self._end = end
        if used > end:  # a record cut short by a crash: zero it, so the next one starts clean
            self._file.seek(end)
            self._file.write(bytes(used - end))
            self._file.flush()
            os.fsync(self._file.fileno())


def _open_preallocated(path: Path, capacity: int) -> IO[bytes]:
    """The journal file, made `capacity` bytes of real zeros (not a sparse file, whose blocks
    a full disk could still refuse) when it is new or shorter."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    handle = os.fdopen(descriptor, "r+b")
    size = os.fstat(descriptor).st_size
    if size < capacity:
        try:
            handle.seek(size)
            handle.write(bytes(capacity - size))
            handle.flush()
            os.fsync(descriptor)
        except OSError:
            handle.close()
            raise
    return handle
