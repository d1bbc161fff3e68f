"""The regulator's workbench: its home, verifying a registration, and recording
supervision outcomes one at a time (from a file: ``area_bulk.py``)."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import TypeAdapter, ValidationError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from backend.deps import ReadSessionDep, SessionDep
from backend.disclosure import amounts, service, web
from backend.disclosure.area_common import (
    FormInputError,
    area_page,
    notice_for,
    staff_or_redirect,
    status_of,
    submit,
)
from backend.disclosure.web import FormError, PageUser
from backend.errors import DomainError
from backend.merchants import service as merchants
from backend.supervision import service as supervision
from backend.supervision.models import SupervisionInput
from backend.timeutil import today_shanghai

pages = APIRouter(include_in_schema=False)


@pages.get("/regulator", response_class=HTMLResponse)
def regulator_home(
    request: Request,
    session: ReadSessionDep,
    user: PageUser,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    return _regulator_home(request, session, notice=notice_for(done))


def _regulator_home(
    request: Request,
    session: Session,
    *,
    notice: dict[str, str] | None = None,
    error: FormError | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return area_page(
        request, "area/regulator.html", service.regulator_home(session, today=today_shanghai()),
        title="监管工作台", nav="regulator", notice=notice, error=error, status_code=status_code,
    )


@pages.post("/regulator/merchants/{uscc}/verify", response_class=HTMLResponse)
def verify_merchant(
    request: Request,
    session: SessionDep,
    user: PageUser,
    uscc: str,
    back: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    # One click from a list or a merchant's page: back to where it was made.
    target = web.safe_next(back) or "/regulator"
    sep = "&" if "?" in target else "?"
    return submit(
        session,
        lambda: merchants.verify_merchant(session, principal=p, uscc=uscc, verified_on=None),
        done=f"{target}{sep}done=verified",
        failed=lambda exc: _regulator_home(
            request, session, error=FormError.of(exc), status_code=status_of(exc)
        ),
        refusals=(DomainError,),
    )


# --- supervision outcomes: one at a time, or a file -------------------------------------------


def _outcome_form(
    request: Request,
    *,
    kind: str,
    values: dict[str, str],
    error: FormError | None,
    status: int = 200,
    written: Any = None,
) -> HTMLResponse:
    return web.render(
        request,
        "area/outcomes.html",
        {
            "title": "记录监管结果",
            "nav": "regulator",
            "kind": kind,
            "kinds": service.OUTCOME_KINDS,
            "fields": service.outcome_fields(kind),
            "values": values,
            "error": error,
            "written": written,
        },
        status_code=status,
    )


@pages.get("/regulator/outcomes", response_class=HTMLResponse)
def outcomes_page(
    request: Request,
    user: PageUser,
    kind: Annotated[str, Query(max_length=32)] = "spot_check",
    uscc: Annotated[str, Query(max_length=64)] = "",
    draw_id: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    if kind not in dict(service.OUTCOME_KINDS):
        kind = "spot_check"
    values = service.outcome_defaults(kind, today=today_shanghai())
    values.update({k: v for k, v in {"uscc": uscc, "draw_id": draw_id}.items() if v})
    return _outcome_form(request, kind=kind, values=values, error=None)


def _outcome_input(kind: str, form: dict[str, str], evidence: bytes | None) -> Any:
    data: dict[str, Any] = {"kind": kind}
    for f in service.outcome_fields(kind):
        raw = form.get(f.name, "")
        if f.type == "checkbox":
            data[f.name] = raw == "on"
            continue
        raw = raw.strip()
        if not raw:
            continue
        if f.name == "amount_yuan":
            try:
                data["amount_fen"] = amounts.parse_yuan(raw)
            except ValueError:
                raise FormInputError(
                    "罚没金额应为数字（元），最多两位小数", "amount_yuan"
                ) from None
            # The form is re-shown with a confirmation box naming this very amount.
            form["confirm_fen"] = str(data["amount_fen"])
            ask = amounts.confirmation_needed(data["amount_fen"], form)
            if ask is not None:
                raise FormInputError(ask, "amount_yuan")
        elif f.name == "lower_amount":
            data["lower_amount"] = raw == "yes"
        else:
            data[f.name] = raw
    if evidence is not None and kind == "penalty" and "evidence_sha256" not in data:
        data["evidence_sha256"] = hashlib.sha256(evidence).hexdigest()
    return TypeAdapter(SupervisionInput).validate_python(data)


@pages.post("/regulator/outcomes", response_class=HTMLResponse)
async def outcomes_submit(request: Request, session: SessionDep, user: PageUser) -> Response:
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    form = await request.form()
    kind = str(form.get("kind", ""))
    if kind not in dict(service.OUTCOME_KINDS):
        kind = "spot_check"
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    upload = form.get("evidence_file")
    evidence = None
    if upload is not None and not isinstance(upload, str) and upload.filename:
        evidence = await upload.read()

    def write() -> Any:
        data = _outcome_input(kind, values, evidence)
        return supervision.record_outcome(session, principal=p, data=data)

    try:
        written = await run_in_threadpool(write)
    except (DomainError, ValidationError) as exc:
        await run_in_threadpool(session.rollback)
        labels = {f.name: f.label for f in service.outcome_fields(kind)}
        error = FormError.of(exc, labels=labels, aliases={"amount_fen": "amount_yuan"})
        return _outcome_form(request, kind=kind, values=values, error=error, status=422)
    fresh = service.outcome_defaults(kind, today=today_shanghai())
    return _outcome_form(request, kind=kind, values=fresh, error=None, written=written, status=201)
