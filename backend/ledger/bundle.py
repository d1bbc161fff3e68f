"""The proof bundle format (versions 1 and 2), documented in docs/proof-bundle.md.

Version 2 adds the checkpoint as a C2SP signed note (``signed_checkpoint``: signed by
the log key, with the witnesses' cosignatures), so the tree head can be checked against
a pinned trust root without the chain. Version 1 stays readable.

A bundle is everything needed to check, without the service's database, that a
record is in the log whose tree head was anchored on chain. The service writes
bundles (``backend/ledger/service.py``); the CLI verifier and the browser read
them. This module is the one definition of the format: pure data and parsing,
no database, no network.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

FORMAT = "honest-metering/proof-bundle"
VERSION = 1
VERSIONS = (1, 2)

_HASH_RE = re.compile(r"^0x[0-9a-f]{64}$")
_ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
_RECORD_ID_RE = re.compile(r"^[0-9a-f]{64}$")


def _hash32(value: str) -> str:
    if not _HASH_RE.match(value):
        raise ValueError("must be a 32-byte hash as 0x followed by 64 lower-case hex digits")
    return value


def _address(value: str) -> str:
    if not _ADDRESS_RE.match(value):
        raise ValueError("must be a 20-byte address as 0x followed by 40 hex digits")
    return value


def _record_id(value: str) -> str:
    if not _RECORD_ID_RE.match(value):
        raise ValueError("must be 64 lower-case hex digits (no 0x)")
    return value


Hash32 = Annotated[str, AfterValidator(_hash32)]
Address = Annotated[str, AfterValidator(_address)]
RecordId = Annotated[str, AfterValidator(_record_id)]


class BundleCheckpoint(BaseModel):
    """The anchored tree head the inclusion proof leads to, and where it is on chain."""

    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0, description="position in the contract's checkpoint array")
    tree_size: int = Field(ge=1, description="number of leaves in the anchored tree")
    root: Hash32 = Field(description="RFC 9162 root of the first tree_size leaves")
    chain_id: int = Field(ge=1, description="EIP-155 chain id of the ledger")
    contract_address: Address = Field(description="the MeteringLedger contract")
    transaction_hash: Hash32 = Field(description="the transaction that anchored this checkpoint")
    block_number: int = Field(ge=0, description="the block that includes it")
    anchored_at: str = Field(description="block timestamp, UTC, ISO 8601 with Z")


class ProofBundle(BaseModel):
    """Proof bundle, format version 1 or 2."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["honest-metering/proof-bundle"] = "honest-metering/proof-bundle"
    version: Literal[1, 2] = 1
    record_id: RecordId = Field(description="the record's id: its leaf hash, hex, no 0x")
    record: str = Field(
        description="the record's canonical bytes (RFC 8785 JSON of the NFC-normalised "
        "envelope) as a UTF-8 string; hash exactly these bytes"
    )
    leaf_index: int = Field(ge=0)
    leaf_hash: Hash32 = Field(description="SHA-256(0x00 || record bytes)")
    inclusion_proof: list[Hash32] = Field(
        description="RFC 9162 §2.1.3 inclusion proof of leaf_index in the checkpoint's tree, "
        "leaf-side hash first"
    )
    checkpoint: BundleCheckpoint
    ledger_url: str | None = Field(
        default=None,
        description="a JSON-RPC URL where the chain can be read (a hint: any node of the "
        "same chain will do)",
    )
    signed_checkpoint: str | None = Field(
        default=None,
        description="version 2 only: the checkpoint's tree head as a C2SP signed note "
        "(c2sp.org/tlog-checkpoint), signed by the log key and cosigned by witnesses",
    )

    @model_validator(mode="after")
    def _signed_checkpoint_in_version_2(self) -> ProofBundle:
        if (self.version == 2) != (self.signed_checkpoint is not None):
            raise ValueError(
                "signed_checkpoint is required in version 2 and not allowed in version 1"
            )
        return self


class BundleFormatError(ValueError):
    """The input is not a proof bundle this verifier understands."""


def parse_bundle(data: Any) -> ProofBundle:
    """Validate a decoded JSON bundle; raises :class:`BundleFormatError` saying what is wrong."""
    if not isinstance(data, dict):
        raise BundleFormatError("a proof bundle is a JSON object")
    if data.get("format") != FORMAT:
        raise BundleFormatError(
            f"not a proof bundle: format is {data.get('format')!r}, expected {FORMAT!r}"
        )
    if data.get("version") not in VERSIONS:
        raise BundleFormatError(
            f"unsupported proof bundle version {data.get('version')!r}; this verifier "
            f"understands versions {', '.join(map(str, VERSIONS))}"
        )
    try:
        return ProofBundle.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()))
            problems.append(f"{loc}: {err.get('msg', 'invalid')}")
        raise BundleFormatError("malformed proof bundle: " + "; ".join(problems)) from None


def hex32(value: bytes) -> str:
    return "0x" + value.hex()


def unhex(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))
