"""The regulator's bulk-import page (TestClient): templates, the dry run that writes
nothing and shows the rows, the real run of exactly the checked file, and errors in
Chinese by row and column."""

from __future__ import annotations

import io
import re
from typing import Any

import openpyxl
import pytest
from fastapi.testclient import TestClient

from backend.supervision import bulkformat as fmt
from backend.supervision.kinds import BULK_KINDS, EXAMPLE_USCC
from tests import factories
from tests.disclosure.test_form_errors import assert_chinese_only
from tests.disclosure.test_pages import HTML, _login, _token
from tests.supervision import outcomes as o
from tests.supervision.test_bulk import counts

BULK = "/regulator/outcomes/bulk"
HEADER = ["记录类型", "统一社会信用代码", "检查结果", "检查日期", "检查机关"]


@pytest.fixture
def shops(client: TestClient) -> list[str]:
    """Three verified merchants (registered before a staff cookie is set)."""
    return [str(factories.register_verified(client, name=f"示例商店{i}")["uscc"])
            for i in range(3)]


@pytest.fixture
def staff(client: TestClient, shops: list[str]) -> str:
    factories.create_staff(client, username="reg.sheet", role="regulator")
    factories.create_staff(client, username="reg.other", role="regulator")
    return _login(client, "reg.sheet", factories.STAFF_PASSWORD)


def _xlsx(rows: list[list[Any]]) -> bytes:
    return fmt.rows_as_xlsx(HEADER, rows)


def _upload(client: TestClient, csrf: str, name: str, data: bytes) -> Any:
    files = {"file": (name, data, "application/octet-stream")}
    return client.post(BULK, data={"csrf_token": csrf}, files=files, headers=HTML)


def test_the_page_offers_a_template_per_kind(client: TestClient, staff: str) -> None:
    page = client.get(BULK, headers=HTML)
    assert page.status_code == 200 and "批量导入监管结果" in page.text
    for k in BULK_KINDS:
        assert f"/regulator/outcomes/bulk/template/{k.name}.xlsx" in page.text
    r = client.get(f"{BULK}/template/penalty.csv")
    assert r.status_code == 200 and r.content.startswith("\ufeff".encode())
    assert "attachment" in r.headers["content-disposition"]
    first = r.content.decode("utf-8-sig").splitlines()[0]
    assert first.startswith('"记录类型","统一社会信用代码","决定书文号"')
    r = client.get(f"{BULK}/template/spot_check.xlsx")
    ws = openpyxl.load_workbook(io.BytesIO(r.content)).worksheets[0]
    assert [c.value for c in ws[1]][:4] == ["记录类型", "统一社会信用代码", "检查结果", "检查日期"]
    assert ws["B2"].value == EXAMPLE_USCC and ws["D2"].is_date
    assert client.get(f"{BULK}/template/demonstration.xlsx", headers=HTML).status_code == 404
    assert client.get(f"{BULK}/template/spot_check.exe", headers=HTML).status_code == 404


def test_dry_run_then_record(client: TestClient, staff: str, shops: list[str]) -> None:
    usccs = shops
    rows: list[list[Any]] = [
        ["监督抽查", usccs[i % 3], "未发现问题", o.days_ago(1 + i), o.AUTHORITY]
        for i in range(250)
    ]
    before = counts(client)
    r = _upload(client, staff, "抽查结果.xlsx", _xlsx(rows))
    assert r.status_code == 200, r.text[:3000]
    assert counts(client) == before  # the dry run wrote nothing
    assert 'id="preview-count">250<' in r.text and "示例商店0" in r.text
    assert "另有 50 行未列出" in r.text  # the table lists the first 200
    assert "监督抽查：未发现问题" in r.text
    token = _token(r.text, "token")
    done = client.post(f"{BULK}/record", data={"csrf_token": staff, "token": token,
                                               "filename": "抽查结果.xlsx"}, headers=HTML)
    assert done.status_code == 201, done.text[:2000]
    assert "已写入 <strong>250</strong> 条记录" in done.text
    assert counts(client)[0] == before[0] + 250
    # The file is recorded once: its token is spent.
    again = client.post(f"{BULK}/record", data={"csrf_token": staff, "token": token},
                        headers=HTML)
    assert again.status_code == 409 and "请重新上传" in again.text
    assert counts(client)[0] == before[0] + 250


def test_another_account_cannot_record_my_file(
    client: TestClient, staff: str, shops: list[str]
) -> None:
    u = shops[0]
    r = _upload(client, staff, "a.xlsx", _xlsx([["监督抽查", u, "未发现问题",
                                                  o.days_ago(1), o.AUTHORITY]]))
    token = _token(r.text, "token")
    client.cookies.clear()
    csrf = _login(client, "reg.other", factories.STAFF_PASSWORD)
    r = client.post(f"{BULK}/record", data={"csrf_token": csrf, "token": token}, headers=HTML)
    assert r.status_code == 409
    forged = "0" * 16 + token[16:]
    r = client.post(f"{BULK}/record", data={"csrf_token": csrf, "token": forged}, headers=HTML)
    assert r.status_code == 409


def test_errors_at_the_top_in_chinese_by_row_and_column(
    client: TestClient, staff: str, shops: list[str]
) -> None:
    u = shops[0]
    rows: list[list[Any]] = [
        ["监督抽查", u, "未发现问题", o.days_ago(1), o.AUTHORITY],
        ["监督抽查", u, "合格", "2026/13/01", o.AUTHORITY],
        ["监督抽查", factories.make_uscc(n=999_991), "未发现问题", o.days_ago(1), ""],
    ]
    before = counts(client)
    r = _upload(client, staff, "bad.xlsx", _xlsx(rows))
    assert r.status_code == 422
    html = r.text
    assert html.index('id="form-error"') < html.index('id="bulk-errors"') < html.index("bulk-file")
    assert "共 3 行，其中 2 行有错误" in html
    row3 = re.search(r'<tr id="bulk-row-2">(.*?)</tr>\s*<tr>(.*?)</tr>', html, re.S)
    assert row3 and "第 3 行" in row3[1] and "检查结果" in row3[1] and "检查日期" in row3[2]
    assert re.search(r'<tr id="bulk-row-3">.*?第 4 行', html, re.S)
    assert 'id="bulk-preview"' not in html
    assert_chinese_only(html)
    assert counts(client) == before
    for name, data in (("x.xlsx", b"not a workbook"), ("x.txt", b"kind\n")):
        r = _upload(client, staff, name, data)
        assert r.status_code in (415, 422) and 'id="form-error"' in r.text
        assert_chinese_only(r.text)
