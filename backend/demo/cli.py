"""``honest-metering demo``: seed made-up Bazhong demo data (never in production)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from backend.config import get_settings


def _demo(args: argparse.Namespace) -> int:
    from backend.context import AppContext
    from backend.demo import seed as demo

    settings = get_settings()
    if settings.env == "production":
        print("error: demo data is made up; refusing with HM_ENV=production", file=sys.stderr)
        return 2
    if args.new_uscc:
        return _new_uscc(settings)
    ctx = AppContext.create(settings)
    try:
        started = time.monotonic()
        summary = demo.seed_demo(
            ctx.db, settings=settings, merchants_n=args.merchants, seed=args.seed
        )
        draw_note = ""
        if summary is not None:
            from backend.credit.service import sweep

            # Rate the seeded merchants now rather than at the next start of the service.
            sweep(ctx.db)
            draw_note = _demo_draw(ctx)
    finally:
        ctx.close()
    if summary is None:
        print("the registry already has merchants; no demo data added")
        return 0
    print(
        f"seeded {summary.merchants} merchants ({summary.verified} verified), "
        f"{summary.pledges} pledges ({summary.withdrawn} withdrawn), "
        f"{summary.awards} demonstration awards: {summary.records} records "
        f"in {time.monotonic() - started:.1f} s"
    )
    print(summary.describe_supervision())
    print(draw_note)
    print(demo.credentials_text())
    return 0


def _new_uscc(settings: Any) -> int:
    """Print a valid credit code no merchant in this registry holds (to try registering)."""
    from sqlalchemy import inspect

    from backend.db import Database
    from backend.demo.seed import unused_uscc
    from backend.merchants.models import Merchant

    db = Database(settings.db_url)
    try:
        with db.read() as s:
            # A registry not yet migrated holds no merchants: any code is unused.
            known = inspect(db.read_engine).has_table(Merchant.__tablename__)
            print(unused_uscc(s if known else None))
    finally:
        db.dispose()
    return 0


def _demo_draw(ctx: Any) -> str:
    """The demo's random inspection draw, which needs the ledger (not part of seeding)."""
    from backend.demo.inspections import run_demo_draw
    from backend.errors import DomainError

    try:
        row = run_demo_draw(ctx)
    except Exception as exc:  # the seeded data stands; the draw can be made later
        why = exc.detail if isinstance(exc, DomainError) else str(exc)
        return f"no random inspection draw ({type(exc).__name__}: {why})"
    if row is None:
        return "no random inspection draw (one exists already)"
    if row.status != "revealed":
        return f"random inspection draw no. {row.number} is {row.status}"
    return f"random inspection draw no. {row.number} revealed; the first results are recorded"


def register(sub: Any) -> None:
    from backend.demo.data import DEFAULT_SEED

    p = sub.add_parser(
        "demo", help="seed made-up Bazhong demo data into an empty registry (not in production)"
    )
    p.add_argument("--merchants", type=int, default=2000, help="how many merchants (default 2000)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (reproducible)")
    p.add_argument(
        "--new-uscc",
        action="store_true",
        help="only print a valid credit code that no merchant here holds (to try registering)",
    )
    p.set_defaults(func=_demo)
