"""Inspection directory record kinds and their projections.

- ``inspection.inspector`` -> ``inspector``: the inspector as of its newest version
  (a version ``supersedes`` the previous one; ``created_at`` is the first version's
  time, ``updated_at`` the newest one's). The name never enters a record: the row
  keeps it with the salt of the record's ``name_digest`` (private columns, given by
  the writing service beside the record, checked by audit against the digest of the
  row's newest record, never shown to the public).
- ``inspection.item`` -> ``inspection_item``: the item as of its newest version; its
  id is the record's ``item_id``.
- ``inspection.conflict`` -> ``inspector_conflict`` (the declared reason is private
  and in no record, so audit cannot check it); ``inspection.conflict_withdrawn``
  marks the declaration its ``revokes`` ref names as withdrawn. The row's ``id`` is
  a surrogate the database assigns: rows are keyed by their record id.

The ``draw.*`` records' projections are in ``backend/inspections/draws/records.py``.

Pure declarations (see ``backend/ledger/projection.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Table

from backend.inspections.models import InspectionItem, Inspector, InspectorConflict
from backend.ledger.projection import Projection, Rec, Rows, day, register

INSPECTOR = "inspection.inspector"
ITEM = "inspection.item"
CONFLICT = "inspection.conflict"
CONFLICT_WITHDRAWN = "inspection.conflict_withdrawn"

COMMITTED = "draw.committed"
REVEALED = "draw.revealed"
PLAN = "draw.plan"
FAILED = "draw.failed"
EXPIRED = "draw.expired"

INSPECTOR_TABLE: Table = Inspector.__table__  # type: ignore[attr-defined]
ITEM_TABLE: Table = InspectionItem.__table__  # type: ignore[attr-defined]
CONFLICT_TABLE: Table = InspectorConflict.__table__  # type: ignore[attr-defined]
NAME_COLUMNS = frozenset({"name", "name_salt"})


def name_digest(salt_hex: str, name: str) -> str:
    """An inspector's ``name_digest``: ``SHA-256(salt || UTF-8 name)``, hex."""
    return hashlib.sha256(bytes.fromhex(salt_hex) + name.encode("utf-8")).hexdigest()


def _inspector(rec: Rec, rows: Rows) -> None:
    b = rec.body
    key = (b["inspector_id"],)
    values = {
        "unit": b["unit"],
        "region_code": b["region_code"],
        "active": bool(b["active"]),
        "updated_at": rec.at,
        "record_id": rec.record_id,
        "leaf_index": rec.leaf_index,
        # A version that keeps the name carries none: the row keeps the one it has.
        **rows.private_of(rec.record_id),
    }
    if rows.get(INSPECTOR_TABLE, key) is None:
        rows.insert(INSPECTOR_TABLE, {"id": key[0], "created_at": rec.at, **values})
    else:
        rows.update(INSPECTOR_TABLE, key, values)


def _check_name(live: Mapping[str, Any], body: Mapping[str, Any]) -> str | None:
    try:
        digest = name_digest(str(live.get("name_salt") or ""), str(live.get("name") or ""))
    except ValueError:
        return "name_salt is not hex"
    if digest != body.get("name_digest"):
        return "name/name_salt do not match the record's name_digest"
    return None


def _item(rec: Rec, rows: Rows) -> None:
    b = rec.body
    key = (int(b["item_id"]),)
    values = {
        "title": b["title"],
        "legal_basis": b["legal_basis"],
        "sectors": list(b["sectors"]),
        "method": b["method"],
        "active": bool(b["active"]),
        "updated_at": rec.at,
        "record_id": rec.record_id,
        "leaf_index": rec.leaf_index,
    }
    if rows.get(ITEM_TABLE, key) is None:
        rows.insert(ITEM_TABLE, {"id": key[0], "created_at": rec.at, **values})
    else:
        rows.update(ITEM_TABLE, key, values)


def _conflict(rec: Rec, rows: Rows) -> None:
    b = rec.body
    rows.insert(
        CONFLICT_TABLE,
        {
            "inspector_id": b["inspector_id"],
            "uscc": b["uscc"],
            "declared_on": day(b["declared_on"]),
            "reason": None,
            **rec.provenance(),
            "withdrawn_on": None,
            "withdrawn_record_id": None,
            **rows.private_of(rec.record_id),
        },
    )


def _conflict_withdrawn(rec: Rec, rows: Rows) -> None:
    declared = rec.ref("revokes")
    if declared is None or rows.get(CONFLICT_TABLE, (declared,)) is None:
        # The service appends a withdrawal only after its declaration (whose row it
        # checks), so in the log this never happens: there is nothing to mark.
        return
    rows.update(
        CONFLICT_TABLE,
        (declared,),
        {"withdrawn_on": day(rec.body["withdrawn_on"]), "withdrawn_record_id": rec.record_id},
    )


def _conflict_record(rec: Rec, rows: Rows) -> None:
    if rec.type == CONFLICT:
        _conflict(rec, rows)
    else:
        _conflict_withdrawn(rec, rows)


register(
    Projection(
        INSPECTOR_TABLE,
        key=("id",),
        types=frozenset({INSPECTOR}),
        apply=_inspector,
        private=NAME_COLUMNS,
        check_private=_check_name,
    ),
    Projection(ITEM_TABLE, key=("id",), types=frozenset({ITEM}), apply=_item),
    Projection(
        CONFLICT_TABLE,
        key=("record_id",),
        types=frozenset({CONFLICT, CONFLICT_WITHDRAWN}),
        apply=_conflict_record,
        unique=(),
        private=frozenset({"reason"}),
        surrogate=frozenset({"id"}),
    ),
)
