"""Supervision outcome record kinds and their projection.

Every ``supervision.*`` record whose kind (``kinds.py``) this table projects
(all but ``supervision.demonstration``, a pledges projection,
``backend/pledges/records.py``) projects to one ``supervision_record`` row:
the record's body and refs as recorded, its date of legal effect (the rating's
rule, :func:`backend.credit.rating.effective_on`), the record it acts on and the
draw a spot check names.

Pure declarations (see ``backend/ledger/projection.py``).
"""

from __future__ import annotations

from sqlalchemy import Table

from backend.credit.rating import effective_on
from backend.ledger.projection import Projection, Rec, Rows, register
from backend.supervision.kinds import KINDS
from backend.supervision.models import RECORD_TYPE_PREFIX, SupervisionRecord

RECORD: Table = SupervisionRecord.__table__  # type: ignore[attr-defined]
TYPES = frozenset(k.type for k in KINDS if k.projected_by == RECORD.name)


def _outcome(rec: Rec, rows: Rows) -> None:
    refs = rec.refs
    rows.insert(
        RECORD,
        {
            "record_id": rec.record_id,
            "leaf_index": rec.leaf_index,
            "uscc": rec.subject,
            "kind": rec.type[len(RECORD_TYPE_PREFIX) :],
            "effective_on": effective_on(rec.envelope),
            "body": dict(rec.body),
            "refs": refs,
            "target_record_id": refs[0]["record"] if refs else None,
            "draw_id": rec.body.get("draw_id"),
            "at": rec.at,
            "account_id": rec.account_id,
        },
    )


register(Projection(RECORD, key=("record_id",), types=TYPES, apply=_outcome, unique=()))
