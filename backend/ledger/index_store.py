"""The subject index, kept and committed: completeness proofs per merchant (issue 17).

With every checkpoint the anchorer appends one ``ledger.subject_index`` record as the
checkpoint's **last leaf**: its body is ``{"covers": p, "root": <hex>, "subjects": m}``
where ``p`` is its own leaf index and ``root`` the root of the sparse Merkle tree of
:mod:`backend.ledger.subject_index` over every record before it (leaves ``0 … p-1``)
that names a subject. The checkpoint anchors tree size ``p + 1``. So the index root is
inside the log, and the log's root is what the contract holds and the witnesses cosign:
the commitment costs no contract change and no extra gas beyond one more leaf per
checkpoint (docs/proof-bundle.md, "Completeness proofs").

``subject_index_entry`` holds the index as rows (one per record naming a subject, with
the running ids digest). It is derived from the log alone and audited against it (the
check registered here): the rows, and the root every index record commits to.

The hashing is the pure :mod:`backend.ledger.subject_index`; this module is the I/O.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, text
from sqlmodel import Session

from backend.ledger import projection
from backend.ledger import subject_index as si
from backend.ledger.models import LogLeaf, SubjectIndexEntry
from backend.ledger.records import SYSTEM, RecordDraft

INDEX_TYPE = "ledger.subject_index"
TABLE = SubjectIndexEntry.__table__  # type: ignore[attr-defined]
LEAF = LogLeaf.__table__  # type: ignore[attr-defined]

State = dict[str, tuple[int, bytes]]  # subject -> (count, ids digest)


@dataclass(frozen=True)
class IndexRecord:
    """A ``ledger.subject_index`` record: at leaf ``covers``, over leaves ``0 … covers-1``."""

    leaf_index: int
    record_id: str
    covers: int
    root: bytes
    subjects: int


def index_body(covers: int, root: bytes, subjects: int) -> dict[str, Any]:
    return {"covers": covers, "root": root.hex(), "subjects": subjects}


def parse_index_record(leaf_index: int, record_id: str, canonical: bytes) -> IndexRecord:
    """The body of an index record; ``ValueError`` if it is not one."""
    env = json.loads(bytes(canonical))
    body = env.get("body") or {}
    if env.get("type") != INDEX_TYPE or env.get("subject") is not None:
        raise ValueError(f"leaf {leaf_index} is a {env.get('type')} record, not {INDEX_TYPE}")
    covers, root, subjects = body.get("covers"), body.get("root"), body.get("subjects")
    if type(covers) is not int or type(subjects) is not int or not isinstance(root, str):
        raise ValueError(f"leaf {leaf_index}: an index record's body is covers, root, subjects")
    raw = bytes.fromhex(root)
    if len(raw) != si.HASH_SIZE:
        raise ValueError(f"leaf {leaf_index}: the index root is 32 bytes")
    return IndexRecord(leaf_index, record_id, covers, raw, subjects)


def index_record_at(session: Session, leaf_index: int) -> IndexRecord | None:
    """The index record at ``leaf_index`` if that leaf is one (covering the leaves
    before it), else ``None``."""
    row = session.execute(
        select(LEAF.c.record_id, LEAF.c.record_type, LEAF.c.canonical).where(
            LEAF.c.leaf_index == leaf_index
        )
    ).first()
    if row is None or row[1] != INDEX_TYPE:
        return None
    rec = parse_index_record(leaf_index, row[0], bytes(row[2]))
    return rec if rec.covers == leaf_index else None


def latest_index_record(session: Session) -> IndexRecord | None:
    row = session.execute(
        select(LEAF.c.leaf_index, LEAF.c.record_id, LEAF.c.canonical)
        .where(LEAF.c.record_type == INDEX_TYPE)
        .order_by(LEAF.c.leaf_index.desc())
        .limit(1)
    ).first()
    return None if row is None else parse_index_record(int(row[0]), row[1], bytes(row[2]))


def _subject_leaves(session: Session, start: int, end: int) -> Iterator[tuple[int, str, str]]:
    """(leaf index, record id, subject) of the records in ``[start, end)`` naming one.
    The subject is read from the record's bytes (the ones its id hashes), never from
    the ``subject`` column beside them."""
    for idx, rid, _typ, canonical in _leaves(session, start, end):
        subject = _subject_of(canonical)
        if subject is not None:
            yield idx, rid, subject


def _leaves(session: Session, start: int, end: int) -> Iterator[tuple[int, str, str, bytes]]:
    pos = start
    while pos < end:
        chunk = session.execute(
            select(LEAF.c.leaf_index, LEAF.c.record_id, LEAF.c.record_type, LEAF.c.canonical)
            .where(and_(LEAF.c.leaf_index >= pos, LEAF.c.leaf_index < end))
            .order_by(LEAF.c.leaf_index)
            .limit(2000)
        ).all()
        if not chunk:
            return
        for idx, rid, typ, canonical in chunk:
            yield int(idx), str(rid), str(typ), bytes(canonical)
        pos = int(chunk[-1][0]) + 1


def _subject_of(canonical: bytes) -> str | None:
    subject = json.loads(canonical).get("subject")
    return None if subject is None else str(subject)


def _current(session: Session, subjects: list[str], below: int) -> State:
    """Each subject's (count, digest) over the rows of leaves below ``below``."""
    out: State = {}
    for i in range(0, len(subjects), 500):
        part = subjects[i : i + 500]
        last = (
            select(TABLE.c.subject, func.max(TABLE.c.seq).label("n"))
            .where(and_(TABLE.c.subject.in_(part), TABLE.c.leaf_index < below))
            .group_by(TABLE.c.subject)
            .subquery()
        )
        rows = session.execute(
            select(TABLE.c.subject, TABLE.c.seq, TABLE.c.ids_digest).join(
                last, and_(TABLE.c.subject == last.c.subject, TABLE.c.seq == last.c.n)
            )
        )
        for subject, seq, digest in rows:
            out[str(subject)] = (int(seq), bytes(digest))
    return out


def extend(session: Session, start: int, end: int) -> State:
    """Add the rows of the records in leaves ``[start, end)`` (the table covers
    ``[0, start)``); returns the new (count, digest) of every subject they name."""
    leaves = list(_subject_leaves(session, start, end))
    state = _current(session, sorted({s for _, _, s in leaves}), start)
    rows = []
    for idx, rid, subject in leaves:
        count, digest = state.get(subject, (0, si.EMPTY))
        count, digest = count + 1, si.extend_ids_digest(digest, rid)
        state[subject] = (count, digest)
        rows.append(
            {"subject": subject, "seq": count, "leaf_index": idx, "record_id": rid,
             "ids_digest": digest}
        )
    for i in range(0, len(rows), 2000):
        session.execute(insert(TABLE), rows[i : i + 2000])
    return state


def build(session: Session, covers: int) -> si.SubjectIndex:
    """The index over leaves ``[0, covers)`` from the table (one bulk build)."""
    last = (
        select(TABLE.c.subject, func.max(TABLE.c.seq).label("n"))
        .where(TABLE.c.leaf_index < covers)
        .group_by(TABLE.c.subject)
        .subquery()
    )
    rows = session.execute(
        select(TABLE.c.subject, TABLE.c.seq, TABLE.c.ids_digest).join(
            last, and_(TABLE.c.subject == last.c.subject, TABLE.c.seq == last.c.n)
        )
    )
    return si.SubjectIndex.from_entries(
        (si.subject_key(str(s)), int(n), bytes(d)) for s, n, d in rows
    )


@dataclass
class KeptIndex:
    """The anchorer's own copy of the index (never shared with readers): its tree over
    leaves ``[0, covers)``."""

    covers: int
    tree: si.SubjectIndex


def append_index_record(
    session: Session, *, now: datetime, kept: KeptIndex | None
) -> tuple[IndexRecord, KeptIndex]:
    """Append the index record over every leaf before it, in the caller's transaction
    (the caller commits). Takes the log lock first, so the record lands at the leaf
    index the index was computed for. ``kept``: the anchorer's tree from the last
    time, reused when it matches the newest index record (else rebuilt)."""
    from backend.ledger import write  # the write path imports the projections

    # The log lock (as log.append_sealed takes it), held until the caller commits.
    p = int(
        session.execute(
            text("UPDATE log_head SET size = size WHERE id = 1 RETURNING size")
        ).scalar_one()
    )
    prev = latest_index_record(session)
    start = prev.covers if prev is not None else 0
    if kept is None or kept.covers != start:
        kept = KeptIndex(start, build(session, start))
    changed = extend(session, start, p)
    tree = kept.tree
    for subject, (count, digest) in changed.items():
        tree.put(si.subject_key(subject), count, digest)
    root = tree.root()
    draft = RecordDraft(
        type=INDEX_TYPE, subject=None, actor=SYSTEM, body=index_body(p, root, len(tree))
    )
    rec = write.write(session, draft, now=now, hooks=False).one
    if rec.leaf_index != p:  # the lock makes this impossible; never anchor a wrong claim
        raise RuntimeError(f"the index record landed at leaf {rec.leaf_index}, not {p}")
    return (
        IndexRecord(p, rec.record_id, p, root, len(tree)),
        KeptIndex(p, tree),
    )


# --- readers' cache -------------------------------------------------------------------


class _Cache:
    """Trees for the proof route, by the id of the index record they were built for (an
    index over a given prefix of the log never changes; a record id is salted, so two
    logs never share one); the two used last are kept.

    A checkpoint's tree is made from the newest cached tree before it by applying the
    rows in between (O(k log n) for k changed subjects), else built from the table.
    Trees are changed and proofs made under one lock, so no proof sees a tree midway.
    """

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._trees: dict[str, tuple[int, si.SubjectIndex]] = {}

    def prove(self, session: Session, rec: IndexRecord, key: bytes) -> si.IndexProof:
        with self._lock:
            entry = self._trees.pop(rec.record_id, None)
            if entry is None:
                prev = _index_before(session, rec.leaf_index)
                held = self._trees.pop(prev.record_id, None) if prev is not None else None
                if prev is not None and held is not None:
                    tree = held[1]
                    for subject, count, digest in _changes(session, prev.covers, rec.covers):
                        tree.put(si.subject_key(subject), count, digest)
                else:
                    tree = build(session, rec.covers)
                if tree.root() != rec.root:  # never carry a wrong tree over: rebuild
                    tree = build(session, rec.covers)
                entry = (rec.covers, tree)
            self._trees[rec.record_id] = entry  # most recently used last
            while len(self._trees) > self.size:
                self._trees.pop(next(iter(self._trees)))
            return entry[1].prove(key)

    def clear(self) -> None:
        with self._lock:
            self._trees.clear()


def _index_before(session: Session, leaf_index: int) -> IndexRecord | None:
    """The index record before the one at ``leaf_index`` (its predecessor's tree is the
    one to carry over: record ids are salted, so it is this log's)."""
    row = session.execute(
        select(LEAF.c.leaf_index, LEAF.c.record_id, LEAF.c.canonical)
        .where(and_(LEAF.c.record_type == INDEX_TYPE, LEAF.c.leaf_index < leaf_index))
        .order_by(LEAF.c.leaf_index.desc())
        .limit(1)
    ).first()
    return None if row is None else parse_index_record(int(row[0]), row[1], bytes(row[2]))


def _changes(session: Session, start: int, end: int) -> list[tuple[str, int, bytes]]:
    """Each subject's newest (count, digest) among the rows of leaves ``[start, end)``."""
    newest: dict[str, tuple[int, bytes]] = {}
    rows = session.execute(
        select(TABLE.c.subject, TABLE.c.seq, TABLE.c.ids_digest)
        .where(and_(TABLE.c.leaf_index >= start, TABLE.c.leaf_index < end))
        .order_by(TABLE.c.leaf_index)
    )
    for subject, seq, digest in rows:
        newest[str(subject)] = (int(seq), bytes(digest))
    return [(s, c, d) for s, (c, d) in newest.items()]


trees = _Cache()


def entries_of(session: Session, subject: str, covers: int) -> list[tuple[int, str, bytes]]:
    """(leaf index, record id, ids digest) of the subject's rows below ``covers``."""
    rows = session.execute(
        select(TABLE.c.leaf_index, TABLE.c.record_id, TABLE.c.ids_digest)
        .where(and_(TABLE.c.subject == subject, TABLE.c.leaf_index < covers))
        .order_by(TABLE.c.seq)
    )
    return [(int(i), str(r), bytes(d)) for i, r, d in rows]


def record_ids_of(session: Session, subject: str) -> list[str]:
    """Every record id the log table holds for ``subject``, in log order (what a page
    accounts for; the completeness proof says what it must hold)."""
    rows = session.execute(
        select(LEAF.c.record_id).where(LEAF.c.subject == subject).order_by(LEAF.c.leaf_index)
    )
    return [str(r) for (r,) in rows]


# --- audit ----------------------------------------------------------------------------


def _expected(session: Session) -> tuple[dict[tuple[str, int], dict[str, Any]],
                                          list[projection.Difference]]:
    """The rows the log says the table holds (up to the newest index record), and the
    index records whose root is not the index of the leaves before them."""
    latest = latest_index_record(session)
    covers = latest.covers if latest is not None else 0
    expected: dict[tuple[str, int], dict[str, Any]] = {}
    wrong: list[projection.Difference] = []
    state: State = {}
    tree = si.SubjectIndex()
    dirty: set[str] = set()
    end = latest.leaf_index + 1 if latest is not None else 0
    for idx, rid, typ, canonical in _leaves(session, 0, end):
        if typ == INDEX_TYPE:
            for s in dirty:
                tree.put(si.subject_key(s), *state[s])
            dirty.clear()
            try:
                rec = parse_index_record(idx, rid, canonical)
                problem = None
                if rec.covers != idx:
                    problem = f"covers {rec.covers} leaves but sits at leaf {idx}"
                elif rec.root != tree.root() or rec.subjects != len(tree):
                    problem = (
                        f"commits to index root {rec.root.hex()} over {rec.subjects} "
                        f"subject(s), but the log before it gives {tree.root().hex()} "
                        f"over {len(tree)}"
                    )
            except ValueError as exc:
                problem = str(exc)
            if problem:
                wrong.append(projection.Difference(
                    "subject_index_entry", (idx,), "index_record", rid,
                    detail=f"the index record at leaf {idx} {problem}",
                ))
            continue
        subject = _subject_of(canonical)
        if subject is not None and idx < covers:
            count, digest = state.get(subject, (0, si.EMPTY))
            count, digest = count + 1, si.extend_ids_digest(digest, rid)
            state[subject] = (count, digest)
            dirty.add(subject)
            expected[(subject, count)] = {
                "subject": subject, "seq": count, "leaf_index": idx,
                "record_id": rid, "ids_digest": digest,
            }
    return expected, wrong


_COLUMNS = ("leaf_index", "record_id", "ids_digest")


def audit(session: Session, ctx: projection.CheckContext) -> list[projection.Difference]:
    """The table against the log, and every index record's root against the log."""
    expected, found = _expected(session)
    seen: set[tuple[str, int]] = set()
    for row in session.connection().execute(select(TABLE)).mappings():
        key = (str(row["subject"]), int(row["seq"]))
        want = expected.get(key)
        if want is None:
            found.append(projection.Difference(
                "subject_index_entry", key, "inserted", row["record_id"]))
            continue
        seen.add(key)
        diff = tuple(c for c in _COLUMNS if not projection.same(row[c], want[c]))
        if diff:
            found.append(projection.Difference(
                "subject_index_entry", key, "altered", want["record_id"], diff,
                {c: row[c] for c in diff}, {c: want[c] for c in diff},
            ))
    for key, want in expected.items():
        if key not in seen:
            found.append(projection.Difference(
                "subject_index_entry", key, "deleted", want["record_id"]))
    return found


def rebuild(session: Session, ctx: projection.CheckContext) -> int:
    """Rewrite the table from the log (an index record's wrong root stays reported:
    the log cannot be repaired)."""
    expected, _ = _expected(session)
    differences = audit(session, ctx)
    if not any(d.kind in ("inserted", "altered", "deleted") for d in differences):
        return 0
    session.execute(delete(TABLE))
    rows = list(expected.values())
    for i in range(0, len(rows), 2000):
        session.execute(insert(TABLE), rows[i : i + 2000])
    trees.clear()
    return len(rows)


SUBJECT_INDEX_CHECK = projection.Check(name="subject_index_entry", audit=audit, rebuild=rebuild)
