"""Hostile input that once got a 500 (or worse) and now gets a 4xx: one test per bug found
by the fuzzing and probing of the abuse suite. The app runs in TestClient on a populated
world (tests/abuse/world.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.errors import ErrorResponse
from tests.abuse.world import World, build_world
from tests.conftest import ROOT, make_settings
from tests.inspections.helpers import draw_body
from tests.supervision import outcomes as o

HUGE = [2**31, 2**63, 2**64, -(2**63) - 1, 10**30]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = make_settings(
        tmp_path_factory.mktemp("bad-input") / "data", anchor_enabled=False, rerate_enabled=False
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield build_world(client)


def _cookie(w: World, identity: str) -> dict[str, str]:
    w.client.cookies.clear()
    return {"Cookie": f"hm_session={w.session_cookie(identity)}"}


def _form_headers(w: World, identity: str) -> dict[str, str]:
    return {**_cookie(w, identity), "X-CSRF-Token": str(w.csrf_for(identity))}


class TestIntegersOutsideTheDatabaseRange:
    """Paging offsets and integer ids reached SQLite unchecked: OverflowError, 500."""

    @pytest.mark.parametrize("n", HUGE)
    @pytest.mark.parametrize(
        "url",
        [
            "/api/credit-repairs?offset={n}",
            "/api/supervision/records?offset={n}",
            "/api/complaints?offset={n}",
            "/api/demonstration-units?offset={n}",
            "/api/draws?offset={n}",
            "/api/draws?item_id={n}",
            "/api/log/checkpoints?offset={n}",
            "/api/inspection-items/{n}",
        ],
    )
    def test_get(self, world: World, url: str, n: int) -> None:
        resp = world.client.get(url.format(n=n), headers=world.staff)
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"] == "ValidationFailed"

    @pytest.mark.parametrize("n", HUGE)
    def test_writes(self, world: World, n: int) -> None:
        c, staff = world.client, world.staff
        for resp, name in (
            (
                c.patch(f"/api/inspection-items/{n}", json={"active": False}, headers=staff),
                "item_id",
            ),
            (
                c.delete(
                    f"/api/inspectors/{world.ids['inspector_id']}/conflicts/{n}", headers=staff
                ),
                "conflict_id",
            ),
            (c.post("/api/draws", json=draw_body(item_id=n), headers=staff), "item_id"),
        ):
            assert resp.status_code == 422, resp.text
            assert name in resp.json()["detail"], resp.text

    def test_item_form(self, world: World) -> None:
        resp = world.client.post(
            "/regulator/items",
            data={"action": "deactivate", "item_id": str(2**63)},
            headers=_form_headers(world, "regulator"),
        )
        assert resp.status_code == 422, resp.text

    def test_draw_form(self, world: World) -> None:
        data = {k: str(v) for k, v in draw_body(item_id=2**63).items()}
        resp = world.client.post(
            "/regulator/draws", data=data, headers=_form_headers(world, "regulator")
        )
        assert resp.status_code == 422, resp.text
        assert "item_id" in resp.text


class TestPolicyNumbers:
    """A policy with a number too large for a record (or a window past the calendar) was
    accepted and then failed: 500 on publishing, or — worse — published, and every rating,
    pledge and outcome afterwards a 500."""

    @pytest.mark.parametrize(
        ("section", "field", "value"),
        [
            ("pledge", "points", 2**53),
            ("pledge", "validity_months", 10**30),
            ("pledge", "validity_months", 10**6),
            ("spot_check_pass", "window_months", 10**6),
            ("lower_amount", "person_below_fen", 10**30),
        ],
    )
    def test_refused(self, world: World, section: str, field: str, value: int) -> None:
        doc = world.policy_document()
        doc[section][field] = value
        resp = world.client.put("/api/credit/policy", json=doc, headers=world.bearer("admin"))
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"] == "InvalidPolicy"
        assert world.client.get(f"/api/merchants/{world.uscc}/credit").status_code == 200


class TestJsonRpcIds:
    """NaN, Infinity or 1e999 as a JSON-RPC id could not be echoed back: 500."""

    @pytest.mark.parametrize(
        "body",
        [
            b'{"jsonrpc":"2.0","id":NaN,"method":"eth_blockNumber"}',
            b'{"jsonrpc":"2.0","id":Infinity,"method":"eth_chainId"}',
            b'[{"jsonrpc":"2.0","id":-Infinity,"method":"eth_chainId"}]',
            b'{"jsonrpc":"2.0","id":1e999,"method":"eth_chainId"}',
        ],
    )
    def test_parse_error(self, world: World, body: bytes) -> None:
        resp = world.client.post("/rpc", content=body, headers={"Content-Type": "application/json"})
        assert resp.status_code == 200, resp.text
        assert resp.json()["error"]["code"] == -32700


_DEEP_BODY = """
import sys
from pathlib import Path
from fastapi.testclient import TestClient
from backend.app import create_app
from tests.conftest import make_settings

app = create_app(make_settings(Path(sys.argv[1]), anchor_enabled=False, rerate_enabled=False))
deep = b"[" * 100_000 + b"]" * 100_000
with TestClient(app, raise_server_exceptions=False) as c:
    for path in ("/api/complaints", "/rpc"):
        r = c.post(path, content=deep, headers={"Content-Type": "application/json"})
        print(path, r.status_code, r.json().get("error"))
"""


@pytest.mark.slow
def test_deeply_nested_json_does_not_crash_the_process(tmp_path: Any) -> None:
    """py_ecc (imported with web3) raised the recursion limit to 100000, so json's C
    decoder overflowed the C stack on a 200 kB body of brackets: SIGSEGV, the whole server
    gone. Run in a child process, so that a regression fails this test, not the run."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_DEEP_BODY), str(tmp_path / "data")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    lines = proc.stdout.strip().splitlines()
    assert lines[-2] == "/api/complaints 400 BadRequest", lines
    assert lines[-1].startswith("/rpc 200 "), lines


def test_the_recursion_limit_stays_within_the_c_stack() -> None:
    import backend.app  # noqa: F401  (imports web3, eth_account and so py_ecc)

    assert sys.getrecursionlimit() <= 1024 * 12


class TestDeepJsonInsideRequests:
    deep = "[" * 99_990 + "]" * 99_990

    @pytest.fixture(autouse=True)
    def _safe_to_run_here(self) -> None:
        # With the limit as py_ecc leaves it, these would crash this very process.
        if sys.getrecursionlimit() > 1024 * 12:
            pytest.fail(f"the recursion limit is {sys.getrecursionlimit()}: see chain.py")

    def test_bulk_line(self, world: World) -> None:
        resp = world.client.post(
            "/api/supervision/records/bulk",
            content=self.deep.encode() + b"\n",
            headers={**world.staff, "Content-Type": "application/x-ndjson"},
        )
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"] == "BulkValidationFailed"

    def test_policy_form(self, world: World) -> None:
        resp = world.client.post(
            "/regulator/policy", data={"document": self.deep}, headers=_form_headers(world, "admin")
        )
        assert resp.status_code == 422, resp.text


class TestNonAsciiCsrfTokens:
    """hmac.compare_digest refuses a str with non-ASCII characters: TypeError, 500."""

    def test_header(self, world: World) -> None:
        headers: dict[str, Any] = {**_cookie(world, "regulator"), "X-CSRF-Token": b"\xe9t\xe9"}
        resp = world.client.post(
            "/api/complaints", json={"uscc": world.uscc, "content": "少称"}, headers=headers
        )
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"] == "CsrfFailed"

    def test_form_field(self, world: World) -> None:
        resp = world.client.post(
            "/regulator/inspectors",
            data={"name": "甲", "unit": "乙", "region_code": "511902", "csrf_token": "验证"},
            headers=_cookie(world, "regulator"),
        )
        assert resp.status_code == 403, resp.text

    def test_anonymous_form_token(self, world: World) -> None:
        world.client.cookies.clear()
        resp = world.client.post(
            "/complaint",
            data={"uscc": world.uscc, "content": "少称", "form_token": "验证"},
            headers={"Cookie": "hm_form=" + "a1" * 16},
        )
        assert resp.status_code == 403, resp.text


class TestFormAmounts:
    """Infinity or NaN as a fine or a rate: OverflowError/ValueError past the handler, 500;
    and more than two decimals were rounded away silently."""

    @pytest.mark.parametrize("amount", ["Infinity", "-Infinity", "NaN", "1.005", "1e-9999"])
    def test_fine(self, world: World, amount: str) -> None:
        data = {k: str(v) for k, v in o.penalty(uscc=world.uscc).items() if k != "amount_fen"}
        resp = world.client.post(
            "/regulator/outcomes",
            data={**data, "amount_yuan": amount},
            headers=_form_headers(world, "regulator"),
        )
        assert resp.status_code == 422, resp.text
        assert "最多两位小数" in resp.text  # the amount's own error, not another field's

    def test_fine_in_yuan_with_separators(self, world: World) -> None:
        data = {k: str(v) for k, v in o.penalty(uscc=world.uscc).items() if k != "amount_fen"}
        data["decision_no"] = "巴市监罚〔2026〕77号"
        resp = world.client.post(
            "/regulator/outcomes",
            data={**data, "amount_yuan": "1,234.56"},
            headers=_form_headers(world, "regulator"),
        )
        assert resp.status_code == 201, resp.text
        listed = world.client.get(
            "/api/supervision/records", params={"uscc": world.uscc}, headers=world.staff
        ).json()["items"]
        assert any(r["body"].get("amount_fen") == 123_456 for r in listed), listed

    @pytest.mark.parametrize("rate", ["Infinity", "-Infinity", "NaN", "2.555"])
    def test_rate(self, world: World, rate: str) -> None:
        data = {k: str(v) for k, v in draw_body(item_id=int(world.ids["item_id"])).items()}
        data |= {"rate_A": rate, "rate_B": "1", "rate_C": "1", "rate_D": "1"}
        resp = world.client.post(
            "/regulator/draws", data=data, headers=_form_headers(world, "regulator")
        )
        assert resp.status_code == 422, resp.text
        assert "抽查比例应为百分数" in resp.text

    def test_rate_with_two_decimals(self, world: World) -> None:
        data = {k: str(v) for k, v in draw_body(item_id=int(world.ids["item_id"])).items()}
        data |= {"rate_A": "2.55", "rate_B": "1", "rate_C": "1", "rate_D": "1"}
        resp = world.client.post(
            "/regulator/draws",
            data=data,
            headers=_form_headers(world, "regulator"),
            follow_redirects=False,
        )
        assert resp.status_code == 303, resp.text


def test_every_documented_error_has_the_error_shape(world: World) -> None:
    """OpenAPI documented 422 as FastAPI's ``{"detail": [...]}``, which no response has
    ever matched; now every documented error response is ``ErrorResponse``."""
    spec = world.client.app.openapi()  # type: ignore[attr-defined]
    wrong = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for status, response in op.get("responses", {}).items():
                if not status.isdigit() or int(status) < 400:
                    continue
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if schema != {"$ref": "#/components/schemas/ErrorResponse"}:
                    wrong.append(f"{method.upper()} {path} {status}: {schema}")
    assert not wrong, "\n".join(wrong)
    # ... and a real validation error is an ErrorResponse.
    body = world.client.get("/api/merchants?limit=0").json()
    ErrorResponse.model_validate(body)
    assert json.dumps(body, ensure_ascii=False).startswith('{"error": "ValidationFailed"')
