"""Migration 0008 carries an existing database forward: merchants registered before it
get their search keys, and the trigram index answers for them (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import insert, select

from backend.db import Database, alembic_config
from backend.merchants import search
from backend.merchants.models import Merchant, MerchantSearch

VALID = "91511902MA62Q3T556"
SHOP = "巴中市巴山诚信超市有限公司"


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        return Database(url.replace("postgresql://", "postgresql+psycopg://", 1))
    return Database(f"sqlite:///{tmp_path}/old.sqlite3")


def test_existing_merchants_get_their_search_keys(db: Database) -> None:
    with db.engine.connect() as conn:
        command.upgrade(alembic_config(conn), "0007_merge")
        conn.commit()
    with db.session() as s:
        s.execute(insert(Merchant), [{
            "uscc": VALID, "name": SHOP, "sector": "retail", "region_code": "511902",
            "sub_area": None, "address": "巴州区", "contact_person": "x", "contact_phone": "1",
            "contact_salt": "00" * 16, "registered_at": datetime.now(UTC),
            "record_id": "ab" * 32, "leaf_index": 0,
        }])
        s.commit()
    db.migrate()
    with db.read() as s:
        row = s.execute(select(MerchantSearch)).scalars().one()
        assert (row.uscc, row.keys) == (VALID, search.search_keys(uscc=VALID, name=SHOP))
        how = search.plan("巴山超市")
        assert how is not None
        found = s.execute(
            search.found(how, [search.SEARCH.c.uscc], sqlite=db.is_sqlite)
        ).scalars().all()
        assert found == [VALID]
    db.dispose()
