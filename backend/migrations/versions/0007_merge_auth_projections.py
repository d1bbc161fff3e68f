"""merge the two 0006 heads (auth limits and revocation; projections)

Both were written on 0005 in parallel branches. One head again, so that
``scripts/make_migration.py`` (Alembic autogenerate) has one revision to build on.

Revision ID: 0007_merge
Revises: 0006_auth, 0006_projections
"""

from collections.abc import Sequence

revision: str = '0007_merge'
down_revision: str | tuple[str, ...] | None = ('0006_auth', '0006_projections')
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
