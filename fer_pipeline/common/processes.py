"""Is a process still running? (a killed job's leftovers are recognised by their pid)."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """True while a process with this pid exists on this machine (this process included)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: an existence check, nothing is sent
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
