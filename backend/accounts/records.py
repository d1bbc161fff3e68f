"""The accounts' record kinds: what staff do to an account, and its projection.

- ``account.created``  body ``{"account_id", "role"}``  (a staff account)
- ``account.disabled`` / ``account.enabled``  body ``{"account_id"}``
- ``account.password_reset``  body ``{"account_id"}``: never the password or its hash
- ``account.role_set``  body ``{"account_id", "role"}``

All project into ``account_action`` (one row per record). Subject ``None``: an account
is not a merchant, and no rating reads these. The private ``account`` row (hash,
disabled flag, token version) is changed by the service in the same transaction; it is
not a projection (``backend/accounts/models.py``).
"""

from __future__ import annotations

from sqlalchemy import Table

from backend.accounts.models import AccountAction
from backend.ledger.projection import Projection, Rec, Rows, register

CREATED = "account.created"
DISABLED = "account.disabled"
ENABLED = "account.enabled"
PASSWORD_RESET = "account.password_reset"
ROLE_SET = "account.role_set"
KINDS = {
    CREATED: "created",
    DISABLED: "disabled",
    ENABLED: "enabled",
    PASSWORD_RESET: "password_reset",
    ROLE_SET: "role_set",
}
TYPE_OF = {v: k for k, v in KINDS.items()}

ACTION: Table = AccountAction.__table__  # type: ignore[attr-defined]


def action_body(*, account_id: int, role: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {"account_id": account_id}
    if role is not None:
        body["role"] = role
    return body


def _action(rec: Rec, rows: Rows) -> None:
    rows.insert(
        ACTION,
        {
            **rec.provenance(),
            "target_id": int(rec.body["account_id"]),
            "action": KINDS[rec.type],
            "role": rec.body.get("role"),
        },
    )


register(Projection(ACTION, key=("record_id",), types=frozenset(KINDS), apply=_action))
