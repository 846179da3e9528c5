"""One trader per audit database and per account: OS file locks that vanish with their holder.

A lock is an exclusive, non-blocking OS lock (`flock` on Linux and macOS, `msvcrt.locking` on
Windows) on a small file. The OS drops it when the process ends in any way, SIGKILL and power
loss included, so a crashed trader never blocks its restart; the file itself stays and means
nothing without the lock. The holder writes who it is (pid, host, start time, command) into
the file, so a refused second trader, and `--check`, can name it.

Two locks guard a trader: `<AUDIT_DB>.lock` beside its database, and, for a live trader on a
terminal other processes can reach, one per login + server + magic number in LOCK_DIR (by
default a folder of the machine's, shared by every user: /run/lock, else the temp folder).
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import sys
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from live.errors import ConfigError

logger = logging.getLogger(__name__)

WINDOWS = sys.platform == "win32"
# msvcrt locks byte ranges that others then cannot read: lock one byte far past the holder's
# text, so the text stays readable
_WINDOWS_LOCK_OFFSET = 0x7FFF_0000


@dataclass(frozen=True)
class Holder:
    """Who holds a lock."""

    pid: int
    host: str
    started: str  # UTC ISO-8601
    command: str

    def text(self) -> str:
        return f"pid {self.pid} on {self.host}, started {self.started}, command: {self.command}"


class AlreadyRunning(ConfigError):
    """Another process holds the lock (exit code 2, as for any start-up refusal)."""

    def __init__(self, message: str, holder: Holder | None) -> None:
        super().__init__(message)
        self.holder = holder


class InstanceLock:
    """An exclusive lock on `path`, held from `acquire()` until `release()` or process end.

    `what` names what the lock guards in messages ("the audit database data/audit.db").
    """

    def __init__(self, path: Path, what: str, *, command: str = "") -> None:
        self.path = Path(path)
        self.what = what
        self.command = command or " ".join(sys.argv)
        self._file: IO[bytes] | None = None

    def acquire(self) -> InstanceLock:
        """Take the lock or raise AlreadyRunning naming its holder; returns self."""
        try:
            handle = _open(self.path)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the lock file {self.path} for {self.what}: {exc.strerror or exc}"
            ) from None
        if not _try_lock(handle):
            holder = _read_holder(handle)
            handle.close()
            who = holder.text() if holder else "a process that did not say who it is"
            raise AlreadyRunning(
                f"another trader holds {self.what}: {who}. Stop it first (one trader per "
                f"database and per account), or give this one its own settings; lock file "
                f"{self.path}",
                holder,
            )
        _write_holder(handle, self.command)
        self._file = handle
        return self

    def release(self) -> None:
        if self._file is not None:
            _unlock(self._file)
            self._file.close()
            self._file = None

    def __enter__(self) -> InstanceLock:
        return self.acquire() if self._file is None else self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def holder_of(path: Path) -> Holder | None:
    """Who holds the lock at `path` now (None when nobody does); takes it for an instant to
    tell, and never keeps it."""
    if not Path(path).is_file():
        return None
    try:
        handle = _open(Path(path))
    except OSError:
        return None
    try:
        if _try_lock(handle):
            _unlock(handle)
            return None
        return _read_holder(handle) or Holder(0, "?", "?", "?")
    finally:
        handle.close()


def database_lock(audit_db: Path, *, command: str = "") -> InstanceLock:
    """The lock of one audit database: `<db>.lock` beside it."""
    return InstanceLock(
        database_lock_path(audit_db), f"the audit database {audit_db}", command=command
    )


def database_lock_path(audit_db: Path) -> Path:
    return Path(f"{audit_db}.lock")


def needs_account_lock(*, dry_run: bool, backend: str) -> bool:
    """A live trader on a terminal that other processes reach (not the in-process simulator,
    which each process has to itself) locks its account; a dry run sends nothing there."""
    return not dry_run and backend != "sim"


def account_lock(
    lock_dir: Path | None, *, login: int, server: str, magic: int, command: str = ""
) -> InstanceLock:
    """The lock of one account and magic number on this machine."""
    path = account_lock_path(lock_dir, login=login, server=server, magic=magic)
    what = f"account {login} on {server} with magic number {magic}"
    return InstanceLock(path, what, command=command)


def account_lock_path(lock_dir: Path | None, *, login: int, server: str, magic: int) -> Path:
    folder = Path(lock_dir) if lock_dir else default_lock_dir()
    _make_shared_folder(folder)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", server)[:60] or "server"
    return folder / f"account-{int(login)}-{slug}-{int(magic)}.lock"


def default_lock_dir() -> Path:
    """A folder every user of this machine can reach, and that no cleaner empties while a
    trader runs: /run/lock (a tmpfs, kept until reboot) when there is one, %ProgramData% on
    Windows, else the temp folder."""
    if WINDOWS:
        base = os.environ.get("PROGRAMDATA") or tempfile.gettempdir()
        return Path(base) / "mt5-live-trader" / "locks"
    run_lock = Path("/run/lock")
    if run_lock.is_dir() and os.access(run_lock, os.W_OK):
        return run_lock / "mt5-live-trader"
    return Path(tempfile.gettempdir()) / "mt5-live-trader-locks"


def _make_shared_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not WINDOWS and folder.stat().st_uid == os.geteuid():
            folder.chmod(0o1777)  # every user's traders lock here; each keeps its own files
    except OSError as exc:
        raise ConfigError(
            f"LOCK_DIR={folder}: cannot create the lock folder ({exc.strerror or exc}); set "
            "LOCK_DIR to a folder this user can write"
        ) from None


# ---------------------------------------------------------------- the OS calls


def _open(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    return os.fdopen(descriptor, "r+b")


def _try_lock(handle: IO[bytes]) -> bool:
    try:
        if WINDOWS:
            import msvcrt

            handle.seek(_WINDOWS_LOCK_OFFSET)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held by another process (BlockingIOError, or EACCES/EDEADLOCK on Windows)
        return False
    return True


def _unlock(handle: IO[bytes]) -> None:
    try:
        if WINDOWS:
            import msvcrt

            handle.seek(_WINDOWS_LOCK_OFFSET)
            msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    except OSError:
        logger.debug("unlocking %s failed", handle.name, exc_info=True)


def _write_holder(handle: IO[bytes], command: str) -> None:
    holder = Holder(
        pid=os.getpid(),
        host=socket.gethostname(),
        started=datetime.now(UTC).isoformat(timespec="seconds"),
        command=command,
    )
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(asdict(holder)).encode("utf-8") + b"\n")
        handle.flush()
    except OSError:  # the lock holds without the note (a full disk must not stop the start)
        logger.warning("could not write who holds %s", handle.name)


def _read_holder(handle: IO[bytes]) -> Holder | None:
    try:
        handle.seek(0)
        data = json.loads(handle.read(4096).split(b"\n", 1)[0].decode("utf-8"))
        return Holder(
            int(data["pid"]), str(data["host"]), str(data["started"]), str(data["command"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
