"""The production path as real processes: ``honest-metering serve --workers N`` on
PostgreSQL with anvil as the ledger node, driven over HTTP.

- :class:`Service` runs the server as a subprocess (its own process group, so a
  test can always stop it), finds its worker processes and which of them holds
  the anchoring lock, and kills or restarts them.
- :class:`Writers` posts supervision outcomes from several threads and keeps what
  each request got: a write that got 201 is *accepted* and must never be lost.
- :func:`check_log` states what must hold after any fault: dense unique leaves,
  every domain row with its record and every record with its row, every accepted
  write in the log, one checkpoint per tree size mirroring the chain, everything
  anchored, and ``honest-metering audit`` clean.

Every test here needs PostgreSQL and anvil (skipped locally when missing, failed
under CI=true) and stays bounded: timeouts everywhere, no test over about a minute.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from backend.ledger.anchoring import PG_LOCK_KEY
from backend.ledger.contract import ABI
from backend.ledger.onchain import all_checkpoints
from backend.timeutil import today_shanghai
from backend.verification.bundle import connect
from tests.conftest import (
    ANVIL_KEY,
    ROOT,
    AnvilNode,
    anvil_command,
    free_port,
    require,
    wait_for_port,
)
from tests.factories import make_uscc, merchant_body

SECRET_KEY = "production-path-test-secret-0123456789abcdef"
STAFF_USER = "loadreg"
STAFF_PASSWORD = "staff password 2025"
WAIT_S = 45.0  # the longest any single wait in these tests may take
# A worker's start imports every domain (a few seconds of CPU) and runs its startup
# hooks: on a loaded 2-core CI machine, with several workers starting at once beside
# writers, that took over 45 s. This bounds liveness, not speed (scripts/bench.py).
START_WAIT_S = 180.0


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


# --- the ledger node -------------------------------------------------------------------


def start_node(
    *, port: int | None = None, state_file: Path | None = None, block_time: float | None = None
) -> AnvilNode:
    """anvil on loopback; ``state_file`` keeps its chain across a restart, ``block_time``
    mines on a timer instead of per transaction (so a sent transaction stays pending)."""
    command = anvil_command()
    assert command is not None
    port = port or free_port()
    cmd = [*command, "--host", "127.0.0.1", "--port", str(port), "--silent"]
    if state_file is not None:
        cmd += ["--state", str(state_file), "--state-interval", "1"]
    if block_time is not None:
        cmd += ["--block-time", str(block_time)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_for_port(port)
    except TimeoutError:
        proc.kill()
        raise
    return AnvilNode(f"http://127.0.0.1:{port}", port, ANVIL_KEY, proc, state_file)


def rpc(url: str, method: str, *params: Any) -> Any:
    resp = httpx.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=5
    )
    body = resp.json()
    if "error" in body:
        raise RuntimeError(f"{method}: {body['error']}")
    return body["result"]


def failed_transactions(url: str) -> list[str]:
    """Hashes of mined transactions that reverted (an anchorer racing another)."""
    head = int(rpc(url, "eth_blockNumber"), 16)
    failed = []
    for n in range(head + 1):
        block = rpc(url, "eth_getBlockByNumber", hex(n), False)
        for tx in block["transactions"]:
            receipt = rpc(url, "eth_getTransactionReceipt", tx)
            if int(receipt["status"], 16) != 1:
                failed.append(tx)
    return failed


@pytest.fixture
def node(anvil_available: bool, tmp_path: Path) -> Iterator[AnvilNode]:
    """anvil with its state kept in a file, so a test can stop and restart it."""
    require(anvil_available, "anvil not installed under node_modules (run: npm ci)")
    n = start_node(state_file=tmp_path / "anvil-state.json")
    try:
        yield n
    finally:
        n.stop()


# --- the service -----------------------------------------------------------------------


def service_env(
    *, database_url: str, ledger_url: str, data_dir: Path, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HM_")}
    env.update(
        {
            "HM_ENV": "test",
            "HM_DATA_DIR": str(data_dir),
            "HM_DATABASE_URL": database_url,
            "HM_LEDGER_URL": ledger_url,
            "HM_LEDGER_KEY": ANVIL_KEY,
            "HM_SECRET_KEY": SECRET_KEY,
            "HM_ANCHOR_INTERVAL_S": "0.3",
            "HM_DEMO_ON_FIRST_START": "false",
            # A dead node is noticed within seconds, not the default 30 s.
            "HM_CHAIN_POLL_TIMEOUT_S": "10",
        }
    )
    env.update(extra)
    return env


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _socket_owner(local_port: int, candidates: list[int]) -> int | None:
    """The process among ``candidates`` with a TCP socket bound to ``local_port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == local_port:
                    inodes.add(cols[9])
    for pid in candidates:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:[") and target[8:-1] in inodes:
                        return pid
    return None


@dataclass
class Service:
    """``honest-metering serve --workers N`` as a subprocess on a loopback port."""

    env: dict[str, str]
    workers: int
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return self.env["HM_DATABASE_URL"]

    def start(self, *, timeout: float = START_WAIT_S) -> Service:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps writing to it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "backend.cli", "serve", "--workers", str(self.workers),
             "--port", str(self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.wait_started(self.workers, timeout=timeout)
        return self

    def started_count(self) -> int:
        return self.log().count("Application startup complete.")

    def wait_started(self, count: int, *, timeout: float = START_WAIT_S) -> None:
        """Wait until ``count`` worker processes have finished starting, in all."""

        def up() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited:\n{self.log_tail()}")
            return self.started_count() >= count

        wait_for(up, timeout=timeout, what=f"{count} worker start(s)\n{self.log_tail()}")
        wait_for(self._answers, timeout=timeout, what="the server to answer")

    def _answers(self) -> bool:
        try:
            return httpx.get(self.url + "/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    # worker processes ---------------------------------------------------------------

    def worker_pids(self) -> list[int]:
        assert self.process is not None
        return sorted(
            p for p in _children(self.process.pid)
            if _alive(p) and "spawn_main" in _cmdline(p)
        )

    def anchor_holder(self) -> int | None:
        """The pid of the worker holding the anchoring lock (from PostgreSQL's view)."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT a.application_name, a.client_port FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 "
                "AND l.objid = %s AND l.database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())",
                (PG_LOCK_KEY,),
            ).fetchone()
        return None if row is None else self.worker_of(row[0], row[1])

    def worker_of(self, application_name: str | None, client_port: int | None) -> int | None:
        """The worker pid behind a PostgreSQL connection (``pg_stat_activity`` columns)."""
        m = re.search(r"pid (\d+)", application_name or "")
        if m:
            return int(m.group(1))
        return _socket_owner(int(client_port or 0), self.worker_pids())

    def appending_workers(self) -> set[int]:
        """Workers with a connection whose latest statement appended to the log."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT application_name, client_port FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'UPDATE log_head%%'"
            ).fetchall()
        return {pid for pid in (self.worker_of(*r) for r in rows) if pid is not None}

    def kill_worker(self, pid: int) -> None:
        assert pid in self.worker_pids(), f"{pid} is not a worker of this server"
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not _alive(pid) or pid not in self.worker_pids(),
                 timeout=10, what=f"worker {pid} to die")

    # state as the public API shows it ----------------------------------------------

    def readyz(self) -> dict[str, Any]:
        return httpx.get(self.url + "/readyz", timeout=10).json()  # type: ignore[no-any-return]

    def wait_all_anchored(self, *, timeout: float = WAIT_S) -> dict[str, Any]:
        """Until the latest checkpoint covers the whole log (as the database says)."""

        def done() -> dict[str, Any] | None:
            size, anchored = log_sizes(self.database_url)
            return {"size": size} if size > 0 and anchored == size else None

        return wait_for(done, timeout=timeout, what=f"everything anchored\n{self.log_tail()}")


def log_sizes(database_url: str) -> tuple[int, int]:
    """(tree size, tree size of the last checkpoint)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        size = conn.execute("SELECT size FROM log_head WHERE id = 1").fetchone()
        cp = conn.execute("SELECT max(tree_size) FROM checkpoint").fetchone()
    return (int(size[0]) if size else 0), int(cp[0] or 0) if cp else 0


MakeService = Callable[..., Service]


@pytest.fixture
def make_service(
    postgres_url: str, tmp_path: Path
) -> Iterator[Callable[..., Service]]:
    """Start services on this test's fresh database; all are stopped afterwards."""
    started: list[Service] = []
    counter = itertools.count()

    def make(*, ledger_url: str, workers: int = 2, start: bool = True, **env: str) -> Service:
        svc = Service(
            env=service_env(
                database_url=postgres_url, ledger_url=ledger_url, data_dir=tmp_path / "data",
                **env,
            ),
            workers=workers,
            log_path=tmp_path / f"serve-{next(counter)}.log",
        )
        started.append(svc)
        return svc.start() if start else svc

    try:
        yield make
    finally:
        for svc in started:
            svc.stop()


# --- accounts and writes ----------------------------------------------------------------


def create_regulator(svc: Service) -> dict[str, str]:
    """A regulator account made with ``honest-metering create-user``; its bearer headers."""
    proc = subprocess.run(
        [sys.executable, "-m", "backend.cli", "create-user", "--role", "regulator",
         "--username", STAFF_USER, "--password-stdin"],
        cwd=ROOT, env=svc.env, input=STAFF_PASSWORD + "\n", capture_output=True, text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    resp = httpx.post(
        svc.url + "/api/auth/token",
        data={"username": STAFF_USER, "password": STAFF_PASSWORD},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def register_merchants(svc: Service, headers: dict[str, str], n: int) -> list[str]:
    """Register ``n`` merchants on a regulator's behalf (no per-address limit)."""
    codes = []
    with httpx.Client(base_url=svc.url, headers=headers, timeout=30) as c:
        for i in range(n):
            body = merchant_body(uscc=make_uscc(n=1000 + i), name=f"巴中市巴州区测试商店{i}号")
            resp = c.post("/api/merchants", json=body)
            assert resp.status_code == 201, resp.text
            codes.append(resp.json()["uscc"])
    return codes


def spot_check_body(uscc: str) -> dict[str, Any]:
    return {
        "kind": "spot_check",
        "uscc": uscc,
        "result": "未发现问题",
        "checked_on": (today_shanghai() - timedelta(days=1)).isoformat(),
        "authority": "巴中市市场监督管理局",
    }


@dataclass
class Outcome:
    status: int | None  # None: no HTTP response (connection broken, timeout)
    error: str | None = None
    record_id: str | None = None
    leaf_index: int | None = None
    seconds: float = 0.0


class Writers:
    """Threads posting spot checks until stopped (or ``limit`` writes); keeps every outcome."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        usccs: list[str],
        *,
        threads: int = 4,
        limit: int | None = None,
        timeout: float = 15.0,
        reconnect_every: int | None = None,
    ) -> None:
        self.url, self.headers, self.usccs = url, headers, usccs
        self.threads_n, self.limit, self.timeout = threads, limit, timeout
        # A fresh connection every so many requests spreads them over every worker
        # (a keep-alive connection stays with the worker that accepted it).
        self.reconnect_every = reconnect_every
        self.outcomes: list[Outcome] = []
        self._started = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Writers:
        for i in range(self.threads_n):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()

    def stop(self) -> Writers:
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        assert not any(t.is_alive() for t in self._threads), "a writer is stuck"
        return self

    def _client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=self.timeout)

    def _run(self, seed: int) -> None:
        rnd = random.Random(seed)
        client = self._client()
        sent = 0
        try:
            while not self._stop.is_set():
                if self.reconnect_every and sent and sent % self.reconnect_every == 0:
                    client.close()
                    client = self._client()
                sent += 1
                with self._lock:
                    if self.limit is not None and self._started >= self.limit:
                        return
                    self._started += 1
                t0 = time.monotonic()
                try:
                    resp = client.post(
                        "/api/supervision/records", json=spot_check_body(rnd.choice(self.usccs))
                    )
                except httpx.HTTPError as exc:
                    out = Outcome(None, type(exc).__name__)
                    client.close()
                    client = self._client()
                else:
                    body = json_of(resp)
                    if resp.status_code == 201:
                        out = Outcome(201, None, body["record_id"], body["leaf_index"])
                    else:
                        out = Outcome(resp.status_code, body.get("error", resp.text[:200]))
                out.seconds = time.monotonic() - t0
                with self._lock:
                    self.outcomes.append(out)
        finally:
            client.close()

    def count(self) -> int:
        with self._lock:
            return len(self.outcomes)

    @property
    def accepted(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == 201]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != 201]

    def wait_count(self, n: int, *, timeout: float = WAIT_S) -> None:
        wait_for(lambda: self.count() >= n, timeout=timeout, what=f"{n} writes")


def json_of(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# --- what must hold after any fault ----------------------------------------------------


@dataclass
class LogFacts:
    size: int
    checkpoint_sizes: list[int]
    index_records: int = 0
    """``ledger.subject_index`` records: one ends every checkpoint (an anchorer killed
    between appending one and anchoring may leave one more)."""


def check_log(
    env: dict[str, str],
    ledger_url: str,
    *,
    accepted: Sequence[Outcome] = (),
) -> LogFacts:
    """Assert the log's invariants on the database and the chain, with everything
    anchored; run ``audit``. ``env`` is the service's environment."""
    database_url = env["HM_DATABASE_URL"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        size = int(conn.execute("SELECT size FROM log_head WHERE id = 1").fetchone()[0])  # type: ignore[index]
        leaves = conn.execute(
            "SELECT leaf_index, record_id, record_type FROM log_leaf ORDER BY leaf_index"
        ).fetchall()
        # Dense and unique: exactly 0..size-1, each record id once.
        assert [r[0] for r in leaves] == list(range(size)), "leaf indexes are not 0..size-1"
        assert len({r[1] for r in leaves}) == size, "a record id appears twice"
        by_id = {r[1]: (r[0], r[2]) for r in leaves}

        # Every accepted write is in the log, at the index its response named.
        for o in accepted:
            assert by_id.get(o.record_id or "") == (o.leaf_index, "supervision.spot_check"), (
                f"accepted write {o.record_id} (leaf {o.leaf_index}) is not in the log"
            )

        # Domain rows and records come together or not at all.
        for table, prefix in (("supervision_record", "supervision."),
                              ("merchant", "merchant.registered")):
            rows: dict[str, int] = dict(
                conn.execute(f"SELECT record_id, leaf_index FROM {table}").fetchall()
            )
            for rid, idx in rows.items():
                assert by_id.get(rid, (None,))[0] == idx, f"{table} row {rid} has no record"
            logged = {rid for rid, (_, t) in by_id.items() if t.startswith(prefix)}
            assert logged == set(rows), f"records of type {prefix}* without a {table} row"

        cps = conn.execute(
            "SELECT seq, tree_size, root FROM checkpoint ORDER BY seq"
        ).fetchall()
        address = conn.execute(
            "SELECT value FROM ledger_state WHERE key LIKE 'contract:%'"
        ).fetchone()

    # Checkpoints: 0..k-1, strictly growing sizes (so one per size), as on the chain.
    sizes = [c[1] for c in cps]
    assert [c[0] for c in cps] == list(range(len(cps)))
    assert all(a < b for a, b in itertools.pairwise(sizes)), f"sizes not increasing: {sizes}"
    assert sizes and sizes[-1] == size, f"log size {size}, last checkpoint {sizes[-1:]}"
    assert address is not None
    w3 = connect(ledger_url)
    contract = w3.eth.contract(address=w3.to_checksum_address(address[0]), abi=ABI)
    on_chain = all_checkpoints(contract)
    assert [(c.tree_size, c.root) for c in on_chain] == [(c[1], bytes(c[2])) for c in cps]

    audit = subprocess.run(
        [sys.executable, "-m", "backend.cli", "audit", "--quiet", "--ledger", ledger_url],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "audit passed" in audit.stdout
    indexes = sum(1 for _, t in by_id.values() if t == "ledger.subject_index")
    assert indexes >= len(sizes), "a checkpoint without its subject index record"
    return LogFacts(size=size, checkpoint_sizes=sizes, index_records=indexes)
