"""kept pages: rendered shop pages under their version stamp (backend/disclosure/kept.py)

Revision ID: 0009_kept_pages
Revises: 0008_merchant_search
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0009_kept_pages'
down_revision: str | None = '0008_merchant_search'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'kept_page',
        sa.Column('uscc', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False),
        sa.Column('etag', sa.String(length=64), nullable=False),
        sa.Column('body', sa.LargeBinary(), nullable=False),
        sa.Column('built_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('uscc'),
    )


def downgrade() -> None:
    op.drop_table('kept_page')
