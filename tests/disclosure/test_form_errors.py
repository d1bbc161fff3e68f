"""Every error a person reads is Chinese and names its field; a form shows all its problems.

Forms are filled with empty, too-long, hostile and wrong-code input; the answers must
say in Chinese what is wrong next to each field, keep what was typed, and never show
the English of pydantic or of the services. The JSON API keeps ``{"error", "detail"}``
and adds ``detail_zh``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.accounts.passwords import PASSWORD_MIN
from backend.timeutil import today_shanghai
from tests import factories
from tests.disclosure.test_pages import HTML, _login, _token
from tests.supervision import outcomes as o

# English a validation library or a service would put in front of a person.
LIBRARY_ENGLISH = re.compile(
    r"String should|Field required|Input should|Value error|validation error|"
    r"should have at|is in the future|rule '|must be|must not|characters long|"
    r"not a valid|Extra inputs|greater than|less than|at most \d|at least \d",
)
WRONG_CODE = "91350100M000100Y4Z"  # check character should be 3
BAD_CHECK = "91511902MA62Q3T557"  # passes the charset, fails the check character


def assert_chinese_only(html: str) -> None:
    """No English of a validation library or a service anywhere on the page."""
    found = LIBRARY_ENGLISH.search(html)
    if found is not None:
        around = html[max(0, found.start() - 80) : found.end() + 80]
        raise AssertionError(f"English error text on the page: {around!r}")


def field_error(html: str, field: str, prefix: str = "f-") -> str:
    found = re.search(rf'<p class="field-error" id="{prefix}{field}-error">(.*?)</p>', html, re.S)
    assert found, f"no error shown next to {field}"
    return found.group(1)


def _register(client: TestClient, **fields: str) -> Any:
    page = client.get("/register", headers=HTML).text
    data = {"form_token": _token(page, "form_token"), **fields}
    return client.post("/register", data=data, headers=HTML)


def _complain(client: TestClient, **fields: str) -> Any:
    page = client.get("/complaint", headers=HTML).text
    data = {"form_token": _token(page, "form_token"), **fields}
    return client.post("/complaint", data=data, headers=HTML)


class TestRegisterForm:
    def test_empty_form_reports_every_required_field(self, client: TestClient) -> None:
        r = _register(client)
        assert r.status_code == 422
        for field, label in [
            ("uscc", "统一社会信用代码"),
            ("name", "经营者名称"),
            ("sector", "行业"),
            ("region_code", "所在地区"),
            ("address", "经营地址"),
            ("contact_person", "联系人姓名"),
            ("contact_phone", "联系电话"),
            ("password", "密码"),
        ]:
            assert field_error(r.text, field) == f"请填写{label}"
            assert f'href="#f-{field}"' in r.text
        assert r.text.count('aria-invalid="true"') == 8
        assert_chinese_only(r.text)

    def test_wrong_code_too_long_and_hostile_input_together(self, client: TestClient) -> None:
        body = factories.merchant_body(uscc=BAD_CHECK)
        body.pop("password")
        hostile = "<script>alert(1)</script>\u202e"
        r = _register(
            client,
            **{**body, "name": "名" * 5000, "address": hostile, "contact_phone": "call me"},
            password="short",
            password2="other",
        )
        assert r.status_code == 422
        assert "校验位不正确：第 18 位，按规则应为" in field_error(r.text, "uscc")
        assert field_error(r.text, "name") == "经营者名称：不能超过 100 个字符"
        assert "电话号码" in field_error(r.text, "contact_phone")
        assert field_error(r.text, "password") == f"密码至少 {PASSWORD_MIN} 个字符，现在是 5 个。"
        assert field_error(r.text, "password2") == "两次输入的密码不一致"
        # What was typed stays (escaped), except the passwords.
        assert f'value="{BAD_CHECK}"' in r.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text and "<script>alert" not in r.text
        assert 'value="short"' not in r.text
        assert_chinese_only(r.text)

    def test_hostile_text_is_named_once_the_rest_is_right(self, client: TestClient) -> None:
        body = factories.merchant_body()
        body.pop("password")
        r = _register(
            client,
            **{**body, "address": "巴州区\u200b江北大道"},
            password=factories.PASSWORD,
            password2=factories.PASSWORD,
        )
        assert r.status_code == 422
        assert field_error(r.text, "address").startswith("经营地址：含有看不见的格式字符")
        assert_chinese_only(r.text)


class TestComplaintForm:
    def test_empty(self, client: TestClient) -> None:
        r = _complain(client)
        assert r.status_code == 422
        assert field_error(r.text, "uscc") == "请填写被举报经营者的统一社会信用代码"
        assert field_error(r.text, "content") == "请填写举报内容"
        assert_chinese_only(r.text)

    def test_wrong_code_and_too_long_content(self, client: TestClient) -> None:
        r = _complain(client, uscc=WRONG_CODE, content="短" * 2001, contact="x" * 300)
        assert r.status_code == 422
        assert "第 18 位应为 3" in field_error(r.text, "uscc")
        assert field_error(r.text, "content") == "举报内容：不能超过 2000 个字符"
        assert field_error(r.text, "contact").startswith("联系方式：不能超过")
        assert "短" * 2001 in r.text  # kept as typed
        assert_chinese_only(r.text)

    def test_unknown_merchant(self, client: TestClient) -> None:
        r = _complain(client, uscc=factories.make_uscc(n=424_242), content="缺斤短两")
        assert r.status_code == 422
        assert "没有找到这个统一社会信用代码对应的经营者" in field_error(r.text, "uscc")
        assert_chinese_only(r.text)


@pytest.fixture
def shop(client: TestClient) -> dict[str, Any]:
    return factories.register(client)


@pytest.fixture
def staff_csrf(client: TestClient, shop: dict[str, Any]) -> str:
    factories.create_staff(client, username="reg.zh", role="regulator")
    return _login(client, "reg.zh", factories.STAFF_PASSWORD)


class TestOutcomeForm:
    def test_empty_penalty_lists_every_missing_field(
        self, client: TestClient, staff_csrf: str
    ) -> None:
        r = client.post(
            "/regulator/outcomes",
            data={"csrf_token": staff_csrf, "kind": "penalty"},
            headers=HTML,
        )
        assert r.status_code == 422
        for field, label in [
            ("uscc", "统一社会信用代码"),
            ("decision_no", "决定书文号"),
            ("decided_on", "决定日期"),
            ("authority", "处罚机关"),
            ("amount_yuan", "罚没金额（元）"),
        ]:
            assert field_error(r.text, field, "o-") == f"{label}：必须填写", field
        assert_chinese_only(r.text)

    def test_bad_values(self, client: TestClient, shop: dict[str, Any], staff_csrf: str) -> None:
        m = shop
        r = client.post(
            "/regulator/outcomes",
            data={
                "csrf_token": staff_csrf,
                "kind": "spot_check",
                "uscc": m["uscc"],
                "result": "不存在的结果",
                "checked_on": "2026-13-45",
                "authority": "局" * 300,
                "evidence_sha256": "not a hash",
            },
            headers=HTML,
        )
        assert r.status_code == 422
        assert field_error(r.text, "result", "o-") == "检查结果：应为公示的七种抽查结果之一"
        assert field_error(r.text, "checked_on", "o-").startswith("检查日期：应为有效日期")
        assert field_error(r.text, "authority", "o-") == "检查机关：不能超过 200 个字符"
        assert "SHA-256" in field_error(r.text, "evidence_sha256", "o-")
        assert 'value="not a hash"' in r.text
        assert_chinese_only(r.text)

    def test_date_in_the_future(
        self, client: TestClient, shop: dict[str, Any], staff_csrf: str
    ) -> None:
        m = shop
        r = client.post(
            "/regulator/outcomes",
            data={
                "csrf_token": staff_csrf,
                "kind": "spot_check",
                "uscc": m["uscc"],
                "result": "未发现问题",
                "checked_on": (today_shanghai() + timedelta(days=3)).isoformat(),
                "authority": "巴中市市场监督管理局",
            },
            headers=HTML,
        )
        assert r.status_code == 422
        assert field_error(r.text, "checked_on", "o-").startswith("检查日期：不能晚于今天")
        assert_chinese_only(r.text)

    def test_wrong_code(self, client: TestClient, staff_csrf: str) -> None:
        r = client.post(
            "/regulator/outcomes",
            data={
                "csrf_token": staff_csrf,
                "kind": "spot_check",
                "uscc": WRONG_CODE,
                "result": "未发现问题",
                "checked_on": today_shanghai().isoformat(),
                "authority": "巴中市市场监督管理局",
            },
            headers=HTML,
        )
        assert r.status_code == 422
        assert "第 18 位应为 3" in field_error(r.text, "uscc", "o-")
        assert_chinese_only(r.text)


class TestErrorPages:
    def test_a_refused_page_request_is_chinese(self, client: TestClient) -> None:
        r = client.get("/search?page=0", headers=HTML)
        assert r.status_code == 422
        assert "不能小于 1" in r.text
        assert_chinese_only(r.text)


class TestApi:
    def test_validation_keeps_the_shape_and_adds_chinese(self, client: TestClient) -> None:
        r = client.post("/api/complaints", json={"uscc": "", "content": ""})
        assert r.status_code == 422
        body = r.json()
        assert body["error"] == "ValidationFailed"
        assert "content" in body["detail"]
        assert body["detail_zh"] == "举报内容：不能为空"

    def test_missing_fields_are_each_named(self, client: TestClient) -> None:
        r = client.post("/api/complaints", json={})
        assert r.json()["detail_zh"] == "统一社会信用代码：必须填写；举报内容：必须填写"

    def test_domain_error(self, client: TestClient) -> None:
        r = client.get(f"/api/merchants/{BAD_CHECK}")
        assert r.status_code == 422
        body = r.json()
        assert body["error"] == "InvalidCreditCode" and "rule 'check'" in body["detail"]
        assert body["detail_zh"].startswith("统一社会信用代码：校验位不正确：第 18 位")

    def test_not_found_and_http_errors(self, client: TestClient) -> None:
        r = client.get("/api/no-such-thing")
        assert r.json()["detail_zh"] == "页面不存在"
        code = factories.make_uscc(n=777_777)
        r = client.get(f"/api/merchants/{code}")
        assert r.json()["detail_zh"] == "统一社会信用代码：没有找到这个统一社会信用代码对应的经营者"


class TestComplaintStatus:
    def test_receipt_number_and_status_page(self, client: TestClient) -> None:
        shop = factories.register(client, name="老街菜市场")
        r = _complain(client, uscc=shop["uscc"], content="秤不准，少了二两")
        assert r.status_code == 200
        ticket = re.search(r'id="ticket">([^<]+)<', r.text).group(1)  # type: ignore[union-attr]
        code = re.search(r'id="check-code">([^<]+)<', r.text).group(1)  # type: ignore[union-attr]
        assert re.fullmatch(rf"TS-{today_shanghai().year}-\d{{6}}", ticket)
        assert re.fullmatch(r"[2-9A-Z]{8}", code)

        def lookup(t: str, c: str) -> Any:
            page = client.get("/complaint/status", headers=HTML).text
            data = {"form_token": _token(page, "form_token"), "ticket": t, "code": c}
            return client.post("/complaint/status", data=data, headers=HTML)

        found = lookup(ticket, code.lower())
        assert found.status_code == 200 and "已受理，正在核查" in found.text
        assert "老街菜市场" in found.text and code not in found.text

        wrong = lookup(ticket, "AAAAAAAA")
        assert wrong.status_code == 404
        assert field_error(wrong.text, "ticket") == "受理编号或查询码不正确，请核对回执"
        empty = lookup("", "")
        assert field_error(empty.text, "ticket") == "请填写受理编号"
        assert field_error(empty.text, "code") == "请填写查询码"
        hostile = lookup("<script>" * 50, "x" * 500)
        assert hostile.status_code == 404 and "<script>" not in hostile.text
        for page in (found, wrong, empty, hostile):
            assert_chinese_only(page.text)

        # The regulator verifies it: the complainant sees the outcome and the staff list
        # shows the number.
        factories.create_staff(client, username="reg.t", role="regulator")
        csrf = _login(client, "reg.t", factories.STAFF_PASSWORD)
        listed = client.get("/regulator/complaints", headers=HTML).text
        assert ticket in listed
        found_id = re.search(r"/regulator/complaints/([0-9a-f]{32})/review", listed)
        assert found_id is not None
        complaint_id = found_id.group(1)
        r = client.post(
            f"/regulator/complaints/{complaint_id}/review",
            data={"csrf_token": csrf, "outcome": "verified", "summary": "经现场核查，秤计量不准"},
            follow_redirects=False,
        )
        assert r.status_code == 303
        client.cookies.clear()
        done = lookup(ticket, code)
        assert "经核实，情况属实" in done.text and "秤计量不准" in done.text

    def test_api_receipt_carries_the_number(self, client: TestClient) -> None:
        shop = factories.register(client)
        r = client.post("/api/complaints", json={"uscc": shop["uscc"], "content": "缺斤短两"})
        body = r.json()
        assert r.status_code == 201 and body["ticket"].startswith("TS-")
        assert len(body["check_code"]) == 8


def test_a_refused_repair_lists_the_unmet_conditions(client: TestClient) -> None:
    staff = factories.create_staff(client, username="reg.rep", role="regulator")
    shop = factories.register(client)
    penalty = o.post(client, o.penalty(uscc=shop["uscc"]), headers=staff)
    csrf = _login(client, shop["uscc"], factories.PASSWORD)
    r = client.post(
        "/merchant/repair",
        data={"csrf_token": csrf, "penalty_record_id": penalty["record_id"], "statement": "已整改"},
        headers=HTML,
    )
    assert r.status_code == 422
    assert "暂不符合信用修复条件" in r.text
    assert "个月" in r.text  # the unmet publicity period, as the credit service words it
    assert_chinese_only(r.text)
