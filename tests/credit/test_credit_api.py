"""The credit API: policy versions, a merchant's rating on a date, history, statistics,
disclosure (停止公示), credit repair, and the sweep that keeps ratings current."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from backend.credit import service as credit
from backend.credit.models import MerchantRating, RatingChange
from backend.credit.policy import RATING_SPEC_SHA256, add_months
from backend.ledger import log
from backend.timeutil import today_shanghai
from tests import factories
from tests.supervision import outcomes as o


def db(client: TestClient) -> Any:
    return client.app.state.ctx.db  # type: ignore[attr-defined]


def current_document(client: TestClient) -> dict[str, Any]:
    return dict(client.get("/api/credit/policy").json()["document"])


class TestPolicy:
    def test_version_one_is_published_on_first_start(self, client: TestClient) -> None:
        p = client.get("/api/credit/policy").json()
        assert (p["version"], p["in_force"], p["supersedes"]) == (1, True, None)
        with db(client).read() as s:
            env = log.get_envelope(s, p["record_id"])
        assert env["type"] == "credit.policy" and env["subject"] is None
        assert env["body"] == p["document"]
        assert client.get("/api/credit/policy/1").json()["record_id"] == p["record_id"]
        assert client.get("/api/credit/policy/2").status_code == 404

    def test_put_publishes_the_next_version_and_ratings_follow(
        self, client: TestClient, admin: dict[str, str], regulator: dict[str, str]
    ) -> None:
        uscc = factories.register(client)["uscc"]
        o.post(client, o.spot_check(uscc=uscc), headers=regulator)
        doc = current_document(client)
        doc.pop("version")
        doc["base_score"] = 86
        doc["effective_from"] = today_shanghai().isoformat()
        resp = client.put("/api/credit/policy", json=doc, headers=admin)
        assert resp.status_code == 200, resp.text
        v2 = resp.json()
        assert v2["version"] == 2 and v2["in_force"] is True
        assert v2["anchor_status"]["status"] == "pending"
        v1 = client.get("/api/credit/policy/1").json()
        assert v2["supersedes"] == v1["record_id"]
        with db(client).read() as s:
            assert log.get_envelope(s, v2["record_id"])["refs"] == [
                {"rel": "supersedes", "record": v1["record_id"]}
            ]
        # Shown at once (computed while the cached row is due), stored by the sweep.
        shown = o.credit(client, uscc)
        assert (shown["score"], shown["policy_version"]) == (88, 2)
        assert shown["policy_record_id"] == v2["record_id"]
        # The PUT woke the rerate worker; this sweep finds the rows current or stores them.
        credit.sweep(db(client))
        history = client.get(f"/api/merchants/{uscc}/credit/history").json()["items"]
        assert history[-1]["cause"] == "policy"
        assert history[-1]["cause_record_id"] == v2["record_id"]
        assert client.get("/api/credit/policies").json()["in_force"] == 2

    def test_future_version_takes_effect_on_its_date(
        self, client: TestClient, admin: dict[str, str], regulator: dict[str, str]
    ) -> None:
        uscc = factories.register(client)["uscc"]
        o.post(client, o.spot_check(uscc=uscc), headers=regulator)
        start = today_shanghai() + timedelta(days=10)
        doc = current_document(client) | {"version": 2, "effective_from": start.isoformat(),
                                           "base_score": 60}
        assert client.put("/api/credit/policy", json=doc, headers=admin).status_code == 200
        assert client.get("/api/credit/policy").json()["version"] == 1
        assert o.credit(client, uscc)["next_change_on"] == start.isoformat()
        assert o.credit(client, uscc, as_of=start.isoformat())["score"] == 62
        assert o.credit(client, uscc, as_of=start.isoformat())["source"] == "computed"

    def test_put_refusals(self, client: TestClient, admin: dict[str, str]) -> None:
        doc = current_document(client)
        past = today_shanghai() - timedelta(days=1)
        cases = [
            ({**doc, "version": 2, "effective_from": past.isoformat()}, 422, "PolicyBackdated"),
            # A policy taking effect in year 9999 was accepted (issue 15).
            ({**doc, "version": 2, "effective_from": "9999-12-31"}, 422, "DateBeyondHorizon"),
            ({**doc, "version": 5, "effective_from": today_shanghai().isoformat()}, 409,
             "PolicyVersionConflict"),
            ({**doc, "version": 2, "effective_from": today_shanghai().isoformat(),
              "tier_thresholds": {"A": 70, "B": 75, "C": 60}}, 422, "InvalidPolicy"),
        ]
        for body, status, error in cases:
            resp = client.put("/api/credit/policy", json=body, headers=admin)
            assert (resp.status_code, resp.json()["error"]) == (status, error), resp.text
        assert client.get("/api/credit/policies").json()["in_force"] == 1


    def test_new_versions_name_the_rating_specification(
        self, client: TestClient, admin: dict[str, str]
    ) -> None:
        doc = current_document(client)
        assert doc["spec_sha256"] == RATING_SPEC_SHA256  # version 1, published on first start
        today = today_shanghai().isoformat()
        # Omitted (or null): the service fills in the specification it implements.
        for given in ({"spec_sha256": None}, {}):
            body = {k: v for k, v in doc.items() if k not in ("version", "spec_sha256")}
            resp = client.put("/api/credit/policy", json=body | given | {"effective_from": today},
                              headers=admin)
            assert resp.status_code == 200, resp.text
            assert resp.json()["document"]["spec_sha256"] == RATING_SPEC_SHA256
            with db(client).read() as s:
                body = log.get_envelope(s, resp.json()["record_id"])["body"]
            assert body["spec_sha256"] == RATING_SPEC_SHA256
        other = "ab" * 32
        resp = client.put("/api/credit/policy", json=doc | {"version": 4, "spec_sha256": other,
                                                           "effective_from": today},
                          headers=admin)
        assert (resp.status_code, resp.json()["error"]) == (422, "InvalidPolicy")
        assert other in resp.json()["detail"] and RATING_SPEC_SHA256 in resp.json()["detail"]
        assert client.get("/api/credit/policies").json()["in_force"] == 3


class TestCredit:
    def test_rating_on_other_dates_and_unknown_merchant(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        uscc = factories.register(client)["uscc"]
        decided = o.days_ago(10)
        o.post(client, o.penalty(uscc=uscc, decided_on=decided, amount_fen=100), headers=regulator)
        now = o.credit(client, uscc)
        assert (now["score"], now["tier"], now["source"]) == (70, "C", "current")
        assert now["next_change_on"] == add_months(decided, 3).isoformat()
        before = o.credit(client, uscc, as_of=(decided - timedelta(days=1)).isoformat())
        assert (before["score"], before["source"]) == (80, "computed")
        later = o.credit(client, uscc, as_of=add_months(decided, 3).isoformat())
        assert later["score"] == 80
        resp = client.get(f"/api/merchants/{uscc}/credit", params={"as_of": "2025-06-01"})
        assert resp.status_code == 422 and resp.json()["error"] == "NoPolicyInForce"
        resp = client.get(f"/api/merchants/{factories.make_uscc(n=999_996)}/credit")
        assert resp.status_code == 404

    def test_tier_stats(self, client: TestClient, regulator: dict[str, str]) -> None:
        a = factories.register(client, region_code="511921", sector="fuel")["uscc"]
        b = factories.register(client, region_code="511921", sector="market")["uscc"]
        factories.register(client, region_code="511902", sector="fuel")
        o.post(client, o.listing(kind="serious_list", uscc=a), headers=regulator)
        o.post(client, o.spot_check(uscc=b), headers=regulator)
        credit.sweep(db(client))  # rates the merchant with no record yet
        stats = client.get("/api/stats/tiers").json()
        assert stats["total"] == 3 and stats["unrated"] == 0
        assert stats["by_tier"] == {"A": 0, "B": 2, "C": 0, "D": 1}
        assert stats["by_region"]["511921"] == {"A": 0, "B": 1, "C": 0, "D": 1}
        assert stats["by_sector"]["fuel"] == {"A": 0, "B": 1, "C": 0, "D": 1}
        page = client.get("/api/merchants", params={"tier": "D"}).json()
        assert [m["uscc"] for m in page["items"]] == [a]

    def test_records_past_publicity_are_withheld(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        uscc = factories.register(client)["uscc"]
        old = o.post(client, o.penalty(uscc=uscc, decided_on=o.days_ago(100), amount_fen=100,
                                       decision_no="OLD"), headers=regulator)
        check = o.post(client, o.spot_check(uscc=uscc), headers=regulator)
        listing = client.get(f"/api/merchants/{uscc}/records").json()
        assert [x["record_id"] for x in listing["items"]] == [check["record_id"]]
        assert listing["withheld"] == 1
        assert old["record_id"] not in {f["record_id"] for f in o.credit(client, uscc)["factors"]}


class TestSweep:
    def test_sweep_rerates_when_a_window_ends_and_is_idempotent(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        uscc = factories.register(client)["uscc"]
        decided = o.days_ago(5)
        o.post(client, o.penalty(uscc=uscc, decided_on=decided, amount_fen=100), headers=regulator)
        end = add_months(decided, 3)
        assert credit.sweep(db(client), today=end - timedelta(days=1)).changed == 0
        r = credit.sweep(db(client), today=end)
        assert r.changed == 1 and r.merchants >= 1
        assert credit.sweep(db(client), today=end).changed == 0
        with db(client).read() as s:
            row = s.get(MerchantRating, uscc)
            assert row is not None and (row.score, row.as_of) == (80, end)
            last = s.execute(
                select(RatingChange.cause, RatingChange.from_date)
                .where(RatingChange.uscc == uscc)
                .order_by(RatingChange.id.desc())  # type: ignore[union-attr]
            ).first()
        assert last is not None and tuple(last) == ("time", end)

    def test_full_rerate_repairs_a_tampered_cache(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        uscc = factories.register(client)["uscc"]
        o.post(client, o.penalty(uscc=uscc), headers=regulator)
        with db(client).session() as s:
            s.execute(update(MerchantRating).where(MerchantRating.uscc == uscc)
                      .values(tier="A", score=99))
            s.commit()
        assert o.credit(client, uscc)["tier"] == "A"  # the cache is what is shown
        result = credit.sweep(db(client), full=True)
        assert result.merchants == 1 and result.changed == 1
        assert (o.credit(client, uscc)["tier"], o.credit(client, uscc)["score"]) == ("D", 50)

    def test_incremental_and_full_agree(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        ids = [factories.register(client)["uscc"] for _ in range(4)]
        o.post(client, o.penalty(uscc=ids[0]), headers=regulator)
        o.post(client, o.listing(uscc=ids[1]), headers=regulator)
        o.post(client, o.instrument(uscc=ids[2]), headers=regulator)
        with db(client).read() as s:
            before = {r.uscc: (r.tier, r.score, r.next_change_on, r.factors)
                      for r in s.execute(select(MerchantRating)).scalars()}
        credit.sweep(db(client), full=True)
        with db(client).read() as s:
            after = {r.uscc: (r.tier, r.score, r.next_change_on, r.factors)
                     for r in s.execute(select(MerchantRating)).scalars()}
        assert {u: v for u, v in after.items() if u in before} == before
        assert set(after) == set(ids)


class TestRepair:
    def _penalised(self, client: TestClient, regulator: dict[str, str], *, days: int = 200,
                   **extra: Any) -> tuple[str, dict[str, str], dict[str, Any]]:
        m, headers = factories.merchant_with_login(client)
        p = o.post(client, o.penalty(uscc=m["uscc"], decided_on=o.days_ago(days), **extra),
                   headers=regulator)
        return m["uscc"], headers, p

    def test_apply_and_approve(self, client: TestClient, regulator: dict[str, str]) -> None:
        uscc, merchant, p = self._penalised(client, regulator, performed=True)
        assert o.credit(client, uscc)["score"] == 50
        resp = client.post("/api/credit-repairs", json={
            "penalty_record_id": p["record_id"], "statement": "已缴清罚款并完成整改"},
            headers=merchant)
        assert resp.status_code == 201, resp.text
        app = resp.json()
        assert app["status"] == "pending" and app["anchor_status"]["status"] == "pending"
        with db(client).read() as s:
            env = log.get_envelope(s, app["record_id"])
        assert env["type"] == "credit.repair_applied"
        assert env["refs"] == [{"rel": "repairs", "record": p["record_id"]}]
        assert set(env["body"]) == {"repair_id", "penalty_record", "applied_on", "statement"}
        dup = client.post("/api/credit-repairs", json={
            "penalty_record_id": p["record_id"], "statement": "再次申请"}, headers=merchant)
        assert dup.status_code == 409 and dup.json()["error"] == "RepairPending"

        resp = client.post(f"/api/credit-repairs/{app['repair_id']}/decision",
                           json={"decision": "approved", "reason": "符合修复条件"},
                           headers=regulator)
        assert resp.status_code == 201, resp.text
        dec = resp.json()
        assert dec["status"] == "approved" and dec["credit"]["score"] == 80
        with db(client).read() as s:
            assert log.get_envelope(s, dec["record_id"])["refs"] == [
                {"rel": "decides", "record": app["record_id"]}
            ]
        listing = client.get(f"/api/merchants/{uscc}/records").json()
        assert listing["items"] == [] and listing["withheld"] == 3
        again = client.post(f"/api/credit-repairs/{app['repair_id']}/decision",
                            json={"decision": "rejected", "reason": "x"}, headers=regulator)
        assert again.status_code == 409
        assert client.get(f"/api/credit-repairs/{app['repair_id']}",
                          headers=merchant).json()["status"] == "approved"

    def test_refused_with_every_unmet_condition(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        uscc, merchant, p = self._penalised(client, regulator, days=30)
        o.post(client, o.listing(uscc=uscc), headers=regulator)
        resp = client.post("/api/credit-repairs", json={
            "penalty_record_id": p["record_id"], "statement": "申请修复"}, headers=merchant)
        assert resp.status_code == 422
        body = resp.json()
        assert body["error"] == "RepairNotAllowed"
        assert len(body["unmet"]) == 3
        assert any("公示未满6个月" in u for u in body["unmet"])
        assert any("尚未履行" in u for u in body["unmet"])
        assert any("经营异常名录" in u for u in body["unmet"])

    def test_approval_rechecks_conditions(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        uscc, merchant, p = self._penalised(client, regulator, performed=True)
        app = client.post("/api/credit-repairs", json={
            "penalty_record_id": p["record_id"], "statement": "申请修复"}, headers=merchant).json()
        o.post(client, o.penalty(uscc=uscc, decision_no="NEW-1"), headers=regulator)
        resp = client.post(f"/api/credit-repairs/{app['repair_id']}/decision",
                           json={"decision": "approved", "reason": "ok"}, headers=regulator)
        assert resp.status_code == 422 and "又受到行政处罚" in resp.json()["detail"]
        resp = client.post(f"/api/credit-repairs/{app['repair_id']}/decision",
                           json={"decision": "rejected", "reason": "又受处罚"}, headers=regulator)
        assert resp.status_code == 201 and resp.json()["status"] == "rejected"

    def test_not_own_penalty_or_not_a_penalty(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        _, _, p = self._penalised(client, regulator, performed=True)
        other, other_headers = factories.merchant_with_login(client)
        resp = client.post("/api/credit-repairs", json={
            "penalty_record_id": p["record_id"], "statement": "x"}, headers=other_headers)
        assert resp.status_code == 403 and resp.json()["error"] == "NotOwnMerchant"
        check = o.post(client, o.spot_check(uscc=other["uscc"]), headers=regulator)
        resp = client.post("/api/credit-repairs", json={
            "penalty_record_id": check["record_id"], "statement": "x"}, headers=other_headers)
        assert resp.status_code == 404 and resp.json()["error"] == "PenaltyNotFound"


class TestBoundaries:
    @pytest.mark.parametrize(
        ("offset_days", "score"),
        [(-1, 80), (0, 70), ("end-1", 70), ("end", 80)],
        ids=["day-before", "decision-day", "last-day-of-publicity", "first-day-after"],
    )
    def test_lower_amount_penalty_window(
        self, client: TestClient, regulator: dict[str, str], offset_days: Any, score: int
    ) -> None:
        uscc = factories.register(client)["uscc"]
        decided = o.days_ago(40)
        o.post(client, o.penalty(uscc=uscc, decided_on=decided, amount_fen=100),
               headers=regulator)
        end = add_months(decided, 3)
        day = {
            -1: decided - timedelta(days=1),
            0: decided,
            "end-1": end - timedelta(days=1),
            "end": end,
        }[offset_days]
        assert o.credit(client, uscc, as_of=day.isoformat())["score"] == score


class TestRerateCommand:
    def test_rerate_repairs_a_tampered_cache(
        self, client: TestClient, regulator: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        from backend import cli

        uscc = factories.register(client)["uscc"]
        o.post(client, o.penalty(uscc=uscc), headers=regulator)
        with db(client).session() as s:
            s.execute(update(MerchantRating).where(MerchantRating.uscc == uscc)
                      .values(tier="A", score=99))
            s.commit()
        settings = client.app.state.ctx.settings  # type: ignore[attr-defined]
        monkeypatch.setenv("HM_ENV", "test")
        monkeypatch.setenv("HM_DATA_DIR", str(settings.data_dir))
        monkeypatch.setenv("HM_SECRET_KEY", settings.secret_key.get_secret_value())
        with pytest.raises(SystemExit) as exit_:
            cli.main(["rerate"])
        assert exit_.value.code == 0
        assert "1 rating(s) changed" in capsys.readouterr().out
        assert o.credit(client, uscc)["tier"] == "D"
