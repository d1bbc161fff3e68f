"""merchant search: the search-key projection and its trigram index

``merchant_search`` holds each merchant's search keys (backend/merchants/search.py).
The index over ``keys`` is the database's own trigram index: on PostgreSQL a GIN
index with ``pg_trgm`` (a trusted extension since PostgreSQL 13, so the database
owner may create it); on SQLite an FTS5 table with the ``trigram`` tokenizer whose
content is ``merchant_search``, kept in step by triggers. Existing merchants get
their rows here, computed by the same function the projection uses.

Revision ID: 0008_merchant_search
Revises: 0009_tickets
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backend.merchants.search import fold, search_keys

revision: str = '0008_merchant_search'
down_revision: str | None = '0009_tickets'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_INDEX = [
    "CREATE VIRTUAL TABLE merchant_search_fts USING fts5("
    "keys, content='merchant_search', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER merchant_search_ai AFTER INSERT ON merchant_search BEGIN "
    "INSERT INTO merchant_search_fts(rowid, keys) VALUES (new.id, new.keys); END",
    "CREATE TRIGGER merchant_search_ad AFTER DELETE ON merchant_search BEGIN "
    "INSERT INTO merchant_search_fts(merchant_search_fts, rowid, keys) "
    "VALUES ('delete', old.id, old.keys); END",
    "CREATE TRIGGER merchant_search_au AFTER UPDATE ON merchant_search BEGIN "
    "INSERT INTO merchant_search_fts(merchant_search_fts, rowid, keys) "
    "VALUES ('delete', old.id, old.keys); "
    "INSERT INTO merchant_search_fts(rowid, keys) VALUES (new.id, new.keys); END",
]


def upgrade() -> None:
    table = op.create_table(
        'merchant_search',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('uscc', sa.String(length=18), nullable=False),
        sa.Column('folded', sa.Text(), nullable=False),
        sa.Column('keys', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['uscc'], ['merchant.uscc']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('uscc'),
    )
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in SQLITE_INDEX:
            op.execute(statement)
    else:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            "CREATE INDEX ix_merchant_search_keys_trgm ON merchant_search "
            "USING gin (keys gin_trgm_ops)"
        )
    merchants = bind.execute(sa.text("SELECT uscc, name FROM merchant ORDER BY uscc")).all()
    batch: list[dict[str, str]] = []
    for uscc, name in merchants:
        batch.append(
            {"uscc": uscc, "folded": fold(name), "keys": search_keys(uscc=uscc, name=name)}
        )
        if len(batch) >= 5000:
            op.bulk_insert(table, batch)
            batch = []
    if batch:
        op.bulk_insert(table, batch)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for name in ("merchant_search_ai", "merchant_search_ad", "merchant_search_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS merchant_search_fts")
    op.drop_table('merchant_search')
