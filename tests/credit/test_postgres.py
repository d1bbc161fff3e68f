"""The supervision and credit paths that differ by database (upserts, locks, bulk
inserts), run on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

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
    other = factories.register(client)["uscc"]
    uscc = m["uscc"]
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
