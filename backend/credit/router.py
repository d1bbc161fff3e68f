"""Credit API: the policy, a merchant's rating and history, tier statistics, repair."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request

from backend.accounts.deps import AdminUser, CurrentUser, MerchantUser, require_role
from backend.accounts.service import Principal
from backend.credit import repair, service
from backend.credit.models import (
    CreditHistory,
    CreditPublic,
    MerchantRecords,
    PolicyList,
    PolicyPublic,
    RepairCreate,
    RepairDecisionCreate,
    RepairPage,
    RepairPublic,
    RepairWritten,
    TierStats,
)
from backend.deps import Offset, ReadSessionDep, SessionDep
from backend.errors import error_responses
from backend.timeutil import today_shanghai

router = APIRouter(tags=["credit"], responses=error_responses(400, 401, 403, 404, 409, 422))

StaffUser = Annotated[Principal, require_role("regulator", "admin")]


class PolicyWritten(PolicyPublic):
    """A new policy version and the ``credit.policy`` record that published it."""


@router.get("/api/credit/policy", response_model=PolicyPublic)
def current_policy(session: ReadSessionDep) -> PolicyPublic:
    """The policy in force today, with the id of its `credit.policy` record."""
    return service.get_policy(session, today=today_shanghai())


@router.get("/api/credit/policies", response_model=PolicyList)
def all_policies(session: ReadSessionDep) -> PolicyList:
    """Every policy version, oldest first (which one applies on a date: the highest version
    whose effective_from is on or before it)."""
    return service.list_policies(session, today=today_shanghai())


@router.get("/api/credit/policy/{version}", response_model=PolicyPublic)
def policy_version(session: ReadSessionDep, version: int) -> PolicyPublic:
    return service.get_policy(session, version=version, today=today_shanghai())


@router.put("/api/credit/policy", response_model=PolicyWritten)
def put_policy(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    document: Annotated[
        dict[str, Any],
        Body(
            description="the whole policy document (as `document` in GET /api/credit/policy); "
            "`version` may be omitted (it becomes the next number); effective_from must be "
            "today or later"
        ),
    ],
) -> Any:
    """Publish the next policy version as a `credit.policy` record (admins)."""
    public, rec = service.put_policy(session, principal=user, document=document)
    worker = getattr(request.app.state, "rerate_worker", None)
    if worker is not None and public.effective_from <= today_shanghai():
        worker.wake()
    return PolicyWritten(**public.model_dump())


@router.get("/api/merchants/{uscc}/credit", response_model=CreditPublic)
def merchant_credit(
    session: ReadSessionDep,
    uscc: str,
    as_of: Annotated[
        date | None, Query(description="YYYY-MM-DD (Asia/Shanghai); default today")
    ] = None,
) -> CreditPublic:
    """Tier, score, policy version and the reasons (factors), each naming its record."""
    return service.get_credit(session, uscc=uscc, as_of=as_of, today=today_shanghai())


@router.get("/api/merchants/{uscc}/credit/history", response_model=CreditHistory)
def merchant_credit_history(session: ReadSessionDep, uscc: str) -> CreditHistory:
    """Every change of the displayed rating, oldest first, with what caused it."""
    return service.credit_history(session, uscc=uscc)


@router.get("/api/merchants/{uscc}/records", response_model=MerchantRecords)
def merchant_records(session: ReadSessionDep, uscc: str) -> MerchantRecords:
    """The records the rating reads that are shown publicly today: fetch each one's proof
    bundle at GET /api/records/{record_id}/proof and recompute the rating (what
    `honest-metering verify --credit` does). Records past their publicity period are not
    listed (停止公示); they cannot change today's rating."""
    return service.disclosed_records(session, uscc=uscc, today=today_shanghai())


@router.get("/api/stats/tiers", response_model=TierStats)
def tier_stats(session: ReadSessionDep) -> TierStats:
    """Merchants per tier, per region and per sector (from the maintained ratings)."""
    return service.tier_stats(session, today=today_shanghai())


@router.post("/api/credit-repairs", response_model=RepairWritten, status_code=201)
def apply_for_repair(session: SessionDep, user: MerchantUser, body: RepairCreate) -> Any:
    """A merchant applies for credit repair of one of its penalties. 422
    `RepairNotAllowed` lists every unmet condition (`unmet`)."""
    return repair.apply_for_repair(session, principal=user, data=body)


@router.post(
    "/api/credit-repairs/{repair_id}/decision", response_model=RepairWritten, status_code=201
)
def decide_repair(
    session: SessionDep, user: StaffUser, repair_id: str, body: RepairDecisionCreate
) -> Any:
    """A regulator approves or rejects an application (approval re-checks the conditions)."""
    return repair.decide_repair(session, principal=user, repair_id=repair_id, data=body)


@router.get("/api/credit-repairs", response_model=RepairPage)
def list_repairs(
    session: ReadSessionDep,
    user: CurrentUser,
    status: Annotated[str | None, Query(description="pending, approved or rejected")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> RepairPage:
    return repair.list_repairs(session, principal=user, status=status, limit=limit, offset=offset)


@router.get("/api/credit-repairs/{repair_id}", response_model=RepairPublic)
def get_repair(session: ReadSessionDep, user: CurrentUser, repair_id: str) -> RepairPublic:
    return repair.get_repair(session, principal=user, repair_id=repair_id)

