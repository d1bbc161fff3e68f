"""Issuing the trust root: versions kept in the data dir, a new one when the facts change.

The facts are the log's origin and current key, the ledger (chain id, contract,
deployment block) and the witnesses with their quorum (settings). When they differ from
the newest version's, a new version is written that names the newest by fingerprint,
signed by the current log key and, after a rotation, by the retired key the newest
version named. Versions are files ``trust-root/v<N>.json``, created exclusively, so two
processes issuing at once agree on one.

This module never rewrites or deletes a version.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Session

from backend.config import Settings
from backend.context import AppContext
from backend.db import upsert
from backend.errors import LedgerUnavailable
from backend.ledger import note as notes
from backend.ledger import trustroot as tr
from backend.ledger.chain import LedgerClient
from backend.ledger.logkey import LogKeyError, load_log_key, retired_keys
from backend.ledger.models import LedgerState

PATH = "/.well-known/honest-metering/trust-root.json"


def store_dir(settings: Settings) -> Path:
    return settings.data_dir / "trust-root"


def versions(settings: Settings) -> list[tr.TrustRoot]:
    d = store_dir(settings)
    if not d.exists():
        return []
    found = []
    for p in d.glob("v*.json"):
        if p.stem[1:].isdigit():
            found.append(tr.parse_trust_root(json.loads(p.read_text("utf-8"))))
    return sorted(found, key=lambda r: r.body.version)


def for_pages(ctx: AppContext) -> tr.TrustRoot | None:
    """For pages: the trust root, without waiting for a ledger that was never opened in
    this process (then the newest issued version, if any; remembered 30 s). Without a
    usable log key (production before ``log-key rotate``) the pages still render: they
    show the newest issued version, or none."""
    if ctx.ledger_if_open() is not None:
        try:
            return current(ctx)
        except (LedgerUnavailable, LogKeyError):
            pass
    memo: dict[str, tuple[float, tr.TrustRoot | None]] = ctx.local("trust_root_pages", dict)
    hit = memo.get("root")
    if hit is not None and time.monotonic() - hit[0] < _CACHE_S:
        return hit[1]
    newest = latest(ctx.settings)
    memo["root"] = (time.monotonic(), newest)
    return newest


def published_fingerprint(ctx: AppContext) -> str | None:
    root = for_pages(ctx)
    return None if root is None else root.fingerprint


def latest(settings: Settings) -> tr.TrustRoot | None:
    found = versions(settings)
    return found[-1] if found else None


def deployment_block(session: Session, client: LedgerClient, address: str) -> int:
    """The first block in which ``address`` has code (binary search; remembered)."""
    key = f"deployed:{client.chain_id}:{address.lower()}"
    row = session.get(LedgerState, key)
    if row is not None:
        return int(row.value)
    w3 = client.w3
    checksum = w3.to_checksum_address(address)
    lo, hi = 0, int(w3.eth.block_number)
    while lo < hi:
        mid = (lo + hi) // 2
        if len(w3.eth.get_code(checksum, block_identifier=mid)) > 0:
            hi = mid
        else:
            lo = mid + 1
    # Workers rendering their first pages at once may all get here: the block is the
    # same for all, so whoever writes it last changes nothing (no unique-key failure).
    upsert(session, LedgerState.__table__, [{"key": key, "value": str(lo)}],  # type: ignore[attr-defined]
           key=["key"], update=["value"])
    session.commit()
    return lo


def facts(
    settings: Settings, log_key: notes.Signer, ledger: tr.LedgerIdentity, *, version: int,
    previous: str | None,
) -> tr.TrustRootBody:
    return tr.TrustRootBody(
        version=version,
        previous=previous,
        issued_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        log=tr.LogIdentity(origin=settings.origin, key=log_key.verifier.vkey),
        ledger=ledger,
        witnesses=tuple(tr.Witness(name=w.name, key=w.key, url=w.url) for w in settings.witnesses),
        witness_quorum=settings.quorum,
    )


def ensure_current(settings: Settings, ledger: tr.LedgerIdentity) -> tr.TrustRoot:
    """The newest version, after issuing a new one if the facts changed."""
    log_key = load_log_key(settings)
    while True:
        newest = latest(settings)
        body = facts(
            settings, log_key, ledger,
            version=1 if newest is None else newest.body.version + 1,
            previous=None if newest is None else newest.fingerprint,
        )
        if newest is not None and newest.body.same_facts(body):
            return newest
        signers = [log_key]
        if newest is not None and newest.body.log.key != log_key.verifier.vkey:
            signers += [k for k in retired_keys(settings) if k.verifier.vkey == newest.body.log.key]
        root = tr.sign(body, signers)
        path = store_dir(settings) / f"v{body.version}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".v{body.version}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(root.to_json(), indent=2, ensure_ascii=False) + "\n", "utf-8")
        try:
            os.link(tmp, path)  # fails if another process issued this version first
        except FileExistsError:
            continue
        finally:
            tmp.unlink()
        return root


_CACHE_S = 30.0


def current(ctx: AppContext) -> tr.TrustRoot:
    """The service's trust root (issued on first use and when the facts change; checked
    at most every 30 s per process). Needs the ledger (its chain id and contract) to
    issue; while the ledger is unavailable the newest issued version is served."""
    memo: dict[str, tuple[float, tr.TrustRoot]] = ctx.local("trust_root", dict)
    hit = memo.get("root")
    if hit is not None and time.monotonic() - hit[0] < _CACHE_S:
        return hit[1]
    try:
        client = ctx.require_ledger()
    except LedgerUnavailable:
        newest = latest(ctx.settings)
        if newest is None:
            raise
        return newest
    address = client.contract_address
    assert address is not None
    with ctx.db.session() as s:
        block = deployment_block(s, client, address)
    root = ensure_current(
        ctx.settings,
        tr.LedgerIdentity(
            chain_id=client.chain_id, contract_address=address, deployment_block=block
        ),
    )
    memo["root"] = (time.monotonic(), root)
    return root
