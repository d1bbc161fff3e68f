"""`honest-metering anchor --once` with a key the contract does not accept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from backend.context import AppContext
from backend.ledger import log
from backend.ledger.records import SYSTEM, RecordDraft
from tests.conftest import ROOT, AnvilNode, make_settings

# anvil's second well-known development account: funded, but never made an anchorer.
OTHER_ANVIL_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


def test_non_anchorer_key_gets_a_clear_refusal_not_a_traceback(
    tmp_path: Path, anvil: AnvilNode
) -> None:
    """Bug: a key that is not an anchorer crashed `anchor --once` with a traceback."""
    data = tmp_path / "data"
    ctx = AppContext.create(make_settings(data, ledger_url=anvil.url, ledger_key=anvil.key))
    try:
        address = ctx.ledger().contract_address
        with ctx.db.session() as s:
            log.append(s, RecordDraft("test.entry", None, SYSTEM, {"n": 1}))
            s.commit()
    finally:
        ctx.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HM_")}
    env.update(
        HM_DATA_DIR=str(data),
        HM_ENV="test",
        HM_SECRET_KEY="test-secret-key-0123456789abcdef0123456789",
        HM_LEDGER_URL=anvil.url,
        HM_LEDGER_KEY=OTHER_ANVIL_KEY,
        HM_CONTRACT_ADDRESS=str(address),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "backend.cli", "anchor", "--once"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "MeteringLedgerUnauthorizedAnchorer" in proc.stderr
    assert "not an anchorer" in proc.stderr
    assert OTHER_ANVIL_KEY.removeprefix("0x") not in proc.stderr + proc.stdout
