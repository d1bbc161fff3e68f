"""subject_index_entry: the subject index's rows (completeness proofs, issue 17)

Revision ID: 0015_subject_index
Revises: 0014_rate_intervals
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015_subject_index'
down_revision: str | None = '0014_rate_intervals'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'subject_index_entry',
        sa.Column('subject', sa.String(length=18), nullable=False),
        sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('leaf_index', sa.BigInteger(), nullable=False),
        sa.Column('record_id', sa.String(length=64), nullable=False),
        sa.Column('ids_digest', sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint('subject', 'seq'),
        sa.UniqueConstraint('leaf_index'),
    )


def downgrade() -> None:
    op.drop_table('subject_index_entry')
