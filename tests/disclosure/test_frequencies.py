"""Graded spot-check frequencies (分级抽查比例): a regulator proposes the rates per tier in
a Chinese form, a second account approves, the policy version is recorded, and the next
draw uses the rates. Who may publish is the setting ``HM_RATE_PUBLISH``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from backend.app import create_app
from backend.credit.models import RateProposal
from backend.inspections import selection
from backend.ledger import projection
from backend.ledger.models import LogLeaf
from backend.timeutil import today_shanghai
from tests import factories
from tests.conftest import make_settings
from tests.disclosure.test_form_errors import assert_chinese_only, field_error
from tests.disclosure.test_pages import HTML, _login
from tests.inspections.helpers import (
    add_inspectors,
    add_item,
    create_draw,
    ctx_of,
    reveal,
    seed_merchants,
)

TIERS = ["A"] * 5 + ["B"] * 6 + ["C"] * 3 + ["D"] * 2


def _propose(client: TestClient, csrf: str, **rates: str) -> Any:
    data = {
        "csrf_token": csrf,
        "effective_from": today_shanghai().isoformat(),
        "note": "2027 年度抽查计划",
        **{f"rate_{t}": rates.get(t, "") for t in "ABCD"},
    }
    return client.post("/regulator/frequencies", data=data, headers=HTML, follow_redirects=False)


def _decide(
    client: TestClient, csrf: str, proposal: str, decision: str, reason: str = ""
) -> Any:
    data = {"csrf_token": csrf, "decision": decision, "reason": reason}
    return client.post(
        f"/regulator/frequencies/{proposal}/decision",
        data=data,
        headers=HTML,
        follow_redirects=False,
    )


def _pending_id(client: TestClient) -> str:
    with ctx_of(client).db.session() as s:
        row = s.execute(select(RateProposal).where(RateProposal.status == "pending")).scalar_one()
        return row.id


def _record_types(client: TestClient) -> list[str]:
    with ctx_of(client).db.session() as s:
        leaves = s.execute(select(LogLeaf).order_by(LogLeaf.leaf_index)).scalars()  # type: ignore[arg-type]
        return [leaf.record_type for leaf in leaves]


class TestTwoPersonApproval:
    def test_propose_approve_publish_and_the_next_draw_uses_the_rates(
        self, client: TestClient
    ) -> None:
        reg = factories.create_staff(client, username="reg.freq", role="regulator")
        second = factories.create_staff(client, username="reg.second", role="regulator")
        seed_merchants(client, tiers=TIERS)
        add_inspectors(client, reg, count=4)
        item = add_item(client, reg)

        csrf = _login(client, "reg.freq", factories.STAFF_PASSWORD)
        page = client.get("/regulator/frequencies", headers=HTML)
        assert page.status_code == 200
        # The current rates (3/10/30/100 %) and their effect on 5/6/3/2 merchants.
        cells = r"<th scope=\"row\">{} 级</th><td>{}</td><td>{}%</td><td>不限</td><td>{}</td>"
        assert re.search(cells.format("A", 5, 3, 1), page.text)
        assert re.search(cells.format("D", 2, 100, 2), page.text)
        assert "须由另一名工作人员批准" in page.text

        r = _propose(client, csrf, A="20", B="40", C="60", D="100")
        assert r.status_code == 303 and r.headers["location"].endswith("done=proposed")
        proposal = _pending_id(client)
        # The proposer may not approve its own proposal.
        r = _decide(client, csrf, proposal, "approve")
        assert r.status_code == 403 and "提案人不能批准自己的提案" in r.text
        assert client.get("/api/credit/policy").json()["version"] == 1

        client.cookies.clear()
        csrf2 = _login(client, "reg.second", factories.STAFF_PASSWORD)
        r = _decide(client, csrf2, proposal, "approve")
        assert r.status_code == 303 and r.headers["location"].endswith("done=published")
        client.cookies.clear()

        policy = client.get("/api/credit/policy").json()
        assert policy["version"] == 2
        rates = {"A": 2000, "B": 4000, "C": 6000, "D": 10000}
        assert policy["document"]["spot_check_rate_bp"] == rates
        types = _record_types(client)
        assert types[-3:] == ["credit.rates_proposed", "credit.rates_decided", "credit.policy"]
        with ctx_of(client).db.session() as s:
            row = s.get(RateProposal, proposal)
            assert row is not None and row.status == "approved" and row.decided_by != row.account_id
        # The table is a projection of the two records: the log alone rebuilds it.
        table = [projection.projection("rate_proposal")]
        with ctx_of(client).db.engine.connect() as conn:
            assert projection.differences(conn, table, projection.replay(conn, table)) == []
            conn.execute(text("UPDATE rate_proposal SET status = 'rejected'"))
            found = projection.differences(conn, table, projection.replay(conn, table))
            assert [d.table for d in found] == ["rate_proposal"]
            conn.rollback()

        resp = client.post(
            "/api/draws",
            json={"item_id": item, "planned_end": today_shanghai().isoformat()},
            headers=second,
        )
        assert resp.status_code == 201, resp.text
        body = resp.json()["commitment"]
        assert body["policy"]["version"] == 2 and body["rates_bp"] == rates
        # (The new version re-rates the seeded merchants: count by the tiers the draw saw.)
        counts = body["tier_counts"]
        assert sum(counts.values()) == len(TIERS)
        assert body["selected_counts"] == {
            t: selection.tier_count(counts[t], rates[t]) for t in "ABCD"
        }

    def test_reject(self, client: TestClient) -> None:
        factories.create_staff(client, username="reg.a", role="regulator")
        factories.create_staff(client, username="adm.b", role="admin")
        csrf = _login(client, "reg.a", factories.STAFF_PASSWORD)
        assert _propose(client, csrf, A="1", B="2", C="10", D="30").status_code == 303
        proposal = _pending_id(client)
        client.cookies.clear()
        csrf = _login(client, "adm.b", factories.STAFF_PASSWORD)
        r = _decide(client, csrf, proposal, "reject", reason="比例过低")
        assert r.status_code == 303 and r.headers["location"].endswith("done=rejected")
        client.cookies.clear()
        assert client.get("/api/credit/policy").json()["version"] == 1
        # Decided once: a second decision is refused.
        csrf = _login(client, "adm.b", factories.STAFF_PASSWORD)
        r = _decide(client, csrf, proposal, "approve")
        assert r.status_code == 409 and "已经处理过" in r.text


class TestForm:
    def test_every_problem_in_chinese(self, client: TestClient) -> None:
        factories.create_staff(client, username="reg.f", role="regulator")
        csrf = _login(client, "reg.f", factories.STAFF_PASSWORD)
        r = client.post(
            "/regulator/frequencies",
            data={
                "csrf_token": csrf,
                "rate_A": "",
                "rate_B": "1e9",
                "rate_C": "abc",
                "rate_D": "<script>",
                "effective_from": "明天",
            },
            headers=HTML,
        )
        assert r.status_code == 422
        assert field_error(r.text, "rate_A") == "请填写 A 级抽查比例"
        assert field_error(r.text, "rate_B") == "B 级抽查比例应在 0% 到 100% 之间"
        assert "百分数" in field_error(r.text, "rate_C")
        assert "百分数" in field_error(r.text, "rate_D")
        assert field_error(r.text, "effective_from").startswith("生效日期：应为有效日期")
        assert 'value="abc"' in r.text and "&lt;script&gt;" in r.text
        assert_chinese_only(r.text)

    def test_rates_must_not_fall_as_risk_rises(self, client: TestClient) -> None:
        factories.create_staff(client, username="reg.g", role="regulator")
        csrf = _login(client, "reg.g", factories.STAFF_PASSWORD)
        r = _propose(client, csrf, A="50", B="10", C="30", D="100")
        assert r.status_code == 422
        assert "不能随风险升高而降低" in r.text
        assert_chinese_only(r.text)

    def test_merchants_cannot_open_it(self, client: TestClient) -> None:
        m, _ = factories.merchant_with_login(client)
        _login(client, m["uscc"], factories.PASSWORD)
        assert client.get("/regulator/frequencies", headers=HTML).status_code == 403


@pytest.fixture
def alone_client(tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(tmp_path / "data", anchor_enabled=False, rate_publish="admin")
    with TestClient(create_app(settings)) as c:
        yield c


class TestAdminRule:
    def test_admin_publishes_at_once_a_regulator_cannot_approve(
        self, alone_client: TestClient
    ) -> None:
        c = alone_client
        factories.create_staff(c, username="reg.h", role="regulator")
        factories.create_staff(c, username="reg.i", role="regulator")
        factories.create_staff(c, username="adm.j", role="admin")
        csrf = _login(c, "reg.h", factories.STAFF_PASSWORD)
        assert _propose(c, csrf, A="5", B="10", C="30", D="100").status_code == 303
        proposal = _pending_id(c)
        c.cookies.clear()
        csrf = _login(c, "reg.i", factories.STAFF_PASSWORD)
        r = _decide(c, csrf, proposal, "approve")
        assert r.status_code == 403 and "不能发布抽查比例" in r.text
        c.cookies.clear()
        csrf = _login(c, "adm.j", factories.STAFF_PASSWORD)
        r = _propose(c, csrf, A="4", B="10", C="30", D="100")
        assert r.status_code == 303 and r.headers["location"].endswith("done=published")
        c.cookies.clear()
        assert c.get("/api/credit/policy").json()["document"]["spot_check_rate_bp"]["A"] == 400


class TestMinimumInterval:
    """A minimum interval per tier (months): a merchant a revealed draw assigned is not
    in the next snapshot until ``add_months(that draw's planned_end, interval)``."""

    def test_a_merchant_checked_within_its_interval_is_not_drawn_again(
        self, client: TestClient
    ) -> None:
        reg = factories.create_staff(client, username="reg.int", role="regulator")
        second = factories.create_staff(client, username="adm.int", role="admin")
        seed_merchants(client, tiers=TIERS)
        add_inspectors(client, reg, count=6)
        item = add_item(client, reg)
        # Version 1 sets no interval, and its record body has no such key.
        v1 = client.get("/api/credit/policy/1").json()["document"]
        assert "spot_check_min_interval_months" not in v1

        csrf = _login(client, "reg.int", factories.STAFF_PASSWORD)
        data = {
            "csrf_token": csrf, "effective_from": today_shanghai().isoformat(), "note": "",
            "rate_A": "20", "rate_B": "40", "rate_C": "60", "rate_D": "100",
            "interval_A": "", "interval_B": "0", "interval_C": "", "interval_D": "12",
        }
        r = client.post("/regulator/frequencies", data=data, headers=HTML, follow_redirects=False)
        assert r.status_code == 303, r.text
        client.cookies.clear()
        csrf2 = _login(client, "adm.int", factories.STAFF_PASSWORD)
        assert _decide(client, csrf2, _pending_id(client), "approve").status_code == 303
        page = client.get("/regulator/frequencies", headers=HTML).text
        assert "12 个月" in page and "不限" in page
        client.cookies.clear()
        doc = client.get("/api/credit/policy").json()["document"]
        assert doc["spot_check_min_interval_months"] == {"A": 0, "B": 0, "C": 0, "D": 12}

        first = create_draw(client, second, item_id=item)
        plan = reveal(client, second, first["id"])
        checked = {a["uscc"]: a["tier"] for a in plan["assignments"]}
        checked_d = {u for u, t in checked.items() if t == "D"}
        assert checked_d and len(checked) > len(checked_d)

        again = create_draw(client, second, item_id=item)
        snap = client.get(f"/api/draws/{again['id']}/snapshot").json()["entries"]
        in_snapshot = {e["uscc"]: e["tier"] for e in snap}
        # D merchants checked in the first draw wait 12 months; other tiers have no minimum.
        assert not checked_d & set(in_snapshot)
        assert {u for u in checked if u not in checked_d} <= set(in_snapshot)
        assert again["commitment"]["snapshot_size"] == len(TIERS) - len(checked_d)
        page = client.get(f"/inspections/{again['number']}", headers=HTML).text
        assert re.search(r'id="draw-intervals">A 级 不限，B 级 不限，C 级 不限，D 级 12 个月', page)

    def test_interval_errors_in_chinese(self, client: TestClient) -> None:
        factories.create_staff(client, username="reg.ie", role="regulator")
        csrf = _login(client, "reg.ie", factories.STAFF_PASSWORD)
        data = {
            "csrf_token": csrf, "effective_from": today_shanghai().isoformat(),
            "rate_A": "3", "rate_B": "10", "rate_C": "30", "rate_D": "100",
            "interval_A": "-1", "interval_B": "1.5", "interval_C": "９", "interval_D": "9999",
        }
        r = client.post("/regulator/frequencies", data=data, headers=HTML)
        assert r.status_code == 422
        for t in "ABCD":
            assert field_error(r.text, f"interval_{t}").startswith(f"{t} 级最短间隔应为 0 到")
        assert 'value="-1"' in r.text
        assert_chinese_only(r.text)
