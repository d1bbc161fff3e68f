"""Public complaints: anonymous, rate-limited, private contact, count only once verified."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.app import create_app
from backend.ledger.models import LogLeaf
from backend.supervision.models import SupervisionRecord
from tests import factories
from tests.conftest import make_settings
from tests.supervision import outcomes as o

CONTACT = "13912345678 李四"


def submit(client: TestClient, uscc: str, **headers: str) -> dict[str, str]:
    resp = client.post(
        "/api/complaints",
        json={"uscc": uscc, "content": "买了一斤苹果，复秤只有八两。", "contact": CONTACT},
        headers=headers,
    )
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


class TestComplaints:
    def test_verified_complaint_counts_and_is_shown_without_contact(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        uscc = factories.register_verified(client)["uscc"]
        c = submit(client, uscc)
        assert c["status"] == "received"
        # Not shown and not counted while pending.
        assert client.get(f"/api/merchants/{uscc}/records").json()["items"] == []
        assert o.credit(client, uscc)["score"] == 80
        pending = client.get("/api/complaints", params={"status": "pending"},
                             headers=regulator).json()
        assert [x["complaint_id"] for x in pending["items"]] == [c["complaint_id"]]
        assert pending["items"][0]["contact"] == CONTACT

        resp = client.post(
            f"/api/complaints/{c['complaint_id']}/verification",
            json={"outcome": "verified", "summary": "计量器具作弊，短斤缺两属实"},
            headers=regulator,
        )
        assert resp.status_code == 201, resp.text
        out = resp.json()
        assert out["status"] == "verified" and out["record_id"]
        assert out["anchor_status"]["status"] == "pending"
        assert o.credit(client, uscc)["score"] == 75
        shown = client.get(f"/api/merchants/{uscc}/records").json()["items"]
        assert [x["record_id"] for x in shown] == [out["record_id"]]
        assert shown[0]["record"]["body"] == {
            "complaint_id": c["complaint_id"],
            "verified_on": out["review"]["decided_on"],
            "summary": "计量器具作弊，短斤缺两属实",
        }
        # The contact and the complaint text are in no record.
        with client.app.state.ctx.db.read() as s:  # type: ignore[attr-defined]
            blobs = [bytes(b).decode() for b in s.execute(select(LogLeaf.canonical)).scalars()]
        assert not any("13912345678" in b or "八两" in b for b in blobs)

        again = client.post(
            f"/api/complaints/{c['complaint_id']}/verification",
            json={"outcome": "rejected", "summary": "x"},
            headers=regulator,
        )
        assert again.status_code == 409 and again.json()["error"] == "ComplaintAlreadyReviewed"

    def test_rejected_complaint_writes_no_record(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        uscc = factories.register_verified(client)["uscc"]
        c = submit(client, uscc)
        resp = client.post(
            f"/api/complaints/{c['complaint_id']}/verification",
            json={"outcome": "rejected", "summary": "经现场复秤，计量准确"},
            headers=regulator,
        )
        assert resp.status_code == 201
        assert resp.json()["record_id"] is None and resp.json()["status"] == "rejected"
        assert o.credit(client, uscc)["score"] == 80

    def test_staff_only_reads_and_unknown_ids(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        m, merchant = factories.merchant_with_login(client)
        c = submit(client, m["uscc"])
        assert client.get(f"/api/complaints/{c['complaint_id']}").status_code == 401
        resp = client.get(f"/api/complaints/{c['complaint_id']}", headers=merchant)
        assert resp.status_code == 403
        assert client.get(f"/api/complaints/{c['complaint_id']}",
                          headers=regulator).json()["contact"] == CONTACT
        resp = client.post("/api/complaints/nope/verification",
                           json={"outcome": "verified", "summary": "x"}, headers=regulator)
        assert resp.status_code == 404 and resp.json()["error"] == "ComplaintNotFound"
        resp = client.post("/api/complaints",
                           json={"uscc": factories.make_uscc(n=999_997), "content": "x"})
        assert resp.status_code == 404

    def test_rate_limited_per_address(self, client: TestClient) -> None:
        uscc = factories.register_verified(client)["uscc"]
        for _ in range(10):
            submit(client, uscc)
        resp = client.post("/api/complaints", json={"uscc": uscc, "content": "再投诉一次"})
        assert resp.status_code == 429
        assert resp.json()["error"] == "TooManyAttempts"
        assert resp.json()["retry_after_s"] > 0


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    over: dict[str, Any] = {"anchor_enabled": False}
    if request.param == "postgresql":
        over["database_url"] = request.getfixturevalue("postgres_url")
    app = create_app(make_settings(tmp_path / "data", **over))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize("outcome", ["verified", "rejected"])
def test_concurrent_reviews_of_one_complaint_one_wins_the_rest_conflict(
    db_client: TestClient, outcome: str
) -> None:
    """Issue 15 (L3): on PostgreSQL 47 of 60 concurrent reviews got 500, not 409."""
    client = db_client
    regulator = factories.create_staff(client, username="reg-l3", role="regulator")
    uscc = factories.register_verified(client)["uscc"]
    c = submit(client, uscc)
    n = 24
    barrier = threading.Barrier(n)

    def review(i: int) -> Any:
        barrier.wait(60)
        return client.post(
            f"/api/complaints/{c['complaint_id']}/verification",
            json={"outcome": outcome, "summary": f"第{i}次复核"},
            headers=regulator,
        )

    with ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(review, range(n)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [201] + [409] * (n - 1), [r.text for r in answers if r.status_code >= 500]
    assert {r.json()["error"] for r in answers if r.status_code == 409} == {
        "ComplaintAlreadyReviewed"
    }
    with client.app.state.ctx.db.read() as s:  # type: ignore[attr-defined]
        kinds = s.execute(select(SupervisionRecord.kind)).scalars().all()
    assert kinds == (["complaint_verified"] if outcome == "verified" else [])
