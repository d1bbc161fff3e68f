"""``honest-metering audit`` and ``rebuild --from-log --dry-run`` at city scale: the
full audit (every record against the log, then every table against the log: replay
into every projection, compare, recompute every rating and the rating history) and
the dry run, in seconds and records/s, against the floor of reading and parsing every
record once. The chain read (the checkpoints) is left out: it is one RPC scan,
independent of the database.

    python scripts/bench.py audit --sizes 10000:100000,100000:1000000

Each size is ``merchants:records``. The database is built through the one write path
(registrations with their private contact columns, outcomes and pledges projected
in the same transactions), then rated once (``credit.sweep``).
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_credit import _record, uscc_for
from sqlalchemy import func, insert, select

import backend.domains  # noqa: F401  (projections and hooks)
from backend.accounts.models import Account
from backend.config import Settings
from backend.credit import service as credit
from backend.db import Database
from backend.ledger import log, projection
from backend.ledger.audit import run_audit
from backend.ledger.models import LogLeaf
from backend.ledger.records import Actor, RecordDraft
from backend.ledger.write import write
from backend.merchants.records import REGISTERED, contact_digest
from backend.merchants.reference import DIVISIONS, SECTORS
from backend.timeutil import today_shanghai

SALT = "00" * 16


def build(db: Database, merchants: int, records: int, *, seed: int = 7) -> float:
    rng = random.Random(seed)
    today = today_shanghai()
    now = datetime.now(UTC)
    regions, sectors = list(DIVISIONS), list(SECTORS)
    t0 = time.perf_counter()
    with db.session() as s:
        credit.ensure_policy(s, now=now)
        s.execute(insert(Account), [
            {"id": i, "username": f"bench-{i}", "role": r, "merchant_uscc": None,
             "password_hash": "x", "created_at": now, "disabled": False}
            for i, r in ((1, "regulator"), (2, "admin"))
        ])
        s.commit()
    digest = contact_digest(SALT, person="x", phone="13800000000")
    private = {"contact_person": "x", "contact_phone": "13800000000", "contact_salt": SALT}
    batch = 5000
    for start in range(0, merchants, batch):
        sealed = [
            log.seal(RecordDraft(REGISTERED, uscc_for(n), Actor("public", None), {
                "uscc": uscc_for(n), "name": f"商户{n}", "sector": sectors[n % len(sectors)],
                "region_code": regions[n % len(regions)], "sub_area": None,
                "address": "巴中市", "contact_digest": digest,
            }), at=now)
            for n in range(start, min(merchants, start + batch))
        ]
        with db.session() as s:
            write(s, sealed, now=now, hooks=False,
                  private={r.record_id: private for r in sealed})
            s.commit()
    done = 0
    while done < records:
        k = min(batch, records - done)
        drafts = [
            _record(rng, uscc_for(rng.randrange(merchants)), today, done + j) for j in range(k)
        ]
        with db.session() as s:
            write(s, drafts, now=now, hooks=False)
            s.commit()
        done += k
        print(f"  built {done:,} / {records:,} records ({time.perf_counter() - t0:.0f} s)",
              end="\r", flush=True)
    credit.sweep(db, full=True, now=now)
    return time.perf_counter() - t0


def _floor(db: Database) -> float:
    """Read and parse every record once, in log order: what any replay must at least do."""
    t0 = time.perf_counter()
    leaf = LogLeaf.__table__  # type: ignore[attr-defined]
    with db.read() as s:
        pos = 0
        while True:
            rows = s.connection().execute(
                select(leaf.c.leaf_index, leaf.c.canonical)
                .where(leaf.c.leaf_index >= pos).order_by(leaf.c.leaf_index).limit(5000)
            ).all()
            for _, c in rows:
                json.loads(bytes(c))
            if len(rows) < 5000:
                break
            pos = int(rows[-1][0]) + 1
    return time.perf_counter() - t0


def _full_audit(db: Database, settings: Settings) -> tuple[dict[str, float], int]:
    """What ``honest-metering audit`` does once it has the checkpoints: every record
    against the log (``run_audit``; no checkpoints here, so the chain read, one
    ``eth_getLogs`` scan, is left out), then every table against the log (the steps
    of ``projection.audit_all``, timed one by one). Returns (seconds by stage,
    findings)."""
    stages: dict[str, float] = {}
    with db.read() as s:
        t = time.perf_counter()
        report = run_audit(s, [])
        stages["log against chain"] = time.perf_counter() - t
        ctx = projection.CheckContext(settings, today_shanghai())
        conn = s.connection()
        t = time.perf_counter()
        replayed = projection.replay(conn, projection.all_projections())
        stages["replay into projections"] = time.perf_counter() - t
        t = time.perf_counter()
        found = projection.differences(conn, projection.all_projections(), replayed)
        stages["compare tables"] = time.perf_counter() - t
        for check in projection.all_checks():
            t = time.perf_counter()
            found += check.audit(s, ctx)
            stages[f"check {check.name}"] = time.perf_counter() - t
    return stages, len(report.findings) + len(found)


def _rebuild_dry_run(db: Database, settings: Settings) -> tuple[float, int]:
    """``honest-metering rebuild --from-log --dry-run``: the same replay and compare, in a
    write session that is rolled back."""
    with db.session() as s:
        t = time.perf_counter()
        found = projection.rebuild_all(
            s, projection.CheckContext(settings, today_shanghai()), dry_run=True
        )
        secs = time.perf_counter() - t
        s.rollback()
    return secs, len(found)


def bench_audit(args: Any) -> None:
    rows: list[tuple[int, int, float, float, float, float]] = []
    for size in args.sizes.split(","):
        merchants, records = (int(x) for x in size.split(":"))
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(env="test", data_dir=Path(tmp), demo_on_first_start=False)
            db = Database(args.database_url or settings.db_url)
            db.migrate()
            built = build(db, merchants, records)
            with db.read() as s:
                total = int(s.execute(select(func.count()).select_from(LogLeaf)).scalar_one())
            print(f"\n{merchants:,} merchants, {records:,} outcome records "
                  f"({total:,} records in the log; built in {built:.0f} s)")
            floor = _floor(db)
            stages, findings = _full_audit(db, settings)
            audit = sum(stages.values())
            dry, dry_found = _rebuild_dry_run(db, settings)
            print(f"  floor (read + parse every record once): {floor:7.1f} s")
            for name, secs in stages.items():
                print(f"  audit: {name:<32} {secs:7.1f} s")
            print(f"  audit in full: {audit:.1f} s = {total / audit:,.0f} records/s "
                  f"({audit / floor:.1f}x the floor); {findings} finding(s)")
            print(f"  rebuild --from-log --dry-run: {dry:.1f} s = {total / dry:,.0f} "
                  f"records/s; {dry_found} difference(s)")
            assert not findings and not dry_found
            rows.append((merchants, total, floor, audit, dry, built))
            db.dispose()
    print("\nmerchants  records  floor s  audit s  audit rec/s  dry-run s  dry-run rec/s")
    for merchants, total, floor, audit, dry, _ in rows:
        print(f"{merchants:>9,} {total:>8,} {floor:>8.1f} {audit:>8.1f} {total / audit:>12,.0f} "
              f"{dry:>10.1f} {total / dry:>14,.0f}")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("audit", help="projection audit time at city scale")
    p.add_argument("--sizes", default="10000:100000,100000:1000000",
                   help="merchants:records[,merchants:records...]")
    p.add_argument("--database-url", help="an empty database (e.g. PostgreSQL) instead of "
                   "a temporary SQLite file; used for every size in turn, so give one size")
    p.set_defaults(func=bench_audit)
