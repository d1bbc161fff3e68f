"""Credit commands: ``rerate``, and the ``--credit`` mode of ``verify``.

``verify --credit`` is registered in ``backend/ledger/cli.py``'s ``VERIFY_MODES``
through :func:`verify_arguments`, :func:`verify_selected` and :func:`verify_run`;
like every verify mode it never opens the service's database.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INCOMPLETE = 2


def _rerate(args: argparse.Namespace) -> int:
    from backend.config import get_settings
    from backend.context import AppContext
    from backend.credit.service import sweep

    ctx = AppContext.create(get_settings())
    try:
        today = date.fromisoformat(args.as_of) if args.as_of else None
        result = sweep(ctx.db, today=today, full=not args.due)
    finally:
        ctx.close()
    print(result.describe())
    return EXIT_FAILED if result.failed else EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser(
        "rerate",
        help="recompute the credit ratings",
        description="Re-rate every merchant from the log (the default), or with --due only "
        "those whose rating may have changed since it was computed (what the daily sweep of "
        "`serve` does). Exit codes: 0 done, 1 some merchants could not be rated.",
    )
    p.add_argument("--due", action="store_true", help="only merchants due for re-rating")
    p.add_argument(
        "--as-of", default=None, help="YYYY-MM-DD, default today (Asia/Shanghai); for testing"
    )
    p.set_defaults(func=_rerate)


# --- verify --credit ------------------------------------------------------------------------


def verify_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--credit",
        metavar="USCC",
        help="recompute this merchant's displayed credit tier from its public records (each "
        "proof-checked) and the anchored policy, and compare",
    )
    p.add_argument(
        "--url",
        metavar="URL",
        default="http://127.0.0.1:8000",
        help="with --credit: the service's base URL (default %(default)s)",
    )


def verify_selected(args: argparse.Namespace) -> bool:
    return getattr(args, "credit", None) is not None


def verify_run(args: argparse.Namespace) -> int:
    from backend.ledger.trustroot_load import TrustRootError, load_trust_root
    from backend.verification.credit import verify_credit

    try:
        root = load_trust_root(args.trust_root) if args.trust_root else None
    except TrustRootError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INCOMPLETE
    verdict = verify_credit(
        args.credit, base_url=args.url, ledger_url=args.ledger, trust_root=root
    )
    if args.json:
        print(json.dumps(verdict.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(verdict.render())
    sys.stdout.flush()
    if verdict.ok:
        return EXIT_OK
    return EXIT_INCOMPLETE if verdict.incomplete else EXIT_FAILED
