"""``python scripts/bench.py subject-index``: the subject index at 10^4, 10^5, 10^6 subjects.

Two parts. First the in-memory sparse Merkle tree of ``backend/ledger/subject_index.py``
(the structure the anchorer keeps and the proof route caches). For each size:

- build: one bulk build from every subject's (count, ids digest);
- checkpoint: ``--batch`` subjects gain a record each (``put``), the cost of keeping the
  index current for one checkpoint of that many records, per subject;
- proof: the size (siblings, bytes as JSON) and the time to make and to verify a
  membership proof and an absence proof.

Baseline, same run: one SHA-256 of 73 bytes (one leaf hash). Per-subject costs are
reported in those units; O(log n) shows as about log2(n) + 2 hashes.

Then, with ``--db-sizes`` (default 10^4 and 10^5 merchants; 10^6 is too slow to seed
through the log's append path on this machine, so 10^6 is measured in memory only), the
service's own path on a SQLite database seeded with one record per merchant:

- index record: ``append_index_record`` for one checkpoint of ``--batch`` new records
  about as many existing merchants (read the leaves, insert the rows, update the kept
  tree, append the record), in ms per checkpoint and µs per record;
- proof: ``GET /api/merchants/{uscc}/completeness``'s service function (the tree cached,
  as after the first request), its JSON size, and the first request's cache build.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import statistics
import time

from backend.ledger import subject_index as si


def _baseline() -> float:
    data = bytes(73)
    n = 200_000
    t0 = time.perf_counter()
    for _ in range(n):
        hashlib.sha256(data).digest()
    return (time.perf_counter() - t0) / n


def bench_subject_index(args: argparse.Namespace) -> None:
    base = _baseline()
    print(f"baseline: one SHA-256 of 73 bytes = {base * 1e6:.2f} µs")
    print(f"{'subjects':>9} {'build s':>8} {'put µs':>8} {'put/hash':>8} {'log2 n':>6} "
          f"{'siblings':>8} {'proof B':>8} {'prove µs':>9} {'verify µs':>9}")
    rng = random.Random(17)
    for n in (int(x) for x in args.sizes.split(",")):
        keys = [si.subject_key(f"{i:018d}") for i in range(n)]
        digests = {k: rng.randbytes(32) for k in keys}
        t0 = time.perf_counter()
        index = si.SubjectIndex.from_entries((k, 1, digests[k]) for k in keys)
        build = time.perf_counter() - t0

        batch = rng.sample(keys, min(args.batch, n))
        t0 = time.perf_counter()
        for k in batch:
            index.put(k, 2, si.extend_ids_digest(digests[k], k))
        put = (time.perf_counter() - t0) / len(batch)
        root = index.root()

        sample = rng.sample(keys, min(args.repeat, n))
        absent = [si.subject_key(f"absent-{i}") for i in range(len(sample))]
        prove_t, verify_t, sizes, lengths = [], [], [], []
        for member, other in zip(sample, absent, strict=True):
            t0 = time.perf_counter()
            proof = index.prove(member)
            prove_t.append(time.perf_counter() - t0)
            leaf = proof.leaf
            assert leaf is not None
            t0 = time.perf_counter()
            si.verify_membership(root, member, leaf.count, leaf.digest, proof)
            verify_t.append(time.perf_counter() - t0)
            sizes.append(len(json.dumps(proof.to_json())))
            lengths.append(len(proof.siblings))
            si.verify_absence(root, other, index.prove(other))
        print(f"{n:>9} {build:>8.2f} {put * 1e6:>8.1f} {put / base:>8.1f} "
              f"{math.log2(n):>6.1f} {statistics.mean(lengths):>8.1f} "
              f"{statistics.mean(sizes):>8.0f} {statistics.median(prove_t) * 1e6:>9.1f} "
              f"{statistics.median(verify_t) * 1e6:>9.1f}")
        del index, keys, digests


def _uscc(i: int) -> str:
    from backend.uscc import compute_check_chars

    body = f"91110000{i:08d}"
    return body + compute_check_chars(body)


def _db_size(n: int, args: argparse.Namespace, rng: random.Random) -> str:
    import tempfile
    from datetime import UTC, datetime
    from pathlib import Path

    import backend.domains  # noqa: F401  (the write path's projections)
    from backend.config import Settings
    from backend.context import AppContext
    from backend.ledger import completeness, index_store, log
    from backend.ledger.models import Checkpoint
    from backend.ledger.records import Actor, RecordDraft

    actor = Actor("regulator", "1")
    now = datetime.now(UTC)

    def drafts(ids: list[int], tag: int) -> list[RecordDraft]:
        return [RecordDraft("test.entry", _uscc(i), actor, {"n": tag}) for i in ids]

    with tempfile.TemporaryDirectory() as tmp:
        ctx = AppContext.create(Settings(
            env="test", data_dir=Path(tmp) / "data", anchor_enabled=False,
            demo_on_first_start=False,
        ))
        try:
            def checkpoint(
                seq: int, kept: index_store.KeptIndex | None
            ) -> tuple[float, index_store.KeptIndex]:
                t0 = time.perf_counter()
                with ctx.db.session() as s:
                    rec, kept2 = index_store.append_index_record(s, now=now, kept=kept)
                    s.commit()
                took = time.perf_counter() - t0
                with ctx.db.session() as s:  # as the anchorer records it (no chain here)
                    s.add(Checkpoint(
                        seq=seq, tree_size=rec.leaf_index + 1,
                        root=log.root_at(s, rec.leaf_index + 1), tx_hash="0x" + "00" * 32,
                        block_number=1, chain_id=1, contract_address="0x" + "00" * 20,
                        anchored_at=now,
                    ))
                    s.commit()
                return took, kept2

            t0 = time.perf_counter()
            for lo in range(0, n, 10_000):
                with ctx.db.session() as s:
                    log.append(s, drafts(list(range(lo, min(n, lo + 10_000))), 0), now=now)
                    s.commit()
            seed = time.perf_counter() - t0
            first, kept = checkpoint(0, None)
            index_store.trees.clear()
            with ctx.db.read() as s:  # the proof route's first request builds its tree
                t0 = time.perf_counter()
                completeness.completeness(s, uscc=_uscc(0), checkpoint=None, ledger_url=None)
                cold = time.perf_counter() - t0
            times, proofs, sizes, sibs = [], [], [], []
            for seq in range(1, 4):
                with ctx.db.session() as s:
                    log.append(s, drafts(rng.sample(range(n), args.batch), seq), now=now)
                    s.commit()
                took, kept = checkpoint(seq, kept)
                times.append(took)
                with ctx.db.read() as s:
                    for _ in range(args.db_repeat):
                        t0 = time.perf_counter()
                        out = completeness.completeness(
                            s, uscc=_uscc(rng.randrange(n)), checkpoint=None, ledger_url=None
                        )
                        proofs.append(time.perf_counter() - t0)
                        sizes.append(len(out.model_dump_json()))
                        sibs.append(len(out.proof["siblings"]))
        finally:
            ctx.close()
    cp = statistics.median(times)
    return (f"{n:>9} {seed:>7.1f} {first:>11.2f} {cp * 1e3:>8.1f} "
            f"{cp / args.batch * 1e6:>9.1f} {statistics.mean(sibs):>8.1f} "
            f"{statistics.mean(sizes):>8.0f} {statistics.median(proofs) * 1e3:>9.2f} "
            f"{cold * 1e3:>8.0f}")


def bench_db(args: argparse.Namespace) -> None:
    print()
    print("service path (SQLite; one record per merchant, then checkpoints of "
          f"{args.batch} records; proofs after each, the tree carried over)")
    print(f"{'merchants':>9} {'seed s':>7} {'first idx s':>11} {'ckpt ms':>8} "
          f"{'µs/record':>9} {'siblings':>8} {'proof B':>8} {'proof ms':>9} {'cold ms':>8}")
    rng = random.Random(17)
    for n in (int(x) for x in args.db_sizes.split(",") if x):
        print(_db_size(n, args, rng))


def bench_all(args: argparse.Namespace) -> None:
    bench_subject_index(args)
    bench_db(args)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "subject-index", help="the pure subject index: build, per-checkpoint update, proofs"
    )
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--batch", type=int, default=1000, help="subjects updated per checkpoint")
    p.add_argument("--repeat", type=int, default=200, help="proofs timed per size")
    p.add_argument("--db-sizes", default="10000,100000",
                   help="merchants seeded for the service path (empty: skip it)")
    p.add_argument("--db-repeat", type=int, default=50, help="service proofs timed per size")
    p.set_defaults(func=bench_all)
