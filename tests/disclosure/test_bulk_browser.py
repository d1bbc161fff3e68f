"""The bulk import in a real Chromium, at phone and desktop widths: a regulator uploads
an XLSX with Chinese headers and date cells, sees each bad row's problems in Chinese
beside it, uploads the corrected file, checks the dry run's rows and records them.
Screenshots of the result: test-artifacts/screenshots/bulk-import-{390,1280}.png
(copied to docs/screenshots)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backend.accounts import service as accounts
from backend.supervision import bulkformat as fmt
from tests import factories
from tests.disclosure.conftest import DESKTOP, PHONE, LiveServer, screenshot
from tests.disclosure.test_form_errors import assert_chinese_only
from tests.disclosure.ui import console_problems, fill, submit, wait_for
from tests.supervision import outcomes as o

PASSWORD = "bulk import password 2026"
HEADER = ["记录类型", "统一社会信用代码", "检查结果", "检查日期", "检查机关",
          "计量器具名称", "出厂编号", "检定证书编号", "检定日期", "有效期至（含当天）"]
NAMES = ("巴中市示例粮油店", "巴州区好又多超市", "恩阳区鲜果铺")


@pytest.fixture(scope="module")
def shops(live_server: LiveServer) -> list[str]:
    with live_server.ctx.db.session() as s:
        accounts.create_staff_account(
            s, settings=live_server.settings, username="bulk.reg", password=PASSWORD,
            role="regulator",
        )
    out = []
    for name in NAMES:
        body = factories.merchant_body(name=name)
        r = live_server.http.post("/api/merchants", json=body)
        assert r.status_code == 201, r.text
        out.append(body["uscc"])
    return out


def _rows(shops: list[str], *, bad: bool) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for i in range(12):
        u, d = shops[i % 3], o.days_ago(2 + i)
        if i % 4 == 3:
            rows.append(["强制检定计量器具", u, None, None, None, "电子计价秤", f"SN2026{i:04d}",
                         f"JD-2026-{i:05d}", d, o.days_ago(2 + i - 365)])
        else:
            rows.append(["监督抽查", u, "未发现问题", d, "巴中市市场监督管理局"] + [None] * 5)
    if bad:
        rows[1][2] = "合格"  # not one of the published results
        rows[1][3] = "2026/13/01"
        rows[4][1] = rows[4][1][:17] + ("0" if rows[4][1][17] != "0" else "1")
    return rows


def _upload(browser: Any, path: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.find_element(By.ID, "bulk-file").send_keys(str(path))
    submit(browser, "/regulator/outcomes/bulk")


def _fits(browser: Any) -> None:
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - window.innerWidth"
    )
    assert overflow <= 1, f"the page is {overflow}px wider than the window"


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_upload_dry_run_errors_and_real_run(
    browser: Any, live_server: LiveServer, shops: list[str], tmp_path: Path,
    size: tuple[int, int],
) -> None:
    from selenium.webdriver.common.by import By

    browser.set_window_size(*size)
    browser.delete_all_cookies()
    browser.get(live_server.url + "/regulator/outcomes/bulk")
    wait_for(browser, "#username")
    fill(browser, "username", "bulk.reg")
    fill(browser, "password", PASSWORD)
    submit(browser, "/auth/login")
    if "/regulator/outcomes/bulk" not in browser.current_url:
        browser.get(live_server.url + "/regulator/outcomes/bulk")
    wait_for(browser, "#bulk-file")
    assert browser.find_elements(By.CSS_SELECTOR, "#bulk-templates a[href$='.xlsx']")

    bad = tmp_path / "抽查结果（有误）.xlsx"
    bad.write_bytes(fmt.rows_as_xlsx(HEADER, _rows(shops, bad=True)))
    _upload(browser, bad)
    wait_for(browser, "#bulk-errors")
    top = browser.find_element(By.ID, "form-error").text
    assert "共 12 行，其中 2 行有错误" in top and "没有写入任何记录" in top
    row3 = browser.find_element(By.ID, "bulk-row-2").text
    assert "第 3 行" in row3 and "检查结果：" in row3
    assert "检查日期" in browser.find_element(By.ID, "bulk-errors").text
    assert "第 6 行" in browser.find_element(By.ID, "bulk-row-5").text
    assert_chinese_only(browser.page_source)
    _fits(browser)
    screenshot(browser, "bulk-import-errors", size)
    browser.set_window_size(*size)

    good = tmp_path / "抽查结果.xlsx"
    good.write_bytes(fmt.rows_as_xlsx(HEADER, _rows(shops, bad=False)))
    _upload(browser, good)
    wait_for(browser, "#bulk-preview")
    assert browser.find_element(By.ID, "preview-count").text == "12"
    table = browser.find_element(By.ID, "bulk-rows").text
    assert NAMES[0] in table and "监督抽查：未发现问题" in table and "强制检定计量器具" in table
    assert_chinese_only(browser.page_source)
    _fits(browser)
    screenshot(browser, "bulk-import-preview", size)
    browser.set_window_size(*size)

    submit(browser, "/regulator/outcomes/bulk/record")
    done = wait_for(browser, "#bulk-done")
    assert "已写入 12 条记录" in done.text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#bulk-written tbody tr")) == 12
    assert_chinese_only(browser.page_source)
    screenshot(browser, "bulk-import", size)
    browser.set_window_size(*size)
    _fits(browser)
    browser.set_window_size(*DESKTOP)
    assert console_problems(browser) == []
