"""Which process may work where in a sweep's out_dir: an exclusive ``fcntl.flock`` on a lock file, the out_dir's
(one full ``mtlzoo benchmark run`` at a time) and each run folder's (one process trains a run at a time).

The kernel drops a flock when its process ends, however it ends (SIGKILL included), so a killed sweep never leaves
a stale lock: the file stays, naming the pid that last held it, and the next process takes the lock at once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no flock; processes sharing an out_dir are not coordinated there
    fcntl = None

SWEEP_LOCK = ".benchmark.lock"  # in the out_dir
CELL_LOCK = ".benchmark_cell.lock"  # in each run folder


class OutDirBusy(ValueError):
    """Another full ``mtlzoo benchmark run`` holds the out_dir."""


class FileLock:
    """An exclusive, non-blocking lock on the file ``path`` (created, with its folder, when missing); the holder
    writes its pid into the file. Two FileLocks conflict even within one process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock unless another holder has it; True when it is taken (or already held by this one)."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError as error:  # e.g. a network file system without lock support
            os.close(fd)
            raise OSError(f"{self.path}: cannot lock it ({error.strerror}); put the sweep's out_dir on a file "
                          "system that supports flock") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        """Let the lock go (the file stays: removing it could let two processes lock two different files)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def holder(self) -> str:
        """The pid the holder wrote into the file (``unknown`` before it has written it)."""
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return "unknown"
        return text if text.isdigit() else "unknown"

    def __enter__(self) -> FileLock:
        if not self.acquire():
            raise RuntimeError(f"{self.path} is held by pid {self.holder()}")
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()


def lock_out_dir(out_dir: str | Path) -> FileLock:
    """The out_dir's lock, held by this process until released; another holder is a one-line :class:`OutDirBusy`
    naming the out_dir and its pid."""
    lock = FileLock(Path(out_dir) / SWEEP_LOCK)
    if not lock.acquire():
        raise OutDirBusy(f"out_dir {str(out_dir)!r} is in use by another mtlzoo benchmark run (pid "
                         f"{lock.holder()}); wait for it to finish (a killed one frees it at once), or add --shard "
                         "K/N to train beside it")
    return lock
