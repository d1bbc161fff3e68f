"""The shop page answers from its version stamp (backend/credit/stamps.py): ETag and
304 for anonymous visitors, a public Cache-Control a CDN may honour, a new ETag after
a new record, and a new tier on the day it changes without any write."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient

from backend.disclosure import router as pages
from backend.disclosure.web import PUBLIC_PAGE_CACHE
from tests import factories

HTML = {"Accept": "text/html,application/xhtml+xml"}


def _page(client: TestClient, uscc: str, **headers: str):  # type: ignore[no-untyped-def]
    return client.get(f"/merchants/{uscc}", headers={**HTML, **headers})


def test_unchanged_page_is_304(client: TestClient) -> None:
    uscc = factories.register(client)["uscc"]
    first = _page(client, uscc)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == PUBLIC_PAGE_CACHE
    again = _page(client, uscc, **{"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    # Served as kept: the same bytes, gzip-compressed for clients that take it.
    assert _page(client, uscc).content == first.content
    zipped = client.get(f"/merchants/{uscc}", headers={**HTML, "Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == first.content  # (decompressed by the client)
    assert _page(client, uscc, **{"If-None-Match": '"other"'}).status_code == 200


def test_a_new_record_about_the_merchant_changes_the_etag(
    client: TestClient, regulator: dict[str, str]
) -> None:
    uscc = factories.register(client)["uscc"]
    before = _page(client, uscc)
    assert "未核验" in before.text
    resp = client.post(f"/api/merchants/{uscc}/verification", headers=regulator)
    assert resp.status_code == 201, resp.text
    after = _page(client, uscc, **{"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200
    assert after.headers["etag"] != before.headers["etag"]
    assert "已核验" in after.text


def test_signed_in_pages_are_private(client: TestClient) -> None:
    m, _ = factories.merchant_with_login(client)
    r = client.post("/auth/login", data={"username": m["uscc"], "password": factories.PASSWORD},
                    follow_redirects=False)
    assert r.status_code == 303
    page = _page(client, m["uscc"])
    assert page.status_code == 200
    assert "etag" not in page.headers
    assert page.headers["cache-control"] == "private, no-cache"
    assert "退出" in page.text


def test_unknown_merchant_is_still_404(client: TestClient) -> None:
    assert _page(client, "91511902MA62Q3T556").status_code == 404


def test_the_tier_changes_on_its_day_without_a_write(
    client: TestClient, regulator: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An award and a pledge lift the tier to A while they last; the page seen after
    they end (past the rating's ``next_change_on``) shows B, with no record written and
    no sweep run."""
    star, headers = factories.merchant_with_login(client)
    client.post(f"/api/merchants/{star['uscc']}/verification", headers=regulator)
    factories.make_pledge(client, headers=headers)
    resp = client.post(f"/api/merchants/{star['uscc']}/demonstration",
                       json={"action": "award"}, headers=regulator)
    assert resp.status_code == 201, resp.text
    now = _page(client, star["uscc"])
    assert "A 级 · 守信" in now.text
    credit = client.get(f"/api/merchants/{star['uscc']}/credit").json()
    change = date.fromisoformat(credit["next_change_on"])
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.read() as s:
        leaves = s.connection().exec_driver_sql("SELECT count(*) FROM log_leaf").scalar()
    award_ends = date.fromisoformat(resp.json()["valid_until"])
    assert change <= award_ends
    monkeypatch.setattr(pages, "today_shanghai", lambda: award_ends + timedelta(days=1))
    later = _page(client, star["uscc"], **{"If-None-Match": now.headers["etag"]})
    assert later.status_code == 200
    assert later.headers["etag"] != now.headers["etag"]
    assert "A 级 · 守信" not in later.text
    assert "B 级 · 基本守信" in later.text
    with ctx.db.read() as s:
        assert s.connection().exec_driver_sql("SELECT count(*) FROM log_leaf").scalar() == leaves


def test_a_new_trust_root_changes_the_etag(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kept page names the trust root the browser verifier pins: a new trust root
    version (a key rotation, a new contract) must not leave pages pinning the old one."""
    from types import SimpleNamespace

    from backend.ledger import trustroot_store

    uscc = factories.register(client)["uscc"]
    before = _page(client, uscc)
    ledger = SimpleNamespace(chain_id=31337, contract_address="0x" + "cd" * 20)
    root = SimpleNamespace(fingerprint="f" * 64, body=SimpleNamespace(ledger=ledger))
    monkeypatch.setattr(trustroot_store, "for_pages", lambda ctx: root)
    client.app.state.ctx.local("pinned_for_pages", dict).clear()  # type: ignore[attr-defined]
    after = _page(client, uscc, **{"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200
    assert after.headers["etag"] != before.headers["etag"]
    assert 'data-trust-root="' + "f" * 64 + '"' in after.text
