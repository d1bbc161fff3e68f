"""Factories for API tests: valid made-up credit codes, request bodies, and
accounts. Keyword-only arguments everywhere, so a test says what it varies."""

from __future__ import annotations

import itertools
from typing import Any

from fastapi.testclient import TestClient

from backend.accounts import service as accounts
from backend.pledges.templates import current_template
from backend.uscc import ALPHABET, compute_check_chars

PASSWORD = "correct horse battery"
STAFF_PASSWORD = "staff password 2025"
_counter = itertools.count(1)


def make_uscc(*, n: int | None = None, entity: str = "1", region: str = "511902") -> str:
    """A made-up credit code that passes both checks; distinct for distinct ``n``."""
    n = next(_counter) if n is None else n
    body = "MA6"
    digits = []
    for _ in range(5):
        n, r = divmod(n, len(ALPHABET))
        digits.append(ALPHABET[r])
    prefix = "9" + entity + region + body + "".join(reversed(digits))
    return prefix + compute_check_chars(prefix)


def merchant_body(
    *,
    uscc: str | None = None,
    name: str = "巴中市巴州区测试超市",
    sector: str = "retail",
    region_code: str = "511902",
    sub_area: str | None = None,
    address: str = "巴中市巴州区江北大道1号",
    contact_person: str = "张三",
    contact_phone: str = "13800001234",
    password: str = PASSWORD,
    wallet_address: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "uscc": uscc or make_uscc(),
        "name": name,
        "sector": sector,
        "region_code": region_code,
        "address": address,
        "contact_person": contact_person,
        "contact_phone": contact_phone,
        "password": password,
    }
    if sub_area is not None:
        body["sub_area"] = sub_area
    if wallet_address is not None:
        body["wallet_address"] = wallet_address
    return body


def register(
    client: TestClient, *, headers: dict[str, str] | None = None, **fields: Any
) -> dict[str, Any]:
    """Register a merchant through the API; returns the response JSON."""
    resp = client.post("/api/merchants", json=merchant_body(**fields), headers=headers or {})
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


def verify(client: TestClient, uscc: str) -> None:
    """Verify a registration as a regulator does (a tier and a sign are shown only then;
    issue 15 M5), with a regulator account made for it on first use."""
    state = client.app.state  # type: ignore[attr-defined]
    headers = getattr(state, "test_verifier", None)
    if headers is None:
        headers = state.test_verifier = create_staff(client, username="verifier", role="regulator")
    resp = client.post(f"/api/merchants/{uscc}/verification", headers=headers)
    assert resp.status_code == 201, resp.text


def register_verified(client: TestClient, **fields: Any) -> dict[str, Any]:
    """:func:`register`, then :func:`verify`."""
    merchant = register(client, **fields)
    verify(client, merchant["uscc"])
    return merchant


def token(client: TestClient, *, username: str, password: str = PASSWORD) -> str:
    resp = client.post("/api/auth/token", data={"username": username, "password": password})
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]  # type: ignore[no-any-return]


def bearer(client: TestClient, *, username: str, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(client, username=username, password=password)}"}


def create_staff(
    client: TestClient, *, username: str, role: str, password: str = STAFF_PASSWORD
) -> dict[str, str]:
    """Create a staff account directly (as ``create-user`` does); returns bearer headers."""
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.session() as s:
        accounts.create_staff_account(
            s, settings=ctx.settings, username=username, password=password, role=role
        )
    return bearer(client, username=username, password=password)


def merchant_with_login(client: TestClient, **fields: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """A registered merchant and its bearer headers."""
    merchant = register(client, **fields)
    password = fields.get("password", PASSWORD)
    return merchant, bearer(client, username=merchant["uscc"], password=password)


def pledge_body(
    *,
    sector: str = "retail",
    template_version: int | None = None,
    items: list[str] | None = None,
    extra_commitments: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    template = current_template(sector)
    body: dict[str, Any] = {
        "template_version": template_version or template.version,
        "items": list(template.required_codes) if items is None else items,
    }
    if extra_commitments is not None:
        body["extra_commitments"] = extra_commitments
    body.update(extra)
    return body


def make_pledge(
    client: TestClient,
    *,
    headers: dict[str, str],
    sector: str = "retail",
    **fields: Any,
) -> dict[str, Any]:
    resp = client.post("/api/pledges", json=pledge_body(sector=sector, **fields), headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]
