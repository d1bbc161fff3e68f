"""The registry, accounts and pledges on PostgreSQL (the production database):
the same flows as on SQLite, plus demo seeding followed by normal writes (the
account id sequence must move past the seeded ids)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.db import Database
from backend.demo import seed as demo
from tests import factories
from tests.conftest import make_settings

pytestmark = pytest.mark.postgres


def test_flows_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", database_url=postgres_url, anchor_enabled=False)
    db = Database(settings.db_url)
    db.migrate()
    assert demo.seed_demo(db, settings=settings, merchants_n=80) is not None
    db.dispose()
    with TestClient(create_app(settings)) as client:
        regulator = factories.bearer(client, username="regulator", password="demo-regulator-2025")
        m, headers = factories.merchant_with_login(client, name="重庆路Café老王粮油店")
        assert (
            client.post(f"/api/merchants/{m['uscc']}/verification", headers=regulator).status_code
            == 201
        )

        # Concurrent retries with one key make one pledge.
        h = {**headers, "Idempotency-Key": "pg-key-1"}
        results = concurrently(
            4, lambda: client.post("/api/pledges", json=factories.pledge_body(), headers=h)
        )
        assert {r.status_code for r in results} == {201}
        assert len({r.json()["pledge_id"] for r in results}) == 1

        assert len(client.get(f"/api/merchants/{m['uscc']}/pledges").json()["items"]) == 1

        # Concurrent pledges without a key form one chain: exactly one stays active.
        results = concurrently(
            3, lambda: client.post("/api/pledges", json=factories.pledge_body(), headers=headers)
        )
        assert {r.status_code for r in results} == {201}
        items = client.get(f"/api/merchants/{m['uscc']}/pledges").json()["items"]
        assert [p["status"] for p in items].count("active") == 1
        assert sorted(p["renews"] or "" for p in items) == sorted(
            [""] + [p["pledge_id"] for p in items if p["status"] == "renewed"]
        )

        second = factories.make_pledge(client, headers=headers)
        assert second["renews"] == next(p["pledge_id"] for p in items if p["status"] == "active")
        award = client.post(
            f"/api/merchants/{m['uscc']}/demonstration", json={"action": "award"}, headers=regulator
        )
        assert award.status_code == 201, award.text

        found = client.get("/api/merchants", params={"q": "café老王"}).json()["items"]
        assert [x["uscc"] for x in found] == [m["uscc"]]  # case-insensitive on both databases
        assert (
            client.get("/api/merchants", params={"q": m["uscc"][:10].lower()}).json()["total"] >= 1
        )
        assert m["uscc"] in [
            x["uscc"]
            for x in client.get("/api/merchants", params={"tier": "A", "limit": 100}).json()[
                "items"
            ]
        ]
        stats = client.get("/api/stats/overview").json()
        assert stats["merchants"] == 81
        assert stats["active_pledges"] >= 1
        assert client.get(f"/merchants/{m['uscc']}/sign.pdf").status_code == 200
        withdrawn = client.post(
            f"/api/pledges/{second['pledge_id']}/withdraw", json={"reason": "测试"}, headers=headers
        )
        assert withdrawn.json()["status"] == "withdrawn"


def concurrently(n: int, call: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """Run ``call`` in ``n`` threads at once; re-raise the first error."""
    results: list[httpx.Response] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def run() -> None:
        try:
            barrier.wait()
            results.append(call())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results
