"""Writing a file whole or not at all: the one helper the project writes its files with
(reports, CSVs, JSON, caches, the simulator's state).

A temporary file in the target's folder is written, flushed to the disk when asked
(`durable`), given the mode a plain open() would give (not mkstemp's private 0600) and
renamed over the target, so a reader sees the old file or the new one, never half. On any
failure the temporary file is removed and the OSError names the target, not the temporary.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def default_file_mode() -> int:
    """0666 minus the umask: the mode open() gives a new file."""
    mask = os.umask(0o022)  # reading the umask means setting it; put it back at once
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_file(path: str | Path, mode: str = "w", *, durable: bool = False) -> Iterator[IO]:
    """A file to write `path`'s new content into (`mode` "w" for text, "wb" for bytes); it
    replaces `path` when the block ends without an error."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise OSError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, data: str | bytes, *, durable: bool = False) -> None:
    """Replace `path` with `data` (text or bytes), whole or not at all."""
    with atomic_file(path, "wb" if isinstance(data, bytes) else "w", durable=durable) as handle:
        # in slices: text is encoded slice by slice, never all at once beside itself
        for start in range(0, len(data), _SLICE):
            handle.write(data[start : start + _SLICE])


_SLICE = 1 << 22
