"""Write a new Alembic revision from the difference between the models and the migrations.

Usage: python scripts/make_migration.py "add merchants"
It migrates a scratch SQLite database to the newest revision, compares it
with ``backend.models.metadata`` and writes the difference as a new revision
in ``backend/migrations/versions`` (review it before committing).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alembic import command  # noqa: E402

from backend.db import Database, alembic_config  # noqa: E402


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit('usage: python scripts/make_migration.py "message"')
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{tmp}/scratch.sqlite3")
        db.migrate()
        with db.engine.connect() as conn:
            cfg = alembic_config(conn)
            command.revision(cfg, message=sys.argv[1], autogenerate=True)
            conn.commit()
        db.dispose()


if __name__ == "__main__":
    main()
