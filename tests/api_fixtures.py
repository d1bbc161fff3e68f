"""Fixtures for HTTP API tests: an app on a fresh SQLite + embedded-chain data
dir (the anchoring worker off: writes do not need the ledger), and staff logins.
Imported by the conftest of each API test package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.config import Settings
from tests import factories


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"anchor_enabled": False}))
    with TestClient(app) as c:
        yield c


@pytest.fixture
def regulator(client: TestClient) -> dict[str, str]:
    """Bearer headers of a regulator account."""
    return factories.create_staff(client, username="regulator1", role="regulator")


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    """Bearer headers of an admin account."""
    return factories.create_staff(client, username="admin1", role="admin")
