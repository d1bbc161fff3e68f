"""A child process that ends when its parent dies.

Used by every process the service starts: the uvicorn workers of ``serve
--workers N`` (backend/ops/workers.py) and the embedded chain's read workers
(backend/ledger/reader.py). Without it, a parent killed with SIGKILL (or by
the OOM killer) leaves its children running: workers keep serving and anchoring
on a port a restarted service then binds beside them.

Two mechanisms, so that one failing does not leave an orphan:

- On Linux the kernel sends the child a signal when its parent dies
  (``prctl(PR_SET_PDEATHSIG)``, called through ctypes). The signal is sent when
  the parent *thread* that started the child ends, so use it only where the
  starting thread lives as long as the parent (uvicorn's supervisor starts and
  restarts workers from its main thread).
- Everywhere, a watcher thread waits on the parent: multiprocessing's sentinel
  (a pipe the parent holds open; it reads as closed when the parent dies), else
  a poll of ``getppid()`` (a process not started by multiprocessing). When the
  parent is gone it sends the same signal to the process itself, and ends the
  process outright if that has not done so within ``grace_s``.

This module must never signal any process but the one it runs in.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import wait

logger = logging.getLogger("honest_metering.ops")

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
POLL_S = 0.5


def set_pdeathsig(signum: int) -> bool:
    """Ask the kernel to send ``signum`` to this process when its parent dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    except (OSError, AttributeError) as exc:
        logger.warning("cannot ask the kernel to signal this process when its parent dies: %s", exc)
        return False
    return True


def exit_with_parent(
    *,
    signum: int = signal.SIGTERM,
    grace_s: float = 10.0,
    pdeathsig: bool = True,
) -> int | None:
    """Make this process end when its parent dies: ``signum`` first (a graceful
    shutdown), then ``os._exit`` after ``grace_s`` seconds if it is still running.

    Returns the parent's pid, or None for a process without a parent to follow (the
    main process of a session, whose parent is a shell or init).
    """
    parent = multiprocessing.parent_process()
    parent_pid = os.getppid()
    if parent is None and parent_pid <= 1:
        return None
    if pdeathsig:
        set_pdeathsig(signum)
    # multiprocessing's sentinel is the read end of a pipe whose write end only the
    # process that started this one holds: it reads as closed when that process dies
    # (also when a fork server stands between them, whose pid getppid() would give).
    sentinel = parent.sentinel if parent is not None else None

    def parent_gone() -> None:
        if sentinel is not None:
            try:
                wait([sentinel])
                return
            except (OSError, ValueError):
                pass
        while os.getppid() == parent_pid:
            time.sleep(POLL_S)

    def watch() -> None:
        parent_gone()
        logger.warning("parent process is gone: this process %d ends", os.getpid())
        os.kill(os.getpid(), signum)
        time.sleep(grace_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
    # The parent may have died before the kernel was asked; the watcher catches that too.
    return parent_pid
