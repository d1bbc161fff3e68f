"""The authorization matrix: every write route of the app × every identity.

Identities (tests/abuse/world.py): anonymous, the merchant acted on, another merchant,
a regulator, an admin, and credentials that must never authenticate anyone — expired,
garbage, a forged signature, another service's secret, a disabled account, a role claim
the account does not have, the wrong token kind, a token from before a password change.

The write routes are read from the app itself (POST/PUT/PATCH/DELETE, the API and the
browser forms), so a new one fails :func:`test_every_write_route_is_in_the_matrix`
until it has a row in :data:`MATRIX`. Expected outcome per cell:

- ``401`` / ``403`` with the one error shape (``{"error", "detail"}``);
- ``LOGIN``: a browser form refused by redirecting to the login page;
- ``OK``: anything that is not a refusal of the caller (2xx/3xx, or 404/409/422 about the
  payload or state) — and at least one ``OK`` identity per route really succeeds.

API routes get the credential as ``Authorization: Bearer``; browser forms as the
``hm_session`` cookie with the session's CSRF token (and an anonymous form's token).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from backend.accounts import service as accounts_service
from backend.accounts.service import Principal
from backend.app import create_app
from backend.credit import frequencies
from tests import factories
from tests.abuse.world import BAD, IDENTITIES, LOGIN_PROBE, REAL, World, build_world
from tests.conftest import make_settings
from tests.supervision import outcomes as o

OK: Literal["ok"] = "ok"
LOGIN: Literal["login"] = "login"
Expect = int | str
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ANON_NONCE = "a1" * 16  # the anonymous-form cookie (hm_form) these tests send


@dataclass
class Req:
    url: str
    json: Any = None
    data: dict[str, Any] | None = None
    files: dict[str, Any] | None = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


# build(world, fresh): the request; ``fresh`` asks for new objects (the identity is expected
# to get through, so state must not be used up), otherwise shared ones may be reused.
Build = Callable[[World, bool], Req]


@dataclass(frozen=True)
class Row:
    build: Build
    # anonymous, merchant (the one acted on), other_merchant, regulator, admin
    expect: tuple[Expect, Expect, Expect, Expect, Expect]
    # "ignored": the route never reads credentials, so bad ones change nothing
    credentials: Literal["read", "ignored"] = "read"
    must_succeed: bool = True  # some OK identity gets a 2xx/3xx


STAFF_ONLY = (401, 403, 403, OK, OK)
FORM_STAFF_ONLY = (LOGIN, 403, 403, OK, OK)


def _fresh(w: World, fresh: bool, key: str, make: Callable[[], Any]) -> Any:
    return make() if fresh else w.once(key, make)


# --- API request builders ------------------------------------------------------------------


def _rpc(w: World, fresh: bool) -> Req:
    return Req("/rpc", json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"})


def _token(w: World, fresh: bool) -> Req:
    return Req(
        "/api/auth/token", data={"username": LOGIN_PROBE, "password": factories.STAFF_PASSWORD}
    )


def _password(w: World, fresh: bool) -> Req:
    # A wrong current password: whoever gets past authentication is refused on the payload
    # (422, the new one is too short), so no identity's token is used up.
    return Req("/api/auth/password", json={"current_password": "wrong", "new_password": "short"})


def _staff_account(w: World, fresh: bool) -> Req:
    name = f"staff-{factories.make_uscc()[-8:].lower()}"
    body = {"username": name, "password": factories.STAFF_PASSWORD, "role": "regulator"}
    return Req("/api/accounts", json=body)


def _victim(w: World, fresh: bool) -> str:
    """A merchant account to act on (never merchant M or O, whose tokens the matrix uses)."""
    return str(_fresh(w, fresh, "victim", w.new_merchant))


def _disable(w: World, fresh: bool) -> Req:
    return Req(f"/api/accounts/{_victim(w, fresh)}/disable")


def _enable(w: World, fresh: bool) -> Req:
    return Req(f"/api/accounts/{_victim(w, fresh)}/enable")


def _reset(w: World, fresh: bool) -> Req:
    return Req(f"/api/accounts/{_victim(w, fresh)}/password-reset")


def _staff_victim(w: World, fresh: bool) -> str:
    def make() -> str:
        name = f"victim-{factories.make_uscc()[-8:].lower()}"
        factories.create_staff(w.client, username=name, role="regulator")
        return name

    return str(_fresh(w, fresh, "staff-victim", make))


def _role(w: World, fresh: bool) -> Req:
    return Req(f"/api/accounts/{_staff_victim(w, fresh)}/role", json={"role": "admin"})


def _reject(w: World, fresh: bool) -> Req:
    uscc = _fresh(w, fresh, "to-reject", w.new_merchant)
    return Req(f"/api/merchants/{uscc}/rejection", json={"reason": "代码不属于登记人"})


def _transfer(w: World, fresh: bool) -> Req:
    uscc = _fresh(w, fresh, "to-transfer", w.new_merchant)
    return Req(f"/api/merchants/{uscc}/transfer", json={"reason": "代码不属于登记人"})


def _form_password(w: World, fresh: bool) -> Req:
    # A weak new password: refused on the payload (the page again, 422), nobody's changes.
    data = {"current_password": "wrong", "new_password": "1234567890",
            "new_password2": "1234567890"}
    return Req("/account/password", data=data)


def _form_staff_create(w: World, fresh: bool) -> Req:
    name = f"staff-{factories.make_uscc()[-8:].lower()}"
    data = {"username": name, "password": factories.STAFF_PASSWORD, "role": "regulator"}
    return Req("/admin/accounts", data=data)


def _form_staff_action(w: World, fresh: bool) -> Req:
    return Req(f"/admin/accounts/{_staff_victim(w, fresh)}", data={"action": "password-reset"})


def _form_desk_decide(w: World, fresh: bool) -> Req:
    uscc = _fresh(w, fresh, "to-transfer", w.new_merchant)
    data = {"decision": "transfer", "reason": "代码不属于登记人"}
    return Req(f"/regulator/merchants/{uscc}/registration", data=data)


def _form_desk_account(w: World, fresh: bool) -> Req:
    return Req(f"/regulator/merchants/{_victim(w, fresh)}/account",
               data={"action": "password-reset"})


def _login(w: World, fresh: bool) -> Req:
    return Req("/auth/login", data={"username": LOGIN_PROBE, "password": factories.STAFF_PASSWORD})


def _logout(w: World, fresh: bool) -> Req:
    return Req("/auth/logout")


def _api_logout(w: World, fresh: bool) -> Req:
    return Req("/api/auth/logout")


# Routes that revoke the credential they are sent with: send() renews it afterwards.
LOGS_OUT = frozenset({"POST /auth/logout", "POST /api/auth/logout"})


def _register(w: World, fresh: bool) -> Req:
    w.forget_limits()
    return Req("/api/merchants", json=factories.merchant_body())


def _verify(w: World, fresh: bool) -> Req:
    uscc = _fresh(w, fresh, "unverified", w.new_merchant)
    return Req(f"/api/merchants/{uscc}/verification")


def _wallet(w: World, fresh: bool) -> Req:
    return Req(f"/api/merchants/{w.uscc}/wallet", json={"address": "0x" + "ab" * 20})


def _pledge(w: World, fresh: bool) -> Req:
    return Req("/api/pledges", json=factories.pledge_body(uscc=w.uscc))


def _typed_data(w: World, fresh: bool) -> Req:
    body = factories.pledge_body()
    return Req("/api/pledges/typed-data", json=body)


def _withdraw(w: World, fresh: bool) -> Req:
    pledge = _fresh(w, fresh, "pledge", w.new_pledge)
    return Req(f"/api/pledges/{pledge}/withdraw", json={"reason": "停业"})


def _demonstration(w: World, fresh: bool) -> Req:
    if fresh:
        w.new_pledge()  # an award needs an active pledge
    return Req(f"/api/merchants/{w.uscc}/demonstration", json={"action": "award"})


def _record(w: World, fresh: bool) -> Req:
    return Req("/api/supervision/records", json=o.spot_check(uscc=w.uscc))


def _ndjson(w: World) -> bytes:
    return (json.dumps(o.spot_check(uscc=w.uscc), ensure_ascii=False) + "\n").encode()


def _bulk(w: World, fresh: bool) -> Req:
    return Req(
        "/api/supervision/records/bulk",
        content=_ndjson(w),
        headers={"Content-Type": "application/x-ndjson"},
    )


def _complaint(w: World, fresh: bool) -> Req:
    w.forget_limits()
    return Req("/api/complaints", json={"uscc": w.uscc, "content": "少称"})


def _complaint_status(w: World, fresh: bool) -> Req:
    def receipt() -> dict[str, str]:
        w.forget_limits()
        body = w.client.post("/api/complaints", json={"uscc": w.uscc, "content": "少称"}).json()
        return {"ticket": body["ticket"], "code": body["check_code"]}

    w.forget_limits()
    return Req("/api/complaints/status", json=_fresh(w, fresh, "receipt", receipt))


def _review(w: World, fresh: bool) -> Req:
    complaint = _fresh(w, fresh, "complaint", w.new_complaint)
    return Req(
        f"/api/complaints/{complaint}/verification",
        json={"outcome": "rejected", "summary": "查无实据"},
    )


def _policy(w: World, fresh: bool) -> Req:
    return Req("/api/credit/policy", json=w.policy_document())


def _apply_repair(w: World, fresh: bool) -> Req:
    penalty = _fresh(w, fresh, "penalty", w.new_penalty)
    return Req("/api/credit-repairs", json={"penalty_record_id": penalty, "statement": "已整改"})


def _decide_repair(w: World, fresh: bool) -> Req:
    repair = _fresh(w, fresh, "repair", w.new_repair)
    return Req(
        f"/api/credit-repairs/{repair}/decision",
        json={"decision": "rejected", "reason": "材料不全"},
    )


def _inspector(w: World, fresh: bool) -> Req:
    body = {"name": "检查员", "unit": "巴州区市场监督管理局", "region_code": "511902"}
    return Req("/api/inspectors", json=body)


def _update_inspector(w: World, fresh: bool) -> Req:
    unit = f"巴中市市场监督管理局第{factories.make_uscc()[-6:]}分局"  # a change every time
    return Req(f"/api/inspectors/{w.ids['inspector_id']}", json={"unit": unit})


def _conflict(w: World, fresh: bool) -> Req:
    inspector = _fresh(w, fresh, "inspector", w.new_inspector)
    return Req(f"/api/inspectors/{inspector}/conflicts", json={"uscc": w.other_uscc})


def _withdraw_conflict(w: World, fresh: bool) -> Req:
    inspector, conflict = _fresh(w, fresh, "conflict", w.new_conflict)
    return Req(f"/api/inspectors/{inspector}/conflicts/{conflict}")


def _item(w: World, fresh: bool) -> Req:
    body = {
        "title": "计量器具检查",
        "legal_basis": "《计量法》",
        "sectors": ["retail"],
        "method": "现场检查",
    }
    return Req("/api/inspection-items", json=body)


def _update_item(w: World, fresh: bool) -> Req:
    method = f"现场检查（{factories.make_uscc()[-6:]}）"  # a change every time
    return Req(f"/api/inspection-items/{w.ids['item_id']}", json={"method": method})


def _draw(w: World, fresh: bool) -> Req:
    from tests.inspections.helpers import draw_body

    return Req("/api/draws", json=draw_body(item_id=int(w.ids["item_id"])))


def _commit(w: World, fresh: bool) -> Req:
    return Req(f"/api/draws/{w.ids['committed_draw']}/commit")


def _reveal(w: World, fresh: bool) -> Req:
    draw = _fresh(w, fresh, "draw", w.new_draw)
    return Req(f"/api/draws/{draw}/reveal")


# --- browser form builders ------------------------------------------------------------------


def _form_token(w: World) -> str:
    def fetch() -> str:
        w.client.cookies.clear()
        page = w.client.get("/complaint", headers={"Cookie": f"hm_form={ANON_NONCE}"})
        found = re.search(r'name="form_token" value="([^"]+)"', page.text)
        assert found, "no form_token on /complaint"
        return found.group(1)

    return str(w.once("form_token", fetch))


def _form_register(w: World, fresh: bool) -> Req:
    w.forget_limits()
    body = factories.merchant_body()
    body.pop("password")
    data = {
        **body,
        "password": factories.PASSWORD,
        "password2": factories.PASSWORD,
        "form_token": _form_token(w),
    }
    return Req("/register", data=data)


def _form_complaint(w: World, fresh: bool) -> Req:
    w.forget_limits()
    data = {"uscc": w.uscc, "content": "短斤少两", "form_token": _form_token(w)}
    return Req("/complaint", data=data)


def _new_ticket(w: World) -> tuple[str, str]:
    w.forget_limits()
    resp = w.client.post("/api/complaints", json={"uscc": w.uscc, "content": "秤不准"})
    assert resp.status_code == 201, resp.text
    return resp.json()["ticket"], resp.json()["check_code"]


def _form_complaint_status(w: World, fresh: bool) -> Req:
    ticket, code = w.once("ticket", lambda: _new_ticket(w))
    return Req(
        "/complaint/status", data={"ticket": ticket, "code": code, "form_token": _form_token(w)}
    )


def _form_staff_register(w: World, fresh: bool) -> Req:
    body = factories.merchant_body()
    password = body.pop("password")
    data = {**body, "password": password, "password2": password}
    return Req("/regulator/merchants/new", data=data)


# Each proposal differs from the last (an approval puts its rates in force, and the rates in
# force cannot be proposed again).
_rate_a = itertools.count(101)


def _form_frequencies(w: World, fresh: bool) -> Req:
    a = f"{next(_rate_a) / 100:.2f}"
    rates = {f"rate_{t}": v for t, v in zip("ABCD", (a, "10", "30", "100"), strict=True)}
    return Req(
        "/regulator/frequencies", data={**rates, "effective_from": o.days_ago(0).isoformat()}
    )


def _new_proposal(w: World) -> str:
    """A pending rate proposal by a third staff account (so both staff identities may
    decide it)."""
    ctx = w.client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.session() as s:
        account = w.once(
            "proposer",
            lambda: accounts_service.create_staff_account(
                s, settings=w.settings, username="proposer", password="proposer pw 2026",
                role="regulator",
            ).id,
        )
        proposer = Principal(
            account_id=account, username="proposer", role="regulator", merchant_uscc=None
        )
        made = frequencies.propose(
            s,
            principal=proposer,
            rule="two_person",
            rates_bp={"A": next(_rate_a), "B": 1000, "C": 3000, "D": 10000},
            effective_from=o.days_ago(0),
        )
        return made.proposal.id


def _form_rate_decision(w: World, fresh: bool) -> Req:
    proposal = _fresh(w, fresh, "proposal", lambda: _new_proposal(w))
    return Req(f"/regulator/frequencies/{proposal}/decision", data={"decision": "approve"})


def _form_pledge(w: World, fresh: bool) -> Req:
    body = factories.pledge_body()
    return Req(
        "/merchant/pledge",
        data={"template_version": str(body["template_version"]), "items": body["items"]},
    )


def _form_withdraw(w: World, fresh: bool) -> Req:
    pledge = _fresh(w, fresh, "pledge", w.new_pledge)
    return Req("/merchant/pledge/withdraw", data={"pledge_id": pledge, "reason": "停业"})


def _form_repair(w: World, fresh: bool) -> Req:
    penalty = _fresh(w, fresh, "penalty", w.new_penalty)
    return Req("/merchant/repair", data={"penalty_record_id": penalty, "statement": "已整改"})


def _form_verify(w: World, fresh: bool) -> Req:
    uscc = _fresh(w, fresh, "unverified", w.new_merchant)
    return Req(f"/regulator/merchants/{uscc}/verify")


def _form_outcome(w: World, fresh: bool) -> Req:
    data = {k: str(v) for k, v in o.spot_check(uscc=w.uscc).items()}
    return Req("/regulator/outcomes", data=data)


def _form_bulk(w: World, fresh: bool) -> Req:
    return Req(
        "/regulator/outcomes/bulk",
        files={"file": ("outcomes.ndjson", _ndjson(w), "application/x-ndjson")},
    )


def _form_bulk_record(w: World, fresh: bool) -> Req:
    # A token no upload made: staff get the page saying so (409), the rest never get there.
    return Req("/regulator/outcomes/bulk/record", data={"token": "0" * 16 + "-" + "0" * 64})


def _form_review(w: World, fresh: bool) -> Req:
    complaint = _fresh(w, fresh, "complaint", w.new_complaint)
    return Req(
        f"/regulator/complaints/{complaint}/review",
        data={"outcome": "rejected", "summary": "查无实据"},
    )


def _form_decide(w: World, fresh: bool) -> Req:
    repair = _fresh(w, fresh, "repair", w.new_repair)
    return Req(
        f"/regulator/repairs/{repair}/decision",
        data={"decision": "rejected", "reason": "材料不全"},
    )


def _form_policy(w: World, fresh: bool) -> Req:
    doc = json.dumps(w.policy_document(), ensure_ascii=False)
    return Req("/regulator/policy", data={"document": doc})


def _form_draw(w: World, fresh: bool) -> Req:
    from tests.inspections.helpers import draw_body

    body = draw_body(item_id=int(w.ids["item_id"]))
    return Req("/regulator/draws", data={k: str(v) for k, v in body.items()} | {"per_check": "2"})


def _form_reveal(w: World, fresh: bool) -> Req:
    draw = _fresh(w, fresh, "draw", w.new_draw)
    return Req(f"/regulator/draws/{draw}/reveal")


def _form_commit(w: World, fresh: bool) -> Req:
    return Req(f"/regulator/draws/{w.ids['committed_draw']}/commit")


def _form_inspector(w: World, fresh: bool) -> Req:
    data = {"name": "检查员", "unit": "巴州区市场监督管理局", "region_code": "511902"}
    return Req("/regulator/inspectors", data=data)


def _form_item(w: World, fresh: bool) -> Req:
    data = {
        "title": "计量器具检查",
        "legal_basis": "《计量法》",
        "method": "现场检查",
        "sectors": ["retail"],
    }
    return Req("/regulator/items", data=data)


# --- the expected-access table ---------------------------------------------------------------

# Row(build, (anonymous, merchant acted on, another merchant, regulator, admin), ...)
MATRIX: dict[str, Row] = {
    # the ledger's read-only JSON-RPC and logging in read no credentials
    "POST /rpc": Row(_rpc, (OK, OK, OK, OK, OK), "ignored"),
    "POST /api/auth/token": Row(_token, (OK, OK, OK, OK, OK), "ignored"),
    "POST /auth/login": Row(_login, (OK, OK, OK, OK, OK), "ignored"),
    "POST /api/auth/password": Row(_password, (401, OK, OK, OK, OK), must_succeed=False),
    "POST /auth/logout": Row(_logout, (401, OK, OK, OK, OK)),
    "POST /api/auth/logout": Row(_api_logout, (401, OK, OK, OK, OK)),
    "POST /api/accounts": Row(_staff_account, (401, 403, 403, 403, OK)),
    # staff disable accounts and reset passwords (regulators: merchant accounts only);
    # enabling an enabled account is refused on the state (409)
    "POST /api/accounts/{username}/disable": Row(_disable, STAFF_ONLY),
    "POST /api/accounts/{username}/enable": Row(_enable, STAFF_ONLY, must_succeed=False),
    "POST /api/accounts/{username}/password-reset": Row(_reset, STAFF_ONLY),
    "PUT /api/accounts/{username}/role": Row(_role, (401, 403, 403, 403, OK)),
    # merchants register themselves or through a regulator; an admin manages accounts only
    "POST /api/merchants": Row(_register, (OK, 403, 403, OK, 403)),
    "POST /api/merchants/{uscc}/verification": Row(_verify, (401, 403, 403, OK, 403)),
    "POST /api/merchants/{uscc}/rejection": Row(_reject, (401, 403, 403, OK, 403)),
    "POST /api/merchants/{uscc}/transfer": Row(_transfer, (401, 403, 403, OK, 403)),
    "PUT /api/merchants/{uscc}/wallet": Row(_wallet, (401, OK, 403, 403, 403)),
    # the body names merchant M: another merchant may pledge only for itself
    "POST /api/pledges": Row(_pledge, (401, OK, 403, 403, 403)),
    "POST /api/pledges/typed-data": Row(_typed_data, (401, OK, OK, 403, 403)),
    "POST /api/pledges/{pledge_id}/withdraw": Row(_withdraw, (401, OK, 403, 403, 403)),
    "POST /api/merchants/{uscc}/demonstration": Row(_demonstration, (401, 403, 403, OK, 403)),
    "POST /api/supervision/records": Row(_record, STAFF_ONLY),
    "POST /api/supervision/records/bulk": Row(_bulk, STAFF_ONLY),
    "POST /api/complaints": Row(_complaint, (OK, OK, OK, OK, OK)),
    "POST /api/complaints/status": Row(
        _complaint_status, (OK, OK, OK, OK, OK), credentials="ignored"
    ),
    "POST /api/complaints/{complaint_id}/verification": Row(_review, STAFF_ONLY),
    "PUT /api/credit/policy": Row(_policy, (401, 403, 403, 403, OK)),
    "POST /api/credit-repairs": Row(_apply_repair, (401, OK, 403, 403, 403)),
    "POST /api/credit-repairs/{repair_id}/decision": Row(_decide_repair, STAFF_ONLY),
    "POST /api/inspectors": Row(_inspector, STAFF_ONLY),
    "PATCH /api/inspectors/{inspector_id}": Row(_update_inspector, STAFF_ONLY),
    "POST /api/inspectors/{inspector_id}/conflicts": Row(_conflict, STAFF_ONLY),
    "DELETE /api/inspectors/{inspector_id}/conflicts/{conflict_id}": Row(
        _withdraw_conflict, STAFF_ONLY
    ),
    "POST /api/inspection-items": Row(_item, STAFF_ONLY),
    "PATCH /api/inspection-items/{item_id}": Row(_update_item, STAFF_ONLY),
    "POST /api/draws": Row(_draw, STAFF_ONLY),
    "POST /api/draws/{draw}/commit": Row(_commit, STAFF_ONLY),
    "POST /api/draws/{draw}/reveal": Row(_reveal, STAFF_ONLY),
    # browser forms: a stale or bad session cookie is no session (the login page, or the
    # anonymous form), never an error page
    "POST /register": Row(_form_register, (OK, 403, 403, OK, 403)),
    "POST /complaint": Row(_form_complaint, (OK, OK, OK, OK, OK)),
    "POST /account/password": Row(_form_password, (LOGIN, OK, OK, OK, OK), must_succeed=False),
    "POST /admin/accounts": Row(_form_staff_create, (LOGIN, 403, 403, 403, OK)),
    "POST /admin/accounts/{username}": Row(_form_staff_action, (LOGIN, 403, 403, 403, OK)),
    "POST /regulator/merchants/{uscc}/registration": Row(
        _form_desk_decide, (LOGIN, 403, 403, OK, 403)
    ),
    "POST /regulator/merchants/{uscc}/account": Row(
        _form_desk_account, (LOGIN, 403, 403, OK, 403)
    ),
    "POST /merchant/pledge": Row(_form_pledge, (LOGIN, OK, OK, 403, 403)),
    "POST /merchant/pledge/withdraw": Row(_form_withdraw, (LOGIN, OK, 403, 403, 403)),
    "POST /merchant/repair": Row(_form_repair, (LOGIN, OK, 403, 403, 403)),
    "POST /regulator/merchants/{uscc}/verify": Row(_form_verify, (LOGIN, 403, 403, OK, 403)),
    "POST /regulator/outcomes": Row(_form_outcome, FORM_STAFF_ONLY),
    "POST /regulator/outcomes/bulk": Row(_form_bulk, FORM_STAFF_ONLY),
    "POST /regulator/outcomes/bulk/record": Row(
        _form_bulk_record, FORM_STAFF_ONLY, must_succeed=False
    ),
    "POST /regulator/complaints/{complaint_id}/review": Row(_form_review, FORM_STAFF_ONLY),
    "POST /regulator/repairs/{repair_id}/decision": Row(_form_decide, FORM_STAFF_ONLY),
    "POST /regulator/policy": Row(_form_policy, (LOGIN, 403, 403, 403, OK)),
    "POST /regulator/frequencies": Row(_form_frequencies, FORM_STAFF_ONLY),
    "POST /regulator/frequencies/{proposal_id}/decision": Row(
        _form_rate_decision, FORM_STAFF_ONLY
    ),
    "POST /regulator/merchants/new": Row(_form_staff_register, (LOGIN, 403, 403, OK, 403)),
    "POST /complaint/status": Row(_form_complaint_status, (OK, OK, OK, OK, OK)),
    "POST /regulator/draws": Row(_form_draw, FORM_STAFF_ONLY),
    "POST /regulator/draws/{ref}/reveal": Row(_form_reveal, FORM_STAFF_ONLY),
    "POST /regulator/draws/{ref}/commit": Row(_form_commit, FORM_STAFF_ONLY),
    "POST /regulator/inspectors": Row(_form_inspector, FORM_STAFF_ONLY),
    "POST /regulator/items": Row(_form_item, FORM_STAFF_ONLY),
}


# --- running a cell ------------------------------------------------------------------------------


def write_routes(app: FastAPI) -> dict[str, bool]:
    """``"METHOD /path"`` of every write route -> whether it is a browser form."""
    found: dict[str, bool] = {}
    for rc in iter_route_contexts(app.routes):
        route = rc.original_route
        for method in sorted((rc.methods or set()) & WRITE_METHODS):
            is_form = isinstance(route, APIRoute) and not route.include_in_schema
            found[f"{method} {rc.path}"] = is_form
    return found


def expected(row: Row, identity: str, *, cookie: bool) -> Expect:
    if identity in REAL:
        return row.expect[REAL.index(identity)]
    if row.credentials == "ignored" or cookie:
        # A stale or bad session cookie is simply no session.
        return row.expect[0]
    # A bad bearer token is an error, even where anonymity would be fine.
    return 401


def send(
    w: World, key: str, row: Row, identity: str, *, cookie: bool, csrf: bool = True
) -> httpx.Response:
    """One cell: the credential as the session cookie (browser forms) or a bearer token."""
    method, _ = key.split(" ", 1)
    fresh = expected(row, identity, cookie=cookie) == OK
    req = row.build(w, fresh)
    headers = dict(req.headers)
    if cookie:
        cookies = [f"hm_form={ANON_NONCE}"]
        session = w.session_cookie(identity)
        if session is not None:
            cookies.append(f"hm_session={session}")
            token = w.csrf_for(identity)
            if csrf and token is not None:
                headers["X-CSRF-Token"] = token
        headers["Cookie"] = "; ".join(cookies)
    else:
        headers.update(w.bearer(identity))
    w.client.cookies.clear()
    resp = w.client.request(
        method,
        req.url,
        json=req.json,
        data=req.data,
        files=req.files,
        content=req.content,
        headers=headers,
        follow_redirects=False,
    )
    if key in LOGS_OUT:
        w.renew(identity)
    return resp


def outcome(resp: httpx.Response) -> Expect:
    status = resp.status_code
    if status in (401, 403):
        return status
    if status in (302, 303) and resp.headers.get("location", "").startswith("/login?"):
        return LOGIN
    if status >= 500:
        return f"{status} server error"
    return OK


def check_error_shape(resp: httpx.Response, *, cookie: bool) -> str | None:
    """``None`` if a 401/403 has the one error shape; else what is wrong."""
    if not resp.headers.get("content-type", "").startswith("application/json"):
        # Form handlers that catch a refusal re-render the page with the status.
        return None if cookie else f"not JSON: {resp.headers.get('content-type')}"
    body = resp.json()
    if not (isinstance(body.get("error"), str) and isinstance(body.get("detail"), str)):
        return f"not the error shape: {body}"
    names = {
        401: {"NotAuthenticated", "InvalidToken"},
        403: {"RoleNotPermitted", "NotOwnMerchant", "CsrfFailed"},
    }[resp.status_code]
    if body["error"] not in names:
        return f"unexpected error name {body['error']}"
    challenge = resp.headers.get("www-authenticate", "").lower()
    if resp.status_code == 401 and "bearer" not in challenge:
        return "401 without WWW-Authenticate: Bearer"
    return None


# --- fixtures and tests ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = make_settings(tmp_path_factory.mktemp("authz") / "data", anchor_enabled=False)
    with TestClient(create_app(settings)) as client:
        yield build_world(client)


@pytest.fixture(scope="module")
def forms(world: World) -> dict[str, bool]:
    return write_routes(world.client.app)  # type: ignore[arg-type]


def test_every_write_route_is_in_the_matrix(forms: dict[str, bool]) -> None:
    routes = set(forms)
    missing = sorted(routes - set(MATRIX))
    stale = sorted(set(MATRIX) - routes)
    assert not missing, f"write routes without a row in MATRIX (add one): {missing}"
    assert not stale, f"MATRIX rows for routes that no longer exist: {stale}"


@pytest.mark.parametrize("key", list(MATRIX))
def test_access(world: World, forms: dict[str, bool], key: str) -> None:
    row = MATRIX[key]
    cookie = forms[key]
    problems = []
    succeeded = []
    for identity in IDENTITIES:
        want = expected(row, identity, cookie=cookie)
        resp = send(world, key, row, identity, cookie=cookie)
        got = outcome(resp)
        if got != want:
            problems.append(
                f"{identity}: expected {want}, got {resp.status_code} {resp.text[:300]}"
            )
        elif got in (401, 403):
            shape = check_error_shape(resp, cookie=cookie)
            if shape:
                problems.append(f"{identity}: {resp.status_code} {shape}")
        elif got == OK and resp.status_code < 400:
            succeeded.append(identity)
    assert not problems, f"{key}:\n" + "\n".join(problems)
    if row.must_succeed:
        assert succeeded, f"{key}: no identity expected to get through actually succeeded"


# Unsafe requests authenticated by the session cookie need the session's CSRF token: every
# write route that reads credentials, with an identity that would otherwise get through.
CSRF_ROUTES = [
    key
    for key, row in MATRIX.items()
    if row.credentials == "read" and any(e == OK for e in row.expect[1:])
]


@pytest.mark.parametrize("key", CSRF_ROUTES)
def test_cookie_without_csrf_token_is_refused(world: World, key: str) -> None:
    row = MATRIX[key]
    identity = next(i for i, e in zip(REAL[1:], row.expect[1:], strict=True) if e == OK)
    # The session cookie (API routes accept it too), without the session's CSRF token.
    resp = send(world, key, row, identity, cookie=True, csrf=False)
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"] == "CsrfFailed"


def test_bad_credentials_are_all_distinct_failures(world: World) -> None:
    """Each bad credential fails for its own reason (the matrix would pass vacuously if,
    say, every one of them were the same garbage string)."""
    details = set()
    for identity in BAD:
        resp = world.client.get("/api/auth/me", headers=world.bearer(identity))
        assert resp.status_code == 401, (identity, resp.text)
        assert resp.json()["error"] == "InvalidToken"
        details.add(resp.json()["detail"])
    assert len(details) >= 5, details
