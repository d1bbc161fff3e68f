"""Anchorers racing on PostgreSQL + anvil: one checkpoint per tree size, whatever the
interleaving, and no storm of reverted transactions.

With the lock (``honest-metering anchor --once`` twice at once) one of them anchors
and the other stands aside. Without it — as when the lock holder's database
connection is dropped while it is half-way through a pass and another worker takes
the lock — the contract refuses a tree size that does not grow and the checkpoint
table refuses a second row for a size, so a race costs at most a refused transaction.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.context import AppContext
from backend.ledger import log
from backend.ledger.anchoring import Anchorer, AnchorOutcome
from backend.ledger.records import SYSTEM, RecordDraft
from tests.conftest import ROOT, AnvilNode, make_settings
from tests.production.conftest import check_log, failed_transactions, service_env

pytestmark = [pytest.mark.postgres, pytest.mark.anvil]

EXIT_OK, EXIT_BUSY = 0, 4


def append(ctx: AppContext, n: int) -> None:
    with ctx.db.session() as s:
        log.append(s, [RecordDraft("test.race", None, SYSTEM, {"n": i}) for i in range(n)])
        s.commit()


@pytest.fixture
def contexts(postgres_url: str, node: AnvilNode, tmp_path: Path) -> Iterator[list[AppContext]]:
    """Two service contexts (two 'processes') on one database and one node."""
    settings = make_settings(
        tmp_path / "data", database_url=postgres_url, ledger_url=node.url, ledger_key=node.key
    )
    ctxs = [AppContext.create(settings), AppContext.create(settings, migrate=False)]
    try:
        yield ctxs
    finally:
        for c in ctxs:
            c.close()


def test_two_anchor_commands_at_once(
    contexts: list[AppContext], node: AnvilNode, tmp_path: Path
) -> None:
    ctx = contexts[0]
    env = service_env(
        database_url=ctx.settings.database_url or "", ledger_url=node.url,
        data_dir=tmp_path / "data",
    )
    codes: list[int] = []
    for round_ in range(3):
        append(ctx, 7 + round_)
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "backend.cli", "anchor", "--once"],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=60) for p in procs]
        round_codes = [p.returncode for p in procs]
        assert set(round_codes) <= {EXIT_OK, EXIT_BUSY}, outs
        assert EXIT_OK in round_codes, outs
        anchored = [o for o, _ in outs if o.startswith("anchored checkpoint")]
        assert len(anchored) == 1, outs  # the other was busy or found nothing pending
        codes += round_codes
    facts = check_log(env, node.url)
    assert len(facts.checkpoint_sizes) == 3
    assert failed_transactions(node.url) == []


def test_anchorers_without_the_lock(
    contexts: list[AppContext], node: AnvilNode, tmp_path: Path
) -> None:
    rounds = 8
    anchorers = [Anchorer(c) for c in contexts]
    results: list[AnchorOutcome | Exception] = []
    for round_ in range(rounds):
        append(contexts[0], 3 + round_)
        barrier = threading.Barrier(2)
        outcomes: list[AnchorOutcome | Exception] = [Exception("not run")] * 2

        def run(
            i: int, barrier: threading.Barrier, outcomes: list[AnchorOutcome | Exception]
        ) -> None:
            barrier.wait(10)
            try:
                outcomes[i] = anchorers[i].run_once(force=True)
            except Exception as exc:  # the loser: a refused or clashing transaction
                outcomes[i] = exc

        threads = [
            threading.Thread(target=run, args=(i, barrier, outcomes)) for i in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        anchored = [o for o in outcomes if isinstance(o, AnchorOutcome) and o.action == "anchored"]
        assert len(anchored) <= 1 or anchored[0].tree_size != anchored[1].tree_size, outcomes
        results += outcomes

    # Whoever lost a round catches up: a last pass anchors whatever is left.
    for a in anchorers:
        a.forget_reconciliation()
        a.run_once(force=True)
    env = service_env(
        database_url=contexts[0].settings.database_url or "", ledger_url=node.url,
        data_dir=tmp_path / "data",
    )
    facts = check_log(env, node.url)
    assert len(facts.checkpoint_sizes) <= rounds + 1
    # At most one refused transaction per race (most losers are refused by the
    # simulation before sending anything).
    assert len(failed_transactions(node.url)) <= rounds
    assert any(isinstance(r, AnchorOutcome) and r.action == "anchored" for r in results)
