"""Every error the API answers carries ``detail_zh``, in Chinese (backend/zherrors.py).

Walks every error class the service defines (each ``DomainError`` subclass, and the
HTTP exceptions the middleware raises) and the route-level error paths of the app
(unknown route, wrong method, unreadable or invalid body, too large, NUL, not logged in,
no permission), and asserts each answer's ``detail_zh`` is there and is Chinese.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.exceptions import HTTPException

import backend
from backend import zherrors
from backend.app import create_app
from backend.config import Settings
from backend.errors import DomainError
from backend.ops.limits import BodyReadTimeout, BodyTooLarge
from backend.ops.nul import NulCharacter
from tests import factories

CJK = re.compile(r"[\u4e00-\u9fff]")
# English a validation library or a service would put in front of a person.
ENGLISH = re.compile(r"[A-Za-z]{3,} [A-Za-z]{3,}")


def assert_chinese(text: Any, what: str) -> None:
    assert isinstance(text, str) and text, f"{what}: no detail_zh"
    assert CJK.search(text), f"{what}: detail_zh is not Chinese: {text!r}"
    assert not ENGLISH.search(text), f"{what}: English in detail_zh: {text!r}"


def _modules() -> None:
    for m in pkgutil.walk_packages(backend.__path__, "backend."):
        if not m.name.startswith("backend.migrations"):
            importlib.import_module(m.name)


def _subclasses(cls: type) -> Iterator[type]:
    sub: type
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


_modules()
DOMAIN_ERRORS = sorted(set(_subclasses(DomainError)), key=lambda c: c.__qualname__)
HTTP_ERRORS = sorted(
    {c for c in _subclasses(HTTPException) if c.__module__.startswith("backend.")},
    key=lambda c: c.__qualname__,
)


def _instance(cls: type[DomainError]) -> DomainError:
    """``cls`` made with a detail and whatever keyword its constructor requires."""
    kwargs: dict[str, Any] = {}
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name in ("self", "detail") or p.default is not inspect.Parameter.empty:
            continue
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        kwargs[name] = 3 if "retry" in name else "uscc"
    if cls.__module__.startswith("backend.disclosure."):
        # The pages' own errors are raised with their Chinese as the detail.
        return cls("请填写日期", **kwargs)
    return cls("the service's English", **kwargs)


def test_the_walk_finds_the_errors() -> None:
    names = {c.__name__ for c in DOMAIN_ERRORS}
    assert len(DOMAIN_ERRORS) > 100
    assert {"MerchantNotFound", "TooManyAttempts", "ComplaintTicketNotFound"} <= names
    assert set(HTTP_ERRORS) == {BodyTooLarge, BodyReadTimeout, NulCharacter}


@pytest.mark.parametrize("cls", DOMAIN_ERRORS, ids=lambda c: c.__name__)
def test_every_domain_error_has_chinese(cls: type[DomainError]) -> None:
    assert_chinese(zherrors.detail_zh(_instance(cls)), cls.__name__)


@pytest.mark.parametrize(
    "exc",
    [BodyTooLarge(1024 * 1024), BodyTooLarge(50 * 1024 * 1024, declared=60_000_000),
     BodyReadTimeout(30.0, 12), NulCharacter("path"), NulCharacter("JSON body"),
     NulCharacter("form field name or file name")],
    ids=repr,
)
def test_middleware_errors_carry_their_chinese(exc: HTTPException) -> None:
    assert_chinese(getattr(exc, "detail_zh", None), type(exc).__name__)


def _json(r: Any) -> dict[str, Any]:
    body = r.json()
    assert set(body) >= {"error", "detail", "detail_zh"}, body
    return body  # type: ignore[no-any-return]


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"anchor_enabled": False}))) as c:
        yield c


def test_route_level_errors(client: TestClient) -> None:
    staff = factories.create_staff(client, username="reg.zh", role="regulator")
    _, merchant = factories.merchant_with_login(client)
    big = b"{" + b" " * (1024 * 1024 + 10) + b"}"
    answers = {
        "unknown route": client.get("/api/no-such-thing"),
        "wrong method": client.delete("/api/merchants"),
        "unreadable JSON": client.post(
            "/api/complaints", content=b"{not json", headers={"Content-Type": "application/json"}
        ),
        "invalid body": client.post("/api/complaints", json={"uscc": 5, "content": ""}),
        "extra field": client.post("/api/complaints", json={"uscc": "x", "content": "y", "z": 1}),
        "bad query": client.get("/api/merchants", params={"limit": "many"}),
        "too large": client.post(
            "/api/complaints", content=big, headers={"Content-Type": "application/json"}
        ),
        "NUL in path": client.get("/api/pledges/a%00b"),
        "NUL in query": client.get("/api/merchants", params={"q": "a\x00"}),
        "NUL in body": client.post(
            "/api/complaints", content=json.dumps({"uscc": "x", "content": "a\x00"}),
            headers={"Content-Type": "application/json"},
        ),
        "not logged in": client.get("/api/complaints"),
        "bad token": client.get("/api/complaints", headers={"Authorization": "Bearer x.y.z"}),
        "no permission": client.get("/api/complaints", headers=merchant),
        "not found": client.get(f"/api/merchants/{factories.make_uscc(n=987_654)}"),
        "domain rule": client.post(
            "/api/supervision/records", json={"kind": "nothing"}, headers=staff
        ),
    }
    for what, r in answers.items():
        assert r.status_code >= 400, (what, r.status_code, r.text)
        assert_chinese(_json(r)["detail_zh"], what)
