"""Benchmarks. Figures are printed next to a baseline measured in the same run,
because this machine is shared and noisy: compare ratios, not raw numbers.

    python scripts/bench.py log       appends/s and proof time at 10^4..10^6 leaves
    python scripts/bench.py anchor    records/s through anchoring, gas per record
    python scripts/bench.py credit    full re-rating, incremental update, bulk ingest rows/s
    python scripts/bench.py bulk      bulk import of 10,000 rows: Chinese XLSX, dry and real run
    python scripts/bench.py draw      draw snapshot + selection at 10^5 and 10^6 merchants
    python scripts/bench.py site      merchant page and search server time at 10^5 merchants
    python scripts/bench.py audit     the projection audit at 10^4/10^5 and 10^5/10^6
    python scripts/bench.py auth      rate limits and the shop page under 60-request bursts
    python scripts/bench.py subject-index   the pure subject index (completeness) at 10^4..10^6
    python scripts/bench.py tiles     tile serving req/s vs /healthz; append -> k cosignatures

Each subcommand is one function ``bench_<name>(args)``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.db import Database  # noqa: E402
from backend.ledger import log, merkle  # noqa: E402
from backend.ledger.records import SYSTEM, RecordDraft  # noqa: E402


def _timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _grow_log(db: Database, target: int, batch: int) -> float:
    """Append until the log has ``target`` leaves; returns appends/s of this growth."""
    with db.read() as s:
        size = log.tree_size(s)
    n = target - size
    t0 = time.perf_counter()
    while size < target:
        k = min(batch, target - size)
        with db.session() as s:
            log.append(
                s,
                [
                    RecordDraft("bench.entry", None, SYSTEM, {"n": size + i, "名称": "巴中计量"})
                    for i in range(k)
                ],
            )
            s.commit()
        size += k
    return n / (time.perf_counter() - t0) if n else 0.0


def bench_log(args: argparse.Namespace) -> None:
    sizes = [int(x) for x in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(args.database_url or f"sqlite:///{tmp}/bench.sqlite3")
        db.migrate()
        # Baseline: one SHA-256 leaf hash, the cheapest thing an append must do.
        base = statistics.median(_timed(lambda: merkle.leaf_hash(b"x" * 300), 2000))
        print(f"baseline: one SHA-256 leaf hash = {base * 1e6:.2f} µs")
        print(f"{'leaves':>9} {'appends/s':>10} {'proof µs (p50)':>15} {'ratio vs 1st':>13} "
              f"{'proof/hash':>11}")
        first = None
        for size in sizes:
            rate = _grow_log(db, size, args.batch)
            with db.read() as s:
                import random

                rng = random.Random(size)

                def prove(s=s, rng=rng, size=size) -> None:  # type: ignore[no-untyped-def]
                    log.inclusion_proof(s, rng.randrange(size), size)

                t = statistics.median(_timed(prove, args.repeat))
            first = first or t
            print(f"{size:>9} {rate:>10.0f} {t * 1e6:>15.0f} {t / first:>13.2f} "
                  f"{t / base:>11.0f}")
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="bench", required=True)

    p = sub.add_parser("log", help="appends/s and inclusion-proof time at several sizes")
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--batch", type=int, default=1000, help="records per append transaction")
    p.add_argument("--repeat", type=int, default=200, help="proofs timed per size")
    p.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    p.set_defaults(func=bench_log)

    import bench_anchor  # scripts/bench_anchor.py: anchoring throughput and gas per record

    bench_anchor.add_parser(sub)

    import bench_credit  # scripts/bench_credit.py: the credit benchmark's own module

    bench_credit.add_parser(sub)

    import bench_bulk  # scripts/bench_bulk.py: the regulator's bulk import (XLSX, dry run)

    bench_bulk.add_parser(sub)

    import bench_draw  # scripts/bench_draw.py: snapshot and selection of a draw

    bench_draw.add_parser(sub)

    import bench_site  # scripts/bench_site.py: public site server time at 10^5 merchants

    bench_site.add_parser(sub)

    import bench_audit  # scripts/bench_audit.py: the projection audit at city scale

    bench_audit.add_parser(sub)

    import bench_auth  # scripts/bench_auth.py: rate limits and writes under concurrent bursts

    bench_auth.add_parser(sub)

    import bench_subject_index  # scripts/bench_subject_index.py: the pure subject index

    bench_subject_index.add_parser(sub)

    import bench_tiles  # scripts/bench_tiles.py: C2SP tiles and witness cosigning latency

    bench_tiles.add_parser(sub)

    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
