"""Anchor status of a record: pending, or anchored at checkpoint N.

Derived, never stored: a leaf is anchored once a checkpoint's tree size is
greater than its index.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import func, select
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
    return anchor_statuses(session, [leaf_index])[leaf_index]


def anchor_statuses(session: Session, leaf_indexes: Iterable[int]) -> dict[int, AnchorStatus]:
    """The anchor status of each leaf: one query per checkpoint that covers some of
    them (the first checkpoint past a leaf covers every leaf below its tree size)."""
    statuses: dict[int, AnchorStatus] = {}
    todo = sorted(set(leaf_indexes))
    i = 0
    while i < len(todo):
        cp = (
            session.execute(
                select(Checkpoint)
                .where(col(Checkpoint.tree_size) > todo[i])
                .order_by(col(Checkpoint.tree_size))  # type: ignore[arg-type]
                .limit(1)
            )
            .scalars()
            .first()
        )
        if cp is None:  # nothing anchored past this leaf, nor past any later one
            statuses.update((leaf, AnchorStatus(status="pending")) for leaf in todo[i:])
            break
        status = AnchorStatus(
            status="anchored",
            checkpoint=cp.seq,
            tree_size=cp.tree_size,
            tx_hash=cp.tx_hash,
            block_number=cp.block_number,
        )
        while i < len(todo) and todo[i] < cp.tree_size:
            statuses[todo[i]] = status
            i += 1
    return statuses


def written(session: Session, record: AppendedRecord) -> WrittenRecord:
    return WrittenRecord(
        record_id=record.record_id,
        leaf_index=record.leaf_index,
        anchor_status=anchor_status(session, record.leaf_index),
    )


def anchored_size(session: Session) -> int:
    """How many records (the first ones) the newest checkpoint covers; 0 before any."""
    return int(
        session.execute(select(func.max(col(Checkpoint.tree_size)))).scalar_one_or_none() or 0
    )


def anchored_size_subquery() -> Any:
    """:func:`anchored_size` as a scalar subquery, for a caller's one query."""
    return select(func.coalesce(func.max(col(Checkpoint.tree_size)), 0)).scalar_subquery()
