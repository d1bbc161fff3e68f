"""Tamper audit: recompute the log from the database's records and check it against the chain.

Every record's canonical bytes are hashed again and folded into the tree,
whose root at every on-chain checkpoint size must be the anchored root. To
*name* the records behind a mismatch, each record is also compared with the
leaf hash the log stored when it was appended (``merkle_node`` level 0); those
stored hashes are themselves folded into a second tree and checked against the
chain, so a finding is only called authenticated when the chain vouches for
the stored hashes it relies on.

Streaming, O(log n) memory besides the findings; it reads, never writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import func, select
from sqlmodel import Session, col

from backend.ledger import log as ledger_log
from backend.ledger import merkle
from backend.ledger.models import Checkpoint, LogLeaf, MerkleNode
from backend.ledger.onchain import OnChainCheckpoint

BATCH = 5000
PLACEHOLDER = bytes(32)  # stands in for a missing record, so later roots still compute

Kind = Literal[
    "altered",
    "missing",
    "inserted",
    "reordered",
    "root_mismatch",
    "truncated",
    "missing_hash",
    "checkpoint_table",
]


@dataclass(frozen=True)
class Finding:
    kind: Kind
    detail: str
    leaf_index: int | None = None
    record_id: str | None = None

    def line(self) -> str:
        where = f"leaf {self.leaf_index}" if self.leaf_index is not None else ""
        rid = f"record {self.record_id}" if self.record_id else ""
        head = " ".join(p for p in (where, rid) if p)
        return f"{self.kind:<16} {head + ': ' if head else ''}{self.detail}"


@dataclass
class AuditReport:
    tree_size: int = 0
    records_checked: int = 0
    checkpoints_checked: int = 0
    unanchored: int = 0
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


class _Accumulator:
    """RFC 9162 root of a growing leaf list in O(log n) memory (a compact range from 0)."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []  # (height, hash), heights strictly decreasing
        self.size = 0

    def push(self, leaf: bytes) -> None:
        h, height = leaf, 0
        while self._stack and self._stack[-1][0] == height:
            _, left = self._stack.pop()
            h = merkle.node_hash(left, h)
            height += 1
        self._stack.append((height, h))
        self.size += 1

    def root(self) -> bytes:
        if not self._stack:
            return merkle.EMPTY_ROOT
        return merkle.fold_right([h for _, h in self._stack])


def _as_bytes(value: object) -> bytes:
    # A hand-edited row may hold text where bytes belong (SQLite's replace() returns text).
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8")


def _leaves(session: Session) -> Iterator[tuple[int, str, bytes]]:
    last = -1
    while True:
        rows = session.execute(
            select(col(LogLeaf.leaf_index), col(LogLeaf.record_id), col(LogLeaf.canonical))
            .where(col(LogLeaf.leaf_index) > last)
            .order_by(col(LogLeaf.leaf_index))
            .limit(BATCH)
        ).all()
        for idx, rid, canonical in rows:
            yield int(idx), str(rid), _as_bytes(canonical)
        if len(rows) < BATCH:
            return
        last = int(rows[-1][0])


def _stored_leaf_hashes(session: Session) -> Iterator[tuple[int, bytes]]:
    last = -1
    while True:
        rows = session.execute(
            select(col(MerkleNode.idx), col(MerkleNode.hash))
            .where(col(MerkleNode.level) == 0, col(MerkleNode.idx) > last)
            .order_by(col(MerkleNode.idx))
            .limit(BATCH)
        ).all()
        for idx, h in rows:
            yield int(idx), _as_bytes(h)
        if len(rows) < BATCH:
            return
        last = int(rows[-1][0])


def _merge(session: Session) -> Iterator[tuple[int, tuple[str, bytes] | None, bytes | None]]:
    """(index, (record_id, canonical) or None, stored leaf hash or None), by index."""
    leaves = _leaves(session)
    stored = _stored_leaf_hashes(session)
    nl = next(leaves, None)
    ns = next(stored, None)
    while nl is not None or ns is not None:
        i = min(x[0] for x in (nl, ns) if x is not None)
        row = None
        h = None
        if nl is not None and nl[0] == i:
            row = (nl[1], nl[2])
            nl = next(leaves, None)
        if ns is not None and ns[0] == i:
            h = ns[1]
            ns = next(stored, None)
        yield i, row, h


def run_audit(
    session: Session,
    checkpoints: Sequence[OnChainCheckpoint],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> AuditReport:
    """Check every record in the database against every on-chain checkpoint."""
    report = AuditReport(tree_size=ledger_log.tree_size(session))
    total = int(session.execute(select(func.count()).select_from(LogLeaf)).scalar_one())
    cps = sorted(checkpoints, key=lambda c: c.tree_size)
    anchored = cps[-1].tree_size if cps else 0
    _check_checkpoint_table(session, cps, report)

    content = _Accumulator()
    stored_tree = _Accumulator()
    stored_ok = True  # every leaf so far had a stored hash
    # Positions where the record found is not the one the log stored there.
    displaced: dict[int, tuple[str, bytes]] = {}  # index -> (record id found, stored hash)
    cp_iter = iter(cps)
    next_cp = next(cp_iter, None)
    seen = 0

    def close_checkpoints(upto: int) -> None:
        nonlocal next_cp
        while next_cp is not None and next_cp.tree_size <= upto:
            cp = next_cp
            report.checkpoints_checked += 1
            if content.size == cp.tree_size and content.root() == cp.root:
                pass
            elif content.size < cp.tree_size:
                report.findings.append(
                    Finding(
                        "truncated",
                        f"checkpoint {cp.index} on chain covers {cp.tree_size} records, but "
                        f"the database has only {content.size}",
                    )
                )
            else:
                vouched = stored_ok and stored_tree.root() == cp.root
                report.findings.append(
                    Finding(
                        "root_mismatch",
                        f"checkpoint {cp.index} (tree size {cp.tree_size}, block "
                        f"{cp.block_number}) anchored root 0x{cp.root.hex()}, but the "
                        f"database's records give 0x{content.root().hex()}"
                        + (
                            ""
                            if vouched
                            else "; the stored leaf hashes no longer match the chain either, "
                            "so the records named in this range are suspects: the chain "
                            "proves only that something in it changed"
                        ),
                    )
                )
            next_cp = next(cp_iter, None)

    for i, row, stored in _merge(session):
        while content.size < i:
            # A gap in both tables: a record and its stored hash are gone.
            report.findings.append(
                Finding(
                    "missing",
                    "neither the record nor its stored leaf hash is in the database",
                    content.size,
                )
            )
            content.push(PLACEHOLDER)
            stored_tree.push(PLACEHOLDER)
            stored_ok = False
            close_checkpoints(content.size)
        # A checkpoint is checked as soon as the tree reaches its size.
        close_checkpoints(i)

        seen += 1
        if progress is not None and (seen % BATCH == 0):
            progress(seen, max(total, seen))
        beyond = i >= report.tree_size
        if row is None:
            report.findings.append(
                Finding(
                    "missing",
                    "the record is missing from the database"
                    + (" (its leaf hash is still stored)" if stored else ""),
                    i,
                    stored.hex() if stored else None,
                )
            )
            content.push(PLACEHOLDER)
        else:
            record_id, canonical = row
            report.records_checked += 1
            leaf = merkle.leaf_hash(canonical)
            content.push(leaf)
            if leaf.hex() != record_id:
                report.findings.append(
                    Finding(
                        "altered",
                        f"the record's content was changed: it now hashes to {leaf.hex()}",
                        i,
                        record_id,
                    )
                )
            if stored is None:
                if beyond:
                    report.findings.append(
                        Finding(
                            "inserted",
                            f"the record is not part of the log (the log holds "
                            f"{report.tree_size} records; it sits at index {i})",
                            i,
                            record_id,
                        )
                    )
                else:
                    report.findings.append(
                        Finding("missing_hash", "the stored leaf hash is missing", i, record_id)
                    )
            elif stored.hex() != record_id:
                displaced[i] = (record_id, stored)
        if stored is None:
            stored_ok = stored_ok and beyond
            stored_tree.push(PLACEHOLDER)
        else:
            stored_tree.push(stored)
    close_checkpoints(content.size)
    while next_cp is not None:
        close_checkpoints(next_cp.tree_size)

    _resolve_displaced(displaced, report)
    if content.size < report.tree_size:
        report.findings.append(
            Finding(
                "missing",
                f"the log's size is {report.tree_size} but records stop at index "
                f"{content.size - 1}",
            )
        )
    report.unanchored = max(0, report.tree_size - anchored)
    if progress is not None:
        progress(seen, max(total, seen))
    report.findings.sort(key=lambda f: (f.leaf_index is None, f.leaf_index or 0))
    return report


def _resolve_displaced(displaced: dict[int, tuple[str, bytes]], report: AuditReport) -> None:
    """Name what sits where another record belongs: reordered, inserted or replaced."""
    if not displaced:
        return
    home = {stored.hex(): i for i, (_, stored) in displaced.items()}
    found_ids = {rid for rid, _ in displaced.values()}
    for i, (rid, stored) in sorted(displaced.items()):
        j = home.get(rid)
        if j is not None:
            report.findings.append(
                Finding(
                    "reordered",
                    f"the record sits at leaf {i}, but it was appended at leaf {j}",
                    i,
                    rid,
                )
            )
        else:
            report.findings.append(
                Finding(
                    "inserted",
                    f"the record is not in the log; it replaced record {stored.hex()} at "
                    f"leaf {i}",
                    i,
                    rid,
                )
            )
            if stored.hex() not in found_ids:
                report.findings.append(
                    Finding(
                        "missing",
                        "the record is missing from the database (another record took its "
                        "place)",
                        i,
                        stored.hex(),
                    )
                )


def _check_checkpoint_table(
    session: Session, cps: Sequence[OnChainCheckpoint], report: AuditReport
) -> None:
    """The database's checkpoint rows must mirror the contract's checkpoints."""
    rows = {
        int(r.seq): r for r in session.execute(select(Checkpoint)).scalars()
    }
    by_index = {c.index: c for c in cps}
    for seq, r in sorted(rows.items()):
        c = by_index.get(seq)
        if c is None:
            report.findings.append(
                Finding(
                    "checkpoint_table",
                    f"the database lists checkpoint {seq} (tree size {r.tree_size}) that the "
                    "contract does not have",
                )
            )
        elif (c.tree_size, c.root) != (r.tree_size, bytes(r.root)):
            report.findings.append(
                Finding(
                    "checkpoint_table",
                    f"checkpoint {seq}: the database says tree size {r.tree_size} root "
                    f"0x{bytes(r.root).hex()}, the contract says tree size {c.tree_size} root "
                    f"0x{c.root.hex()}",
                )
            )
    missing = [c.index for c in cps if c.index not in rows]
    if missing:
        report.notes.append(
            f"{len(missing)} on-chain checkpoint(s) not yet recorded in the database "
            f"(first: {missing[0]}); the anchoring worker records them on its next pass"
        )
