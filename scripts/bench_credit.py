"""``python scripts/bench.py credit``: rating at city scale.

Builds (or reuses, with ``--db``) a log of ``--merchants`` merchants and
``--records`` rating-relevant records appended through the write path (in bulk, not
re-rated), then
measures, each next to a baseline from the same run:

- a full re-rating (``credit.service.sweep(full=True)``) against the bare cost
  of streaming and parsing the same records;
- one incremental update (``rerate_merchant`` after one new record, in its
  transaction) against appending and projecting that record alone;
- bulk ingest of a CSV through ``supervision.bulk.record_bulk`` (validate,
  append, re-rate) in rows/s against appending and projecting the same records
  (``write(..., hooks=False)``).
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text

import backend.domains  # noqa: F401  (the write path needs the projections)
from backend.accounts.models import Account
from backend.accounts.service import Principal
from backend.credit import service as credit
from backend.db import Database
from backend.ledger import log
from backend.ledger.records import Actor, RecordDraft
from backend.ledger.write import write
from backend.merchants.models import Merchant
from backend.merchants.reference import DIVISIONS, SECTORS
from backend.merchants.service import registration_body
from backend.supervision import bulk as supervision_bulk
from backend.timeutil import today_shanghai
from backend.uscc import ALPHABET, compute_check_chars

REGULATOR = Actor("regulator", "1")
RESULTS = (
    "未发现问题",
    "未发现问题",
    "未发现问题",
    "发现问题已责令改正",
    "未发现开展本次抽查涉及的经营活动",
)


def uscc_for(n: int) -> str:
    digits = []
    for _ in range(6):
        n, r = divmod(n, len(ALPHABET))
        digits.append(ALPHABET[r])
    prefix = "91511902MA" + "".join(reversed(digits))
    return prefix + compute_check_chars(prefix)


def _record(rng: random.Random, uscc: str, today: date, i: int) -> RecordDraft:
    d = today - timedelta(days=rng.randrange(1, 1500))
    kind = rng.random()
    if kind < 0.45:
        body: dict[str, Any] = {
            "result": rng.choice(RESULTS), "checked_on": d.isoformat(),
            "authority": "巴中市市场监督管理局", "draw_id": None, "evidence_sha256": None,
        }
        return RecordDraft("supervision.spot_check", uscc, REGULATOR, body)
    if kind < 0.75:
        body = {
            "instrument_type": "电子计价秤", "serial": f"S{i % 7}", "certificate_no": f"JD-{i}",
            "verified_on": d.isoformat(), "valid_until": (d + timedelta(days=365)).isoformat(),
        }
        return RecordDraft("supervision.instrument", uscc, REGULATOR, body)
    if kind < 0.85:
        body = {
            "decision_no": f"巴市监罚〔2026〕{i}号", "decided_on": d.isoformat(),
            "authority": "巴中市市场监督管理局", "amount_fen": rng.randrange(100, 10_000_000),
            "lower_amount": rng.random() < 0.5, "circulated_criticism": False,
            "special_sector": False, "performed": rng.random() < 0.7, "evidence_sha256": "ab" * 32,
        }
        return RecordDraft("supervision.penalty", uscc, REGULATOR, body)
    if kind < 0.95:
        body = {"complaint_id": f"C-{i}", "verified_on": d.isoformat(), "summary": "短斤缺两"}
        return RecordDraft("supervision.complaint_verified", uscc, REGULATOR, body)
    body = {
        "pledge_id": f"P-{i}", "template": {"sector": "retail", "version": 1, "digest": "11" * 32},
        "items": ["G1", "G2", "G3", "G4", "G5", "G6"], "extra_commitments": None,
        "valid_from": d.isoformat(), "valid_until": (d + timedelta(days=365)).isoformat(),
        "signature": None,
    }
    return RecordDraft("pledge.made", uscc, Actor("merchant", "2"), body)


def build(db: Database, merchants: int, records: int, *, seed: int = 7) -> None:
    """Merchants and records through the one write path, in bulk (no re-rating: the
    benchmark starts from no ratings), so the tables are what a rebuild from the log
    gives."""
    rng = random.Random(seed)
    today = today_shanghai()
    now = datetime.now(UTC)
    regions = list(DIVISIONS)
    sectors = list(SECTORS)
    t0 = time.perf_counter()
    with db.session() as s:
        credit.ensure_policy(s)
        s.execute(insert(Account), [{
            "id": 1, "username": "bench-regulator", "role": "regulator", "merchant_uscc": None,
            "password_hash": "x", "created_at": now, "disabled": False,
        }])
        for start in range(0, merchants, 10_000):
            shops = [Merchant(
                uscc=uscc_for(n), name=f"商户{n}", sector=sectors[n % len(sectors)],
                region_code=regions[n % len(regions)], sub_area=None, address="巴中市",
                contact_person="x", contact_phone="13800000000", contact_salt="00" * 16,
                registered_at=now, record_id="", leaf_index=-1,
            ) for n in range(start, min(merchants, start + 10_000))]
            sealed = [log.seal(RecordDraft("merchant.registered", m.uscc, REGULATOR,
                                           registration_body(m)), at=now) for m in shops]
            contact = {"contact_person": "x", "contact_phone": "13800000000",
                       "contact_salt": "00" * 16}
            write(s, sealed, now=now, private={r.record_id: contact for r in sealed},
                  hooks=False)
        # The pledges below are made by one merchant account (the records only need one).
        s.execute(insert(Account), [{
            "id": 2, "username": uscc_for(0), "role": "merchant", "merchant_uscc": uscc_for(0),
            "password_hash": "x", "created_at": now, "disabled": False,
        }])
        s.commit()
    done = 0
    batch = 10_000
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
    print(f"  built {merchants:,} merchants and {records:,} records in "
          f"{time.perf_counter() - t0:.0f} s")


def _baseline_stream(db: Database) -> tuple[float, int]:
    """Read and parse every rated record, grouped by merchant, exactly as the re-rating
    does, and nothing else: the floor of a full re-rating."""
    t0 = time.perf_counter()
    n = 0
    with db.read() as s:
        for _subject, recs in credit._stream_all(s, log.tree_size(s)):
            n += len(recs)
    return time.perf_counter() - t0, n


def _incremental(db: Database, merchants: int, repeat: int) -> tuple[list[float], list[float]]:
    rng = random.Random(11)
    today = today_shanghai()
    append_only: list[float] = []
    rerate: list[float] = []
    for i in range(repeat):
        uscc = uscc_for(rng.randrange(merchants))
        draft = _record(rng, uscc, today, 10_000_000 + i)
        with db.session() as s:
            t0 = time.perf_counter()
            write(s, draft, now=datetime.now(UTC), hooks=False)
            t1 = time.perf_counter()
            credit.rerate_merchant(s, uscc)
            t2 = time.perf_counter()
            s.commit()
        append_only.append(t1 - t0)
        rerate.append(t2 - t1)
    return append_only, rerate


def _bulk_csv(merchants: int, rows: int) -> bytes:
    rng = random.Random(13)
    today = today_shanghai()
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["kind", "uscc", "result", "checked_on", "authority"])
    for _ in range(rows):
        d = today - timedelta(days=rng.randrange(1, 300))
        w.writerow(["spot_check", uscc_for(rng.randrange(merchants)), rng.choice(RESULTS),
                    d.isoformat(), "巴中市市场监督管理局"])
    return buf.getvalue().encode()


def bench_credit(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.db) if args.db else Path(tmp) / "bench-credit.sqlite3"
        db = Database(f"sqlite:///{path.resolve()}")
        db.migrate()
        with db.read() as s:
            have = int(s.execute(select(func.count()).select_from(Merchant)).scalar_one())
        if have == 0:
            print(f"building {args.merchants:,} merchants with {args.records:,} records ...")
            build(db, args.merchants, args.records)
        with db.read() as s:
            merchants = int(s.execute(select(func.count()).select_from(Merchant)).scalar_one())
            size = log.tree_size(s)
        print(f"database: {merchants:,} merchants, {size:,} records in the log ({path})")

        base_s, n = _baseline_stream(db)
        print(f"\nfull re-rating ({merchants:,} merchants, {n:,} rated records)")
        print(f"  baseline: read + parse + group every record       {base_s:7.2f} s")
        with db.session() as s:  # start cold: no cached ratings
            s.execute(text("DELETE FROM merchant_rating"))
            s.commit()
        result = credit.sweep(db, full=True)
        store = result.seconds - result.compute_seconds
        print(f"  sweep(full=True), first (all rows new)          {result.seconds:7.2f} s  "
              f"ratio {result.seconds / base_s:5.2f}  (target <= 30 s; read+rate "
              f"{result.compute_seconds:.1f} s, store {store:.1f} s)")
        again = credit.sweep(db, full=True)
        print(f"  sweep(full=True), again (rows up to date)       {again.seconds:7.2f} s  "
              f"ratio {again.seconds / base_s:5.2f}  (read+rate {again.compute_seconds:.1f} s, "
              f"store {again.seconds - again.compute_seconds:.1f} s)")
        if result.failed:
            print(f"  ! {len(result.failed)} merchants could not be rated")

        append_only, rerate = _incremental(db, merchants, args.repeat)
        a, r = statistics.median(append_only), statistics.median(rerate)
        p95 = sorted(rerate)[int(0.95 * len(rerate)) - 1]
        print(f"\nincremental update after one new record ({args.repeat} merchants)")
        print(f"  baseline: append + project the record          {a * 1e3:7.2f} ms (median)")
        print(f"  rerate_merchant in the same transaction         {r * 1e3:7.2f} ms (median), "
              f"p95 {p95 * 1e3:.2f} ms  ratio {r / a:5.2f}  (target <= 10 ms)")

        data = _bulk_csv(merchants, args.bulk_rows)
        principal = Principal(
            account_id=1, username="bench-regulator", role="regulator", merchant_uscc=None
        )
        rng = random.Random(17)
        drafts = [_record(rng, uscc_for(rng.randrange(merchants)), today_shanghai(), i)
                  for i in range(20_000_000, 20_000_000 + args.bulk_rows)]  # ids of their own
        with db.session() as s:
            t0 = time.perf_counter()
            write(s, drafts, now=datetime.now(UTC), hooks=False)
            s.commit()
            raw = time.perf_counter() - t0
            # Not timed: the baseline's merchants are rated again, so the ratings stay
            # what the log says.
            credit.rerate_merchants(s, {d.subject for d in drafts if d.subject})
            s.commit()
        with db.session() as s:
            t0 = time.perf_counter()
            out = supervision_bulk.record_bulk(s, principal=principal, content_type="text/csv",
                                          data=data)
            bulk = time.perf_counter() - t0
        rows_s, raw_s = out.count / bulk, args.bulk_rows / raw
        print(f"\nbulk ingest of a {args.bulk_rows:,}-row CSV ({len(data) / 1e6:.1f} MB, "
              f"{out.merchants:,} merchants re-rated)")
        print(f"  baseline: append + project as many records      {raw_s:9,.0f} rows/s")
        print(f"  POST .../bulk service (validate, append, rerate) {rows_s:9,.0f} rows/s  "
              f"ratio {rows_s / raw_s:5.2f}  ({bulk:.2f} s for the file)")
        db.dispose()


def add_parser(sub: Any) -> None:
    p = sub.add_parser("credit", help="full re-rating, incremental update, bulk ingest")
    p.add_argument("--merchants", type=int, default=100_000)
    p.add_argument("--records", type=int, default=1_000_000)
    p.add_argument("--bulk-rows", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=200, help="incremental updates timed")
    p.add_argument("--db", default=None,
                   help="SQLite file to build once and reuse (default: a temporary one)")
    p.set_defaults(func=bench_credit)
