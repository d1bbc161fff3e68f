"""Staff actions on accounts (issue 15 M5, issue 16): create, disable, enable, reset a
password, set a role. Each is a record naming the actor, the account and the time (never a
password or a hash), projected into ``account_action``; a disabled account cannot log in
and its tokens stop working at once."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.accounts.models import Account, AccountAction
from backend.accounts.passwords import PASSWORD_RULE_ZH, password_problem
from backend.ledger.models import LogLeaf
from tests import factories


def _login(client: TestClient, username: str, password: str) -> int:
    resp = client.post("/api/auth/token", data={"username": username, "password": password})
    return resp.status_code


def _records(client: TestClient, prefix: str = "account.") -> list[dict]:  # type: ignore[type-arg]
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.read() as s:
        rows = s.execute(
            select(LogLeaf.canonical).where(LogLeaf.record_type.startswith(prefix))  # type: ignore[attr-defined]
            .order_by(LogLeaf.leaf_index)  # type: ignore[arg-type]
        ).scalars()
        return [json.loads(bytes(r)) for r in rows]


class TestPasswordRule:
    @pytest.mark.parametrize(
        "password",
        ["123456789", "1234567890", "0987654321", "aaaaaaaaaaaa", "abcdefghijk", "qwertyuiop",
         "ababababab", "password123", "Password123", "1q2w3e4r5t"],
    )
    def test_trivially_weak_passwords_are_refused(self, password: str) -> None:
        assert password_problem(password, username="someone") is not None

    @pytest.mark.parametrize(
        "password",
        ["correct horse battery", "staff password 2025", "Tq7-mx2#Lp", "巴中市计量诚信2026"],
    )
    def test_good_passwords_pass(self, password: str) -> None:
        assert password_problem(password, username="someone") is None

    def test_the_hint_names_the_rule_enforced(self) -> None:
        assert "10" in PASSWORD_RULE_ZH and "1234567890" in PASSWORD_RULE_ZH

    def test_change_password_refuses_a_weak_new_one_without_using_a_login_slot(
        self, client: TestClient
    ) -> None:
        m, headers = factories.merchant_with_login(client)
        for _ in range(6):  # more than the five failed logins allowed
            resp = client.post(
                "/api/auth/password",
                json={"current_password": factories.PASSWORD, "new_password": "1234567890"},
                headers=headers,
            )
            assert resp.status_code == 422
            assert resp.json()["error"] == "WeakPassword"
            assert resp.json()["detail_zh"]
        resp = client.post(
            "/api/auth/password",
            json={"current_password": factories.PASSWORD, "new_password": "a much better one"},
            headers=headers,
        )
        assert resp.status_code == 200, resp.text
        assert _login(client, m["uscc"], "a much better one") == 200

    def test_create_user_command_uses_the_rule(self, client: TestClient) -> None:
        resp = client.post(
            "/api/accounts",
            json={"username": "weakling", "password": "123456789", "role": "regulator"},
            headers=factories.create_staff(client, username="admin1", role="admin"),
        )
        assert resp.status_code == 422
        assert resp.json()["error"] == "WeakPassword"


class TestDisable:
    def test_admin_disables_a_staff_account_and_its_tokens_stop_working(
        self, client: TestClient, admin: dict[str, str], regulator: dict[str, str]
    ) -> None:
        assert client.get("/api/auth/me", headers=regulator).status_code == 200
        resp = client.post("/api/accounts/regulator1/disable", headers=admin)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["action"] == "disabled" and body["account"]["disabled"] is True
        assert body["record_id"] and body["anchor_status"]["status"] == "pending"
        assert body["one_time_password"] is None
        # the token issued before stops working at once, and a login is refused
        resp = client.get("/api/auth/me", headers=regulator)
        assert resp.status_code == 401
        assert "disabled" in resp.json()["detail"]
        assert _login(client, "regulator1", factories.STAFF_PASSWORD) == 401
        # enabled again: the old token stays dead, a new login works
        resp = client.post("/api/accounts/regulator1/enable", headers=admin)
        assert resp.status_code == 200, resp.text
        assert client.get("/api/auth/me", headers=regulator).status_code == 401
        assert _login(client, "regulator1", factories.STAFF_PASSWORD) == 200

    def test_the_record_names_actor_account_and_time_never_a_password(
        self, client: TestClient, admin: dict[str, str], regulator: dict[str, str]
    ) -> None:
        client.post("/api/accounts/regulator1/disable", headers=admin)
        client.post("/api/accounts/regulator1/password-reset", headers=admin)
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        with ctx.db.read() as s:
            target = s.execute(select(Account).where(Account.username == "regulator1")).scalar_one()
            admin_id = s.execute(
                select(Account.id).where(Account.username == "admin1")
            ).scalar_one()
            actions = s.execute(
                select(AccountAction).where(AccountAction.target_id == target.id)
                .order_by(AccountAction.leaf_index)  # type: ignore[arg-type]
            ).scalars().all()
            stored_hash, target_id = target.password_hash, target.id
            done = [(a.action, a.account_id) for a in actions]
        assert done == [("created", None), ("disabled", admin_id), ("password_reset", admin_id)]
        envs = [e for e in _records(client) if e["body"]["account_id"] == target_id]
        assert [e["type"] for e in envs] == [
            "account.created", "account.disabled", "account.password_reset"
        ]
        for env in envs:
            assert env["actor"]["role"] in ("admin", "system") and env["at"]
            assert set(env["body"]) <= {"account_id", "role"}
            text = json.dumps(env)
            assert stored_hash not in text and "argon2" not in text

    def test_regulator_disables_a_merchant_account(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        m, headers = factories.merchant_with_login(client)
        resp = client.post(f"/api/accounts/{m['uscc'].lower()}/disable", headers=regulator)
        assert resp.status_code == 200, resp.text
        assert client.get("/api/auth/me", headers=headers).status_code == 401
        assert _login(client, m["uscc"], factories.PASSWORD) == 401

    def test_regulator_may_not_disable_staff(
        self, client: TestClient, admin: dict[str, str], regulator: dict[str, str]
    ) -> None:
        resp = client.post("/api/accounts/admin1/disable", headers=regulator)
        assert resp.status_code == 403
        assert resp.json()["error"] == "RoleNotPermitted"

    def test_merchant_may_not_disable_anyone(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        m, headers = factories.merchant_with_login(client)
        other = factories.register(client)
        resp = client.post(f"/api/accounts/{other['uscc']}/disable", headers=headers)
        assert resp.status_code == 403

    def test_not_yourself_not_twice_not_unknown(
        self, client: TestClient, admin: dict[str, str], regulator: dict[str, str]
    ) -> None:
        resp = client.post("/api/accounts/admin1/disable", headers=admin)
        assert resp.status_code == 409 and resp.json()["error"] == "CannotActOnSelf"
        assert client.post("/api/accounts/regulator1/disable", headers=admin).status_code == 200
        resp = client.post("/api/accounts/regulator1/disable", headers=admin)
        assert resp.status_code == 409 and resp.json()["error"] == "AccountAlreadyInState"
        resp = client.post("/api/accounts/nobody/disable", headers=admin)
        assert resp.status_code == 404 and resp.json()["error"] == "AccountNotFound"
        assert len([e for e in _records(client) if e["type"] == "account.disabled"]) == 1


class TestPasswordReset:
    def test_regulator_resets_a_merchant_password(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        m, headers = factories.merchant_with_login(client)
        resp = client.post(f"/api/accounts/{m['uscc']}/password-reset", headers=regulator)
        assert resp.status_code == 200, resp.text
        new = resp.json()["one_time_password"]
        assert new and password_problem(new, username=m["uscc"]) is None
        assert client.get("/api/auth/me", headers=headers).status_code == 401
        assert _login(client, m["uscc"], factories.PASSWORD) == 401
        assert _login(client, m["uscc"], new) == 200
        assert new not in json.dumps(_records(client))

    def test_anonymous_and_merchants_may_not_reset(self, client: TestClient) -> None:
        m, headers = factories.merchant_with_login(client)
        assert client.post(f"/api/accounts/{m['uscc']}/password-reset").status_code == 401
        resp = client.post(f"/api/accounts/{m['uscc']}/password-reset", headers=headers)
        assert resp.status_code == 403


class TestRole:
    def test_admin_sets_a_role_and_the_old_tokens_stop_working(
        self, client: TestClient, admin: dict[str, str], regulator: dict[str, str]
    ) -> None:
        resp = client.put("/api/accounts/regulator1/role", json={"role": "admin"}, headers=admin)
        assert resp.status_code == 200, resp.text
        assert resp.json()["account"]["role"] == "admin"
        assert client.get("/api/auth/me", headers=regulator).status_code == 401
        roles = [e["body"].get("role") for e in _records(client, "account.role_set")]
        assert roles == ["admin"]
        listing = client.get("/api/accounts", headers=admin).json()
        assert {a["username"]: a["role"] for a in listing["items"]}["regulator1"] == "admin"

    def test_merchant_accounts_have_no_staff_role(
        self, client: TestClient, admin: dict[str, str]
    ) -> None:
        m = factories.register(client)
        resp = client.put(f"/api/accounts/{m['uscc']}/role", json={"role": "admin"}, headers=admin)
        assert resp.status_code == 422 and resp.json()["error"] == "InvalidRole"

    def test_only_admins_set_roles(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        resp = client.put("/api/accounts/regulator1/role", json={"role": "admin"},
                          headers=regulator)
        assert resp.status_code == 403
