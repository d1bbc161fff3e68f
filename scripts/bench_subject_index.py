"""``python scripts/bench.py subject-index``: the pure subject index at 10^4, 10^5, 10^6 subjects.

The in-memory sparse Merkle tree of ``backend/ledger/subject_index.py`` only (it is not
yet stored, committed with checkpoints or served: issue 17 items 2 and 3). For each size:

- build: one bulk build from every subject's (count, ids digest);
- checkpoint: ``--batch`` subjects gain a record each (``put``), the cost of keeping the
  index current for one checkpoint of that many records, per subject;
- proof: the size (siblings, bytes as JSON) and the time to make and to verify a
  membership proof and an absence proof.

Baseline, same run: one SHA-256 of 73 bytes (one leaf hash). Per-subject costs are
reported in those units; O(log n) shows as about log2(n) + 2 hashes.
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


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "subject-index", help="the pure subject index: build, per-checkpoint update, proofs"
    )
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--batch", type=int, default=1000, help="subjects updated per checkpoint")
    p.add_argument("--repeat", type=int, default=200, help="proofs timed per size")
    p.set_defaults(func=bench_subject_index)
