from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from tests.api_fixtures import admin, client, regulator  # noqa: F401
from tests.conftest import make_settings


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db_client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    """The app on SQLite or on PostgreSQL (the anchoring worker off)."""
    # Enough password slots that an HTTP burst reaches the database all at once.
    overrides: dict[str, Any] = {"anchor_enabled": False, "password_hash_concurrency": 64}
    if request.param == "postgres":
        overrides["database_url"] = request.getfixturevalue("postgres_url")
    with TestClient(create_app(make_settings(tmp_path / "data", **overrides))) as c:
        yield c
