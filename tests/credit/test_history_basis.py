"""The rating history is audited in log order, not by record time.

Several workers seal a record (its ``at``) before they take the log lock, so a record
sealed earlier can be appended after one sealed later. Each ``rating_change`` row was
computed from the log's first ``basis_size`` records; audit replays exactly those.
Before ``basis_size``, audit replayed "records whose ``at`` is not after the row's" and
reported both rows of such a race as altered (seen with three workers on PostgreSQL:
``rating_change [24] … score: 82 should be 84``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from backend.ledger import log
from backend.ledger.projection import CheckContext, audit_all
from backend.ledger.records import Actor, RecordDraft
from backend.ledger.write import write
from backend.timeutil import today_shanghai, utcnow
from tests import factories
from tests.supervision import outcomes as o


def _penalised(client: TestClient, regulator: dict[str, str]) -> tuple[str, Any, str]:
    """A verified merchant with one penalty: (its code, the app context, the record id)."""
    uscc = factories.register_verified(client)["uscc"]
    resp = client.post(
        "/api/supervision/records", json=o.penalty(uscc=uscc), headers=regulator
    )
    assert resp.status_code == 201, resp.text
    return uscc, client.app.state.ctx, resp.json()["record_id"]  # type: ignore[attr-defined]


def test_a_record_sealed_earlier_but_appended_later(
    client: TestClient, regulator: dict[str, str]
) -> None:
    uscc, ctx, record_id = _penalised(client, regulator)
    with ctx.db.read() as s:
        env = log.get_envelope(s, record_id)

    def draft(n: int) -> RecordDraft:
        body = dict(env["body"], decision_no=f"巴市监罚〔2026〕{100 + n}号")
        return RecordDraft(env["type"], uscc, Actor(**env["actor"]), body)

    t1 = utcnow()
    t2 = t1 + timedelta(milliseconds=5)
    early = log.seal(draft(1), at=t1)  # worker A seals first ...
    with ctx.db.session() as s:  # ... worker B seals later but takes the lock first
        write(s, draft(2), now=t2)
        s.commit()
    with ctx.db.session() as s:  # then A appends
        write(s, [early], now=t1)
        s.commit()

    with ctx.db.read() as s:
        rows = s.execute(text(
            "SELECT score, basis_size FROM rating_change WHERE uscc = :u ORDER BY id"
        ), {"u": uscc}).all()
        size = log.tree_size(s)
        _, found = audit_all(s, CheckContext(ctx.settings, today_shanghai()))
    # Three penalties, each lowering the score: three history rows, the last one
    # computed from the whole log.
    scores = [r.score for r in rows]
    assert scores == sorted(scores, reverse=True) and len(set(scores[-3:])) == 3, rows
    assert rows[-1].basis_size == size
    assert [d.line() for d in found] == []


def test_audit_still_names_an_altered_history_row(
    client: TestClient, regulator: dict[str, str]
) -> None:
    uscc, ctx, _ = _penalised(client, regulator)
    with ctx.db.engine.begin() as conn:
        row_id, score = conn.execute(text(
            "SELECT id, score FROM rating_change WHERE uscc = :u ORDER BY id DESC LIMIT 1"
        ), {"u": uscc}).one()
        conn.execute(text("UPDATE rating_change SET score = score + 7 WHERE id = :i"),
                     {"i": row_id})
    with ctx.db.read() as s:
        _, found = audit_all(s, CheckContext(ctx.settings, today_shanghai()))
    lines = [d.line() for d in found]
    assert any(f"rating_change [{row_id}]" in x and f"should be {score}" in x for x in lines), lines
