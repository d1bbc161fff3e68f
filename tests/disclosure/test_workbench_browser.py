"""The regulator's workbench in a real Chromium, at desktop and phone widths: graded
spot-check frequencies proposed by one account and approved by another; the penalty
form's amount in words and the decision file's SHA-256 computed in the browser; the
complaint status page. No page the tests reach shows a validation library's English,
and the console stays clean (no CSP violation, no script error)."""

from __future__ import annotations

import hashlib
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
    submit(browser, "/regulator/frequencies")
    wait_for(browser, "#f-rate_A-error")
    assert browser.find_element(By.ID, "f-rate_B-error").text.startswith("B 级抽查比例")
    assert_chinese_only(browser.page_source)
    for tier, value in zip("ABCD", ("2", "8", "25", "100"), strict=True):
        fill(browser, f"f-rate_{tier}", value)
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
