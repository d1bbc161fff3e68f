"""Bulk import of supervision outcomes: a CSV or JSON-lines file, all or nothing.

A file is validated as a whole (each row against the database *and* the rows
before it, :func:`backend.supervision.service.accept`) and written in one
transaction: one bad row, no row written, and every problem is listed with its
row and field. Demonstration awards are not taken in bulk (``kinds.py``).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlmodel import Session

from backend.accounts.service import Principal, require_role
from backend.errors import DomainError, PayloadTooLarge, ValidationFailed
from backend.ledger.status import anchor_status
from backend.supervision.checks import Prepared, checker_for, draw_refs
from backend.supervision.kinds import CSV_COLUMNS, OUTCOMES
from backend.supervision.models import BulkRowWritten, BulkWritten, RowError, SupervisionInput
from backend.supervision.service import WRITER_ROLES, accept, needs_state, write_prepared
from backend.timeutil import today_shanghai, utcnow

BULK_MAX_ROWS = 100_000
BULK_MAX_ERRORS = 1000
NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}
)
CSV_TYPES = frozenset({"text/csv", "application/csv"})


class BulkValidationFailed(ValidationFailed):
    """At least one row of a bulk file is invalid; nothing was written."""


class UnsupportedBulkFormat(DomainError):
    status_code = 415


_ADAPTER: TypeAdapter[Any] = TypeAdapter(SupervisionInput)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Spreadsheet software in China saves CSV in GB18030 (GBK) by default.
        try:
            return data.decode("gb18030")
        except UnicodeDecodeError:
            raise BulkValidationFailed(
                "the file is neither UTF-8 nor GB18030 text", errors=[], error_count=0
            ) from None


def parse_bulk(
    content_type: str | None, data: bytes
) -> tuple[list[tuple[int, Any]], list[RowError]]:
    """(row number, raw row) pairs and the errors found while reading the file."""
    media = _media_type(content_type)
    textdata = _decode(data)
    rows: list[tuple[int, Any]] = []
    errors: list[RowError] = []
    if media in NDJSON_TYPES:
        for n, line in enumerate(textdata.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(RowError(row=n, field=None, problem=f"not JSON: {exc.msg}"))
                continue
            except RecursionError:
                errors.append(RowError(row=n, field=None, problem="not JSON: nested too deeply"))
                continue
            if not isinstance(value, dict):
                errors.append(
                    RowError(row=n, field=None, problem="each line must be a JSON object")
                )
                continue
            rows.append((n, value))
        return rows, errors
    if media in CSV_TYPES:
        reader = csv.reader(io.StringIO(textdata, newline=""))
        header = next(reader, None)
        if header is None:
            return rows, errors
        names = [h.strip() for h in header]
        unknown = [h for h in names if h not in CSV_COLUMNS]
        for h in unknown:
            errors.append(
                RowError(
                    row=0,
                    field=h,
                    problem=f"unknown column {h!r}; columns are: {', '.join(CSV_COLUMNS)}",
                )
            )
        dupes = {h for h in names if names.count(h) > 1}
        for h in sorted(dupes):
            errors.append(RowError(row=0, field=h, problem=f"column {h!r} appears twice"))
        if "kind" not in names or "uscc" not in names:
            errors.append(RowError(row=0, field=None, problem="the header needs kind and uscc"))
        for n, cells in enumerate(reader, start=1):
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(names):
                errors.append(
                    RowError(
                        row=n,
                        field=None,
                        problem=f"row has {len(cells)} cells, the header has {len(names)}",
                    )
                )
                continue
            rows.append((n, {k: v.strip() for k, v in zip(names, cells, strict=True) if v.strip()}))
        return rows, errors
    raise UnsupportedBulkFormat(
        f"send a CSV file (Content-Type: text/csv, with a header row) or JSON lines "
        f"(Content-Type: application/x-ndjson); got {content_type!r}"
    )


def _pydantic_errors(n: int, exc: ValidationError) -> list[RowError]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] in OUTCOMES:
            loc = loc[1:]
        typ = err.get("type", "")
        if typ in ("union_tag_not_found", "union_tag_invalid"):
            out.append(
                RowError(row=n, field="kind", problem=f"kind must be one of: {', '.join(OUTCOMES)}")
            )
            continue
        problem = err.get("msg", "invalid")
        if typ == "extra_forbidden":
            problem = "not a field of this kind"
        out.append(RowError(row=n, field=".".join(loc) or None, problem=problem))
    return out


def record_bulk(
    session: Session,
    *,
    principal: Principal | None,
    content_type: str | None,
    data: bytes,
    now: datetime | None = None,
) -> BulkWritten:
    """Validate every row, then write all of them in one transaction, or none."""
    p = require_role(principal, *WRITER_ROLES)
    now = now or utcnow()
    today = today_shanghai(now)
    raw_rows, errors = parse_bulk(content_type, data)
    if len(raw_rows) > BULK_MAX_ROWS:
        raise PayloadTooLarge(
            f"{len(raw_rows)} rows in one file; at most {BULK_MAX_ROWS} — split the file"
        )
    parsed: list[tuple[int, Any]] = []
    for n, raw in raw_rows:
        try:
            parsed.append((n, _ADAPTER.validate_python(raw)))
        except ValidationError as exc:
            errors.extend(_pydantic_errors(n, exc))
    checker = checker_for(
        session,
        [inp.uscc for _, inp in parsed],
        today,
        now=now,
        with_state=[inp.uscc for _, inp in parsed if needs_state(inp)],
        draws=draw_refs(inp for _, inp in parsed),
    )
    prepared: list[tuple[int, Prepared]] = []
    for n, inp in parsed:
        try:
            prepared.append((n, accept(checker, inp, f"row:{n}")))
        except DomainError as exc:
            errors.append(RowError(row=n, field=getattr(exc, "field", None), problem=exc.detail))
    if not errors and not prepared:
        errors.append(RowError(row=0, field=None, problem="the file has no rows"))
    if errors:
        errors.sort(key=lambda e: e.row)
        bad_rows = len({e.row for e in errors})
        raise BulkValidationFailed(
            f"{bad_rows} of {len(raw_rows)} row(s) are invalid ({len(errors)} problem(s)); "
            "nothing was written",
            errors=[e.model_dump() for e in errors[:BULK_MAX_ERRORS]],
            error_count=len(errors),
            errors_truncated=len(errors) > BULK_MAX_ERRORS,
        )
    appended, ratings = write_prepared(
        session, [(p, x) for _, x in prepared], now=now, versions=checker.versions
    )
    session.commit()
    return BulkWritten(
        count=len(appended),
        merchants=len(ratings),
        anchor_status=anchor_status(session, appended[-1].leaf_index),
        records=[
            BulkRowWritten(row=n, record_id=rec.record_id, leaf_index=rec.leaf_index)
            for (n, _), rec in zip(prepared, appended, strict=True)
        ],
    )


