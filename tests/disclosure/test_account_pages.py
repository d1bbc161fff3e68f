"""Landing and accounts (issue 16): each role lands on its own home, everyone changes their
password in a zh-CN page, and the admin manages staff accounts at /admin. Errors are in
Chinese next to their field; the password hint is the rule enforced."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from backend.accounts.passwords import PASSWORD_RULE_ZH
from tests import factories

HTML = {"Accept": "text/html,application/xhtml+xml"}


def _login(client: TestClient, username: str, password: str) -> tuple[str, str]:
    """Sign in with the browser form: (where it lands, the session's CSRF token)."""
    client.cookies.clear()
    r = client.post("/auth/login", data={"username": username, "password": password},
                    follow_redirects=False)
    assert r.status_code == 303 and "hm_session" in r.cookies, r.text
    page = client.get("/account", headers=HTML).text
    found = re.search(r'name="csrf_token" value="([^"]*)"', page)
    assert found
    return r.headers["location"], found.group(1)


@pytest.mark.parametrize(("role", "home"), [("regulator", "/regulator"), ("admin", "/admin")])
def test_staff_land_on_their_home(client: TestClient, role: str, home: str) -> None:
    factories.create_staff(client, username=f"land-{role}", role=role)
    where, _ = _login(client, f"land-{role}", factories.STAFF_PASSWORD)
    assert where == home
    assert client.get(home, headers=HTML).status_code == 200


def test_merchant_lands_on_its_home_and_next_wins(client: TestClient) -> None:
    m = factories.register(client)
    where, _ = _login(client, m["uscc"], factories.PASSWORD)
    assert where == "/merchant"
    client.cookies.clear()
    r = client.post("/auth/login", data={"username": m["uscc"], "password": factories.PASSWORD,
                                         "next": "/inspections"}, follow_redirects=False)
    assert r.headers["location"] == "/inspections"


def test_the_register_form_shows_the_rule_enforced(client: TestClient) -> None:
    page = client.get("/register", headers=HTML).text
    assert PASSWORD_RULE_ZH in page and "至少 10 个字符" in page


class TestChangePassword:
    def test_anonymous_is_sent_to_login(self, client: TestClient) -> None:
        r = client.get("/account", headers=HTML, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?")

    def test_errors_in_chinese_next_to_the_field(self, client: TestClient) -> None:
        m = factories.register(client)
        _, csrf = _login(client, m["uscc"], factories.PASSWORD)
        cases = [
            ({"current_password": factories.PASSWORD, "new_password": "123456789",
              "new_password2": "123456789"}, "new_password", "密码至少 10 个字符，现在是 9 个。"),
            ({"current_password": factories.PASSWORD, "new_password": "1234567890",
              "new_password2": "1234567890"}, "new_password", "连续的数字或字母"),
            ({"current_password": factories.PASSWORD, "new_password": "good new pass 1",
              "new_password2": "other"}, "new_password2", "两次输入的新密码不一致"),
            ({"current_password": "wrong one", "new_password": "good new pass 1",
              "new_password2": "good new pass 1"}, "current_password", "当前密码不正确"),
        ]
        for data, field, message in cases:
            r = client.post("/account/password", data={**data, "csrf_token": csrf}, headers=HTML)
            assert r.status_code == 422, r.text
            assert f'id="f-{field}-error"' in r.text and message in r.text, (field, message)
            assert "String should" not in r.text and "Field required" not in r.text
        assert PASSWORD_RULE_ZH in r.text

    def test_change_and_stay_signed_in(self, client: TestClient) -> None:
        m = factories.register(client)
        _, csrf = _login(client, m["uscc"], factories.PASSWORD)
        r = client.post("/account/password", data={
            "csrf_token": csrf, "current_password": factories.PASSWORD,
            "new_password": "good new pass 1", "new_password2": "good new pass 1"},
            headers=HTML)
        assert r.status_code == 200 and "密码已修改" in r.text
        assert client.post("/api/auth/token", data={
            "username": m["uscc"], "password": "good new pass 1"}).status_code == 200


class TestAdminHome:
    def test_only_admins(self, client: TestClient, regulator: dict[str, str]) -> None:
        _login(client, "regulator1", factories.STAFF_PASSWORD)
        assert client.get("/admin", headers=HTML).status_code == 403

    def test_create_disable_reset_and_set_role(
        self, client: TestClient, admin: dict[str, str]
    ) -> None:
        _, csrf = _login(client, "admin1", factories.STAFF_PASSWORD)
        r = client.post("/admin/accounts", headers=HTML, data={
            "csrf_token": csrf, "username": "Bad Name", "role": "regulator",
            "password": "123456789"})
        assert r.status_code == 422 and 'id="f-username-error"' in r.text
        r = client.post("/admin/accounts", headers=HTML, data={
            "csrf_token": csrf, "username": "li.si", "role": "regulator",
            "password": "1234567890"})
        assert r.status_code == 422 and 'id="f-password-error"' in r.text
        assert "连续的数字或字母" in r.text
        r = client.post("/admin/accounts", headers=HTML, data={
            "csrf_token": csrf, "username": "li.si", "role": "regulator",
            "password": factories.STAFF_PASSWORD})
        assert r.status_code == 200 and "账号已创建" in r.text and 'id="acct-li.si"' in r.text
        r = client.post("/admin/accounts/li.si", headers=HTML,
                        data={"csrf_token": csrf, "action": "disable"})
        assert "账号已停用" in r.text and "已停用" in r.text
        assert client.post("/api/auth/token", data={
            "username": "li.si", "password": factories.STAFF_PASSWORD}).status_code == 401
        r = client.post("/admin/accounts/li.si", headers=HTML,
                        data={"csrf_token": csrf, "action": "enable"})
        assert "账号已启用" in r.text
        r = client.post("/admin/accounts/li.si", headers=HTML,
                        data={"csrf_token": csrf, "action": "password-reset"})
        found = re.search(r'id="one-time-password">([^<]+)<', r.text)
        assert found, r.text
        assert client.post("/api/auth/token", data={
            "username": "li.si", "password": found.group(1)}).status_code == 200
        # a one-time password: the browser login asks for a new one first
        where, li_csrf = _login(client, "li.si", found.group(1))
        assert where == "/account?done=one_time"
        assert "一次性密码" in client.get(where, headers=HTML).text
        client.post("/account/password", headers=HTML, data={
            "csrf_token": li_csrf, "current_password": found.group(1),
            "new_password": "li si own pass", "new_password2": "li si own pass"})
        assert _login(client, "li.si", "li si own pass")[0] == "/regulator"
        _, csrf = _login(client, "admin1", factories.STAFF_PASSWORD)
        r = client.post("/admin/accounts/li.si", headers=HTML,
                        data={"csrf_token": csrf, "action": "role", "role": "admin"})
        assert "角色已修改" in r.text
        r = client.post("/admin/accounts/admin1", headers=HTML,
                        data={"csrf_token": csrf, "action": "disable"})
        assert r.status_code == 409 and "不能停用自己的账号" in r.text
        r = client.post("/admin/accounts/li.si", headers=HTML,
                        data={"csrf_token": csrf, "action": "explode"})
        assert r.status_code == 422 and "请选择一个操作" in r.text
        r = client.post("/admin/accounts/admin1", headers=HTML,
                        data={"csrf_token": csrf, "action": "disable"})
        assert r.status_code == 409 and "不能停用自己的账号" in r.text


class TestRegistrationDesk:
    """A regulator rejects or transfers a registration and manages the merchant's account
    from one page (issue 15 M5)."""

    def test_reject_from_the_page(self, client: TestClient, regulator: dict[str, str]) -> None:
        m = factories.register(client)
        _, csrf = _login(client, "regulator1", factories.STAFF_PASSWORD)
        page = client.get(f"/regulator/merchants/{m['uscc']}", headers=HTML)
        assert page.status_code == 200 and "驳回登记" in page.text
        assert "待核验：登记信息尚未经监管部门核验" in page.text
        r = client.post(f"/regulator/merchants/{m['uscc']}/registration", headers=HTML,
                        data={"csrf_token": csrf, "decision": "reject", "reason": ""})
        assert r.status_code == 422 and "请填写理由" in r.text
        r = client.post(f"/regulator/merchants/{m['uscc']}/registration", headers=HTML,
                        data={"csrf_token": csrf, "decision": "reject",
                              "reason": "代码不属于登记人"})
        assert r.status_code == 200 and "登记已驳回" in r.text
        assert m["uscc"] not in r.text  # no longer waiting for verification
        assert client.get(f"/api/merchants/{m['uscc']}").status_code == 404

    def test_transfer_and_account_from_the_page(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        m = factories.register_verified(client)
        _, csrf = _login(client, "regulator1", factories.STAFF_PASSWORD)
        page = client.get(f"/regulator/merchants/{m['uscc']}", headers=HTML).text
        assert "驳回登记" not in page  # verified: transferred, not rejected
        r = client.post(f"/regulator/merchants/{m['uscc']}/registration", headers=HTML,
                        data={"csrf_token": csrf, "decision": "transfer", "reason": "经核实移交"})
        found = re.search(r'id="one-time-password">([^<]+)<', r.text)
        assert r.status_code == 200 and found, r.text
        assert client.post("/api/auth/token", data={
            "username": m["uscc"], "password": found.group(1)}).status_code == 200
        r = client.post(f"/regulator/merchants/{m['uscc']}/account", headers=HTML,
                        data={"csrf_token": csrf, "action": "disable"})
        assert r.status_code == 200 and "该经营者账号已停用" in r.text
        assert client.post("/api/auth/token", data={
            "username": m["uscc"], "password": found.group(1)}).status_code == 401
        r = client.post(f"/regulator/merchants/{m['uscc']}/account", headers=HTML,
                        data={"csrf_token": csrf, "action": "password-reset"})
        assert 'id="one-time-password"' in r.text

    def test_merchants_and_admins_are_refused(
        self, client: TestClient, admin: dict[str, str]
    ) -> None:
        m = factories.register(client)
        _, csrf = _login(client, m["uscc"], factories.PASSWORD)
        r = client.post(f"/regulator/merchants/{m['uscc']}/registration", headers=HTML,
                        data={"csrf_token": csrf, "decision": "reject", "reason": "x"})
        assert r.status_code == 403
        _, csrf = _login(client, "admin1", factories.STAFF_PASSWORD)
        assert client.get(f"/regulator/merchants/{m['uscc']}", headers=HTML).status_code == 403
