"""The ``honest-metering`` command.

Each domain that has commands keeps them in its own ``cli.py`` with a
``register(subparsers)`` function; they are listed in ``COMMAND_MODULES``.
A command returns its exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from backend.config import get_settings
from backend.privatefiles import private_dir

COMMAND_MODULES: tuple[str, ...] = (
    "backend.ledger.cli",
    "backend.ledger.contract_cli",
    "backend.ledger.tlog_cli",
    "backend.witness.cli",
    "backend.accounts.cli",
    "backend.demo.cli",
    "backend.credit.cli",
    "backend.inspections.cli",
)


def _serve(args: argparse.Namespace) -> int:
    from backend.ops.server import serve

    settings = get_settings()
    return serve(
        settings,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers,
    )


def _migrate(_: argparse.Namespace) -> int:
    from backend.db import Database

    settings = get_settings()
    private_dir(settings.data_dir)
    Database(settings.db_url).migrate()
    print("database schema is up to date")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="honest-metering",
        description="Honest-metering (诚信计量) trust service. Settings come from HM_* "
        "environment variables (see README).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the web service (and the anchoring worker)")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes (more than 1 needs HM_LEDGER_URL; see "
        "docs/operations.md)",
    )
    p.set_defaults(func=_serve)

    p = sub.add_parser("migrate", help="bring the database schema up to date")
    p.set_defaults(func=_migrate)

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    # Every domain's record kinds, for the commands that write or audit. Imported here,
    # not at the top: a `serve --workers N` worker process re-imports this module before
    # it answers its supervisor's first ping, and must start quickly.
    import backend.domains  # noqa: F401

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
