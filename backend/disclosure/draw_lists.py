"""A draw's committed lists as pages a person can read: the snapshot (检查对象名单) and
the recusal pairs (回避名单), paged, searchable by name or credit code (and inspector
number), filtered by tier or source, with the JSON the verifier reads as a download.

Thin: the rows are the draw's (``backend/inspections/draws``), names and the search
box's matches the merchants' (``backend/shops/lists.py``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from backend.deps import ReadSessionDep
from backend.disclosure import service, web
from backend.disclosure.web import PageUser
from backend.inspections.draws import base, inputs, reading
from backend.shops import lists

pages = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
SOURCES = {"conflict": "利益冲突申报", "previous": "上次检查过（轮换）"}
Text = Annotated[str, Query(max_length=100)]
PageNo = Annotated[int, Query(ge=1, le=1_000_000)]


def _matches(session: Any, q: str) -> list[str] | None:
    """The credit codes a search box names (``None``: no search)."""
    code, codes = lists.who(session, q)
    if code is not None:
        return [code]
    return codes


@pages.get("/inspections/{ref}/snapshot", response_class=HTMLResponse)
def snapshot_page(
    request: Request,
    session: ReadSessionDep,
    _user: PageUser,
    ref: str,
    q: Text = "",
    tier: Annotated[str, Query(max_length=1, pattern="^[ABCD]?$")] = "",
    page: PageNo = 1,
) -> HTMLResponse:
    row = base.load_draw(session, ref)
    usccs = _matches(session, q)
    total, rows = inputs.snapshot_page(
        session, row.id, usccs=usccs, tier=tier or None,
        offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE,
    )
    names = lists.names(session, [u for u, *_ in rows])
    entries = [
        {"uscc": u, "tier": t, "name": names.get(u, ""), "region": service.region_names([r]),
         "sector": service.sector_names([sec])}
        for u, t, r, sec in rows
    ]
    return web.render(
        request,
        "draw_lists.html",
        {
            "title": f"第 {row.number} 次双随机抽查：检查对象名单",
            "nav": "inspections",
            "draw": row,
            "list": "snapshot",
            "entries": entries,
            "q": q,
            "tier": tier,
            "source": "",
            "size": row.body["snapshot_size"],
            "pager": web.pager(total, page, PAGE_SIZE, {"q": q, "tier": tier, "page": str(page)}),
            "json_url": f"/api/draws/{row.id}/snapshot",
            "json_name": f"draw-{row.number}-snapshot.json",
        },
    )


@pages.get("/inspections/{ref}/recusals", response_class=HTMLResponse)
def recusals_page(
    request: Request,
    session: ReadSessionDep,
    _user: PageUser,
    ref: str,
    q: Text = "",
    source: Annotated[str, Query(max_length=10, pattern="^(conflict|previous)?$")] = "",
    page: PageNo = 1,
) -> HTMLResponse:
    row = base.load_draw(session, ref)
    listed = reading.recusal_list(session, ref=row.id).items
    text = q.strip()
    if text:
        usccs = set(_matches(session, text) or [])
        needle = text.casefold()
        listed = [
            r for r in listed if r.uscc in usccs or needle == r.inspector_id.casefold()
        ]
    if source:
        listed = [r for r in listed if source in r.sources]
    total = len(listed)
    shown = listed[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    names = lists.names(session, [r.uscc for r in shown])
    entries = [
        {"uscc": r.uscc, "name": names.get(r.uscc, ""), "inspector_id": r.inspector_id,
         "sources": [SOURCES.get(s, s) for s in r.sources], "previous_draw": r.previous_draw}
        for r in shown
    ]
    return web.render(
        request,
        "draw_lists.html",
        {
            "title": f"第 {row.number} 次双随机抽查：回避名单",
            "nav": "inspections",
            "draw": row,
            "list": "recusals",
            "entries": entries,
            "q": q,
            "tier": "",
            "source": source,
            "sources": SOURCES,
            "size": row.body["recusal_count"],
            "pager": web.pager(
                total, page, PAGE_SIZE, {"q": q, "source": source, "page": str(page)}
            ),
            "json_url": f"/api/draws/{row.id}/recusals",
            "json_name": f"draw-{row.number}-recusals.json",
        },
    )
