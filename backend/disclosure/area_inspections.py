"""The regulator's workbench: random inspections (双随机): the item list, the
inspector directory, and draws."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from backend.db import INT_KEY_MAX
from backend.deps import CtxDep, ReadSessionDep, SessionDep
from backend.disclosure import service, web
from backend.disclosure.area_common import (
    FormInputError,
    hundredths,
    staff_or_redirect,
)
from backend.disclosure.web import FormError, PageUser
from backend.errors import DomainError
from backend.inspections import directory
from backend.inspections.draws import base as draw_base
from backend.inspections.draws import commit as draw_commit
from backend.inspections.draws import reveal as draw_reveal
from backend.inspections.models import (
    DrawCreate,
    InspectorCreate,
    InspectorUpdate,
    ItemCreate,
    ItemUpdate,
)
from backend.timeutil import today_shanghai

pages = APIRouter(include_in_schema=False)


# --- random inspections: items, inspectors, draws ---------------------------------------------


def _draws_page(
    request: Request,
    session: Any,
    *,
    error: FormError | None = None,
    notice: dict[str, str] | None = None,
    status: int = 200,
    values: dict[str, Any] | None = None,
) -> HTMLResponse:
    data = service.regulator_draws(session, today=today_shanghai())
    return web.render(
        request,
        "area/draws.html",
        {
            "title": "双随机抽查",
            "nav": "regulator",
            **data,
            "error": error,
            "notice": notice,
            "values": values or {"per_check": "2"},
            "status_labels": service.DRAW_STATUS,
            "region_names": service.region_names,
            "sector_names": service.sector_names,
        },
        status_code=status,
    )


DRAW_NOTICES = {
    "created": "抽查已承诺上链。到达目标区块后即可揭示。",
    "revealed": "已揭示并公布抽查计划。",
    "committed": "承诺已完成。",
}


@pages.get("/regulator/draws", response_class=HTMLResponse)
def draws_page(
    request: Request,
    session: ReadSessionDep,
    user: PageUser,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    text = DRAW_NOTICES.get(done or "")
    return _draws_page(request, session, notice={"text": text, "kind": ""} if text else None)


@pages.post("/regulator/draws", response_class=HTMLResponse)
async def draws_create(
    request: Request, ctx: CtxDep, session: ReadSessionDep, user: PageUser
) -> Response:
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    form = await request.form()
    values: dict[str, Any] = {
        k: form.get(k, "") for k in ("item_id", "planned_start", "planned_end", "per_check")
    }
    regions = [str(v) for v in form.getlist("regions") if v]
    sectors = [str(v) for v in form.getlist("sectors") if v]
    values.update(regions=regions, sectors=sectors)
    rates = {t: str(form.get(f"rate_{t}", "")).strip() for t in ("A", "B", "C", "D")}
    values.update({f"rate_{t}": v for t, v in rates.items()})

    def create() -> Any:
        data: dict[str, Any] = {
            "item_id": values["item_id"] or None,
            "planned_end": values["planned_end"] or None,
            "per_check": values["per_check"] or 2,
        }
        if values["planned_start"]:
            data["planned_start"] = values["planned_start"]
        if regions:
            data["regions"] = regions
        if sectors:
            data["sectors"] = sectors
        if any(rates.values()):
            try:
                data["rates_bp"] = {t: hundredths(v or "0") for t, v in rates.items()}
            except ValueError:
                raise FormInputError("抽查比例应为百分数，例如 5 或 2.5", "rate_A") from None
        return draw_commit.create_draw(ctx, principal=p, data=DrawCreate.model_validate(data))

    try:
        created = await run_in_threadpool(create)
    except (DomainError, ValidationError) as exc:
        return _draws_page(
            request,
            session,
            error=FormError.of(exc),
            values=values,
            status=getattr(exc, "status_code", 422),
        )
    return RedirectResponse(f"/inspections/{created.number}", status_code=303)


@pages.post("/regulator/draws/{ref}/reveal", response_class=HTMLResponse)
async def draws_reveal(
    request: Request, ctx: CtxDep, session: ReadSessionDep, user: PageUser, ref: str
) -> Response:
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    try:
        revealed = await run_in_threadpool(
            lambda: draw_reveal.reveal_draw(ctx, principal=p, ref=ref)
        )
    except DomainError as exc:
        return _draws_page(request, session, error=FormError.of(exc), status=exc.status_code)
    return RedirectResponse(f"/inspections/{revealed.number}", status_code=303)


@pages.post("/regulator/draws/{ref}/commit", response_class=HTMLResponse)
async def draws_commit(
    request: Request, ctx: CtxDep, session: ReadSessionDep, user: PageUser, ref: str
) -> Response:
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p

    def finish() -> None:
        with ctx.db.read() as s:
            draw_id = draw_base.load_draw(s, ref).id
        draw_commit.finish_commit(ctx, draw_id=draw_id)

    try:
        await run_in_threadpool(finish)
    except DomainError as exc:
        return _draws_page(request, session, error=FormError.of(exc), status=exc.status_code)
    return RedirectResponse("/regulator/draws?done=committed", status_code=303)


def _directory_page(
    request: Request,
    session: Any,
    *,
    which: str,
    error: FormError | None = None,
    values: dict[str, Any] | None = None,
    done: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    if which == "inspectors":
        rows: Any = directory.list_inspectors(session, staff=True).items
        title = "检查人员名录"
    else:
        rows = directory.list_items(session).items
        title = "抽查事项清单"
    return web.render(
        request,
        f"area/{which}.html",
        {
            "title": title,
            "nav": "regulator",
            "rows": rows,
            "error": error,
            "values": values or {},
            "regions": service.region_options(),
            "sectors": service.sector_options(),
            "sector_names": service.sector_names,
            "notice": {"text": "已保存并写入存证日志。", "kind": ""} if done else None,
        },
        status_code=status,
    )


@pages.get("/regulator/inspectors", response_class=HTMLResponse)
def inspectors_page(
    request: Request,
    session: ReadSessionDep,
    user: PageUser,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    return _directory_page(request, session, which="inspectors", done=done)


@pages.post("/regulator/inspectors", response_class=HTMLResponse)
def inspectors_submit(
    request: Request,
    session: SessionDep,
    user: PageUser,
    name: Annotated[str, Form(max_length=200)] = "",
    unit: Annotated[str, Form(max_length=400)] = "",
    region_code: Annotated[str, Form(max_length=16)] = "",
    inspector_id: Annotated[str, Form(max_length=100)] = "",
    action: Annotated[str, Form(max_length=16)] = "create",
) -> Response:
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    values = {"name": name, "unit": unit, "region_code": region_code, "inspector_id": inspector_id}
    try:
        if action in ("deactivate", "activate"):
            directory.update_inspector(
                session,
                principal=p,
                inspector_id=inspector_id,
                data=InspectorUpdate(active=action == "activate"),
            )
        else:
            directory.create_inspector(
                session,
                principal=p,
                data=InspectorCreate(
                    id=inspector_id or None, name=name, unit=unit, region_code=region_code
                ),
            )
    except (DomainError, ValidationError) as exc:
        session.rollback()
        return _directory_page(
            request,
            session,
            which="inspectors",
            error=FormError.of(exc),
            values=values,
            status=getattr(exc, "status_code", 422),
        )
    return RedirectResponse("/regulator/inspectors?done=1", status_code=303)


@pages.get("/regulator/items", response_class=HTMLResponse)
def items_page(
    request: Request,
    session: ReadSessionDep,
    user: PageUser,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    return _directory_page(request, session, which="items", done=done)


@pages.post("/regulator/items", response_class=HTMLResponse)
def items_submit(
    request: Request,
    session: SessionDep,
    user: PageUser,
    title: Annotated[str, Form(max_length=400)] = "",
    legal_basis: Annotated[str, Form(max_length=2000)] = "",
    method: Annotated[str, Form(max_length=400)] = "",
    sectors: Annotated[list[str] | None, Form(max_length=32)] = None,
    item_id: Annotated[int | None, Form(ge=1, le=INT_KEY_MAX)] = None,
    action: Annotated[str, Form(max_length=16)] = "create",
) -> Response:
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    values = {
        "title": title,
        "legal_basis": legal_basis,
        "method": method,
        "sectors": sectors or [],
    }
    try:
        if action in ("deactivate", "activate") and item_id is not None:
            directory.update_item(
                session, principal=p, item_id=item_id, data=ItemUpdate(active=action == "activate")
            )
        else:
            directory.create_item(
                session,
                principal=p,
                data=ItemCreate(
                    title=title, legal_basis=legal_basis, method=method, sectors=sectors or []
                ),
            )
    except (DomainError, ValidationError) as exc:
        session.rollback()
        return _directory_page(
            request,
            session,
            which="items",
            error=FormError.of(exc),
            values=values,
            status=getattr(exc, "status_code", 422),
        )
    return RedirectResponse("/regulator/items?done=1", status_code=303)
