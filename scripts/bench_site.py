"""``python scripts/bench.py site``: the public site's server time at city scale.

Builds (or reuses, with ``--data-dir``) a data dir holding ``--merchants``
merchants (default 10^5) made of real log records through the domains' own
code: registrations, verifications for most, pledges for half (the pledge
template's required items), a spot check for a third through the supervision
bulk import (which re-rates them), then a full credit sweep so every merchant
has a rating. Loading is not timed.

Then the app runs under ``uvicorn`` (one worker, a subprocess) and is asked,
one request at a time over one keep-alive connection:

- ``GET /merchants/{uscc}`` for random merchants (the QR code's target): once as a
  first visit (assembled, rendered and kept) and once more (served as kept);
- ``GET /search`` with name fragments, names with characters left out, credit-code
  prefixes and fragments, and filters;
- ``GET /healthz``, a trivial endpoint, as the same-run baseline.

Server time is the app's own ``Server-Timing: app;dur=`` (from the request to
the response head, measured by the site's middleware); client time adds the
loopback and HTTP overhead. Targets: merchant page p95 <= 50 ms, search p95 <=
100 ms. The machine is shared: compare with the baseline, not across runs.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-key-0123456789abcdef0123456789"
NAMES = ("粮油", "超市", "加油站", "眼镜", "农贸市场", "餐馆", "便利店", "充电站", "水果", "肉铺")
PLACES = ("江北", "回风", "兴文", "光雾山", "恩阳", "诺江", "驷马", "云台", "白衣", "小角楼")
MERCHANT_TARGET_MS = 50.0
SEARCH_TARGET_MS = 100.0


def _settings_env(data_dir: Path, port: int, database_url: str | None) -> dict[str, str]:
    return {
        **({"HM_DATABASE_URL": database_url} if database_url else {}),
        "HM_ENV": "test",
        "HM_DATA_DIR": str(data_dir),
        "HM_SECRET_KEY": SECRET,
        "HM_DEMO_ON_FIRST_START": "false",
        "HM_ANCHOR_MAX_PENDING": "1000000",
        "HM_ANCHOR_INTERVAL_S": "1",
        "HM_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        # A fixed log origin: a reused data dir's log key names it, whatever the port.
        "HM_LOG_ORIGIN": "bench-site.invalid/log",
    }


def _uscc(n: int) -> str:
    from backend.uscc import ALPHABET, compute_check_chars

    digits = []
    for _ in range(6):
        n, r = divmod(n, len(ALPHABET))
        digits.append(ALPHABET[r])
    prefix = "92511923MA" + "".join(reversed(digits))
    return prefix + compute_check_chars(prefix)


def _load(data_dir: Path, n: int, database_url: str | None, batch: int = 2000) -> None:
    """Fill a fresh data dir with ``n`` merchants and their records (not timed)."""
    from sqlalchemy import insert

    import backend.domains  # noqa: F401  (the write path needs the projections)
    from backend.accounts import security
    from backend.accounts import service as accounts
    from backend.accounts.models import Account
    from backend.config import Settings
    from backend.context import AppContext
    from backend.credit import service as credit
    from backend.ledger import log
    from backend.ledger.records import Actor, RecordDraft, Ref
    from backend.ledger.write import write
    from backend.merchants.models import Merchant
    from backend.merchants.reference import DIVISIONS, SECTORS
    from backend.merchants.service import registration_body, verification_body
    from backend.pledges import service as pledges
    from backend.pledges.models import PledgeCreate
    from backend.pledges.templates import current_template
    from backend.supervision import bulk as supervision_bulk
    from backend.timeutil import today_shanghai

    settings = Settings(env="test", data_dir=data_dir, secret_key=SECRET,  # type: ignore[arg-type]
                        demo_on_first_start=False, database_url=database_url)
    ctx = AppContext.create(settings)
    rng = random.Random(2035)
    now = datetime.now(UTC)
    today = today_shanghai(now)
    regions = [c for c in DIVISIONS if c != "511900"]
    sectors = sorted(SECTORS)
    t0 = time.perf_counter()
    with ctx.db.session() as s:
        credit.ensure_policy(s, now=now)
        s.commit()
        staff = accounts.create_staff_account(
            s, settings=settings, username="bench.regulator", password="bench password 1",
            role="regulator",
        )
    principal = accounts.Principal(account_id=staff.id, username=staff.username,
                                   role="regulator", merchant_uscc=None)
    actor = Actor("regulator", str(principal.account_id))
    checked: list[str] = []
    merchant_hash = security.hash_password("bench merchant password 1", env=settings.env)
    next_account = int(staff.id) + 1
    for start in range(0, n, batch):
        # Records through the one write path (in bulk, re-rated once by the sweep
        # below), so every table is what a rebuild from the log gives.
        rows = []
        for i in range(start, min(n, start + batch)):
            sector = sectors[i % len(sectors)]
            region = regions[i % len(regions)]
            rows.append(Merchant(
                uscc=_uscc(i),
                name=f"巴中市{rng.choice(PLACES)}{rng.choice(NAMES)}{i}号店",
                sector=sector,
                region_code=region,
                address=f"{DIVISIONS[region]}{rng.choice(PLACES)}路{i % 300 + 1}号",
                contact_person="联系人",
                contact_phone="13800000000",
                contact_salt=uuid.uuid4().hex,
                registered_at=now,
                record_id="",
                leaf_index=-1,
            ))
        regs = [log.seal(RecordDraft("merchant.registered", m.uscc, actor, registration_body(m)),
                         at=now) for m in rows]
        private = {r.record_id: {"contact_person": m.contact_person,
                                 "contact_phone": m.contact_phone,
                                 "contact_salt": m.contact_salt}
                   for m, r in zip(rows, regs, strict=True)}
        verified = [(m, r) for m, r in zip(rows, regs, strict=True) if rng.random() < 0.7]
        vers = [log.seal(RecordDraft("merchant.verified", m.uscc, actor, verification_body(today),
                                     refs=(Ref("verifies", r.record_id),)), at=now)
                for m, r in verified]
        pledging = [m for m in rows if rng.random() < 0.5]
        # A pledge is its merchant's act: the pledging merchants get their accounts (a
        # private table, no record), all with one password hash.
        logins = [{"id": next_account + k, "username": m.uscc, "role": "merchant",
                   "merchant_uscc": m.uscc, "password_hash": merchant_hash, "created_at": now}
                  for k, m in enumerate(pledging)]
        next_account += len(logins)
        made = [
            log.seal(RecordDraft(
                "pledge.made", m.uscc, Actor("merchant", str(login["id"])),
                pledges.pledge_made_body(
                    pledge_id=uuid.uuid4().hex,
                    prepared=pledges.prepare(
                        merchant=m,
                        draft=PledgeCreate(
                            template_version=current_template(m.sector).version,
                            items=list(current_template(m.sector).required_codes),
                        ),
                        today=today,
                    ),
                    signer=None,
                    signature=None,
                ),
            ), at=now)
            for m, login in zip(pledging, logins, strict=True)
        ]
        with ctx.db.session() as s:
            write(s, [*regs, *vers], now=now, private=private, hooks=False)
            if logins:
                s.execute(insert(Account), logins)
            write(s, made, now=now, hooks=False)
            s.commit()
        checked += [m.uscc for m in rows if rng.random() < 0.33]
        print(f"  loaded {min(n, start + batch):>7} merchants "
              f"({time.perf_counter() - t0:5.0f} s)", flush=True)
    results = ("未发现问题", "未发现问题", "未发现问题", "发现问题已责令改正")
    for start in range(0, len(checked), 10_000):
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["kind", "uscc", "result", "checked_on", "authority"])
        for u in checked[start:start + 10_000]:
            w.writerow(["spot_check", u, rng.choice(results), today.isoformat(),
                        "巴中市市场监督管理局"])
        with ctx.db.session() as s:
            supervision_bulk.record_bulk(s, principal=principal, content_type="text/csv",
                                    data=buf.getvalue().encode())
        print(f"  spot checks {min(len(checked), start + 10_000):>7} "
              f"({time.perf_counter() - t0:5.0f} s)", flush=True)
    result = credit.sweep(ctx.db, full=True)
    print(f"  rated {result.merchants} merchants ({time.perf_counter() - t0:5.0f} s)", flush=True)
    if not ctx.db.is_sqlite:
        # Statistics, as autovacuum would gather them (the planner needs them to pick
        # the trigram index).
        with ctx.db.engine.connect() as conn:
            conn.exec_driver_sql("COMMIT")
            conn.exec_driver_sql("ANALYZE")
    ctx.close()
    (data_dir / "bench-merchants").write_text(str(n))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_ms(response: Any) -> float:
    found = re.search(r"app;dur=([0-9.]+)", response.headers.get("server-timing", ""))
    if not found:
        raise RuntimeError(f"no Server-Timing header on {response.request.url}")
    return float(found.group(1))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _measure(client: Any, paths: list[str]) -> tuple[list[float], list[float]]:
    server, total = [], []
    for path in paths:
        t0 = time.perf_counter()
        r = client.get(path, headers={"Accept": "text/html"})
        total.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"GET {path} answered {r.status_code}: {r.text[:300]}")
        server.append(_server_ms(r))
    return server, total


def bench_site(args: argparse.Namespace) -> None:
    import httpx

    own_dir = args.data_dir is None
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="bench-site-")).resolve()
    marker = data_dir / "bench-merchants"
    if marker.exists() and int(marker.read_text()) == args.merchants:
        print(f"reusing {data_dir} ({args.merchants} merchants)")
    else:
        if data_dir.exists() and any(data_dir.iterdir()):
            raise SystemExit(f"{data_dir} is not empty and holds no site benchmark data")
        print(f"loading {args.merchants} merchants into {data_dir} (not timed)")
        _load(data_dir, args.merchants, args.database_url)

    port = _free_port()
    env = {**os.environ, **_settings_env(data_dir, port, args.database_url)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "backend.app:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--log-level", "warning",
         "--no-access-log"],
        cwd=ROOT, env=env, start_new_session=True,
    )
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        deadline = time.monotonic() + 120
        while True:
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.2)
        # Let start-up work (the rating sweep, anchoring the loaded log) finish first.
        while True:
            ready = client.get("/readyz").json()
            if (ready.get("anchoring") or {}).get("pending_leaves", 0) == 0:
                break
            if time.monotonic() > deadline + 600:
                break
            time.sleep(1)
        rng = random.Random(args.seed)
        n = args.merchants
        merchants = [f"/merchants/{_uscc(rng.randrange(n))}" for _ in range(args.requests)]
        kinds = {
            "name fragment": lambda: f"?q={rng.choice(NAMES)}",
            "longer name fragment": lambda: f"?q={rng.choice(PLACES)}{rng.choice(NAMES)}",
            "credit-code prefix": lambda: (
                f"?q={_uscc(rng.randrange(n))[: rng.choice((8, 12, 14))]}"
            ),
            "credit-code fragment": lambda: f"?q={_uscc(rng.randrange(n))[8:16]}",
            "characters left out": lambda: (
                f"?q=巴中{rng.choice(PLACES)}{rng.choice(NAMES)}{rng.randrange(n)}"
            ),
            "name + region + tier": lambda: (
                f"?q={rng.choice(NAMES)}&region=511923&tier={rng.choice('ABCD')}"
            ),
            "name + sector, page 1-5": lambda: (
                f"?q={rng.choice(NAMES)}&sector=retail&page={rng.randrange(1, 6)}"
            ),
        }
        labels = list(kinds)
        queries = []
        query_kinds = []
        for i in range(args.requests):
            label = labels[i % len(labels)]
            queries.append("/search" + kinds[label]())
            query_kinds.append(label)
        baseline = ["/healthz"] * args.requests
        for paths in (merchants[:30], queries[:30], baseline[:30]):  # warm-up
            _measure(client, paths)
        search_server, search_total = _measure(client, queries)
        rows = [
            ("baseline GET /healthz", *_measure(client, baseline), None),
            ("merchant page (first visit)", *_measure(client, merchants), MERCHANT_TARGET_MS),
            ("merchant page (kept)", *_measure(client, merchants), MERCHANT_TARGET_MS),
            ("search (all kinds)", search_server, search_total, SEARCH_TARGET_MS),
        ]
        for label in labels:
            picked = [i for i, k in enumerate(query_kinds) if k == label]
            rows.append((f"  {label}", [search_server[i] for i in picked],
                         [search_total[i] for i in picked], None))
        rows.append(("home page (no target)",
                     *_measure(client, ["/"] * max(args.requests // 5, 20)), None))
        base_p50 = statistics.median(rows[0][1])
        where = "PostgreSQL" if args.database_url else "SQLite"
        print(f"\n{n} merchants on {where}, {args.requests} requests each, one at a time "
              "(server = Server-Timing, client = round trip)")
        print(f"{'':28} {'server p50':>10} {'p95':>7} {'p99':>7} {'client p50':>10} "
              f"{'p95':>7}  {'p50/base':>8}  target")
        for name, server, total, target in rows:
            p95 = _pct(server, 0.95)
            verdict = "" if target is None else (
                f"p95 <= {target:.0f} ms: {'met' if p95 <= target else 'MISSED'}")
            print(f"{name:28} {statistics.median(server):8.2f}ms {p95:5.2f}ms "
                  f"{_pct(server, 0.99):5.2f}ms {statistics.median(total):8.2f}ms "
                  f"{_pct(total, 0.95):5.2f}ms  {statistics.median(server) / base_p50:8.0f}x  "
                  f"{verdict}")
        client.close()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if own_dir and not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
        elif own_dir:
            print(f"data kept in {data_dir} (reuse with --data-dir)")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("site", help="merchant page and search server time at 10^5 merchants")
    p.add_argument("--merchants", type=int, default=100_000)
    p.add_argument("--requests", type=int, default=500,
                   help="timed requests of each of: merchant page, search, baseline")
    p.add_argument("--seed", type=int, default=9162)
    p.add_argument("--data-dir", default=None,
                   help="build the data here, or reuse it if it holds the same number of "
                        "merchants (default: a temporary dir)")
    p.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    p.add_argument("--database-url", default=None,
                   help="an empty PostgreSQL database to load (with --data-dir to reuse it); "
                        "default: SQLite in the data dir")
    p.set_defaults(func=bench_site)
