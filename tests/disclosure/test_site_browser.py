"""The public site in a real headless Chromium, against the app served on loopback.

One server and one browser for the module. Covered, as a visitor would:

- search → merchant page → "验证" runs the page's own verifier: the record's
  hash, its RFC 9162 inclusion proof, the checkpoint read from the chain over
  JSON-RPC, the anchoring transaction — and shows "verified" with the tx;
- the verify page: a genuine bundle verifies; tampered bundles (record text,
  proof, checkpoint root) fail with the reason;
- a merchant named ``<script>alert(1)</script>`` renders as text, no script runs;
- a merchant registers and pledges through the forms; the pledge is on its
  public page;
- a regulator logs in, records a spot check through the form, and the tier on
  the public page changes;
- no Content-Security-Policy violation or script error on any page visited;
- screenshots of the home and merchant pages at phone and desktop widths
  (test-artifacts/screenshots/).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backend.accounts import service as accounts
from tests import factories
from tests.disclosure.conftest import DESKTOP, PHONE, LiveServer, screenshot
from tests.disclosure.ui import choose as _select
from tests.disclosure.ui import click_and_load, submit
from tests.disclosure.ui import console_problems as _console_problems
from tests.disclosure.ui import fill as _fill
from tests.disclosure.ui import wait_for as _wait

pytestmark = pytest.mark.browser

XSS_NAME = "<script>alert(1)</script>"
STAFF_PASSWORD = factories.STAFF_PASSWORD


def _api_register(live: LiveServer, **fields: Any) -> tuple[dict[str, Any], dict[str, str]]:
    body = factories.merchant_body(**fields)
    r = live.http.post("/api/merchants", json=body)
    assert r.status_code == 201, r.text
    t = live.http.post(
        "/api/auth/token", data={"username": body["uscc"], "password": body["password"]}
    )
    assert t.status_code == 200, t.text
    return r.json(), {"Authorization": f"Bearer {t.json()['access_token']}"}


def _api_pledge(live: LiveServer, headers: dict[str, str], sector: str) -> dict[str, Any]:
    r = live.http.post("/api/pledges", json=factories.pledge_body(sector=sector), headers=headers)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def site(live_server: LiveServer) -> Iterator[dict[str, Any]]:
    """Merchants made through the API, a regulator account, everything anchored."""
    live = live_server
    with live.ctx.db.session() as s:
        accounts.create_staff_account(
            s,
            settings=live.settings,
            username="inspector.li",
            password=STAFF_PASSWORD,
            role="regulator",
        )
    t = live.http.post(
        "/api/auth/token", data={"username": "inspector.li", "password": STAFF_PASSWORD}
    )
    staff = {"Authorization": f"Bearer {t.json()['access_token']}"}

    honest, honest_h = _api_register(live, name="巴中市诚信粮油店", sector="market")
    pledge = _api_pledge(live, honest_h, "market")
    r = live.http.post(f"/api/merchants/{honest['uscc']}/verification", json={}, headers=staff)
    assert r.status_code == 201, r.text
    r = live.http.post(
        "/api/supervision/records",
        json={
            "kind": "spot_check",
            "uscc": honest["uscc"],
            "result": "未发现问题",
            "checked_on": "2025-06-01",
            "authority": "巴中市市场监督管理局",
        },
        headers=staff,
    )
    assert r.status_code == 201, r.text
    spot = r.json()

    xss, xss_h = _api_register(live, name=XSS_NAME, sector="retail")
    _api_pledge(live, xss_h, "retail")

    unpledged, _ = _api_register(live, name="平昌县示例加油站", sector="fuel", region_code="511923")
    # Verified, so that its page shows a tier (issue 15 M5).
    r = live.http.post(
        f"/api/merchants/{unpledged['uscc']}/verification", json={}, headers=staff
    )
    assert r.status_code == 201, r.text

    for rid in (pledge["record_id"], spot["record_id"], honest["record_id"]):
        live.wait_anchored(rid)
    yield {
        "honest": honest,
        "pledge": pledge,
        "spot": spot,
        "xss": xss,
        "unpledged": unpledged,
        "staff": staff,
    }


def _verify_state(container: Any) -> str:
    return str(container.get_attribute("data-state"))


def test_search_merchant_page_and_verify(
    browser: Any, live_server: LiveServer, site: dict[str, Any]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(live_server.url + "/")
    _console_problems(browser)
    box = browser.find_element(By.ID, "q")
    box.send_keys("诚信粮油")
    box.send_keys(Keys.ENTER)
    link = _wait(browser, "ul.results a.name")
    assert link.text == "巴中市诚信粮油店"
    click_and_load(browser, link)
    _wait(browser, "#merchant-name")
    uscc = site["honest"]["uscc"]
    assert browser.current_url.endswith(f"/merchants/{uscc}")
    assert "已核验" in browser.page_source

    pledge_rid = site["pledge"]["record_id"]
    button = browser.find_element(By.CSS_SELECTOR, f'button[data-verify-record="{pledge_rid}"]')
    # Keyboard: focus the button and press Enter, as a keyboard user would.
    browser.execute_script("arguments[0].focus()", button)
    button.send_keys(Keys.ENTER)
    result = browser.find_element(By.ID, button.get_attribute("aria-controls"))
    WebDriverWait(browser, 60).until(
        lambda d: _verify_state(result) in ("verified", "failed", "incomplete")
    )
    assert _verify_state(result) == "verified", result.text
    steps = result.find_elements(By.CSS_SELECTOR, "li.step")
    assert [s.get_attribute("data-step") for s in steps] == [
        "format",
        "record",
        "inclusion",
        "trust",
        "signature",
        "witnesses",
        "checkpoint",
        "transaction",
        "contract",
        "page",
        "complete",  # 记录完整性: every record of the shop is on the page
    ]
    # The page's 验证 asks for a version 2 bundle: the log key's signature is checked;
    # this service names no witnesses, so their step says so and fails nothing.
    statuses = {s.get_attribute("data-step"): s.get_attribute("data-status") for s in steps}
    assert statuses.pop("witnesses") == "skipped"
    assert set(statuses.values()) == {"ok"}, result.text
    bundle = live_server.http.get(f"/api/records/{pledge_rid}/proof").json()
    # The ledger transaction is shown.
    assert bundle["checkpoint"]["transaction_hash"] in result.text
    assert "已验证" in result.text

    # The spot check record verifies too.
    spot_rid = site["spot"]["record_id"]
    browser.find_element(By.CSS_SELECTOR, f'button[data-verify-record="{spot_rid}"]').click()
    spot_result = browser.find_element(By.ID, "v-" + spot_rid[:16])
    # Not "!= running": before the bundle arrives the result has no state at all.
    WebDriverWait(browser, 60).until(
        lambda d: _verify_state(spot_result) in ("verified", "failed", "incomplete")
    )
    assert _verify_state(spot_result) == "verified", spot_result.text
    assert _console_problems(browser) == []


def _bundle_file(tmp_path: Path, name: str, bundle: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(bundle, ensure_ascii=False), "utf-8")
    return str(path)


def _verify_upload(browser: Any, live: LiveServer, path: str) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(live.url + "/verify")
    _wait(browser, "#bundle-file").send_keys(path)
    result = browser.find_element(By.ID, "verify-result")
    WebDriverWait(browser, 60).until(
        lambda d: _verify_state(result) in ("verified", "failed", "incomplete")
    )
    return result


def test_verify_page_genuine_and_tampered(
    browser: Any, live_server: LiveServer, site: dict[str, Any], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    rid = site["spot"]["record_id"]
    bundle = live_server.http.get(f"/api/records/{rid}/proof").json()

    result = _verify_upload(browser, live_server, _bundle_file(tmp_path, "ok.json", bundle))
    assert _verify_state(result) == "verified", result.text
    screenshot(browser, "verify", PHONE)

    # 1. The record text changed: the check's date moved, as a forger back-dating it would.
    forged = dict(bundle, record=bundle["record"].replace("2025-06-01", "2025-05-01"))
    assert forged["record"] != bundle["record"]
    result = _verify_upload(browser, live_server, _bundle_file(tmp_path, "forged.json", forged))
    assert _verify_state(result) == "failed"
    failed = result.find_element(By.CSS_SELECTOR, 'li[data-status="fail"]')
    assert failed.get_attribute("data-step") == "record"
    assert "记录被改动过" in result.text

    # 2. A proof hash flipped.
    proof = list(bundle["inclusion_proof"])
    assert proof, "the test needs a tree with more than one leaf"
    proof[0] = "0x" + ("0" if proof[0][2] != "0" else "1") + proof[0][3:]
    result = _verify_upload(
        browser,
        live_server,
        _bundle_file(tmp_path, "proof.json", dict(bundle, inclusion_proof=proof)),
    )
    assert _verify_state(result) == "failed"
    assert (
        result.find_element(By.CSS_SELECTOR, 'li[data-status="fail"]').get_attribute("data-step")
        == "inclusion"
    )
    assert "不一致" in result.text

    # 3. A consistent forgery: a fake log containing a fake record, its own root in the
    #    bundle's checkpoint. Everything offline checks out; the chain does not agree.
    from backend.ledger import merkle

    fake_record = bundle["record"].replace("未发现问题", "发现问题已责令改正")
    leaf = merkle.leaf_hash(fake_record.encode())
    other = merkle.leaf_hash(b"padding")
    fake = dict(
        bundle,
        record=fake_record,
        record_id=leaf.hex(),
        leaf_hash="0x" + leaf.hex(),
        leaf_index=0,
        inclusion_proof=["0x" + other.hex()],
        checkpoint=dict(
            bundle["checkpoint"], tree_size=2, root="0x" + merkle.node_hash(leaf, other).hex()
        ),
    )
    result = _verify_upload(browser, live_server, _bundle_file(tmp_path, "fake.json", fake))
    assert _verify_state(result) == "failed", result.text
    statuses = {
        li.get_attribute("data-step"): li.get_attribute("data-status")
        for li in result.find_elements(By.CSS_SELECTOR, "li.step")
    }
    assert statuses["record"] == "ok" and statuses["inclusion"] == "ok"
    assert statuses["checkpoint"] == "fail"
    assert "区块链上合约" in result.text

    # 4. The forged-bundle attack of issue 14: a bundle naming a contract of its own (a
    #    copy of the service on a chain with the official id). The page pins the trust
    #    root it was served with and names the pinned contract.
    trust = live_server.http.get("/.well-known/honest-metering/trust-root.json").json()
    pinned = trust["ledger"]["contract_address"]
    elsewhere = "0x" + ("1" if pinned[2] != "1" else "2") + pinned[3:]
    forged_cp = dict(bundle, checkpoint=dict(bundle["checkpoint"], contract_address=elsewhere))
    result = _verify_upload(
        browser, live_server, _bundle_file(tmp_path, "elsewhere.json", forged_cp)
    )
    assert _verify_state(result) == "failed", result.text
    failed = result.find_element(By.CSS_SELECTOR, 'li[data-status="fail"]')
    assert failed.get_attribute("data-step") == "trust"
    assert f"信任根固定的是合约 {pinned}" in result.text

    # 5. Not a bundle at all.
    result = _verify_upload(browser, live_server, _bundle_file(tmp_path, "x.json", {"a": 1}))
    assert _verify_state(result) == "failed"
    assert "这不是证明文件" in result.text
    assert _console_problems(browser) == []


def test_xss_name_renders_as_text(
    browser: Any, live_server: LiveServer, site: dict[str, Any]
) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    uscc = site["xss"]["uscc"]
    browser.get(f"{live_server.url}/merchants/{uscc}")
    h1 = _wait(browser, "#merchant-name")
    assert h1.text == XSS_NAME
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018
    # No element was created from the name: the only scripts are the site's own.
    scripts = browser.find_elements(By.TAG_NAME, "script")
    assert all(
        (s.get_attribute("src") or "").startswith(live_server.url + "/static/") for s in scripts
    )
    browser.get(f"{live_server.url}/search?q=" + "%3Cscript%3E")
    link = _wait(browser, "ul.results a.name")
    assert link.text == XSS_NAME
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018


def test_merchant_registers_and_pledges_through_the_forms(
    browser: Any, live_server: LiveServer, site: dict[str, Any]
) -> None:
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    uscc = factories.make_uscc(n=424242, region="511921")
    browser.get(live_server.url + "/register")
    _fill(browser, "f-uscc", uscc.lower())  # lower case is accepted and normalised
    _fill(browser, "f-name", "通江县放心眼镜店")
    _select(browser, "f-sector", "optical")
    _select(browser, "f-region_code", "511921")
    _fill(browser, "f-address", "通江县诺江镇1号")
    _fill(browser, "f-contact_person", "王五")
    _fill(browser, "f-contact_phone", "13912345678")
    _fill(browser, "f-password", "optical shop 2025")
    _fill(browser, "f-password2", "optical shop 2025 typo")
    submit(browser, "/register")
    error = _wait(browser, "#form-error")
    assert "两次输入的密码不一致" in error.text
    # The form keeps what was typed (but never the password).
    assert browser.find_element(By.ID, "f-name").get_attribute("value") == "通江县放心眼镜店"
    _fill(browser, "f-password", "optical shop 2025")
    _fill(browser, "f-password2", "optical shop 2025")
    submit(browser, "/register")

    _wait(browser, "input[name=items]")
    assert "/merchant/pledge" in browser.current_url
    # Submitting with a required item unticked is refused by the service, with a message.
    boxes = browser.find_elements(By.CSS_SELECTOR, "input[name=items]")
    codes = [b.get_attribute("value") for b in boxes]
    assert codes[:6] == ["G1", "G2", "G3", "G4", "G5", "G6"]
    assert any(c.startswith("OPTICAL") for c in codes)
    for b in boxes:
        if b.get_attribute("required") is not None:
            b.click()
    _fill(browser, "extra", "免费为顾客校准眼镜")
    submit(browser, "/merchant/pledge")
    _wait(browser, "#h-my-pledge")
    assert "承诺已提交" in browser.page_source
    # No printable sign before a regulator verifies the registration (issue 15 M5).
    assert not browser.find_elements(By.LINK_TEXT, "下载承诺牌（PDF）")
    assert "待核验：登记信息尚未经监管部门核验" in browser.page_source

    browser.get(f"{live_server.url}/merchants/{uscc}")
    items = _wait(browser, "#pledge-items")
    assert "法定计量检定机构" in items.text
    assert "免费为顾客校准眼镜" in browser.page_source
    assert "已作出诚信计量承诺" in browser.page_source
    assert "待核验：登记信息尚未经监管部门核验" in browser.page_source  # and no tier
    assert _tier(browser) == "—"
    # The contact data given at registration is on no public page.
    assert "王五" not in browser.page_source and "13912345678" not in browser.page_source
    assert _console_problems(browser) == []


def _tier(browser: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(browser.find_element(By.CSS_SELECTOR, ".headline .tier").text)


def test_regulator_records_a_spot_check_and_the_tier_changes(
    browser: Any, live_server: LiveServer, site: dict[str, Any]
) -> None:
    from selenium.webdriver.common.by import By

    uscc = site["unpledged"]["uscc"]
    browser.delete_all_cookies()
    browser.get(f"{live_server.url}/merchants/{uscc}")
    _wait(browser, "#merchant-name")
    before = _tier(browser)
    assert before == "B"

    browser.get(live_server.url + "/regulator/outcomes?kind=spot_check")
    _wait(browser, "#username")  # not signed in: sent to the login page
    _fill(browser, "username", "inspector.li")
    _fill(browser, "password", STAFF_PASSWORD)
    submit(browser, "/auth/login")
    _wait(browser, "#o-uscc")
    assert "/regulator/outcomes" in browser.current_url
    _fill(browser, "o-uscc", uscc)
    _select(browser, "o-result", "发现问题已责令改正")
    submit(browser, "/regulator/outcomes")
    written = _wait(browser, "#outcome-written")
    assert "C" in written.text

    browser.get(f"{live_server.url}/merchants/{uscc}")
    _wait(browser, "#merchant-name")
    assert _tier(browser) == "C"
    assert "监督抽查：发现问题已责令改正" in browser.page_source
    assert re.search(r"-10 分", browser.find_element(By.ID, "credit-reasons").text)

    # Signing out uses the logout form (with its CSRF token).
    submit(browser, "/auth/logout")
    _wait(browser, 'a[href="/login"]')
    assert _console_problems(browser) == []


def test_screenshots_at_phone_and_desktop_widths(
    browser: Any, live_server: LiveServer, site: dict[str, Any]
) -> None:
    uscc = site["honest"]["uscc"]
    saved = []
    for name, path in (("home", "/"), ("merchant", f"/merchants/{uscc}")):
        browser.get(live_server.url + path)
        _wait(browser, "main")
        for size in (PHONE, DESKTOP):
            saved.append(screenshot(browser, name, size))
            # Nothing is wider than the phone screen: no sideways scrolling.
            if size == PHONE:
                overflow = browser.execute_script(
                    "return document.documentElement.scrollWidth - window.innerWidth"
                )
                assert overflow <= 1, f"{path} is {overflow}px wider than a phone screen"
    assert all(p.exists() and p.stat().st_size > 10_000 for p in saved)
    assert _console_problems(browser) == []
