"""``python scripts/bench.py bulk``: the regulator's bulk import at 10,000 rows.

Builds ``--merchants`` merchants through the write path (``bench_credit.build``), then
imports the same ``--rows`` outcomes (spot checks and instruments) two ways, each into a
fresh copy of that database:

- baseline: a CSV with the API's English headers and ISO dates, recorded by
  ``supervision.bulk.record_bulk`` (what the bulk import did before Chinese headers);
- an XLSX workbook as a regulator fills the template: Chinese headers, date cells and
  Excel serial numbers, through the dry run (``preview_bulk``: read, check, nothing
  written) and the real run (``record_bulk``: read, check, append, re-rate).

Rows/s are printed with their ratio to the baseline (this machine is shared: compare
ratios, not raw numbers).
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench_credit import RESULTS, build, uscc_for
from sqlalchemy import func, select

import backend.domains  # noqa: F401  (the write path needs the projections)
from backend.accounts.service import Principal
from backend.db import Database
from backend.supervision import bulk as supervision_bulk
from backend.supervision import bulkformat
from backend.supervision.models import SupervisionRecord
from backend.timeutil import today_shanghai

XLSX = sorted(supervision_bulk.XLSX_TYPES)[0]
AUTHORITY = "巴中市市场监督管理局"
ZH = ["记录类型", "统一社会信用代码", "检查结果", "检查日期", "检查机关",
      "计量器具名称", "出厂编号", "检定证书编号", "检定日期", "有效期至（含当天）"]
EN = ["kind", "uscc", "result", "checked_on", "authority",
      "instrument_type", "serial", "certificate_no", "verified_on", "valid_until"]


def _rows(merchants: int, n: int) -> list[list[Any]]:
    """``n`` outcomes as typed values (dates as dates): 2/3 spot checks, 1/3 instruments."""
    rng = random.Random(29)
    today = today_shanghai()
    out: list[list[Any]] = []
    for i in range(n):
        u = uscc_for(rng.randrange(merchants))
        d = today - timedelta(days=rng.randrange(1, 300))
        if i % 3 == 2:
            out.append(["instrument", u, None, None, None, "电子计价秤", f"SN{i}", f"JD-{i}", d,
                        d + timedelta(days=364)])
        else:
            out.append(["spot_check", u, rng.choice(RESULTS), d, AUTHORITY,
                        None, None, None, None, None])
    return out


def _english_csv(rows: list[list[Any]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(EN)
    for r in rows:
        w.writerow(["" if v is None else v.isoformat() if hasattr(v, "isoformat") else v
                    for v in r])
    return buf.getvalue().encode()


def _chinese_xlsx(rows: list[list[Any]]) -> bytes:
    label = {"spot_check": "监督抽查", "instrument": "强制检定计量器具"}
    out = []
    for i, r in enumerate(rows):
        r = [label[r[0]], *r[1:]]
        if r[9] is not None and i % 2:  # some valid_until cells as Excel serial numbers
            r[9] = (r[9] - date(1899, 12, 30)).days
        out.append(r)
    return bulkformat.rows_as_xlsx(ZH, out)


def _count(db: Database) -> int:
    with db.read() as s:
        return int(s.execute(select(func.count()).select_from(SupervisionRecord)).scalar_one())


def bench_bulk(args: argparse.Namespace) -> None:
    principal = Principal(
        account_id=1, username="bench-regulator", role="regulator", merchant_uscc=None
    )
    with tempfile.TemporaryDirectory() as tmp:
        seed = Path(tmp) / "seed.sqlite3"
        db = Database(f"sqlite:///{seed.resolve()}")
        db.migrate()
        t0 = time.perf_counter()
        build(db, args.merchants, 0)
        db.dispose()
        print(f"{args.merchants:,} merchants built in {time.perf_counter() - t0:.1f} s")
        rows = _rows(args.merchants, args.rows)
        plain, sheet = _english_csv(rows), _chinese_xlsx(rows)
        print(f"{args.rows:,} rows: CSV (English headers, ISO dates) {len(plain) / 1e6:.1f} MB; "
              f"XLSX (Chinese headers, date cells) {len(sheet) / 1e6:.1f} MB")

        def fresh(name: str) -> Database:
            path = Path(tmp) / f"{name}.sqlite3"
            shutil.copy(seed, path)
            return Database(f"sqlite:///{path.resolve()}")

        def run(name: str, media: str, data: bytes, dry: bool) -> float:
            db = fresh(name)
            try:
                with db.session() as s:
                    t0 = time.perf_counter()
                    if dry:
                        out: Any = supervision_bulk.preview_bulk(
                            s, principal=principal, content_type=media, data=data)
                    else:
                        out = supervision_bulk.record_bulk(
                            s, principal=principal, content_type=media, data=data)
                    took = time.perf_counter() - t0
                assert out.count == args.rows, out.count
                assert _count(db) == (0 if dry else args.rows)
                return args.rows / took
            finally:
                db.dispose()

        t0 = time.perf_counter()
        parsed = supervision_bulk.parse_bulk(XLSX, sheet)
        read_s = args.rows / (time.perf_counter() - t0)
        assert len(parsed.rows) == args.rows and not parsed.errors
        base = run("base", "text/csv", plain, dry=False)
        dry = run("dry", XLSX, sheet, dry=True)
        real = run("real", XLSX, sheet, dry=False)
        print(f"\nbulk import of {args.rows:,} rows ({args.merchants:,} merchants)")
        print(f"  baseline: CSV, English headers, record_bulk      {base:9,.0f} rows/s")
        print(f"  XLSX, Chinese headers: read + normalise only     {read_s:9,.0f} rows/s  "
              f"ratio {read_s / base:5.2f}")
        print(f"  XLSX, Chinese headers: dry run (nothing written) {dry:9,.0f} rows/s  "
              f"ratio {dry / base:5.2f}")
        print(f"  XLSX, Chinese headers: real run (all or nothing) {real:9,.0f} rows/s  "
              f"ratio {real / base:5.2f}")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bulk", help="bulk import: 10,000 rows, Chinese XLSX, dry and real run")
    p.add_argument("--rows", type=int, default=10_000)
    p.add_argument("--merchants", type=int, default=2_000)
    p.set_defaults(func=bench_bulk)
