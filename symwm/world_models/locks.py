"""Lock files that keep two processes from writing the same run directory or dataset at once."""

from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def acquire_lock(lock: Path, what: str, error: type[Exception] = RuntimeError) -> Path:
    """Create ``lock`` holding this pid, or raise ``error`` while another live process holds it.

    A lock whose process is gone (killed, crashed) is stale and taken over. ``what`` names the
    locked thing in the message. Remove the file with ``lock.unlink()`` when done.
    """
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = int(lock.read_text().strip() or "0")
            except (OSError, ValueError):
                holder = 0
            if holder and holder != os.getpid() and pid_alive(holder):
                raise error(f"{what} is in use by another process (pid {holder}); wait for it or choose another path") from None
            lock.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(str(os.getpid()))
        return lock
    raise error(f"could not lock {what} ({lock})")
