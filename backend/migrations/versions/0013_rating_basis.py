"""rating_change.basis_size: the log size each rating in the history was computed from

Revision ID: 0013_rating_basis
Revises: 0009_kept_pages
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013_rating_basis'
down_revision: str | None = '0009_kept_pages'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('rating_change') as batch:
        batch.add_column(sa.Column('basis_size', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('rating_change') as batch:
        batch.drop_column('basis_size')
