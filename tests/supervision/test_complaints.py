"""Public complaints: anonymous, rate-limited, private contact, count only once verified."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.ledger.models import LogLeaf
from tests import factories
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
        uscc = factories.register(client)["uscc"]
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
        uscc = factories.register(client)["uscc"]
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
        uscc = factories.register(client)["uscc"]
        for _ in range(10):
            submit(client, uscc)
        resp = client.post("/api/complaints", json={"uscc": uscc, "content": "再投诉一次"})
        assert resp.status_code == 429
        assert resp.json()["error"] == "TooManyAttempts"
        assert resp.json()["retry_after_s"] > 0
