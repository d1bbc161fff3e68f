"""Merchant views on PostgreSQL: lookups through the unpinged autocommit connections
survive the database dropping them, and one worker at a time warms the views."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.shops import views
from tests import factories
from tests.conftest import make_settings

pytestmark = pytest.mark.postgres


def _kill_own_connections(postgres_url: str) -> int:
    """Terminate every connection this process holds open (as a database restart would)."""
    import os

    with psycopg.connect(postgres_url, autocommit=True) as admin:
        return len(
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (f"honest-metering pid {os.getpid()}",),
            ).fetchall()
        )


def test_lookups_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "data", database_url=postgres_url, anchor_enabled=False,
        view_warm_interval_s=0,
    )
    with TestClient(create_app(settings)) as client:
        regulator = factories.create_staff(client, username="reg-pg", role="regulator")
        uscc = factories.register(client)["uscc"]
        first = client.get(f"/api/merchants/{uscc}")
        assert first.status_code == 200 and first.json()["verification"]["status"] == "unverified"
        client.post(f"/api/merchants/{uscc}/verification", headers=regulator)
        assert client.get(f"/api/merchants/{uscc}").json()["verification"]["status"] == "verified"

        assert _kill_own_connections(postgres_url) >= 1
        # The pooled quick connection is dead: the lookup notices and retries once.
        again = client.get(f"/api/merchants/{uscc}")
        assert again.status_code == 200, again.text
        assert again.json()["verification"]["status"] == "verified"


def test_one_warmer_at_a_time(postgres_url: str, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "data", database_url=postgres_url, anchor_enabled=False,
        view_warm_interval_s=0,
    )
    with TestClient(create_app(settings)) as client:
        factories.register(client)
        warmer = views.ViewWarmer(client.app.state.ctx)  # type: ignore[attr-defined]
        with psycopg.connect(postgres_url, autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock(%s)", (views.WARM_LOCK_KEY,))
            assert warmer.round() is None  # another worker is warming
            other.execute("SELECT pg_advisory_unlock(%s)", (views.WARM_LOCK_KEY,))
        assert warmer.round() == 1
        assert warmer.round() == 0
