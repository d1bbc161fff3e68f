"""Outcomes of concurrent requests written in one transaction (record_outcomes, the
group commit behind POST /api/supervision/records): each request stands or falls on
its own, and each is checked against those before it in the batch."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter
from sqlalchemy import func, select, text

from backend.accounts.models import Account
from backend.accounts.service import Principal
from backend.app import create_app
from backend.credit.models import MerchantRating
from backend.errors import DomainError
from backend.ledger import log
from backend.supervision import service
from backend.supervision.models import InstrumentInput, SupervisionInput, SupervisionRecord
from tests import factories
from tests.conftest import make_settings
from tests.supervision import outcomes as o

INPUT: TypeAdapter[Any] = TypeAdapter(SupervisionInput)
NOBODY = factories.make_uscc(n=987654)  # a valid credit code nobody registered


@pytest.fixture
def staff(client: TestClient, regulator: dict[str, str]) -> Principal:
    with client.app.state.ctx.db.read() as s:  # type: ignore[attr-defined]
        acc = s.execute(select(Account).where(Account.username == "regulator1")).scalar_one()
        return Principal(acc.id, acc.username, "regulator", None)  # type: ignore[arg-type]


def batch(client: TestClient, who: Principal | None, *bodies: dict[str, Any]) -> list[Any]:
    with client.app.state.ctx.db.session() as s:  # type: ignore[attr-defined]
        return service.record_outcomes(s, [(who, INPUT.validate_python(b)) for b in bodies])


def count(client: TestClient) -> tuple[int, int]:
    with client.app.state.ctx.db.read() as s:  # type: ignore[attr-defined]
        rows = s.execute(select(func.count()).select_from(SupervisionRecord)).scalar_one()
        return log.tree_size(s), rows


def test_bad_requests_fail_alone(client: TestClient, staff: Principal) -> None:
    a = factories.register(client)["uscc"]
    b = factories.register(client, name="第二家超市")["uscc"]
    before = count(client)
    out = batch(
        client,
        staff,
        o.spot_check(uscc=a),
        o.spot_check(uscc=NOBODY),
        o.penalty(uscc=b, decision_no="巴市监罚〔2026〕7号"),
        o.penalty(uscc=b, decision_no="巴市监罚〔2026〕7号"),  # the same decision again
    )
    assert out[0].uscc == a and out[2].uscc == b
    assert isinstance(out[1], DomainError) and out[1].status_code == 404
    assert isinstance(out[3], DomainError) and out[3].status_code == 409
    assert "already has penalty" in out[3].detail
    assert out[0].leaf_index + 1 == out[2].leaf_index  # dense, in request order
    assert count(client) == (before[0] + 2, before[1] + 2)
    with client.app.state.ctx.db.read() as s:  # type: ignore[attr-defined]
        rating = s.get(MerchantRating, b)
        assert rating is not None and rating.tier == out[2].credit.tier
        assert log.get_envelope(s, out[2].record_id)["actor"]["account"] == str(staff.account_id)


def test_second_correction_of_one_record_in_a_batch_conflicts(
    client: TestClient, staff: Principal, regulator: dict[str, str]
) -> None:
    uscc = factories.register(client)["uscc"]
    first = o.post(client, o.spot_check(uscc=uscc), headers=regulator)
    fix = {"supersedes": first["record_id"], "correction_reason": "结果录入错误"}
    out = batch(
        client,
        staff,
        o.spot_check(uscc=uscc, result="发现问题已责令改正", **fix),
        o.spot_check(uscc=uscc, result="发现问题待后续处理", **fix),
    )
    assert out[0].refs == [{"rel": "supersedes", "record": first["record_id"]}]
    assert isinstance(out[1], DomainError) and out[1].status_code == 409
    assert "already superseded" in out[1].detail


def test_an_out_ends_the_in_of_the_same_batch(client: TestClient, staff: Principal) -> None:
    uscc = factories.register(client)["uscc"]
    listed, ended = batch(
        client,
        staff,
        o.listing(uscc=uscc, action="in", on=o.days_ago(9)),
        o.listing(uscc=uscc, action="out", on=o.days_ago(2)),
    )
    # The provisional reference was replaced by the real record id before appending.
    assert [r["record"] for r in ended.refs] == [listed.record_id]
    with client.app.state.ctx.db.read() as s:  # type: ignore[attr-defined]
        assert log.get_envelope(s, ended.record_id)["refs"][0]["record"] == listed.record_id


def test_nothing_is_written_when_every_request_fails(
    client: TestClient, staff: Principal
) -> None:
    before = count(client)
    out = batch(client, None, o.spot_check(uscc=NOBODY))
    assert isinstance(out[0], DomainError) and out[0].status_code == 401
    out = batch(client, staff, o.spot_check(uscc=NOBODY))
    assert isinstance(out[0], DomainError) and out[0].status_code == 404
    assert count(client) == before


def test_concurrent_posts_are_all_written_once(
    client: TestClient, regulator: dict[str, str]
) -> None:
    usccs = [factories.register(client, name=f"并发商户{i}")["uscc"] for i in range(4)]
    before = count(client)

    def post(i: int) -> dict[str, Any]:
        return o.post(client, o.spot_check(uscc=usccs[i % 4]), headers=regulator)

    with ThreadPoolExecutor(12) as pool:
        written = list(pool.map(post, range(48)))
    indexes = sorted(w["leaf_index"] for w in written)
    assert indexes == list(range(before[0], before[0] + 48))
    assert count(client) == (before[0] + 48, before[1] + 48)


# --- one bad item among concurrent writes (issue 15, M3) -----------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    """An app on SQLite, or on a fresh PostgreSQL database."""
    over: dict[str, Any] = {"anchor_enabled": False}
    if request.param == "postgresql":
        over["database_url"] = request.getfixturevalue("postgres_url")
    app = create_app(make_settings(tmp_path / "data", **over))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@contextmanager
def writes_held(client: TestClient) -> Iterator[None]:
    """Hold the log's write lock (a real transaction on the real database) while the body
    runs, so the first write waits in its batch and every later one queues for the next."""
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    conn = ctx.db.engine.connect()
    try:
        with conn.begin():  # BEGIN IMMEDIATE on SQLite: the write lock itself
            conn.execute(text("UPDATE log_head SET size = size WHERE id = 1"))  # row lock on PG
            yield
    finally:
        conn.close()


def queued(client: TestClient) -> int:
    group = client.app.state.ctx._locals.get("supervision.group_commit")  # type: ignore[attr-defined]  # noqa: SLF001
    return 0 if group is None else group._queue.qsize()  # noqa: SLF001


def wait_until(cond: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_an_endless_valid_until_fails_alone_among_concurrent_writes(
    db_client: TestClient,
) -> None:
    """The red team's case: an instrument valid until 9999-12-31 passed the schema, then
    overflowed the rating inside the group commit, and the valid writes grouped with it
    failed too (36 of 55 on SQLite). Now it is refused up front, alone."""
    client = db_client
    regulator = factories.create_staff(client, username="reg-m3", role="regulator")
    usccs = [factories.register(client, name=f"并发商户{i}")["uscc"] for i in range(5)]
    before = count(client)
    n, bad_at = 24, 12
    bad = o.instrument(uscc=usccs[0], valid_until=date(9999, 12, 31))

    def post(i: int) -> Any:
        body = bad if i == bad_at else o.spot_check(uscc=usccs[i % 5])
        return client.post("/api/supervision/records", json=body, headers=regulator)

    with ThreadPoolExecutor(n) as pool:
        with writes_held(client):
            first = pool.submit(post, 0)
            wait_until(lambda: queued(client) == 0 and "supervision.group_commit"
                       in client.app.state.ctx._locals, "the first write")  # type: ignore[attr-defined]  # noqa: SLF001
            rest = {i: pool.submit(post, i) for i in range(1, n)}
            # The bad one is refused before it reaches the queue: the others queue up.
            wait_until(lambda: queued(client) >= n - 2, "the writes to queue")
        answers = {0: first.result(120), **{i: f.result(120) for i, f in rest.items()}}
    refused = answers.pop(bad_at)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"] == "DateBeyondHorizon"
    assert "valid_until 9999-12-31" in refused.json()["detail"]
    failed = {i: r.text for i, r in answers.items() if r.status_code != 201}
    assert failed == {}
    assert count(client) == (before[0] + n - 1, before[1] + n - 1)


def test_an_unexpected_failure_of_one_grouped_item_fails_only_that_item(
    db_client: TestClient,
) -> None:
    """A failing item injected into the real group commit among valid concurrent writes:
    its check raises TypeError (no DomainError); it alone fails, the others are written."""
    client = db_client
    regulator = factories.create_staff(client, username="reg-inject", role="regulator")
    with client.app.state.ctx.db.read() as s:  # type: ignore[attr-defined]
        acc = s.execute(select(Account).where(Account.username == "reg-inject")).scalar_one()
        who = Principal(acc.id, acc.username, "regulator", None)  # type: ignore[arg-type]
    usccs = [factories.register(client, name=f"注入商户{i}")["uscc"] for i in range(4)]
    before = count(client)
    # Built without validation, as no request could: a serial that is not text.
    broken = InstrumentInput.model_construct(
        kind="instrument", uscc=usccs[0], instrument_type="电子计价秤", serial=None,
        certificate_no="JD-1", verified_on=o.days_ago(10), valid_until=o.days_ago(-300),
        supersedes=None, correction_reason=None,
    )
    n = 16

    def post(i: int) -> Any:
        return client.post(
            "/api/supervision/records", json=o.spot_check(uscc=usccs[i % 4]), headers=regulator
        )

    with ThreadPoolExecutor(n + 1) as pool:
        with writes_held(client):
            first = pool.submit(post, 0)
            wait_until(lambda: "supervision.group_commit"
                       in client.app.state.ctx._locals, "the first write")  # type: ignore[attr-defined]  # noqa: SLF001
            group = client.app.state.ctx._locals["supervision.group_commit"]  # type: ignore[attr-defined]  # noqa: SLF001
            rest = [pool.submit(post, i) for i in range(1, n // 2)]
            injected = pool.submit(group.submit, (who, broken))
            rest += [pool.submit(post, i) for i in range(n // 2, n)]
            wait_until(lambda: queued(client) >= n, "the writes to queue")
        answers = [first.result(120), *(f.result(120) for f in rest)]
        with pytest.raises(TypeError):
            injected.result(120)
    assert [r.status_code for r in answers if r.status_code != 201] == []
    assert count(client) == (before[0] + n, before[1] + n)
