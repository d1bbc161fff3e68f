"""Fixtures for draw tests: an app on each ledger kind, staff logins, and merchants
seeded straight into the registry (Argon2 per merchant would make tests slow)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.config import Settings
from tests import factories
from tests.api_fixtures import admin, client, regulator  # noqa: F401


@pytest.fixture
def ledger_client(ledger_settings: Settings) -> Iterator[TestClient]:
    """The app on the embedded chain and on anvil (anchoring off: draws need no checkpoints)."""
    app = create_app(ledger_settings.model_copy(update={"anchor_enabled": False}))
    with TestClient(app) as c:
        yield c


@pytest.fixture
def staff(ledger_client: TestClient) -> dict[str, str]:
    return factories.create_staff(ledger_client, username="regulator1", role="regulator")
