"""``GET /api/merchants/{uscc}/completeness``: a subject's records are all there, or none are.

The answer proves, against an anchored checkpoint whose last leaf is a
``ledger.subject_index`` record (``backend/ledger/index_store.py``), either

- **membership**: the code has exactly ``count`` records among the checkpoint's
  leaves, with these ids in log order (their ids digest is the index leaf's), or
- **absence**: no record among them names the code.

The index record comes with its proof bundle (docs/proof-bundle.md), so a verifier
checks it like any record: in the log, under the anchored (and cosigned) root. The
format is in docs/proof-bundle.md, "Completeness proofs".
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlmodel import Session

from backend.errors import Conflict, ValidationFailed
from backend.ledger import index_store, service
from backend.ledger import subject_index as si
from backend.ledger.anchoring import last_checkpoint
from backend.ledger.bundle import ProofBundle
from backend.ledger.models import Checkpoint
from backend.uscc import InvalidUSCC, validate_uscc

FORMAT = "honest-metering/completeness"


class InvalidSubjectCode(ValidationFailed):
    """The path's code is not a unified social credit code."""


class NoSubjectIndex(Conflict):
    """The checkpoint does not end with a subject index record (anchored before it existed)."""


class CompletenessProof(BaseModel):
    format: Literal["honest-metering/completeness"] = "honest-metering/completeness"
    version: Literal[1] = 1
    subject: str = Field(description="the unified social credit code")
    key: str = Field(description="SHA-256 of the code's UTF-8 bytes, 64 hex digits")
    checkpoint: int = Field(description="the checkpoint's index in the contract")
    tree_size: int = Field(description="the checkpoint's tree size; its last leaf is the index")
    covers: int = Field(description="leaves 0 … covers-1 are indexed (covers = tree_size - 1)")
    proves: Literal["membership", "absence"]
    count: int = Field(description="how many records name the code (0 for absence)")
    ids_digest: str | None = Field(description="the ids digest of those records (membership)")
    record_ids: list[str] = Field(description="the records' ids, in log order")
    leaf_indexes: list[int] = Field(description="their leaf indexes, in the same order")
    proof: dict[str, Any] = Field(description="the sparse Merkle proof (siblings, leaf)")
    index_record: ProofBundle = Field(description="the index record's proof bundle")


def completeness(
    session: Session, *, uscc: str, checkpoint: int | None, ledger_url: str | None
) -> CompletenessProof:
    try:
        code = validate_uscc(uscc)
    except InvalidUSCC as exc:
        raise InvalidSubjectCode(
            f"{uscc!r} is not a unified social credit code: {exc}", field="uscc"
        ) from None
    if checkpoint is None:
        cp = last_checkpoint(session)
        if cp is None:
            raise service.CheckpointNotFound("no checkpoint has been anchored yet")
    else:
        cp = session.get(Checkpoint, checkpoint)
        if cp is None:
            raise service.CheckpointNotFound(f"no checkpoint {checkpoint}")
    rec = index_store.index_record_at(session, cp.tree_size - 1) if cp.tree_size else None
    if rec is None:
        raise NoSubjectIndex(
            f"checkpoint {cp.seq} (tree size {cp.tree_size}) does not end with a subject "
            "index record: it was anchored before the index existed; ask for a later one",
            checkpoint=cp.seq,
        )
    key = si.subject_key(code)
    proof = index_store.trees.prove(session, rec, key)
    entries = index_store.entries_of(session, code, rec.covers)
    leaf = proof.leaf
    member = leaf is not None and leaf.key == key
    bundle = service.proof_bundle(
        session, record_id=rec.record_id, ledger_url=ledger_url, checkpoint=cp.seq
    )
    return CompletenessProof(
        subject=code,
        key=key.hex(),
        checkpoint=cp.seq,
        tree_size=cp.tree_size,
        covers=rec.covers,
        proves="membership" if member else "absence",
        count=leaf.count if member and leaf is not None else 0,
        ids_digest=leaf.digest.hex() if member and leaf is not None else None,
        record_ids=[rid for _, rid, _ in entries],
        leaf_indexes=[idx for idx, _, _ in entries],
        proof=proof.to_json(),
        index_record=bundle,
    )
