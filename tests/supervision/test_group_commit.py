"""Outcomes of concurrent requests written in one transaction (record_outcomes, the
group commit behind POST /api/supervision/records): each request stands or falls on
its own, and each is checked against those before it in the batch."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter
from sqlalchemy import func, select

from backend.accounts.models import Account
from backend.accounts.service import Principal
from backend.credit.models import MerchantRating
from backend.errors import DomainError
from backend.ledger import log
from backend.supervision import service
from backend.supervision.models import SupervisionInput, SupervisionRecord
from tests import factories
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
