"""Fixtures of the schemathesis runs (test_fuzz.py, test_fuzz_postgres.py): the app on
the embedded defaults, or on the database ``fuzz_database_url`` names (a module overrides
it), started by schemathesis' client and populated like tests/abuse/world.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from schemathesis.python.asgi import get_client, shutdown_lifespans

from backend.app import create_app
from tests.abuse.fuzzing import KNOWN
from tests.abuse.world import World, build_world
from tests.conftest import make_settings


@pytest.fixture(scope="module")
def fuzz_database_url() -> str | None:
    """``None``: SQLite in the data dir."""
    return None


@pytest.fixture(scope="module")
def fuzz_app(
    tmp_path_factory: pytest.TempPathFactory, fuzz_database_url: str | None
) -> Iterator[Any]:
    overrides: dict[str, object] = {"anchor_enabled": False}
    if fuzz_database_url is not None:
        overrides["database_url"] = fuzz_database_url
    app = create_app(make_settings(tmp_path_factory.mktemp("fuzz") / "data", **overrides))
    try:
        yield app
    finally:
        shutdown_lifespans()  # the lifespan schemathesis started for ``app``
        KNOWN.clear()


@pytest.fixture(scope="module")
def asgi(fuzz_app: Any) -> Iterator[Any]:
    """Schemathesis' in-process client (it runs the app's lifespan)."""
    with get_client(fuzz_app) as client:
        yield client


@pytest.fixture(scope="module")
def world(fuzz_app: Any, asgi: Any) -> World:
    w = build_world(TestClient(fuzz_app))  # the app is already started by ``asgi``
    KNOWN.update({k: int(v) if v.isdigit() else v for k, v in w.ids.items()})
    return w
