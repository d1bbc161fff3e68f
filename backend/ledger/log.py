"""The append-only record log: append records, read them, prove them.

Appending runs inside the caller's transaction, so a record and the domain row
that caused it commit together or not at all. The tree is never rebuilt:
every complete (perfect) subtree hash is stored once when its last leaf
arrives, so an append writes O(1) nodes amortised and reads at most the
O(log n) right-edge nodes; a proof reads O(log n) nodes in one query.

This module must never update or delete a leaf or a node.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, bindparam, func, insert, or_, select, text
from sqlmodel import Session, col

from backend.db import in_chunks
from backend.errors import InvalidTreeSize, RecordNotFound
from backend.ledger import merkle
from backend.ledger.models import LogHead, LogLeaf, MerkleNode
from backend.ledger.records import (
    RecordDraft,
    build_envelope,
    canonical_bytes,
    parse_canonical,
    record_id_of,
)

NodeKey = tuple[int, int]


class LogCorrupted(RuntimeError):
    """A stored subtree hash that must exist is missing (the database was tampered with)."""


@dataclass(frozen=True)
class AppendedRecord:
    record_id: str
    leaf_index: int
    envelope: dict[str, Any]
    canonical: bytes


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SealedRecord:
    """A record ready to append: envelope, canonical bytes and id. The id does not
    depend on where the record lands, so it is known before the log is locked."""

    record_id: str
    envelope: dict[str, Any]
    canonical: bytes
    at: datetime


def seal(draft: RecordDraft, *, at: datetime) -> SealedRecord:
    """Build a draft's envelope (with a fresh salt), canonical form and id."""
    envelope = build_envelope(draft, at=at)
    canonical = canonical_bytes(envelope)
    return SealedRecord(record_id_of(canonical), envelope, canonical, at)


def append(
    session: Session, drafts: RecordDraft | Sequence[RecordDraft], *, now: datetime | None = None
) -> list[AppendedRecord]:
    """Append records in the caller's transaction; returns them with their leaf indexes."""
    batch = [drafts] if isinstance(drafts, RecordDraft) else list(drafts)
    at = now or utcnow()
    return append_sealed(session, [seal(d, at=at) for d in batch])


def append_sealed(session: Session, sealed: Sequence[SealedRecord]) -> list[AppendedRecord]:
    """Append sealed records in the caller's transaction, in order.

    This takes the log lock, held until the transaction ends: do every read and
    computation that can be done before this call before it.
    """
    if not sealed:
        return []
    # The row lock on log_head serialises appenders until commit; a rolled-back
    # transaction gives its indexes back, so they stay dense.
    new_size = session.execute(
        text("UPDATE log_head SET size = size + :k WHERE id = 1 RETURNING size"),
        {"k": len(sealed)},
    ).scalar_one()
    start = new_size - len(sealed)

    session.execute(
        insert(LogLeaf),
        [
            {
                "leaf_index": start + i,
                "record_id": rec.record_id,
                "record_type": rec.envelope["type"],
                "subject": rec.envelope["subject"],
                "canonical": rec.canonical,
                "appended_at": rec.at,
            }
            for i, rec in enumerate(sealed)
        ],
    )
    new_nodes = _grow(session, start, [bytes.fromhex(rec.record_id) for rec in sealed])
    session.execute(
        insert(MerkleNode),
        [{"level": lv, "idx": ix, "hash": h} for (lv, ix), h in new_nodes.items()],
    )
    return [
        AppendedRecord(
            record_id=rec.record_id, leaf_index=start + i, envelope=rec.envelope,
            canonical=rec.canonical,
        )
        for i, rec in enumerate(sealed)
    ]


def _grow(session: Session, start: int, leaves: Sequence[bytes]) -> dict[NodeKey, bytes]:
    """The perfect-subtree nodes completed by appending ``leaves`` at ``start``."""
    # Any left sibling outside the batch is on the frontier of the old tree.
    known = _fetch_nodes(session, merkle.perfect_subtrees(0, start) if start else [])
    new: dict[NodeKey, bytes] = {}
    for offset, leaf in enumerate(leaves):
        level, idx, h = 0, start + offset, leaf
        new[(level, idx)] = h
        while idx & 1:
            sibling = new.get((level, idx - 1)) or known.get((level, idx - 1))
            if sibling is None:
                raise LogCorrupted(f"missing subtree hash at level {level}, index {idx - 1}")
            h = merkle.node_hash(sibling, h)
            level, idx = level + 1, idx >> 1
            new[(level, idx)] = h
    return new


_NODE_TERMS_PER_QUERY = 64


@functools.cache
def _nodes_query(levels: int) -> Select[int, int, bytes]:
    """``(level = :l0 AND idx IN :x0) OR ...`` for ``levels`` levels: SQLite and
    PostgreSQL both answer each term from the primary key (SQLite would scan the table
    for a row-value IN). Built once per number of levels, so a proof or an append
    only binds values instead of building and compiling a new expression."""
    level, idx = col(MerkleNode.level), col(MerkleNode.idx)
    return select(level, idx, col(MerkleNode.hash)).where(
        or_(
            *(
                and_(level == bindparam(f"l{i}"), idx.in_(bindparam(f"x{i}", expanding=True)))
                for i in range(levels)
            )
        )
    )


def _fetch_nodes(session: Session, keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
    by_level: dict[int, list[int]] = {}
    for level, idx in set(keys):
        by_level.setdefault(level, []).append(idx)
    found: dict[NodeKey, bytes] = {}
    levels = sorted(by_level.items())
    for i in range(0, len(levels), _NODE_TERMS_PER_QUERY):
        part = levels[i : i + _NODE_TERMS_PER_QUERY]
        params: dict[str, Any] = {}
        for n, (level, idxs) in enumerate(part):
            params[f"l{n}"] = level
            params[f"x{n}"] = sorted(idxs)
        for level, idx, h in session.execute(_nodes_query(len(part)), params):
            found[(int(level), int(idx))] = bytes(h)
    return found


def tree_size(session: Session) -> int:
    return int(session.execute(select(col(LogHead.size)).where(col(LogHead.id) == 1)).scalar_one())


def _check_size(session: Session, size: int) -> None:
    current = tree_size(session)
    if not 0 <= size <= current:
        raise InvalidTreeSize(
            f"tree size {size} is outside 0..{current} (the log's current size)",
        )


def _prefetched(session: Session, run: Callable[[merkle.SubtreeHash], Any]) -> Any:
    """Run a proof algorithm twice: once to learn which nodes it needs, once for real."""
    wanted: set[NodeKey] = set()
    zero = bytes(32)

    def record(start: int, end: int) -> bytes:
        wanted.update(merkle.perfect_subtrees(start, end))
        return zero

    run(record)
    nodes = _fetch_nodes(session, wanted)
    missing = wanted - nodes.keys()
    if missing:
        raise LogCorrupted(f"missing subtree hashes {sorted(missing)[:5]}")

    def subtree(start: int, end: int) -> bytes:
        return merkle.fold_right([nodes[k] for k in merkle.perfect_subtrees(start, end)])

    return run(subtree)


def root_at(session: Session, size: int) -> bytes:
    """The tree head root at ``size`` (≤ current size)."""
    _check_size(session, size)
    if size == 0:
        return merkle.EMPTY_ROOT
    return _prefetched(session, lambda sub: sub(0, size))


def inclusion_proof(session: Session, index: int, size: int) -> list[bytes]:
    _check_size(session, size)
    if not 0 <= index < size:
        raise InvalidTreeSize(f"leaf index {index} is outside a tree of size {size}")
    return _prefetched(session, lambda sub: merkle.inclusion_proof(index, size, sub))


def consistency_proof(session: Session, old_size: int, new_size: int) -> list[bytes]:
    _check_size(session, new_size)
    if not 0 < old_size <= new_size:
        raise InvalidTreeSize(
            f"consistency proof needs 0 < first <= second, got first={old_size}, second={new_size}"
        )
    return _prefetched(session, lambda sub: merkle.consistency_proof(old_size, new_size, sub))


def get_leaf(session: Session, record_id: str) -> LogLeaf:
    leaf = (
        session.execute(select(LogLeaf).where(col(LogLeaf.record_id) == record_id))
        .scalars()
        .first()
    )
    if leaf is None:
        raise RecordNotFound(f"no record with id {record_id}")
    return leaf


def get_leaves(session: Session, record_ids: Iterable[str]) -> dict[str, LogLeaf]:
    """The leaves of these records that exist, by record id (one query per 500)."""
    out: dict[str, LogLeaf] = {}
    for ids in in_chunks(record_ids):
        rows = session.execute(select(LogLeaf).where(col(LogLeaf.record_id).in_(ids))).scalars()
        out.update((r.record_id, r) for r in rows)
    return out


def newest_record_by_subject(session: Session) -> dict[str, str]:
    """Each subject's newest record id."""
    leaf = LogLeaf.__table__.c  # type: ignore[attr-defined]
    newest = select(func.max(leaf.leaf_index)).where(leaf.subject.is_not(None))
    query = select(leaf.subject, leaf.record_id).where(
        leaf.leaf_index.in_(newest.group_by(leaf.subject))
    )
    return {str(subject): str(rid) for subject, rid in session.execute(query)}


def bodies_of_type(session: Session, record_type: str) -> dict[str, dict[str, Any]]:
    """The body of every record of one type, by record id (for types with few records)."""
    return {
        rid: parse_canonical(bytes(canonical))["body"]
        for rid, canonical in session.execute(
            select(col(LogLeaf.record_id), col(LogLeaf.canonical)).where(
                col(LogLeaf.record_type) == record_type
            )
        )
    }


def get_envelope(session: Session, record_id: str) -> dict[str, Any]:
    return parse_canonical(bytes(get_leaf(session, record_id).canonical))


def iter_leaves(
    session: Session, start: int = 0, end: int | None = None, batch: int = 5000
) -> Iterator[tuple[int, str, bytes]]:
    """(leaf_index, record_id, canonical) in index order, streamed in batches.

    Keyset pagination, so a gap (a deleted row) does not end the stream early.
    """
    pos = start
    while end is None or pos < end:
        query = select(
            col(LogLeaf.leaf_index), col(LogLeaf.record_id), col(LogLeaf.canonical)
        ).where(col(LogLeaf.leaf_index) >= pos)
        if end is not None:
            query = query.where(col(LogLeaf.leaf_index) < end)
        rows = session.execute(query.order_by(col(LogLeaf.leaf_index)).limit(batch)).all()
        for idx, rid, canonical in rows:
            yield int(idx), rid, bytes(canonical)
        if len(rows) < batch:
            return
        pos = int(rows[-1][0]) + 1


def records_for_subject(session: Session, subject: str) -> list[dict[str, Any]]:
    """Every record about one merchant, oldest first, with its id and index."""
    rows = session.execute(
        select(col(LogLeaf.leaf_index), col(LogLeaf.record_id), col(LogLeaf.canonical))
        .where(col(LogLeaf.subject) == subject)
        .order_by(col(LogLeaf.leaf_index))
    ).all()
    out = []
    for idx, rid, canonical in rows:
        env = parse_canonical(bytes(canonical))
        env["record_id"] = rid
        env["leaf_index"] = int(idx)
        out.append(env)
    return out


# --- by subject, for the packages above (they call these instead of querying log_leaf) --
# Statements rather than results where a caller streams or batches them its own way
# (the credit sweep reads 10^6 records as DBAPI rows).

_LEAF_C = LogLeaf.__table__.c  # type: ignore[attr-defined]


def leaves_of_subjects(subjects: Sequence[str]) -> Select[Any]:
    """(subject, record_id, canonical, leaf_index, record_type) of every record about
    these subjects, in no order. Give at most one ``IN`` chunk of subjects."""
    c = _LEAF_C
    return select(c.subject, c.record_id, c.canonical, c.leaf_index, c.record_type).where(
        c.subject.in_(subjects)
    )


def leaves_by_subject(size: int) -> Select[Any]:
    """(subject, record_id, canonical, leaf_index, record_type) of every record that
    has a subject, below leaf ``size``, in subject order (one pass over the subject
    index)."""
    c = _LEAF_C
    return (
        select(c.subject, c.record_id, c.canonical, c.leaf_index, c.record_type)
        .where(c.subject > "", c.leaf_index < size)
        .order_by(c.subject)
    )


def subjects_and_types_between(
    start: int, end: int, subjects: Sequence[str], record_type: str
) -> Select[Any]:
    """Distinct (subject, record_type) of the records in ``[start, end)`` that are about
    one of ``subjects`` or are of ``record_type``."""
    c = _LEAF_C
    return select(c.subject, c.record_type).distinct().where(
        c.leaf_index >= start,
        c.leaf_index < end,
        c.subject.in_(subjects) | (c.record_type == record_type),
    )


def subjects_since(session: Session, size: int) -> set[str]:
    """The subjects of the records at leaf ``size`` and after."""
    c = _LEAF_C
    return {
        str(u)
        for (u,) in session.execute(
            select(c.subject).where(c.leaf_index >= size, c.subject.is_not(None)).distinct()
        )
    }


def last_leaf_of(subject: Any) -> Any:
    """A scalar subquery: the newest leaf index about ``subject`` (a column or a
    parameter), NULL if none."""
    c = _LEAF_C
    return select(func.max(c.leaf_index)).where(c.subject == subject).scalar_subquery()
