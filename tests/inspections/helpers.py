"""Building blocks for draw tests: registry merchants with a given credit tier, the
directories through the API, and a draw through the API. Keyword-only arguments."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.accounts.models import Account
from backend.accounts.service import Principal
from backend.context import AppContext
from backend.credit import service as credit
from backend.ledger import log
from backend.ledger.records import Actor, RecordDraft, Ref
from backend.ledger.trustroot import TrustRoot, parse_trust_root
from backend.ledger.write import write
from backend.merchants.models import Merchant
from backend.merchants.records import REGISTERED, VERIFIED
from backend.merchants.service import registration_body, verification_body
from backend.pledges import service as pledges
from backend.pledges.queries import add_months
from backend.pledges.records import DEMONSTRATION, PLEDGE_MADE
from backend.pledges.templates import current_template, template_digest
from backend.supervision import service as supervision
from backend.supervision.models import PenaltyInput, SpotCheckInput
from backend.timeutil import today_shanghai, utcnow
from tests import factories

_n = iter(range(70_000, 10**6))


def trust_root_of(client: TestClient) -> TrustRoot:
    """The trust root the service publishes (what a verifier pins)."""
    return parse_trust_root(client.get("/.well-known/honest-metering/trust-root.json").json())


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
    """Registered (and verified) merchants, one per entry of ``tiers``, written as
    records through the one write path (in bulk: no Argon2, no HTTP), so their tables
    are what a rebuild from the log gives.

    Under the default policy (base 80, A from 90, B from 75, C from 60) a tier comes
    from records: ``A`` a pledge and a demonstration award (95), ``B`` none (80), ``C``
    a spot check that found a problem (70), ``D`` a heavy penalty (50). ``None``
    leaves the merchant unrated (no re-rating: the draw rates it on the fly).
    """
    ctx = ctx_of(client)
    # The outcomes come a moment after the registrations, as they would: the rating
    # history (audited) names the registration's tier, then the outcome's.
    now = utcnow() - timedelta(seconds=1)
    today = today_shanghai(now)
    out: list[str] = []
    with ctx.db.session() as s:
        account = s.execute(select(Account).where(Account.role == "regulator")).scalars().first()
        assert account is not None and account.id is not None, "create a regulator first"
        principal = Principal(account.id, account.username, "regulator", None)
        credit.ensure_policy(s, now=now)
        s.commit()
        actor = principal.actor
        rated: list[log.SealedRecord] = []
        unrated: list[log.SealedRecord] = []
        private: dict[str, dict[str, str]] = {}
        outcomes: list[Any] = []
        for tier in tiers:
            uscc = factories.make_uscc(n=next(_n), region=region)
            contact = {"contact_person": "李四", "contact_phone": "13800000000",
                       "contact_salt": secrets.token_hex(16)}
            m = Merchant(uscc=uscc, name=f"测试商户{uscc[-4:]}", sector=sector,
                         region_code=region, address="巴中市巴州区测试路1号",
                         registered_at=now, record_id="", leaf_index=-1, **contact)
            reg = log.seal(RecordDraft(REGISTERED, uscc, actor, registration_body(m)), at=now)
            private[reg.record_id] = contact
            batch = [reg]
            if verified:
                batch.append(log.seal(RecordDraft(
                    VERIFIED, uscc, actor, verification_body(today),
                    refs=(Ref("verifies", reg.record_id),),
                ), at=now))
            if tier == "A":
                batch += _pledged_demonstration_unit(uscc, actor, today, now, sector=sector)
            elif tier in ("C", "D"):
                outcomes.append(_outcome_for(uscc, tier, today))
            (unrated if tier is None else rated).extend(batch)
            out.append(uscc)
        write(s, rated, now=now, private=private)
        write(s, unrated, now=now, private=private, hooks=False)
        s.commit()
        if outcomes:
            requests = [(principal, o) for o in outcomes]
            for result in supervision.record_outcomes(s, requests, now=utcnow()):
                assert not isinstance(result, Exception), result
    return out


def _outcome_for(uscc: str, tier: str, today: date) -> SpotCheckInput | PenaltyInput:
    """C: a spot check that found a problem; D: a heavy penalty."""
    authority = "巴州区市场监督管理局"
    if tier == "C":
        return SpotCheckInput(kind="spot_check", uscc=uscc, result="发现问题已责令改正",
                              checked_on=today, authority=authority)
    return PenaltyInput(kind="penalty", uscc=uscc, decision_no=f"巴市监罚{uscc[-6:]}",
                        decided_on=today, authority=authority, amount_fen=50_000_000,
                        lower_amount=False, evidence_sha256="ab" * 32)


def _pledged_demonstration_unit(
    uscc: str, actor: Actor, today: date, now: datetime, *, sector: str
) -> list[log.SealedRecord]:
    template = current_template(sector)
    prepared = pledges.PreparedPledge(
        uscc=uscc, template=template, digest=template_digest(template),
        items=list(template.codes), extra_commitments=None, valid_from=today,
        valid_until=add_months(today, pledges.PLEDGE_VALIDITY_MONTHS),
    )
    body = pledges.pledge_made_body(
        pledge_id=uuid.uuid4().hex, prepared=prepared, signer=None, signature=None
    )
    award = pledges.award_body(on=today, valid_until=add_months(today, 36))
    return [
        log.seal(RecordDraft(PLEDGE_MADE, uscc, actor, body), at=now),
        log.seal(RecordDraft(DEMONSTRATION, uscc, actor, award), at=now),
    ]


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
