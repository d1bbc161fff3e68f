"""Workers end with their parent (issue 15, M6).

Before: after ``kill -9`` of the ``serve --workers 2`` parent, both workers kept serving
(and anchoring), and a restarted service bound the port beside them (SO_REUSEPORT).
Now each worker is told by the kernel (PR_SET_PDEATHSIG) and by a watcher of its parent
(the pipe multiprocessing keeps to it, then getppid) and shuts down.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from backend.ops import parentdeath
from scripts.served import answers, free_port, serve_argv, served, service_env
from tests.conftest import ROOT, AnvilNode, wait_for_port
from tests.ledger.conftest import wait_until

# A parent that starts one spawned child which follows it (with or without the kernel's
# signal), prints the child's pid and waits to be killed.
PARENT = """
import multiprocessing, pathlib, sys, time
from backend.ops import parentdeath

def child(pdeathsig, ready):
    parentdeath.exit_with_parent(pdeathsig=pdeathsig, grace_s=2)
    pathlib.Path(ready).write_text("ready")
    time.sleep(600)

if __name__ == "__main__":
    spawn = multiprocessing.get_context("spawn")
    p = spawn.Process(target=child, args=(sys.argv[1] == "1", sys.argv[2]))
    p.start()
    print(p.pid, flush=True)
    time.sleep(600)
"""


def workers_of(pid: int) -> set[int]:
    """Live uvicorn workers (spawned children, not multiprocessing's resource tracker)
    whose parent is ``pid``, from /proc."""
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses.
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) != pid or state == "Z":
            continue
        cmdline = (entry / "cmdline").read_bytes()
        if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
            out.add(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("pdeathsig", [True, False], ids=["pdeathsig", "watcher-only"])
def test_a_child_exits_when_its_parent_is_killed(pdeathsig: bool, tmp_path: Path) -> None:
    """Each mechanism on its own: the kernel's signal, and the watcher thread alone."""
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen(
        [sys.executable, str(script), "1" if pdeathsig else "0", str(tmp_path / "ready")],
        cwd=ROOT, stdout=subprocess.PIPE, start_new_session=True,
    )
    child = 0
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        wait_until(lambda: (tmp_path / "ready").exists(), timeout=60, what="the child to start")
        assert alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        wait_until(lambda: not alive(child), timeout=15, what="the child to exit")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if child and alive(child):
            os.kill(child, signal.SIGKILL)


@pytest.mark.anvil
@pytest.mark.slow
def test_workers_exit_when_the_parent_is_killed(anvil: AnvilNode, tmp_path: Path) -> None:
    env = service_env(tmp_path / "data", HM_LEDGER_URL=anvil.url, HM_LEDGER_KEY=anvil.key,
                      HM_RERATE_ENABLED="false")
    port = free_port()
    log = tmp_path / "serve.log"
    workers: set[int] = set()
    with open(log, "wb") as out, served(serve_argv(port, "--workers", "2"), env=env,
                                        output=out) as parent:
        try:
            wait_for_port(port, timeout=90)
            wait_until(lambda: len(workers_of(parent.pid)) == 2, timeout=60, what="two workers")
            workers = workers_of(parent.pid)
            wait_until(lambda: answers(port), timeout=60, what="the workers to serve")

            parent.send_signal(signal.SIGKILL)
            parent.wait(10)
            started = time.monotonic()
            # Graceful shutdown first (SIGTERM), os._exit after ORPHAN_GRACE_S at the latest.
            wait_until(
                lambda: not any(alive(w) for w in workers),
                timeout=parentdeath.POLL_S + 10 + 20,
                what=f"workers {sorted(workers)} to exit after their parent was killed",
            )
            gone_after = time.monotonic() - started
            assert not answers(port)
            # Nothing holds the port: a plain bind (no SO_REUSEPORT) succeeds.
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))
            print(f"workers gone {gone_after:.2f}s after kill -9 of the parent")
            text = log.read_text(errors="replace")
            assert "is gone: this process" in text or "Shutting down" in text, text[-2000:]
        finally:
            for w in workers:
                if alive(w):
                    os.kill(w, signal.SIGKILL)


def descendants(pid: int) -> set[int]:
    out: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            except OSError:
                continue
            if int(ppid) == parent and state != "Z" and int(entry.name) not in out:
                out.add(int(entry.name))
                todo.append(int(entry.name))
    return out


@pytest.mark.slow
def test_read_workers_exit_when_the_service_is_killed(tmp_path: Path) -> None:
    """The embedded chain's /rpc read workers (and their fork server) follow the service."""
    env = service_env(tmp_path / "data", HM_RERATE_ENABLED="false")
    port = free_port()
    children: set[int] = set()
    with served(serve_argv(port), env=env) as service:
        try:
            wait_for_port(port, timeout=90)
            body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
            resp = httpx.post(f"http://127.0.0.1:{port}/rpc", json=body, timeout=120)
            assert resp.json()["result"], resp.text
            # The fork server and the read workers it forked (and multiprocessing's helpers).
            children = descendants(service.pid)
            assert len(children) >= 3, children
            service.send_signal(signal.SIGKILL)
            service.wait(10)
            wait_until(
                lambda: not any(alive(p) for p in children),
                timeout=15,
                what=f"processes {sorted(children)} to exit after the service was killed",
            )
        finally:
            for p in children:
                if alive(p):
                    os.kill(p, signal.SIGKILL)
