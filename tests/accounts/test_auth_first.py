"""Writes that need a logged-in caller answer a caller without credentials with 401
before looking at the body (issue 15, info): no field list (422) for the anonymous,
also for a body that is not JSON at all."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests import factories

JSON = {"Content-Type": "application/json"}
# (path, a valid-looking body for the path's role): merchant, staff and admin writes.
WRITES = [
    "/api/pledges",
    "/api/pledges/00000000000000000000000000000000/withdraw",
    "/api/credit-repairs",
    "/api/supervision/records",
    "/api/accounts",
    "/api/auth/password",
]


@pytest.mark.parametrize("path", WRITES)
@pytest.mark.parametrize("body", [b"{}", b"{not json", b""])
def test_anonymous_gets_401_before_422(client: TestClient, path: str, body: bytes) -> None:
    resp = client.post(path, content=body, headers=JSON)
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"] == "NotAuthenticated"
    assert resp.headers["WWW-Authenticate"] == "Bearer"


def test_bad_token_gets_401_before_422(client: TestClient) -> None:
    resp = client.post(
        "/api/pledges", content=b"{not json", headers={**JSON, "Authorization": "Bearer v1.x.y"}
    )
    assert resp.status_code == 401
    assert resp.json()["error"] == "InvalidToken"


def test_wrong_role_gets_403_before_422(client: TestClient, regulator: dict[str, str]) -> None:
    resp = client.post("/api/pledges", content=b"{}", headers={**JSON, **regulator})
    assert resp.status_code == 403
    assert resp.json()["error"] == "RoleNotPermitted"


def test_the_right_caller_still_gets_422(client: TestClient) -> None:
    _, headers = factories.merchant_with_login(client)
    resp = client.post("/api/pledges", content=b"{not json", headers={**JSON, **headers})
    assert resp.status_code == 422
    assert resp.json()["error"] == "ValidationFailed"
    resp = client.post("/api/pledges", content=b"{}", headers={**JSON, **headers})
    assert resp.status_code == 422
    assert "items" in resp.json()["detail"]


def test_public_writes_still_validate_for_the_anonymous(client: TestClient) -> None:
    for path in ("/api/merchants", "/api/complaints"):
        resp = client.post(path, content=b"{}", headers=JSON)
        assert resp.status_code == 422, path
        assert resp.json()["error"] == "ValidationFailed"
