"""The supervision and credit paths that differ by database (upserts, locks, bulk
inserts), run on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.credit import service as credit
from tests import factories
from tests.conftest import make_settings
from tests.supervision import outcomes as o


@pytest.fixture
def pg_client(tmp_path: Path, postgres_url: str) -> Iterator[TestClient]:
    settings = make_settings(tmp_path / "data", database_url=postgres_url, anchor_enabled=False)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.postgres
def test_flow_on_postgres(pg_client: TestClient) -> None:
    client = pg_client
    regulator = factories.create_staff(client, username="reg-pg", role="regulator")
    m, merchant = factories.merchant_with_login(client)
    other = factories.register_verified(client)["uscc"]
    uscc = m["uscc"]
    factories.verify(client, uscc)
    rows = [
        o.spot_check(uscc=uscc),
        o.listing(uscc=uscc, on=o.days_ago(9)),
        o.penalty(uscc=uscc, decided_on=o.days_ago(200), performed=True),
        o.listing(uscc=uscc, action="out", on=o.days_ago(2)),
        o.instrument(uscc=other),
    ]
    resp = client.post(
        "/api/supervision/records/bulk",
        content="".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode(),
        headers={**regulator, "Content-Type": "application/x-ndjson"},
    )
    assert resp.status_code == 201, resp.text
    penalty_id = resp.json()["records"][2]["record_id"]
    assert o.credit(client, uscc)["score"] == 52
    assert o.credit(client, other)["score"] == 70

    app = client.post("/api/credit-repairs", json={"penalty_record_id": penalty_id,
                                                  "statement": "已履行"}, headers=merchant)
    assert app.status_code == 201, app.text
    dec = client.post(f"/api/credit-repairs/{app.json()['repair_id']}/decision",
                      json={"decision": "approved", "reason": "符合条件"}, headers=regulator)
    assert dec.status_code == 201 and dec.json()["credit"]["score"] == 82

    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    full = credit.sweep(ctx.db, full=True)
    assert full.merchants == 2 and full.changed == 0 and not full.failed
    stats = client.get("/api/stats/tiers").json()
    assert stats["by_tier"]["B"] == 1 and stats["by_tier"]["C"] == 1
    history = client.get(f"/api/merchants/{uscc}/credit/history").json()["items"]
    assert history[-1]["score"] == 82


class TestRatingRacesTheLogLock:
    """An outcome's rating is computed before its batch takes the log lock
    (credit.prepare_rerate) and stored after it (credit.store_rerate). Another worker
    may commit in between; the stored rating must be what the log then says."""

    @pytest.fixture
    def race(
        self, pg_client: TestClient, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[list[Any]]:
        """Before the next append_sealed, run each callable queued here (as another
        worker committing), then append."""
        from backend.ledger import log as ledger_log

        queued: list[Any] = []
        real = ledger_log.append_sealed

        def racing(session: Any, sealed: Any) -> Any:
            while queued:
                queued.pop(0)()
            return real(session, sealed)

        monkeypatch.setattr(ledger_log, "append_sealed", racing)
        yield queued

    @staticmethod
    def _principal(client: TestClient, headers: dict[str, str]) -> Any:
        from backend.accounts.service import principal_from_token_async

        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        token = headers["Authorization"].split(" ", 1)[1]
        return asyncio.run(principal_from_token_async(
            ctx.db, settings=ctx.settings, token=token, kind="access"
        ))

    @staticmethod
    def _other_worker_writes(client: TestClient, principal: Any, body: dict[str, Any]) -> Any:
        from pydantic import TypeAdapter

        from backend.supervision import service as supervision
        from backend.supervision.models import SupervisionInput

        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        data = TypeAdapter(SupervisionInput).validate_python(body)

        def write() -> None:
            with ctx.db.session() as s:  # its own connection and transaction
                (result,) = supervision.record_outcomes(s, [(principal, data)])
                assert not isinstance(result, Exception), result

        return write

    @pytest.mark.postgres
    def test_a_record_about_the_merchant_is_rated_in(
        self, pg_client: TestClient, race: list[Any]
    ) -> None:
        client = pg_client
        regulator = factories.create_staff(client, username="reg-race", role="regulator")
        uscc = factories.register_verified(client)["uscc"]
        before = o.credit(client, uscc)["score"]
        race.append(self._other_worker_writes(
            client, self._principal(client, regulator), o.penalty(uscc=uscc)
        ))
        resp = client.post("/api/supervision/records", json=o.spot_check(uscc=uscc),
                           headers=regulator)
        assert resp.status_code == 201, resp.text
        assert not race  # the other write did run in between
        stored = o.credit(client, uscc)
        assert stored["score"] < before  # the penalty counts, though committed after the read
        assert resp.json()["credit"]["score"] == stored["score"]
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        assert credit.sweep(ctx.db, full=True).changed == 0  # what the log says

    @pytest.mark.postgres
    def test_a_new_policy_version_is_rated_in(
        self, pg_client: TestClient, race: list[Any]
    ) -> None:
        from backend.credit.policy import DEFAULT_POLICY
        from backend.timeutil import today_shanghai

        client = pg_client
        regulator = factories.create_staff(client, username="reg-race", role="regulator")
        admin = factories.create_staff(client, username="adm-race", role="admin")
        uscc = factories.register_verified(client)["uscc"]
        before = o.credit(client, uscc)["score"]
        doc = DEFAULT_POLICY.model_dump(mode="json")
        doc.update(version=2, effective_from=today_shanghai().isoformat(),
                   base_score=DEFAULT_POLICY.base_score - 10)
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        admin_principal = self._principal(client, admin)

        def publish() -> None:
            with ctx.db.session() as s:
                credit.put_policy(s, principal=admin_principal, document=doc)
                s.commit()

        race.append(publish)
        resp = client.post("/api/supervision/records", json=o.spot_check(uscc=uscc),
                           headers=regulator)
        assert resp.status_code == 201, resp.text
        assert not race
        assert resp.json()["credit"]["policy_version"] == 2
        assert o.credit(client, uscc)["score"] < before
        assert credit.sweep(ctx.db, full=True).changed == 0
