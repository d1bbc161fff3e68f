"""The merchant registry through the HTTP API: registration and its record,
bad input, the public view, search, verification and wallet binding."""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import date, timedelta

import pytest
import rfc8785
from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.ledger import log
from backend.ledger.models import LogLeaf
from backend.merchants.models import Merchant
from tests import factories

VALID = "91511902MA62Q3T556"


def envelope(client: TestClient, record_id: str) -> dict:  # type: ignore[type-arg]
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.read() as s:
        return log.get_envelope(s, record_id)


class TestRegister:
    def test_creates_unverified_merchant_account_and_record(self, client: TestClient) -> None:
        resp = client.post("/api/merchants", json=factories.merchant_body(uscc=VALID))
        assert resp.status_code == 201, resp.text
        body = resp.json()
        assert body["uscc"] == VALID
        assert body["verification"] == {
            "status": "unverified",
            "label": "未核验",
            "verified_on": None,
            "record": None,
        }
        assert body["account"]["username"] == VALID
        assert body["account"]["role"] == "merchant"
        assert len(body["record_id"]) == 64
        assert body["anchor_status"]["status"] == "pending"
        assert body["registration_record"]["record_id"] == body["record_id"]
        assert "contact_person" not in body and "contact_phone" not in body

    def test_record_follows_records_md(self, client: TestClient) -> None:
        m = factories.register(client, uscc=VALID, sub_area="jingkai")
        env = envelope(client, m["record_id"])
        assert env["type"] == "merchant.registered"
        assert env["subject"] == VALID
        assert env["actor"] == {"role": "public", "account": None}
        assert env["refs"] == []
        assert set(env["body"]) == {
            "uscc",
            "name",
            "sector",
            "region_code",
            "sub_area",
            "address",
            "contact_digest",
        }
        assert env["body"]["sub_area"] == "jingkai"
        assert len(env["body"]["contact_digest"]) == 64

    def test_contact_data_never_enters_the_log_in_clear(self, client: TestClient) -> None:
        m = factories.register(client, contact_person="李秀英", contact_phone="13912345678")
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        with ctx.db.read() as s:
            leaves = [bytes(c) for (c,) in s.execute(select(LogLeaf.canonical))]
            salt = s.get(Merchant, m["uscc"]).contact_salt
        assert not any(b"13912345678" in c or "李秀英".encode() in c for c in leaves)
        expected = hashlib.sha256(
            bytes.fromhex(salt)
            + rfc8785.dumps({"contact_person": "李秀英", "contact_phone": "13912345678"})
        ).hexdigest()
        assert envelope(client, m["record_id"])["body"]["contact_digest"] == expected

    def test_duplicate_credit_code(self, client: TestClient) -> None:
        factories.register(client, uscc=VALID)
        resp = client.post("/api/merchants", json=factories.merchant_body(uscc=VALID.lower()))
        assert resp.status_code == 409
        assert resp.json()["error"] == "MerchantAlreadyRegistered"

    def test_credit_code_normalised(self, client: TestClient) -> None:
        resp = client.post(
            "/api/merchants", json=factories.merchant_body(uscc=f"  {VALID.lower()}\t")
        )
        assert resp.status_code == 201
        assert resp.json()["uscc"] == VALID

    @pytest.mark.parametrize(
        ("code", "rule"),
        [
            ("91511902MA62Q3T55", "length"),
            ("91511902MA62Q3T5566", "length"),
            ("91511902MA62Q3T5I6", "charset"),
            ("91511902MO62Q3T556", "charset"),
            ("91511902MA62Z3T556", "charset"),
            ("9151S902MA62Q3T556", "charset"),
            ("91511902MA62Q3V556", "charset"),
            ("91511902MA62Q3T546", "org_check"),
            ("91511902MA62Q3T55X", "check"),
            ("91350100M000100Y4Z", "charset"),
            ("91350100M000100Y4Y", "check"),
        ],
    )
    def test_invalid_credit_code_names_the_rule(
        self, client: TestClient, code: str, rule: str
    ) -> None:
        resp = client.post("/api/merchants", json=factories.merchant_body(uscc=code))
        assert resp.status_code == 422
        body = resp.json()
        assert body["error"] == "InvalidCreditCode"
        assert body["rule"] == rule
        assert f"rule '{rule}' failed" in body["detail"]

    def test_wrong_check_character_says_which_it_should_be(self, client: TestClient) -> None:
        resp = client.post(
            "/api/merchants", json=factories.merchant_body(uscc="91350100M000100Y4Y")
        )
        assert resp.json()["expected"] == "3"
        assert resp.json()["position"] == 18

    @pytest.mark.parametrize(
        ("field", "value", "error"),
        [
            ("sector", "bakery", "UnknownSector"),
            ("region_code", "510100", "UnknownRegion"),
            ("region_code", "511971", "UnknownRegion"),  # 经开区 is a sub-area, not a division
            ("sub_area", "downtown", "UnknownSubArea"),
            ("contact_phone", "call me", "InvalidPhone"),
            ("wallet_address", "0x1234", "InvalidWalletAddress"),
            (
                "wallet_address",
                "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".replace("a", "A", 1),
                "InvalidWalletAddress",
            ),
        ],
    )
    def test_unknown_vocabulary_and_bad_values(
        self, client: TestClient, field: str, value: str, error: str
    ) -> None:
        resp = client.post("/api/merchants", json=factories.merchant_body(**{field: value}))
        assert resp.status_code == 422
        assert resp.json()["error"] == error

    def test_unknown_sector_lists_the_allowed_ones(self, client: TestClient) -> None:
        resp = client.post("/api/merchants", json=factories.merchant_body(sector="bakery"))
        assert "fuel (加油站)" in resp.json()["detail"]

    @pytest.mark.parametrize(
        ("field", "limit"), [("name", 100), ("address", 200), ("contact_person", 50)]
    )
    def test_over_long_fields(self, client: TestClient, field: str, limit: int) -> None:
        resp = client.post(
            "/api/merchants", json=factories.merchant_body(**{field: "巴" * (limit + 1)})
        )
        assert resp.status_code == 422
        assert resp.json()["error"] == "ValidationFailed"
        assert field in resp.json()["detail"]
        ok = client.post("/api/merchants", json=factories.merchant_body(**{field: "巴" * limit}))
        assert ok.status_code == 201

    # (A NUL is refused for every request before any field is read: tests/ops/test_nul.py.)
    @pytest.mark.parametrize("bad", ["\x01", "\x1b[31m", "\n", "\u202e", "\x7f"])
    def test_control_characters_refused(self, client: TestClient, bad: str) -> None:
        resp = client.post("/api/merchants", json=factories.merchant_body(name=f"好又多{bad}超市"))
        assert resp.status_code == 422
        assert resp.json()["error"] == "InvalidText"
        assert resp.json()["field"] == "name"
        assert "position 4" in resp.json()["detail"]

    # Issue 15 (L7): zero-width and direction marks were accepted: every Cf format
    # character (zero-width space, RLM/LRM, BOM, soft hyphen, ALM, word joiner, tags).
    @pytest.mark.parametrize(
        "bad", ["\u200b", "\u200f", "\u200e", "\ufeff", "\u00ad", "\u061c", "\u2060",
                "\u200c", "\u200d", "\U000e0041"]
    )
    def test_invisible_format_characters_refused(self, client: TestClient, bad: str) -> None:
        for field in ("name", "address", "contact_person"):
            body = factories.merchant_body(**{field: f"好又多{bad}超市"})
            resp = client.post("/api/merchants", json=body)
            assert (resp.status_code, resp.json()["error"]) == (422, "InvalidText"), resp.text
            assert resp.json()["field"] == field
            assert f"U+{ord(bad):04X} at position 4" in resp.json()["detail"]

    def test_blank_name_refused(self, client: TestClient) -> None:
        resp = client.post("/api/merchants", json=factories.merchant_body(name="   "))
        assert resp.status_code == 422
        assert resp.json()["error"] == "InvalidText"

    def test_name_kept_exactly_after_nfc(self, client: TestClient) -> None:
        decomposed = unicodedata.normalize("NFD", " Café <b>&amp; 老王</b> ")
        m = factories.register(client, name=decomposed)
        assert m["name"] == unicodedata.normalize("NFC", decomposed)
        assert m["name"] == " Café <b>&amp; 老王</b> "
        assert envelope(client, m["record_id"])["body"]["name"] == m["name"]

    def test_unknown_field_refused(self, client: TestClient) -> None:
        body = factories.merchant_body()
        body["region"] = "511902"
        resp = client.post("/api/merchants", json=body)
        assert resp.status_code == 422
        assert "region" in resp.json()["detail"]

    def test_wallet_checksummed(self, client: TestClient) -> None:
        m = factories.register(client, wallet_address="0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed")
        assert m["wallet_address"] == "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"

    def test_registrations_rate_limited_per_address(self, client: TestClient) -> None:
        for _ in range(20):
            factories.register(client)
        resp = client.post("/api/merchants", json=factories.merchant_body())
        assert resp.status_code == 429
        assert resp.json()["error"] == "TooManyAttempts"


class TestGetMerchant:
    def test_public_view(self, client: TestClient) -> None:
        factories.register(client, uscc=VALID, sector="fuel", region_code="511921")
        resp = client.get(f"/api/merchants/{VALID.lower()}")
        assert resp.status_code == 200
        body = resp.json()
        assert body["uscc"] == VALID
        assert body["sector_name"] == "加油站"
        assert body["region_name"] == "通江县"
        assert body["current_pledge"] is None
        assert body["public_url"] == f"http://127.0.0.1:8000/merchants/{VALID}"
        text = resp.text
        assert "13800001234" not in text and "张三" not in text
        assert "contact" not in text.replace("contact_digest", "")

    def test_not_found(self, client: TestClient) -> None:
        resp = client.get(f"/api/merchants/{VALID}")
        assert resp.status_code == 404
        assert resp.json()["error"] == "MerchantNotFound"

    def test_invalid_code(self, client: TestClient) -> None:
        resp = client.get("/api/merchants/91511902MA62Q3T55X")
        assert resp.status_code == 422
        assert resp.json()["rule"] == "check"


class TestSearch:
    @pytest.fixture
    def registry(self, client: TestClient) -> list[dict]:  # type: ignore[type-arg]
        return [
            factories.register(client, uscc=VALID, name="巴中市巴山诚信超市有限公司"),
            factories.register(
                client,
                uscc="92511923MA6A1B2C3M",
                name="平昌县江口镇王记粮油店",
                region_code="511923",
            ),
            factories.register(
                client,
                uscc="93511903MA62R7U15L",
                name="恩阳区柳林银耳专业合作社",
                sector="prepackaged",
                region_code="511903",
            ),
            factories.register(client, name="100%纯粮_酒坊", sector="other"),
        ]

    def _codes(self, client: TestClient, **params: object) -> list[str]:
        resp = client.get("/api/merchants", params=params)
        assert resp.status_code == 200, resp.text
        return [m["uscc"] for m in resp.json()["items"]]

    def test_name_fragment(self, client: TestClient, registry: list[dict]) -> None:  # type: ignore[type-arg]
        assert self._codes(client, q="粮油") == ["92511923MA6A1B2C3M"]
        assert self._codes(client, q="巴山诚信") == [VALID]

    def test_credit_code_prefix_any_case(self, client: TestClient, registry: list[dict]) -> None:  # type: ignore[type-arg]
        assert self._codes(client, q="9251") == ["92511923MA6A1B2C3M"]
        assert self._codes(client, q=" 93511903ma62r7u15l ") == ["93511903MA62R7U15L"]
        assert self._codes(client, q="915119") == sorted(
            m["uscc"] for m in registry if m["uscc"].startswith("915119")
        )

    def test_like_wildcards_are_literal(self, client: TestClient, registry: list[dict]) -> None:  # type: ignore[type-arg]
        assert self._codes(client, q="%") == [registry[3]["uscc"]]
        assert self._codes(client, q="_") == [registry[3]["uscc"]]

    def test_filters_and_paging(self, client: TestClient, registry: list[dict]) -> None:  # type: ignore[type-arg]
        assert self._codes(client, region="511923") == ["92511923MA6A1B2C3M"]
        assert self._codes(client, sector="prepackaged") == ["93511903MA62R7U15L"]
        resp = client.get("/api/merchants", params={"limit": 2, "offset": 1})
        page = resp.json()
        assert page["total"] == 4
        assert len(page["items"]) == 2
        everything = self._codes(client)
        assert [m["uscc"] for m in page["items"]] == everything[1:3]
        summary = resp.json()["items"][0]
        assert set(summary) >= {"verified", "verification_label", "active_pledge", "sector_name"}

    def test_empty_form_fields_mean_no_filter(
        self,
        client: TestClient,
        registry: list[dict],  # type: ignore[type-arg]
    ) -> None:
        assert len(self._codes(client, q="  ", region="", sector="", tier="")) == 4

    def test_bad_filters(self, client: TestClient) -> None:
        for params, error in [
            ({"region": "110000"}, "UnknownRegion"),
            ({"sector": "spa"}, "UnknownSector"),
            ({"tier": "E"}, "InvalidTier"),
            ({"limit": 1000}, "ValidationFailed"),
            ({"q": "x\x07"}, "InvalidText"),
            ({"q": "x\x00"}, "NulCharacter"),  # refused for every request (ops/nul.py)
        ]:
            resp = client.get("/api/merchants", params=params)
            assert resp.status_code == 422, params
            assert resp.json()["error"] == error

    def test_tier_filter(self, client: TestClient, regulator: dict[str, str]) -> None:
        # Base 80 (B); an active pledge +5 (B); a demonstration award +10 more (A).
        plain = factories.register(client)
        star, headers = factories.merchant_with_login(client)
        client.post(f"/api/merchants/{star['uscc']}/verification", headers=regulator)
        factories.make_pledge(client, headers=headers)
        resp = client.post(
            f"/api/merchants/{star['uscc']}/demonstration",
            json={"action": "award"},
            headers=regulator,
        )
        assert resp.status_code == 201, resp.text
        assert self._codes(client, tier="a") == [star["uscc"]]
        # An unverified registration shows no tier, so no tier filter finds it (issue 15 M5).
        assert self._codes(client, tier="B") == []
        client.post(f"/api/merchants/{plain['uscc']}/verification", headers=regulator)
        assert self._codes(client, tier="B") == [plain["uscc"]]
        assert self._codes(client, tier="D") == []

    # At 10^5 merchants: tests/merchants/test_search.py checks the query plans (no timing).


class TestVerification:
    def test_regulator_verifies(self, client: TestClient, regulator: dict[str, str]) -> None:
        m = factories.register(client)
        resp = client.post(f"/api/merchants/{m['uscc']}/verification", headers=regulator)
        assert resp.status_code == 201, resp.text
        body = resp.json()
        assert body["verification"]["label"] == "已核验"
        env = envelope(client, body["record_id"])
        assert env["type"] == "merchant.verified"
        assert env["actor"]["role"] == "regulator"
        assert env["refs"] == [{"rel": "verifies", "record": m["record_id"]}]
        assert env["body"] == {"verified_on": body["verification"]["verified_on"]}
        public = client.get(f"/api/merchants/{m['uscc']}").json()
        assert public["verification"]["status"] == "verified"

    def test_twice(self, client: TestClient, regulator: dict[str, str]) -> None:
        m = factories.register(client)
        client.post(f"/api/merchants/{m['uscc']}/verification", headers=regulator)
        resp = client.post(f"/api/merchants/{m['uscc']}/verification", headers=regulator)
        assert resp.status_code == 409
        assert resp.json()["error"] == "MerchantAlreadyVerified"

    def test_date_in_the_future(self, client: TestClient, regulator: dict[str, str]) -> None:
        m = factories.register(client)
        later = (date.today() + timedelta(days=5)).isoformat()
        resp = client.post(
            f"/api/merchants/{m['uscc']}/verification",
            json={"verified_on": later},
            headers=regulator,
        )
        assert resp.status_code == 422
        assert resp.json()["error"] == "InvalidDate"

    def test_unknown_merchant(self, client: TestClient, regulator: dict[str, str]) -> None:
        resp = client.post(f"/api/merchants/{VALID}/verification", headers=regulator)
        assert resp.status_code == 404


class TestWallet:
    def test_merchant_binds_and_rebinds(self, client: TestClient) -> None:
        m, headers = factories.merchant_with_login(client)
        a = "0x" + "11" * 20
        b = "0x" + "22" * 20
        r1 = client.put(f"/api/merchants/{m['uscc']}/wallet", json={"address": a}, headers=headers)
        assert r1.status_code == 200
        assert r1.json()["wallet_address"].lower() == a
        r2 = client.put(f"/api/merchants/{m['uscc']}/wallet", json={"address": b}, headers=headers)
        assert r2.json()["wallet_address"].lower() == b

    def test_other_merchant_cannot_bind(self, client: TestClient) -> None:
        m = factories.register(client)
        _, other = factories.merchant_with_login(client)
        resp = client.put(
            f"/api/merchants/{m['uscc']}/wallet", json={"address": "0x" + "11" * 20}, headers=other
        )
        assert resp.status_code == 403
        assert resp.json()["error"] == "NotOwnMerchant"
