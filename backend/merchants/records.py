"""The merchant registry's record kinds and their projections.

- ``merchant.registered`` -> ``merchant``: the registration as recorded. The
  contact (person, phone) never enters the record in clear; the row keeps it with
  the salt of the record's ``contact_digest`` (private columns, checked by audit
  against the digest, never shown to the public).
- ``merchant.registered`` -> ``merchant_search``: the merchant's search keys
  (``backend/merchants/search.py``).
- ``merchant.verified`` -> ``merchant_verification``.
- ``merchant.wallet_bound`` -> ``merchant_wallet``: the wallet whose EIP-712
  signatures the merchant's pledges may carry (the newest binding is current).
- ``merchant.rejected`` -> ``merchant_registration_action``, and ``merchant.rejected_by``:
  a regulator ends a registration of a code that is not the registrant's. The row stays
  (what was registered, and when, is history); it is shown as no merchant, and a later
  ``merchant.registered`` of the same code (by its owner) takes its place.
- ``merchant.transferred`` -> ``merchant_registration_action``: a regulator hands the
  registration to the code's rightful owner (the merchant account gets a new password;
  the account table is private, not a projection).

Pure declarations: nothing here reads a clock, settings or the database except
through the ``Rows`` a projection is given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import rfc8785
from sqlalchemy import Table

from backend.ledger.projection import Projection, Rec, Rows, day, register
from backend.merchants.models import (
    Merchant,
    MerchantRegistrationAction,
    MerchantSearch,
    MerchantVerification,
    MerchantWallet,
)
from backend.merchants.search import fold, search_keys

REGISTERED = "merchant.registered"
VERIFIED = "merchant.verified"
WALLET_BOUND = "merchant.wallet_bound"
REJECTED = "merchant.rejected"
TRANSFERRED = "merchant.transferred"
ACTIONS = {REJECTED: "rejected", TRANSFERRED: "transferred"}
# The ref from a rejection or transfer to the registration it is about.
REF_OF = {REJECTED: "rejects", TRANSFERRED: "transfers"}
# The ref from a registration to the rejection of the code's earlier registration.
AFTER_REJECTION = "after_rejection"

MERCHANT: Table = Merchant.__table__  # type: ignore[attr-defined]
VERIFICATION: Table = MerchantVerification.__table__  # type: ignore[attr-defined]
WALLET: Table = MerchantWallet.__table__  # type: ignore[attr-defined]
ACTION: Table = MerchantRegistrationAction.__table__  # type: ignore[attr-defined]
SEARCH: Table = MerchantSearch.__table__  # type: ignore[attr-defined]
CONTACT_COLUMNS = frozenset({"contact_person", "contact_phone", "contact_salt"})


def contact_digest(salt_hex: str, *, person: str, phone: str) -> str:
    """``SHA-256(salt || RFC8785({"contact_person": p, "contact_phone": t}))``, hex."""
    value = rfc8785.dumps({"contact_person": person, "contact_phone": phone})
    return hashlib.sha256(bytes.fromhex(salt_hex) + value).hexdigest()


def _merchant_rows(rec: Rec, rows: Rows) -> None:
    if rec.type == REJECTED:
        rows.update(MERCHANT, (rec.subject,), {"rejected_by": rec.record_id})
        return
    b = rec.body
    row = {
        "uscc": b["uscc"],
        "name": b["name"],
        "sector": b["sector"],
        "region_code": b["region_code"],
        "sub_area": b.get("sub_area"),
        "address": b["address"],
        "registered_at": rec.at,
        "record_id": rec.record_id,
        "leaf_index": rec.leaf_index,
        "rejected_by": None,
        **rows.private_of(rec.record_id),
    }
    rejection = rec.ref(AFTER_REJECTION)
    old = rows.get(MERCHANT, (b["uscc"],)) if rejection is not None else None
    if old is not None and old.get("rejected_by") == rejection:
        # The code's owner registers after a rejection: this registration takes its place.
        rows.update(MERCHANT, (b["uscc"],), {k: v for k, v in row.items() if k != "uscc"})
    else:
        rows.insert(MERCHANT, row)  # (a wrong ref: the key is taken, a conflict)


def _action(rec: Rec, rows: Rows) -> None:
    rows.insert(
        ACTION,
        {
            **rec.provenance(),
            "uscc": rec.subject,
            "action": ACTIONS[rec.type],
            "registration_record_id": rec.ref(REF_OF[rec.type]),
            "reason": rec.body["reason"],
        },
    )


def _search(rec: Rec, rows: Rows) -> None:
    b = rec.body
    row = {"uscc": b["uscc"], "folded": fold(b["name"]),
           "keys": search_keys(uscc=b["uscc"], name=b["name"])}
    if rec.ref(AFTER_REJECTION) is not None and rows.get(SEARCH, (b["uscc"],)) is not None:
        # The owner's registration after a rejection replaces the rejected one's keys.
        rows.update(SEARCH, (b["uscc"],), {k: v for k, v in row.items() if k != "uscc"})
    else:
        rows.insert(SEARCH, row)


def _check_contact(live: Mapping[str, Any], body: Mapping[str, Any]) -> str | None:
    try:
        digest = contact_digest(
            str(live.get("contact_salt") or ""),
            person=str(live.get("contact_person") or ""),
            phone=str(live.get("contact_phone") or ""),
        )
    except ValueError:
        return "contact_salt is not hex"
    if digest != body.get("contact_digest"):
        return "contact_person/contact_phone/contact_salt do not match the record's contact_digest"
    return None


def _verified(rec: Rec, rows: Rows) -> None:
    rows.insert(
        VERIFICATION,
        {
            "uscc": rec.subject,
            "verified_on": day(rec.body["verified_on"]),
            **rec.provenance(),
        },
    )


def _wallet(rec: Rec, rows: Rows) -> None:
    rows.insert(
        WALLET,
        {
            "uscc": rec.subject,
            "address": rec.body["address"],
            "bound_at": rec.at,
            "account_id": rec.account_id,
            "record_id": rec.record_id,
            "leaf_index": rec.leaf_index,
        },
    )


register(
    Projection(
        MERCHANT,
        key=("uscc",),
        types=frozenset({REGISTERED, REJECTED}),
        apply=_merchant_rows,
        private=CONTACT_COLUMNS,
        check_private=_check_contact,
    ),
    Projection(
        SEARCH,
        key=("uscc",),
        types=frozenset({REGISTERED}),
        apply=_search,
        unique=(),
        surrogate=frozenset({"id"}),
    ),
    Projection(VERIFICATION, key=("uscc",), types=frozenset({VERIFIED}), apply=_verified),
    Projection(ACTION, key=("record_id",), types=frozenset(ACTIONS), apply=_action),
    Projection(
        WALLET,
        key=("record_id",),
        types=frozenset({WALLET_BOUND}),
        apply=_wallet,
        unique=(),
        surrogate=frozenset({"id"}),
    ),
)
