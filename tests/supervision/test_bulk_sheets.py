"""Bulk files as a regulator makes them: Chinese headers, spreadsheet dates, XLSX, the
templates, a dry run before the real one, and errors in Chinese with the count right."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime
from typing import Any

import openpyxl
import pytest
from fastapi.testclient import TestClient

from backend.supervision import bulkformat as fmt
from backend.supervision.kinds import BULK_KINDS, EXAMPLE_USCC, OUTCOMES, bulk_fields
from tests import factories
from tests.supervision import outcomes as o
from tests.supervision.test_bulk import BULK, counts

XLSX = {"Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
CSV = {"Content-Type": "text/csv"}
CJK = re.compile(r"[\u4e00-\u9fff]")


def csv_text(header: list[str], rows: list[list[Any]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode()


def excel_serial(d: date) -> int:
    return (d - date(1899, 12, 30)).days


@pytest.fixture
def merchants(client: TestClient) -> list[str]:
    return [str(factories.register_verified(client)["uscc"]) for _ in range(5)]


class TestCells:
    @pytest.mark.parametrize(
        "cell",
        ["2026/11/24", "2026-11-24", "2026.11.24",
         "2026年11月24日", "2026/11/24 0:00:00", "2026-11-24 00:00:00", "20261124", "46350",
         46350, 46350.0, datetime(2026, 11, 24, 0, 0), date(2026, 11, 24)],
    )
    def test_spreadsheet_dates(self, cell: Any) -> None:
        assert fmt.excel_date(cell) == "2026-11-24"

    def test_short_months_and_days(self) -> None:
        assert fmt.excel_date("2026/1/5") == "2026-01-05"

    @pytest.mark.parametrize("cell", ["2026/13/01", "2026-02-30", "24/11/2026", "明天", "-3", ""])
    def test_what_is_not_a_date_is_passed_on_as_typed(self, cell: str) -> None:
        assert fmt.excel_date(cell) == cell

    def test_every_chinese_header_names_one_field(self) -> None:
        for kind in BULK_KINDS:
            for f in bulk_fields(kind):
                assert fmt.HEADERS[fmt.header_key(f.label)] == f.name
        assert fmt.HEADERS[fmt.header_key("双随机抽查编号")] == "draw_id"
        assert fmt.HEADERS[fmt.header_key("罚没金额(元)")] == "amount_yuan"
        assert fmt.HEADERS[fmt.header_key("记录类型")] == "kind"
        assert fmt.HEADERS[fmt.header_key(" Checked_On ")] == "checked_on"
        assert fmt.HEADERS[fmt.header_key("*检查日期")] == "checked_on"

    def test_yuan(self) -> None:
        assert fmt.yuan_to_fen("3000") == 300_000
        assert fmt.yuan_to_fen("1,250.5") == 125_050
        for bad in ("1e9", "-5", "1.234", "Infinity", ""):
            with pytest.raises(ValueError):
                fmt.yuan_to_fen(bad)


class TestChineseFiles:
    def test_csv_with_chinese_headers_labels_and_excel_dates(
        self, client: TestClient, regulator: dict[str, str], merchants: list[str]
    ) -> None:
        d = o.days_ago(5)
        header = ["记录类型", "统一社会信用代码", "检查结果", "检查日期", "检查机关",
                  "决定书文号", "决定日期", "处罚机关", "罚没金额（元）", "已履行",
                  "决定书文件的 SHA-256", "操作", "日期", "列入原因 / 移出依据"]
        blank = [""] * (len(header) - 2)

        def row(kind: str, uscc: str, **cells: str) -> list[str]:
            out = [kind, uscc, *blank]
            for k, v in cells.items():
                out[header.index(k)] = v
            return out

        rows = [
            row("监督抽查", merchants[0], 检查结果="未发现问题", 检查日期=d.strftime("%Y/%m/%d"),
                检查机关=o.AUTHORITY),
            row("行政处罚", merchants[1], 决定书文号="巴市监罚〔2026〕7号",
                决定日期=f"{d.year}年{d.month}月{d.day}日", 处罚机关=o.AUTHORITY,
                **{"罚没金额（元）": "1,250.50", "已履行": "是",
                   "决定书文件的 SHA-256": o.EVIDENCE}),
            row("经营异常名录", merchants[2], 操作="列入", 日期=str(excel_serial(d)),
                **{"列入原因 / 移出依据": "未按照规定的期限公示年度报告"}),
        ]
        resp = client.post(BULK, content=csv_text(header, rows), headers={**regulator, **CSV})
        assert resp.status_code == 201, resp.text
        ids = [r["record_id"] for r in resp.json()["records"]]
        bodies = [client.get(f"/api/supervision/records/{i}", headers=regulator).json()["body"]
                  for i in ids]
        assert bodies[0]["checked_on"] == d.isoformat()
        assert bodies[1]["decided_on"] == d.isoformat()
        assert bodies[1]["amount_fen"] == 125_050 and bodies[1]["performed"] is True
        assert bodies[2]["action"] == "in" and bodies[2]["on"] == d.isoformat()
        assert bodies[2]["reason"] == "annual_report_not_filed"

    def test_xlsx_dry_run_then_real_run(
        self, client: TestClient, regulator: dict[str, str], merchants: list[str]
    ) -> None:
        header = ["记录类型", "统一社会信用代码", "检查结果", "检查日期", "检查机关",
                  "计量器具名称", "出厂编号", "检定证书编号", "检定日期", "有效期至（含当天）"]
        rows: list[list[Any]] = []
        for i in range(300):
            u = merchants[i % len(merchants)]
            d = o.days_ago(1 + i % 200)
            if i % 3 == 0:  # a date cell, and an Excel serial as a number
                rows.append(["强制检定计量器具", u, None, None, None, "电子计价秤", f"S-{i}",
                             "JD-1", datetime(d.year, d.month, d.day), excel_serial(d) + 365])
            else:
                rows.append(["监督抽查", u, "未发现问题", d, o.AUTHORITY, None, None, None,
                             None, None])
        data = fmt.rows_as_xlsx(header, rows)
        before = counts(client)
        resp = client.post(BULK + "?dry_run=true", content=data, headers={**regulator, **XLSX})
        assert resp.status_code == 200, resp.text[:2000]
        preview = resp.json()
        assert preview["dry_run"] is True and preview["count"] == 300
        assert preview["kinds"] == {"instrument": 100, "spot_check": 200}
        assert preview["rows"][0]["body"]["verified_on"] == o.days_ago(1).isoformat()
        assert preview["rows"][1]["body"]["checked_on"] == o.days_ago(2).isoformat()
        assert counts(client) == before  # a dry run writes nothing
        resp = client.post(BULK, content=data, headers={**regulator, **XLSX})
        assert resp.status_code == 201, resp.text[:2000]
        assert resp.json()["count"] == 300
        assert counts(client)[0] == before[0] + 300

    def test_a_bad_xlsx_writes_nothing_and_says_why_in_chinese(
        self, client: TestClient, regulator: dict[str, str], merchants: list[str]
    ) -> None:
        header = ["记录类型", "统一社会信用代码", "检查结果", "检查日期", "检查机关"]
        rows: list[list[Any]] = [
            ["监督抽查", merchants[0], "未发现问题", o.days_ago(3), o.AUTHORITY],
            ["监督抽查", merchants[0], "合格", "2026/13/01", o.AUTHORITY],
            ["示范单位", merchants[1], None, None, None],
        ]
        before = counts(client)
        resp = client.post(BULK, content=fmt.rows_as_xlsx(header, rows),
                           headers={**regulator, **XLSX})
        assert resp.status_code == 422
        body = resp.json()
        assert body["error"] == "BulkValidationFailed" and body["detail_zh"].startswith("共 3 行")
        got = [(e["row"], e["column"]) for e in body["errors"]]
        assert got == [(2, "检查结果"), (2, "检查日期"), (3, "记录类型")]
        for e in body["errors"]:
            assert CJK.search(e["problem_zh"]) and "Input should" not in e["problem_zh"]
        assert body["errors"][1]["problem_zh"].startswith("检查日期：")
        assert counts(client) == before
        resp = client.post(BULK, content=b"PK\x03\x04 not a workbook",
                           headers={**regulator, **XLSX})
        assert resp.status_code == 422
        assert "Excel" in resp.json()["errors"][0]["problem_zh"]

    def test_the_count_counts_data_rows_only(
        self, client: TestClient, regulator: dict[str, str], merchants: list[str]
    ) -> None:
        # Issue 16: an unknown column and one bad row said "2 of 1 row(s)".
        text = ("kind,uscc,result,checked_on,authority,colour\n"
                f"spot_check,{merchants[0]},合格,2026-01-01,{o.AUTHORITY},red\n")
        resp = client.post(BULK, content=text.encode(), headers={**regulator, **CSV})
        body = resp.json()
        assert resp.status_code == 422
        assert body["detail"].startswith("1 of 1 row(s) are invalid"), body["detail"]
        assert body["row_count"] == 1 and body["invalid_rows"] == 1
        assert body["detail_zh"].startswith("共 1 行，其中 1 行有错误，表头或文件本身有 1 个问题")
        # A row too short for the header is counted too (Excel drops trailing empty cells).
        text = (f"kind,uscc,result,checked_on,authority\nspot_check,{merchants[0]},合格\n"
                f"spot_check,{merchants[0]},未发现问题,{o.days_ago(1)},{o.AUTHORITY},,\n")
        body = client.post(BULK, content=text.encode(), headers={**regulator, **CSV}).json()
        assert body["detail"].startswith("1 of 2 row(s)"), body["detail"]


class TestTemplates:
    @pytest.mark.parametrize("kind", [k.name for k in BULK_KINDS])
    def test_templates_read_back_and_their_example_row_is_refused(
        self, client: TestClient, regulator: dict[str, str], kind: str
    ) -> None:
        k = OUTCOMES[kind]
        header, example = fmt.template_rows(k)
        assert header[0] == "记录类型" and example[1] == EXAMPLE_USCC
        for data, headers in ((fmt.template_csv(k), CSV), (fmt.template_xlsx(k), XLSX)):
            resp = client.post(BULK + "?dry_run=true", content=data,
                               headers={**regulator, **headers})
            assert resp.status_code == 422, resp.text
            errors = resp.json()["errors"]
            assert [(e["row"], e["field"]) for e in errors] == [(1, "uscc")]
            assert "示例行" in errors[0]["problem_zh"]

    @pytest.mark.parametrize("kind", ["spot_check", "penalty", "instrument", "complaint_verified"])
    def test_a_filled_template_passes(
        self, client: TestClient, regulator: dict[str, str], merchants: list[str], kind: str
    ) -> None:
        wb = openpyxl.load_workbook(io.BytesIO(fmt.template_xlsx(OUTCOMES[kind])))
        ws = wb.worksheets[0]
        assert isinstance(ws["A2"].value, str)
        ws["B2"] = merchants[0]
        buf = io.BytesIO()
        wb.save(buf)
        resp = client.post(BULK + "?dry_run=true", content=buf.getvalue(),
                           headers={**regulator, **XLSX})
        assert resp.status_code == 200, resp.text
        assert resp.json()["rows"][0]["kind"] == kind
        assert wb.sheetnames[1] == "填写说明"


def test_a_failure_while_writing_leaves_nothing_half_written(
    client: TestClient, regulator: dict[str, str], merchants: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from backend.accounts.service import Principal
    from backend.supervision import bulk

    real = bulk.write_prepared

    def dies_after_writing(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)  # every record appended and projected, not yet committed
        raise RuntimeError("the process dies here")

    monkeypatch.setattr(bulk, "write_prepared", dies_after_writing)
    rows = [["监督抽查", merchants[i % 5], "未发现问题", o.days_ago(1 + i), o.AUTHORITY]
            for i in range(50)]
    data = fmt.rows_as_xlsx(["记录类型", "统一社会信用代码", "检查结果", "检查日期", "检查机关"],
                            rows)
    who = Principal(account_id=1, username="regulator1", role="regulator", merchant_uscc=None)
    before = counts(client)
    db = client.app.state.ctx.db  # type: ignore[attr-defined]
    with db.session() as s, pytest.raises(RuntimeError):
        bulk.record_bulk(s, principal=who, content_type=XLSX["Content-Type"], data=data)
    assert counts(client) == before
