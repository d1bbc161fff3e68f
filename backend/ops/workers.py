"""Several uvicorn workers that share incoming connections evenly.

uvicorn's own ``--workers N`` gives every worker the same listening socket. Under
load that is lopsided: a worker woken for a new connection accepts *every*
connection waiting at that moment, so a burst of keep-alive clients lands mostly
on one worker while the others idle (seen here: 28 of 32 connections on one of
two workers). With ``SO_REUSEPORT`` each worker listens on a socket of its own,
bound to the same address, and the kernel spreads new connections across them
by a hash of the client's address and port, before any worker is involved.

The supervision is uvicorn's (signals, health checks, restarting a dead worker);
each worker is handed the socket of its slot, and a worker that replaces a dead
one gets a fresh socket (:class:`BalancedMultiprocess`).

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
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process, logger

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
    """uvicorn's supervisor with one socket per worker slot.

    Worker *i* listens on socket *i* only. When a worker dies, the supervisor closes
    its copy of the slot's socket, so the socket leaves the ``SO_REUSEPORT`` group
    and the kernel hashes new connections over the live workers' sockets alone; the
    replacement listens on a fresh socket bound beside them. (Handing the replacement
    the dead worker's socket, as uvicorn does, left a share of new connections
    waiting in that socket's backlog until the replacement had imported the app: past
    10 s on a busy machine.) Connections already queued on the dead socket when it is
    closed are reset: at most the supervisor's 0.5 s polling interval's worth.

    The supervision loop is uvicorn's; the methods below replace the ones that start
    workers, with uvicorn's own logic (uvicorn is pinned in pyproject.toml).
    """

    def __init__(self, config: Config, sockets: list[socket.socket]) -> None:
        super().__init__(config, sockets)
        self.slots: list[socket.socket] = list(sockets)
        self._address: tuple[str, int] = sockets[0].getsockname()[:2]

    def _bind(self) -> socket.socket:
        return bind_reuse_port(self._address[0], self._address[1], 1)[0]

    def _start(self, sock: socket.socket) -> Process:
        process = Process(self.config, [sock])
        process.start()
        return process

    def init_processes(self) -> None:
        while len(self.slots) < self.processes_num:
            self.slots.append(self._bind())
        for sock in self.slots[: self.processes_num]:
            self.processes.append(self._start(sock))

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return
        for idx, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()  # hung: end it
            process.join()
            self.slots[idx].close()  # out of the group: its share goes to the others
            if process.exitcode == STARTUP_FAILURE:
                # Failed before serving: the app or its settings are broken and every
                # restart would fail the same way (uvicorn stops the whole server).
                logger.error(
                    "Child process [%s] failed to start, stopping the parent process.",
                    process.pid,
                )
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            logger.info("Child process [%s] died", process.pid)
            self.slots[idx] = self._bind()
            self.processes[idx] = self._start(self.slots[idx])

    def restart_all(self) -> None:
        """SIGHUP: replace each worker, its replacement serving on a fresh socket before
        the old worker is retired."""
        for idx, old in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            sock = self._bind()
            new = self._start(sock)
            if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new.kill()
                new.join()
                sock.close()
                if not self.should_exit.is_set():
                    logger.error(
                        "New child process [%s] was not ready in time; keeping worker [%s] "
                        "and aborting the restart.", new.pid, old.pid,
                    )
                return
            old.terminate()
            old.join()
            self.slots[idx].close()
            self.slots[idx] = sock
            self.processes[idx] = new

    def handle_ttin(self) -> None:
        logger.info("Received SIGTTIN, increasing the number of processes.")
        self.processes_num += 1
        self.slots.append(self._bind())
        self.processes.append(self._start(self.slots[-1]))

    def handle_ttou(self) -> None:
        logger.info("Received SIGTTOU, decreasing number of processes.")
        if self.processes_num <= 1:
            logger.info("Already reached one process, cannot decrease the number of processes.")
            return
        self.processes_num -= 1
        process = self.processes.pop()
        process.terminate()
        process.join()
        self.slots.pop().close()

    def close(self) -> None:
        for sock in self.slots:
            sock.close()


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
    supervisor = BalancedMultiprocess(config, sockets=socks)
    try:
        supervisor.run()
    finally:
        supervisor.close()
