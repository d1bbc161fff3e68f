"""rate_proposal.min_interval_months: the minimum interval per tier a proposal states

Revision ID: 0014_rate_intervals
Revises: 0013_rating_basis
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014_rate_intervals'
down_revision: str | None = '0013_rating_basis'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('rate_proposal') as batch:
        batch.add_column(sa.Column('min_interval_months', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('rate_proposal') as batch:
        batch.drop_column('min_interval_months')
