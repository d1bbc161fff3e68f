"""``honest-metering serve --workers 3`` on PostgreSQL against a real JSON-RPC node (anvil),
with the contract deployed by ``deploy-contract``: every worker takes writes, leaf indexes
stay dense, exactly one worker holds the anchoring lock, /metrics sums all workers'
counters whichever worker answers, another worker takes over anchoring within seconds
when the anchorer is killed, and the audit of the result is clean."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from backend.ledger.anchoring import PG_LOCK_KEY
from tests import factories
from tests.conftest import ROOT, AnvilNode, free_port, wait_for_port
from tests.ledger.conftest import run_cli, wait_until
from tests.ops.conftest import metric
from tests.supervision import outcomes as o

pytestmark = [pytest.mark.anvil, pytest.mark.postgres, pytest.mark.slow]

WORKERS = 3
WRITES = 48


@dataclass
class Service:
    base: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes]
    db_url: str

    def scrape(self) -> str:
        # A new connection each time, so scrapes land on different workers.
        return httpx.get(self.base + "/metrics", timeout=30).text

    def pending(self) -> float | None:
        """Pending leaves, or None when a scrape times out: while a killed worker is
        restarted on a busy 2-core CI machine, one scrape has waited past 10 s; the
        wait for anchoring goes on rather than failing on it."""
        try:
            return metric(self.scrape(), "hm_log_pending_leaves")
        except httpx.TimeoutException:
            return None

    def anchorer_pids(self) -> list[int]:
        """OS pids of the processes holding the anchoring lock (from application_name)."""
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a "
                "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.objid = %s "
                "AND l.granted AND a.datname = current_database()",
                (PG_LOCK_KEY,),
            ).fetchall()
        return [int(name.rsplit(" ", 1)[1]) for (name,) in rows]


@pytest.fixture
def service(anvil: AnvilNode, postgres_url: str, tmp_path: Path) -> Iterator[Service]:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HM_", "PROMETHEUS_"))}
    env.update(
        HM_ENV="test",
        HM_DATA_DIR=str(data),
        HM_DATABASE_URL=postgres_url,
        HM_LEDGER_URL=anvil.url,
        HM_LEDGER_KEY=anvil.key,
        HM_DEMO_ON_FIRST_START="false",
        HM_SECRET_KEY="test-secret-key-0123456789abcdef0123456789",
        HM_ANCHOR_INTERVAL_S="0.3",
        HM_LOG_JSON="true",
        HM_RERATE_ENABLED="false",
    )
    deployed = run_cli(["deploy-contract"], env=env)
    assert deployed.returncode == 0, deployed.stderr
    env["HM_CONTRACT_ADDRESS"] = deployed.stdout.strip().splitlines()[-1].split("=", 1)[1]
    staff = subprocess.run(
        [sys.executable, "-m", "backend.cli", "create-user", "--role", "regulator",
         "--username", "reg-workers", "--password-stdin"],
        cwd=ROOT, env=env, input=factories.STAFF_PASSWORD, text=True, capture_output=True,
    )
    assert staff.returncode == 0, staff.stderr

    port = free_port()
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "backend.cli", "serve", "--workers", str(WORKERS),
             "--port", str(port)],
            cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    svc = Service(f"http://127.0.0.1:{port}", env, log_path, proc, postgres_url)
    try:
        wait_for_port(port, timeout=90)
        wait_until(lambda: len(svc.anchorer_pids()) == 1, timeout=60, what="an anchorer")
        yield svc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _worker_pids(svc: Service) -> set[int]:
    text = svc.log_path.read_text(encoding="utf-8", errors="replace")
    return {int(m) for m in re.findall(r'"message": "Started server process \[(\d+)\]"', text)}


def _children(pid: int) -> set[int]:
    """The process's child pids (Linux /proc)."""
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        out.update(int(c) for c in (task / "children").read_text().split())
    return out


def _write_pids(svc: Service) -> set[int]:
    pids = set()
    for line in svc.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        if '"honest_metering.access"' in line and "/api/supervision/records" in line:
            record = json.loads(line)
            if record["status"] == 201:
                pids.add(record["pid"])
    return pids


def test_several_workers_on_postgres_and_a_node(service: Service) -> None:
    svc = service
    with httpx.Client(base_url=svc.base, timeout=30) as c:
        uscc = c.post("/api/merchants", json=factories.merchant_body()).json()["uscc"]
        token = c.post(
            "/api/auth/token",
            data={"username": "reg-workers", "password": factories.STAFF_PASSWORD},
        ).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}

    def write(i: int) -> int:
        # A fresh connection per request, so the kernel spreads them over the workers.
        body = o.spot_check(uscc=uscc, checked_on=o.days_ago(1 + i % 20))
        return httpx.post(
            svc.base + "/api/supervision/records", json=body, headers=auth, timeout=60
        ).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(write, range(WRITES)))
    assert statuses == [201] * WRITES

    # Any worker accepts writes.
    workers = _worker_pids(svc)
    assert len(workers) == WORKERS
    assert len(_write_pids(svc) & workers) >= 2

    # Leaf indexes are dense: 0..n-1, no gap, no duplicate.
    with psycopg.connect(svc.db_url) as conn:
        n, lo, hi, distinct = conn.execute(
            "SELECT count(*), min(leaf_index), max(leaf_index), count(DISTINCT leaf_index) "
            "FROM log_leaf"
        ).fetchone()  # type: ignore[misc]
    assert (lo, hi, distinct) == (0, n - 1, n) and n >= WRITES + 2

    # Exactly one anchorer, everything anchored.
    (anchorer,) = svc.anchorer_pids()
    assert anchorer in workers
    wait_until(
        lambda: metric(svc.scrape(), "hm_log_pending_leaves") == 0
        # >=: each checkpoint also appends its subject index record
        and metric(svc.scrape(), "hm_log_tree_size") >= n,
        timeout=60, what="all records anchored",
    )

    # Counters are summed over the workers: every scrape, whichever worker answers it,
    # sees all the writes.
    for _ in range(6):
        text = svc.scrape()
        posted = metric(
            text, "hm_http_requests_total",
            route="/api/supervision/records", method="POST", status="201",
        )
        assert posted == WRITES
        assert metric(text, "hm_ledger_up") == 1
        assert metric(text, "hm_checkpoints") >= 1
        assert metric(text, "hm_last_checkpoint_age_seconds") < 120

    # The anchorer dies: another worker takes the lock within seconds and anchors.
    before = _children(svc.process.pid)
    os.kill(anchorer, signal.SIGKILL)
    killed_at = time.monotonic()
    # While its replacement is still starting (held stopped here, as a slow start on a
    # busy machine would be), new connections are served by the live workers: the dead
    # worker's socket left the SO_REUSEPORT group. (Before, a third of them waited in
    # its backlog until the replacement listened.)
    (replacement,) = wait_until(
        lambda: _children(svc.process.pid) - before,
        timeout=20, what="the supervisor to start a replacement",
    )
    os.kill(replacement, signal.SIGSTOP)
    try:
        for _ in range(24):
            assert httpx.get(svc.base + "/healthz", timeout=20).status_code == 200
    finally:
        os.kill(replacement, signal.SIGCONT)
    new = wait_until(
        lambda: [p for p in svc.anchorer_pids() if p != anchorer],
        timeout=20, what="another worker to take over anchoring",
    )
    assert time.monotonic() - killed_at < 10, "takeover took too long"
    assert new[0] in workers - {anchorer} or new[0] not in workers  # a survivor or a restart
    assert write(WRITES) == 201
    wait_until(lambda: svc.pending() == 0, timeout=60, what="the new anchorer to anchor")
    assert len(svc.anchorer_pids()) == 1

    audit = run_cli(["audit", "--quiet"], env=svc.env)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "audit passed" in audit.stdout

    # Nothing went wrong on the way (startup migrations, deployment, anchoring, takeover).
    log = [json.loads(line) for line in svc.log_path.read_text().splitlines() if line.strip()]
    assert [r for r in log if r["level"] in ("error", "critical")] == []
