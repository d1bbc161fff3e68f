"""The inspector directory, conflict declarations and the inspection-item list through the
API: every change is a record, names and reasons stay private, only staff may write."""

from __future__ import annotations

import hashlib

from fastapi.testclient import TestClient

from backend.ledger.records import canonical_bytes
from tests import factories
from tests.inspections.helpers import ctx_of

INSPECTOR = {"name": "王五", "unit": "巴州区市场监督管理局", "region_code": "511902"}
ITEM = {
    "title": "加油机计量检查",
    "legal_basis": "《加油站计量监督管理办法》",
    "sectors": ["fuel"],
    "method": "现场检查",
}


class TestInspectors:
    def test_create_list_update(self, client: TestClient, regulator: dict[str, str]) -> None:
        resp = client.post("/api/inspectors", json=INSPECTOR, headers=regulator)
        assert resp.status_code == 201, resp.text
        created = resp.json()
        assert created["id"] == "insp-0001" and created["name"] == "王五"
        assert created["anchor_status"]["status"] == "pending"
        second = client.post("/api/inspectors", json=INSPECTOR, headers=regulator).json()
        assert second["id"] == "insp-0002"

        with ctx_of(client).db.read() as s:
            from backend.ledger import log

            env = log.get_envelope(s, created["record_id"])
        assert env["type"] == "inspection.inspector" and env["subject"] is None
        assert "王五" not in str(env)
        assert env["body"]["inspector_id"] == "insp-0001"
        assert len(env["body"]["name_digest"]) == 64

        public = client.get("/api/inspectors").json()
        assert public["total"] == 2 and all(i["name"] is None for i in public["items"])
        staff = client.get("/api/inspectors", headers=regulator).json()
        assert staff["items"][0]["name"] == "王五"

        resp = client.patch("/api/inspectors/insp-0001", json={"active": False}, headers=regulator)
        assert resp.status_code == 200, resp.text
        updated = resp.json()
        assert updated["active"] is False and updated["record_id"] != created["record_id"]
        with ctx_of(client).db.read() as s:
            env = log.get_envelope(s, updated["record_id"])
        assert env["refs"] == [{"rel": "supersedes", "record": created["record_id"]}]
        assert client.get("/api/inspectors", params={"active": True}).json()["total"] == 1

        same = client.patch("/api/inspectors/insp-0001", json={"active": False}, headers=regulator)
        assert same.status_code == 422 and same.json()["error"] == "NothingChanged"

    def test_chosen_id_and_refusals(self, client: TestClient, regulator: dict[str, str]) -> None:
        resp = client.post(
            "/api/inspectors", json={**INSPECTOR, "id": "BZ-0007"}, headers=regulator
        )
        assert resp.status_code == 201 and resp.json()["id"] == "BZ-0007"
        dup = client.post("/api/inspectors", json={**INSPECTOR, "id": "BZ-0007"}, headers=regulator)
        assert dup.status_code == 409 and dup.json()["error"] == "InspectorExists"
        bad = client.post("/api/inspectors", json={**INSPECTOR, "id": "张 三"}, headers=regulator)
        assert bad.status_code == 422 and bad.json()["error"] == "InvalidInspector"
        pipe = client.post("/api/inspectors", json={**INSPECTOR, "unit": "a|b"}, headers=regulator)
        assert pipe.status_code == 422 and pipe.json()["error"] == "InvalidInspector"
        region = client.post(
            "/api/inspectors", json={**INSPECTOR, "region_code": "110000"}, headers=regulator
        )
        assert region.status_code == 422 and region.json()["error"] == "UnknownRegion"
        assert client.post("/api/inspectors", json=INSPECTOR).status_code == 401
        _, merchant = factories.merchant_with_login(client)
        assert client.post("/api/inspectors", json=INSPECTOR, headers=merchant).status_code == 403
        assert (
            client.patch(
                "/api/inspectors/nobody", json={"active": False}, headers=regulator
            ).status_code
            == 404
        )

    def test_admin_may_manage(self, client: TestClient, admin: dict[str, str]) -> None:
        assert client.post("/api/inspectors", json=INSPECTOR, headers=admin).status_code == 201
        assert client.post("/api/inspection-items", json=ITEM, headers=admin).status_code == 201


class TestConflicts:
    def test_declare_and_withdraw(self, client: TestClient, regulator: dict[str, str]) -> None:
        inspector = client.post("/api/inspectors", json=INSPECTOR, headers=regulator).json()
        uscc = factories.make_uscc()
        path = f"/api/inspectors/{inspector['id']}/conflicts"
        resp = client.post(
            path, json={"uscc": uscc.lower(), "reason": "配偶经营"}, headers=regulator
        )
        assert resp.status_code == 201, resp.text
        declared = resp.json()
        assert declared["uscc"] == uscc and declared["active"] and declared["reason"] == "配偶经营"
        with ctx_of(client).db.read() as s:
            from backend.ledger import log

            env = log.get_envelope(s, declared["record_id"])
        assert env["type"] == "inspection.conflict"
        assert env["body"] == {
            "inspector_id": inspector["id"],
            "uscc": uscc,
            "declared_on": declared["declared_on"],
        }
        again = client.post(path, json={"uscc": uscc}, headers=regulator)
        assert again.status_code == 409 and again.json()["error"] == "ConflictAlreadyDeclared"
        bad = client.post(path, json={"uscc": "91350100M000100Y4Z"}, headers=regulator)
        assert bad.status_code == 422 and bad.json()["error"] == "InvalidCreditCode"

        listed = client.get(path, headers=regulator).json()
        assert [c["id"] for c in listed] == [declared["id"]]
        assert client.get(path).status_code == 401

        resp = client.delete(f"{path}/{declared['id']}", headers=regulator)
        assert resp.status_code == 200, resp.text
        withdrawn = resp.json()
        assert (
            not withdrawn["active"] and withdrawn["withdrawn_record_id"] == withdrawn["record_id"]
        )
        assert withdrawn["declaration_record_id"] == declared["record_id"]
        with ctx_of(client).db.read() as s:
            env = log.get_envelope(s, withdrawn["record_id"])
        assert env["type"] == "inspection.conflict_withdrawn"
        assert env["refs"] == [{"rel": "revokes", "record": declared["record_id"]}]
        twice = client.delete(f"{path}/{declared['id']}", headers=regulator)
        assert twice.status_code == 409 and twice.json()["error"] == "ConflictAlreadyWithdrawn"
        # Declaring again after a withdrawal is a new declaration.
        assert client.post(path, json={"uscc": uscc}, headers=regulator).status_code == 201


class TestItems:
    def test_create_list_update(self, client: TestClient, regulator: dict[str, str]) -> None:
        resp = client.post("/api/inspection-items", json=ITEM, headers=regulator)
        assert resp.status_code == 201, resp.text
        item = resp.json()
        assert item["id"] == 1 and item["sectors"] == ["fuel"]
        with ctx_of(client).db.read() as s:
            from backend.ledger import log

            env = log.get_envelope(s, item["record_id"])
        assert env["type"] == "inspection.item"
        assert env["body"]["item_id"] == 1 and env["body"]["legal_basis"] == ITEM["legal_basis"]
        assert hashlib.sha256(b"\x00" + canonical_bytes(env)).hexdigest() == item["record_id"]

        assert client.get("/api/inspection-items").json()["total"] == 1
        assert client.get("/api/inspection-items/1").json()["title"] == ITEM["title"]
        assert client.get("/api/inspection-items/2").status_code == 404

        resp = client.patch(
            "/api/inspection-items/1", json={"sectors": ["fuel", "taxi"]}, headers=regulator
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["sectors"] == ["fuel", "taxi"]
        bad = client.patch("/api/inspection-items/1", json={"sectors": ["moon"]}, headers=regulator)
        assert bad.status_code == 422 and bad.json()["error"] == "UnknownSector"
        assert client.post("/api/inspection-items", json=ITEM).status_code == 401

    def test_inactive_item_cannot_be_drawn(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        item = client.post(
            "/api/inspection-items", json={**ITEM, "active": False}, headers=regulator
        ).json()
        resp = client.post(
            "/api/draws",
            json={"item_id": item["id"], "planned_end": "2099-01-01"},
            headers=regulator,
        )
        assert resp.status_code == 422 and resp.json()["error"] == "ItemInactive"
