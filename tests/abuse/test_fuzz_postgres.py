"""The schemathesis run of test_fuzz.py on PostgreSQL, as anonymous and as a regulator.

The same schema, configuration, checks and populated world (tests/abuse/world.py) as on
SQLite, with the app on a fresh PostgreSQL database: where the two differ (text cannot
hold NUL, stricter types, row locks, constraint errors), a request must still never get
a 5xx. Anonymous callers and regulators reach the most code (the public reads, and every
staff write); merchants and admins are fuzzed on SQLite. 4.5 min here under load (2.7
min of CPU): about what each identity costs on SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from schemathesis.python.asgi import get_client, shutdown_lifespans

from backend.app import create_app
from tests.abuse.test_fuzz import KNOWN, _run, schema
from tests.abuse.world import World, build_world
from tests.conftest import POSTGRES_URL, _postgres_reachable, make_settings, require

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def postgres_db() -> Iterator[str]:
    """A fresh PostgreSQL database for the module (dropped afterwards)."""
    require(_postgres_reachable(), f"PostgreSQL not reachable at {POSTGRES_URL}")
    import uuid

    import psycopg

    name = f"hm_fuzz_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory, postgres_db: str) -> Iterator[Any]:
    settings = make_settings(
        tmp_path_factory.mktemp("fuzz-pg") / "data", anchor_enabled=False,
        database_url=postgres_db,
    )
    app = create_app(settings)
    try:
        yield app
    finally:
        shutdown_lifespans()
        KNOWN.clear()


@pytest.fixture(scope="module")
def asgi(fuzz_app: Any) -> Iterator[Any]:
    with get_client(fuzz_app) as client:
        yield client


@pytest.fixture(scope="module")
def world(fuzz_app: Any, asgi: Any) -> World:
    w = build_world(TestClient(fuzz_app))
    KNOWN.update({k: int(v) if v.isdigit() else v for k, v in w.ids.items()})
    return w


@pytest.mark.slow
@schema.parametrize()
def test_anonymous_postgresql(case: Any, asgi: Any, world: World) -> None:
    _run(case, asgi, world, "anonymous")


@pytest.mark.slow
@schema.parametrize()
def test_regulator_postgresql(case: Any, asgi: Any, world: World) -> None:
    _run(case, asgi, world, "regulator")
