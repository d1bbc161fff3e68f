"""Draw commands: ``draw reveal ID``, ``draw reconcile``, and the ``--draw`` mode of ``verify``.

``verify --draw`` is registered in ``backend/ledger/cli.py``'s ``VERIFY_MODES``
through :func:`verify_arguments`, :func:`verify_selected` and :func:`verify_run`;
like every verify mode it never opens the service's database.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INCOMPLETE = 2
DEFAULT_URL = "http://127.0.0.1:8000"


def _reveal(args: argparse.Namespace) -> int:
    from backend.config import get_settings
    from backend.context import AppContext
    from backend.errors import DomainError
    from backend.inspections.draws.reveal import reveal_draw
    from backend.ledger.records import SYSTEM

    ctx = AppContext.create(get_settings())
    try:
        view = reveal_draw(ctx, principal=None, ref=args.draw, actor=SYSTEM)
    except DomainError as exc:
        print(f"{exc.name}: {exc.detail}", file=sys.stderr)
        return EXIT_INCOMPLETE if exc.status_code >= 500 else EXIT_FAILED
    finally:
        ctx.close()
    checks = len(view.assignments)
    print(
        f"draw no. {view.number} ({view.id}) revealed in block {view.chain.reveal_block}: "
        f"status {view.status}, {checks} check(s), plan digest {view.plan_digest}"
        + (f"; {view.failure}" if view.failure else "")
    )
    return EXIT_OK


def _reconcile(args: argparse.Namespace) -> int:
    from backend.config import get_settings
    from backend.context import AppContext
    from backend.inspections.draws.reveal import reconcile

    ctx = AppContext.create(get_settings())
    try:
        report = reconcile(ctx, reveal=args.reveal)
    finally:
        ctx.close()
    print(report.describe())
    return EXIT_INCOMPLETE if report.failed else EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser(
        "draw",
        help="random inspection draws (双随机): reveal, reconcile",
        description="Operate verifiable draws. Create them with POST /api/draws; verify "
        "them with `honest-metering verify --draw ID`.",
    )
    dsub = p.add_subparsers(dest="draw_command", required=True)
    r = dsub.add_parser(
        "reveal",
        help="reveal a draw's seed on the ledger and publish its plan",
        description="Mines up to the target block where the chain allows it (embedded chain, "
        "anvil). Exit codes: 0 revealed, 1 refused (already revealed, expired, not due), "
        "2 ledger unavailable.",
    )
    r.add_argument("draw", metavar="ID", help="the draw's id (64 hex digits) or number")
    r.set_defaults(func=_reveal)
    r = dsub.add_parser(
        "reconcile",
        help="finish commitments that did not reach the ledger (and, with --reveal, reveal "
        "draws whose target block has passed)",
    )
    r.add_argument("--reveal", action="store_true", help="also reveal due draws")
    r.set_defaults(func=_reconcile)


# --- verify --draw ------------------------------------------------------------------------


def verify_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--draw",
        metavar="ID",
        help="re-run this draw (id or number) from its published snapshot and the on-chain "
        "commitment and reveal, and compare with the published plan",
    )
    # Another verify mode (--credit) may have declared --url already.
    with contextlib.suppress(argparse.ArgumentError):
        p.add_argument(
            "--url",
            metavar="URL",
            default=DEFAULT_URL,
            help="the service's base URL (default %(default)s)",
        )


def verify_selected(args: argparse.Namespace) -> bool:
    return getattr(args, "draw", None) is not None


def verify_run(args: argparse.Namespace) -> int:
    from backend.ledger.trustroot_load import TrustRootError, load_trust_root
    from backend.verification.draw import verify_draw

    try:
        root = load_trust_root(args.trust_root) if args.trust_root else None
    except TrustRootError as exc:
        print(f"NOT VERIFIED (could not complete the check): the trust root: {exc}",
              file=sys.stderr)
        return EXIT_INCOMPLETE
    verdict = verify_draw(
        args.draw, base_url=getattr(args, "url", None) or DEFAULT_URL, ledger_url=args.ledger,
        trust_root=root,
    )
    if args.json:
        print(json.dumps(verdict.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(verdict.render())
    sys.stdout.flush()
    if verdict.ok:
        return EXIT_OK
    return EXIT_INCOMPLETE if verdict.incomplete else EXIT_FAILED
