"""Server-side revocation (issue 15 L4): a logout ends the session cookie or bearer token
for good, even replayed; "everywhere" ends them all; the per-request check stays one query."""

from __future__ import annotations

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import event

from backend.accounts.deps import SESSION_COOKIE
from tests import factories


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def me(client: TestClient, headers: dict[str, str] | None = None) -> httpx.Response:
    return client.get("/api/auth/me", headers=headers or {})


class TestLogout:
    def test_logout_form_revokes_the_session_cookie(self, client: TestClient) -> None:
        m = factories.register(client)
        client.post(
            "/auth/login",
            data={"username": m["uscc"], "password": factories.PASSWORD},
            follow_redirects=False,
        )
        cookie = client.cookies[SESSION_COOKIE]
        csrf = client.get("/api/auth/csrf").json()["csrf_token"]
        resp = client.post("/auth/logout", data={"csrf_token": csrf}, follow_redirects=False)
        assert resp.status_code == 303
        # A copy of the cookie (another tab, a stolen one) is refused from now on.
        client.cookies.clear()
        client.cookies.set(SESSION_COOKIE, cookie)
        resp = me(client)
        assert resp.status_code == 401
        assert resp.json()["error"] == "NotAuthenticated"  # a dead cookie browses anonymously
        client.cookies.clear()
        # As a bearer it is refused by name.
        resp = me(client, bearer(cookie))
        assert resp.status_code == 401 and resp.json()["error"] == "InvalidToken"

    def test_bearer_logout_revokes_only_that_token(self, any_db_client: TestClient) -> None:
        client = any_db_client
        m = factories.register(client)
        first = factories.token(client, username=m["uscc"])
        second = factories.token(client, username=m["uscc"])
        resp = client.post("/api/auth/logout", headers=bearer(first))
        assert resp.status_code == 204
        resp = me(client, bearer(first))
        assert resp.status_code == 401
        assert resp.json()["error"] == "InvalidToken"
        assert "logout" in resp.json()["detail"]
        assert me(client, bearer(second)).status_code == 200
        # A revoked token cannot log itself out again, nor write.
        assert client.post("/api/auth/logout", headers=bearer(first)).status_code == 401

    def test_logout_everywhere_ends_every_token_and_session(
        self, any_db_client: TestClient
    ) -> None:
        client = any_db_client
        m = factories.register(client)
        tokens = [factories.token(client, username=m["uscc"]) for _ in range(2)]
        client.post(
            "/auth/login",
            data={"username": m["uscc"], "password": factories.PASSWORD},
            follow_redirects=False,
        )
        cookie = client.cookies[SESSION_COOKIE]
        client.cookies.clear()
        resp = client.post("/api/auth/logout?everywhere=true", headers=bearer(tokens[0]))
        assert resp.status_code == 204
        for token in tokens:
            resp = me(client, bearer(token))
            assert resp.status_code == 401 and resp.json()["error"] == "InvalidToken"
        client.cookies.set(SESSION_COOKIE, cookie)
        assert me(client).status_code == 401
        client.cookies.clear()
        # Logging in again works, and the new token is good.
        assert me(client, bearer(factories.token(client, username=m["uscc"]))).status_code == 200

    def test_anonymous_logout(self, client: TestClient) -> None:
        resp = client.post("/api/auth/logout")
        assert resp.status_code == 401
        assert resp.json()["error"] == "NotAuthenticated"


def test_the_account_check_is_one_query(client: TestClient) -> None:
    """Revocation adds no query: the account and its revoked-token check are one."""
    m = factories.register(client)
    headers = bearer(factories.token(client, username=m["uscc"]))
    db = client.app.state.ctx.db  # type: ignore[attr-defined]
    seen: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "account" in statement:
            seen.append(statement)

    engines = {db.engine, db.read_engine, db.quick_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    try:
        assert me(client, headers).status_code == 200
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)
    assert len(seen) == 1, seen
    assert "revoked_token" in seen[0]
