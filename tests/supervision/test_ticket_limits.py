"""Complaint status lookups (受理编号 + 查询码) are limited against guessing, with the
atomic database limiter of logins (backend/accounts/ratelimit.py): failed lookups per
client address and per number; 429 TooManyAttempts with Retry-After in the API, a
Chinese line on the page. A lookup that succeeds costs nothing."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from backend.accounts import ratelimit
from tests import factories
from tests.disclosure.test_form_errors import assert_chinese_only
from tests.disclosure.test_pages import HTML, _token


def _receipt(client: TestClient) -> tuple[str, str]:
    shop = factories.register(client)
    body = client.post("/api/complaints", json={"uscc": shop["uscc"], "content": "秤不准"}).json()
    return body["ticket"], body["check_code"]


def _api(client: TestClient, ticket: str, code: str) -> Any:
    return client.post("/api/complaints/status", json={"ticket": ticket, "code": code})


class TestApi:
    def test_the_right_code_answers_the_status(self, client: TestClient) -> None:
        ticket, code = _receipt(client)
        r = _api(client, ticket, code)
        assert r.status_code == 200, r.text
        assert r.json()["ticket"] == ticket and r.json()["status"] == "pending"

    def test_guessing_codes_is_refused_with_429(self, client: TestClient) -> None:
        ticket, code = _receipt(client)
        allowed = ratelimit.ADDRESS_TICKET_LOOKUP.max_events
        for _ in range(allowed):
            r = _api(client, ticket, "AAAAAAAA")
            assert r.status_code == 404 and r.json()["error"] == "ComplaintTicketNotFound"
        r = _api(client, ticket, "AAAAAAAA")
        assert r.status_code == 429 and r.json()["error"] == "TooManyAttempts"
        assert int(r.headers["Retry-After"]) >= 1
        assert r.json()["detail_zh"] == "尝试次数过多，请稍后再试"
        # Refused before the code is checked: the right code waits too.
        assert _api(client, ticket, code).status_code == 429

    def test_guessing_numbers_is_refused_too(self, client: TestClient) -> None:
        allowed = ratelimit.ADDRESS_TICKET_LOOKUP.max_events
        for n in range(allowed):
            assert _api(client, f"TS-2026-{n:06d}", "AAAAAAAA").status_code == 404
        assert _api(client, "TS-2026-999999", "AAAAAAAA").status_code == 429

    def test_successful_lookups_are_not_counted(self, client: TestClient) -> None:
        ticket, code = _receipt(client)
        for _ in range(ratelimit.ADDRESS_TICKET_LOOKUP.max_events * 2):
            assert _api(client, ticket, code).status_code == 200

    def test_empty_and_long_input_is_422_in_chinese(self, client: TestClient) -> None:
        r = _api(client, "", "x" * 41)
        assert r.status_code == 422
        assert "受理编号" in r.json()["detail_zh"] and "查询码" in r.json()["detail_zh"]


def test_the_page_says_so_in_chinese(client: TestClient) -> None:
    ticket, code = _receipt(client)

    def lookup(c: str) -> Any:
        page = client.get("/complaint/status", headers=HTML).text
        data = {"form_token": _token(page, "form_token"), "ticket": ticket, "code": c}
        return client.post("/complaint/status", data=data, headers=HTML)

    for _ in range(ratelimit.ADDRESS_TICKET_LOOKUP.max_events):
        assert lookup("AAAAAAAA").status_code == 404
    busy = lookup(code)
    assert busy.status_code == 429 and "Retry-After" in busy.headers
    assert "查询失败次数过多" in busy.text and "分钟后再试" in busy.text
    assert "已受理，正在核查" not in busy.text
    assert_chinese_only(busy.text)
