"""Alembic environment: runs on the connection handed in by backend.db."""

from alembic import context

from backend.models import metadata

config = context.config


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Leave out what the database keeps by itself: SQLite's FTS5 index over
    ``merchant_search`` (its virtual table and shadow tables, migration 0008)."""
    return not (type_ == "table" and name is not None and name.startswith("merchant_search_fts"))


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("backend.migrations must be run through backend.db.Database.migrate")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
