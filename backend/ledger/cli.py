"""Commands of the log: ``anchor``, ``verify``, ``audit``.

``verify`` has modes; a proof bundle is the first. Later modes (``--credit USCC``,
``--draw ID``) are added by appending a :class:`VerifyMode` to ``VERIFY_MODES``:
each adds its own arguments and says whether the parsed arguments select it.
``verify`` must never open the service's database; imports stay inside the
functions so the command loads only what its mode needs.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Exit codes shared by the commands here.
EXIT_OK = 0
EXIT_FAILED = 1  # verification rejected the bundle / the audit found tampering
EXIT_INCOMPLETE = 2  # could not finish: unreadable input, ledger unreachable
EXIT_HALTED = 3  # anchoring refused: the database and the chain disagree
EXIT_BUSY = 4  # another process is the anchorer


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


# --- anchor ----------------------------------------------------------------------------


def _anchor(args: argparse.Namespace) -> int:
    from backend.config import get_settings
    from backend.context import AppContext
    from backend.errors import LedgerUnavailable
    from backend.ledger.anchoring import (
        Anchorer,
        AnchoringHalted,
        AnchorWorker,
        anchor_lock_for,
    )
    from backend.ledger.contract import LedgerRevert

    ctx = AppContext.create(get_settings())
    lock = anchor_lock_for(ctx)
    try:
        if not args.once:
            worker = AnchorWorker(ctx, lock=lock)

            def _stop(*_: Any) -> None:
                worker.request_stop()

            signal.signal(signal.SIGTERM, _stop)
            signal.signal(signal.SIGINT, _stop)
            print("anchoring worker running; Ctrl-C to stop", file=sys.stderr)
            worker.run()
            return EXIT_OK
        if not lock.acquire():
            _err(
                "another process is anchoring right now (it holds the anchoring lock); "
                "nothing to do here"
            )
            return EXIT_BUSY
        try:
            outcome = Anchorer(ctx).run_once(force=True)
        except LedgerUnavailable as exc:
            _err(f"ledger unavailable, nothing anchored (records stay pending): {exc.detail}")
            return EXIT_INCOMPLETE
        except AnchoringHalted as exc:
            _err(f"ANCHORING REFUSED: {exc}")
            return EXIT_HALTED
        except LedgerRevert as exc:
            hint = (
                f" (the signing account {ctx.require_ledger().key.address} is not an anchorer: "
                "have the contract admin run `honest-metering contract add-anchorer`)"
                if exc.name == "MeteringLedgerUnauthorizedAnchorer"
                else ""
            )
            _err(f"the contract refused the checkpoint: {exc}{hint}; records stay pending")
            return EXIT_INCOMPLETE
        print(outcome.describe())
        return EXIT_OK
    finally:
        lock.release()
        ctx.close()


# --- verify ----------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyMode:
    """One way of using ``honest-metering verify``."""

    name: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    selected: Callable[[argparse.Namespace], bool]
    run: Callable[[argparse.Namespace], int]


def _bundle_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "bundle",
        nargs="?",
        type=Path,
        help="a proof bundle (JSON from GET /api/records/{id}/proof); '-' reads stdin",
    )


def _verify_bundle(args: argparse.Namespace) -> int:
    from backend.ledger.bundle import BundleFormatError
    from backend.ledger.trustroot import TrustRootError
    from backend.ledger.trustroot_load import load_trust_root
    from backend.verification.bundle import Verdict, load_bundle_file, verify_bundle

    try:
        root = load_trust_root(args.trust_root) if args.trust_root else None
    except TrustRootError as exc:
        _err(f"NOT VERIFIED (could not complete the check): the trust root: {exc}")
        return EXIT_INCOMPLETE
    try:
        data = json.load(sys.stdin) if str(args.bundle) == "-" else load_bundle_file(args.bundle)
    except (BundleFormatError, json.JSONDecodeError) as exc:
        verdict = Verdict(incomplete=True)
        verdict.add("format", "FAIL", str(exc))
    else:
        verdict = verify_bundle(data, trust_root=root, ledger_url=args.ledger)
    if args.json:
        print(json.dumps(verdict.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(verdict.render())
    if verdict.ok:
        return EXIT_OK
    return EXIT_INCOMPLETE if verdict.incomplete else EXIT_FAILED


VERIFY_MODES: list[VerifyMode] = [
    VerifyMode(
        name="bundle",
        add_arguments=_bundle_arguments,
        selected=lambda a: getattr(a, "bundle", None) is not None,
        run=_verify_bundle,
    ),
]


def _checkpoints_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoints",
        nargs="+",
        metavar="FILE",
        help="signed checkpoints (GET /checkpoint) to compare: two of the same size with "
        "different roots, both signed by the pinned log key, prove a split view "
        "(needs --trust-root; exit 1 when they do)",
    )


def _verify_checkpoints(args: argparse.Namespace) -> int:
    from backend.ledger.note import NoteError
    from backend.ledger.trustroot import TrustRootError
    from backend.ledger.trustroot_load import load_trust_root
    from backend.verification.checkpoints import compare

    if not args.trust_root:
        _err("comparing checkpoints needs --trust-root: only the pinned log key makes a "
             "signed checkpoint evidence")
        return EXIT_INCOMPLETE
    try:
        root = load_trust_root(args.trust_root)
        texts = [Path(f).read_text("utf-8") for f in args.checkpoints]
        result = compare(texts, root)
    except (TrustRootError, OSError, UnicodeDecodeError, NoteError) as exc:
        _err(f"cannot compare: {exc}")
        return EXIT_INCOMPLETE
    print("\n".join(result.lines))
    return EXIT_FAILED if result.misbehaviour else EXIT_OK


VERIFY_MODES.append(
    VerifyMode(
        name="checkpoints",
        add_arguments=_checkpoints_arguments,
        selected=lambda a: bool(getattr(a, "checkpoints", None)),
        run=_verify_checkpoints,
    )
)


def _credit_mode(name: str) -> Any:
    # The credit mode lives in backend/credit/cli.py; import it only when used.
    def call(*args: Any) -> Any:
        from backend.credit import cli as credit_cli

        return getattr(credit_cli, name)(*args)

    return call


VERIFY_MODES.append(
    VerifyMode(
        name="credit",
        add_arguments=_credit_mode("verify_arguments"),
        selected=_credit_mode("verify_selected"),
        run=_credit_mode("verify_run"),
    )
)


def _draw_mode(name: str) -> Any:
    # The draw mode lives in backend/inspections/cli.py; import it only when used.
    def call(*args: Any) -> Any:
        from backend.inspections import cli as inspections_cli

        return getattr(inspections_cli, name)(*args)

    return call


VERIFY_MODES.append(
    VerifyMode(
        name="draw",
        add_arguments=_draw_mode("verify_arguments"),
        selected=_draw_mode("verify_selected"),
        run=_draw_mode("verify_run"),
    )
)


def _verify(args: argparse.Namespace) -> int:
    chosen = [m for m in VERIFY_MODES if m.selected(args)]
    if len(chosen) != 1:
        names = " | ".join(m.name for m in VERIFY_MODES)
        _err(
            f"verify needs exactly one thing to verify ({names}); got "
            f"{' and '.join(m.name for m in chosen) or 'none'}"
        )
        return EXIT_INCOMPLETE
    return chosen[0].run(args)


# --- audit -----------------------------------------------------------------------------


def _progress_printer() -> Callable[[int, int], None]:
    tty = sys.stderr.isatty()
    state = {"last": 0.0}

    def show(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - state["last"] < (0.2 if tty else 5.0):
            return
        state["last"] = now
        pct = 100.0 * done / total if total else 100.0
        msg = f"audit: {done:,} / {total:,} records ({pct:.0f}%)"
        if tty:
            print("\r" + msg, end="\n" if done >= total else "", file=sys.stderr, flush=True)
        else:
            print(msg, file=sys.stderr, flush=True)

    return show


def _stage_printer() -> Callable[[str, int, int], None]:
    """Progress of the projection audit: ``stage: done / total``, at most every 5 s."""
    last = [0.0]
    current = [""]

    def show(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage == current[0] and done < total and now - last[0] < 5.0:
            return
        last[0], current[0] = now, stage
        print(f"audit: {stage}: {done:,} / {total:,}", file=sys.stderr, flush=True)

    return show


def _audit_projections(session: Any, *, quiet: bool) -> list[Any]:
    """Rebuild every projection from the log in memory and compare it with the tables."""
    from backend.config import get_settings
    from backend.ledger import projection
    from backend.timeutil import today_shanghai

    ctx = projection.CheckContext(
        get_settings(), today_shanghai(), None if quiet else _stage_printer()
    )
    _, found = projection.audit_all(session, ctx)
    return found


def _audit(args: argparse.Namespace) -> int:
    from backend.config import get_settings
    from backend.db import Database
    from backend.errors import LedgerUnavailable
    from backend.ledger.audit import run_audit
    from backend.ledger.chain import LedgerClient
    from backend.ledger.contract import ABI
    from backend.ledger.models import LedgerState
    from backend.ledger.onchain import all_checkpoints
    from backend.verification.bundle import connect

    settings = get_settings()
    db = Database(settings.db_url)
    db.migrate()
    client: LedgerClient | None = None
    try:
        try:
            if args.ledger:
                w3 = connect(args.ledger)
            else:
                client = LedgerClient.from_settings(settings)
                w3 = client.w3
            chain_id = int(w3.eth.chain_id)
            address = settings.contract_address
            if address is None:
                with db.read() as s:
                    row = s.get(LedgerState, f"contract:{chain_id}")
                    address = row.value if row is not None else None
            if address is None:
                checkpoints = []
                _err(f"no MeteringLedger contract is known for chain {chain_id}: nothing "
                     "was ever anchored there")
            else:
                contract = w3.eth.contract(address=w3.to_checksum_address(address), abi=ABI)
                checkpoints = all_checkpoints(contract)
        except LedgerUnavailable as exc:
            _err(f"cannot audit: the ledger is unavailable: {exc.detail}")
            return EXIT_INCOMPLETE
        except Exception as exc:
            _err(f"cannot audit: reading the checkpoints failed: {type(exc).__name__}: {exc}")
            return EXIT_INCOMPLETE
        print(
            f"auditing the log against {len(checkpoints)} checkpoint(s) of contract "
            f"{address} on chain {chain_id}",
            file=sys.stderr,
        )
        with db.read() as s:
            report = run_audit(
                s, checkpoints, progress=None if args.quiet else _progress_printer()
            )
            tables = _audit_projections(s, quiet=args.quiet)
    finally:
        if client is not None:
            client.close()
        db.dispose()

    for f in report.findings:
        print("FINDING " + f.line())
    for d in tables:
        print("FINDING table " + d.line())
    for note in report.notes:
        print("note: " + note)
    if report.ok and not tables:
        print(
            f"audit passed: all {report.records_checked} record(s) match the "
            f"{report.checkpoints_checked} on-chain checkpoint(s), and every table the "
            "public reads matches the log"
            + (f"; {report.unanchored} record(s) are not anchored yet" if report.unanchored
               else "")
        )
        return EXIT_OK
    print(
        f"audit FAILED: {len(report.findings)} finding(s) in {report.tree_size} record(s), "
        f"{len(tables)} table row(s) that do not match the log"
        + ("; repair the tables with `honest-metering rebuild --from-log`" if tables else "")
    )
    return EXIT_FAILED


def _rebuild(args: argparse.Namespace) -> int:
    from sqlalchemy import text

    from backend.config import get_settings
    from backend.db import Database
    from backend.ledger import projection
    from backend.timeutil import today_shanghai

    if not args.from_log:
        _err("rebuild needs --from-log (the log is the only source a table is rebuilt from)")
        return EXIT_INCOMPLETE
    settings = get_settings()
    db = Database(settings.db_url)
    db.migrate()
    ctx = projection.CheckContext(
        settings, today_shanghai(), None if args.quiet else _stage_printer()
    )
    try:
        with db.session() as s:
            if s.get_bind().dialect.name == "postgresql":
                # Appends wait: the tables must not move while they are compared and fixed.
                s.execute(text("SELECT size FROM log_head WHERE id = 1 FOR UPDATE"))
            found = projection.rebuild_all(s, ctx, dry_run=args.dry_run)
            if not args.dry_run:
                s.commit()
    finally:
        db.dispose()
    verb = "would change" if args.dry_run else "changed"
    fixed = [d for d in found if projection.repairable(d)]
    kept = [d for d in found if not projection.repairable(d)]
    for d in fixed:
        print(f"{verb}: {d.line()}")
    for d in kept:
        print(f"cannot repair from the log (restore it from a backup): {d.line()}")
    if not found:
        print("rebuild: every table already matches the log; nothing to do")
    else:
        print(
            f"rebuild: {verb} {len(fixed)} row(s)"
            + (f"; {len(kept)} cannot be repaired from the log" if kept else "")
            + (" (dry run: nothing written)" if args.dry_run else "")
        )
    return EXIT_OK


# --- registration ------------------------------------------------------------------------


def register(sub: Any) -> None:
    p = sub.add_parser(
        "anchor",
        help="anchor pending records on the ledger",
        description="Without --once: run the anchoring worker in the foreground (as `serve` "
        "does in the background). With --once: reconcile with the contract and anchor "
        "every pending record now. Exit codes: 0 done, 2 ledger unavailable, 3 refused "
        "(database and chain disagree), 4 another process is anchoring.",
    )
    p.add_argument("--once", action="store_true", help="one pass, then exit")
    p.set_defaults(func=_anchor)

    p = sub.add_parser(
        "verify",
        help="verify a proof bundle using only the bundle and the ledger",
        description="Verify independently of the service: never reads its database. "
        "Exit codes: 0 verified, 1 rejected, 2 could not complete.",
    )
    for mode in VERIFY_MODES:
        mode.add_arguments(p)
    p.add_argument(
        "--ledger",
        metavar="URL",
        help="Ethereum JSON-RPC URL to read the chain from (default: the URL named in the "
        "bundle, i.e. the service's /rpc or its node)",
    )
    p.add_argument(
        "--trust-root",
        metavar="FILE|URL",
        help="the trust root to pin (chain, contract, log key, witnesses); without it a "
        "bundle is never reported VERIFIED. Compare its fingerprint (printed) with the one "
        "the regulator publishes",
    )
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    p.set_defaults(func=_verify)

    p = sub.add_parser(
        "audit",
        help="recompute the log from the database and check it against the chain",
        description="Names every altered, missing, inserted or reordered record. "
        "Exit codes: 0 clean, 1 findings, 2 could not complete.",
    )
    p.add_argument(
        "--ledger",
        metavar="URL",
        help="read the checkpoints through this JSON-RPC URL (e.g. the running service's "
        "/rpc) instead of opening the configured ledger",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_audit)

    p = sub.add_parser(
        "rebuild",
        help="repair the tables the public reads from the log (records are the truth)",
        description="Replays the log into every projection table, compares, and repairs "
        "each row that differs (deletes rows in no record, restores missing and altered "
        "ones); kept merchant views and ratings are rebuilt. --dry-run prints what it "
        "would change. Exit codes: 0 done, 2 could not run.",
    )
    p.add_argument("--from-log", action="store_true", help="rebuild from the record log")
    p.add_argument("--dry-run", action="store_true", help="print, do not write")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_rebuild)
