"""Reading the log and its checkpoints: records, proof bundles, consistency proofs.

The rules behind ``backend/ledger/router.py``. Read-only: the log is written
by ``log.append`` inside domain services and checkpoints by the anchoring
worker; nothing here writes either.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlmodel import Session

from backend.config import Settings
from backend.errors import NotFound, RecordNotAnchored, ValidationFailed
from backend.ledger import bundle as bundle_format
from backend.ledger import log as ledger_log
from backend.ledger import merkle, published
from backend.ledger.anchoring import last_checkpoint, pending_summary
from backend.ledger.checkpoint import TreeHead
from backend.ledger.models import Checkpoint
from backend.ledger.note import Signer
from backend.ledger.records import parse_canonical
from backend.ledger.status import AnchorStatus, anchor_status

MAX_PAGE = 1000
INCLUSION_CACHE_SIZE = 16_384


class InclusionPaths:
    """Inclusion proofs by (leaf index, tree size, root), per process: a checkpoint's
    tree never changes, so neither does a leaf's path to its root, and a proof bundle
    asked for again (a popular record, a shop page's 验证) costs no tree reads. The root
    in the key keeps apart trees of equal size in different databases. A small LRU."""

    def __init__(self, size: int = INCLUSION_CACHE_SIZE) -> None:
        self.size = size
        self._paths: OrderedDict[tuple[int, int, bytes], tuple[bytes, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session: Session, index: int, size: int, root: bytes) -> list[bytes]:
        key = (index, size, bytes(root))
        with self._lock:
            path = self._paths.get(key)
            if path is not None:
                self._paths.move_to_end(key)
                return list(path)
        found = ledger_log.inclusion_proof(session, index, size)
        with self._lock:
            self._paths[key] = tuple(found)
            while len(self._paths) > self.size:
                self._paths.popitem(last=False)
        return found


inclusion_paths = InclusionPaths()
_RECORD_ID_RE = re.compile(r"^[0-9a-f]{64}$")


class CheckpointNotFound(NotFound):
    pass


# --- response models -------------------------------------------------------------


class CheckpointPublic(BaseModel):
    index: int = Field(description="position in the contract's checkpoint array")
    tree_size: int
    root: str = Field(description="RFC 9162 root, 0x-hex")
    transaction_hash: str
    block_number: int
    anchored_at: datetime = Field(description="timestamp of the anchoring block (UTC)")
    chain_id: int
    contract_address: str


class CheckpointPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[CheckpointPublic]


class RecordPublic(BaseModel):
    record_id: str
    leaf_index: int
    leaf_hash: str = Field(description="SHA-256(0x00 || canonical bytes), 0x-hex")
    record: dict[str, Any] = Field(description="the record envelope (see docs/records.md)")
    canonical: str = Field(description="the canonical bytes as a UTF-8 string")
    anchor_status: AnchorStatus


class ConsistencyProofPublic(BaseModel):
    first: int
    second: int
    first_root: str
    second_root: str
    proof: list[str] = Field(description="RFC 9162 §2.1.4 consistency proof, 0x-hex")


class AnchoringInfo(BaseModel):
    tree_size: int
    pending_leaves: int
    oldest_pending_age_s: float | None
    last_checkpoint: int | None
    last_checkpoint_tree_size: int | None
    last_checkpoint_age_s: float | None


# --- helpers ---------------------------------------------------------------------


def _hex(b: bytes) -> str:
    return "0x" + bytes(b).hex()


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def validate_record_id(record_id: str) -> str:
    rid = record_id.strip().lower().removeprefix("0x")
    if not _RECORD_ID_RE.match(rid):
        raise ValidationFailed(
            f"record id must be 64 hex digits (the record's leaf hash), got {record_id!r}"
        )
    return rid


def checkpoint_public(cp: Checkpoint) -> CheckpointPublic:
    return CheckpointPublic(
        index=cp.seq,
        tree_size=cp.tree_size,
        root=_hex(cp.root),
        transaction_hash=cp.tx_hash,
        block_number=cp.block_number,
        anchored_at=_aware(cp.anchored_at),
        chain_id=cp.chain_id,
        contract_address=cp.contract_address,
    )


def ledger_url_for(settings: Settings) -> str | None:
    """The JSON-RPC URL bundles name for verifiers."""
    if settings.ledger_public_url:
        return settings.ledger_public_url
    if settings.embedded_chain:
        return settings.base_url + "/rpc"
    return None


# --- checkpoints -----------------------------------------------------------------


def latest_checkpoint(session: Session) -> CheckpointPublic:
    cp = last_checkpoint(session)
    if cp is None:
        raise CheckpointNotFound("no checkpoint has been anchored yet")
    return checkpoint_public(cp)


def list_checkpoints(session: Session, *, offset: int = 0, limit: int = 100) -> CheckpointPage:
    if offset < 0 or not 1 <= limit <= MAX_PAGE:
        raise ValidationFailed(
            f"need offset >= 0 and 1 <= limit <= {MAX_PAGE}, got offset={offset}, limit={limit}"
        )
    total = int(session.execute(select(func.count()).select_from(Checkpoint)).scalar_one())
    rows = session.execute(
        select(Checkpoint).order_by(Checkpoint.seq).offset(offset).limit(limit)  # type: ignore[arg-type]
    ).scalars()
    return CheckpointPage(
        total=total, offset=offset, limit=limit, items=[checkpoint_public(r) for r in rows]
    )


# --- records and proofs ------------------------------------------------------------


def get_record(session: Session, *, record_id: str) -> RecordPublic:
    leaf = ledger_log.get_leaf(session, validate_record_id(record_id))
    canonical = bytes(leaf.canonical)
    return RecordPublic(
        record_id=leaf.record_id,
        leaf_index=leaf.leaf_index,
        leaf_hash=_hex(merkle.leaf_hash(canonical)),
        record=parse_canonical(canonical),
        canonical=canonical.decode("utf-8"),
        anchor_status=anchor_status(session, leaf.leaf_index),
    )


def proof_bundle(
    session: Session,
    *,
    record_id: str,
    ledger_url: str | None,
    checkpoint: int | None = None,
    version: int = 1,
    log_key: Signer | None = None,
) -> bundle_format.ProofBundle:
    """A bundle proving the record against the latest checkpoint (or the one asked for);
    version 2 carries the checkpoint as a signed note (needs ``log_key``)."""
    leaf = ledger_log.get_leaf(session, validate_record_id(record_id))
    if checkpoint is None:
        cp = last_checkpoint(session)
    else:
        cp = session.get(Checkpoint, checkpoint)
        if cp is None:
            raise CheckpointNotFound(f"no checkpoint {checkpoint}")
    if cp is None or cp.tree_size <= leaf.leaf_index:
        where = "any checkpoint yet" if checkpoint is None else f"checkpoint {checkpoint}"
        raise RecordNotAnchored(
            f"record {leaf.record_id} (leaf {leaf.leaf_index}) is not covered by {where}: "
            "it is pending anchor; try again after the next checkpoint",
            anchor_status=anchor_status(session, leaf.leaf_index).model_dump(),
        )
    canonical = bytes(leaf.canonical)
    proof = inclusion_paths.get(session, leaf.leaf_index, cp.tree_size, cp.root)
    signed = None
    if version == 2:
        if log_key is None:
            raise ValueError("a version 2 bundle needs the log key")
        head = TreeHead(log_key.name, cp.tree_size, bytes(cp.root))
        signed = published.checkpoint_note(session, head, log_key).format()
    return bundle_format.ProofBundle(
        version=version,  # type: ignore[arg-type]
        signed_checkpoint=signed,
        record_id=leaf.record_id,
        record=canonical.decode("utf-8"),
        leaf_index=leaf.leaf_index,
        leaf_hash=_hex(merkle.leaf_hash(canonical)),
        inclusion_proof=[_hex(p) for p in proof],
        checkpoint=bundle_format.BundleCheckpoint(
            index=cp.seq,
            tree_size=cp.tree_size,
            root=_hex(cp.root),
            chain_id=cp.chain_id,
            contract_address=cp.contract_address,
            transaction_hash=cp.tx_hash,
            block_number=cp.block_number,
            anchored_at=_aware(cp.anchored_at).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        ),
        ledger_url=ledger_url,
    )


def consistency(session: Session, *, first: int, second: int) -> ConsistencyProofPublic:
    proof = ledger_log.consistency_proof(session, first, second)
    return ConsistencyProofPublic(
        first=first,
        second=second,
        first_root=_hex(ledger_log.root_at(session, first)),
        second_root=_hex(ledger_log.root_at(session, second)),
        proof=[_hex(p) for p in proof],
    )


# --- readiness ---------------------------------------------------------------------


def anchoring_info(session: Session, *, now: datetime | None = None) -> AnchoringInfo:
    now = now or datetime.now(UTC)
    size, pending, oldest = pending_summary(session)
    last = last_checkpoint(session)
    return AnchoringInfo(
        tree_size=size,
        pending_leaves=pending,
        oldest_pending_age_s=None if oldest is None else round((now - oldest).total_seconds(), 3),
        last_checkpoint=None if last is None else last.seq,
        last_checkpoint_tree_size=None if last is None else last.tree_size,
        last_checkpoint_age_s=None
        if last is None
        # Block timestamps are whole seconds and may run a little ahead of this clock.
        else round(max(0.0, (now - _aware(last.anchored_at)).total_seconds()), 3),
    )
