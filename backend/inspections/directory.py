"""The two directories of 双随机 ("一单两库" minus the merchant registry): inspectors
(执法检查人员名录库) with their declared conflicts of interest, and inspection items
(随机抽查事项清单).

Every change is a record (see ``docs/records.md``: ``inspection.inspector``,
``inspection.item``, ``inspection.conflict``, ``inspection.conflict_withdrawn``),
written through the one write path (``backend.ledger.write``); the rows are the
records' projections (``backend/inspections/records.py``), never written here. An
inspector's name never enters a record: only ``name_digest = SHA-256(salt || UTF-8
name)``; the name and the salt are private columns, given to the write path beside
the record. Conflict reasons stay private too.

Draws read the directories through :func:`active_inspectors` and
:func:`active_conflicts`; nothing here touches the ledger.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from backend.accounts.models import Role
from backend.accounts.service import Principal, require_role
from backend.errors import Conflict, NotFound, ValidationFailed
from backend.inspections import selection
from backend.inspections.models import (
    LEGAL_BASIS_MAX,
    METHOD_MAX,
    NAME_MAX,
    REASON_MAX,
    TITLE_MAX,
    UNIT_MAX,
    ConflictCreate,
    ConflictPublic,
    ConflictWritten,
    InspectionItem,
    Inspector,
    InspectorConflict,
    InspectorCreate,
    InspectorPage,
    InspectorPublic,
    InspectorUpdate,
    InspectorWritten,
    ItemCreate,
    ItemPage,
    ItemPublic,
    ItemUpdate,
    ItemWritten,
)
from backend.inspections.records import (
    CONFLICT,
    CONFLICT_WITHDRAWN,
    INSPECTOR,
    ITEM,
    name_digest,
)
from backend.ledger import log
from backend.ledger.records import RecordDraft, Ref
from backend.ledger.status import anchor_status
from backend.ledger.write import write
from backend.merchants.service import parse_region, parse_sector, parse_uscc
from backend.merchants.text import clean_text
from backend.timeutil import today_shanghai, utcnow

STAFF: tuple[Role, ...] = ("regulator", "admin")
# PostgreSQL advisory locks (SQLite write transactions are serialised already).
PG_DIRECTORY_LOCK = 7340030
PG_DRAW_LOCK = 7340031
_GENERATED_ID = re.compile(r"insp-(\d+)")


class InspectorNotFound(NotFound):
    pass


class InspectorExists(Conflict):
    pass


class InvalidInspector(ValidationFailed):
    pass


class ItemNotFound(NotFound):
    pass


class ConflictNotFound(NotFound):
    pass


class ConflictAlreadyWithdrawn(Conflict):
    pass


class ConflictAlreadyDeclared(Conflict):
    pass


class NothingChanged(ValidationFailed):
    pass


def serialise(session: Session, key: int) -> None:
    """Hold ``key`` until commit: ids allocated as max + 1 then never collide."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


# --- inspectors -------------------------------------------------------------------------


def _inspector_body(row: Inspector) -> dict[str, object]:
    """The body of the record the row is the projection of."""
    return {
        "inspector_id": row.id,
        "unit": row.unit,
        "region_code": row.region_code,
        "active": row.active,
        "name_digest": name_digest(row.name_salt, row.name),
    }


def _unit(value: str) -> str:
    unit = clean_text(value, field="unit", max_len=UNIT_MAX)
    try:
        selection.InspectorEntry(id="x", unit=unit, region_code="511900")
    except selection.InvalidDrawInput as exc:
        raise InvalidInspector(str(exc), field="unit") from None
    return unit


def _inspector_id(session: Session, given: str | None) -> str:
    if given is not None:
        try:
            return selection.validate_inspector_id(given.strip())
        except selection.InvalidDrawInput as exc:
            raise InvalidInspector(str(exc), field="id") from None
    highest = 0
    for (iid,) in session.execute(
        select(col(Inspector.id)).where(col(Inspector.id).like("insp-%"))
    ):
        m = _GENERATED_ID.fullmatch(iid)
        if m:
            highest = max(highest, int(m.group(1)))
    return f"insp-{highest + 1:04d}"


def inspector_public(row: Inspector, *, staff: bool) -> InspectorPublic:
    return InspectorPublic(
        id=row.id,
        unit=row.unit,
        region_code=row.region_code,
        active=row.active,
        record_id=row.record_id,
        name=row.name if staff else None,
    )


def _inspector_written(
    session: Session, inspector_id: str, rec: log.AppendedRecord
) -> InspectorWritten:
    row = session.get(Inspector, inspector_id)
    assert row is not None  # projected by backend/inspections/records.py
    return InspectorWritten(
        **inspector_public(row, staff=True).model_dump(),
        leaf_index=rec.leaf_index,
        anchor_status=anchor_status(session, rec.leaf_index),
    )


def get_inspector(session: Session, inspector_id: str) -> Inspector:
    row = session.get(Inspector, inspector_id)
    if row is None:
        raise InspectorNotFound(f"no inspector with id {inspector_id}")
    return row


def create_inspector(
    session: Session,
    *,
    principal: Principal | None,
    data: InspectorCreate,
    now: datetime | None = None,
) -> InspectorWritten:
    p = require_role(principal, *STAFF)
    now = now or utcnow()
    serialise(session, PG_DIRECTORY_LOCK)
    inspector_id = _inspector_id(session, data.id)
    unit = _unit(data.unit)
    region_code = parse_region(data.region_code)
    name = clean_text(data.name, field="name", max_len=NAME_MAX)
    salt = secrets.token_hex(16)
    if session.get(Inspector, inspector_id) is not None:
        raise InspectorExists(f"an inspector with id {inspector_id} already exists")
    sealed = log.seal(
        RecordDraft(
            type=INSPECTOR,
            subject=None,
            actor=p.actor,
            body={
                "inspector_id": inspector_id,
                "unit": unit,
                "region_code": region_code,
                "active": data.active,
                "name_digest": name_digest(salt, name),
            },
        ),
        at=now,
    )
    try:
        rec = write(
            session,
            [sealed],
            now=now,
            private={sealed.record_id: {"name": name, "name_salt": salt}},
        ).one
        session.commit()
    except IntegrityError:
        session.rollback()
        raise InspectorExists(f"an inspector with id {inspector_id} already exists") from None
    return _inspector_written(session, inspector_id, rec)


def update_inspector(
    session: Session,
    *,
    principal: Principal | None,
    inspector_id: str,
    data: InspectorUpdate,
    now: datetime | None = None,
) -> InspectorWritten:
    """A new version of the inspector: a record that supersedes the previous one."""
    p = require_role(principal, *STAFF)
    now = now or utcnow()
    row = get_inspector(session, inspector_id)
    before = _inspector_body(row)
    body = dict(before)
    private: dict[str, str] = {}
    if data.name is not None:
        # A new salt per name: the digest of a name never repeats across versions.
        private["name"] = clean_text(data.name, field="name", max_len=NAME_MAX)
        private["name_salt"] = secrets.token_hex(16)
        body["name_digest"] = name_digest(private["name_salt"], private["name"])
    if data.unit is not None:
        body["unit"] = _unit(data.unit)
    if data.region_code is not None:
        body["region_code"] = parse_region(data.region_code)
    if data.active is not None:
        body["active"] = data.active
    if data.name is None and body == before:
        raise NothingChanged(f"the update does not change inspector {inspector_id}")
    sealed = log.seal(
        RecordDraft(
            type=INSPECTOR,
            subject=None,
            actor=p.actor,
            body=body,
            refs=(Ref("supersedes", row.record_id),),
        ),
        at=now,
    )
    rec = write(session, [sealed], now=now, private={sealed.record_id: private}).one
    session.commit()
    return _inspector_written(session, inspector_id, rec)


def list_inspectors(
    session: Session, *, staff: bool, active: bool | None = None, region: str | None = None
) -> InspectorPage:
    query = select(Inspector).order_by(col(Inspector.id))
    if active is not None:
        query = query.where(col(Inspector.active) == active)
    if region is not None:
        query = query.where(col(Inspector.region_code) == parse_region(region))
    rows = session.execute(query).scalars().all()
    return InspectorPage(total=len(rows), items=[inspector_public(r, staff=staff) for r in rows])


def active_inspectors(
    session: Session, *, regions: list[str] | None = None
) -> list[selection.InspectorEntry]:
    """The directory a draw commits to: every active inspector (of ``regions``)."""
    query = select(col(Inspector.id), col(Inspector.unit), col(Inspector.region_code)).where(
        col(Inspector.active).is_(True)
    )
    if regions:
        query = query.where(col(Inspector.region_code).in_(regions))
    return [
        selection.InspectorEntry(id=i, unit=u, region_code=r)
        for i, u, r in session.execute(query.order_by(col(Inspector.id)))
    ]


# --- conflicts ---------------------------------------------------------------------------


def conflict_public(row: InspectorConflict, *, staff: bool) -> ConflictPublic:
    assert row.id is not None
    return ConflictPublic(
        id=row.id,
        inspector_id=row.inspector_id,
        uscc=row.uscc,
        declared_on=row.declared_on,
        active=row.withdrawn_record_id is None,
        declaration_record_id=row.record_id,
        withdrawn_on=row.withdrawn_on,
        withdrawn_record_id=row.withdrawn_record_id,
        reason=row.reason if staff else None,
    )


def _conflict_written(
    session: Session, row: InspectorConflict, rec: log.AppendedRecord
) -> ConflictWritten:
    return ConflictWritten(
        **conflict_public(row, staff=True).model_dump(),
        record_id=rec.record_id,
        leaf_index=rec.leaf_index,
        anchor_status=anchor_status(session, rec.leaf_index),
    )


def declare_conflict(
    session: Session,
    *,
    principal: Principal | None,
    inspector_id: str,
    data: ConflictCreate,
    now: datetime | None = None,
) -> ConflictWritten:
    """An inspector declares a conflict of interest with a merchant (回避)."""
    p = require_role(principal, *STAFF)
    now = now or utcnow()
    inspector = get_inspector(session, inspector_id)
    uscc = parse_uscc(data.uscc)
    on = data.declared_on or today_shanghai(now)
    if on > today_shanghai(now):
        raise ValidationFailed(f"declared_on {on} is in the future")
    reason = None
    if data.reason is not None and data.reason.strip():
        reason = clean_text(data.reason, field="reason", max_len=REASON_MAX, multiline=True)
    existing = session.execute(
        select(col(InspectorConflict.id)).where(
            col(InspectorConflict.inspector_id) == inspector.id,
            col(InspectorConflict.uscc) == uscc,
            col(InspectorConflict.withdrawn_record_id).is_(None),
        )
    ).first()
    if existing is not None:
        raise ConflictAlreadyDeclared(
            f"inspector {inspector.id} already has an active conflict with {uscc} "
            f"(conflict {existing[0]})"
        )
    sealed = log.seal(
        RecordDraft(
            type=CONFLICT,
            subject=None,
            actor=p.actor,
            body={"inspector_id": inspector.id, "uscc": uscc, "declared_on": on.isoformat()},
            refs=(Ref("inspector", inspector.record_id),),
        ),
        at=now,
    )
    rec = write(session, [sealed], now=now, private={sealed.record_id: {"reason": reason}}).one
    session.commit()
    row = session.execute(
        select(InspectorConflict).where(col(InspectorConflict.record_id) == rec.record_id)
    ).scalar_one()  # projected by backend/inspections/records.py
    return _conflict_written(session, row, rec)


def withdraw_conflict(
    session: Session,
    *,
    principal: Principal | None,
    inspector_id: str,
    conflict_id: int,
    now: datetime | None = None,
) -> ConflictWritten:
    """End a declared conflict; the declaration stays in the log."""
    p = require_role(principal, *STAFF)
    now = now or utcnow()
    row = session.get(InspectorConflict, conflict_id)
    if row is None or row.inspector_id != inspector_id:
        raise ConflictNotFound(f"inspector {inspector_id} has no conflict {conflict_id}")
    if row.withdrawn_record_id is not None:
        raise ConflictAlreadyWithdrawn(
            f"conflict {conflict_id} was withdrawn on {row.withdrawn_on}"
        )
    on = today_shanghai(now)
    rec = write(
        session,
        RecordDraft(
            type=CONFLICT_WITHDRAWN,
            subject=None,
            actor=p.actor,
            body={
                "inspector_id": row.inspector_id,
                "uscc": row.uscc,
                "withdrawn_on": on.isoformat(),
            },
            refs=(Ref("revokes", row.record_id),),
        ),
        now=now,
    ).one
    session.commit()
    row = session.get(InspectorConflict, conflict_id)
    assert row is not None
    return _conflict_written(session, row, rec)


def list_conflicts(session: Session, *, inspector_id: str) -> list[ConflictPublic]:
    get_inspector(session, inspector_id)
    rows = (
        session.execute(
            select(InspectorConflict)
            .where(col(InspectorConflict.inspector_id) == inspector_id)
            .order_by(col(InspectorConflict.id))
        )
        .scalars()
        .all()
    )
    return [conflict_public(r, staff=True) for r in rows]


def active_conflicts(session: Session) -> set[tuple[str, str]]:
    """Every active declaration as (inspector_id, uscc), the form selection takes."""
    return {
        (i, u)
        for i, u in session.execute(
            select(col(InspectorConflict.inspector_id), col(InspectorConflict.uscc)).where(
                col(InspectorConflict.withdrawn_record_id).is_(None)
            )
        )
    }


# --- inspection items ---------------------------------------------------------------------


def _sectors(values: list[str]) -> list[str]:
    return sorted({parse_sector(v) for v in values})


def _item_body(row: InspectionItem) -> dict[str, object]:
    """The body of the record the row is the projection of."""
    return {
        "item_id": row.id,
        "title": row.title,
        "legal_basis": row.legal_basis,
        "sectors": list(row.sectors),
        "method": row.method,
        "active": row.active,
    }


def item_public(row: InspectionItem) -> ItemPublic:
    assert row.id is not None
    return ItemPublic(
        id=row.id,
        title=row.title,
        legal_basis=row.legal_basis,
        sectors=list(row.sectors),
        method=row.method,
        active=row.active,
        record_id=row.record_id,
    )


def _item_written(session: Session, item_id: int, rec: log.AppendedRecord) -> ItemWritten:
    row = session.get(InspectionItem, item_id)
    assert row is not None  # projected by backend/inspections/records.py
    return ItemWritten(
        **item_public(row).model_dump(),
        leaf_index=rec.leaf_index,
        anchor_status=anchor_status(session, rec.leaf_index),
    )


def get_item(session: Session, item_id: int) -> InspectionItem:
    row = session.get(InspectionItem, item_id)
    if row is None:
        raise ItemNotFound(f"no inspection item with id {item_id}")
    return row


def create_item(
    session: Session, *, principal: Principal | None, data: ItemCreate, now: datetime | None = None
) -> ItemWritten:
    p = require_role(principal, *STAFF)
    now = now or utcnow()
    # The id goes into the record, so it is allocated first (max + 1 under the write lock).
    serialise(session, PG_DIRECTORY_LOCK)
    next_id = (
        int(session.execute(select(func.coalesce(func.max(InspectionItem.id), 0))).scalar_one()) + 1
    )
    body = {
        "item_id": next_id,
        "title": clean_text(data.title, field="title", max_len=TITLE_MAX),
        "legal_basis": clean_text(
            data.legal_basis, field="legal_basis", max_len=LEGAL_BASIS_MAX, multiline=True
        ),
        "sectors": _sectors(data.sectors),
        "method": clean_text(data.method, field="method", max_len=METHOD_MAX, multiline=True),
        "active": data.active,
    }
    rec = write(
        session, RecordDraft(type=ITEM, subject=None, actor=p.actor, body=body), now=now
    ).one
    session.commit()
    return _item_written(session, next_id, rec)


def update_item(
    session: Session,
    *,
    principal: Principal | None,
    item_id: int,
    data: ItemUpdate,
    now: datetime | None = None,
) -> ItemWritten:
    p = require_role(principal, *STAFF)
    now = now or utcnow()
    row = get_item(session, item_id)
    before = _item_body(row)
    body = dict(before)
    if data.title is not None:
        body["title"] = clean_text(data.title, field="title", max_len=TITLE_MAX)
    if data.legal_basis is not None:
        body["legal_basis"] = clean_text(
            data.legal_basis, field="legal_basis", max_len=LEGAL_BASIS_MAX, multiline=True
        )
    if data.sectors is not None:
        body["sectors"] = _sectors(data.sectors)
    if data.method is not None:
        body["method"] = clean_text(data.method, field="method", max_len=METHOD_MAX, multiline=True)
    if data.active is not None:
        body["active"] = data.active
    if body == before:
        raise NothingChanged(f"the update does not change inspection item {item_id}")
    rec = write(
        session,
        RecordDraft(
            type=ITEM,
            subject=None,
            actor=p.actor,
            body=body,
            refs=(Ref("supersedes", row.record_id),),
        ),
        now=now,
    ).one
    session.commit()
    return _item_written(session, item_id, rec)


def list_items(session: Session, *, active: bool | None = None) -> ItemPage:
    query = select(InspectionItem).order_by(col(InspectionItem.id))
    if active is not None:
        query = query.where(col(InspectionItem.active) == active)
    rows = session.execute(query).scalars().all()
    return ItemPage(total=len(rows), items=[item_public(r) for r in rows])
