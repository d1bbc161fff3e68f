"""The shop page's 验证 checks what the page shows against the record, in a real Chromium.

The page reads the tables (``supervision_record``, ``merchant``, …); the log is the
truth. An operator who edits a table changes what the page shows but not the record
its 验证 button fetches, so the button must notice: here a penalty's amount is
lowered in ``supervision_record`` and a merchant renamed in ``merchant``, straight
in the database as an insider would, and the page's own verifier names the field,
what the page shows and what the record says. Untouched records on the same page
still verify, with the displayed fields checked too.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from backend.accounts import service as accounts
from backend.merchants.models import Merchant
from backend.supervision.models import SupervisionRecord
from backend.timeutil import today_shanghai
from tests import factories
from tests.disclosure.conftest import LiveServer
from tests.disclosure.ui import console_problems, wait_for

pytestmark = pytest.mark.browser

MISMATCH = "页面显示与链上记录不一致"
NAME = "巴中市放心水果店"
FORGED_NAME = "巴中市放心水果店（已整改）"


def _register(live: LiveServer, **fields: Any) -> tuple[dict[str, Any], dict[str, str]]:
    body = factories.merchant_body(**fields)
    r = live.http.post("/api/merchants", json=body)
    assert r.status_code == 201, r.text
    t = live.http.post(
        "/api/auth/token", data={"username": body["uscc"], "password": body["password"]}
    )
    assert t.status_code == 200, t.text
    return r.json(), {"Authorization": f"Bearer {t.json()['access_token']}"}


def _outcome(live: LiveServer, staff: dict[str, str], **body: Any) -> dict[str, Any]:
    r = live.http.post("/api/supervision/records", json=body, headers=staff)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def shop(live_server: LiveServer) -> Iterator[dict[str, Any]]:
    """Two shops with a penalty, a spot check and a listing each; everything anchored."""
    live = live_server
    with live.ctx.db.session() as s:
        accounts.create_staff_account(
            s, settings=live.settings, username="inspector.zhao",
            password=factories.STAFF_PASSWORD, role="regulator",
        )
    t = live.http.post(
        "/api/auth/token",
        data={"username": "inspector.zhao", "password": factories.STAFF_PASSWORD},
    )
    staff = {"Authorization": f"Bearer {t.json()['access_token']}"}
    decided = (today_shanghai() - timedelta(days=20)).isoformat()
    out: dict[str, Any] = {}
    for key, name in (("altered", NAME), ("honest", "巴中市诚信干货店")):
        m, h = _register(live, name=name, sector="market")
        r = live.http.post("/api/pledges", json=factories.pledge_body(sector="market"), headers=h)
        assert r.status_code == 201, r.text
        pledge = r.json()
        penalty = _outcome(
            live, staff, kind="penalty", uscc=m["uscc"], decision_no=f"巴市监罚〔2025〕{key}号",
            decided_on=decided, authority="巴中市市场监督管理局", amount_fen=410000,
            evidence_sha256="ab" * 32,
        )
        spot = _outcome(
            live, staff, kind="spot_check", uscc=m["uscc"], result="未发现问题",
            checked_on=decided, authority="巴中市市场监督管理局",
        )
        listed = _outcome(
            live, staff, kind="abnormal_list", uscc=m["uscc"], action="in", on=decided,
            reason="unreachable_at_address",
        )
        out[key] = {
            "merchant": m, "pledge": pledge, "penalty": penalty, "spot": spot, "listed": listed,
        }
        for rec in (m, pledge, penalty, spot, listed):
            live.wait_anchored(rec["record_id"])

    # An insider edits the tables the page reads; the log and the chain are untouched.
    altered = out["altered"]
    with live.ctx.db.session() as s:
        row = s.get(SupervisionRecord, altered["penalty"]["record_id"])
        assert row is not None and row.body["amount_fen"] == 410000
        s.execute(
            update(SupervisionRecord)
            .where(SupervisionRecord.record_id == row.record_id)  # type: ignore[arg-type]
            .values(body={**row.body, "amount_fen": 1})
        )
        s.execute(
            update(Merchant)
            .where(Merchant.uscc == altered["merchant"]["uscc"])  # type: ignore[arg-type]
            .values(name=FORGED_NAME)
        )
        s.commit()
    yield out


def _press_verify(browser: Any, record_id: str) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    button = browser.find_element(By.CSS_SELECTOR, f'button[data-verify-record="{record_id}"]')
    browser.execute_script("arguments[0].scrollIntoView()", button)
    button.click()
    result = browser.find_element(By.ID, button.get_attribute("aria-controls"))
    WebDriverWait(browser, 90).until(
        lambda d: result.get_attribute("data-state") in ("verified", "failed", "incomplete")
    )
    return result


def _steps(result: Any) -> dict[str, str]:
    from selenium.webdriver.common.by import By

    return {
        li.get_attribute("data-step"): li.get_attribute("data-status")
        for li in result.find_elements(By.CSS_SELECTOR, "li.step")
    }


def _open(browser: Any, live: LiveServer, uscc: str) -> None:
    browser.get(f"{live.url}/merchants/{uscc}")
    wait_for(browser, "#merchant-name")
    console_problems(browser)


def test_a_penalty_amount_altered_in_the_table_is_caught(
    browser: Any, live_server: LiveServer, shop: dict[str, Any]
) -> None:
    altered = shop["altered"]
    _open(browser, live_server, altered["merchant"]["uscc"])
    rid = altered["penalty"]["record_id"]
    item = browser.find_element("id", "rec-" + rid[:16])
    # The page reads the table: it shows the altered amount.
    assert "0.01 元" in item.text and "4,100.00 元" not in item.text

    result = _press_verify(browser, rid)
    assert result.get_attribute("data-state") == "failed", result.text
    steps = _steps(result)
    # The record itself is genuine: hash, inclusion and the chain all check out.
    assert all(steps[k] == "ok" for k in ("record", "inclusion", "checkpoint", "transaction"))
    assert steps["page"] == "fail"
    assert MISMATCH in result.text
    assert "罚没金额" in result.text and "0.01 元" in result.text and "4,100.00 元" in result.text

    # The spot check on the same page was not touched: verified, its fields checked too.
    spot = _press_verify(browser, altered["spot"]["record_id"])
    assert spot.get_attribute("data-state") == "verified", spot.text
    assert _steps(spot)["page"] == "ok"
    assert "逐项核对" in spot.text and MISMATCH not in spot.text
    assert console_problems(browser) == []


def test_a_merchant_renamed_in_the_table_is_caught_on_its_registration(
    browser: Any, live_server: LiveServer, shop: dict[str, Any]
) -> None:
    altered = shop["altered"]
    _open(browser, live_server, altered["merchant"]["uscc"])
    rid = altered["merchant"]["record_id"]
    assert FORGED_NAME in browser.find_element("id", "rec-" + rid[:16]).text

    result = _press_verify(browser, rid)
    assert result.get_attribute("data-state") == "failed", result.text
    assert _steps(result)["page"] == "fail"
    assert MISMATCH in result.text
    assert "名称" in result.text and FORGED_NAME in result.text and NAME in result.text
    assert console_problems(browser) == []


def test_an_untouched_shop_verifies_with_its_displayed_fields(
    browser: Any, live_server: LiveServer, shop: dict[str, Any]
) -> None:
    honest = shop["honest"]
    _open(browser, live_server, honest["merchant"]["uscc"])
    assert "4,100.00 元" in browser.find_element(
        "id", "rec-" + honest["penalty"]["record_id"][:16]
    ).text
    for key in ("penalty", "listed", "pledge", "merchant"):
        result = _press_verify(browser, honest[key]["record_id"])
        assert result.get_attribute("data-state") == "verified", (key, result.text)
        assert _steps(result)["page"] == "ok", key
        assert MISMATCH not in result.text
    assert console_problems(browser) == []
