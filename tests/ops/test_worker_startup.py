"""``serve --workers N`` starts even when a worker takes long to import.

uvicorn starts each worker with multiprocessing's spawn, which imports the parent's
main module (``backend.cli``, which loads every domain) before the worker can answer
the supervisor's health ping; uvicorn's default 5 s was shorter than that on a loaded
machine, so every worker was killed before it could start, in a loop. Here the main
module sleeps 8 s on import, so the test does not depend on the machine's load.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, AnvilNode, free_port, wait_for_port
from tests.ledger.conftest import wait_until

pytestmark = [pytest.mark.anvil, pytest.mark.slow]

SLOW_MAIN = """
import sys, time
time.sleep(8)  # runs again in each spawned worker, as __mp_main__
from backend.cli import main
if __name__ == "__main__":
    sys.exit(main())
"""


def test_workers_whose_import_is_slow_still_start(anvil: AnvilNode, tmp_path: Path) -> None:
    script = tmp_path / "slow_main.py"
    script.write_text(SLOW_MAIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HM_", "PROMETHEUS_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        HM_ENV="test",
        HM_DATA_DIR=str(tmp_path / "data"),
        HM_LEDGER_URL=anvil.url,
        HM_LEDGER_KEY=anvil.key,
        HM_DEMO_ON_FIRST_START="false",
        HM_SECRET_KEY="test-secret-key-0123456789abcdef0123456789",
        HM_RERATE_ENABLED="false",
    )
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(script), "serve", "--workers", "2", "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_for_port(port, timeout=120)

        def started() -> bool:
            return log.read_text(errors="replace").count("Application startup complete") >= 2

        wait_until(started, timeout=180, what="both workers to start", interval=0.5)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        assert " died" not in log.read_text(errors="replace")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
