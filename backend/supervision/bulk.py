"""Bulk import of supervision outcomes: a CSV, XLSX or JSON-lines file, all or nothing.

A file is validated as a whole (each row against the database *and* the rows
before it, :func:`backend.supervision.service.accept`) and written in one
transaction: one bad row, no row written, and every problem is listed with its
row and column, in English and in Chinese. A dry run (:func:`preview_bulk`) does
the same checks and says what would be recorded, writing nothing. Demonstration
awards are not taken in bulk (``kinds.py``). What the columns and cells may look
like (Chinese headers, spreadsheet dates) is ``bulkformat.py``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlmodel import Session

from backend import zherrors
from backend.accounts.service import Principal, require_role
from backend.errors import DomainError, PayloadTooLarge, ValidationFailed
from backend.ledger.status import anchor_status
from backend.supervision import bulkformat as fmt
from backend.supervision.checks import Prepared, RowInvalid, checker_for, draw_refs
from backend.supervision.kinds import EXAMPLE_USCC, KIND_HEADER, OUTCOMES
from backend.supervision.models import (
    BulkPreview,
    BulkRowPreview,
    BulkRowWritten,
    BulkWritten,
    RowError,
    SupervisionInput,
)
from backend.supervision.service import WRITER_ROLES, accept, needs_state, write_prepared
from backend.timeutil import today_shanghai, utcnow

BULK_MAX_ROWS = 100_000
BULK_MAX_ERRORS = 1000
NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}
)
CSV_TYPES = frozenset({"text/csv", "application/csv"})
XLSX_TYPES = fmt.XLSX_TYPES


class BulkValidationFailed(ValidationFailed):
    """At least one row of a bulk file is invalid; nothing was written."""


class UnsupportedBulkFormat(DomainError):
    status_code = 415


_ADAPTER: TypeAdapter[Any] = TypeAdapter(SupervisionInput)


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def media_type_of(filename: str, content_type: str | None) -> str | None:
    """A file's format by its name (a browser's upload), else by its Content-Type."""
    name = filename.lower()
    if name.endswith((".ndjson", ".jsonl")):
        return "application/x-ndjson"
    if name.endswith(".csv"):
        return "text/csv"
    if name.endswith(".xlsx"):
        return next(iter(sorted(XLSX_TYPES)))
    return content_type


def _err(row: int, fld: str | None, problem: str, zh: str, column: str | None = None) -> RowError:
    return RowError(row=row, field=fld, problem=problem, problem_zh=zh, column=column or fld)


@dataclass
class ParsedFile:
    """A file's rows (row number, the input as the API's JSON would carry it), the
    problems found while reading it, the number of data rows, and the header each
    field was read from."""

    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    total: int = 0
    columns: dict[str, str] = field(default_factory=dict)
    row_columns: dict[int, dict[str, str]] = field(default_factory=dict)
    """Row → field → the header of the cell it was read from (when not the first)."""

    def column(self, name: str | None, row: int = 0) -> str | None:
        """The header of ``name`` as the file (and that row) names it."""
        if name is None:
            return None
        used = self.row_columns.get(row, {})
        if name == "amount_fen" and fmt.YUAN_COLUMN in (used or self.columns):
            name = fmt.YUAN_COLUMN
        return used.get(name) or self.columns.get(name, name)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Spreadsheet software in China saves CSV in GB18030 (GBK) by default.
        try:
            return data.decode("gb18030")
        except UnicodeDecodeError:
            raise BulkValidationFailed(
                "the file is neither UTF-8 nor GB18030 text",
                errors=[],
                error_count=0,
                detail_zh="文件不是 UTF-8 或 GB18030 编码的文本；请另存为 CSV（UTF-8）或 .xlsx",
            ) from None


def _ndjson(text: str) -> ParsedFile:
    out = ParsedFile()
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        out.total += 1
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            out.errors.append(_err(n, None, f"not JSON: {exc.msg}", "不是有效的 JSON"))
            continue
        except RecursionError:
            out.errors.append(_err(n, None, "not JSON: nested too deeply", "JSON 嵌套过深"))
            continue
        if not isinstance(value, dict):
            out.errors.append(
                _err(n, None, "each line must be a JSON object", "每行应为一个 JSON 对象")
            )
            continue
        out.rows.append((n, value))
    return out


def _sheet(sheet: fmt.Sheet) -> ParsedFile:
    """The rows of a CSV or XLSX sheet, their headers read as fields (``bulkformat``)."""
    out = ParsedFile()
    if sheet.problem is not None:
        out.errors.append(_err(0, None, *sheet.problem))
        return out
    names: list[str | None] = []
    for col, head in enumerate(sheet.header, start=1):
        if not head:
            names.append(None)
            continue
        name = fmt.HEADERS.get(fmt.header_key(head))
        if name is None:
            out.errors.append(_err(
                0, head, f"unknown column {head!r}; columns are the template's (Chinese) or: "
                f"{', '.join(fmt.CSV_COLUMNS)}",
                f"表头第 {col} 列“{head}”不是可用的列名；请使用模板中的列名",
                head,
            ))
        elif head in sheet.header[: col - 1]:
            out.errors.append(_err(
                0, name, f"column {head!r} appears twice",
                f"表头中“{head}”出现了两次，只能出现一次", head,
            ))
            name = None
        else:
            # Two kinds' labels of one field (检查机关, 处罚机关) may both be columns of a
            # mixed file: a row fills one of them.
            out.columns.setdefault(name, head)
        names.append(name)
    if not sheet.header:
        return out
    if "kind" not in out.columns or "uscc" not in out.columns:
        out.errors.append(_err(
            0, None, "the header needs kind and uscc",
            f"表头缺少“{KIND_HEADER}”或“统一社会信用代码”列",
        ))
    width = len(names)
    for n, cells in sheet.rows:
        if not any(fmt.cell_text(c) for c in cells):
            continue
        out.total += 1
        if out.total > BULK_MAX_ROWS:
            break
        extra = [c for c in cells[width:] if fmt.cell_text(c)]
        if extra:
            out.errors.append(_err(
                n, None, f"row has {len(cells)} cells, the header has {width}",
                f"这一行有 {width + len(extra)} 个以上的单元格，表头只有 {width} 列",
            ))
            continue
        row: dict[str, Any] = {}
        used: dict[str, str] = {}
        clash = False
        for col, (name, cell) in enumerate(zip(names, cells, strict=False)):
            if name is None or (name in row and not fmt.cell_text(cell)):
                continue
            if name in row and fmt.cell_text(row[name]):
                head, first = sheet.header[col], used[name]
                out.errors.append(_err(
                    n, name, f"columns {first!r} and {head!r} are one field: fill one of them",
                    f"“{first}”和“{head}”是同一项，只填其中一列", head,
                ))
                clash = True
                continue
            row[name] = cell
            used[name] = sheet.header[col]
        if clash:
            continue
        out.row_columns[n] = used
        normal, problems = fmt.normalize_row(row)
        for p in problems:
            out.errors.append(_err(n, p.field, p.problem, p.problem_zh, out.column(p.field, n)))
        if not problems:
            out.rows.append((n, normal))
    return out


def parse_bulk(content_type: str | None, data: bytes) -> ParsedFile:
    """The rows of a bulk file and the problems found while reading it."""
    media = media_type(content_type)
    if media in NDJSON_TYPES:
        return _ndjson(_decode(data))
    if media in CSV_TYPES:
        return _sheet(fmt.csv_sheet(_decode(data)))
    if media in XLSX_TYPES:
        return _sheet(fmt.xlsx_sheet(data))
    raise UnsupportedBulkFormat(
        f"send a CSV file (Content-Type: text/csv, with a header row), an XLSX workbook "
        f"(Content-Type: {sorted(XLSX_TYPES)[0]}) or JSON lines "
        f"(Content-Type: application/x-ndjson); got {content_type!r}",
        detail_zh="只支持 CSV、Excel（.xlsx）或 JSON Lines 文件",
    )


def _pydantic_errors(n: int, exc: ValidationError, parsed: ParsedFile, kind: Any) -> list[RowError]:
    out = []
    labels = fmt.labels_of(kind)
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] in OUTCOMES:
            loc = loc[1:]
        typ = err.get("type", "")
        if typ in ("union_tag_not_found", "union_tag_invalid"):
            names = "、".join(k.label for k in fmt.BULK_KINDS)
            out.append(_err(
                n, "kind", f"kind must be one of: {', '.join(OUTCOMES)}",
                f"{KIND_HEADER}：应为以下之一：{names}", parsed.column("kind", n),
            ))
            continue
        problem = err.get("msg", "invalid")
        if typ == "extra_forbidden":
            problem = "not a field of this kind"
        ((fld, zh),) = zherrors.pydantic_errors([err], labels=labels)
        name = ".".join(loc) or None
        if typ == "extra_forbidden":
            zh = f"{parsed.column(name, n)}：这一类记录没有这一项，请留空"
        out.append(_err(n, name, problem, zh, parsed.column(name, n)))
    return out


@dataclass
class Checked:
    prepared: list[tuple[int, Prepared]]
    versions: Any
    total: int


def check_bulk(
    session: Session, *, content_type: str | None, data: bytes, now: datetime
) -> Checked:
    """Every row of the file checked; :class:`BulkValidationFailed` listing every
    problem unless all pass. Reads only."""
    today = today_shanghai(now)
    parsed = parse_bulk(content_type, data)
    if parsed.total > BULK_MAX_ROWS:
        raise PayloadTooLarge(
            f"more than {BULK_MAX_ROWS} rows in one file; split the file",
            detail_zh=f"一个文件最多 {BULK_MAX_ROWS} 行，请拆分后再上传",
        )
    errors = parsed.errors
    inputs: list[tuple[int, Any]] = []
    for n, raw in parsed.rows:
        kind = OUTCOMES.get(str(raw.get("kind", "")))
        if kind is not None and kind.check is None:
            errors.append(_err(
                n, "kind", kind.elsewhere, f"{KIND_HEADER}：{kind.label}须逐个办理，不能批量导入",
                parsed.column("kind", n),
            ))
            continue
        if raw.get("uscc") == EXAMPLE_USCC:
            errors.append(_err(
                n, "uscc", "this is the template's example row: delete it or fill in a real one",
                "这是模板中的示例行，请删除或改为实际内容", parsed.column("uscc", n),
            ))
            continue
        try:
            inputs.append((n, _ADAPTER.validate_python(raw)))
        except ValidationError as exc:
            errors.extend(_pydantic_errors(n, exc, parsed, kind))
    checker = checker_for(
        session,
        [inp.uscc for _, inp in inputs],
        today,
        now=now,
        with_state=[inp.uscc for _, inp in inputs if needs_state(inp)],
        draws=draw_refs(inp for _, inp in inputs),
    )
    prepared: list[tuple[int, Prepared]] = []
    for n, inp in inputs:
        try:
            prepared.append((n, accept(checker, inp, f"row:{n}")))
        except DomainError as exc:
            labels = fmt.labels_of(OUTCOMES.get(inp.kind))
            name = zherrors.domain_field(exc)
            choices = fmt.OPTION_VALUES.get(inp.kind, {}).get(name or "")
            for fld, zh in zherrors.domain_errors(exc, labels=labels):
                if choices and isinstance(exc, RowInvalid) and "rule" not in exc.extra:
                    zh = f"{labels.get(name or '', name)}：应为以下之一：{'、'.join(choices)}"
                errors.append(_err(n, name or fld, exc.detail, zh, parsed.column(name or fld, n)))
    if not errors and not prepared:
        errors.append(_err(0, None, "the file has no rows", "文件中没有数据行"))
    if errors:
        raise _failed(errors, parsed.total)
    return Checked(prepared, checker.versions, parsed.total)


def _failed(errors: list[RowError], total: int) -> BulkValidationFailed:
    errors.sort(key=lambda e: e.row)
    bad_rows = len({e.row for e in errors if e.row > 0})
    header = sum(1 for e in errors if e.row == 0)
    en = f"{bad_rows} of {total} row(s) are invalid"
    zh = f"共 {total} 行，其中 {bad_rows} 行有错误"
    if header:
        en += f", and the header or the file has {header} problem(s)"
        zh += f"，表头或文件本身有 {header} 个问题"
    return BulkValidationFailed(
        f"{en} ({len(errors)} problem(s) in all); nothing was written",
        detail_zh=f"{zh}（共 {len(errors)} 个问题）；没有写入任何记录，请修改后重新上传",
        errors=[e.model_dump() for e in errors[:BULK_MAX_ERRORS]],
        error_count=len(errors),
        errors_truncated=len(errors) > BULK_MAX_ERRORS,
        row_count=total,
        invalid_rows=bad_rows,
    )


def preview_bulk(
    session: Session,
    *,
    principal: Principal | None,
    content_type: str | None,
    data: bytes,
    now: datetime | None = None,
) -> BulkPreview:
    """A dry run: every check of :func:`record_bulk`, and what it would record. Writes
    nothing."""
    require_role(principal, *WRITER_ROLES)
    checked = check_bulk(session, content_type=content_type, data=data, now=now or utcnow())
    rows = [
        BulkRowPreview(row=n, kind=p.kind, uscc=p.uscc, body=p.body, effective_on=p.effective_on)
        for n, p in checked.prepared
    ]
    return BulkPreview(
        count=len(rows),
        merchants=len({r.uscc for r in rows}),
        kinds=dict(Counter(r.kind for r in rows)),
        rows=rows,
    )


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
    checked = check_bulk(session, content_type=content_type, data=data, now=now)
    appended, ratings = write_prepared(
        session, [(p, x) for _, x in checked.prepared], now=now, versions=checked.versions
    )
    session.commit()
    return BulkWritten(
        count=len(appended),
        merchants=len(ratings),
        anchor_status=anchor_status(session, appended[-1].leaf_index),
        records=[
            BulkRowWritten(
                row=n, record_id=rec.record_id, leaf_index=rec.leaf_index, kind=x.kind,
                uscc=x.uscc,
            )
            for (n, x), rec in zip(checked.prepared, appended, strict=True)
        ],
    )
