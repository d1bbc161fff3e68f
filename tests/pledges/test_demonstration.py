"""Demonstration units (示范单位) and the overview statistics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.ledger import log
from backend.pledges.queries import add_months, shanghai_date
from tests import factories


def pledged_verified(client: TestClient, regulator: dict[str, str]) -> dict[str, Any]:
    m, headers = factories.merchant_with_login(client)
    client.post(f"/api/merchants/{m['uscc']}/verification", headers=regulator)
    factories.make_pledge(client, headers=headers)
    return m


def award(client: TestClient, headers: dict[str, str], uscc: str, **body: Any) -> Any:
    return client.post(
        f"/api/merchants/{uscc}/demonstration", json={"action": "award", **body}, headers=headers
    )


class TestDemonstration:
    def test_award_three_years_and_record(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        m = pledged_verified(client, regulator)
        resp = award(client, regulator, m["uscc"])
        assert resp.status_code == 201, resp.text
        a = resp.json()
        today = shanghai_date(datetime.now(UTC))
        assert a["status"] == "active"
        assert a["awarded_on"] == today.isoformat()
        assert a["valid_until"] == add_months(today, 36).isoformat()
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        with ctx.db.read() as s:
            env = log.get_envelope(s, a["record_id"])
        assert env["type"] == "supervision.demonstration"
        assert env["body"] == {
            "action": "award",
            "on": a["awarded_on"],
            "valid_until": a["valid_until"],
        }
        public = client.get(f"/api/merchants/{m['uscc']}").json()
        assert public["demonstration"]["award_id"] == a["award_id"]

    def test_needs_verification_and_an_active_pledge(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        m, headers = factories.merchant_with_login(client)
        factories.make_pledge(client, headers=headers)
        resp = award(client, regulator, m["uscc"])
        assert (resp.status_code, resp.json()["error"]) == (409, "MerchantNotVerified")
        other = factories.register(client)
        client.post(f"/api/merchants/{other['uscc']}/verification", headers=regulator)
        resp = award(client, regulator, other["uscc"])
        assert (resp.status_code, resp.json()["error"]) == (409, "NoActivePledge")

    def test_twice_and_withdraw(self, client: TestClient, regulator: dict[str, str]) -> None:
        m = pledged_verified(client, regulator)
        a = award(client, regulator, m["uscc"]).json()
        again = award(client, regulator, m["uscc"])
        assert (again.status_code, again.json()["error"]) == (409, "AlreadyDemonstrationUnit")
        url = f"/api/merchants/{m['uscc']}/demonstration"
        no_reason = client.post(url, json={"action": "withdraw"}, headers=regulator)
        assert (no_reason.status_code, no_reason.json()["error"]) == (422, "InvalidText")
        resp = client.post(
            url, json={"action": "withdraw", "reason": "复查不合格"}, headers=regulator
        )
        assert resp.status_code == 201, resp.text
        w = resp.json()
        assert w["status"] == "withdrawn"
        assert w["withdrawal_reason"] == "复查不合格"
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        with ctx.db.read() as s:
            env = log.get_envelope(s, w["record_id"])
        assert env["body"]["action"] == "withdraw"
        assert env["refs"] == [{"rel": "revokes", "record": a["record_id"]}]
        twice = client.post(url, json={"action": "withdraw", "reason": "x"}, headers=regulator)
        assert (twice.status_code, twice.json()["error"]) == (409, "NotDemonstrationUnit")
        assert client.get(f"/api/merchants/{m['uscc']}").json()["demonstration"] is None
        # Awarded again after a withdrawal: a new award, a new record.
        assert award(client, regulator, m["uscc"]).status_code == 201

    @pytest.mark.parametrize(
        "body",
        [
            {"action": "award", "reason": "x"},
            {"action": "award", "valid_until": "2020-01-01"},
            {"action": "award", "on": "2999-01-01"},
            {"action": "promote"},
        ],
    )
    def test_bad_actions(
        self, client: TestClient, regulator: dict[str, str], body: dict[str, str]
    ) -> None:
        m = pledged_verified(client, regulator)
        resp = client.post(
            f"/api/merchants/{m['uscc']}/demonstration", json=body, headers=regulator
        )
        assert resp.status_code == 422

    @pytest.mark.parametrize("via", ["demonstration", "supervision"])
    def test_an_award_ends_within_the_horizon(
        self, client: TestClient, regulator: dict[str, str], via: str
    ) -> None:
        # Issue 15 (L7): an award valid until 9999-12-31 was accepted.
        m = pledged_verified(client, regulator)
        today = shanghai_date(datetime.now(UTC))

        def give(valid_until: str) -> Any:
            if via == "demonstration":
                return award(client, regulator, m["uscc"], valid_until=valid_until)
            return client.post(
                "/api/supervision/records",
                json={"kind": "demonstration", "uscc": m["uscc"], "action": "award",
                      "valid_until": valid_until},
                headers=regulator,
            )

        for endless in ("9999-12-31", add_months(today, 50 * 12 + 1).isoformat()):
            resp = give(endless)
            assert (resp.status_code, resp.json()["error"]) == (422, "DateBeyondHorizon")
            assert f"valid_until {endless}" in resp.json()["detail"]
        assert client.get(f"/api/merchants/{m['uscc']}").json()["demonstration"] is None
        resp = give(add_months(today, 50 * 12).isoformat())  # the horizon itself is allowed
        assert resp.status_code == 201, resp.text

    def test_expires_by_date(
        self, client: TestClient, regulator: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        m = pledged_verified(client, regulator)
        award(
            client,
            regulator,
            m["uscc"],
            valid_until=(datetime.now(UTC) + timedelta(days=30)).date().isoformat(),
        )
        assert client.get("/api/stats/overview").json()["demonstration_units"] == 1
        later = datetime.now(UTC) + timedelta(days=40)
        monkeypatch.setattr("backend.pledges.router.utcnow", lambda: later)
        assert client.get("/api/stats/overview").json()["demonstration_units"] == 0

    def test_list_units(self, client: TestClient, regulator: dict[str, str]) -> None:
        ms = [pledged_verified(client, regulator) for _ in range(3)]
        for m in ms[:2]:
            award(client, regulator, m["uscc"])
        page = client.get("/api/demonstration-units").json()
        assert page["total"] == 2
        assert {u["uscc"] for u in page["items"]} == {ms[0]["uscc"], ms[1]["uscc"]}


class TestOverview:
    def test_counts_and_targets(self, client: TestClient, regulator: dict[str, str]) -> None:
        empty = client.get("/api/stats/overview").json()
        assert empty["merchants"] == empty["active_pledges"] == empty["demonstration_units"] == 0
        # The clock is real, and 2025 is over: that target is a past one.
        assert empty["demonstration_targets"] == [
            {"by_year": 2025, "target": 200, "reached": False, "past": True, "units": 0},
            {"by_year": 2035, "target": 700, "reached": False, "past": False, "units": 0},
        ]
        a = pledged_verified(client, regulator)
        pledged_verified(client, regulator)
        _, headers = factories.merchant_with_login(client)  # unverified, pledged twice (renewal)
        factories.make_pledge(client, headers=headers)
        factories.make_pledge(client, headers=headers)
        factories.register(client)  # neither
        award(client, regulator, a["uscc"])
        stats = client.get("/api/stats/overview").json()
        assert stats["merchants"] == 4
        assert stats["verified_merchants"] == 2
        assert stats["active_pledges"] == 3
        assert stats["demonstration_units"] == 1
        # An award made today counts towards the 2035 target, not the 2025 one (judged
        # by the units active on 2025-12-31).
        assert [(t["by_year"], t["units"]) for t in stats["demonstration_targets"]] == [
            (2025, 0),
            (2035, 1),
        ]
