"""Pledges through the HTTP API: templates, making, renewing, withdrawing,
expiry, idempotent retries and the records each transition appends."""

from __future__ import annotations

import asyncio
import unicodedata
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from backend.ledger import log
from backend.pledges.models import Pledge
from backend.pledges.queries import add_months, shanghai_date
from backend.pledges.templates import TEMPLATES, current_template, template_digest
from tests import factories


def envelope(client: TestClient, record_id: str) -> dict[str, Any]:
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.read() as s:
        return log.get_envelope(s, record_id)


def today() -> date:
    return shanghai_date(datetime.now(UTC))


class TestTemplates:
    def test_all_sectors(self, client: TestClient) -> None:
        resp = client.get("/api/pledge-templates")
        assert resp.status_code == 200
        assert {(t["sector"], t["version"]) for t in resp.json()} == set(TEMPLATES)

    def test_one_sector_generic_items_first(self, client: TestClient) -> None:
        (fuel,) = client.get("/api/pledge-templates", params={"sector": "fuel"}).json()
        codes = [i["code"] for i in fuel["items"]]
        assert codes[:6] == ["G1", "G2", "G3", "G4", "G5", "G6"]
        assert "FUEL1" in codes
        assert fuel["digest"] == template_digest(TEMPLATES[("fuel", 1)])
        assert fuel["current"] is True
        assert fuel["sector_name"] == "加油站"

    def test_single_version_and_unknowns(self, client: TestClient) -> None:
        assert (
            client.get("/api/pledge-templates/optical/1").json()["title"] == "眼镜店诚信计量承诺书"
        )
        r = client.get("/api/pledge-templates/optical/9")
        assert r.status_code == 422
        assert r.json()["error"] == "UnknownPledgeTemplate"
        r = client.get("/api/pledge-templates", params={"sector": "spa"})
        assert r.status_code == 422
        assert r.json()["error"] == "UnknownSector"


class TestMakePledge:
    def test_pledge_and_its_record(self, client: TestClient) -> None:
        m, headers = factories.merchant_with_login(client, sector="fuel")
        template = current_template("fuel")
        resp = client.post(
            "/api/pledges",
            json=factories.pledge_body(sector="fuel", extra_commitments="每周自查加油机。"),
            headers=headers,
        )
        assert resp.status_code == 201, resp.text
        p = resp.json()
        assert p["status"] == "active"
        assert p["uscc"] == m["uscc"]
        assert p["record_id"] == p["made_record"]["record_id"]
        assert p["anchor_status"] == {
            "status": "pending",
            "checkpoint": None,
            "tree_size": None,
            "tx_hash": None,
            "block_number": None,
        }
        assert p["valid_from"] == today().isoformat()
        assert p["valid_until"] == add_months(today(), 12).isoformat()
        assert p["merchant_verified"] is False
        assert p["items"] == list(template.required_codes)
        assert p["item_texts"][0].startswith("遵守《中华人民共和国计量法》")
        env = envelope(client, p["record_id"])
        assert env["type"] == "pledge.made"
        assert env["subject"] == m["uscc"]
        assert env["actor"] == {"role": "merchant", "account": str(m["account"]["id"])}
        assert env["refs"] == []
        assert env["body"] == {
            "pledge_id": p["pledge_id"],
            "template": {"sector": "fuel", "version": 1, "digest": template_digest(template)},
            "items": list(template.required_codes),
            "extra_commitments": "每周自查加油机。",
            "valid_from": p["valid_from"],
            "valid_until": p["valid_until"],
            "signature": None,
        }

    def test_items_kept_in_template_order_and_optional_ones_allowed(
        self, client: TestClient
    ) -> None:
        _, headers = factories.merchant_with_login(client, sector="market")
        codes = list(reversed(current_template("market").codes))
        p = factories.make_pledge(client, headers=headers, sector="market", items=codes + ["G1"])
        assert p["items"] == list(current_template("market").codes)

    def test_missing_required_item(self, client: TestClient) -> None:
        _, headers = factories.merchant_with_login(client)
        body = factories.pledge_body(items=["G1", "G2"])
        resp = client.post("/api/pledges", json=body, headers=headers)
        assert resp.status_code == 422
        assert resp.json()["error"] == "PledgeItemsInvalid"
        assert resp.json()["missing"] == ["G3", "G4", "G5", "G6", "RETAIL1", "RETAIL2"]

    def test_item_of_another_sector(self, client: TestClient) -> None:
        _, headers = factories.merchant_with_login(client)
        items = list(current_template("retail").required_codes) + ["FUEL1"]
        resp = client.post("/api/pledges", json=factories.pledge_body(items=items), headers=headers)
        assert resp.status_code == 422
        assert resp.json()["unknown"] == ["FUEL1"]

    def test_unknown_template_version(self, client: TestClient) -> None:
        _, headers = factories.merchant_with_login(client)
        resp = client.post(
            "/api/pledges", json=factories.pledge_body(template_version=7), headers=headers
        )
        assert resp.status_code == 422
        assert resp.json()["error"] == "UnknownPledgeTemplate"

    def test_template_version_is_a_whole_number(self, client: TestClient) -> None:
        # Issue 15: `true` was taken as version 1.
        _, headers = factories.merchant_with_login(client)
        resp = client.post(
            "/api/pledges", json=factories.pledge_body(template_version=True), headers=headers
        )
        assert (resp.status_code, resp.json()["error"]) == (422, "ValidationFailed")
        assert "template_version" in resp.json()["detail"]

    def test_custom_validity(self, client: TestClient) -> None:
        _, headers = factories.merchant_with_login(client)
        until = (today() + timedelta(days=200)).isoformat()
        p = factories.make_pledge(client, headers=headers, valid_until=until)
        assert p["valid_until"] == until

    @pytest.mark.parametrize(
        "field",
        [
            {"valid_from": "2020-01-01"},
            {"valid_until": "2020-01-01"},
            {"valid_until": "2099-01-01"},
        ],
    )
    def test_bad_validity(self, client: TestClient, field: dict[str, str]) -> None:
        _, headers = factories.merchant_with_login(client)
        resp = client.post("/api/pledges", json=factories.pledge_body(**field), headers=headers)
        assert resp.status_code == 422
        assert resp.json()["error"] == "InvalidValidity"

    def test_extra_commitments_nfc_and_control_characters(self, client: TestClient) -> None:
        _, headers = factories.merchant_with_login(client)
        text = unicodedata.normalize("NFD", "第一条：café\n第二条：秤准")
        p = factories.make_pledge(client, headers=headers, extra_commitments=text)
        assert p["extra_commitments"] == unicodedata.normalize("NFC", text)
        bad = factories.pledge_body(extra_commitments="好\x1b")
        resp = client.post("/api/pledges", json=bad, headers=headers)
        assert resp.status_code == 422
        assert resp.json()["error"] == "InvalidText"
        long = factories.pledge_body(extra_commitments="字" * 1001)
        assert client.post("/api/pledges", json=long, headers=headers).status_code == 422

    def test_unverified_merchant_pledge_accepted_but_marked(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        m, headers = factories.merchant_with_login(client)
        p = factories.make_pledge(client, headers=headers)
        assert p["merchant_verified"] is False
        client.post(f"/api/merchants/{m['uscc']}/verification", headers=regulator)
        listed = client.get(f"/api/merchants/{m['uscc']}/pledges").json()["items"]
        assert listed[0]["merchant_verified"] is True

    def test_body_naming_own_code_is_fine(self, client: TestClient) -> None:
        m, headers = factories.merchant_with_login(client)
        factories.make_pledge(client, headers=headers, uscc=m["uscc"].lower())


class TestLifecycle:
    def test_renewal_supersedes_and_references(self, client: TestClient) -> None:
        m, headers = factories.merchant_with_login(client)
        first = factories.make_pledge(client, headers=headers)
        second = factories.make_pledge(client, headers=headers)
        assert second["renews"] == first["pledge_id"]
        assert envelope(client, second["record_id"])["refs"] == [
            {"rel": "renews", "record": first["record_id"]}
        ]
        listed = client.get(f"/api/merchants/{m['uscc']}/pledges").json()["items"]
        assert [(p["pledge_id"], p["status"]) for p in listed] == [
            (second["pledge_id"], "active"),
            (first["pledge_id"], "renewed"),
        ]
        assert listed[1]["renewed_by"] == second["pledge_id"]
        current = client.get(f"/api/merchants/{m['uscc']}").json()["current_pledge"]
        assert current["pledge_id"] == second["pledge_id"]

    def test_withdrawal(self, client: TestClient) -> None:
        m, headers = factories.merchant_with_login(client)
        p = factories.make_pledge(client, headers=headers)
        resp = client.post(
            f"/api/pledges/{p['pledge_id']}/withdraw", json={"reason": "停业"}, headers=headers
        )
        assert resp.status_code == 200, resp.text
        w = resp.json()
        assert w["status"] == "withdrawn"
        assert w["record_id"] != p["record_id"]
        assert w["withdrawal"]["record"]["record_id"] == w["record_id"]
        env = envelope(client, w["record_id"])
        assert env["type"] == "pledge.withdrawn"
        assert env["body"] == {
            "pledge_id": p["pledge_id"],
            "withdrawn_on": today().isoformat(),
            "reason": "停业",
        }
        assert env["refs"] == [{"rel": "revokes", "record": p["record_id"]}]
        # The pledge.made record is untouched: nothing is edited in place.
        assert envelope(client, p["record_id"])["body"]["pledge_id"] == p["pledge_id"]
        assert client.get(f"/api/merchants/{m['uscc']}").json()["current_pledge"] is None

    def test_withdraw_twice_or_renewed(self, client: TestClient) -> None:
        _, headers = factories.merchant_with_login(client)
        p = factories.make_pledge(client, headers=headers)
        factories.make_pledge(client, headers=headers)
        resp = client.post(
            f"/api/pledges/{p['pledge_id']}/withdraw", json={"reason": "x"}, headers=headers
        )
        assert resp.status_code == 409
        assert resp.json()["error"] == "PledgeNotActive"
        assert resp.json()["status"] == "renewed"

    def test_withdraw_needs_a_reason(self, client: TestClient) -> None:
        _, headers = factories.merchant_with_login(client)
        p = factories.make_pledge(client, headers=headers)
        for body in ({}, {"reason": ""}, {"reason": "   "}):
            resp = client.post(
                f"/api/pledges/{p['pledge_id']}/withdraw", json=body, headers=headers
            )
            assert resp.status_code == 422, body

    def test_new_pledge_after_withdrawal_does_not_renew(self, client: TestClient) -> None:
        _, headers = factories.merchant_with_login(client)
        p = factories.make_pledge(client, headers=headers)
        client.post(
            f"/api/pledges/{p['pledge_id']}/withdraw", json={"reason": "x"}, headers=headers
        )
        again = factories.make_pledge(client, headers=headers)
        assert again["renews"] is None
        assert envelope(client, again["record_id"])["refs"] == []

    def test_expiry_by_date(self, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
        m, headers = factories.merchant_with_login(client)
        p = factories.make_pledge(client, headers=headers)
        later = datetime.now(UTC) + timedelta(days=400)
        monkeypatch.setattr("backend.pledges.router.utcnow", lambda: later)
        monkeypatch.setattr("backend.shops.router.utcnow", lambda: later)
        listed = client.get(f"/api/merchants/{m['uscc']}/pledges").json()["items"]
        assert listed[0]["status"] == "expired"
        assert client.get(f"/api/merchants/{m['uscc']}").json()["current_pledge"] is None
        assert client.get("/api/stats/overview").json()["active_pledges"] == 0
        # A later pledge renews the expired one.
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        from backend.accounts.service import principal_from_token_async
        from backend.pledges import service
        from backend.pledges.models import PledgeCreate

        token = headers["Authorization"].split()[1]
        with ctx.db.session() as s:
            user = asyncio.run(principal_from_token_async(
                ctx.db, settings=ctx.settings, token=token, kind="access"
            ))
            renewed, _ = service.make_pledge(
                s, principal=user, data=PledgeCreate(**factories.pledge_body()), now=later
            )
        assert renewed.renews == p["pledge_id"]
        assert renewed.valid_from == shanghai_date(later)

    def test_get_one_and_unknown(self, client: TestClient) -> None:
        _, headers = factories.merchant_with_login(client)
        p = factories.make_pledge(client, headers=headers)
        assert client.get(f"/api/pledges/{p['pledge_id']}").json()["status"] == "active"
        resp = client.get("/api/pledges/" + "0" * 32)
        assert resp.status_code == 404
        assert resp.json()["error"] == "PledgeNotFound"
        resp = client.post("/api/pledges/nope/withdraw", json={"reason": "x"}, headers=headers)
        assert resp.status_code == 404

    def test_list_for_unknown_merchant(self, client: TestClient) -> None:
        resp = client.get("/api/merchants/91511902MA62Q3T556/pledges")
        assert resp.status_code == 404
        assert resp.json()["error"] == "MerchantNotFound"


class TestIdempotency:
    def _pledges(self, client: TestClient) -> int:
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        with ctx.db.read() as s:
            return int(s.execute(select(func.count()).select_from(Pledge)).scalar_one())

    def test_retry_returns_the_first_result(self, client: TestClient) -> None:
        _, headers = factories.merchant_with_login(client)
        h = {**headers, "Idempotency-Key": "2b1f8c1e-7a0d-4f7e-9d7a-1c2b3d4e5f60"}
        first = client.post("/api/pledges", json=factories.pledge_body(), headers=h)
        again = client.post("/api/pledges", json=factories.pledge_body(), headers=h)
        assert first.status_code == again.status_code == 201
        assert again.headers["Idempotent-Replayed"] == "true"
        assert "Idempotent-Replayed" not in first.headers
        assert again.json()["pledge_id"] == first.json()["pledge_id"]
        assert again.json()["record_id"] == first.json()["record_id"]
        assert again.json()["renews"] is None
        assert self._pledges(client) == 1

    def test_same_key_different_request(self, client: TestClient) -> None:
        _, headers = factories.merchant_with_login(client)
        h = {**headers, "Idempotency-Key": "k1"}
        client.post("/api/pledges", json=factories.pledge_body(), headers=h)
        resp = client.post(
            "/api/pledges", json=factories.pledge_body(extra_commitments="另加"), headers=h
        )
        assert resp.status_code == 422
        assert resp.json()["error"] == "IdempotencyKeyReused"
        assert self._pledges(client) == 1

    def test_keys_are_per_account(self, client: TestClient) -> None:
        _, a = factories.merchant_with_login(client)
        _, b = factories.merchant_with_login(client)
        ra = client.post(
            "/api/pledges", json=factories.pledge_body(), headers={**a, "Idempotency-Key": "k"}
        )
        rb = client.post(
            "/api/pledges", json=factories.pledge_body(), headers={**b, "Idempotency-Key": "k"}
        )
        assert ra.json()["pledge_id"] != rb.json()["pledge_id"]
        assert rb.json()["uscc"] != ra.json()["uscc"]

    def test_failed_request_does_not_burn_the_key(self, client: TestClient) -> None:
        _, headers = factories.merchant_with_login(client)
        h = {**headers, "Idempotency-Key": "k2"}
        bad = client.post("/api/pledges", json=factories.pledge_body(items=["G1"]), headers=h)
        assert bad.status_code == 422
        ok = client.post("/api/pledges", json=factories.pledge_body(items=["G1"]), headers=h)
        assert ok.status_code == 422  # same bad request, still rejected, nothing stored
        good = client.post(
            "/api/pledges",
            json=factories.pledge_body(),
            headers={**headers, "Idempotency-Key": "k3"},
        )
        assert good.status_code == 201

    def test_invalid_key(self, client: TestClient) -> None:
        _, headers = factories.merchant_with_login(client)
        resp = client.post(
            "/api/pledges",
            json=factories.pledge_body(),
            headers={**headers, "Idempotency-Key": "has space"},
        )
        assert resp.status_code == 422
        assert resp.json()["error"] == "InvalidIdempotencyKey"

    def test_withdraw_retry(self, client: TestClient) -> None:
        _, headers = factories.merchant_with_login(client)
        p = factories.make_pledge(client, headers=headers)
        h = {**headers, "Idempotency-Key": "w1"}
        url = f"/api/pledges/{p['pledge_id']}/withdraw"
        first = client.post(url, json={"reason": "停业"}, headers=h)
        again = client.post(url, json={"reason": "停业"}, headers=h)
        assert first.status_code == again.status_code == 200
        assert again.json()["record_id"] == first.json()["record_id"]
        assert again.headers["Idempotent-Replayed"] == "true"
        no_key = client.post(url, json={"reason": "停业"}, headers=headers)
        assert no_key.status_code == 409


def test_concurrent_retries_make_one_pledge(client: TestClient) -> None:
    from tests.pledges.test_postgres import concurrently

    _, headers = factories.merchant_with_login(client)
    h = {**headers, "Idempotency-Key": "same-key"}
    results = concurrently(
        4, lambda: client.post("/api/pledges", json=factories.pledge_body(), headers=h)
    )
    assert {r.status_code for r in results} == {201}
    assert len({r.json()["pledge_id"] for r in results}) == 1
    assert sorted(r.headers.get("Idempotent-Replayed", "") for r in results) == [
        "",
        "true",
        "true",
        "true",
    ]
