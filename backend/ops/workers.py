"""Several uvicorn workers that share incoming connections evenly.

uvicorn's own ``--workers N`` gives every worker the same listening socket. Under
load that is lopsided: a worker woken for a new connection accepts *every*
connection waiting at that moment, so a burst of keep-alive clients lands mostly
on one worker while the others idle (seen here: 28 of 32 connections on one of
two workers). With ``SO_REUSEPORT`` each worker listens on a socket of its own,
bound to the same address, and the kernel spreads new connections across them
by a hash of the client's address and port, before any worker is involved.

The supervision is uvicorn's (signals, health checks, restarting a dead worker);
only the first generation of workers is handed one socket each. A worker that
replaces a dead one listens on all of them, so connections hashed to the dead
worker's socket are still served (they wait in its backlog until then).

Workers end with their supervisor (:class:`WorkerConfig`): uvicorn's supervisor
stops its workers when it is asked to, but a supervisor killed outright (SIGKILL,
the OOM killer) would leave them serving and anchoring, and a restarted service
would bind beside them.

This module must never bind a socket without ``SO_REUSEPORT`` next to the
workers' sockets: the kernel would refuse the bind, or a socket that nobody
accepts on would swallow its share of the connections.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
from typing import Any

from uvicorn import Config
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from backend.ops import parentdeath

# A worker whose supervisor died is sent SIGTERM (uvicorn's graceful shutdown:
# in-flight requests finish, the anchoring lock is released) and ended outright
# if it is still running this many seconds later.
ORPHAN_GRACE_S = 10.0


class WorkerConfig(Config):
    """uvicorn's Config, whose workers end when the supervisor process dies.

    ``load`` runs in each worker before it serves (whichever way the supervisor
    started it: at start, after a crash, on SIGHUP or SIGTTIN), so the tie to the
    supervisor is made there rather than in one of uvicorn's start-up paths.
    """

    def load(self) -> None:
        if multiprocessing.parent_process() is not None:
            parentdeath.exit_with_parent(signum=signal.SIGTERM, grace_s=ORPHAN_GRACE_S)
        super().load()


def reuse_port_supported() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def bind_reuse_port(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` sockets bound to ``host:port`` with ``SO_REUSEPORT``, not yet listening
    (each worker listens on its own). Port 0 picks one free port for all of them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]
            sock.set_inheritable(True)
    except OSError:
        for sock in socks:
            sock.close()
        raise
    return socks


class BalancedMultiprocess(Multiprocess):
    """uvicorn's supervisor, starting worker *i* on socket *i* only."""

    def init_processes(self) -> None:
        for sock in self.sockets[: self.processes_num]:
            process = Process(self.config, [sock])
            process.start()
            self.processes.append(process)


def run(config: Config, **_: Any) -> None:
    """Serve ``config`` with ``config.workers`` workers, one listening socket each."""
    import logging

    socks = bind_reuse_port(config.host, config.port, config.workers)
    host, port = socks[0].getsockname()[:2]
    logging.getLogger("uvicorn.error").info(
        "Uvicorn running on http://%s:%d with %d workers, one SO_REUSEPORT socket each",
        host,
        port,
        config.workers,
    )
    try:
        BalancedMultiprocess(config, sockets=socks).run()
    finally:
        for sock in socks:
            sock.close()
