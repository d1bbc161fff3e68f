"""Merchant registry API: verify a registration. Registering, looking
up, searching and
binding a wallet answer with the composed public view: ``backend/shops/router.py``."""

from __future__ import annotations

from fastapi import APIRouter

from backend.accounts.deps import RegulatorUser
from backend.deps import SessionDep
from backend.errors import error_responses
from backend.merchants import service
from backend.merchants.models import VerificationCreate, VerificationWritten

router = APIRouter(
    prefix="/api/merchants",
    tags=["merchants"],
    responses=error_responses(400, 401, 403, 404, 409, 422, 429),
)


@router.post("/{uscc}/verification", response_model=VerificationWritten, status_code=201)
def verify(
    session: SessionDep, user: RegulatorUser, uscc: str, body: VerificationCreate | None = None
) -> VerificationWritten:
    """A regulator verifies a registration (已核验)."""
    return service.verify_merchant(
        session,
        principal=user,
        uscc=uscc,
        verified_on=body.verified_on if body else None,
    )
