"""Per-library locks that hold across threads (Streamlit) and processes (CLI runs, several servers).

A lock is a thread ``RLock`` plus an exclusive ``fcntl.flock`` on ``<libraries>/.locks/<name>.lock``.
It is re-entrant within a thread: only the outermost ``with`` takes and releases the file lock (a
second ``flock`` on a new descriptor in the same process would wait for itself). The lock files stay
on disk: removing one while another process waits on it would let two processes in at once.

Where ``fcntl`` is missing (Windows) or the lock file cannot be opened (a read-only data folder), the
lock falls back to the thread lock alone, with a warning.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from types import TracebackType

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

LOCKS_FOLDER = ".locks"


class LibraryLock:
    """The lock of one library; use :func:`library_lock` to get the shared instance."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        self._owner: int | None = None

    def held_here(self) -> bool:
        """True when the calling thread already holds this lock."""
        return self._depth > 0 and self._owner == threading.get_ident()

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock (waiting for other threads and processes unless ``blocking`` is False)."""
        if not self._thread.acquire(blocking=blocking):
            return False
        try:
            if self._depth == 0 and not self._lock_file(blocking):
                self._thread.release()
                return False
        except BaseException:
            self._thread.release()
            raise
        self._depth += 1
        self._owner = threading.get_ident()
        return True

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
        if self._depth == 0 and self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        self._thread.release()

    def __enter__(self) -> LibraryLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()

    def _lock_file(self, blocking: bool) -> bool:
        if fcntl is None:
            return True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            logger.warning("no lock file %s (%s); other processes are not kept out", self.path, exc)
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True


_LOCKS: dict[Path, LibraryLock] = {}
_GUARD = threading.Lock()


def library_lock(root: Path, name: str) -> LibraryLock:
    """The lock of library ``name`` in the libraries folder ``root`` (one object per process)."""
    path = root / LOCKS_FOLDER / f"{name}.lock"
    with _GUARD:
        lock = _LOCKS.get(path)
        if lock is None:
            lock = _LOCKS[path] = LibraryLock(path)
        return lock


def _forget_after_fork() -> None:
    """A forked child holds none of its parent's locks (file locks are per open file, threads don't follow)."""
    global _GUARD
    _GUARD = threading.Lock()
    for lock in _LOCKS.values():
        if lock._fd is not None:
            try:
                os.close(lock._fd)
            except OSError:
                pass
            lock._fd = None
    _LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
