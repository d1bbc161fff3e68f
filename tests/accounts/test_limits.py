"""Login, password-change and registration limits: atomic under concurrent bursts on
SQLite and PostgreSQL (issue 15 M1), no lock-out of the owner by other addresses (M2),
and no unlimited guessing of the current password (L6)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
from fastapi.testclient import TestClient

from backend.accounts import ratelimit
from backend.accounts import service as accounts
from backend.accounts.ratelimit import (
    ACCOUNT_ADDRESS_LOGIN,
    ACCOUNT_LOGIN,
    ADDRESS_REGISTRATION,
    TooManyAttempts,
)
from backend.context import AppContext
from backend.merchants import service as merchants
from backend.merchants.models import MerchantCreate
from tests import factories

BURST = 40


def burst(n: int, attempt: Callable[[int], str]) -> list[str]:
    """``attempt(i)`` for i in 0..n-1, each in its own thread, released together."""
    barrier = threading.Barrier(n)
    results: list[str] = [""] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = attempt(i)
        except Exception as exc:  # noqa: BLE001 - reported in the assertion below
            results[i] = f"unexpected {type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def ctx_of(client: TestClient) -> AppContext:
    return client.app.state.ctx  # type: ignore[attr-defined,no-any-return]


def from_address(client: TestClient, address: str) -> TestClient:
    """A client of the same app whose requests come from ``address``."""
    return TestClient(client.app, client=(address, 40000))


def login(client: TestClient, username: str, password: str) -> httpx.Response:
    return client.post("/api/auth/token", data={"username": username, "password": password})


class TestConcurrentBursts:
    """Many workers or hosts at once: each attempt takes its slot in one statement."""

    def test_login_checks_five_of_a_burst_of_wrong_passwords(
        self, any_db_client: TestClient
    ) -> None:
        m = factories.register(any_db_client)
        ctx = ctx_of(any_db_client)

        def attempt(i: int) -> str:
            with ctx.db.session() as s:
                try:
                    accounts.authenticate(
                        s,
                        settings=ctx.settings,
                        username=m["uscc"],
                        password=f"wrong password {i}",
                        address="198.51.100.7",
                    )
                except (accounts.InvalidCredentials, TooManyAttempts) as exc:
                    return type(exc).__name__
            return "logged in"

        results = burst(BURST, attempt)
        assert results.count("InvalidCredentials") == ACCOUNT_ADDRESS_LOGIN.max_events, results
        assert results.count("TooManyAttempts") == BURST - ACCOUNT_ADDRESS_LOGIN.max_events

    def test_login_burst_over_http(self, any_db_client: TestClient) -> None:
        m = factories.register(any_db_client)
        responses = burst(
            BURST,
            lambda i: _status(login(any_db_client, m["uscc"], f"wrong password {i}")),
        )
        assert responses.count("401 InvalidCredentials") == ACCOUNT_ADDRESS_LOGIN.max_events
        assert responses.count("429 TooManyAttempts") == BURST - ACCOUNT_ADDRESS_LOGIN.max_events

    def test_registration_accepts_the_limit_of_a_burst(self, any_db_client: TestClient) -> None:
        ctx = ctx_of(any_db_client)

        def attempt(i: int) -> str:
            data = MerchantCreate(**factories.merchant_body())
            with ctx.db.session() as s:
                try:
                    merchants.register_merchant(
                        s, settings=ctx.settings, data=data, principal=None, address="203.0.113.9"
                    )
                except TooManyAttempts:
                    return "TooManyAttempts"
            return "registered"

        results = burst(BURST, attempt)
        assert results.count("registered") == ADDRESS_REGISTRATION.max_events, results
        assert results.count("TooManyAttempts") == BURST - ADDRESS_REGISTRATION.max_events


def _status(resp: httpx.Response) -> str:
    return f"{resp.status_code} {resp.json().get('error', '')}".strip()


class TestNoLockOutByOthers:
    """A limit per (account, address), a wider one per address, and a slower back-off
    per account: the owner's correct password from a fresh address still gets in."""

    def test_failures_from_other_addresses_do_not_lock_the_owner_out(
        self, client: TestClient
    ) -> None:
        m = factories.register(client)
        for i in range(5):  # five addresses, one wrong password each (issue 15 M2)
            resp = login(from_address(client, f"192.0.2.{i + 1}"), m["uscc"], "wrong password")
            assert _status(resp) == "401 InvalidCredentials"
        attacker = from_address(client, "192.0.2.99")
        for _ in range(ACCOUNT_ADDRESS_LOGIN.max_events):
            assert _status(login(attacker, m["uscc"], "wrong password")) == "401 InvalidCredentials"
        # The attacker's address is locked for this account, even with the right password...
        resp = login(attacker, m["uscc"], factories.PASSWORD)
        assert _status(resp) == "429 TooManyAttempts"
        assert "from this address" in resp.json()["detail"]
        # ...and the owner, from anywhere else, is not.
        owner = from_address(client, "198.51.100.20")
        assert login(owner, m["uscc"], factories.PASSWORD).status_code == 200

    def test_many_addresses_put_the_account_in_back_off(self, client: TestClient) -> None:
        m = factories.register(client)
        for i in range(ACCOUNT_LOGIN.max_events):
            resp = login(from_address(client, f"192.0.2.{i + 1}"), m["uscc"], "wrong password")
            assert _status(resp) == "401 InvalidCredentials"
        # Back-off: a fresh address gets one try, and one failure spends its allowance.
        guesser = from_address(client, "203.0.113.50")
        assert _status(login(guesser, m["uscc"], "wrong password")) == "401 InvalidCredentials"
        resp = login(guesser, m["uscc"], factories.PASSWORD)
        assert _status(resp) == "429 TooManyAttempts"
        assert "many addresses" in resp.json()["detail"]
        assert 0 < int(resp.headers["Retry-After"]) <= ACCOUNT_ADDRESS_LOGIN.window_s
        # The owner's correct password from an address with no failures gets in.
        owner = from_address(client, "198.51.100.20")
        assert login(owner, m["uscc"], factories.PASSWORD).status_code == 200
        # A success gives back only its own slot: the account stays in back-off.
        again = from_address(client, "203.0.113.51")
        assert _status(login(again, m["uscc"], "wrong password")) == "401 InvalidCredentials"
        assert _status(login(again, m["uscc"], "wrong password")) == "429 TooManyAttempts"

    def test_owner_typos_are_forgiven_by_a_success(self, client: TestClient) -> None:
        m = factories.register(client)
        for _ in range(2):
            for _ in range(ACCOUNT_ADDRESS_LOGIN.max_events - 1):
                assert login(client, m["uscc"], "wrong password").status_code == 401
            assert login(client, m["uscc"], factories.PASSWORD).status_code == 200


class TestPasswordChangeLimit:
    """L6: checking the current password is a login attempt, limited like one."""

    def test_guessing_the_current_password_is_limited(self, client: TestClient) -> None:
        _, headers = factories.merchant_with_login(client)
        for i in range(ACCOUNT_ADDRESS_LOGIN.max_events):
            resp = client.post(
                "/api/auth/password",
                json={"current_password": f"guess {i}!!", "new_password": "a brand new secret"},
                headers=headers,
            )
            assert _status(resp) == "401 InvalidCredentials"
        resp = client.post(
            "/api/auth/password",
            json={"current_password": factories.PASSWORD, "new_password": "a brand new secret"},
            headers=headers,
        )
        assert _status(resp) == "429 TooManyAttempts"
        assert 0 < int(resp.headers["Retry-After"]) <= ACCOUNT_ADDRESS_LOGIN.window_s
        # The password did not change: the old token still works.
        assert client.get("/api/auth/me", headers=headers).status_code == 200

    def test_the_right_current_password_gives_its_slot_back(self, client: TestClient) -> None:
        m, headers = factories.merchant_with_login(client)
        for _ in range(ACCOUNT_ADDRESS_LOGIN.max_events - 1):
            assert login(client, m["uscc"], "wrong password").status_code == 401
        resp = client.post(
            "/api/auth/password",
            json={"current_password": factories.PASSWORD, "new_password": "a brand new secret"},
            headers=headers,
        )
        assert resp.status_code == 200, resp.text
        assert login(client, m["uscc"], "a brand new secret").status_code == 200


class TestBucket:
    """The GCRA bucket itself, on the database the app runs on."""

    def test_burst_then_one_per_interval(self, any_db_client: TestClient) -> None:
        from datetime import UTC, datetime, timedelta

        limit = ratelimit.Limit(max_events=3, window_s=60)
        t0 = datetime(2030, 1, 1, tzinfo=UTC)
        with ctx_of(any_db_client).db.session() as s:

            def take(at: datetime, events: int = 1) -> bool:
                return ratelimit.try_take(s, key="test:k", limit=limit, now=at, events=events)

            assert [take(t0) for _ in range(4)] == [True, True, True, False]
            retry = ratelimit.retry_after_s(s, key="test:k", limit=limit, now=t0)
            assert retry == 20
            assert not take(t0 + timedelta(seconds=19))
            assert take(t0 + timedelta(seconds=20))
            # A full bucket's worth fits only once the bucket has drained.
            assert not take(t0 + timedelta(seconds=60), events=3)
            assert take(t0 + timedelta(seconds=80), events=3)
            ratelimit.give_back(s, key="test:k", limit=limit, events=3)
            assert take(t0 + timedelta(seconds=80), events=3)
            s.commit()
