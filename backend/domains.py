"""Every domain's record declarations, loaded: projections and after-append hooks.

``backend.ledger.write.write`` refuses to append before this module is imported,
so no record can reach the log without its projection and its re-rating. The
app (``backend/app.py``), the command line (``backend/cli.py``) and the tests
import it; nothing below the app layer does.
"""

from __future__ import annotations

import backend.models  # noqa: F401  (every table, for foreign-key order)
from backend.accounts import records as accounts_records  # noqa: F401
from backend.credit import frequency_records  # noqa: F401
from backend.credit import records as credit_records  # noqa: F401
from backend.credit import service as credit_service
from backend.disclosure import kept
from backend.inspections import records as inspections_records  # noqa: F401
from backend.inspections.draws import inputs as draw_inputs
from backend.inspections.draws import records as draw_records  # noqa: F401
from backend.inspections.draws import results as draw_results
from backend.ledger import index_store, projection, write
from backend.merchants import records as merchants_records  # noqa: F401
from backend.pledges import records as pledges_records  # noqa: F401
from backend.shops import views as merchant_views
from backend.supervision import records as supervision_records  # noqa: F401
from backend.supervision import service as supervision_service

write.register_hook(credit_service.RERATE_HOOK)
projection.register_check(credit_service.RATINGS_CHECK)
projection.register_check(credit_service.HISTORY_CHECK)
projection.register_check(merchant_views.VIEWS_CHECK)
projection.register_check(draw_inputs.INPUTS_CHECK)
draw_results.set_results_reader(supervision_service.draw_results)
projection.register_check(kept.PAGES_CHECK)
projection.register_check(index_store.SUBJECT_INDEX_CHECK)
write.mark_ready()

