"""Pledge API, demonstration units, overview statistics and the counter sign."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from sqlmodel import Session

from backend.accounts.deps import MerchantUser, RegulatorUser
from backend.accounts.idempotency import HEADER as IDEMPOTENCY_HEADER
from backend.context import AppContext
from backend.deps import CtxDep, Offset, ReadSessionDep, SessionDep
from backend.errors import error_responses
from backend.ledger import trustroot_store
from backend.ledger.trustroot import short_fingerprint
from backend.pledges import service, signs
from backend.pledges.models import (
    DemonstrationAction,
    DemonstrationUnitList,
    DemonstrationWritten,
    OverviewStats,
    PledgeCreate,
    PledgeDraft,
    PledgeList,
    PledgePublic,
    PledgeTemplatePublic,
    PledgeWithdraw,
    PledgeWritten,
    TypedDataResponse,
)
from backend.pledges.queries import shanghai_date, utcnow

router = APIRouter(tags=["pledges"], responses=error_responses(400, 401, 403, 404, 409, 422))
pages = APIRouter(tags=["pledge signs"], responses=error_responses(404, 422))

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_HEADER,
        max_length=200,
        description="a retry with the same key returns the first result",
    ),
]


def _today() -> date:
    return shanghai_date(utcnow())


@router.get("/api/pledge-templates", response_model=list[PledgeTemplatePublic])
def list_templates(
    sector: Annotated[str | None, Query(max_length=32)] = None,
) -> list[PledgeTemplatePublic]:
    """Published pledge templates (generic items + the sector's own), every version."""
    return service.list_templates(sector=sector)


@router.get("/api/pledge-templates/{sector}/{version}", response_model=PledgeTemplatePublic)
def get_template(sector: str, version: int) -> PledgeTemplatePublic:
    return service.get_template_public(sector=sector, version=version)


@router.post("/api/pledges", response_model=PledgeWritten, status_code=201)
def make_pledge(
    session: SessionDep,
    response: Response,
    user: MerchantUser,
    body: PledgeCreate,
    idempotency_key: IdempotencyKey = None,
) -> PledgeWritten:
    """The logged-in merchant pledges (renewing its previous pledge, if any)."""
    result, replayed = service.make_pledge(
        session, principal=user, data=body, idempotency_key=idempotency_key
    )
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return result


@router.post("/api/pledges/typed-data", response_model=TypedDataResponse)
def typed_data(session: ReadSessionDep, user: MerchantUser, body: PledgeDraft) -> TypedDataResponse:
    """The EIP-712 typed data to sign for a pledge draft (docs/eip712-pledge.md)."""
    return service.typed_data_for(session, principal=user, draft=body)


@router.get("/api/pledges/{pledge_id}", response_model=PledgePublic)
def get_pledge(session: ReadSessionDep, pledge_id: str) -> PledgePublic:
    return service.get_pledge(session, pledge_id=pledge_id, today=_today())


@router.post("/api/pledges/{pledge_id}/withdraw", response_model=PledgeWritten)
def withdraw(
    session: SessionDep,
    response: Response,
    user: MerchantUser,
    pledge_id: str,
    body: PledgeWithdraw,
    idempotency_key: IdempotencyKey = None,
) -> PledgeWritten:
    """The merchant withdraws its active pledge."""
    result, replayed = service.withdraw_pledge(
        session,
        principal=user,
        pledge_id=pledge_id,
        reason=body.reason,
        idempotency_key=idempotency_key,
    )
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return result


@router.get("/api/merchants/{uscc}/pledges", response_model=PledgeList)
def list_pledges(session: ReadSessionDep, uscc: str) -> PledgeList:
    """Every pledge of a merchant, newest first, with its status."""
    return service.list_pledges(session, uscc=uscc, today=_today())


@router.post(
    "/api/merchants/{uscc}/demonstration", response_model=DemonstrationWritten, status_code=201
)
def demonstration(
    session: SessionDep, user: RegulatorUser, uscc: str, body: DemonstrationAction
) -> DemonstrationWritten:
    """A regulator awards (default three years) or withdraws 示范单位 status."""
    return service.demonstration(session, principal=user, uscc=uscc, action=body)


@router.get("/api/demonstration-units", response_model=DemonstrationUnitList)
def demonstration_units(
    session: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Offset = 0,
) -> DemonstrationUnitList:
    """Current demonstration units, newest award first."""
    return service.list_demonstration_units(session, limit=limit, offset=offset, today=_today())


@router.get("/api/stats/overview", response_model=OverviewStats)
def overview(session: ReadSessionDep) -> OverviewStats:
    """Merchants, verified merchants, active pledges and demonstration units
    next to the plan's targets (200 by 2025, 700 by 2035)."""
    return service.overview(session, today=_today())


_SVG_HEADERS = {
    # The sign is a document, never a script host, even if opened directly.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}


def _sign_data(ctx: AppContext, session: Session, uscc: str) -> signs.SignData:
    data = service.sign_data(session, settings=ctx.settings, uscc=uscc, today=_today())
    fingerprint = trustroot_store.published_fingerprint(ctx)
    if fingerprint is None:
        return data
    return replace(data, trust_root=short_fingerprint(fingerprint))


@pages.get("/merchants/{uscc}/sign.svg", response_class=Response)
def sign_svg(ctx: CtxDep, session: ReadSessionDep, uscc: str) -> Response:
    """The printable pledge sign (A4, SVG) with a QR code to the public page."""
    data = _sign_data(ctx, session, uscc)
    return Response(
        signs.render_svg(data),
        media_type="image/svg+xml; charset=utf-8",
        headers={
            **_SVG_HEADERS,
            "Content-Disposition": f'inline; filename="pledge-sign-{data.uscc}.svg"',
        },
    )


@pages.get("/merchants/{uscc}/sign.pdf", response_class=Response)
def sign_pdf(ctx: CtxDep, session: ReadSessionDep, uscc: str) -> Response:
    """The printable pledge sign (A4, PDF with an embedded CJK font). When no CJK font
    loads on the server, the same sign as SVG (``image/svg+xml``) with a note saying so."""
    data = _sign_data(ctx, session, uscc)
    try:
        pdf = signs.render_pdf(data)
    except signs.PdfUnavailable:
        return Response(
            signs.render_svg(data, note=signs.PDF_NOTE),
            media_type="image/svg+xml; charset=utf-8",
            headers={
                **_SVG_HEADERS,
                "Content-Disposition": f'inline; filename="pledge-sign-{data.uscc}.svg"',
            },
        )
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'inline; filename="pledge-sign-{data.uscc}.pdf"',
        },
    )
