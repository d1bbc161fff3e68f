"""The projection audit at city scale: ``honest-metering audit``'s table part (replay
the log into every projection, compare every table, recompute every rating and the
rating history) against the floor of reading and parsing every record once.

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
from sqlalchemy import insert, select

import backend.domains  # noqa: F401  (projections and hooks)
from backend.accounts.models import Account
from backend.config import Settings
from backend.credit import service as credit
from backend.db import Database
from backend.ledger import log, projection
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


def bench_audit(args: Any) -> None:
    for size in args.sizes.split(","):
        merchants, records = (int(x) for x in size.split(":"))
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(env="test", data_dir=Path(tmp), demo_on_first_start=False)
            db = Database(settings.db_url)
            db.migrate()
            built = build(db, merchants, records)
            print(f"\n{merchants:,} merchants, {records:,} records (built in {built:.0f} s)")
            floor = _floor(db)
            stages: dict[str, float] = {}
            t0 = time.perf_counter()
            with db.read() as s:
                ctx = projection.CheckContext(settings, today_shanghai())
                conn = s.connection()
                t = time.perf_counter()
                replayed = projection.replay(conn, projection.all_projections())
                stages["replay"] = time.perf_counter() - t
                t = time.perf_counter()
                found = projection.differences(conn, projection.all_projections(), replayed)
                stages["compare tables"] = time.perf_counter() - t
                for check in projection.all_checks():
                    t = time.perf_counter()
                    found += check.audit(s, ctx)
                    stages[f"check {check.name}"] = time.perf_counter() - t
            total = time.perf_counter() - t0
            print(f"  floor (read + parse every record once): {floor:.1f} s")
            for name, secs in stages.items():
                print(f"  {name:<28} {secs:7.1f} s")
            print(f"  audit of every table: {total:.1f} s = {total / floor:.1f}x the floor; "
                  f"{len(found)} finding(s)")
            assert not found, found[:5]
            db.dispose()


def add_parser(sub: Any) -> None:
    p = sub.add_parser("audit", help="projection audit time at city scale")
    p.add_argument("--sizes", default="10000:100000,100000:1000000",
                   help="merchants:records[,merchants:records...]")
    p.set_defaults(func=bench_audit)
