"""The database-backed log: appends, roots and proofs against merkle.py; density
and atomicity under concurrent writers; no rebuild of the tree."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest
from sqlalchemy import event, func, select, text

from backend.db import Database
from backend.errors import InvalidTreeSize, RecordNotFound
from backend.ledger import log, merkle
from backend.ledger.models import LogLeaf, MerkleNode
from backend.ledger.records import SYSTEM, Actor, RecordDraft, parse_canonical


def draft(n: int, subject: str | None = None) -> RecordDraft:
    return RecordDraft(type="test.entry", subject=subject, actor=SYSTEM, body={"n": n})


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    url = (
        f"sqlite:///{tmp_path}/log.sqlite3"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url").replace(
            "postgresql://", "postgresql+psycopg://"
        )
    )
    database = Database(url)
    database.migrate()
    yield database
    database.dispose()


def append_n(db: Database, n: int, batch: int = 100) -> list[log.AppendedRecord]:
    out: list[log.AppendedRecord] = []
    for start in range(0, n, batch):
        with db.session() as s:
            out += log.append(s, [draft(i) for i in range(start, min(n, start + batch))])
            s.commit()
    return out


class TestAppend:
    def test_indexes_are_dense_from_zero(self, db: Database) -> None:
        recs = append_n(db, 37, batch=5)
        assert [r.leaf_index for r in recs] == list(range(37))
        with db.read() as s:
            assert log.tree_size(s) == 37

    def test_record_id_is_leaf_hash_of_canonical_bytes(self, db: Database) -> None:
        (rec,) = append_n(db, 1)
        assert rec.record_id == merkle.leaf_hash(rec.canonical).hex()
        with db.read() as s:
            stored = log.get_leaf(s, rec.record_id)
            assert bytes(stored.canonical) == rec.canonical
            assert parse_canonical(bytes(stored.canonical))["body"] == {"n": 0}

    def test_unknown_record_is_not_found(self, db: Database) -> None:
        with db.read() as s, pytest.raises(RecordNotFound):
            log.get_leaf(s, "ab" * 32)

    def test_rolled_back_append_leaves_no_trace_and_no_gap(self, db: Database) -> None:
        append_n(db, 3)
        with pytest.raises(RuntimeError), db.session() as s:
            log.append(s, [draft(99)])
            raise RuntimeError("the domain write failed")
        (after,) = append_n(db, 1)
        assert after.leaf_index == 3
        with db.read() as s:
            assert s.execute(select(func.count()).select_from(LogLeaf)).scalar_one() == 4

    def test_each_append_writes_o1_nodes_amortised(self, db: Database) -> None:
        append_n(db, 64, batch=1)
        with db.read() as s:
            # 64 leaves -> exactly 127 perfect subtrees (64 + 32 + ... + 1): nothing rebuilt.
            assert s.execute(select(func.count()).select_from(MerkleNode)).scalar_one() == 127


class TestProofs:
    def test_roots_and_proofs_match_merkle_py(self, db: Database) -> None:
        recs = append_n(db, 300, batch=37)
        leaves = [bytes.fromhex(r.record_id) for r in recs]
        rng = random.Random(7)
        with db.read() as s:
            for size in [1, 2, 3, 4, 5, 7, 8, 9, 63, 64, 65, 127, 128, 129, 255, 256, 300]:
                root = merkle.root_from_leaf_hashes(leaves[:size])
                assert log.root_at(s, size) == root
                for index in {0, size - 1, rng.randrange(size)}:
                    proof = log.inclusion_proof(s, index, size)
                    assert proof == merkle.inclusion_proof(
                        index, size, merkle.subtree_from_leaves(leaves[:size])
                    )
                    merkle.verify_inclusion(index, size, leaves[index], proof, root)
                old = rng.randint(1, size)
                proof = log.consistency_proof(s, old, size)
                merkle.verify_consistency(
                    old, size, merkle.root_from_leaf_hashes(leaves[:old]), root, proof
                )

    def test_empty_log_root(self, db: Database) -> None:
        with db.read() as s:
            assert log.root_at(s, 0) == merkle.EMPTY_ROOT

    @pytest.mark.parametrize(
        ("call", "args"),
        [
            ("root_at", (11,)),
            ("inclusion_proof", (0, 11)),
            ("inclusion_proof", (10, 10)),
            ("inclusion_proof", (-1, 5)),
            ("consistency_proof", (0, 5)),
            ("consistency_proof", (6, 5)),
            ("consistency_proof", (1, 11)),
        ],
    )
    def test_sizes_outside_the_log_are_rejected(
        self, db: Database, call: str, args: tuple[int, ...]
    ) -> None:
        append_n(db, 10)
        with db.read() as s, pytest.raises(InvalidTreeSize):
            getattr(log, call)(s, *args)

    def test_a_proof_reads_log_n_nodes_in_one_query(self, db: Database) -> None:
        append_n(db, 1000, batch=500)
        statements: list[str] = []

        def count(_c, _cur, statement, *_a):  # type: ignore[no-untyped-def]
            statements.append(statement)

        event.listen(db.read_engine, "before_cursor_execute", count)
        try:
            with db.read() as s:
                log.inclusion_proof(s, 517, 1000)
        finally:
            event.remove(db.read_engine, "before_cursor_execute", count)
        node_queries = [q for q in statements if "merkle_node" in q]
        assert len(node_queries) == 1


class TestConcurrentWriters:
    def test_threads_get_dense_unique_indexes(self, db: Database) -> None:
        errors: list[BaseException] = []
        got: list[int] = []
        lock = threading.Lock()

        def writer(w: int) -> None:
            try:
                for i in range(15):
                    with db.session() as s:
                        recs = log.append(s, [draft(w * 1000 + i), draft(w * 1000 + i + 500)])
                        s.commit()
                    with lock:
                        got.extend(r.leaf_index for r in recs)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert sorted(got) == list(range(6 * 15 * 2))
        with db.read() as s:
            size = log.tree_size(s)
            leaves = [bytes.fromhex(rid) for _, rid, _ in log.iter_leaves(s)]
            assert size == len(leaves) == 180
            assert log.root_at(s, size) == merkle.root_from_leaf_hashes(leaves)


class TestRecordsOfSubject:
    def test_records_for_subject_in_log_order(self, db: Database) -> None:
        with db.session() as s:
            log.append(s, [draft(1, "91511902MA62Q3T556"), draft(2, None)])
            log.append(
                s,
                RecordDraft(
                    type="test.entry",
                    subject="91511902MA62Q3T556",
                    actor=Actor("regulator", "3"),
                    body={"n": 3},
                ),
            )
            s.commit()
        with db.read() as s:
            recs = log.records_for_subject(s, "91511902MA62Q3T556")
        assert [r["body"]["n"] for r in recs] == [1, 3]
        assert [r["leaf_index"] for r in recs] == [0, 2]
        assert recs[1]["actor"] == {"role": "regulator", "account": "3"}


def test_iter_leaves_streams_in_order(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/x.sqlite3")
    db.migrate()
    append_n(db, 25, batch=25)
    with db.read() as s:
        rows = list(log.iter_leaves(s, batch=7))
        assert [i for i, _, _ in rows] == list(range(25))
        assert [i for i, _, _ in log.iter_leaves(s, 5, 9, batch=2)] == [5, 6, 7, 8]
        s.execute(text("SELECT 1"))
