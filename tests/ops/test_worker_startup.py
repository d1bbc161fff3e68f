"""``serve --workers N`` starts even when a worker takes long to import.

uvicorn starts each worker with multiprocessing's spawn, which imports the parent's
main module (``backend.cli``, which loads every domain) before the worker can answer
the supervisor's health ping; uvicorn's default 5 s was shorter than that on a loaded
machine, so every worker was killed before it could start, in a loop. Here the main
module sleeps 8 s on import, so the test does not depend on the machine's load.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from scripts.served import answers, free_port, served, service_env
from tests.conftest import ROOT, AnvilNode, wait_for_port
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
    env = service_env(tmp_path / "data", PYTHONPATH=ROOT, HM_LEDGER_URL=anvil.url,
                      HM_LEDGER_KEY=anvil.key, HM_RERATE_ENABLED="false")
    port = free_port()
    log = tmp_path / "serve.log"
    argv = [sys.executable, str(script), "serve", "--workers", "2", "--port", str(port)]
    with open(log, "wb") as out, served(argv, env=env, output=out):
        wait_for_port(port, timeout=120)

        def started() -> bool:
            return log.read_text(errors="replace").count("Application startup complete") >= 2

        wait_until(started, timeout=180, what="both workers to start", interval=0.5)
        assert answers(port)
        assert " died" not in log.read_text(errors="replace")
