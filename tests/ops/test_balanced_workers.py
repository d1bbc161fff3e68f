"""One SO_REUSEPORT socket per worker (backend/ops/workers.py): the kernel spreads new
connections across the workers' sockets instead of one worker taking a whole burst."""

from __future__ import annotations

import socket

import pytest

from backend.ops import workers

pytestmark = pytest.mark.skipif(
    not workers.reuse_port_supported(), reason="this platform has no SO_REUSEPORT"
)


def test_sockets_share_one_port_and_a_burst_is_spread_over_them() -> None:
    socks = workers.bind_reuse_port("127.0.0.1", 0, 2)
    try:
        ports = {s.getsockname()[1] for s in socks}
        assert len(ports) == 1 and 0 not in ports
        port = ports.pop()
        for s in socks:
            s.listen(128)
            s.setblocking(False)
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(64)]
        try:
            accepted = []
            for s in socks:
                n = 0
                while True:
                    try:
                        conn, _ = s.accept()
                    except BlockingIOError:
                        break
                    conn.close()
                    n += 1
                accepted.append(n)
            # 64 connections hashed over 2 sockets: all accepted, neither socket starved
            # (one socket getting 8 or fewer by chance has probability below 1e-9).
            assert sum(accepted) == 64 and min(accepted) > 8, accepted
        finally:
            for c in clients:
                c.close()
    finally:
        for s in socks:
            s.close()


def test_a_closed_socket_leaves_the_group() -> None:
    """Why the supervisor closes a dead worker's socket (BalancedMultiprocess): once no
    process holds it, new connections are hashed over the remaining sockets only."""
    socks = workers.bind_reuse_port("127.0.0.1", 0, 2)
    live, dead = socks
    try:
        port = live.getsockname()[1]
        for s in socks:
            s.listen(128)
        live.setblocking(False)
        dead.close()
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(32)]
        try:
            n = 0
            while True:
                try:
                    conn, _ = live.accept()
                except BlockingIOError:
                    break
                conn.close()
                n += 1
            assert n == 32
        finally:
            for c in clients:
                c.close()
    finally:
        live.close()


def test_a_port_in_use_is_refused_and_nothing_stays_bound() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(OSError):
            workers.bind_reuse_port("127.0.0.1", taken.getsockname()[1], 2)
    finally:
        taken.close()
