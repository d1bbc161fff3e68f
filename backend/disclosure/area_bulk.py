"""The regulator's bulk import of supervision outcomes: templates to download, a dry run
that shows what the file would record, then the real run, all or nothing.

The uploaded file is checked (``backend.supervision.bulk.preview_bulk``) and kept in the
data dir, readable by the service alone, under its SHA-256 and its uploader; the page
shows the rows as their records would read and a button that records exactly that
file (checked again, since the database may have changed meanwhile). Errors are listed
at the top, in Chinese, by row and column, as the spreadsheet numbers them.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from backend import zherrors
from backend.accounts.service import Principal
from backend.config import Settings
from backend.deps import CtxDep, SessionDep
from backend.disclosure import describe, web
from backend.disclosure.area_common import staff_or_redirect
from backend.disclosure.web import FormError, PageUser
from backend.errors import Conflict, DomainError, NotFound, PayloadTooLarge
from backend.merchants import queries as merchant_queries
from backend.privatefiles import private_dir
from backend.supervision import bulk, bulkformat
from backend.supervision.kinds import BULK_KINDS, OUTCOMES
from backend.supervision.models import BulkPreview, BulkWritten

pages = APIRouter(include_in_schema=False)

PREVIEW_ROWS = 200
"""Rows the dry run and the result list on the page (the counts cover every row)."""
STAGED_FOR_S = 24 * 3600
"""How long an uploaded file waits for its real run."""
_EXT = {
    "text/csv": ".csv",
    sorted(bulk.XLSX_TYPES)[0]: ".xlsx",
    "application/x-ndjson": ".ndjson",
}
_MEDIA = {ext: media for media, ext in _EXT.items()}
_TOKEN = re.compile(r"([0-9a-f]{16})-([0-9a-f]{64})(\.csv|\.xlsx|\.ndjson)")


class StagedFileGone(Conflict):
    """The file of a dry run is no longer kept (a day has passed, or it was recorded)."""


# --- the staged file ---------------------------------------------------------------------------


def _who(p: Principal) -> str:
    return hashlib.sha256(f"{p.account_id}:{p.username}".encode()).hexdigest()[:16]


def _staging(settings: Settings) -> Path:
    return private_dir(settings.data_dir / "bulk-staging")


def _stage(settings: Settings, p: Principal, media: str, data: bytes) -> str:
    """Keep ``data`` for its real run; its token names the uploader and the content."""
    folder = _staging(settings)
    cutoff = time.time() - STAGED_FOR_S
    for old in folder.iterdir():
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except FileNotFoundError:  # another worker cleaned it first
            pass
    token = f"{_who(p)}-{hashlib.sha256(data).hexdigest()}{_EXT[media]}"
    path = folder / token
    if not path.exists():
        tmp = folder / f".{token}.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        tmp.replace(path)
    return token


def _staged(settings: Settings, p: Principal, token: str) -> tuple[str, bytes, Path]:
    m = _TOKEN.fullmatch(token)
    gone = StagedFileGone(
        "the checked file is no longer kept; upload it again",
        detail_zh="预检过的文件已不在（超过一天，或已经导入）；请重新上传并预检",
    )
    if m is None or m[1] != _who(p):
        raise gone
    path = _staging(settings) / token
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise gone from None
    if hashlib.sha256(data).hexdigest() != m[2]:
        raise gone
    return _MEDIA[m[3]], data, path


# --- what the page shows -----------------------------------------------------------------------


def _row_label(row: int, media: str) -> str:
    """A row as the person's program numbers it: the header is row 1 of a sheet."""
    if row == 0:
        return "表头"
    return f"第 {row} 行" if media == "application/x-ndjson" else f"第 {row + 1} 行"


def _error_rows(errors: list[dict[str, Any]], media: str) -> list[dict[str, Any]]:
    """The problems grouped by row: each row once, its problems beside it."""
    out: list[dict[str, Any]] = []
    for e in errors:
        if not out or out[-1]["row"] != e["row"]:
            out.append({"row": e["row"], "label": _row_label(e["row"], media), "problems": []})
        out[-1]["problems"].append((e.get("column") or "", e.get("problem_zh") or e["problem"]))
    return out


def _preview_rows(session: Session, preview: BulkPreview, media: str) -> list[dict[str, Any]]:
    shown = preview.rows[:PREVIEW_ROWS]
    names = merchant_queries.names_of(session, {r.uscc for r in shown})
    out = []
    for r in shown:
        env = {"type": OUTCOMES[r.kind].type, "subject": r.uscc, "body": r.body, "refs": []}
        view = describe.describe(env, record_id=f"row-{r.row}", leaf_index=None, anchored=False)
        out.append({
            "label": _row_label(r.row, media),
            "kind": OUTCOMES[r.kind].label,
            "uscc": r.uscc,
            "name": names.get(r.uscc, ""),
            "title": view.title,
            "facts": view.facts,
            "tone": view.tone,
        })
    return out


def _page(
    request: Request,
    *,
    status: int = 200,
    error: FormError | None = None,
    error_rows: list[dict[str, Any]] | None = None,
    preview: dict[str, Any] | None = None,
    filename: str = "",
) -> HTMLResponse:
    return web.render(
        request,
        "area/bulk.html",
        {
            "title": "批量导入监管结果",
            "nav": "regulator",
            "templates": [(k.name, k.label) for k in BULK_KINDS],
            "columns": [
                (k.label, bulkformat.template_rows(k)[0]) for k in BULK_KINDS
            ],
            "error": error,
            "error_rows": error_rows or [],
            "preview": preview,
            "filename": filename,
        },
        status_code=status,
    )


def _failed(request: Request, exc: DomainError, media: str, filename: str) -> HTMLResponse:
    errors = exc.extra.get("errors") or []
    form_error = FormError(
        "文件没有导入：请按下表修改后重新上传。" if errors else "文件没有导入。",
        problems=[(None, str(exc.extra.get("detail_zh") or zherrors.detail_zh(exc)))],
    )
    return _page(
        request,
        status=exc.status_code,
        error=form_error,
        error_rows=_error_rows(errors, media),
        filename=filename,
    )


# --- routes ------------------------------------------------------------------------------------


@pages.get("/regulator/outcomes/bulk", response_class=HTMLResponse)
def bulk_page(request: Request, user: PageUser) -> Response:
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    return _page(request)


@pages.get("/regulator/outcomes/bulk/template/{name}")
def bulk_template(request: Request, user: PageUser, name: str) -> Response:
    """A kind's template (``spot_check.xlsx``, ``penalty.csv``): its Chinese headers and an
    example row."""
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    stem, _, ext = name.partition(".")
    kind = OUTCOMES.get(stem)
    if kind is None or kind not in BULK_KINDS or ext not in ("csv", "xlsx"):
        raise NotFound("no such template", detail_zh="没有这个模板")
    if ext == "csv":
        data, media = bulkformat.template_csv(kind), "text/csv; charset=utf-8"
    else:
        data, media = bulkformat.template_xlsx(kind), sorted(bulk.XLSX_TYPES)[0]
    zh = quote(f"{kind.label}导入模板.{ext}")
    return Response(
        data,
        media_type=media,
        headers={
            "Content-Disposition": f"attachment; filename=\"{kind.name}-template.{ext}\"; "
            f"filename*=UTF-8''{zh}"
        },
    )


@pages.post("/regulator/outcomes/bulk", response_class=HTMLResponse)
async def bulk_dry_run(
    request: Request, ctx: CtxDep, session: SessionDep, user: PageUser, file: UploadFile
) -> Response:
    """Check the file and show what it would record; nothing is written."""
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    limit = ctx.settings.max_bulk_body_bytes
    data = await file.read(limit + 1)
    filename = (file.filename or "")[:200]
    media = bulk.media_type(bulk.media_type_of(filename, file.content_type))
    if len(data) > limit:
        exc = PayloadTooLarge(
            f"the file is larger than {limit} bytes; split it",
            detail_zh=f"文件超过 {limit // (1024 * 1024)} MB，请拆分后再上传",
        )
        return _failed(request, exc, media, filename)
    try:
        preview = await run_in_threadpool(
            lambda: bulk.preview_bulk(session, principal=p, content_type=media, data=data)
        )
    except DomainError as exc:
        await run_in_threadpool(session.rollback)
        return _failed(request, exc, media, filename)
    token = await run_in_threadpool(lambda: _stage(ctx.settings, p, media, data))
    rows = await run_in_threadpool(lambda: _preview_rows(session, preview, media))
    await run_in_threadpool(session.rollback)
    shown = {
        "count": preview.count,
        "merchants": preview.merchants,
        "kinds": [(OUTCOMES[k].label, n) for k, n in preview.kinds.items()],
        "rows": rows,
        "more": preview.count - len(rows),
        "token": token,
    }
    return _page(request, preview=shown, filename=filename)


@pages.post("/regulator/outcomes/bulk/record", response_class=HTMLResponse)
async def bulk_record(
    request: Request,
    ctx: CtxDep,
    session: SessionDep,
    user: PageUser,
    token: Annotated[str, Form(max_length=120)] = "",
    filename: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Record the file of a dry run: every row, or (if a row no longer passes) none."""
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    media = "text/csv"
    try:
        media, data, path = _staged(ctx.settings, p, token)
        result: BulkWritten = await run_in_threadpool(
            lambda: bulk.record_bulk(session, principal=p, content_type=media, data=data)
        )
    except DomainError as exc:
        await run_in_threadpool(session.rollback)
        return _failed(request, exc, media, filename)
    path.unlink(missing_ok=True)
    shown = result.records[:PREVIEW_ROWS]
    usccs = {r.uscc for r in shown}
    names = await run_in_threadpool(merchant_queries.names_of, session, usccs)
    return web.render(
        request,
        "area/bulk_done.html",
        {
            "title": "批量导入完成",
            "nav": "regulator",
            "result": result,
            "filename": filename,
            "records": [
                {
                    "label": _row_label(r.row, media),
                    "kind": OUTCOMES[r.kind].label,
                    "uscc": r.uscc,
                    "name": names.get(r.uscc, ""),
                    "record_id": r.record_id,
                }
                for r in shown
            ],
            "more": result.count - len(shown),
        },
        status_code=201,
    )
