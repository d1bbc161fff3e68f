"""Imports every table module so ``SQLModel.metadata`` is complete (Alembic, tests)."""

from sqlmodel import SQLModel

from backend.ledger import models as ledger_models  # noqa: F401

metadata = SQLModel.metadata
