"""A populated app for the abuse tests: two merchants, staff, and one of every object
(pledge, penalty, repair, complaints, inspector, conflict, item, draws, a checkpoint),
with private values planted where the public must never see them.

Credentials are minted directly (``backend.accounts``), good and bad: expired, forged,
signed with another secret, for a disabled account, with a role the account does not
have, of the wrong kind, issued before a password change. Keyword-only arguments.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, text

from backend.accounts import security
from backend.accounts.models import Account
from backend.config import Settings
from backend.inspections.models import Draw, Inspector
from backend.ledger.anchoring import Anchorer
from backend.merchants.models import Merchant
from backend.timeutil import utcnow
from tests import factories
from tests.inspections import helpers as draws_helpers
from tests.supervision import outcomes as o

# Identities that are who they say they are.
REAL = ("anonymous", "merchant", "other_merchant", "regulator", "admin")
# Credentials that must never authenticate anyone.
BAD = (
    "expired",
    "garbage",
    "bad_signature",
    "foreign_secret",
    "disabled",
    "forged_role",
    "wrong_kind",
    "password_changed",
)
IDENTITIES = REAL + BAD

# Planted private values: none may appear in any response the public (or another merchant)
# can get.
SECRET_CONTACT_PERSON = "联系人保密甲"
SECRET_PHONE = "13987654321"
SECRET_COMPLAINT_CONTACT = "wechat-secret-contact-7731"
SECRET_COMPLAINT_CONTENT = "待核实投诉内容保密乙"
SECRET_REJECTION = "驳回理由保密丙"
SECRET_INSPECTOR_NAME = "检查员姓名保密丁"
SECRET_CONFLICT_REASON = "回避理由保密戊"
LOGIN_PROBE = "login-probe"


@dataclass
class World:
    client: TestClient
    settings: Settings
    uscc: str  # merchant M: the one acted on
    other_uscc: str  # merchant O
    account_ids: dict[str, int]
    # identity -> (access token, session token); None for anonymous
    tokens: dict[str, tuple[str, str] | None]
    ids: dict[str, str] = field(default_factory=dict)  # path parameter -> a real value
    secrets: dict[str, str] = field(default_factory=dict)  # label -> planted private value
    _cache: dict[str, Any] = field(default_factory=dict)

    # --- credentials ------------------------------------------------------------------

    def bearer(self, identity: str) -> dict[str, str]:
        pair = self.tokens[identity]
        return {} if pair is None else {"Authorization": f"Bearer {pair[0]}"}

    def session_cookie(self, identity: str) -> str | None:
        pair = self.tokens[identity]
        return None if pair is None else pair[1]

    @property
    def staff(self) -> dict[str, str]:
        return self.bearer("regulator")

    @property
    def own(self) -> dict[str, str]:
        return self.bearer("merchant")

    def renew(self, identity: str) -> None:
        """New tokens for a real identity: a logout revokes the ones it was sent with."""
        account_id = self.account_ids.get(identity)
        if account_id is None:
            return
        with self.client.app.state.ctx.db.read() as s:  # type: ignore[attr-defined]
            row = s.get(Account, account_id)
            assert row is not None
            self.tokens[identity] = (
                _mint(self.settings, row, kind="access"),
                _mint(self.settings, row, kind="session"),
            )

    def csrf_for(self, identity: str) -> str | None:
        """The CSRF token of ``identity``'s browser session (what its pages embed)."""
        cookie = self.session_cookie(identity)
        if cookie is None:
            return None
        try:
            claims = security.decode_token(
                security.load_secret(self.settings), cookie, kind="session", now=utcnow()
            )
        except security.TokenInvalid:
            return "0" * 64  # a bad session has no token; any value will do
        return security.csrf_token(security.load_secret(self.settings), claims.jti)

    # --- fresh objects ------------------------------------------------------------------

    def once(self, key: str, make: Any) -> Any:
        """``make()`` the first time, the same object afterwards."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def forget_limits(self) -> None:
        """Every request here comes from one address: reset the per-address limits."""
        with self.client.app.state.ctx.db.session() as s:  # type: ignore[attr-defined]
            s.execute(text("DELETE FROM rate_limit"))
            s.commit()

    def new_merchant(self) -> str:
        """A registered, unverified merchant (registered by a regulator: no address limit)."""
        return str(factories.register(self.client, headers=self.staff)["uscc"])

    def new_pledge(self) -> str:
        """A fresh active pledge of merchant M (renewing the last one)."""
        return str(factories.make_pledge(self.client, headers=self.own)["pledge_id"])

    def new_penalty(self) -> str:
        """A performed penalty of M, old enough for credit repair."""
        body = o.penalty(
            uscc=self.uscc,
            decided_on=o.days_ago(200),
            performed=True,
            decision_no=f"巴市监罚〔2025〕{secrets.randbelow(10**9)}号",
        )
        return str(o.post(self.client, body, headers=self.staff)["record_id"])

    def new_repair(self) -> str:
        resp = self.client.post(
            "/api/credit-repairs",
            json={"penalty_record_id": self.new_penalty(), "statement": "已履行并整改"},
            headers=self.own,
        )
        assert resp.status_code == 201, resp.text
        return str(resp.json()["repair_id"])

    def new_complaint(self, *, content: str = "电子秤不准", contact: str | None = None) -> str:
        self.forget_limits()
        body: dict[str, Any] = {"uscc": self.uscc, "content": content}
        if contact is not None:
            body["contact"] = contact
        resp = self.client.post("/api/complaints", json=body)
        assert resp.status_code == 201, resp.text
        return str(resp.json()["complaint_id"])

    def new_inspector(self) -> str:
        resp = self.client.post(
            "/api/inspectors",
            json={"name": "检查员", "unit": "巴州区市场监督管理局", "region_code": "511902"},
            headers=self.staff,
        )
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])

    def new_conflict(self) -> tuple[str, int]:
        inspector = self.new_inspector()
        resp = self.client.post(
            f"/api/inspectors/{inspector}/conflicts",
            json={"uscc": self.other_uscc, "reason": "亲属"},
            headers=self.staff,
        )
        assert resp.status_code == 201, resp.text
        return inspector, int(resp.json()["id"])

    def new_item(self) -> int:
        return draws_helpers.add_item(self.client, self.staff)

    def new_draw(self) -> str:
        made = draws_helpers.create_draw(self.client, self.staff, item_id=int(self.ids["item_id"]))
        return str(made["id"])

    def policy_document(self) -> dict[str, Any]:
        doc = dict(self.client.get("/api/credit/policy").json()["document"])
        doc.pop("version", None)
        doc["effective_from"] = o.days_ago(0).isoformat()
        return doc


def _mint(
    settings: Settings,
    account: Account,
    *,
    kind: security.TokenKind,
    secret: bytes | None = None,
    role: str | None = None,
    now_offset: timedelta = timedelta(0),
) -> str:
    assert account.id is not None
    token, _ = security.issue_token(
        secret or security.load_secret(settings),
        account_id=account.id,
        role=role or account.role,
        password_hash=account.password_hash,
        kind=kind,
        now=utcnow() + now_offset,
        ttl_s=settings.token_ttl_s,
    )
    return token


def _flip_mac(token: str) -> str:
    head, _, mac = token.rpartition(".")
    return f"{head}.{('A' if mac[0] != 'A' else 'B')}{mac[1:]}"


def _mint_all(w: World) -> None:
    """Good and bad credentials, each as an access token and as a session token."""
    settings = w.settings
    ctx = w.client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.session() as s:

        def account(name: str) -> Account:
            row = s.execute(select(Account).where(Account.username == name)).scalar_one()
            return row

        rows = {
            "merchant": account(w.uscc),
            "other_merchant": account(w.other_uscc),
            "regulator": account("abuse-regulator"),
            "admin": account("abuse-admin"),
        }
        for identity, row in rows.items():
            assert row.id is not None
            w.account_ids[identity] = row.id
            w.tokens[identity] = (
                _mint(settings, row, kind="access"),
                _mint(settings, row, kind="session"),
            )
        w.tokens["anonymous"] = None
        admin = rows["admin"]
        expired = -timedelta(seconds=settings.token_ttl_s + 60)
        w.tokens["expired"] = (
            _mint(settings, admin, kind="access", now_offset=expired),
            _mint(settings, admin, kind="session", now_offset=expired),
        )
        w.tokens["garbage"] = ("not-a-token", "v1.bm90.IGEgdG9rZW4")
        w.tokens["bad_signature"] = (
            _flip_mac(_mint(settings, admin, kind="access")),
            _flip_mac(_mint(settings, admin, kind="session")),
        )
        other = b"another-service-secret-0123456789abcdef"
        w.tokens["foreign_secret"] = (
            _mint(settings, admin, kind="access", secret=other),
            _mint(settings, admin, kind="session", secret=other),
        )
        # A correctly signed token claiming a role its account does not have.
        merchant = rows["merchant"]
        w.tokens["forged_role"] = (
            _mint(settings, merchant, kind="access", role="admin"),
            _mint(settings, merchant, kind="session", role="admin"),
        )
        # An access token where a session is expected and the other way round.
        w.tokens["wrong_kind"] = (
            _mint(settings, admin, kind="session"),
            _mint(settings, admin, kind="access"),
        )
        disabled = account("abuse-disabled")
        w.tokens["disabled"] = (
            _mint(settings, disabled, kind="access"),
            _mint(settings, disabled, kind="session"),
        )
        disabled.disabled = True
        changed = account("abuse-changed")
        w.tokens["password_changed"] = (
            _mint(settings, changed, kind="access"),
            _mint(settings, changed, kind="session"),
        )
        changed.password_hash = security.hash_password("a new password 2025", env=settings.env)
        s.commit()


def build_world(client: TestClient) -> World:
    """Populate the app behind ``client`` (fresh data dir, anchoring worker off)."""
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    regulator = factories.create_staff(client, username="abuse-regulator", role="regulator")
    factories.create_staff(client, username="abuse-admin", role="admin")
    for name in ("abuse-disabled", "abuse-changed", LOGIN_PROBE):
        factories.create_staff(client, username=name, role="admin")
    m = factories.register(
        client,
        headers=regulator,
        sector="retail",
        contact_person=SECRET_CONTACT_PERSON,
        contact_phone=SECRET_PHONE,
    )
    other = factories.register(client, headers=regulator, sector="retail")
    w = World(
        client=client,
        settings=ctx.settings,
        uscc=m["uscc"],
        other_uscc=other["uscc"],
        account_ids={},
        tokens={},
    )
    _mint_all(w)
    for uscc in (w.uscc, w.other_uscc):
        r = client.post(f"/api/merchants/{uscc}/verification", headers=regulator)
        assert r.status_code == 201, r.text
    w.ids["uscc"] = w.uscc
    # The C2SP tiles: the first entry bundle (the records' own bytes) at width 1.
    w.ids["level"], w.ids["index"] = "entries", "000.p/1"
    w.ids["name"] = "draws"  # a document the site cites (/documents/{name})
    w.ids["pledge_id"] = w.new_pledge()
    w.ids["record_id"] = w.new_penalty()
    w.ids["repair_id"] = w.new_repair()
    w.ids["complaint_id"] = w.new_complaint(
        content=SECRET_COMPLAINT_CONTENT, contact=SECRET_COMPLAINT_CONTACT
    )
    rejected = w.new_complaint(content="另一条投诉")
    r = client.post(
        f"/api/complaints/{rejected}/verification",
        json={"outcome": "rejected", "summary": SECRET_REJECTION},
        headers=regulator,
    )
    assert r.status_code == 201, r.text

    # Random inspections: more verified merchants, inspectors (one with a private name and
    # a conflict), an item, a revealed draw and a committed one whose seed is still secret.
    draws_helpers.seed_merchants(client, tiers=["A", "B", "B", "C", "D"])
    draws_helpers.add_inspectors(client, regulator, count=3)
    r = client.post(
        "/api/inspectors",
        json={
            "name": SECRET_INSPECTOR_NAME,
            "unit": "巴中市市场监督管理局",
            "region_code": "511902",
        },
        headers=regulator,
    )
    assert r.status_code == 201, r.text
    w.ids["inspector_id"] = r.json()["id"]
    r = client.post(
        f"/api/inspectors/{w.ids['inspector_id']}/conflicts",
        json={"uscc": w.uscc, "reason": SECRET_CONFLICT_REASON},
        headers=regulator,
    )
    assert r.status_code == 201, r.text
    w.ids["conflict_id"] = str(r.json()["id"])
    w.ids["item_id"] = str(w.new_item())
    revealed = w.new_draw()
    draws_helpers.reveal(client, regulator, revealed)
    w.ids["draw"] = w.ids["ref"] = revealed
    w.ids["committed_draw"] = w.new_draw()
    w.ids["sector"] = "retail"
    w.ids["version"] = "1"

    Anchorer(ctx).run_once(force=True)

    with ctx.db.read() as s:
        merchant = s.get(Merchant, w.uscc)
        assert merchant is not None
        w.secrets = {
            "contact_person": SECRET_CONTACT_PERSON,
            "contact_phone": SECRET_PHONE,
            "contact_salt": merchant.contact_salt,
            "complaint_contact": SECRET_COMPLAINT_CONTACT,
            "pending_complaint_content": SECRET_COMPLAINT_CONTENT,
            "rejection_reason": SECRET_REJECTION,
            "conflict_reason": SECRET_CONFLICT_REASON,
            "inspector_name": SECRET_INSPECTOR_NAME,
        }
        inspector = s.get(Inspector, w.ids["inspector_id"])
        assert inspector is not None
        w.secrets["inspector_name_salt"] = inspector.name_salt
        draw = s.get(Draw, w.ids["committed_draw"])
        assert draw is not None and draw.status == "committed", draw
        w.secrets["unrevealed_seed"] = draw.seed
        hashes = s.execute(select(Account.password_hash)).scalars().all()
        for k, h in enumerate(hashes):
            w.secrets[f"password_hash_{k}"] = h
    return w
