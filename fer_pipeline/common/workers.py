"""Pool workers that die with the process that started them.

A pool worker waits on a queue whose write end it holds itself, so it never sees the
end of its input: when its parent is killed (SIGKILL, the OOM killer, a cluster
scheduler), the worker would wait forever, holding memory and a core. Pools call
`die_with_parent` as their initializer.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # linux/prctl.h
WATCH_INTERVAL_S = 1.0


def die_with_parent(parent_pid: int) -> None:
    """Pool initializer: this worker is killed when `parent_pid` (the process that made
    the pool, passed from it: by now os.getppid() may already be another) ends."""
    set_parent_death_signal()
    watch_parent(parent_pid)


def set_parent_death_signal() -> None:
    """Ask Linux to SIGKILL this process when its parent ends. Linux sends it when the
    *thread* that started the worker ends: pools are made and filled from the thread
    that uses them, which lives as long as they are used."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # no prctl in this libc: the watcher below still guards
        pass


def watch_parent(parent_pid: int, interval: float = WATCH_INTERVAL_S) -> None:
    """Second guard, for systems without prctl and for a parent that died before the
    death signal was set: exit as soon as this process's parent is another one (an
    orphan is adopted by init or a subreaper)."""
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent_pid:
                os._exit(1)  # no cleanup: the parent that would wait for it is gone

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()
