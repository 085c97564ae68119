"""An exclusive, cross-process lock on a file, with a bounded wait.

Used where a write's state lives in files rather than in one database transaction (an
aggregate table's state and its generation files): holding the lock for the whole run
makes concurrent runs behave as if run one after the other. The lock is ``flock`` on a
lock file, so the operating system releases it when its holder dies, even by SIGKILL.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ConcurrentWriteError

__all__ = ["exclusive_lock"]


@contextmanager
def exclusive_lock(path: str | os.PathLike[str], *, what: str, timeout_s: float = 120.0,
                   pause_s: float = 0.05) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the block.

    Waits up to ``timeout_s`` for another holder, then raises ``ConcurrentWriteError``.
    """
    lock_path = Path(path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ConcurrentWriteError(
                        f"{what}: another process held {str(lock_path)!r} for more than {timeout_s:g} s; "
                        "nothing was written.",
                        fix="Retry when the other run has finished; if none is running, the lock is free "
                        "again (it is released when its holder exits).", path=str(lock_path)) from None
                time.sleep(pause_s)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
