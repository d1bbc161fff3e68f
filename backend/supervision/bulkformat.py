"""What a bulk file looks like to a person: columns in Chinese, cells as spreadsheets write them.

A regulator fills a template in a spreadsheet program and uploads it as CSV or XLSX.
This module turns such a file into the rows the API's JSON would carry, and makes the
templates:

- headers: each kind's form labels (``kinds.py``, e.g. 检查日期, with or without a
  trailing note such as （可选）) or the API's field names (``checked_on``), in any
  order, mixed in one file if need be;
- cells: dates as ``2026/11/24``, ``2026-11-24``, ``2026年11月24日``, an XLSX date
  cell or an Excel serial number (46350); a kind by its name or its Chinese label; a
  choice by its value or its label (列入 for ``in``); a fine in 元 (罚没金额（元）) or
  in fen (``amount_fen``);
- XLSX is read and written with openpyxl (values only: a formula's cached result).

Pure: no database, no settings. It never decides whether a row is valid (the input
models and the checks do): a cell it cannot read as a date is passed on as typed, so
the row's error names the column.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from backend.csvsafe import write_csv
from backend.ledger.kinds import FormField
from backend.supervision.kinds import (
    BULK_KINDS,
    CSV_COLUMNS,
    EXAMPLE_USCC,
    KIND_HEADER,
    KINDS,
    OutcomeKind,
    bulk_fields,
)

XLSX_TYPES = frozenset(
    {"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "application/xlsx"}
)
XLSX_MAX_UNZIPPED = 256 * 1024 * 1024
"""An XLSX is a zip: refuse one that would unpack to more than this (a zip bomb)."""
YUAN_COLUMN = "amount_yuan"
"""The column of a fine in 元 (the form's field); the API's ``amount_fen`` is in fen."""


# --- the columns -------------------------------------------------------------------------------


def _strip_note(label: str) -> str:
    """``双随机抽查编号（可选）`` → ``双随机抽查编号``: a label without its trailing note."""
    return re.sub(r"（[^（）]*）$", "", label).strip()


def header_key(text: str) -> str:
    """A header as compared: trimmed, ASCII brackets as Chinese ones, no required mark, no
    spaces, English in lower case (``Checked_On``)."""
    t = text.strip().strip("*＊").strip()
    return t.replace("(", "（").replace(")", "）").replace(" ", "").replace("\u3000", "").lower()


def _headers() -> dict[str, str]:
    out = {c: c for c in (*CSV_COLUMNS, YUAN_COLUMN)}
    zh: dict[str, str] = {header_key(KIND_HEADER): "kind", "类型": "kind"}
    for kind in BULK_KINDS:
        for f in bulk_fields(kind):
            for label in {header_key(f.label), header_key(_strip_note(f.label))}:
                prev = zh.setdefault(label, f.name)
                assert prev == f.name, f"header {label} names both {prev} and {f.name}"
    return {**zh, **out}


HEADERS: dict[str, str] = _headers()
"""Every header a bulk file may use (by :func:`header_key`) → the field it fills."""

DATE_FIELDS: frozenset[str] = frozenset(
    f.name for k in BULK_KINDS for f in bulk_fields(k) if f.type == "date"
)
KIND_NAMES: dict[str, str] = {
    **{k.label: k.name for k in KINDS},
    **{k.form_label: k.name for k in KINDS},
    **{k.name: k.name for k in KINDS},
}
"""A ``kind`` cell → the kind: its name, its label (监督抽查) or its form's tab (抽查结果)."""
OPTION_VALUES: dict[str, dict[str, dict[str, str]]] = {
    k.name: {f.name: {o.label: o.value for o in f.options} for f in bulk_fields(k) if f.options}
    for k in KINDS
}
"""kind → field → an option's label → its value (列入 → ``in``)."""


def labels_of(kind: OutcomeKind | None) -> dict[str, str]:
    """The Chinese names of ``kind``'s fields, for its rows' errors."""
    if kind is None:
        return {"kind": KIND_HEADER}
    out = {f.name: _strip_note(f.label) for f in bulk_fields(kind)}
    if YUAN_COLUMN in out:
        out["amount_fen"] = out[YUAN_COLUMN]
    return {"kind": KIND_HEADER, **out}


# --- the cells ---------------------------------------------------------------------------------

_DATE_TEXT = re.compile(
    r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:[ T]+0?0:00(?::00(?:\.0+)?)?)?"
)
_EXCEL_SERIAL_MAX = 2_958_465  # 9999-12-31


def excel_date(value: Any) -> Any:
    """A date cell as an ISO date (``2026-11-24``), whichever way a spreadsheet wrote it;
    anything else unchanged (as text), for the input model to refuse by its column."""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return cell_text(value)
    if isinstance(value, int | float):
        return _serial(value) or cell_text(value)
    text = cell_text(value)
    m = _DATE_TEXT.fullmatch(text)
    if m:
        try:
            return date(int(m[1]), int(m[2]), int(m[3])).isoformat()
        except ValueError:
            return text
    if text.isdigit() and len(text) == 8:  # 20261124
        try:
            return date(int(text[:4]), int(text[4:6]), int(text[6:])).isoformat()
        except ValueError:
            return text
    if text.isdigit() and len(text) <= 7:  # a date column saved as a number: 46350
        return _serial(int(text)) or text
    return text


def _serial(n: float) -> str | None:
    """An Excel serial day number (1900 date system) as an ISO date."""
    from openpyxl.utils.datetime import from_excel

    if not (1 <= n <= _EXCEL_SERIAL_MAX) or n != int(n):
        return None
    return from_excel(int(n)).date().isoformat()


def cell_text(value: Any) -> str:
    """A cell as the text a person typed: numbers without a spurious ``.0``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def yuan_to_fen(text: str) -> int:
    """``3000`` or ``1,250.50`` (元) in fen; ValueError for anything else (``1e9``)."""
    t = text.replace(",", "").replace("，", "").strip()
    if not re.fullmatch(r"\d{1,16}(?:\.\d{1,2})?", t):
        raise ValueError(f"not an amount of yuan: {text!r}")
    try:
        return int(Decimal(t) * 100)
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        raise ValueError(f"not an amount of yuan: {text!r}") from None


@dataclass
class CellProblem:
    field: str
    problem: str
    problem_zh: str


def normalize_row(cells: dict[str, Any]) -> tuple[dict[str, Any], list[CellProblem]]:
    """A row of a spreadsheet (field → cell) as the API's input: empty cells left out,
    dates ISO, labels as values, 元 as fen."""
    kind_text = cell_text(cells.get("kind"))
    kind_name = KIND_NAMES.get(kind_text, kind_text)
    options = OPTION_VALUES.get(kind_name, {})
    out: dict[str, Any] = {}
    problems: list[CellProblem] = []
    for name, value in cells.items():
        if name == "kind":
            if kind_name:
                out["kind"] = kind_name
            continue
        v = excel_date(value) if name in DATE_FIELDS else cell_text(value)
        if v == "":
            continue
        if name in options:
            v = options[name].get(v, v)
        if name == YUAN_COLUMN:
            if cell_text(cells.get("amount_fen")):
                problems.append(CellProblem(
                    name, "give the fine once: in yuan or in fen (amount_fen), not both",
                    "罚没金额：只填一列（元或分），不要两列都填",
                ))
                continue
            try:
                out["amount_fen"] = yuan_to_fen(v)
            except ValueError:
                problems.append(CellProblem(
                    name, "the fine in yuan must be a number with at most two decimals",
                    "罚没金额（元）：应为金额，最多两位小数，如 3000 或 1250.50",
                ))
            continue
        out[name] = v
    return out, problems


# --- reading a file ----------------------------------------------------------------------------


@dataclass
class Sheet:
    """A file's header (as written, by column) and its data rows (row number, cells)."""

    header: list[str]
    rows: Iterator[tuple[int, list[Any]]]
    problem: tuple[str, str] | None = None
    """(English, Chinese): the file could not be read at all."""


def csv_sheet(text: str) -> Sheet:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None) or []

    def rows() -> Iterator[tuple[int, list[Any]]]:
        yield from enumerate(reader, start=1)

    return Sheet([h.strip() for h in header], rows())


def xlsx_sheet(data: bytes) -> Sheet:
    """The first worksheet of an XLSX workbook (a template's 填写说明 sheet comes after)."""
    import openpyxl

    bad = ("the file is not an XLSX workbook (save it as .xlsx or CSV)",
           "不是有效的 Excel 工作簿（.xlsx）；请在表格软件中另存为 .xlsx 或 CSV 后再上传")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            if sum(i.file_size for i in z.infolist()) > XLSX_MAX_UNZIPPED:
                return Sheet([], iter(()), ("the workbook unpacks to too much data",
                                            "工作簿解压后过大，请拆分后再上传"))
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds for a damaged or foreign file
        return Sheet([], iter(()), bad)
    if not wb.worksheets:
        return Sheet([], iter(()), bad)
    ws = wb.worksheets[0]
    it = ws.iter_rows(values_only=True)
    first = next(it, None) or ()
    header = [cell_text(h) for h in first]
    while header and not header[-1]:
        header.pop()

    def rows() -> Iterator[tuple[int, list[Any]]]:
        try:
            for n, values in enumerate(it, start=1):
                yield n, list(values)
        finally:
            wb.close()

    return Sheet(header, rows())


# --- templates ---------------------------------------------------------------------------------


def example_of(f: FormField) -> str:
    if f.name == "uscc":
        return EXAMPLE_USCC
    if f.example or f.default:
        return f.example or f.default
    if f.type == "checkbox":
        return "否"
    if f.options and f.required:
        return f.options[0].label
    return ""


def template_rows(kind: OutcomeKind) -> tuple[list[str], list[str]]:
    """``kind``'s template: its headers (Chinese, as declared) and the example row."""
    fields = bulk_fields(kind)
    return [KIND_HEADER, *(f.label for f in fields)], [kind.label, *map(example_of, fields)]


def template_csv(kind: OutcomeKind) -> bytes:
    """The CSV template, UTF-8 with a BOM (so that Excel opens its Chinese as such)."""
    header, example = template_rows(kind)
    return ("\ufeff" + write_csv(header, [example])).encode("utf-8")


def template_notes(kind: OutcomeKind) -> list[tuple[str, str, str, str]]:
    """(column, required, values, note) for each column of ``kind``'s template."""
    kinds = "、".join(k.label for k in BULK_KINDS)
    out = [(KIND_HEADER, "必填", kind.label, f"可填：{kinds}（一个文件可混合多种记录）")]
    for f in bulk_fields(kind):
        values = "、".join(o.label for o in f.options)
        if f.type == "checkbox":
            values = "是、否（不填为否）"
        elif f.type == "date":
            values = "日期，如 2026/11/24、2026-11-24 或日期单元格"
        note = f.hint
        if f.name == "uscc":
            note = "示例行中的代码只作示例，导入时会被拒绝：请删除示例行或改为实际内容"
        out.append((f.label, "必填" if f.required else "可不填", values, note))
    return out


def template_xlsx(kind: OutcomeKind) -> bytes:
    """The XLSX template: headers, the example row (dates as date cells), a drop-down
    for each choice, and a 填写说明 sheet."""
    import openpyxl
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    headers, example = template_rows(kind)
    fields: list[FormField | None] = [None, *bulk_fields(kind)]
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = kind.form_label
    ws.append(headers)
    cells: list[Any] = []
    for f, value in zip(fields, example, strict=True):
        if f is not None and f.type == "date" and value:
            cells.append(date.fromisoformat(excel_date(value)))
        else:
            cells.append(value)
    ws.append(cells)
    bold = Font(bold=True)
    for col, (f, head) in enumerate(zip(fields, headers, strict=True), start=1):
        letter = get_column_letter(col)
        ws.cell(row=1, column=col).font = bold
        ws.column_dimensions[letter].width = max(12, min(40, len(head) * 2 + 4))
        choices = [kind.label for kind in BULK_KINDS] if f is None else [
            o.label for o in f.options
        ] or (["是", "否"] if f.type == "checkbox" else [])
        if choices and sum(len(c) + 1 for c in choices) < 250:
            dv = DataValidation(type="list", formula1='"' + ",".join(choices) + '"',
                                allow_blank=True)
            ws.add_data_validation(dv)
            dv.add(f"{letter}2:{letter}10001")
        fmt = "yyyy/mm/dd" if f is not None and f.type == "date" else "@"
        ws.cell(row=2, column=col).number_format = fmt
    ws.freeze_panes = "A2"
    notes = wb.create_sheet("填写说明")
    notes.append(["列名", "是否必填", "可填的值", "说明"])
    for row in template_notes(kind):
        notes.append(list(row))
    notes.append([])
    notes.append(["第一个工作表的第一行是列名（中文或英文字段名均可），每行一条记录；空单元格表示不填。"])
    for i, width in enumerate((28, 10, 48, 60), start=1):
        notes.column_dimensions[get_column_letter(i)].width = width
        notes.cell(row=1, column=i).font = bold
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def rows_as_xlsx(header: list[str], rows: Iterable[list[Any]]) -> bytes:
    """A one-sheet workbook (write-only: fast for many rows); for tests and benchmarks."""
    import openpyxl

    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet()
    ws.append(header)
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
