"""``honest-metering create-user``: bootstrap staff accounts.

The password is read from a prompt (twice) or, for scripts, from standard
input with ``--password-stdin``; never from the command line, where other
users of the machine could read it in the process list.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from backend.config import get_settings
from backend.errors import DomainError


def _create_user(args: argparse.Namespace) -> int:
    from backend.accounts import service
    from backend.context import AppContext

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("password again: ") != password:
            print("error: the passwords differ", file=sys.stderr)
            return 2
    ctx = AppContext.create(get_settings())
    try:
        with ctx.db.session() as s:
            account = service.create_staff_account(
                s,
                settings=ctx.settings,
                username=args.username,
                password=password,
                role=args.role,
            )
    except DomainError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        ctx.close()
    print(f"created {account.role} account {account.username!r} (id {account.id})")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("create-user", help="create a regulator or admin account")
    p.add_argument("--role", required=True, choices=["admin", "regulator"])
    p.add_argument("--username", required=True, help="a-z, 0-9, '.', '_', '-'")
    p.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    p.set_defaults(func=_create_user)
