"""``python scripts/bench.py draw``: time to snapshot and select at 10^5 and 10^6 merchants.

For each size, a scratch SQLite database gets that many verified, rated merchants
(loaded directly, not timed). Then the draw's own code is timed:

- snapshot: :func:`backend.inspections.draws.snapshot.build_snapshot` (the eligibility query,
  tier check, entry validation and sort) plus the snapshot Merkle root;
- select: :func:`backend.inspections.selection.select_merchants` at the default
  policy's yearly rates;
- assign: inspector assignment for the selected merchants (O(checks x inspectors),
  reported separately: it depends on the directory, not on the snapshot size).

Baseline, same run: one SHA-256 of 50 bytes per merchant (the least any selection
must do). Ratios to it, and between sizes, are what to compare on a shared machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from backend.credit import service as credit
from backend.db import Database
from backend.inspections import selection
from backend.inspections.draws import base as draw_base
from backend.inspections.draws import snapshot as draw_snapshot
from backend.merchants.reference import SECTORS
from backend.uscc import ALPHABET, compute_check_chars

TIER_MIX = (("A", 30), ("B", 50), ("C", 15), ("D", 5))  # percent of merchants per tier
REGIONS = ("511902", "511903", "511921", "511922", "511923")


def _uscc(n: int) -> str:
    digits = []
    for _ in range(6):
        n, r = divmod(n, len(ALPHABET))
        digits.append(ALPHABET[r])
    prefix = "91511902MA" + "".join(reversed(digits))
    return prefix + compute_check_chars(prefix)


def _load(db: Database, n: int) -> None:
    now = datetime.now(UTC)
    today = now.date()
    sectors = sorted(SECTORS)
    tiers = [t for t, pct in TIER_MIX for _ in range(pct)]
    with db.session() as s:
        versions = credit.ensure_policy(s, now=now)
        version = credit.in_force(versions, today).version
        s.commit()
    with db.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO account (id, username, role, password_hash, created_at, disabled) "
            "VALUES (1, 'bench', 'regulator', 'x', ?, 0)",
            (now,),
        )
        for start in range(0, n, 50_000):
            rows = range(start, min(n, start + 50_000))
            merchants = [
                (_uscc(i), "商户", sectors[i % len(sectors)], REGIONS[i % len(REGIONS)], "地址",
                 "联系人", "13800000000", "00" * 16, now, f"{i:064x}", i)
                for i in rows
            ]
            conn.exec_driver_sql(
                "INSERT INTO merchant (uscc, name, sector, region_code, address, contact_person, "
                "contact_phone, contact_salt, registered_at, record_id, leaf_index) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                merchants,
            )
            conn.exec_driver_sql(
                "INSERT INTO merchant_verification (uscc, verified_on, at, account_id, record_id, "
                "leaf_index) VALUES (?, ?, ?, 1, ?, ?)",
                [(m[0], today, now, f"{m[10] + n:064x}", m[10] + n) for m in merchants],
            )
            conn.exec_driver_sql(
                "INSERT INTO merchant_rating (uscc, tier, score, score_tier, policy_version, "
                "as_of, computed_at, next_change_on, on_abnormal_list, on_serious_list, "
                "due_for_serious_list, due_for_serious_list_removal, factors) "
                "VALUES (?, ?, 80, ?, ?, ?, ?, NULL, 0, 0, 0, 0, '[]')",
                [
                    (m[0], tiers[m[10] % 100], tiers[m[10] % 100], version, today, now)
                    for m in merchants
                ],
            )


def _baseline(n: int) -> float:
    randomness = os.urandom(32)
    keys = [_uscc(i).encode() for i in range(min(n, 200_000))]
    sha = hashlib.sha256
    t0 = time.perf_counter()
    for k in keys:
        sha(randomness + k).digest()
    return (time.perf_counter() - t0) * n / len(keys)


def bench_draw(args: argparse.Namespace) -> None:
    sizes = [int(x) for x in args.sizes.split(",")]
    print(
        f"{'merchants':>10} {'load s':>7} {'snapshot s':>11} {'select s':>9} {'total s':>8} "
        f"{'baseline s':>11} {'total/base':>11} {'vs first':>9} {'checks':>7} "
        f"{'assign s':>9}"
    )
    first = None
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
            db.migrate()
            t0 = time.perf_counter()
            _load(db, n)
            load_s = time.perf_counter() - t0
            today = datetime.now(UTC).date()
            snaps, sels = [], []
            entries: list[selection.SnapshotEntry] = []
            chosen: dict[str, list[str]] = {}
            randomness = os.urandom(32)
            with db.read() as s:
                versions = credit.policy_versions(s)
                rates = {
                    t: credit.in_force(versions, today).policy.spot_check_rate_for(t)
                    for t in selection.TIERS
                }
                for _ in range(args.repeat):
                    entries = []
                    # As in the service: the collector is paused while a draw is built.
                    with draw_base.gc_paused():
                        t0 = time.perf_counter()
                        entries = draw_snapshot.build_snapshot(
                            s, regions=None, sectors=sorted(SECTORS), today=today,
                            versions=versions,
                        )
                        selection.snapshot_root(entries)
                        snaps.append(time.perf_counter() - t0)
                        t0 = time.perf_counter()
                        chosen = selection.select_merchants(randomness, entries, rates)
                        sels.append(time.perf_counter() - t0)
            assert len(entries) == n
            base = _baseline(n)
            snap, sel = statistics.median(snaps), statistics.median(sels)
            total = snap + sel
            first = first or (total, n)
            selected = [u for t in selection.TIERS for u in chosen[t]]
            inspectors = [
                selection.InspectorEntry(f"insp-{k:04d}", "巴中市市场监督管理局", "511900")
                for k in range(args.inspectors)
            ]
            with draw_base.gc_paused():
                t0 = time.perf_counter()
                selection.assign_inspectors(randomness, selected, inspectors, 2)
                assign_s = time.perf_counter() - t0
            growth = (total / first[0]) / (n / first[1])
            print(
                f"{n:>10} {load_s:>7.1f} {snap:>11.2f} {sel:>9.2f} {total:>8.2f} "
                f"{base:>11.3f} {total / base:>11.1f} {growth:>9.2f} {len(selected):>7} "
                f"{assign_s:>9.2f}"
            )
            db.dispose()
    print(
        "\n'vs first' = (time / first time) / (size / first size): 1.00 is linear growth.\n"
        f"assign: {args.inspectors} inspectors, 2 per check (cost checks x inspectors)."
    )


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("draw", help="time to snapshot and select over 10^5 and 10^6 merchants")
    p.add_argument("--sizes", default="100000,1000000")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per size (median)")
    p.add_argument("--inspectors", type=int, default=100, help="directory size for assign")
    p.set_defaults(func=bench_draw)
