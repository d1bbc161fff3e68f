"""The access matrix: every write endpoint × anonymous, the merchant itself,
another merchant, a regulator and an admin — status code and error name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests import factories

ROLES = ("anonymous", "merchant", "other_merchant", "regulator", "admin")


@dataclass
class World:
    client: TestClient
    target: dict[str, Any]  # the merchant acted on
    headers: dict[str, dict[str, str]]
    pledge_id: str


@pytest.fixture
def world(client: TestClient, regulator: dict[str, str], admin: dict[str, str]) -> World:
    target, own = factories.merchant_with_login(client)
    _, other = factories.merchant_with_login(client)
    # Verified with an active pledge, so that a demonstration award can succeed.
    client.post(f"/api/merchants/{target['uscc']}/verification", headers=regulator)
    pledge = factories.make_pledge(client, headers=own)
    return World(
        client=client,
        target=target,
        headers={
            "anonymous": {},
            "merchant": own,
            "other_merchant": other,
            "regulator": regulator,
            "admin": admin,
        },
        pledge_id=pledge["pledge_id"],
    )


Call = Callable[[World, dict[str, str]], httpx.Response]


def register(w: World, h: dict[str, str]) -> httpx.Response:
    return w.client.post("/api/merchants", json=factories.merchant_body(), headers=h)


def verify(w: World, h: dict[str, str]) -> httpx.Response:
    # A fresh, unverified merchant each time.
    fresh = factories.register(w.client, headers=w.headers["regulator"])
    return w.client.post(f"/api/merchants/{fresh['uscc']}/verification", headers=h)


def bind_wallet(w: World, h: dict[str, str]) -> httpx.Response:
    return w.client.put(
        f"/api/merchants/{w.target['uscc']}/wallet", json={"address": "0x" + "ab" * 20}, headers=h
    )


def pledge(w: World, h: dict[str, str]) -> httpx.Response:
    return w.client.post(
        "/api/pledges", json=factories.pledge_body(uscc=w.target["uscc"]), headers=h
    )


def withdraw(w: World, h: dict[str, str]) -> httpx.Response:
    return w.client.post(f"/api/pledges/{w.pledge_id}/withdraw", json={"reason": "测试"}, headers=h)


def demonstration(w: World, h: dict[str, str]) -> httpx.Response:
    return w.client.post(
        f"/api/merchants/{w.target['uscc']}/demonstration", json={"action": "award"}, headers=h
    )


def create_account(w: World, h: dict[str, str]) -> httpx.Response:
    return w.client.post(
        "/api/accounts",
        json={"username": "new.staff", "password": "long enough pw", "role": "regulator"},
        headers=h,
    )


def change_password(w: World, h: dict[str, str]) -> httpx.Response:
    return w.client.post(
        "/api/auth/password",
        json={"current_password": "not it at all", "new_password": "whatever pw 2"},
        headers=h,
    )


OK = "ok"
# (status, error name) per role; OK means the write succeeded with `ok_status`.
MATRIX: dict[str, tuple[Call, int, dict[str, tuple[int, str] | str]]] = {
    "POST /api/merchants": (
        register,
        201,
        {
            "anonymous": OK,
            "merchant": (403, "NotOwnMerchant"),
            "other_merchant": (403, "NotOwnMerchant"),
            "regulator": OK,  # assisted registration at the service counter
            "admin": (403, "RoleNotPermitted"),
        },
    ),
    "POST /api/merchants/{uscc}/verification": (
        verify,
        201,
        {
            "anonymous": (401, "NotAuthenticated"),
            "merchant": (403, "RoleNotPermitted"),
            "other_merchant": (403, "RoleNotPermitted"),
            "regulator": OK,
            "admin": (403, "RoleNotPermitted"),
        },
    ),
    "PUT /api/merchants/{uscc}/wallet": (
        bind_wallet,
        200,
        {
            "anonymous": (401, "NotAuthenticated"),
            "merchant": OK,
            "other_merchant": (403, "NotOwnMerchant"),
            "regulator": (403, "RoleNotPermitted"),
            "admin": (403, "RoleNotPermitted"),
        },
    ),
    "POST /api/pledges": (
        pledge,
        201,
        {
            "anonymous": (401, "NotAuthenticated"),
            "merchant": OK,
            "other_merchant": (403, "NotOwnMerchant"),
            "regulator": (403, "RoleNotPermitted"),
            "admin": (403, "RoleNotPermitted"),
        },
    ),
    "POST /api/pledges/{id}/withdraw": (
        withdraw,
        200,
        {
            "anonymous": (401, "NotAuthenticated"),
            "merchant": OK,
            "other_merchant": (403, "NotOwnMerchant"),
            "regulator": (403, "RoleNotPermitted"),
            "admin": (403, "RoleNotPermitted"),
        },
    ),
    "POST /api/merchants/{uscc}/demonstration": (
        demonstration,
        201,
        {
            "anonymous": (401, "NotAuthenticated"),
            "merchant": (403, "RoleNotPermitted"),
            "other_merchant": (403, "RoleNotPermitted"),
            "regulator": OK,
            "admin": (403, "RoleNotPermitted"),
        },
    ),
    "POST /api/accounts": (
        create_account,
        201,
        {
            "anonymous": (401, "NotAuthenticated"),
            "merchant": (403, "RoleNotPermitted"),
            "other_merchant": (403, "RoleNotPermitted"),
            "regulator": (403, "RoleNotPermitted"),
            "admin": OK,
        },
    ),
    "POST /api/auth/password": (
        change_password,
        200,
        {
            "anonymous": (401, "NotAuthenticated"),
            # Everyone may change their own password; a wrong current one is refused.
            "merchant": (401, "InvalidCredentials"),
            "other_merchant": (401, "InvalidCredentials"),
            "regulator": (401, "InvalidCredentials"),
            "admin": (401, "InvalidCredentials"),
        },
    ),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", list(MATRIX))
def test_access(world: World, endpoint: str, role: str) -> None:
    call, ok_status, expected = MATRIX[endpoint]
    resp = call(world, world.headers[role])
    want = expected[role]
    if want == OK:
        assert resp.status_code == ok_status, resp.text
        assert "record_id" in resp.json() or endpoint in {
            "PUT /api/merchants/{uscc}/wallet",
            "POST /api/accounts",
        }
    else:
        status, error = want
        assert (resp.status_code, resp.json()["error"]) == (status, error), resp.text


def test_public_writes_nothing_but_a_registration(client: TestClient) -> None:
    """Every other write route of the registry, accounts and pledges refuses the
    public and appends nothing (other domains test their own, e.g. public complaints)."""
    from backend.ledger import log

    allowed = {("POST", "/api/merchants"), ("POST", "/api/auth/token"), ("POST", "/auth/login")}
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.read() as s:
        before = log.tree_size(s)
    checked = []
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    for path, operations in paths.items():
        for method in {m.upper() for m in operations} & {"POST", "PUT", "PATCH", "DELETE"}:
            mine = ("/api/merchants", "/api/pledges", "/api/accounts", "/api/auth/", "/auth/")
            if (method, path) in allowed or not path.startswith(mine):
                continue
            url = path.replace("{uscc}", "91511902MA62Q3T556").replace("{pledge_id}", "x")
            for body in ({}, {"reason": "x", "action": "award", "address": "0x" + "ab" * 20}):
                resp = client.request(method, url, json=body)
                # 422 when the body is checked before the caller: refused either way.
                assert resp.status_code in (401, 422), (method, path, resp.status_code)
            checked.append((method, path))
    with ctx.db.read() as s:
        assert log.tree_size(s) == before
    assert len(checked) >= 7, checked
