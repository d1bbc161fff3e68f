"""Starting the service on PostgreSQL: several workers on a fresh database, and
demo seeding next to a running anchorer."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from backend.db import Database
from backend.demo.seed import merchant_count, seed_demo
from backend.ledger.anchoring import PgAdvisoryLock
from tests.conftest import make_settings

pytestmark = pytest.mark.postgres


def test_demo_seeding_does_not_wait_for_the_anchoring_lock(
    postgres_url: str, tmp_path: Path
) -> None:
    """Regression: seeding took ``pg_advisory_xact_lock`` on the anchoring lock's key, so
    on PostgreSQL a service seeding its demo data on first start (or ``honest-metering
    demo`` next to a running service) waited forever for its own anchoring worker."""
    settings = make_settings(tmp_path / "data", database_url=postgres_url)
    db = Database(settings.db_url)
    db.migrate()
    anchoring_lock = PgAdvisoryLock(db.engine)  # as the running service's worker holds it
    assert anchoring_lock.acquire()
    result: dict[str, object] = {}

    def seed() -> None:
        try:
            result["summary"] = seed_demo(db, settings=settings, merchants_n=10)
        except Exception as exc:  # the fixture's teardown ends a blocked seeder
            result["error"] = exc

    seeder = threading.Thread(target=seed, daemon=True)
    try:
        seeder.start()
        seeder.join(15)
        assert not seeder.is_alive(), "demo seeding is waiting for the anchoring lock"
        assert "error" not in result, result
        assert result["summary"] is not None
        with db.read() as s:
            assert merchant_count(s) == 10
    finally:
        anchoring_lock.release()
        db.dispose()
