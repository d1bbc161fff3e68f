"""TEST-ONLY launcher: ``honest-metering anchor --once`` that dies right after its tx.

Installs the anchoring worker's fault-injection hook so the process calls
``os._exit`` as soon as the anchor transaction is mined, before the checkpoint
row is written: the crash the worker's reconciliation must survive. Prints the
transaction hash first so the test can check what the restart records.
Settings come from the environment (HM_*), as for the real command.
"""

from __future__ import annotations

import os
import sys

from backend import cli
from backend.ledger import anchoring
from backend.ledger.chain import TxResult

CRASH_EXIT_CODE = 86


def _die(result: TxResult) -> None:
    sys.stdout.write(f"sent {result.tx_hash}\n")
    sys.stdout.flush()
    os._exit(CRASH_EXIT_CODE)


if __name__ == "__main__":
    anchoring._test_hook_after_anchor_sent = _die
    cli.main(["anchor", "--once"])
