"""The public merchant API, answered with the composed public view: register, look up
(kept views, ``ETag``), search, search-as-you-type, bind a wallet. Verification is the
registry's own route (``backend/merchants/router.py``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from backend.accounts.deps import (
    CurrentUser,
    OptionalUser,
    PasswordWork,
    RegulatorUser,
    client_address,
)
from backend.deps import CtxDep, SessionDep
from backend.errors import error_responses
from backend.merchants import service as merchants
from backend.merchants.models import (
    QUERY_MAX,
    MerchantCreate,
    MerchantSuggestions,
    RegistrationActionWritten,
    RegistrationDecision,
    WalletBind,
)
from backend.shops import registrations, views
from backend.shops import service as shops
from backend.shops.models import MerchantPage, MerchantPublic, MerchantRegistered
from backend.timeutil import shanghai_date, utcnow

router = APIRouter(
    prefix="/api/merchants",
    tags=["merchants"],
    responses=error_responses(400, 401, 403, 404, 409, 422, 429),
)


@router.post(
    "",
    response_model=MerchantRegistered,
    status_code=201,
    dependencies=[PasswordWork],
    responses=error_responses(503),
)
def register(
    ctx: CtxDep,
    session: SessionDep,
    request: Request,
    user: OptionalUser,
    body: MerchantCreate,
) -> MerchantRegistered:
    """Self-registration: an unverified merchant (未核验) and its merchant account,
    whose user name is the credit code. Regulators may register on a merchant's behalf."""
    return shops.registered(
        session,
        merchants.register_merchant(
            session,
            settings=ctx.settings,
            data=body,
            principal=user,
            address=client_address(request),
        ),
        settings=ctx.settings,
        today=shanghai_date(utcnow()),
    )


@router.get("", response_model=MerchantPage)
async def search(
    ctx: CtxDep,
    q: Annotated[
        str | None,
        Query(max_length=QUERY_MAX,
              description="a name (characters may be left out or one wrong), or any "
                          "fragment of a credit code"),
    ] = None,
    region: Annotated[str | None, Query(max_length=16, description="region code")] = None,
    sector: Annotated[str | None, Query(max_length=32)] = None,
    sub_area: Annotated[str | None, Query(max_length=32)] = None,
    tier: Annotated[str | None, Query(max_length=1, description="credit tier A-D")] = None,
    limit: Annotated[int, Query(ge=1, le=merchants.SEARCH_LIMIT_MAX)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    """Public search, best matches first (by credit code without `q`)."""
    page = await shops.search_async(
        ctx.db, q=q, region=region, sector=sector, sub_area=sub_area, tier=tier,
        limit=limit, offset=offset, today=shanghai_date(utcnow()),
    )
    # Serialised here: the model was built and checked by search_async.
    return Response(page.model_dump_json(), media_type="application/json")


@router.get("/suggest", response_model=MerchantSuggestions)
async def suggest(
    ctx: CtxDep,
    q: Annotated[str | None, Query(max_length=QUERY_MAX, description="what has been typed")] = None,
) -> MerchantSuggestions:
    """Search-as-you-type: the few best matches for `q` (the same search as
    `GET /api/merchants`), for the home page and the complaint form's shop picker."""

    def run() -> MerchantSuggestions:
        with ctx.db.quick_session() as session:
            return merchants.suggest(session, q=q)

    return await run_in_threadpool(run)


@router.get(
    "/{uscc}",
    response_model=MerchantPublic,
    responses={304: {"description": "unchanged since the ETag sent in If-None-Match"}},
)
async def get_merchant(
    ctx: CtxDep,
    uscc: str,
    if_none_match: Annotated[str | None, Header(max_length=1024)] = None,
) -> Response:
    """A merchant's public view (never its contact data). Carries an `ETag`; send it back
    in `If-None-Match` to get `304 Not Modified` while nothing changed."""
    view = await views.lookup_async(ctx.db, ctx.settings, uscc, today=shanghai_date(utcnow()))
    headers = {"ETag": view.etag, "Cache-Control": "no-cache"}
    if views.etag_matches(if_none_match, view.etag):
        return Response(status_code=304, headers=headers)
    return Response(view.body, media_type="application/json", headers=headers)


@router.put("/{uscc}/wallet", response_model=MerchantPublic)
def bind_wallet(
    ctx: CtxDep, session: SessionDep, user: CurrentUser, uscc: str, body: WalletBind
) -> MerchantPublic:
    """The merchant binds the Ethereum address its signed pledges come from."""
    code = merchants.bind_wallet(session, principal=user, uscc=uscc, address=body.address)
    return shops.public_view(
        session, merchants.get_merchant(session, code), settings=ctx.settings,
        today=shanghai_date(utcnow()),
    )


@router.post("/{uscc}/rejection", response_model=RegistrationActionWritten, status_code=201)
def reject(
    session: SessionDep, user: RegulatorUser, uscc: str, body: RegistrationDecision
) -> RegistrationActionWritten:
    """A regulator rejects an unverified registration of a code that is not the registrant's
    (`merchant.rejected`): it is no longer shown as that merchant, its active pledge is
    withdrawn, its account disabled, and the code's owner may register it."""
    return registrations.reject_registration(session, principal=user, uscc=uscc, reason=body.reason)


@router.post(
    "/{uscc}/transfer",
    response_model=RegistrationActionWritten,
    status_code=201,
    dependencies=[PasswordWork],
    responses=error_responses(503),
)
def transfer(
    ctx: CtxDep, session: SessionDep, user: RegulatorUser, uscc: str, body: RegistrationDecision
) -> RegistrationActionWritten:
    """A regulator hands a registration to the code's rightful owner (`merchant.transferred`):
    the answer carries the merchant account's new one-time password (shown once, never
    recorded); the previous registrant's password and sessions stop working."""
    return registrations.transfer_registration(
        session, settings=ctx.settings, principal=user, uscc=uscc, reason=body.reason
    )
