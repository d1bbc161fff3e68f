"""Building blocks for draw tests: registry merchants with a given credit tier, the
directories through the API, and a draw through the API. Keyword-only arguments."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.accounts.models import Account
from backend.context import AppContext
from backend.credit import service as credit
from backend.credit.models import MerchantRating
from backend.ledger import log
from backend.ledger.records import Actor, RecordDraft, Ref
from backend.merchants.models import Merchant, MerchantVerification
from backend.merchants.service import registration_body, verification_body
from backend.timeutil import today_shanghai, utcnow
from tests import factories

SCORES = {"A": 92, "B": 80, "C": 65, "D": 40}
_n = iter(range(70_000, 10**6))


def ctx_of(client: TestClient) -> AppContext:
    return client.app.state.ctx  # type: ignore[attr-defined,no-any-return]


def seed_merchants(
    client: TestClient,
    *,
    tiers: Sequence[str | None],
    sector: str = "retail",
    region: str = "511902",
    verified: bool = True,
) -> list[str]:
    """Registered (and verified) merchants, one per entry of ``tiers``.

    A tier writes the merchant's current rating row, as the credit service keeps
    it; ``None`` leaves the merchant unrated (the draw rates it on the fly).
    """
    ctx = ctx_of(client)
    now = utcnow()
    today = today_shanghai(now)
    out = []
    with ctx.db.session() as s:
        account = s.execute(select(Account).where(Account.role == "regulator")).scalars().first()
        assert account is not None and account.id is not None, "create a regulator first"
        versions = credit.ensure_policy(s, now=now)
        policy_version = credit.in_force(versions, today).version
        actor = Actor("regulator", str(account.id))
        for tier in tiers:
            uscc = factories.make_uscc(n=next(_n), region=region)
            m = Merchant(
                uscc=uscc,
                name=f"测试商户{uscc[-4:]}",
                sector=sector,
                region_code=region,
                address="巴中市巴州区测试路1号",
                contact_person="李四",
                contact_phone="13800000000",
                contact_salt=secrets.token_hex(16),
                registered_at=now,
                record_id="",
                leaf_index=-1,
            )
            (reg,) = log.append(
                s, RecordDraft("merchant.registered", uscc, actor, registration_body(m)), now=now
            )
            m.record_id, m.leaf_index = reg.record_id, reg.leaf_index
            s.add(m)
            s.flush()
            if verified:
                (ver,) = log.append(
                    s,
                    RecordDraft(
                        "merchant.verified",
                        uscc,
                        actor,
                        verification_body(today),
                        refs=(Ref("verifies", reg.record_id),),
                    ),
                    now=now,
                )
                s.add(
                    MerchantVerification(
                        uscc=uscc,
                        verified_on=today,
                        at=now,
                        account_id=account.id,
                        record_id=ver.record_id,
                        leaf_index=ver.leaf_index,
                    )
                )
            if tier is not None:
                s.add(
                    MerchantRating(
                        uscc=uscc,
                        tier=tier,
                        score=SCORES[tier],
                        score_tier=tier,
                        policy_version=policy_version,
                        as_of=today,
                        computed_at=now,
                        next_change_on=None,
                        factors=[],
                    )
                )
            out.append(uscc)
        s.commit()
    return out


def set_tier(client: TestClient, uscc: str, tier: str) -> None:
    with ctx_of(client).db.session() as s:
        row = s.get(MerchantRating, uscc)
        assert row is not None
        row.tier = tier
        s.add(row)
        s.commit()


def add_inspectors(
    client: TestClient,
    headers: dict[str, str],
    *,
    count: int,
    region: str = "511902",
    unit: str = "巴州区市场监督管理局",
) -> list[str]:
    ids = []
    for k in range(count):
        resp = client.post(
            "/api/inspectors",
            json={"name": f"检查员{k}", "unit": unit, "region_code": region},
            headers=headers,
        )
        assert resp.status_code == 201, resp.text
        ids.append(resp.json()["id"])
    return ids


def add_item(
    client: TestClient, headers: dict[str, str], *, sectors: Sequence[str] = ("retail", "market")
) -> int:
    resp = client.post(
        "/api/inspection-items",
        json={
            "title": "计量器具强制检定及使用情况检查",
            "legal_basis": "《中华人民共和国计量法》第九条",
            "sectors": list(sectors),
            "method": "现场检查",
        },
        headers=headers,
    )
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def draw_body(*, item_id: int, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "item_id": item_id,
        "planned_end": (date.today() + timedelta(days=30)).isoformat(),
    }
    body.update(extra)
    return body


def create_draw(client: TestClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    resp = client.post("/api/draws", json=draw_body(**fields), headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


def reveal(client: TestClient, headers: dict[str, str], draw_id: str) -> dict[str, Any]:
    resp = client.post(f"/api/draws/{draw_id}/reveal", headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]
