"""The regulator's workbench in a real Chromium, at desktop and phone widths: graded
spot-check frequencies proposed by one account and approved by another; the penalty
form's amount in words and the decision file's SHA-256 computed in the browser; the
complaint status page. No page the tests reach shows a validation library's English,
and the console stays clean (no CSP violation, no script error)."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from backend.accounts import service as accounts
from tests import factories
from tests.disclosure.conftest import DESKTOP, PHONE, LiveServer, screenshot
from tests.disclosure.test_form_errors import assert_chinese_only
from tests.disclosure.ui import click_and_load, console_problems, fill, submit, wait_for

PASSWORD = "workbench password 2026"


@pytest.fixture(scope="module")
def staff(live_server: LiveServer) -> dict[str, str]:
    with live_server.ctx.db.session() as s:
        for name, role in (("desk.reg", "regulator"), ("desk.admin", "admin")):
            accounts.create_staff_account(
                s, settings=live_server.settings, username=name, password=PASSWORD, role=role
            )
    body = factories.merchant_body(name="巴中市示例粮油店")
    r = live_server.http.post("/api/merchants", json=body)
    assert r.status_code == 201, r.text
    return {"uscc": body["uscc"]}


def _login(browser: Any, live: LiveServer, username: str, target: str) -> None:
    browser.delete_all_cookies()
    browser.get(live.url + target)
    wait_for(browser, "#username")
    fill(browser, "username", username)
    fill(browser, "password", PASSWORD)
    submit(browser, "/auth/login")
    wait_for(browser, "main h1")


def test_two_accounts_set_the_frequencies(
    browser: Any, live_server: LiveServer, staff: dict[str, str]
) -> None:
    from selenium.webdriver.common.by import By

    _login(browser, live_server, "desk.reg", "/regulator/frequencies")
    assert "分级抽查比例" in browser.find_element(By.TAG_NAME, "h1").text
    # Wrong input first: every problem at once, in Chinese, next to its field.
    fill(browser, "f-rate_A", "")
    fill(browser, "f-rate_B", "1e9")
    fill(browser, "f-interval_C", "半年")
    fill(browser, "f-interval_D", "-3")
    submit(browser, "/regulator/frequencies")
    wait_for(browser, "#f-rate_A-error")
    assert browser.find_element(By.ID, "f-rate_B-error").text.startswith("B 级抽查比例")
    assert browser.find_element(By.ID, "f-interval_C-error").text.startswith("C 级最短间隔应为")
    assert browser.find_element(By.ID, "f-interval_D-error").text.startswith("D 级最短间隔应为")
    assert_chinese_only(browser.page_source)
    for tier, value in zip("ABCD", ("2", "8", "25", "100"), strict=True):
        fill(browser, f"f-rate_{tier}", value)
    for tier, value in zip("ABCD", ("", "", "6", "3"), strict=True):
        fill(browser, f"f-interval_{tier}", value)
    submit(browser, "/regulator/frequencies")
    wait_for(browser, "#proposals")
    assert "等待另一名工作人员批准" in browser.page_source
    for size in (PHONE, DESKTOP):
        screenshot(browser, "frequencies", size)
        if size == PHONE:
            overflow = browser.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 1, f"the form is {overflow}px wider than a phone screen"

    _login(browser, live_server, "desk.admin", "/regulator/frequencies")
    approve = browser.find_element(By.CSS_SELECTOR, 'button[name="decision"][value="approve"]')
    click_and_load(browser, approve)
    wait_for(browser, "#proposals")
    assert "下一次双随机抽查即按此比例抽取" in browser.page_source
    browser.get(live_server.url + "/regulator")
    wait_for(browser, "#h-unverified")
    for size in (PHONE, DESKTOP):
        screenshot(browser, "regulator", size)
    policy = live_server.http.get("/api/credit/policy").json()
    assert policy["document"]["spot_check_rate_bp"] == {"A": 200, "B": 800, "C": 2500, "D": 10000}
    assert policy["document"]["spot_check_min_interval_months"] == {"A": 0, "B": 0, "C": 6, "D": 3}
    assert console_problems(browser) == []


def test_penalty_amount_in_words_and_file_digest(
    browser: Any, live_server: LiveServer, staff: dict[str, str], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    _login(browser, live_server, "desk.reg", "/regulator/outcomes?kind=penalty")
    wait_for(browser, "#o-amount_yuan")
    fill(browser, "o-amount_yuan", "1000.5")
    assert browser.find_element(By.ID, "amount-words").text == "大写：壹仟元伍角"
    fill(browser, "o-amount_yuan", "300000")
    assert browser.find_element(By.ID, "amount-words").text == "大写：叁拾万元整"

    decision = tmp_path / "决定书.pdf"
    decision.write_bytes(b"%PDF-1.4 decision " * 1000)
    browser.find_element(By.ID, "o-evidence_file").send_keys(str(decision))
    digest = browser.find_element(By.ID, "o-evidence_sha256")
    expected = hashlib.sha256(decision.read_bytes()).hexdigest()
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 30).until(lambda _: digest.get_attribute("value") == expected)

    fill(browser, "o-uscc", staff["uscc"])
    fill(browser, "o-decision_no", "巴市监罚〔2026〕9号")
    fill(browser, "o-authority", "巴中市市场监督管理局")
    browser.execute_script(
        "document.getElementById('o-decided_on').value = new Date().toISOString().slice(0, 10)"
    )
    submit(browser, "/regulator/outcomes")
    box = wait_for(browser, "#o-amount_confirmed")
    assert "叁拾万元整" in browser.find_element(By.ID, "o-amount_yuan-error").text
    assert_chinese_only(browser.page_source)
    box.click()
    # The file is not kept by the browser across the answer: its digest is.
    assert browser.find_element(By.ID, "o-evidence_sha256").get_attribute("value") == expected
    submit(browser, "/regulator/outcomes")
    written = wait_for(browser, "#outcome-written")
    assert staff["uscc"] in written.text
    assert console_problems(browser) == []


def test_complaint_status_page(
    browser: Any, live_server: LiveServer, staff: dict[str, str]
) -> None:
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(f"{live_server.url}/complaint?uscc={staff['uscc']}")
    wait_for(browser, "#f-content")
    fill(browser, "f-content", "电子秤少称二两")
    submit(browser, "/complaint")
    ticket = wait_for(browser, "#ticket").text
    code = browser.find_element(By.ID, "check-code").text
    browser.find_element(By.CSS_SELECTOR, 'a[href="/complaint/status"]').click()
    wait_for(browser, "#f-ticket")
    fill(browser, "f-ticket", ticket)
    fill(browser, "f-code", code)
    submit(browser, "/complaint/status")
    wait_for(browser, "#complaint-status")
    assert "已受理，正在核查" in browser.page_source
    for size in (PHONE, DESKTOP):
        screenshot(browser, "complaint-status", size)
    assert_chinese_only(browser.page_source)
    assert console_problems(browser) == []


def _bearer(live: LiveServer, username: str) -> dict[str, str]:
    r = live.http.post("/api/auth/token", data={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _no_sideways_scroll(browser: Any, what: str) -> None:
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - window.innerWidth"
    )
    assert overflow <= 1, f"{what} is {overflow}px wider than a phone screen"


def test_draw_lists_and_the_documents_they_cite(
    browser: Any, live_server: LiveServer, staff: dict[str, str]
) -> None:
    """检查对象名单 and 回避名单 as tables (search, paging, JSON download), and
    docs/draws.md served as a page, at both widths."""
    from selenium.webdriver.common.by import By

    http, reg = live_server.http, _bearer(live_server, "desk.reg")
    usccs = []
    for k in range(8):
        body = factories.merchant_body(name=f"巴中市名单测试商店{k}")
        assert http.post("/api/merchants", json=body).status_code == 201
        r = http.post(f"/api/merchants/{body['uscc']}/verification", headers=reg)
        assert r.status_code == 201, r.text
        usccs.append(body["uscc"])
    for k in range(4):
        r = http.post("/api/inspectors", headers=reg, json={
            "name": f"检查员{k}", "unit": "巴州区市场监督管理局", "region_code": "511902"})
        assert r.status_code == 201, r.text
    r = http.post("/api/inspection-items", headers=reg, json={
        "title": "计量器具强制检定及使用情况检查", "legal_basis": "《中华人民共和国计量法》第九条",
        "sectors": ["retail"], "method": "现场检查"})
    assert r.status_code == 201, r.text
    item = r.json()["id"]
    full = {"A": 10000, "B": 10000, "C": 10000, "D": 10000}
    end = (date.today() + timedelta(days=30)).isoformat()
    first = http.post(
        "/api/draws", headers=reg, json={"item_id": item, "rates_bp": full, "planned_end": end}
    )
    assert first.status_code == 201, first.text
    assert http.post(f"/api/draws/{first.json()['id']}/reveal", headers=reg).status_code == 200
    second = http.post("/api/draws", headers=reg, json={"item_id": item, "planned_end": end})
    assert second.status_code == 201, second.text
    n = second.json()["number"]

    browser.delete_all_cookies()
    browser.get(f"{live_server.url}/inspections/{n}")
    link = wait_for(browser, "#snapshot-link")
    click_and_load(browser, link)
    wait_for(browser, "#draw-list")
    total = int(browser.find_element(By.ID, "list-total").text)
    assert total == second.json()["commitment"]["snapshot_size"] and total >= len(usccs)
    download = browser.find_element(By.ID, "json-download")
    assert download.get_attribute("download") == f"draw-{n}-snapshot.json"
    assert_chinese_only(browser.page_source)
    for size in (PHONE, DESKTOP):
        screenshot(browser, "draw-snapshot", size)
        if size == PHONE:
            _no_sideways_scroll(browser, "the snapshot table")
    fill(browser, "q", "名单测试商店3")
    click_and_load(browser, browser.find_element(By.CSS_SELECTOR, "form[role=search] button"))
    wait_for(browser, "#draw-list")
    assert browser.find_element(By.ID, "list-total").text == "1"
    assert usccs[3] in browser.find_element(By.ID, "draw-list").text
    fill(browser, "q", "<script>" * 3)
    click_and_load(browser, browser.find_element(By.CSS_SELECTOR, "form[role=search] button"))
    wait_for(browser, "#list-empty")
    assert_chinese_only(browser.page_source)

    browser.get(f"{live_server.url}/inspections/{n}")
    click_and_load(browser, wait_for(browser, "#recusals-link"))
    wait_for(browser, "#draw-list")
    assert "上次检查过（轮换）" in browser.page_source
    assert_chinese_only(browser.page_source)
    browser.set_window_size(*PHONE)
    _no_sideways_scroll(browser, "the recusal table")
    browser.set_window_size(*DESKTOP)

    # The algorithm the page cites opens as a page (not a 404), and fits a phone.
    browser.get(f"{live_server.url}/inspections/{n}")
    cited = wait_for(browser, 'a[href="/documents/draws"]')
    click_and_load(browser, cited)
    wait_for(browser, "article.document")
    assert browser.find_element(By.ID, "84-inputs-as-the-service-builds-them")
    browser.set_window_size(*PHONE)
    _no_sideways_scroll(browser, "docs/draws.md")
    browser.set_window_size(*DESKTOP)
    assert console_problems(browser) == []


def test_complaint_status_lookups_are_limited(
    browser: Any, live_server: LiveServer, staff: dict[str, str]
) -> None:
    """Guessing codes from one address: past the limit the page says so in Chinese."""
    from backend.accounts import ratelimit

    r = live_server.http.post("/api/complaints", json={"uscc": staff["uscc"], "content": "少秤"})
    ticket = r.json()["ticket"]
    for _ in range(ratelimit.ADDRESS_TICKET_LOOKUP.max_events):
        r = live_server.http.post(
            "/api/complaints/status", json={"ticket": ticket, "code": "AAAAAAAA"}
        )
        if r.status_code == 429:
            break
        assert r.status_code == 404 and r.json()["detail_zh"]
    r = live_server.http.post("/api/complaints/status", json={"ticket": ticket, "code": "AAAAAAAA"})
    assert r.status_code == 429 and r.json()["detail_zh"] == "尝试次数过多，请稍后再试"

    browser.delete_all_cookies()
    browser.get(f"{live_server.url}/complaint/status")
    wait_for(browser, "#f-ticket")
    fill(browser, "f-ticket", ticket)
    fill(browser, "f-code", "BBBBBBBB")
    submit(browser, "/complaint/status")
    wait_for(browser, "form[action='/complaint/status']")
    assert "查询失败次数过多" in browser.page_source
    assert_chinese_only(browser.page_source)
    browser.set_window_size(*PHONE)
    _no_sideways_scroll(browser, "the status page")
    browser.set_window_size(*DESKTOP)
    assert console_problems(browser) == []
