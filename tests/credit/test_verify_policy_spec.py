"""``verify --credit`` and the rating specification a policy version names (``spec_sha256``):
a version recorded before the field existed still verifies; one naming other rules fails."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from backend.credit import service as credit
from backend.credit.policy import DEFAULT_POLICY
from backend.credit.records import POLICY
from backend.ledger.records import SYSTEM, RecordDraft, Ref
from backend.ledger.write import write
from backend.timeutil import today_shanghai, utcnow
from backend.verification.credit import verify_credit
from tests import factories
from tests.credit.test_verify_credit import (  # noqa: F401 (the live-service fixture)
    Live,
    _root,
    live,
)
from tests.supervision import outcomes as o


def _publish(lv: Live, *, spec: str | None, now: datetime) -> str:
    """Append the next policy version as it would have been recorded: without the
    ``spec_sha256`` key when ``spec`` is None (a document older than the field)."""
    ctx = lv.app.state.ctx
    with ctx.db.session() as s:
        versions = credit.policy_versions(s)
        body: dict[str, Any] = DEFAULT_POLICY.model_dump(mode="json")
        body |= {"version": len(versions) + 1, "effective_from": today_shanghai(now).isoformat()}
        if spec is None:
            del body["spec_sha256"]
        else:
            body["spec_sha256"] = spec
        rec = write(
            s,
            RecordDraft(type=POLICY, subject=None, actor=SYSTEM, body=body,
                        refs=(Ref("supersedes", versions[-1].record_id),)),
            now=now,
        ).one
        s.commit()
        return rec.record_id


@pytest.mark.slow
def test_policy_without_spec_verifies_and_other_rules_fail(live: Live) -> None:  # noqa: F811
    regulator = live.staff("reg-spec", "regulator")
    uscc = live.http.post("/api/merchants", json=factories.merchant_body()).json()["uscc"]
    assert live.http.post(f"/api/merchants/{uscc}/verification", headers=regulator).is_success
    live.post(o.spot_check(uscc=uscc), regulator)

    old = _publish(live, spec=None, now=utcnow())
    live.wait_anchored(old)
    verdict = verify_credit(uscc, base_url=live.url, trust_root=_root(live))
    assert verdict.ok, verdict.render()
    assert "names no specification" in verdict.render()

    other = _publish(live, spec="ab" * 32, now=utcnow())
    live.wait_anchored(other)
    verdict = verify_credit(uscc, base_url=live.url, trust_root=_root(live))
    assert not verdict.ok and not verdict.incomplete
    assert "ab" * 32 in verdict.render() and "cannot recompute" in verdict.render()
