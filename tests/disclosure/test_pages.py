"""The public site without a browser: headers, escaping, privacy, errors, CSRF, access.

The app runs in TestClient (SQLite, embedded chain, anchoring off).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.timeutil import today_shanghai
from tests import factories

HTML = {"Accept": "text/html,application/xhtml+xml"}
XSS = "<script>alert(1)</script>"


def _token(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no {name} in the page"
    return found.group(1)


def _login(client: TestClient, username: str, password: str) -> str:
    """Sign in with the browser form; returns the session's CSRF token (from a page)."""
    r = client.post(
        "/auth/login", data={"username": username, "password": password}, follow_redirects=False
    )
    assert r.status_code == 303 and "hm_session" in r.cookies, r.text
    return _token(client.get("/verify", headers=HTML).text, "csrf_token")


@pytest.fixture
def merchant(client: TestClient) -> dict[str, Any]:
    m, headers = factories.merchant_with_login(
        client, name=XSS, contact_person="张秘密", contact_phone="13912340000"
    )
    factories.make_pledge(client, headers=headers)
    return m


class TestSecurityHeaders:
    @pytest.mark.parametrize("path", ["/", "/verify", "/login", "/register", "/inspections"])
    def test_pages(self, client: TestClient, path: str) -> None:
        r = client.get(path, headers=HTML)
        assert r.status_code == 200
        csp = r.headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["script-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'"
        assert "unsafe-inline" not in csp and "http" not in directives["default-src"]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "same-origin"
        assert r.headers["x-frame-options"] == "DENY"

    def test_api_and_static_too(self, client: TestClient) -> None:
        for path in ("/api/stats/overview", "/static/verify.js", "/healthz"):
            r = client.get(path)
            assert r.status_code == 200, path
            assert r.headers["x-content-type-options"] == "nosniff"
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"]

    def test_no_inline_script_or_handler_in_any_template(self) -> None:
        from backend.disclosure.web import TEMPLATES_DIR

        for path in TEMPLATES_DIR.rglob("*.html"):
            text = path.read_text("utf-8")
            for tag in re.findall(r"<script\b[^>]*>", text):
                assert "src=" in tag, f"{path.name}: inline script {tag}"
            assert not re.search(r"\son[a-z]+\s*=", text), f"{path.name}: inline event handler"
            assert "style=" not in text, f"{path.name}: inline style"
            assert "http://" not in text and "https://" not in text, f"{path.name}: external URL"

    def test_the_ledger_node_is_allowed_to_connect(self, settings: Any) -> None:
        from backend.disclosure.web import content_security_policy

        csp = content_security_policy(
            settings.model_copy(update={"ledger_public_url": "https://node.example.cn:8545/rpc"})
        )
        assert "connect-src 'self' https://node.example.cn:8545" in csp

    def test_nodes_visitors_may_choose_are_allowed_and_nothing_else(
        self, settings: Any
    ) -> None:
        """HM_VERIFY_RPC_NODES is the CSP's connect-src (with the public node); a value
        that could break out of the directive or the page's attribute is refused."""
        from pydantic import ValidationError

        from backend.config import Settings
        from backend.disclosure.web import content_security_policy

        s = settings.model_copy(update={
            "ledger_public_url": "https://node.example.cn:8545/rpc",
            "verify_rpc_nodes": ["https://rpc.bureau.example/", "http://10.0.0.7:8545",
                                 "https://node.example.cn:8545/other"],
        })
        connect = next(
            d for d in content_security_policy(s).split("; ") if d.startswith("connect-src")
        )
        assert connect == (
            "connect-src 'self' https://node.example.cn:8545 https://rpc.bureau.example "
            "http://10.0.0.7:8545"
        )
        for bad in ("ftp://x.example", "https://x.example; script-src *", "https://a b",
                    'https://x.example/"><script>', "node.example:8545"):
            with pytest.raises(ValidationError, match="HM_VERIFY_RPC_NODES"):
                Settings(**{**settings.model_dump(), "verify_rpc_nodes": [bad]})


class TestEscapingAndPrivacy:
    def test_script_name_is_text_everywhere(
        self, client: TestClient, merchant: dict[str, Any]
    ) -> None:
        for path in (f"/merchants/{merchant['uscc']}", "/search?q=%3Cscript"):
            text = client.get(path, headers=HTML).text
            assert XSS not in text
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text

    def test_contact_data_never_on_public_pages(
        self, client: TestClient, merchant: dict[str, Any]
    ) -> None:
        for path in (f"/merchants/{merchant['uscc']}", f"/search?q={merchant['uscc'][:8]}", "/"):
            text = client.get(path, headers=HTML).text
            assert "张秘密" not in text and "13912340000" not in text

    def test_complaint_contact_stays_private(
        self, client: TestClient, merchant: dict[str, Any]
    ) -> None:
        page = client.get(f"/complaint?uscc={merchant['uscc']}", headers=HTML).text
        r = client.post(
            "/complaint",
            data={
                "uscc": merchant["uscc"],
                "content": "电子秤少称二两",
                "contact": "微信 secret-wx",
                "form_token": _token(page, "form_token"),
            },
            headers=HTML,
        )
        assert r.status_code == 200 and 'id="complaint-received"' in r.text
        assert "secret-wx" not in r.text
        public = client.get(f"/merchants/{merchant['uscc']}", headers=HTML).text
        assert "secret-wx" not in public and "电子秤少称二两" not in public


class TestErrors:
    def test_unknown_page_is_html_for_browsers_json_for_api(self, client: TestClient) -> None:
        r = client.get("/no-such-page", headers=HTML)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
        assert "未找到" in r.text
        r = client.get("/api/no-such-thing", headers=HTML)
        assert r.status_code == 404 and r.json()["error"] == "NotFound"

    def test_unknown_merchant(self, client: TestClient) -> None:
        code = factories.make_uscc(n=999_999)
        r = client.get(f"/merchants/{code}", headers=HTML)
        assert r.status_code == 404
        assert "没有找到这个统一社会信用代码对应的经营者" in r.text
        r = client.get(f"/api/merchants/{code}")
        assert r.status_code == 404 and r.json()["error"] == "MerchantNotFound"

    def test_invalid_code_names_the_rule(self, client: TestClient) -> None:
        r = client.get("/merchants/91350100M000100Y4Z", headers=HTML)
        assert r.status_code == 422
        assert "InvalidCreditCode" in r.text
        assert "第 18 位含有不允许的字符" in r.text and "第 18 位应为 3" in r.text

    def test_lower_case_code_redirects_to_the_canonical_page(
        self, client: TestClient, merchant: dict[str, Any]
    ) -> None:
        r = client.get(f"/merchants/{merchant['uscc'].lower()}", follow_redirects=False)
        assert r.status_code == 301 and r.headers["location"] == f"/merchants/{merchant['uscc']}"

    def test_search_error_is_shown_on_the_page(self, client: TestClient) -> None:
        r = client.get("/search?region=123456", headers=HTML)
        assert r.status_code == 422 and "UnknownRegion" not in r.text
        assert 'role="alert"' in r.text


class TestForms:
    def test_register_needs_the_form_token(self, client: TestClient) -> None:
        body = factories.merchant_body()
        body.pop("password")
        r = client.post("/register", data={**body, "password": "x" * 12, "password2": "x" * 12})
        assert r.status_code == 403 and "表单已过期" in r.text

    def test_cross_site_register_refused(self, client: TestClient) -> None:
        page = client.get("/register", headers=HTML).text
        r = client.post(
            "/register",
            data={"form_token": _token(page, "form_token"), "uscc": "x"},
            headers={"Origin": "https://evil.example"},
        )
        assert r.status_code == 403

    def test_register_errors_keep_values_not_password(self, client: TestClient) -> None:
        page = client.get("/register", headers=HTML).text
        body = factories.merchant_body(uscc="91350100M000100Y4Z")
        r = client.post(
            "/register",
            data={
                **{k: v for k, v in body.items() if k != "password"},
                "password": "secret password 1",
                "password2": "secret password 1",
                "form_token": _token(page, "form_token"),
            },
            headers=HTML,
        )
        assert r.status_code == 422
        assert 'id="f-uscc" name="uscc" value="91350100M000100Y4Z"' in r.text
        assert 'aria-invalid="true"' in r.text
        assert "secret password 1" not in r.text

    def test_logged_in_post_without_csrf_is_refused(
        self, client: TestClient, merchant: dict[str, Any]
    ) -> None:
        _login(client, merchant["uscc"], factories.PASSWORD)
        r = client.post(
            "/merchant/pledge", data={"template_version": "1", "items": ["G1"]}, headers=HTML
        )
        assert r.status_code == 403 and "页面已过期" in r.text

    def test_login_next_cannot_leave_the_site(self, client: TestClient) -> None:
        r = client.get("/login?next=//evil.example/x", headers=HTML)
        assert 'name="next" value=""' in r.text


class TestAccess:
    def test_anonymous_goes_to_login(self, client: TestClient) -> None:
        for path in ("/merchant", "/merchant/pledge", "/regulator", "/regulator/outcomes"):
            r = client.get(path, headers=HTML, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"].startswith("/login?next=%2F")

    def test_merchant_cannot_open_the_workbench(
        self, client: TestClient, merchant: dict[str, Any]
    ) -> None:
        _login(client, merchant["uscc"], factories.PASSWORD)
        r = client.get("/regulator", headers=HTML)
        assert r.status_code == 403 and "没有权限" in r.text

    def test_regulator_cannot_publish_a_policy(self, client: TestClient) -> None:
        factories.create_staff(client, username="reg.policy", role="regulator")
        csrf = _login(client, "reg.policy", factories.STAFF_PASSWORD)
        page = client.get("/regulator/policy", headers=HTML)
        assert page.status_code == 200 and "需要管理员账号" in page.text
        r = client.post("/regulator/policy", data={"csrf_token": csrf, "document": "{}"})
        assert r.status_code == 403


class TestMerchantArea:
    def test_pledge_form_lists_the_sector_items(self, client: TestClient) -> None:
        m = factories.register(client, sector="fuel")
        _login(client, m["uscc"], factories.PASSWORD)
        page = client.get("/merchant/pledge", headers=HTML).text
        codes = re.findall(r'name="items" value="([A-Z0-9]+)"', page)
        assert codes[:6] == ["G1", "G2", "G3", "G4", "G5", "G6"]
        assert any(c.startswith("FUEL") for c in codes)
        assert '<label class="checkbox" for="item-G1">' in page

    def test_missing_required_item_is_explained(self, client: TestClient) -> None:
        m = factories.register(client, sector="retail")
        csrf = _login(client, m["uscc"], factories.PASSWORD)
        r = client.post(
            "/merchant/pledge",
            data={"csrf_token": csrf, "template_version": "1", "items": ["G1", "G2"]},
            headers=HTML,
        )
        assert r.status_code == 422
        assert "必选事项都要勾选" in r.text
        assert 'id="item-G1" name="items" value="G1" checked' in r.text


class TestRegulatorArea:
    def test_spot_check_through_the_form_changes_the_tier(self, client: TestClient) -> None:
        m = factories.register_verified(client, sector="fuel")
        factories.create_staff(client, username="reg.form", role="regulator")
        csrf = _login(client, "reg.form", factories.STAFF_PASSWORD)
        before = client.get(f"/merchants/{m['uscc']}", headers=HTML).text
        assert 'tier-B tier-big"' in before
        r = client.post(
            "/regulator/outcomes",
            data={
                "csrf_token": csrf,
                "kind": "spot_check",
                "uscc": m["uscc"],
                "result": "发现问题已责令改正",
                "checked_on": today_shanghai().isoformat(),
                "authority": "巴中市市场监督管理局",
            },
            headers=HTML,
        )
        assert r.status_code == 201 and 'id="outcome-written"' in r.text
        after = client.get(f"/merchants/{m['uscc']}", headers=HTML).text
        assert 'tier-C tier-big"' in after

    def test_bulk_upload_reports_each_bad_row(self, client: TestClient) -> None:
        m = factories.register(client)
        factories.create_staff(client, username="reg.bulk", role="regulator")
        csrf = _login(client, "reg.bulk", factories.STAFF_PASSWORD)
        rows = (
            "kind,uscc,result,checked_on,authority\n"
            f"spot_check,{m['uscc']},未发现问题,2025-10-01,巴中市市场监督管理局\n"
            f"spot_check,{m['uscc']},不存在的结果,2025-10-01,巴中市市场监督管理局\n"
        )
        files = {"file": ("checks.csv", rows.encode(), "text/csv")}
        r = client.post("/regulator/outcomes/bulk", data={"csrf_token": csrf}, files=files)
        assert r.status_code == 422
        # The second data row is row 3 of the sheet; its problem in Chinese beside it.
        assert re.search(r'<tr id="bulk-row-2">\s*<th scope="row" rowspan="1">第 3 行</th>\s*'
                         r'<td>result</td><td class="field-error">检查结果：', r.text)
        good = rows.splitlines()[:2]
        files = {"file": ("checks.csv", ("\n".join(good) + "\n").encode(), "text/csv")}
        r = client.post("/regulator/outcomes/bulk", data={"csrf_token": csrf}, files=files)
        assert r.status_code == 200 and 'id="bulk-preview"' in r.text
        r = client.post("/regulator/outcomes/bulk/record",
                        data={"csrf_token": csrf, "token": _token(r.text, "token")})
        assert r.status_code == 201 and "已写入 <strong>1</strong> 条记录" in r.text

    def test_verify_a_registration(self, client: TestClient) -> None:
        m = factories.register(client)
        factories.create_staff(client, username="reg.verify", role="regulator")
        csrf = _login(client, "reg.verify", factories.STAFF_PASSWORD)
        home = client.get("/regulator", headers=HTML).text
        assert m["uscc"] in home
        r = client.post(
            f"/regulator/merchants/{m['uscc']}/verify",
            data={"csrf_token": csrf},
            follow_redirects=False,
        )
        assert r.status_code == 303
        assert "已核验" in client.get(f"/merchants/{m['uscc']}", headers=HTML).text

    def test_the_shop_page_shows_the_kept_view_never_a_stale_one(
        self, client: TestClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from backend.shops import service as shops

        m = factories.register(client)
        regulator = factories.create_staff(client, username="reg.kept", role="regulator")

        def not_here(*_: Any, **__: Any) -> None:
            raise AssertionError("the public page builds the merchant view from the tables")

        monkeypatch.setattr(shops, "get_public", not_here)
        page = client.get(f"/merchants/{m['uscc']}", headers=HTML)
        assert page.status_code == 200 and "已核验" not in page.text  # now kept
        verified = client.post(f"/api/merchants/{m['uscc']}/verification", headers=regulator)
        assert verified.status_code == 201
        assert "已核验" in client.get(f"/merchants/{m['uscc']}", headers=HTML).text

    @pytest.mark.parametrize(
        ("path", "data"),
        [
            ("/regulator/complaints/nope/review", {"outcome": "verified", "summary": "经核实属实"}),
            ("/regulator/repairs/nope/decision", {"decision": "approved", "reason": "符合条件"}),
        ],
    )
    def test_unknown_id_in_a_review_form_is_404_not_422(
        self, client: TestClient, path: str, data: dict[str, str]
    ) -> None:
        """Bug: every service error on these forms was shown as 422."""
        factories.create_staff(client, username="reg.review", role="regulator")
        csrf = _login(client, "reg.review", factories.STAFF_PASSWORD)
        r = client.post(path, data={"csrf_token": csrf, **data}, headers=HTML)
        assert r.status_code == 404, r.text[:300]
        assert "<form" in r.text  # the page is shown again, with the error


def test_home_shows_targets_and_tier_chart(client: TestClient, merchant: dict[str, Any]) -> None:
    text = client.get("/", headers=HTML).text
    # 2025 has ended (the clock is real): a past target, not a goal (see test_charts.py).
    assert "2025 年目标 200 家（已到期）" in text and "到 2035 年 700 家" in text
    assert 'href="/search?tier=B"' in text
