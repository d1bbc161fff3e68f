"""A random inspection from the regulator's forms to the public's re-check, in Chromium.

The regulator adds inspectors and an inspection item, runs a draw (committed on
the embedded chain), reveals it; the public draw page shows the plan, and its
"在浏览器中复核" button re-runs the whole draw in the browser (docs/draws.md),
reading the commitment and the randomness from the chain itself. A result
recorded from the plan's "录入结果" link then shows on the draw page.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from backend.accounts import service as accounts
from backend.timeutil import today_shanghai
from tests import factories
from tests.disclosure.conftest import DESKTOP, LiveServer, screenshot
from tests.disclosure.ui import choose as _select
from tests.disclosure.ui import click_and_load as _click_and_load
from tests.disclosure.ui import console_problems as _console_problems
from tests.disclosure.ui import fill as _fill
from tests.disclosure.ui import submit as _submit
from tests.disclosure.ui import wait_for as _wait

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def verified_merchants(live_server: LiveServer) -> list[str]:
    live = live_server
    with live.ctx.db.session() as s:
        accounts.create_staff_account(
            s,
            settings=live.settings,
            username="draw.officer",
            password=factories.STAFF_PASSWORD,
            role="regulator",
        )
    t = live.http.post(
        "/api/auth/token", data={"username": "draw.officer", "password": factories.STAFF_PASSWORD}
    )
    staff = {"Authorization": f"Bearer {t.json()['access_token']}"}
    out = []
    for i in range(6):
        body = factories.merchant_body(name=f"巴州区第{i}农贸市场", sector="market")
        r = live.http.post("/api/merchants", json=body)
        assert r.status_code == 201, r.text
        r = live.http.post(f"/api/merchants/{body['uscc']}/verification", json={}, headers=staff)
        assert r.status_code == 201, r.text
        out.append(body["uscc"])
    return out


def test_regulator_runs_a_draw_and_the_public_rechecks_it(
    browser: Any, live_server: LiveServer, verified_merchants: list[str]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url = live_server.url
    browser.delete_all_cookies()
    browser.get(url + "/login?next=/regulator/inspectors")
    _fill(browser, "username", "draw.officer")
    _fill(browser, "password", factories.STAFF_PASSWORD)
    _submit(browser, "/auth/login")

    for name, unit, region in (
        ("赵一", "巴州区市场监督管理局", "511902"),
        ("钱二", "恩阳区市场监督管理局", "511903"),
        ("孙三", "巴中市市场监督管理局", "511900"),
    ):
        _wait(browser, "#f-name")
        _fill(browser, "f-name", name)
        _fill(browser, "f-unit", unit)
        _select(browser, "f-region_code", region)
        _click_and_load(
            browser,
            browser.find_element(
                By.CSS_SELECTOR,
                'form[action="/regulator/inspectors"] input[name=action][value=create] ~ button',
            ),
        )
    _wait(browser, "table")
    assert "孙三" in browser.page_source  # names: staff only

    browser.get(url + "/regulator/items")
    _fill(browser, "f-title", "集贸市场计量器具监督检查")
    _fill(browser, "f-legal_basis", "《中华人民共和国计量法》")
    _fill(browser, "f-method", "现场检查")
    browser.find_element(By.CSS_SELECTOR, "input[name=sectors][value=market]").click()
    _click_and_load(
        browser,
        browser.find_element(
            By.CSS_SELECTOR,
            'form[action="/regulator/items"] input[name=action][value=create] ~ button',
        ),
    )
    _wait(browser, "table")

    browser.get(url + "/regulator/draws")
    _select(browser, "d-item", "1")
    for t in "ABCD":
        _fill(browser, f"d-rate-{t}", "50")
    end = today_shanghai() + timedelta(days=14)
    browser.execute_script(
        "arguments[0].value = arguments[1]", browser.find_element(By.ID, "d-end"), end.isoformat()
    )
    _submit(browser, "/regulator/draws")
    _wait(browser, "#draw-status")
    assert "已承诺" in browser.find_element(By.ID, "draw-status").text

    _click_and_load(
        browser, browser.find_element(By.CSS_SELECTOR, 'form[action$="/reveal"] button')
    )
    table = _wait(browser, "#assignments", timeout=90)
    assert "已抽取" in browser.find_element(By.ID, "draw-status").text
    draw_url = browser.current_url
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) == 3  # 50 % of six merchants, rounded up
    assert "赵一" not in browser.page_source and "孙三" not in browser.page_source

    # The public re-check (signed-in or not, it reads only public data and the chain).
    browser.find_element(By.ID, "recheck-draw").click()
    result = browser.find_element(By.ID, "recheck-result")
    WebDriverWait(browser, 120).until(
        lambda d: result.get_attribute("data-state") in ("verified", "failed", "incomplete")
    )
    assert result.get_attribute("data-state") == "verified", result.text
    steps = [li.get_attribute("data-step") for li in result.find_elements(By.CSS_SELECTOR, "li")]
    assert steps == [
        "data",
        "commitment",
        "snapshot",
        "inspectors",
        "recusals",
        "ledger",
        "randomness",
        "plan",
    ]
    screenshot(browser, "draw", DESKTOP)
    ledger_step = result.find_element(By.CSS_SELECTOR, 'li[data-step="ledger"]')
    assert "正是信任根（指纹" in ledger_step.text

    # The re-check pins the chain and contract of the trust root, never the service's
    # word: a trust root naming another contract makes the draw's own fail, naming it.
    browser.get(draw_url)
    _wait(browser, "#recheck-draw")
    other = "0x" + "11" * 20
    browser.execute_script(
        "const V = window.HMVerify, real = V.loadTrustRoot, other = arguments[0];"
        "V.loadTrustRoot = fp => real(fp).then(tr => Object.assign({}, tr, {contract: other}));",
        other,
    )
    browser.find_element(By.ID, "recheck-draw").click()
    result = browser.find_element(By.ID, "recheck-result")
    WebDriverWait(browser, 120).until(
        lambda d: result.get_attribute("data-state") in ("verified", "failed", "incomplete")
    )
    assert result.get_attribute("data-state") == "failed", result.text
    assert f"信任根固定的是合约 {other}" in result.text
    browser.get(draw_url)
    rows = _wait(browser, "#assignments").find_elements(By.CSS_SELECTOR, "tbody tr")

    # Record the first check's result from the plan.
    first = rows[0].find_element(By.CSS_SELECTOR, "td a").get_attribute("href")
    uscc = first.rsplit("/", 1)[1]
    _click_and_load(browser, rows[0].find_element(By.LINK_TEXT, "录入结果"))
    _wait(browser, "#o-uscc")
    assert browser.find_element(By.ID, "o-uscc").get_attribute("value") == uscc
    assert browser.find_element(By.ID, "o-draw_id").get_attribute("value")
    _select(browser, "o-result", "未发现问题")
    _submit(browser, "/regulator/outcomes")
    _wait(browser, "#outcome-written")
    browser.get(draw_url)
    table = _wait(browser, "#assignments")
    assert "已录入" in table.text
    assert _console_problems(browser) == []
