"""Inspection API: the inspector directory, the item list, and verifiable draws."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from backend.accounts.deps import OptionalUser, require_role
from backend.accounts.service import Principal
from backend.db import INT_KEY_MAX
from backend.deps import CtxDep, IntId, Offset, ReadSessionDep, SessionDep
from backend.errors import error_responses
from backend.inspections import directory
from backend.inspections.draws import base, commit, inputs, reading, reveal
from backend.inspections.models import (
    ConflictCreate,
    ConflictPublic,
    ConflictWritten,
    DrawCreate,
    DrawPage,
    DrawPublic,
    DrawStatus,
    DrawWritten,
    InspectorCreate,
    InspectorPage,
    InspectorUpdate,
    InspectorWritten,
    ItemCreate,
    ItemPage,
    ItemPublic,
    ItemUpdate,
    ItemWritten,
    RecusalList,
)

StaffUser = Annotated[Principal, require_role("regulator", "admin")]

ERRORS = error_responses(400, 401, 403, 404, 409, 422)
inspectors = APIRouter(prefix="/api/inspectors", tags=["inspections"], responses=ERRORS)
items = APIRouter(prefix="/api/inspection-items", tags=["inspections"], responses=ERRORS)
router = APIRouter(
    prefix="/api/draws",
    tags=["draws"],
    responses=error_responses(400, 401, 403, 404, 409, 422, 503),
)


def _is_staff(user: Principal | None) -> bool:
    return user is not None and user.role in directory.STAFF


# --- inspectors -------------------------------------------------------------------------


@inspectors.post("", response_model=InspectorWritten, status_code=201)
def create_inspector(
    session: SessionDep, user: StaffUser, body: InspectorCreate
) -> InspectorWritten:
    """Add an inspector to the directory (执法检查人员名录库). The name stays private."""
    return directory.create_inspector(session, principal=user, data=body)


@inspectors.get("", response_model=InspectorPage)
def list_inspectors(
    session: ReadSessionDep,
    user: OptionalUser,
    active: bool | None = None,
    region: Annotated[str | None, Query(max_length=16)] = None,
) -> InspectorPage:
    """The directory: ids, units and regions (names for staff only)."""
    return directory.list_inspectors(session, staff=_is_staff(user), active=active, region=region)


@inspectors.patch("/{inspector_id}", response_model=InspectorWritten)
def update_inspector(
    session: SessionDep, user: StaffUser, inspector_id: str, body: InspectorUpdate
) -> InspectorWritten:
    """Change an inspector (unit, region, active, name): a new record supersedes the last."""
    return directory.update_inspector(session, principal=user, inspector_id=inspector_id, data=body)


@inspectors.get("/{inspector_id}/conflicts", response_model=list[ConflictPublic])
def list_conflicts(
    session: ReadSessionDep, user: StaffUser, inspector_id: str
) -> list[ConflictPublic]:
    return directory.list_conflicts(session, inspector_id=inspector_id)


@inspectors.post("/{inspector_id}/conflicts", response_model=ConflictWritten, status_code=201)
def declare_conflict(
    session: SessionDep, user: StaffUser, inspector_id: str, body: ConflictCreate
) -> ConflictWritten:
    """Declare a conflict of interest: the inspector never checks that merchant (回避)."""
    return directory.declare_conflict(session, principal=user, inspector_id=inspector_id, data=body)


@inspectors.delete("/{inspector_id}/conflicts/{conflict_id}", response_model=ConflictWritten)
def withdraw_conflict(
    session: SessionDep, user: StaffUser, inspector_id: str, conflict_id: IntId
) -> ConflictWritten:
    """Withdraw a declaration; it stays in the log, with the withdrawal record."""
    return directory.withdraw_conflict(
        session, principal=user, inspector_id=inspector_id, conflict_id=conflict_id
    )


# --- items -----------------------------------------------------------------------------------


@items.post("", response_model=ItemWritten, status_code=201)
def create_item(session: SessionDep, user: StaffUser, body: ItemCreate) -> ItemWritten:
    """Add an inspection item (随机抽查事项): title, legal basis, sectors, method."""
    return directory.create_item(session, principal=user, data=body)


@items.get("", response_model=ItemPage)
def list_items(session: ReadSessionDep, active: bool | None = None) -> ItemPage:
    return directory.list_items(session, active=active)


@items.get("/{item_id}", response_model=ItemPublic)
def get_item(session: ReadSessionDep, item_id: IntId) -> ItemPublic:
    return directory.item_public(directory.get_item(session, item_id))


@items.patch("/{item_id}", response_model=ItemWritten)
def update_item(
    session: SessionDep, user: StaffUser, item_id: IntId, body: ItemUpdate
) -> ItemWritten:
    return directory.update_item(session, principal=user, item_id=item_id, data=body)


# --- draws -----------------------------------------------------------------------------------


@router.post("", response_model=DrawWritten, status_code=201)
def create_draw(ctx: CtxDep, user: StaffUser, body: DrawCreate) -> DrawWritten:
    """Snapshot the eligible merchants and commit the draw on the ledger.

    503 LedgerUnavailable before anything is written if the ledger does not
    answer; if it fails after the draw was recorded, the 503 names the draw,
    which stays ``committing`` until ``POST /api/draws/{id}/commit`` succeeds.
    """
    return commit.create_draw(ctx, principal=user, data=body)


@router.get("", response_model=DrawPage)
def list_draws(
    session: ReadSessionDep,
    status: DrawStatus | None = None,
    item_id: Annotated[int | None, Query(ge=1, le=INT_KEY_MAX)] = None,
    overdue: Annotated[
        bool, Query(description="only draws with checks whose results are overdue")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Offset = 0,
) -> DrawPage:
    return reading.list_draws(
        session, status=status, item_id=item_id, overdue_only=overdue, limit=limit, offset=offset
    )


@router.get("/{draw}", response_model=DrawPublic)
def get_draw(ctx: CtxDep, session: ReadSessionDep, user: OptionalUser, draw: str) -> DrawPublic:
    """A draw by id or number: commitment, reveal, chain transactions, plan and results."""
    return reading.draw_public(session, ctx=ctx, ref=draw, staff=_is_staff(user))


@router.post("/{draw}/commit", response_model=DrawPublic)
def retry_commit(ctx: CtxDep, user: StaffUser, draw: str) -> DrawPublic:
    """Finish the on-chain commitment of a ``committing`` draw (no-op otherwise)."""
    return commit.retry_commit(ctx, principal=user, ref=draw)


@router.post("/{draw}/reveal", response_model=DrawWritten)
def reveal_draw(ctx: CtxDep, user: StaffUser, draw: str) -> DrawWritten:
    """Reveal the seed on the ledger (mining up to the target block where possible),
    run the selection and publish the plan."""
    return reveal.reveal_draw(ctx, principal=user, ref=draw)


@router.get("/{draw}/recusals", response_model=RecusalList)
def get_recusals(session: ReadSessionDep, draw: str) -> RecusalList:
    """The committed recusal pairs (conflicts and previous-draw rotation) and their sources."""
    return reading.recusal_list(session, ref=draw)


@router.get("/{draw}/snapshot")
def get_snapshot(ctx: CtxDep, session: ReadSessionDep, draw: str) -> StreamingResponse:
    """The committed snapshot entries in USCC order, so anyone can recompute its root.

    ``{"draw_id", "snapshot_root", "snapshot_size", "entries": [{"uscc", "tier",
    "region_code", "sector"}, ...]}``, streamed.
    """
    row = base.load_draw(session, draw)
    return StreamingResponse(
        inputs.snapshot_json(ctx.db, draw_id=row.id, body=row.body), media_type="application/json"
    )
