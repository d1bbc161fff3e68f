"""The reads an owning package offers the packages above (only the owner queries its
tables: tests/test_house.py). Each returns what the table holds, by key."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from backend.credit import queries as credit_queries
from backend.merchants import queries as merchant_queries
from tests import factories
from tests.api_fixtures import client  # noqa: F401


def _db(c: TestClient) -> Any:
    return c.app.state.ctx.db  # type: ignore[attr-defined]


def test_names_and_tiers_by_credit_code(client: TestClient) -> None:  # noqa: F811
    a = factories.register_verified(client, name="甲计量商行")
    b = factories.register(client, name="乙计量商行")
    unknown = factories.make_uscc(n=999)
    with _db(client).read() as s:
        names = merchant_queries.names_of(s, [a["uscc"], b["uscc"], unknown])
        tiers = credit_queries.tiers_of(s, [a["uscc"], b["uscc"], unknown])
        assert merchant_queries.names_of(s, []) == {} and credit_queries.tiers_of(s, []) == {}
        assert merchant_queries.registered_among(s, [a["uscc"], unknown]) == {a["uscc"]}
    assert names == {a["uscc"]: "甲计量商行", b["uscc"]: "乙计量商行"}
    assert set(tiers) == {a["uscc"], b["uscc"]} and all(isinstance(t, str) for t in tiers.values())
