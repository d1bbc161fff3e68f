"""Supervision outcomes as ``supervision_record`` holds them, for pages that show them.

A page must show what the table says (the table is the projection the service
reads), so that the browser's 验证, which compares the page with the record
from the log, notices a table that no longer matches its record. This module
therefore never reads the log, and never writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from backend.ledger.records import format_time
from backend.supervision.models import RECORD_TYPE_PREFIX, SupervisionRecord
from backend.timeutil import aware

_CHUNK = 500


def records_as_held(session: Session, wanted: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``record_id`` → the record as its row holds it: ``type``, ``at``, ``body``, ``refs``
    (the envelope's fields, in its JSON form), for ``wanted`` (``record_id`` → the
    record's type). Ids without a row are left out."""
    ids = sorted(wanted)
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), _CHUNK):
        rows = session.execute(
            select(SupervisionRecord).where(
                col(SupervisionRecord.record_id).in_(ids[i : i + _CHUNK])
            )
        ).scalars()
        for row in rows:
            out[row.record_id] = {
                "type": RECORD_TYPE_PREFIX + row.kind,
                "at": format_time(aware(row.at)),
                "body": row.body,
                "refs": row.refs,
            }
    return out
