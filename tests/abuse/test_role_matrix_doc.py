"""The README's role matrix ("Who may do what") is the access the service enforces: each
of its rows is derived from MATRIX in test_authorization.py, which checks every write
route for every identity. Issue 15 (Info): the README said admins manage accounts, while
admins could also record supervision outcomes; the matrix now says exactly who may."""

from __future__ import annotations

import re

from tests.abuse.test_authorization import MATRIX, OK
from tests.conftest import ROOT


def _yes(value: object) -> str:
    return "yes" if value == OK else "—"


def expected_rows() -> list[str]:
    rows = []
    for key, row in MATRIX.items():
        if not key.split(" ", 1)[1].startswith(("/api/", "/rpc")):
            continue  # the browser forms follow the API's rules (MATRIX checks them too)
        anonymous, merchant, other, regulator, admin = row.expect
        merchants = ("yes" if other == OK else "own") if merchant == OK else "—"
        rows.append(f"| `{key}` | {_yes(anonymous)} | {merchants} | {_yes(regulator)} | "
                    f"{_yes(admin)} |")
    return rows


def test_the_readme_role_matrix_is_what_is_enforced() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- role-matrix.*?-->\n(.*?)<!-- /role-matrix -->", readme, re.S)
    assert found, "README.md has no role matrix"
    documented = [ln for ln in found.group(1).splitlines() if ln.startswith("| `")]
    assert documented == expected_rows(), (
        "README's role matrix differs from tests/abuse/test_authorization.py MATRIX; "
        "regenerate the rows from expected_rows() in this file"
    )


def test_admins_record_outcomes_but_never_verify_or_award() -> None:
    """The decision, stated once more: an admin is staff for outcomes, not for merchants."""
    staff = {"POST /api/supervision/records", "POST /api/complaints/{complaint_id}/verification",
             "POST /api/credit-repairs/{repair_id}/decision", "POST /api/draws"}
    for key in staff:
        assert MATRIX[key].expect[3:] == (OK, OK), key
    for key in ("POST /api/merchants/{uscc}/verification",
                "POST /api/merchants/{uscc}/demonstration"):
        assert MATRIX[key].expect[3:] == (OK, 403), key
    assert MATRIX["POST /api/accounts"].expect[3:] == (403, OK)
