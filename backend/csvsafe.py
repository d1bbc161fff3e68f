"""The one way the service writes CSV: cells a spreadsheet cannot run as formulas.

Text is stored as given (a record keeps what the regulator imported, ``=HYPERLINK(…)``
included); it is inert in JSON and in HTML, which the templates escape. A spreadsheet
opening a CSV file, though, runs a cell that starts with ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return as a formula (CSV injection). Every CSV the service hands
out is written by :func:`write_csv`, which applies OWASP's rule: such a cell is
prefixed with a single quote, and every cell is quoted. Numbers stay numbers; text
that merely looks like a negative number (``-5``) is prefixed too, as OWASP advises.
``tests/supervision/test_csvsafe.py`` fails if another module writes CSV with the csv module.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def formula_safe(value: object) -> object:
    """``value`` as a CSV cell a spreadsheet shows as text: ``'`` before a string that
    starts like a formula; ``None`` an empty cell; numbers unchanged."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def write_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A whole CSV document (header row first), every cell quoted and formula-safe."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow([formula_safe(h) for h in header])
    for row in rows:
        writer.writerow([formula_safe(v) for v in row])
    return out.getvalue()
