"""EIP-712 typed data for a merchant's signature on its pledge (docs/eip712-pledge.md).

The domain is ``{name: "HonestMetering", version: "1"}`` with no chainId and
no verifyingContract: a pledge is a merchant's statement, not a ledger
transaction, so its signature stays valid whichever chain the log is anchored
on and whether or not the contract is ever redeployed.

Everything signed is in the ``pledge.made`` record (subject and body), so a
verifier rebuilds the typed data from the record alone
(:func:`typed_data_from_record`) and checks that it recovers to the record's
``signature.signer``. This module is pure: no database, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import to_checksum_address

DOMAIN: dict[str, Any] = {"name": "HonestMetering", "version": "1"}
PRIMARY_TYPE = "Pledge"
TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
    ],
    "Pledge": [
        {"name": "uscc", "type": "string"},
        {"name": "templateSector", "type": "string"},
        {"name": "templateVersion", "type": "uint32"},
        {"name": "templateDigest", "type": "bytes32"},
        {"name": "items", "type": "string[]"},
        {"name": "extraCommitments", "type": "string"},
        {"name": "validFrom", "type": "string"},
        {"name": "validUntil", "type": "string"},
    ],
}


class InvalidSignature(ValueError):
    """A signature that is malformed or does not recover to an address."""


def pledge_typed_data(
    *,
    uscc: str,
    template_sector: str,
    template_version: int,
    template_digest: str,
    items: Sequence[str],
    extra_commitments: str | None,
    valid_from: str,
    valid_until: str,
) -> dict[str, Any]:
    """The full EIP-712 message (``eth_signTypedData_v4`` input).

    Dates are ISO ``YYYY-MM-DD`` (``validUntil`` exclusive); strings must be in
    Unicode NFC, as they are in the record; no extra commitments is ``""``.
    """
    return {
        "types": TYPES,
        "primaryType": PRIMARY_TYPE,
        "domain": dict(DOMAIN),
        "message": {
            "uscc": uscc,
            "templateSector": template_sector,
            "templateVersion": template_version,
            "templateDigest": "0x" + template_digest.removeprefix("0x"),
            "items": list(items),
            "extraCommitments": extra_commitments or "",
            "validFrom": valid_from,
            "validUntil": valid_until,
        },
    }


def typed_data_from_record(envelope: Mapping[str, Any]) -> dict[str, Any]:
    """Rebuild the signed message from a ``pledge.made`` record envelope."""
    body = envelope["body"]
    template = body["template"]
    return pledge_typed_data(
        uscc=envelope["subject"],
        template_sector=template["sector"],
        template_version=template["version"],
        template_digest=template["digest"],
        items=body["items"],
        extra_commitments=body["extra_commitments"],
        valid_from=body["valid_from"],
        valid_until=body["valid_until"],
    )


def recover_signer(typed_data: Mapping[str, Any], signature: str) -> str:
    """The checksummed address that made ``signature`` over ``typed_data``."""
    text = signature.strip()
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise InvalidSignature("signature must be 0x followed by 130 hex digits") from None
    if len(raw) != 65:
        raise InvalidSignature(f"signature must be 65 bytes, got {len(raw)}")
    try:
        address = Account.recover_message(
            encode_typed_data(full_message=dict(typed_data)), signature=raw
        )
    except Exception as exc:  # eth-keys raises several types for bad r/s/v
        raise InvalidSignature(f"signature does not recover to an address: {exc}") from None
    return str(to_checksum_address(address))


def verify_record_signature(envelope: Mapping[str, Any]) -> str | None:
    """For a ``pledge.made`` record: ``None`` if unsigned, else the signer after
    checking that the signature recovers to the ``signer`` it names; raises
    :class:`InvalidSignature` otherwise."""
    sig = envelope["body"].get("signature")
    if sig is None:
        return None
    recovered = recover_signer(typed_data_from_record(envelope), sig["signature"])
    if recovered != to_checksum_address(sig["signer"]):
        raise InvalidSignature(
            f"signature recovers to {recovered}, but the record names {sig['signer']}"
        )
    return recovered
