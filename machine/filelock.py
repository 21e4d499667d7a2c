"""A portable, process-level exclusive file lock (fcntl on POSIX, msvcrt on Windows)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import TracebackType

from machine.errors import LockedError

if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class FileLock:
    """`with FileLock(path, timeout=5, what="machine 'a'"):` holds an exclusive lock on `path`.

    The lock is released when the process dies, so a killed command never leaves a stale lock.
    """

    def __init__(self, path: Path, timeout: float = 10.0, what: str = "") -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.what = what or str(path)
        self._fd: int | None = None

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            while not _try_lock(fd):
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockedError(
                        f"{self.what} is busy: another machine command is working on it",
                        "Wait for the other command to finish, then try again.",
                    )
                time.sleep(0.05)
            if self._still_the_file(fd):
                self._fd = fd
                return
            os.close(fd)  # its holder deleted the lock file meanwhile (unlink): lock the new one

    def _still_the_file(self, fd: int) -> bool:
        """True when `fd` is still the file at self.path (not one a previous holder unlinked)."""
        if os.name == "nt":  # pragma: no cover - Windows does not unlink open files
            return True
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)

    def unlink(self) -> None:
        """Delete the lock file while holding it (waiters notice and lock the path afresh)."""
        if self._fd is not None and os.name != "nt":
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def release(self) -> None:
        if self._fd is not None:
            try:
                _unlock(self._fd)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
