"""The trust root: the one document a verifier pins instead of trusting the operator.

It names the log (checkpoint origin and Ed25519 verifier key, C2SP vkey form), the
ledger (chain id, MeteringLedger address, deployment block), the witnesses (name,
cosigner vkey, URL) and the policy (k of the n witnesses must cosign). Each version is
signed by the log key it names; a new version names the one before by fingerprint and
is also signed by the previous version's log key when the key changed (the handover).

The fingerprint is SHA-256 of the document's canonical JSON (RFC 8785) without its
signatures: people compare it with the one printed in the README, on the counter sign
and on /verify. Pure: no I/O, no settings, no database.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any, Literal

import rfc8785
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from backend.ledger import note as notes

FORMAT = "honest-metering/trust-root"
VERSION_FORMAT = 1
SIGNING_CONTEXT = b"honest-metering/trust-root/v1\n"
_ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
_FINGERPRINT_RE = re.compile(r"^[0-9a-f]{64}$")


class TrustRootError(ValueError):
    """Not a trust root, or its signatures or links do not hold."""


def _vkey(value: str, sig_type: int) -> str:
    try:
        v = notes.parse_vkey(value)
    except notes.NoteError as exc:
        raise ValueError(str(exc)) from None
    if v.sig_type != sig_type:
        raise ValueError(f"expected a key of signature type 0x{sig_type:02x}")
    return value


class LogIdentity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    origin: str = Field(min_length=1, description="checkpoint origin line")
    key: str = Field(description="the log's Ed25519 verifier key (C2SP vkey, type 0x01)")

    _check_key = field_validator("key")(lambda v: _vkey(v, notes.SIG_ED25519))


class LedgerIdentity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    chain_id: int = Field(ge=1)
    contract_address: str
    deployment_block: int = Field(ge=0)

    @field_validator("contract_address")
    @classmethod
    def _address(cls, v: str) -> str:
        if not _ADDRESS_RE.match(v):
            raise ValueError("must be 0x followed by 40 hex digits")
        return v


class Witness(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    key: str = Field(description="cosigner verifier key (C2SP vkey, type 0x04)")
    url: str | None = Field(default=None, description="submission prefix (add-checkpoint)")

    _check_key = field_validator("key")(lambda v: _vkey(v, notes.SIG_COSIGNATURE_V1))


class TrustRootBody(BaseModel):
    """Everything but the signatures: what the fingerprint covers."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    format: Literal["honest-metering/trust-root"] = "honest-metering/trust-root"
    version: int = Field(ge=1)
    previous: str | None = Field(
        default=None, description="fingerprint of the version before (null for version 1)"
    )
    issued_at: str
    log: LogIdentity
    ledger: LedgerIdentity
    witnesses: tuple[Witness, ...] = ()
    witness_quorum: int = Field(ge=0, description="k: cosignatures required of the witnesses")

    @field_validator("previous")
    @classmethod
    def _previous(cls, v: str | None) -> str | None:
        if v is not None and not _FINGERPRINT_RE.match(v):
            raise ValueError("must be a SHA-256 fingerprint, 64 lower-case hex digits")
        return v

    def canonical(self) -> bytes:
        return rfc8785.dumps(self.model_dump(mode="json"))

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()

    def log_verifier(self) -> notes.Verifier:
        return notes.parse_vkey(self.log.key)

    def witness_verifiers(self) -> list[notes.Verifier]:
        return [notes.parse_vkey(w.key) for w in self.witnesses]

    def same_facts(self, other: TrustRootBody) -> bool:
        """Whether two versions say the same thing (ignoring version, link and date)."""
        keep = {"log", "ledger", "witnesses", "witness_quorum"}
        return self.model_dump(include=keep) == other.model_dump(include=keep)


class TrustRootSignature(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    key: str = Field(description="verifier key (vkey) of the signing log key")
    signature: str = Field(description="base64 Ed25519 signature")


class TrustRoot(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    body: TrustRootBody
    signatures: tuple[TrustRootSignature, ...]

    @property
    def fingerprint(self) -> str:
        return self.body.fingerprint

    def to_json(self) -> dict[str, Any]:
        return {**self.body.model_dump(mode="json"),
                "signatures": [s.model_dump() for s in self.signatures]}


def short_fingerprint(fingerprint: str) -> str:
    """The first 16 hex digits in groups of four (counter signs, page footers)."""
    return " ".join(fingerprint[i : i + 4] for i in range(0, 16, 4))


def sign(body: TrustRootBody, keys: list[notes.Signer]) -> TrustRoot:
    message = SIGNING_CONTEXT + body.canonical()
    sigs = []
    for k in keys:
        if k.sig_type != notes.SIG_ED25519:
            raise TrustRootError("a trust root is signed by log keys (Ed25519, type 0x01)")
        sigs.append(
            TrustRootSignature(
                key=k.verifier.vkey, signature=base64.b64encode(k.sign_raw(message)).decode()
            )
        )
    return TrustRoot(body=body, signatures=tuple(sigs))


def _signed_by(root: TrustRoot, key: notes.Verifier) -> bool:
    message = SIGNING_CONTEXT + root.body.canonical()
    for s in root.signatures:
        if s.key != key.vkey:
            continue
        try:
            raw = base64.b64decode(s.signature, validate=True)
        except ValueError:
            return False
        return key.verify_raw(message, raw)
    return False


def parse_trust_root(data: Any) -> TrustRoot:
    """Validate a decoded trust root and its self-signature (by the log key it names)."""
    if not isinstance(data, dict):
        raise TrustRootError("a trust root is a JSON object")
    if data.get("format") != FORMAT:
        raise TrustRootError(f"not a trust root: format is {data.get('format')!r}")
    fields = dict(data)
    raw_sigs = fields.pop("signatures", None)
    try:
        body = TrustRootBody.model_validate(fields)
        sigs = tuple(TrustRootSignature.model_validate(s) for s in (raw_sigs or []))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise TrustRootError(f"malformed trust root: {problems}") from None
    if body.witness_quorum > len(body.witnesses):
        raise TrustRootError(
            f"the witness quorum {body.witness_quorum} exceeds the {len(body.witnesses)} "
            "witnesses named"
        )
    root = TrustRoot(body=body, signatures=sigs)
    if not _signed_by(root, body.log_verifier()):
        raise TrustRootError(
            f"trust root version {body.version} is not signed by the log key it names "
            f"({body.log.key})"
        )
    return root


def check_successor(old: TrustRoot, new: TrustRoot) -> None:
    """Raise unless ``new`` is the version right after ``old``: it names ``old``'s
    fingerprint, and if the log key changed, ``old``'s key signed the handover."""
    if new.body.version != old.body.version + 1 or new.body.previous != old.fingerprint:
        raise TrustRootError(
            f"version {new.body.version} (previous {new.body.previous}) does not follow "
            f"version {old.body.version} ({old.fingerprint})"
        )
    if new.body.log.key != old.body.log.key and not _signed_by(new, old.body.log_verifier()):
        raise TrustRootError(
            f"version {new.body.version} changes the log key but is not signed by the "
            f"previous key {old.body.log.key}"
        )
