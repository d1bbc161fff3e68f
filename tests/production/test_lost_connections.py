"""A lost database connection: a 503 ``DatabaseUnavailable`` in the one error shape,
not an unexpected 500 (whose re-raise also makes uvicorn close the client's keep-alive
connection); and a session whose connection died still closes cleanly. The real
thing, on PostgreSQL with connections killed mid-request, is in test_faults.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

from backend.app import create_app
from backend.config import Settings
from backend.db import Database
from backend.errors import NotFound
from backend.shops import views
from tests.conftest import make_settings

USCC = "91511902MA62Q3T556"


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"anchor_enabled": False}))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _raise(exc: Exception):  # type: ignore[no-untyped-def]
    async def fail(*_: object, **__: object) -> None:
        raise exc

    return fail


def test_a_dropped_connection_is_503_database_unavailable(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    dropped = OperationalError(
        "SELECT 1", {}, psycopg.errors.AdminShutdown("terminating connection")
    )
    monkeypatch.setattr(views, "lookup_async", _raise(dropped))
    resp = client.get(f"/api/merchants/{USCC}")
    assert resp.status_code == 503
    body = resp.json()
    assert body["error"] == "DatabaseUnavailable"
    assert "retry" in body["detail"]
    assert "terminating connection" not in body["detail"]  # no driver internals
    assert resp.headers["retry-after"] == "1"


def test_other_database_errors_stay_internal_errors(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = IntegrityError("INSERT", {}, Exception("duplicate key"))
    monkeypatch.setattr(views, "lookup_async", _raise(broken))
    resp = client.get(f"/api/merchants/{USCC}")
    assert resp.status_code == 500
    assert resp.json()["error"] == "InternalError"


def _kill_backend_of(session_: Session, database_url: str) -> None:
    pid = session_.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


@pytest.mark.postgres
class TestSessionsOutliveTheirConnection:
    """Regression: a session whose connection was killed after the work was done (e.g.
    after the commit, while the response was being built) raised from its ROLLBACK on
    close, in FastAPI's dependency teardown, after the response had started: uvicorn
    then dropped the client's connection and logged an unhandled error."""

    @pytest.fixture
    def db(self, postgres_url: str) -> Iterator[Database]:
        d = Database(make_settings(Path("/nonexistent"), database_url=postgres_url).db_url)
        d.migrate()
        try:
            yield d
        finally:
            d.dispose()

    def test_read_session(self, db: Database, postgres_url: str) -> None:
        with db.read() as s:
            assert s.execute(text("SELECT 1")).scalar_one() == 1
            _kill_backend_of(s, postgres_url)
        with db.read() as s:  # the pool hands out a live connection next
            assert s.execute(text("SELECT 2")).scalar_one() == 2

    def test_write_session_after_commit(self, db: Database, postgres_url: str) -> None:
        with db.session() as s:
            s.execute(text("UPDATE log_head SET size = size WHERE id = 1"))
            s.commit()
            s.execute(text("SELECT 1"))  # reading back after the commit, as services do
            _kill_backend_of(s, postgres_url)
        with db.session() as s:
            assert s.execute(text("SELECT size FROM log_head")).scalar_one() == 0

    def test_error_inside_is_not_masked(self, db: Database, postgres_url: str) -> None:
        with pytest.raises(NotFound), db.session() as s:
            s.execute(text("SELECT 1"))
            _kill_backend_of(s, postgres_url)
            raise NotFound("the service's own error")
