"""Anchor status of a record: pending, or anchored at checkpoint N.

Derived, never stored: a leaf is anchored once a checkpoint's tree size is
greater than its index.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlmodel import Session, col

from backend.ledger.log import AppendedRecord
from backend.ledger.models import Checkpoint


class AnchorStatus(BaseModel):
    status: Literal["pending", "anchored"]
    checkpoint: int | None = Field(
        default=None, description="index of the first checkpoint that covers the record"
    )
    tree_size: int | None = None
    tx_hash: str | None = None
    block_number: int | None = None


class WrittenRecord(BaseModel):
    """What every write response carries about the record it appended."""

    record_id: str
    leaf_index: int
    anchor_status: AnchorStatus


def anchor_status(session: Session, leaf_index: int) -> AnchorStatus:
    cp = (
        session.execute(
            select(Checkpoint)
            .where(col(Checkpoint.tree_size) > leaf_index)
            .order_by(col(Checkpoint.tree_size))  # type: ignore[arg-type]
            .limit(1)
        )
        .scalars()
        .first()
    )
    if cp is None:
        return AnchorStatus(status="pending")
    return AnchorStatus(
        status="anchored",
        checkpoint=cp.seq,
        tree_size=cp.tree_size,
        tx_hash=cp.tx_hash,
        block_number=cp.block_number,
    )


def written(session: Session, record: AppendedRecord) -> WrittenRecord:
    return WrittenRecord(
        record_id=record.record_id,
        leaf_index=record.leaf_index,
        anchor_status=anchor_status(session, record.leaf_index),
    )
