"""Commands of the log's public formats: ``export-tiles``, ``log-key``.

Imports stay inside the functions, so each command loads only what it needs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INCOMPLETE = 2


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


def _export_tiles(args: argparse.Namespace) -> int:
    from backend.config import get_settings
    from backend.db import Database
    from backend.ledger.logkey import LogKeyError, load_log_key
    from backend.ledger.published import export_tiles
    from backend.ledger.tiles import TileError

    settings = get_settings()
    try:
        key = load_log_key(settings)
    except LogKeyError as exc:
        _err(f"cannot export: {exc}")
        return EXIT_INCOMPLETE
    db = Database(settings.db_url)
    try:
        with db.read() as s:
            note, written, skipped = export_tiles(s, Path(args.directory), key)
    except (OSError, TileError) as exc:
        _err(f"export failed: {exc}")
        return EXIT_INCOMPLETE
    finally:
        db.dispose()
    for line in skipped:
        _err(f"left out {line}")
    size = note.text.split("\n")[1]
    print(
        f"exported the signed checkpoint (tree size {size}) and its tiles to "
        f"{args.directory}: {written} file(s) written; serve the directory as <prefix>/ "
        "(full tiles never change: cache them forever)"
    )
    return EXIT_OK


def _log_key(args: argparse.Namespace) -> int:
    from backend.config import get_settings
    from backend.ledger.logkey import LogKeyError, load_log_key, rotate_log_key

    settings = get_settings()
    try:
        if args.action == "show":
            print(load_log_key(settings).verifier.vkey)
            return EXIT_OK
        old, new = rotate_log_key(settings)
    except LogKeyError as exc:
        _err(str(exc))
        return EXIT_INCOMPLETE
    if old is not None:
        print(f"retired log key {old.verifier.vkey}")
    print(f"new log key {new.verifier.vkey} (in {settings.log_key_path}, mode 0600)")
    print(
        "restart the service so it signs with the new key; checkpoints signed before "
        "stay verifiable with the retired key"
    )
    return EXIT_OK


def _show_trust_root(source: str) -> int:
    from backend.ledger.trustroot import TrustRootError, short_fingerprint
    from backend.ledger.trustroot_load import load_trust_root

    try:
        root = load_trust_root(source)
    except TrustRootError as exc:
        _err(str(exc))
        return EXIT_FAILED
    b = root.body
    print(f"fingerprint {root.fingerprint} (short: {short_fingerprint(root.fingerprint)})")
    print(f"version {b.version}, previous {b.previous or '-'}, issued {b.issued_at}")
    print(f"log {b.log.origin}, key {b.log.key}")
    print(
        f"chain {b.ledger.chain_id}, contract {b.ledger.contract_address} (deployed in "
        f"block {b.ledger.deployment_block})"
    )
    print(f"witnesses {len(b.witnesses)}, quorum {b.witness_quorum}")
    for w in b.witnesses:
        print(f"  {w.name} {w.key} {w.url or ''}".rstrip())
    return EXIT_OK


def _trust_root(args: argparse.Namespace) -> int:
    import json

    from backend.config import get_settings
    from backend.context import AppContext
    from backend.errors import LedgerUnavailable
    from backend.ledger import trustroot_store
    from backend.ledger.logkey import LogKeyError
    from backend.ledger.trustroot import short_fingerprint

    if args.show:
        return _show_trust_root(args.show)
    ctx = AppContext.create(get_settings())
    try:
        root = trustroot_store.current(ctx)
    except LedgerUnavailable as exc:
        _err(f"cannot issue the trust root: {exc.detail}")
        return EXIT_INCOMPLETE
    except LogKeyError as exc:
        _err(f"cannot issue the trust root: {exc}")
        return EXIT_INCOMPLETE
    finally:
        ctx.close()
    if args.fingerprint:
        print(root.fingerprint)
        return EXIT_OK
    print(json.dumps(root.to_json(), indent=2, ensure_ascii=False))
    print(
        f"fingerprint (SHA-256): {root.fingerprint}  short: "
        f"{short_fingerprint(root.fingerprint)}",
        file=sys.stderr,
    )
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser(
        "trust-root",
        help="print the trust root verifiers pin (issuing a new version if the facts changed)",
        description="The JSON served at /.well-known/honest-metering/trust-root.json; its "
        "fingerprint goes to stderr. A changed log key, contract or witness list makes a "
        "new version that names the one before. Exit codes: 0 done, 2 ledger unavailable.",
    )
    p.add_argument("--fingerprint", action="store_true", help="print only the fingerprint")
    p.add_argument(
        "--show",
        metavar="FILE|URL",
        help="check someone's trust root (its signature) and print its fingerprint and "
        "contents; reads nothing of this service",
    )
    p.set_defaults(func=_trust_root)

    p = sub.add_parser(
        "export-tiles",
        help="write the signed checkpoint and the tiles (C2SP tlog-tiles) to a directory",
        description="Any static web server or CDN can then serve the log's reads. Full "
        "tiles already in DIR are kept (they never change). Exit codes: 0 done, 2 failed.",
    )
    p.add_argument("directory", metavar="DIR")
    p.set_defaults(func=_export_tiles)

    p = sub.add_parser(
        "log-key",
        help="the log's checkpoint signing key: show its verifier key, or rotate it",
        description="show: print the verifier key (C2SP vkey). rotate: make a new key "
        "(mode 0600); the old one is kept beside it as <file>.<key id>.retired.",
    )
    p.add_argument("action", choices=["show", "rotate"])
    p.set_defaults(func=_log_key)
