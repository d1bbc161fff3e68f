"""Rate limits on login, registration and complaints: 429, ``Retry-After``, the error shape —
on the API and on the public site's forms (which answered 422 without Retry-After before)."""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi.testclient import TestClient

from backend.accounts.ratelimit import ADDRESS_REGISTRATION
from backend.supervision.complaints import COMPLAINTS_PER_ADDRESS
from tests import factories

HTML = {"Accept": "text/html"}


def assert_rate_limited(resp: httpx.Response, *, window_s: int) -> None:
    assert resp.status_code == 429, resp.text
    retry = int(resp.headers["Retry-After"])
    assert 0 < retry <= window_s
    if resp.headers["content-type"].startswith("application/json"):
        body: dict[str, Any] = resp.json()
        assert body["error"] == "TooManyAttempts"
        assert isinstance(body["detail"], str) and str(retry) in body["detail"]
        assert body["retry_after_s"] == retry


def _form_token(html: str) -> str:
    found = re.search(r'name="form_token" value="([^"]*)"', html)
    assert found, "no form token in the page"
    return found.group(1)


class TestLogin:
    def test_api(self, client: TestClient) -> None:
        m = factories.register(client)
        for _ in range(5):
            resp = client.post(
                "/api/auth/token", data={"username": m["uscc"], "password": "wrong one"}
            )
            assert resp.status_code == 401
        resp = client.post(
            "/api/auth/token", data={"username": m["uscc"], "password": factories.PASSWORD}
        )
        assert_rate_limited(resp, window_s=15 * 60)


class TestRegistration:
    def test_api_then_form(self, client: TestClient) -> None:
        for _ in range(ADDRESS_REGISTRATION.max_events):
            factories.register(client)
        resp = client.post("/api/merchants", json=factories.merchant_body())
        assert_rate_limited(resp, window_s=ADDRESS_REGISTRATION.window_s)

        page = client.get("/register", headers=HTML).text
        body = factories.merchant_body()
        form = {k: v for k, v in body.items() if isinstance(v, str)}
        form.update(password2=body["password"], form_token=_form_token(page))
        resp = client.post("/register", data=form, headers=HTML)
        assert_rate_limited(resp, window_s=ADDRESS_REGISTRATION.window_s)
        assert resp.headers["content-type"].startswith("text/html")


class TestComplaints:
    def test_api_then_form(self, client: TestClient) -> None:
        uscc = factories.register(client)["uscc"]
        last = None
        for i in range(COMPLAINTS_PER_ADDRESS.max_events + 1):
            last = client.post("/api/complaints", json={"uscc": uscc, "content": f"少称 {i}"})
            if last.status_code != 201:
                break
        assert last is not None
        assert_rate_limited(last, window_s=COMPLAINTS_PER_ADDRESS.window_s)

        page = client.get(f"/complaint?uscc={uscc}", headers=HTML).text
        resp = client.post(
            "/complaint",
            data={"uscc": uscc, "content": "再投诉一次", "form_token": _form_token(page)},
            headers=HTML,
        )
        assert_rate_limited(resp, window_s=COMPLAINTS_PER_ADDRESS.window_s)
