"""Anyone can take any valid credit code (issue 15 M5): an unverified registration shows
no tier and no sign, and a regulator rejects it or transfers it to the code's rightful
owner — each a new record (``merchant.rejected``, ``merchant.transferred``), never an edit."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.ledger import log
from backend.ledger.projection import CheckContext, audit_all
from backend.merchants.models import Merchant, MerchantRegistrationAction
from backend.timeutil import today_shanghai
from tests import factories

REASON = "该统一社会信用代码不属于登记人"


def _db(client: TestClient) -> Any:
    return client.app.state.ctx.db  # type: ignore[attr-defined]


def _audit_clean(client: TestClient) -> None:
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.read() as s:
        _, found = audit_all(s, CheckContext(ctx.settings, today_shanghai()))
    assert [d.line() for d in found] == []


def _squatter(client: TestClient) -> tuple[dict[str, Any], dict[str, str]]:
    """Someone registers a code that is not theirs and pledges."""
    m, headers = factories.merchant_with_login(client, name="冒名登记的商店")
    factories.make_pledge(client, headers=headers)
    return m, headers


class TestUnverified:
    def test_no_tier_before_verification(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        m, _ = _squatter(client)
        uscc = m["uscc"]
        for path in (f"/api/merchants/{uscc}/credit", f"/api/merchants/{uscc}/credit/history"):
            resp = client.get(path)
            assert resp.status_code == 409, path
            body = resp.json()
            assert body["error"] == "MerchantNotVerified"
            assert body["verification"] == "unverified" and body["tier"] is None
            assert "not been verified" in body["detail"]
        view = client.get(f"/api/merchants/{uscc}").json()
        assert view["verification"]["status"] == "unverified"
        page = client.get(f"/merchants/{uscc}")
        assert page.status_code == 200
        assert "待核验：登记信息尚未经监管部门核验" in page.text
        assert 'id="tier-withheld"' in page.text and "sign.pdf" not in page.text
        client.post(f"/api/merchants/{uscc}/verification", headers=regulator)
        assert client.get(f"/api/merchants/{uscc}/credit").json()["tier"] == "B"
        page = client.get(f"/merchants/{uscc}")
        assert "待核验" not in page.text and "sign.pdf" in page.text


class TestReject:
    def test_rejection_frees_the_code_for_its_owner(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        m, squatter = _squatter(client)
        uscc = m["uscc"]
        resp = client.post(
            f"/api/merchants/{uscc}/rejection", json={"reason": REASON}, headers=regulator
        )
        assert resp.status_code == 201, resp.text
        out = resp.json()
        assert out["action"] == "rejected" and out["registration_record_id"] == m["record_id"]
        assert out["one_time_password"] is None
        with _db(client).read() as s:
            env = log.get_envelope(s, out["record_id"])
        assert env["type"] == "merchant.rejected" and env["subject"] == uscc
        assert env["refs"] == [{"rel": "rejects", "record": m["record_id"]}]
        assert env["body"] == {"reason": REASON}
        # no longer shown as that merchant; its account is disabled; its pledge withdrawn
        assert client.get(f"/api/merchants/{uscc}").status_code == 404
        assert client.get(f"/merchants/{uscc}", headers={"Accept": "text/html"}).status_code == 404
        assert client.get("/api/merchants", params={"q": uscc}).json()["total"] == 0
        assert client.get("/api/auth/me", headers=squatter).status_code == 401
        # the rightful owner registers the code
        owner = factories.register(
            client, uscc=uscc, name="真正的经营者", password="owner pass 2026"
        )
        assert owner["name"] == "真正的经营者"
        assert owner["current_pledge"] is None
        with _db(client).read() as s:
            env = log.get_envelope(s, owner["record_id"])
        assert env["refs"] == [{"rel": "after_rejection", "record": out["record_id"]}]
        assert client.get(f"/api/merchants/{uscc}").json()["name"] == "真正的经营者"
        assert factories.token(client, username=uscc, password="owner pass 2026")
        assert client.post(
            "/api/auth/token", data={"username": uscc, "password": factories.PASSWORD}
        ).status_code == 401
        _audit_clean(client)

    def test_reject_twice(self, client: TestClient, regulator: dict[str, str]) -> None:
        m, _ = _squatter(client)
        url = f"/api/merchants/{m['uscc']}/rejection"
        assert client.post(url, json={"reason": REASON}, headers=regulator).status_code == 201
        resp = client.post(url, json={"reason": REASON}, headers=regulator)
        assert resp.status_code == 409
        assert resp.json()["error"] == "RegistrationAlreadyRejected"

    def test_a_verified_registration_is_transferred_not_rejected(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        m = factories.register_verified(client)
        resp = client.post(
            f"/api/merchants/{m['uscc']}/rejection", json={"reason": REASON}, headers=regulator
        )
        assert resp.status_code == 409 and resp.json()["error"] == "MerchantAlreadyVerified"

    def test_only_regulators_reject(
        self, client: TestClient, regulator: dict[str, str], admin: dict[str, str]
    ) -> None:
        m, headers = _squatter(client)
        url = f"/api/merchants/{m['uscc']}/rejection"
        assert client.post(url, json={"reason": REASON}).status_code == 401
        resp = client.post(url, json={"reason": REASON}, headers=headers)
        assert resp.status_code == 403 and resp.json()["error"] == "RoleNotPermitted"
        assert client.post(url, json={"reason": REASON}, headers=admin).status_code == 403
        assert client.get(f"/api/merchants/{m['uscc']}").status_code == 200

    def test_unknown_code_and_empty_reason(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        unknown = factories.make_uscc(n=999_991)
        for action in ("rejection", "transfer"):
            resp = client.post(
                f"/api/merchants/{unknown}/{action}", json={"reason": REASON}, headers=regulator
            )
            assert resp.status_code == 404 and resp.json()["error"] == "MerchantNotFound"
        m = factories.register(client)
        resp = client.post(
            f"/api/merchants/{m['uscc']}/rejection", json={"reason": "  "}, headers=regulator
        )
        assert resp.status_code == 422


class TestTransfer:
    def test_transfer_hands_the_account_to_the_owner(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        m, squatter = _squatter(client)
        uscc = m["uscc"]
        resp = client.post(
            f"/api/merchants/{uscc}/transfer", json={"reason": REASON}, headers=regulator
        )
        assert resp.status_code == 201, resp.text
        out = resp.json()
        assert out["action"] == "transferred" and out["registration_record_id"] == m["record_id"]
        new_password = out["one_time_password"]
        assert new_password
        # the previous registrant loses access; the owner logs in with the new password
        assert client.get("/api/auth/me", headers=squatter).status_code == 401
        assert client.post(
            "/api/auth/token", data={"username": uscc, "password": factories.PASSWORD}
        ).status_code == 401
        assert factories.token(client, username=uscc, password=new_password)
        with _db(client).read() as s:
            env = log.get_envelope(s, out["record_id"])
            rows = s.execute(select(MerchantRegistrationAction)).scalars().all()
            assert [(r.action, r.uscc, r.registration_record_id) for r in rows] == [
                ("transferred", uscc, m["record_id"])
            ]
            assert s.get(Merchant, uscc) is not None
        assert env["type"] == "merchant.transferred"
        assert env["refs"] == [{"rel": "transfers", "record": m["record_id"]}]
        assert new_password not in json.dumps(env)
        assert client.get(f"/api/merchants/{uscc}").status_code == 200
        _audit_clean(client)

    def test_only_regulators_transfer(self, client: TestClient) -> None:
        m, headers = _squatter(client)
        resp = client.post(
            f"/api/merchants/{m['uscc']}/transfer", json={"reason": REASON}, headers=headers
        )
        assert resp.status_code == 403
