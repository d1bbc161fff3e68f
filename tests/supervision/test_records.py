"""Supervision outcomes through the HTTP API: each kind, its record, validation,
corrections and revocations, lists, and the re-rating in the same transaction."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from backend.credit.models import MerchantRating, RatingChange
from backend.ledger import log
from backend.supervision.models import SupervisionRecord
from backend.timeutil import today_shanghai
from tests import factories
from tests.supervision import outcomes as o


def envelope(client: TestClient, record_id: str) -> dict[str, Any]:
    with client.app.state.ctx.db.read() as s:  # type: ignore[attr-defined]
        return log.get_envelope(s, record_id)


def tree_size(client: TestClient) -> int:
    with client.app.state.ctx.db.read() as s:  # type: ignore[attr-defined]
        return log.tree_size(s)


@pytest.fixture
def uscc(client: TestClient) -> str:
    return str(factories.register_verified(client)["uscc"])


class TestCreate:
    def test_spot_check_record_row_and_rating(
        self, client: TestClient, regulator: dict[str, str], uscc: str
    ) -> None:
        checked = o.days_ago(5)
        out = o.post(client, o.spot_check(uscc=uscc, checked_on=checked), headers=regulator)
        assert out["kind"] == "spot_check" and out["status"] == "current"
        assert out["anchor_status"]["status"] == "pending"
        assert out["credit"]["score"] == 82 and out["credit"]["tier"] == "B"
        env = envelope(client, out["record_id"])
        assert env["type"] == "supervision.spot_check" and env["subject"] == uscc
        assert env["actor"]["role"] == "regulator"
        assert env["body"] == {
            "result": "未发现问题",
            "checked_on": checked.isoformat(),
            "authority": o.AUTHORITY,
            "draw_id": None,
            "evidence_sha256": None,
        }
        with client.app.state.ctx.db.read() as s:  # type: ignore[attr-defined]
            row = s.get(SupervisionRecord, out["record_id"])
            assert row is not None and row.leaf_index == out["leaf_index"]
            assert row.draw_id is None and row.effective_on == checked
            rating = s.get(MerchantRating, uscc)
            assert rating is not None and rating.score == 82
        assert o.credit(client, uscc)["score"] == 82

    def test_penalty_lower_amount_follows_policy_and_entity(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        person = factories.register_verified(client, uscc=factories.make_uscc(entity="2"))["uscc"]
        company = factories.register_verified(client)["uscc"]
        # ¥50,000: lower for an organisation (< ¥100,000), not for a person (>= ¥10,000).
        a = o.post(client, o.penalty(uscc=person, amount_fen=5_000_000), headers=regulator)
        b = o.post(client, o.penalty(uscc=company, amount_fen=5_000_000), headers=regulator)
        assert a["body"]["lower_amount"] is False and a["credit"]["score"] == 50
        assert b["body"]["lower_amount"] is True and b["credit"]["score"] == 70
        c = o.post(
            client,
            o.penalty(uscc=company, decision_no="X-2", amount_fen=1, lower_amount=False),
            headers=regulator,
        )
        assert c["body"]["lower_amount"] is False

    def test_every_kind_writes_the_documented_body(
        self, client: TestClient, regulator: dict[str, str], uscc: str
    ) -> None:
        bodies = [
            o.penalty(uscc=uscc),
            o.complaint_verified(uscc=uscc),
            o.listing(uscc=uscc),
            o.listing(kind="serious_list", uscc=uscc),
            o.instrument(uscc=uscc),
        ]
        expected = {
            "penalty": {"decision_no", "decided_on", "authority", "amount_fen", "lower_amount",
                        "circulated_criticism", "special_sector", "performed", "evidence_sha256"},
            "complaint_verified": {"complaint_id", "verified_on", "summary"},
            "abnormal_list": {"action", "on", "reason"},
            "serious_list": {"action", "on", "reason"},
            "instrument": {"instrument_type", "serial", "certificate_no", "verified_on",
                           "valid_until"},
        }
        for body in bodies:
            out = o.post(client, body, headers=regulator)
            assert set(envelope(client, out["record_id"])["body"]) == expected[body["kind"]]
        final = o.credit(client, uscc)
        assert final["tier"] == "D" and final["on_serious_list"] and final["on_abnormal_list"]
        kinds = {f["kind"] for f in final["factors"]}
        assert kinds == {"penalty_other", "complaint", "abnormal_list", "serious_list",
                         "instrument_overdue"}

    @pytest.mark.parametrize(
        ("change", "status", "error", "field"),
        [
            ({"result": "合格"}, 422, "ValidationFailed", "result"),
            ({"checked_on": "2026/11/01"}, 422, "ValidationFailed", "checked_on"),
            ({"evidence_sha256": "xyz"}, 422, "ValidationFailed", "evidence_sha256"),
            ({"authority": ""}, 422, "ValidationFailed", "authority"),
            ({"surprise": 1}, 422, "ValidationFailed", "surprise"),
            ({"kind": "inspection"}, 422, "ValidationFailed", "kind"),
            ({"uscc": "91350100M000100Y4Z"}, 422, "RowInvalid", "uscc"),
            ({"uscc": factories.make_uscc(n=999_999)}, 404, "SupervisionRecordNotFound", "uscc"),
            ({"correction_reason": "笔误"}, 422, "RowInvalid", "correction_reason"),
        ],
    )
    def test_invalid(
        self,
        client: TestClient,
        regulator: dict[str, str],
        uscc: str,
        change: dict[str, Any],
        status: int,
        error: str,
        field: str,
    ) -> None:
        before = tree_size(client)
        resp = client.post(
            "/api/supervision/records", json={**o.spot_check(uscc=uscc), **change},
            headers=regulator,
        )
        assert resp.status_code == status, resp.text
        assert resp.json()["error"] == error
        assert field in (resp.json().get("field") or resp.json()["detail"])
        assert tree_size(client) == before

    def test_dates_of_legal_effect_not_in_future(
        self, client: TestClient, regulator: dict[str, str], uscc: str
    ) -> None:
        tomorrow = today_shanghai() + timedelta(days=1)
        resp = client.post("/api/supervision/records",
                           json=o.penalty(uscc=uscc, decided_on=tomorrow), headers=regulator)
        assert resp.status_code == 422
        assert resp.json()["error"] == "DateInFuture"
        assert resp.json()["field"] == "decided_on"
        # An instrument's validity may (and usually does) reach into the future.
        o.post(client, o.instrument(uscc=uscc, verified_on=o.days_ago(1),
                                    valid_until=tomorrow + timedelta(days=365)), headers=regulator)

    @pytest.mark.parametrize("amount", [True, False, 2000.0, "2e3", [1]])
    def test_amount_fen_is_a_whole_number(
        self, client: TestClient, regulator: dict[str, str], uscc: str, amount: Any
    ) -> None:
        # Issue 15 (L7): `"amount_fen": true` was stored as a fine of 1 fen.
        before = tree_size(client)
        body = {**o.penalty(uscc=uscc), "amount_fen": amount}
        resp = client.post("/api/supervision/records", json=body, headers=regulator)
        assert (resp.status_code, resp.json()["error"]) == (422, "ValidationFailed"), resp.text
        assert "amount_fen" in resp.json()["detail"]
        assert tree_size(client) == before

    def test_amount_fen_may_be_digits_as_in_a_csv_cell(
        self, client: TestClient, regulator: dict[str, str], uscc: str
    ) -> None:
        out = o.post(client, {**o.penalty(uscc=uscc), "amount_fen": "2000"}, headers=regulator)
        assert envelope(client, out["record_id"])["body"]["amount_fen"] == 2000

    def test_instrument_valid_until_before_verified_on(
        self, client: TestClient, regulator: dict[str, str], uscc: str
    ) -> None:
        body = o.instrument(uscc=uscc, verified_on=o.days_ago(3), valid_until=o.days_ago(4))
        resp = client.post("/api/supervision/records", json=body, headers=regulator)
        assert resp.status_code == 422 and resp.json()["field"] == "valid_until"

    def test_duplicate_penalty_and_complaint(
        self, client: TestClient, regulator: dict[str, str], uscc: str
    ) -> None:
        o.post(client, o.penalty(uscc=uscc), headers=regulator)
        o.post(client, o.complaint_verified(uscc=uscc), headers=regulator)
        for body in (o.penalty(uscc=uscc), o.complaint_verified(uscc=uscc)):
            resp = client.post("/api/supervision/records", json=body, headers=regulator)
            assert resp.status_code == 409
            assert resp.json()["error"] == "DuplicateOutcome"


class TestCorrections:
    def test_supersede_keeps_both_and_rates_the_newest(
        self, client: TestClient, regulator: dict[str, str], uscc: str
    ) -> None:
        first = o.post(client, o.spot_check(uscc=uscc, result="发现问题已责令改正"),
                       headers=regulator)
        assert first["credit"]["score"] == 70
        fixed = o.post(
            client,
            o.spot_check(uscc=uscc, supersedes=first["record_id"], correction_reason="录入错误"),
            headers=regulator,
        )
        assert fixed["credit"]["score"] == 82
        env = envelope(client, fixed["record_id"])
        assert env["refs"] == [{"rel": "supersedes", "record": first["record_id"]}]
        assert env["body"]["correction_reason"] == "录入错误"
        page = client.get("/api/supervision/records", params={"uscc": uscc},
                          headers=regulator).json()
        status = {r["record_id"]: (r["status"], r["replaced_by"]) for r in page["items"]}
        assert status[first["record_id"]] == ("superseded", fixed["record_id"])
        assert status[fixed["record_id"]] == ("current", None)
        # Only the newest version can be corrected, and a correction needs its reason.
        again = client.post(
            "/api/supervision/records",
            json=o.spot_check(uscc=uscc, supersedes=first["record_id"], correction_reason="x"),
            headers=regulator,
        )
        assert again.status_code == 409
        assert again.json()["error"] == "AlreadyReplaced"
        assert again.json()["newest"] == fixed["record_id"]
        no_reason = client.post(
            "/api/supervision/records",
            json=o.spot_check(uscc=uscc, supersedes=fixed["record_id"]),
            headers=regulator,
        )
        assert no_reason.status_code == 422 and no_reason.json()["field"] == "correction_reason"

    def test_correction_must_keep_the_kind_and_the_merchant(
        self, client: TestClient, regulator: dict[str, str], uscc: str
    ) -> None:
        check = o.post(client, o.spot_check(uscc=uscc), headers=regulator)
        resp = client.post(
            "/api/supervision/records",
            json=o.penalty(uscc=uscc, supersedes=check["record_id"], correction_reason="x"),
            headers=regulator,
        )
        assert resp.status_code == 422 and resp.json()["field"] == "supersedes"
        other = factories.register(client)["uscc"]
        resp = client.post(
            "/api/supervision/records",
            json=o.spot_check(uscc=other, supersedes=check["record_id"], correction_reason="x"),
            headers=regulator,
        )
        assert resp.status_code == 404 and resp.json()["field"] == "supersedes"

    def test_penalty_performed_later_is_a_correction(
        self, client: TestClient, regulator: dict[str, str], uscc: str
    ) -> None:
        p = o.post(client, o.penalty(uscc=uscc), headers=regulator)
        done = o.post(
            client,
            o.penalty(uscc=uscc, performed=True, supersedes=p["record_id"],
                      correction_reason="当事人已履行处罚决定"),
            headers=regulator,
        )
        assert done["body"]["performed"] is True and done["credit"]["score"] == 50

    def test_revocation(self, client: TestClient, regulator: dict[str, str], uscc: str) -> None:
        p = o.post(client, o.penalty(uscc=uscc), headers=regulator)
        rev = o.post(
            client,
            {"kind": "revocation", "uscc": uscc, "revokes": p["record_id"],
             "reason": "行政复议撤销原处罚决定"},
            headers=regulator,
        )
        assert rev["credit"]["score"] == 80
        assert envelope(client, rev["record_id"])["refs"] == [
            {"rel": "revokes", "record": p["record_id"]}
        ]
        assert rev["effective_on"] == today_shanghai().isoformat()
        twice = client.post(
            "/api/supervision/records",
            json={"kind": "revocation", "uscc": uscc, "revokes": p["record_id"], "reason": "x"},
            headers=regulator,
        )
        assert twice.status_code == 409 and twice.json()["error"] == "AlreadyReplaced"
        final = client.post(
            "/api/supervision/records",
            json={"kind": "revocation", "uscc": uscc, "revokes": rev["record_id"], "reason": "x"},
            headers=regulator,
        )
        assert final.status_code == 422 and "final" in final.json()["detail"]
        got = client.get(f"/api/supervision/records/{p['record_id']}", headers=regulator).json()
        assert got["status"] == "revoked" and got["replaced_by"] == rev["record_id"]


class TestLists:
    def test_abnormal_in_out_caps_the_tier(
        self, client: TestClient, regulator: dict[str, str], uscc: str
    ) -> None:
        for i in range(6):  # score 80 + 6 = 86, B
            o.post(client, o.spot_check(uscc=uscc, checked_on=o.days_ago(10 + i)),
                   headers=regulator)
        listed = o.post(client, o.listing(uscc=uscc, on=o.days_ago(5)), headers=regulator)
        assert (listed["credit"]["score"], listed["credit"]["tier"]) == (66, "C")
        out = o.post(client, o.listing(uscc=uscc, action="out", on=o.days_ago(1)),
                     headers=regulator)
        assert out["credit"]["tier"] == "B"
        env = envelope(client, out["record_id"])
        assert env["refs"] == [{"rel": "closes", "record": listed["record_id"]}]
        assert env["body"]["reason"] == "补报未报年份的年度报告并公示"
        got = client.get(f"/api/supervision/records/{listed['record_id']}",
                         headers=regulator).json()
        assert (got["status"], got["replaced_by"]) == ("ended", out["record_id"])

    def test_list_conflicts(self, client: TestClient, regulator: dict[str, str], uscc: str) -> None:
        resp = client.post("/api/supervision/records",
                           json=o.listing(uscc=uscc, action="out"), headers=regulator)
        assert resp.status_code == 409 and resp.json()["error"] == "ListingConflict"
        resp = client.post("/api/supervision/records",
                           json=o.listing(uscc=uscc, reason="lost"), headers=regulator)
        assert resp.status_code == 422 and resp.json()["field"] == "reason"
        listed = o.post(client, o.listing(uscc=uscc, on=o.days_ago(5)), headers=regulator)
        resp = client.post("/api/supervision/records", json=o.listing(uscc=uscc),
                           headers=regulator)
        assert resp.status_code == 409
        # A second reason is a second listing; ending one leaves the other.
        second = o.post(
            client, o.listing(uscc=uscc, reason="unreachable_at_address"), headers=regulator
        )
        early = client.post(
            "/api/supervision/records",
            json=o.listing(uscc=uscc, action="out", on=o.days_ago(6),
                           closes=listed["record_id"]),
            headers=regulator,
        )
        assert early.status_code == 422 and early.json()["field"] == "on"
        out = o.post(client, o.listing(uscc=uscc, action="out", closes=listed["record_id"]),
                     headers=regulator)
        assert out["credit"]["tier"] == "C"
        assert envelope(client, out["record_id"])["refs"] == [
            {"rel": "closes", "record": listed["record_id"]}
        ]
        assert second["record_id"] != listed["record_id"]

    def test_serious_list_needs_a_reason(
        self, client: TestClient, regulator: dict[str, str], uscc: str
    ) -> None:
        o.post(client, o.listing(kind="serious_list", uscc=uscc), headers=regulator)
        resp = client.post(
            "/api/supervision/records",
            json=o.listing(kind="serious_list", uscc=uscc, action="out"),
            headers=regulator,
        )
        assert resp.status_code == 422 and resp.json()["field"] == "reason"
        out = o.post(
            client,
            o.listing(kind="serious_list", uscc=uscc, action="out", reason="信用修复后提前移出"),
            headers=regulator,
        )
        assert out["credit"]["tier"] == "B"


class TestDemonstration:
    def test_award_goes_through_the_demonstration_service(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        m, headers = factories.merchant_with_login(client)
        uscc = m["uscc"]
        resp = client.post("/api/supervision/records",
                           json={"kind": "demonstration", "uscc": uscc, "action": "award"},
                           headers=regulator)
        assert resp.status_code == 409, resp.text  # not verified, no pledge yet
        assert client.post(f"/api/merchants/{uscc}/verification", json={},
                           headers=regulator).status_code in (200, 201)
        factories.make_pledge(client, headers=headers)
        out = o.post(client, {"kind": "demonstration", "uscc": uscc, "action": "award"},
                     headers=regulator)
        assert out["type"] == "supervision.demonstration"
        assert out["credit"]["score"] == 95 and out["credit"]["tier"] == "A"


class TestHistory:
    def test_each_change_is_kept_with_its_cause(
        self, client: TestClient, regulator: dict[str, str], uscc: str
    ) -> None:
        a = o.post(client, o.spot_check(uscc=uscc), headers=regulator)
        b = o.post(client, o.penalty(uscc=uscc), headers=regulator)
        o.post(client, o.instrument(uscc=uscc, verified_on=o.days_ago(3),
                                    valid_until=o.days_ago(3) + timedelta(days=365)),
               headers=regulator)  # changes nothing
        items = client.get(f"/api/merchants/{uscc}/credit/history").json()["items"]
        assert [(i["tier"], i["score"], i["cause_record_id"]) for i in items][-2:] == [
            ("B", 82, a["record_id"]),
            ("D", 52, b["record_id"]),
        ]
        assert items[-1]["tier_changed"] is True
        with client.app.state.ctx.db.read() as s:  # type: ignore[attr-defined]
            n = s.execute(select(func.count()).select_from(RatingChange)
                          .where(RatingChange.uscc == uscc)).scalar_one()
        assert n == len(items)
