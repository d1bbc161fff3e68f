"""Several uvicorn workers on one PostgreSQL database: every worker accepts writes,
leaf indexes stay dense and unique, exactly one worker anchors (the advisory lock),
and another takes over within seconds when it dies."""

from __future__ import annotations

import time

import pytest

from backend.ledger.anchoring import LOCKED_RETRY_S
from tests.conftest import AnvilNode
from tests.production.conftest import (
    MakeService,
    Writers,
    check_log,
    create_regulator,
    register_merchants,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.anvil]


def test_every_worker_writes_and_exactly_one_anchors(
    make_service: MakeService, node: AnvilNode
) -> None:
    # Three workers starting at once on a fresh database all come up (they used to
    # race creating the schema, and uvicorn then stopped the whole server).
    svc = make_service(ledger_url=node.url, workers=3)
    workers = svc.worker_pids()
    assert len(workers) == 3, svc.log_tail()
    assert "failed to start" not in svc.log()

    headers = create_regulator(svc)
    usccs = register_merchants(svc, headers, 12)
    writers_seen: set[int] = set()
    holders: list[int | None] = []
    with Writers(svc.url, headers, usccs, threads=6, limit=450, reconnect_every=10) as w:
        while w.count() < 450:
            writers_seen |= svc.appending_workers()
            holders.append(svc.anchor_holder())
            time.sleep(0.02)
    assert not w.failed, w.failed[:5]
    assert len(w.accepted) == 450

    # Every worker appended: the writes did not all go through one process.
    assert writers_seen == set(workers), (writers_seen, workers)
    # One anchorer throughout, and always the same process (nobody died).
    assert {h for h in holders if h is not None} == {holders[-1]}
    assert holders[-1] in workers
    # The others stand by.
    states = {svc.readyz()["anchoring"]["worker"]["state"] for _ in range(30)}
    assert states == {"anchorer", "standby"}, states

    svc.wait_all_anchored()
    facts = check_log(svc.env, node.url, accepted=w.accepted)
    # the writes, the merchants, the credit policy, the regulator account (account.created),
    # and the subject index record that ends each checkpoint
    assert facts.size == 450 + 12 + 1 + 1 + facts.index_records
    # Batching: far fewer checkpoints than records.
    assert len(facts.checkpoint_sizes) < facts.size / 5


def test_another_worker_takes_over_anchoring_when_the_anchorer_dies(
    make_service: MakeService, node: AnvilNode
) -> None:
    svc = make_service(ledger_url=node.url, workers=2)
    headers = create_regulator(svc)
    usccs = register_merchants(svc, headers, 3)
    holder = wait_for(svc.anchor_holder, timeout=30, what="an anchorer")
    svc.wait_all_anchored()

    svc.kill_worker(holder)
    t0 = time.monotonic()
    successor = wait_for(
        lambda: (h := svc.anchor_holder()) is not None and h != holder and h,
        timeout=20,
        what="another worker to take the anchoring lock",
        every=0.05,
    )
    took = time.monotonic() - t0
    # The surviving worker retries the lock every LOCKED_RETRY_S; the server drops a
    # dead holder's lock as soon as its connection closes.
    assert took < LOCKED_RETRY_S + 3, took
    assert successor in svc.worker_pids()

    # The new anchorer anchors what is written next.
    with Writers(svc.url, headers, usccs, threads=2, limit=40) as w:
        w.wait_count(40)
    assert not w.failed, w.failed[:5]
    svc.wait_all_anchored(timeout=20)
    # uvicorn replaced the dead worker meanwhile.
    wait_for(lambda: len(svc.worker_pids()) == 2, timeout=30, what="the worker to be replaced")
    check_log(svc.env, node.url, accepted=w.accepted)
