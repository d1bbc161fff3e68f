"""NUL characters are refused in one place (backend/ops/nul.py) with 422 NulCharacter,
on PostgreSQL (whose text cannot hold U+0000: these were 500s) and on SQLite alike."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.ops.nul import _Scanner
from tests import factories
from tests.conftest import make_settings


@pytest.fixture(
    scope="module", params=[pytest.param("postgresql", marks=pytest.mark.postgres), "sqlite"]
)
def app_client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    over: dict[str, Any] = {"anchor_enabled": False}
    if request.param == "postgresql":
        # The module-scoped twin of tests/conftest.py's postgres_url fixture.
        from tests.conftest import POSTGRES_URL, _postgres_reachable, require

        require(_postgres_reachable(), f"PostgreSQL not reachable at {POSTGRES_URL}")
        import uuid

        import psycopg

        name = f"hm_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        over["database_url"] = f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    app = create_app(make_settings(tmp_path_factory.mktemp("nul") / "data", **over))
    try:
        with TestClient(app, raise_server_exceptions=False) as c:
            yield c
    finally:
        if request.param == "postgresql":
            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (name,),
                )
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture(scope="module")
def regulator(app_client: TestClient) -> dict[str, str]:
    return factories.create_staff(app_client, username="reg-nul", role="regulator")


def refused(resp: Any, where: str) -> None:
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"] == "NulCharacter"
    assert where in resp.json()["detail"]
    # Every API error carries its Chinese, naming where the NUL was (this path and query
    # refusal answered before the app's handlers and had none).
    assert "含有空字符" in resp.json()["detail_zh"], resp.json()


# The red team's eight: three anonymous, five for staff.
@pytest.mark.parametrize(
    "path",
    ["/api/pledges/%00", "/api/pledges/a%00b"],
)
def test_anonymous_path(app_client: TestClient, path: str) -> None:
    refused(app_client.get(path), "path")


@pytest.mark.parametrize(
    "path",
    [
        "/api/supervision/records/x%00y",
        "/api/complaints/x%00y",
        "/api/credit-repairs/x%00y",
        "/api/inspectors/x%00y/conflicts",
    ],
)
def test_staff_paths(app_client: TestClient, regulator: dict[str, str], path: str) -> None:
    refused(app_client.get(path, headers=regulator), "path")


def test_query_string(app_client: TestClient, regulator: dict[str, str]) -> None:
    refused(app_client.get("/api/merchants", params={"q": "好\x00"}), "query string")
    refused(app_client.get("/api/complaints?uscc=%00", headers=regulator), "query string")


@pytest.mark.parametrize("url", ["/api/auth/token", "/auth/login"])
def test_login_forms(app_client: TestClient, url: str) -> None:
    form = {"username": "admin\x00", "password": "x"}
    refused(app_client.post(url, data=form, headers={"Accept": "application/json"}), "form")
    # The same as multipart: the field is checked, not a file's bytes.
    resp = app_client.post(url, data=form, files={"evidence": ("e.bin", b"\x00\x01")},
                           headers={"Accept": "application/json"})
    refused(resp, "form field")
    resp = app_client.post(url, data={"username": "nobody", "password": "wrong"},
                           files={"evidence": ("e.bin", b"%PDF\x00\x00\xff")},
                           headers={"Accept": "application/json"})
    assert resp.status_code in (200, 303, 401), resp.text  # a file may hold NUL bytes


def test_a_browser_gets_a_page(app_client: TestClient) -> None:
    resp = app_client.post("/auth/login", data={"username": "admin\x00", "password": "x"},
                           headers={"Accept": "text/html"})
    assert resp.status_code == 422 and "text/html" in resp.headers["content-type"]
    assert "NulCharacter" in resp.text


def test_json_bodies(app_client: TestClient, regulator: dict[str, str]) -> None:
    body = {"kind": "revocation", "uscc": "91511902MA62Q3T556", "revokes": "ab" * 32,
            "reason": "撤销\u0000"}
    resp = app_client.post("/api/supervision/records", content=json.dumps(body),
                           headers={**regulator, "Content-Type": "application/json"})
    refused(resp, "JSON body")
    # An escaped backslash before u0000 is the text "\u0000", not a NUL.
    body["reason"] = "撤销\\u0000"
    resp = app_client.post("/api/supervision/records", content=json.dumps(body),
                           headers={**regulator, "Content-Type": "application/json"})
    assert resp.json()["error"] != "NulCharacter"


@pytest.mark.parametrize(
    ("media", "body", "nul"),
    [
        ("application/json", json.dumps({"a": "x\x00y"}).encode(), True),
        ("application/json", json.dumps({"a": "x\\u0000y"}).encode(), False),
        ("application/json", json.dumps({"a": "x\\\x00y"}).encode(), True),
        ("application/json", b'{"a": "\\\\\\\\u0000"}', False),
        ("application/json", b'{"a": "\\\\\\\\\\u0000"}', True),
        ("application/x-www-form-urlencoded", b"username=ad%00min&password=x", True),
        ("application/x-www-form-urlencoded", b"username=ad%200min&password=x", False),
        ("text/csv", b"kind,uscc\nspot_check,9\x001\n", True),
    ],
)
def test_scanner_across_every_chunk_boundary(media: str, body: bytes, nul: bool) -> None:
    for cut in range(len(body) + 1):
        for cut2 in range(cut, len(body) + 1):
            scanner = _Scanner(media, {})
            found = None
            for chunk in (body[:cut], body[cut:cut2], body[cut2:]):
                found = scanner.feed(chunk) or found
            assert (found is not None) == nul, (cut, cut2)
