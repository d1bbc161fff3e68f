"""GroupCommit: batching of concurrent submissions, per-item results and errors,
isolation of a failing batch, orderly close."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from backend.config import Settings
from backend.context import AppContext
from backend.errors import DomainError, ValidationFailed
from backend.groupcommit import GroupCommit


class Recorder:
    """run_batch that doubles ints, fails negative ones, and blocks its first batch
    until ``release`` is set (so the other submissions queue up behind it)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = threading.Event()
        self.started = threading.Event()
        self.explode_on: int | None = None

    def __call__(self, items: Sequence[int]) -> list[int | DomainError]:
        self.batches.append(list(items))
        self.started.set()
        self.release.wait(10)
        if self.explode_on is not None and self.explode_on in items and len(items) > 1:
            raise ValidationFailed("the whole batch was refused")
        return [ValidationFailed(f"{i} is negative") if i < 0 else 2 * i for i in items]


def submit_all(group: GroupCommit[int, int], items: list[int], rec: Recorder) -> list[object]:
    with ThreadPoolExecutor(len(items)) as pool:
        first = pool.submit(group.submit, items[0])
        assert rec.started.wait(10)
        rest = [pool.submit(group.submit, i) for i in items[1:]]
        # Let the rest queue behind the blocked first batch.
        while group._queue.qsize() < len(rest):  # noqa: SLF001
            threading.Event().wait(0.001)
        rec.release.set()
        out: list[object] = []
        for fut in [first, *rest]:
            try:
                out.append(fut.result(10))
            except Exception as exc:  # noqa: BLE001
                out.append(exc)
    return out


def test_queued_submissions_share_a_batch_and_get_their_own_results() -> None:
    rec = Recorder()
    group: GroupCommit[int, int] = GroupCommit("test", rec)
    try:
        out = submit_all(group, [1, 2, -3, 4, 5], rec)
    finally:
        group.close()
    assert out[0] == 2 and out[1] == 4 and out[3] == 8 and out[4] == 10
    assert isinstance(out[2], ValidationFailed) and "-3 is negative" in out[2].detail
    assert rec.batches[0] == [1]
    assert sorted(rec.batches[1]) == [-3, 2, 4, 5]  # one batch for everything queued


def test_a_failing_batch_is_retried_item_by_item() -> None:
    rec = Recorder()
    rec.explode_on = 4
    group: GroupCommit[int, int] = GroupCommit("test", rec)
    try:
        out = submit_all(group, [1, 2, 3, 4], rec)
    finally:
        group.close()
    assert out == [2, 4, 6, 8]
    assert sorted(len(b) for b in rec.batches) == [1, 1, 1, 1, 3]


def test_an_unexpected_failure_before_commit_fails_only_its_item() -> None:
    # The case: one item's date overflowed the rating, an OverflowError that is
    # no DomainError, and every write grouped with it failed too.
    rec = Recorder()
    calls: list[list[int]] = []

    def overflowing(items: Sequence[int]) -> list[int | DomainError]:
        calls.append(list(items))
        if 13 in items:
            raise OverflowError("date value out of range")
        return rec(items)

    group: GroupCommit[int, int] = GroupCommit("test", overflowing)
    try:
        out = submit_all(group, [1, 2, 13, 4, 5], rec)
    finally:
        group.close()
    assert out[0] == 2 and out[1] == 4 and out[3] == 8 and out[4] == 10
    assert isinstance(out[2], OverflowError)
    assert sorted(len(c) for c in calls) == [1, 1, 1, 1, 1, 4]  # the batch, then each alone


def test_failures_from_commit_on_reach_every_caller_and_are_not_retried() -> None:
    rec = Recorder()
    calls: list[list[int]] = []
    engine = create_engine("sqlite://")

    def flaky(items: Sequence[int]) -> list[int | DomainError]:
        calls.append(list(items))
        if len(items) > 1:
            with engine.begin():
                pass  # a transaction committed: a COMMIT was sent in this batch
            raise OSError("connection lost during COMMIT")
        return rec(items)

    group: GroupCommit[int, int] = GroupCommit("test", flaky)
    try:
        out = submit_all(group, [1, 2, 3], rec)
    finally:
        group.close()
        engine.dispose()
    assert out[0] == 2
    assert all(isinstance(o, OSError) for o in out[1:])
    assert len(calls) == 2  # no retry that could write 2 and 3 twice


def test_a_database_gone_before_commit_reaches_every_caller() -> None:
    rec = Recorder()
    calls: list[list[int]] = []

    def gone(items: Sequence[int]) -> list[int | DomainError]:
        calls.append(list(items))
        if len(items) > 1:
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))
        return rec(items)

    group: GroupCommit[int, int] = GroupCommit("test", gone)
    try:
        out = submit_all(group, [1, 2, 3], rec)
    finally:
        group.close()
    assert out[0] == 2
    assert all(isinstance(o, OperationalError) for o in out[1:])
    assert len(calls) == 2  # not one more failed connection per item


def test_an_exception_of_a_lone_item_reaches_its_caller() -> None:
    def boom(items: Sequence[int]) -> list[int | DomainError]:
        raise RuntimeError("database gone")

    group: GroupCommit[int, int] = GroupCommit("test", boom)
    try:
        with pytest.raises(RuntimeError, match="database gone"):
            group.submit(1)
        with pytest.raises(RuntimeError, match="database gone"):
            group.submit(2)  # the writer thread survived
    finally:
        group.close()


def test_max_batch_bounds_a_batch() -> None:
    rec = Recorder()
    group: GroupCommit[int, int] = GroupCommit("test", rec, max_batch=3)
    try:
        out = submit_all(group, list(range(1, 9)), rec)
    finally:
        group.close()
    assert out == [2 * i for i in range(1, 9)]
    assert max(len(b) for b in rec.batches) == 3


def test_close_refuses_new_work() -> None:
    group: GroupCommit[int, int] = GroupCommit("test", lambda items: [i for i in items])
    assert group.submit(7) == 7
    group.close()
    with pytest.raises(RuntimeError, match="closed"):
        group.submit(8)


def test_a_context_used_again_after_closing_makes_a_new_one(settings: Settings) -> None:
    # An app whose lifespan runs twice reuses its context (schemathesis does this).
    ctx = AppContext.create(settings)
    first = ctx.local("g", lambda: GroupCommit("g", lambda items: list(items)))
    assert first.submit(1) == 1
    ctx.close()
    again = ctx.local("g", lambda: GroupCommit("g", lambda items: list(items)))
    assert again is not first and again.submit(2) == 2
    ctx.close()


def test_a_caller_cancelled_while_queued_is_not_written() -> None:
    import asyncio
    import contextlib

    rec = Recorder()
    group: GroupCommit[int, int] = GroupCommit("test", rec)

    async def scenario() -> int:
        loop = asyncio.get_running_loop()
        first = loop.run_in_executor(None, group.submit, 1)
        await loop.run_in_executor(None, rec.started.wait, 10)
        gone = asyncio.ensure_future(group.submit_async(2))
        kept = asyncio.ensure_future(group.submit_async(3))
        while group._queue.qsize() < 2:  # noqa: SLF001
            await asyncio.sleep(0.001)
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone  # the cancellation has reached the queued item
        rec.release.set()
        assert await first == 2
        return await kept

    try:
        assert asyncio.run(scenario()) == 6
    finally:
        group.close()
    assert rec.batches == [[1], [3]]
