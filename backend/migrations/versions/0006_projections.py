"""projections: wallet bindings are records; award ids come from their records

Revision ID: 0006_projections
Revises: 0005_merchant_views
Create Date: 2026-12-03 15:31:42

- ``merchant_wallet`` gains the ``record_id`` and ``leaf_index`` of its
  ``merchant.wallet_bound`` record (NULL for bindings made before this revision:
  ``honest-metering audit`` lists them as rows in no record).
- A demonstration award's id becomes the first 32 hex digits of its record id, so
  the log alone names it (``backend/pledges/records.py``); existing ids are rewritten.
- Kept merchant views are caches: they are dropped and rebuilt on demand.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006_projections'
down_revision: str | None = '0005_merchant_views'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('merchant_wallet', schema=None) as batch_op:
        batch_op.add_column(sa.Column('record_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('leaf_index', sa.BigInteger(), nullable=True))
        batch_op.create_unique_constraint('uq_merchant_wallet_record_id', ['record_id'])

    bind = op.get_bind()
    has_awards = bind.execute(sa.text("SELECT count(*) FROM demonstration_award")).scalar()
    if has_awards:
        fks = []
        if bind.dialect.name == "sqlite":
            op.execute("PRAGMA defer_foreign_keys = ON")  # checked at commit instead
        if bind.dialect.name == "postgresql":
            fks = [
                fk for fk in sa.inspect(bind).get_foreign_keys('demonstration_withdrawal')
                if fk['referred_table'] == 'demonstration_award'
            ]
            for fk in fks:
                op.drop_constraint(fk['name'], 'demonstration_withdrawal', type_='foreignkey')
        op.execute(
            "UPDATE demonstration_withdrawal SET award_id = (SELECT substr(a.record_id, 1, 32) "
            "FROM demonstration_award a WHERE a.id = demonstration_withdrawal.award_id)"
        )
        op.execute("UPDATE demonstration_award SET id = substr(record_id, 1, 32)")
        for fk in fks:
            op.create_foreign_key(
                fk['name'], 'demonstration_withdrawal', 'demonstration_award',
                ['award_id'], ['id'],
            )
    op.execute("DELETE FROM merchant_view")


def downgrade() -> None:
    with op.batch_alter_table('merchant_wallet', schema=None) as batch_op:
        batch_op.drop_constraint('uq_merchant_wallet_record_id', type_='unique')
        batch_op.drop_column('leaf_index')
        batch_op.drop_column('record_id')
