"""The cached merchant lookup (backend/shops/views.py) is never stale: after every
kind of write that changes a merchant's public view, GET /api/merchants/{uscc}
equals the view built afresh from the database; ETag and 304."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from backend.ledger.anchoring import Anchorer
from backend.shops import service, views
from backend.shops.models import MerchantView
from backend.timeutil import today_shanghai
from tests import factories

WALLET_A = "0x" + "a1" * 20
WALLET_B = "0x" + "b2" * 20


def fresh(client: TestClient, uscc: str) -> dict[str, Any]:
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.read() as s:
        view = service.get_public(s, settings=ctx.settings, uscc=uscc, today=today_shanghai())
    return view.model_dump(mode="json")


def looked_up(client: TestClient, uscc: str) -> dict[str, Any]:
    resp = client.get(f"/api/merchants/{uscc}")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    return resp.json()  # type: ignore[no-any-return]


def test_every_write_shows_at_once(client: TestClient, regulator: dict[str, str]) -> None:
    m, headers = factories.merchant_with_login(client)
    uscc = m["uscc"]
    other = factories.register(client, name="隔壁的店")["uscc"]
    looked_up(client, other)
    ok = (200, 201)

    steps = [
        ("registered", lambda: None),
        ("verified", lambda: client.post(f"/api/merchants/{uscc}/verification",
                                         headers=regulator)),
        ("wallet bound", lambda: client.put(f"/api/merchants/{uscc}/wallet",
                                            json={"address": WALLET_A}, headers=headers)),
        ("wallet changed", lambda: client.put(f"/api/merchants/{uscc}/wallet",
                                              json={"address": WALLET_B}, headers=headers)),
        ("pledged", lambda: client.post("/api/pledges", json=factories.pledge_body(),
                                        headers=headers)),
        ("anchored", lambda: Anchorer(client.app.state.ctx).run_once(  # type: ignore[attr-defined]
            force=True)),
        ("awarded", lambda: client.post(f"/api/merchants/{uscc}/demonstration",
                                        json={"action": "award"}, headers=regulator)),
        ("award withdrawn", lambda: client.post(
            f"/api/merchants/{uscc}/demonstration",
            json={"action": "withdraw", "reason": "复查不合格"}, headers=regulator)),
        ("pledge withdrawn", lambda: client.post(
            f"/api/pledges/{looked_up(client, uscc)['current_pledge']['pledge_id']}/withdraw",
            json={"reason": "停业"}, headers=headers)),
        ("pledged again", lambda: client.post("/api/pledges", json=factories.pledge_body(),
                                              headers=headers)),
    ]
    before = looked_up(client, uscc)
    for what, write in steps:
        resp = write()
        if resp is not None and hasattr(resp, "status_code"):
            assert resp.status_code in ok, (what, resp.text)
        shown = looked_up(client, uscc)
        assert shown == fresh(client, uscc), what
        if what != "registered":
            assert shown != before, f"{what}: the lookup did not change"
        before = shown
    assert before["registration_record"]["anchor_status"]["status"] == "anchored"
    assert before["verification"]["record"]["anchor_status"]["status"] == "anchored"
    assert looked_up(client, other) == fresh(client, other)


def kept(client: TestClient, uscc: str) -> MerchantView | None:
    with client.app.state.ctx.db.read() as s:  # type: ignore[attr-defined]
        row = s.get(MerchantView, uscc)
        if row is not None:
            s.expunge(row)  # keep its values after the read session ends
        return row


def test_a_view_holds_until_its_pledge_expires(client: TestClient) -> None:
    m, headers = factories.merchant_with_login(client)
    pledge = factories.make_pledge(client, headers=headers)
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    today = today_shanghai()
    now = views.lookup(ctx.db, ctx.settings, m["uscc"], today=today)
    row = kept(client, m["uscc"])
    assert row is not None and row.valid_until.isoformat() == pledge["valid_until"]
    assert views.lookup(ctx.db, ctx.settings, m["uscc"], today=today) == now
    # The day the pledge expires, the view is rebuilt without it.
    expiry = row.valid_until
    later = views.lookup(ctx.db, ctx.settings, m["uscc"], today=expiry)
    assert b'"current_pledge":null' in later.body and b'"current_pledge":null' not in now.body
    row = kept(client, m["uscc"])
    assert row is not None and row.built_on == expiry and row.valid_until is None
    # A view is never served for a day before the one it was built on.
    again = views.lookup(ctx.db, ctx.settings, m["uscc"], today=today)
    assert again == now


def test_a_lookup_rebuilds_a_view_a_write_made_stale(
    client: TestClient, regulator: dict[str, str]
) -> None:
    uscc = factories.register(client)["uscc"]
    looked_up(client, uscc)
    before = kept(client, uscc)
    client.post(f"/api/merchants/{uscc}/verification", headers=regulator)
    assert kept(client, uscc) == before  # the write itself does not touch the view
    assert looked_up(client, uscc)["verification"]["status"] == "verified"
    after = kept(client, uscc)
    assert after is not None and before is not None and after.last_leaf > before.last_leaf


def test_warming_rebuilds_exactly_the_stale_views(
    client: TestClient, regulator: dict[str, str]
) -> None:
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    usccs = [factories.register(client, name=f"预热商户{i}")["uscc"] for i in range(5)]
    today = today_shanghai()
    assert views.warm(ctx.db, ctx.settings, today=today) >= 5
    assert views.warm(ctx.db, ctx.settings, today=today) == 0
    client.post(f"/api/merchants/{usccs[2]}/verification", headers=regulator)
    with ctx.db.read() as s:
        assert views.stale(s, today=today) == [usccs[2]]
    assert views.warm(ctx.db, ctx.settings, today=today) == 1
    Anchorer(ctx).run_once(force=True)  # every view showed pending records
    with ctx.db.read() as s:
        assert set(usccs) <= set(views.stale(s, today=today))
    views.warm(ctx.db, ctx.settings, today=today)
    for uscc in usccs:
        row = kept(client, uscc)
        assert row is not None and json.loads(row.body) == fresh(client, uscc)


def test_etag_and_not_modified(client: TestClient, regulator: dict[str, str]) -> None:
    uscc = factories.register(client)["uscc"]
    first = client.get(f"/api/merchants/{uscc}")
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache"
    again = client.get(f"/api/merchants/{uscc}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    listed = client.get(f"/api/merchants/{uscc}", headers={"If-None-Match": f'"x", W/{etag}'})
    assert listed.status_code == 304
    client.post(f"/api/merchants/{uscc}/verification", headers=regulator)
    changed = client.get(f"/api/merchants/{uscc}", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert changed.json()["verification"]["status"] == "verified"


def test_errors_keep_their_shape(client: TestClient) -> None:
    missing = client.get(f"/api/merchants/{factories.make_uscc(n=424242)}")
    assert missing.status_code == 404 and missing.json()["error"] == "MerchantNotFound"
    bad = client.get("/api/merchants/not-a-code")
    assert bad.status_code == 422 and "error" in bad.json()


def test_if_none_match_comparison() -> None:
    assert views.etag_matches('"a"', '"a"') and views.etag_matches('W/"a"', '"a"')
    assert views.etag_matches('"b", "a"', '"a"') and views.etag_matches("*", '"a"')
    assert not views.etag_matches('"b"', '"a"') and not views.etag_matches(None, '"a"')
