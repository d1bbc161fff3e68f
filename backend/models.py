"""Imports every table module so ``SQLModel.metadata`` is complete (Alembic, tests)."""

from sqlmodel import SQLModel

from backend.accounts import models as accounts_models  # noqa: F401
from backend.credit import models as credit_models  # noqa: F401
from backend.disclosure import kept as disclosure_kept  # noqa: F401
from backend.inspections import models as inspections_models  # noqa: F401
from backend.ledger import models as ledger_models  # noqa: F401
from backend.merchants import models as merchants_models  # noqa: F401
from backend.pledges import models as pledges_models  # noqa: F401
from backend.shops import models as shops_models  # noqa: F401
from backend.supervision import models as supervision_models  # noqa: F401
from backend.supervision import tickets as supervision_tickets  # noqa: F401

metadata = SQLModel.metadata
