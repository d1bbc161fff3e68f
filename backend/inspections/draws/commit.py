"""Committing a draw (:func:`create_draw`) and putting its commitment on the ledger.

Order of effects, so that a crash anywhere leaves something a retry can finish:
check the ledger answers; then, in one database transaction, snapshot the
eligible merchants, freeze the inspector directory and the recusal pairs, draw a
secret seed, append the ``draw.committed`` record through the one write path (its
record id *is* the on-chain ``drawId``; its projection is the ``draw`` row, status
``committing``, with the seed beside it as a private column) and keep the committed
inputs. Only then send ``commitDraw(drawId, snapshotRoot, sha256(seed))`` and mark
the draw ``committed``. If the ledger fails in between, the draw stays
``committing``; :func:`finish_commit` (``POST /api/draws/{id}/commit``,
``honest-metering draw reconcile``) reads the contract and either adopts the
commitment already on chain or sends it again. Nothing else can change: every
input is already fixed by the record.

The chain's answers (``committed``, the commit transaction and blocks) and
``last_error`` are written to the ``draw`` row here, beside its projection: no
record says them before the reveal (see ``backend/inspections/draws/records.py``).
The seed is secret until the reveal: it is in the ``draw`` row only, never in a
record or a response before ``revealed``.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from backend.accounts.service import Principal, require_role
from backend.context import AppContext
from backend.credit import service as credit
from backend.credit.policy import TIERS
from backend.errors import DomainError
from backend.inputs import validate_horizon
from backend.inspections import directory, onchain, selection
from backend.inspections.draws import inputs, snapshot
from backend.inspections.draws.base import (
    COMMITMENT_VERSION,
    RESULT_WORKING_DAYS,
    EmptySnapshot,
    InvalidDraw,
    ItemInactive,
    LedgerDisagreement,
    LedgerRefused,
    NotEnoughInspectors,
    add_working_days,
    b32,
    detached,
    gc_paused,
    load_draw,
)
from backend.inspections.draws.reading import draw_public
from backend.inspections.models import Draw, DrawCreate, DrawPublic, DrawWritten, InspectionItem
from backend.inspections.records import COMMITTED
from backend.ledger import log
from backend.ledger.chain import LedgerClient, LedgerError
from backend.ledger.contract import LedgerRevert
from backend.ledger.records import RecordDraft, Ref
from backend.ledger.write import write
from backend.merchants.service import parse_region, parse_sector
from backend.timeutil import today_shanghai, utcnow

logger = logging.getLogger("honest_metering.draws")

STAFF = directory.STAFF


@dataclass(frozen=True)
class _Inputs:
    item: InspectionItem
    regions: list[str]
    sectors: list[str]
    inspector_regions: list[str] | None
    planned_start: date
    planned_end: date


def _validate(session: Session, data: DrawCreate, today: date) -> _Inputs:
    item = directory.get_item(session, data.item_id)
    if not item.active:
        raise ItemInactive(f"inspection item {item.id} is inactive; activate it before drawing")
    sectors = (
        sorted({parse_sector(s) for s in data.sectors}) if data.sectors else list(item.sectors)
    )
    outside = [s for s in sectors if s not in item.sectors]
    if outside:
        raise InvalidDraw(
            f"sectors {outside} are not covered by inspection item {item.id} "
            f"(its sectors: {list(item.sectors)})"
        )
    regions = sorted({parse_region(r) for r in data.regions}) if data.regions else []
    insp_regions = (
        sorted({parse_region(r) for r in data.inspector_regions})
        if data.inspector_regions
        else None
    )
    start = data.planned_start or today
    validate_horizon(start, field="planned_start", today=today)
    validate_horizon(data.planned_end, field="planned_end", today=today)
    if start < today:
        raise InvalidDraw(f"planned_start {start} is in the past (today is {today})")
    if data.planned_end < start:
        raise InvalidDraw(f"planned_end {data.planned_end} is before planned_start {start}")
    if data.planned_end > start + timedelta(days=366):
        raise InvalidDraw("a draw's planned period is at most one year")
    return _Inputs(item, regions, sectors, insp_regions, start, data.planned_end)


def _preflight(ctx: AppContext) -> tuple[LedgerClient, int, int]:
    """The ledger client, chain head and reveal delay; LedgerUnavailable before any write."""
    ledger = ctx.require_ledger()
    head = ledger.block_number()
    delay = int(ledger.call(ledger.contract().functions.revealDelayBlocks()))
    return ledger, head, delay


def create_draw(
    ctx: AppContext,
    *,
    principal: Principal | None,
    data: DrawCreate,
    now: datetime | None = None,
) -> DrawWritten:
    """Snapshot, commit on the ledger, return the committed draw (see the module docstring)."""
    p = require_role(principal, *STAFF)
    now = now or utcnow()
    today = today_shanghai(now)
    with ctx.db.read() as s:
        _validate(s, data, today)  # fail fast, before touching the ledger
    ledger, head, delay = _preflight(ctx)
    assert ledger.contract_address is not None

    with ctx.db.session() as s, gc_paused():
        directory.serialise(s, directory.PG_DRAW_LOCK)  # one draw number at a time
        checked = _validate(s, data, today)
        versions = credit.ensure_policy(s, now=now)
        policy = credit.in_force(versions, today)
        given: dict[str, int] = (
            data.rates_bp.model_dump()
            if data.rates_bp is not None
            else {t: policy.policy.spot_check_rate_for(t) for t in TIERS}
        )
        rates = selection.validate_rates(given)
        entries = snapshot.build_snapshot(
            s, regions=checked.regions, sectors=checked.sectors, today=today, versions=versions
        )
        # A merchant checked within its tier's minimum interval is not eligible (§8.4).
        intervals: dict[str, int] = {
            t: policy.policy.min_interval_months_for(t) for t in TIERS
        }
        if any(intervals.values()):
            recent = snapshot.recently_checked(
                s, entries, min_interval_months=intervals, today=today
            )
            entries = [e for e in entries if e.uscc not in recent]
        if not entries:
            raise EmptySnapshot(
                "no verified merchant is in scope "
                f"(regions {checked.regions or 'all'}, sectors {checked.sectors})"
            )
        inspectors = directory.active_inspectors(s, regions=checked.inspector_regions)
        if len(inspectors) < data.per_check:
            raise NotEnoughInspectors(
                f"{len(inspectors)} active inspector(s) in the directory"
                + (f" for regions {checked.inspector_regions}" if checked.inspector_regions else "")
                + f", but per_check is {data.per_check}",
                needed=data.per_check,
                available=len(inspectors),
            )
        usccs = {e.uscc for e in entries}
        conflicts, previous, recusal_rows = snapshot.recusals(s, usccs)
        seed = secrets.token_bytes(selection.SEED_SIZE)
        tier_counts: dict[str, int] = dict.fromkeys(selection.TIERS, 0)
        for e in entries:
            tier_counts[e.tier] += 1
        number = _next_number(s)
        results_due = add_working_days(checked.planned_end, RESULT_WORKING_DAYS)
        body = _commitment(
            checked, number=number, results_due=results_due, today=today, policy=policy,
            rates=rates, per_check=data.per_check, entries=entries, tier_counts=tier_counts,
            inspectors=inspectors, conflicts=conflicts, previous=previous, seed=seed,
            chain=(ledger.chain_id, ledger.contract_address, delay),
        )
        refs = [Ref("item", checked.item.record_id), Ref("policy", policy.record_id)]
        sealed = log.seal(
            RecordDraft(type=COMMITTED, subject=None, actor=p.actor, body=body, refs=refs), at=now
        )
        draw_id = sealed.record_id
        rec = write(
            s, [sealed], now=now,
            private={draw_id: {"seed": seed.hex(), "created_block": head}},
        ).one
        inputs.insert_inputs(
            s, draw_id=draw_id, entries=entries, inspectors=inspectors, recusals=recusal_rows
        )
        s.commit()

    logger.info("draw %s (no. %d) recorded; committing on the ledger", draw_id, number)
    finish_commit(ctx, draw_id=draw_id, ledger=ledger, now=now)
    with ctx.db.read() as s:
        view = draw_public(s, ctx=ctx, ref=draw_id, today=today, staff=True)
    return DrawWritten(
        **view.model_dump(),
        record_id=draw_id,
        leaf_index=rec.leaf_index,
        anchor_status=view.records[0].anchor_status,
    )


def _next_number(session: Session) -> int:
    return int(session.execute(select(func.coalesce(func.max(Draw.number), 0))).scalar_one()) + 1


def _commitment(
    checked: _Inputs,
    *,
    number: int,
    results_due: date,
    today: date,
    policy: Any,
    rates: dict[str, int],
    per_check: int,
    entries: list[selection.SnapshotEntry],
    tier_counts: dict[str, int],
    inspectors: list[selection.InspectorEntry],
    conflicts: set[tuple[str, str]],
    previous: dict[str, set[str]],
    seed: bytes,
    chain: tuple[int, str, int],
) -> dict[str, Any]:
    """The ``draw.committed`` record body."""
    chain_id, contract, delay = chain
    return {
        "v": COMMITMENT_VERSION,
        "number": number,
        "item": {
            "item_id": checked.item.id,
            "title": checked.item.title,
            "legal_basis": checked.item.legal_basis,
            "method": checked.item.method,
            "record": checked.item.record_id,
        },
        "scope": {"regions": checked.regions, "sectors": checked.sectors},
        "inspector_regions": checked.inspector_regions,
        "planned_start": checked.planned_start.isoformat(),
        "planned_end": checked.planned_end.isoformat(),
        "results_due": results_due.isoformat(),
        "tier_date": today.isoformat(),
        "policy": {"version": policy.version, "record": policy.record_id},
        "rates_bp": rates,
        "per_check": per_check,
        "snapshot_root": selection.snapshot_root(entries).hex(),
        "snapshot_size": len(entries),
        "tier_counts": tier_counts,
        "selected_counts": {t: selection.tier_count(tier_counts[t], rates[t]) for t in TIERS},
        "inspectors_root": selection.inspectors_root(inspectors).hex(),
        "inspector_count": len(inspectors),
        "recusal_root": selection.recusal_root(conflicts, previous).hex(),
        "recusal_count": len(selection.recusal_pairs(conflicts, previous)),
        "seed_hash": selection.seed_hash(seed).hex(),
        "chain": {"chain_id": chain_id, "contract": contract, "reveal_delay_blocks": delay},
    }


def read_onchain(ledger: LedgerClient, contract: Any, did: bytes) -> onchain.OnChainDraw:
    return onchain.OnChainDraw.from_view(ledger.call(contract.functions.draw(did)))


def _set_error(ctx: AppContext, draw_id: str, message: str) -> None:
    with ctx.db.session() as s:
        row = s.get(Draw, draw_id)
        if row is not None:
            row.last_error = message[:2000]
            s.add(row)
            s.commit()


def finish_commit(
    ctx: AppContext,
    *,
    draw_id: str,
    ledger: LedgerClient | None = None,
    now: datetime | None = None,
) -> Draw:
    """Put a ``committing`` draw's commitment on the ledger (or adopt the one already there).

    Idempotent; a no-op for a draw past ``committing``. Raises LedgerUnavailable
    (the draw stays ``committing``, with ``last_error``) when the ledger fails.
    """
    now = now or utcnow()
    with ctx.db.read() as s:
        row = detached(s, draw_id)
    if row.status != "committing":
        return row
    ledger = ledger or ctx.require_ledger()
    body = row.body
    did = b32(row.id)
    snap_root = b32(body["snapshot_root"])
    seed_hash = b32(body["seed_hash"])
    try:
        if ledger.chain_id != row.chain_id or (
            (ledger.contract_address or "").lower() != row.contract_address.lower()
        ):
            raise LedgerDisagreement(
                f"draw {row.id} was prepared for contract {row.contract_address} on chain "
                f"{row.chain_id}; the ledger now is {ledger.contract_address} on chain "
                f"{ledger.chain_id}"
            )
        contract = ledger.contract()
        tx_hash: str | None = None
        existing = read_onchain(ledger, contract, did)
        if not existing.committed:
            try:
                tx = ledger.send(contract.functions.commitDraw(did, snap_root, seed_hash))
                tx_hash = tx.tx_hash
            except LedgerRevert as exc:
                if exc.name != "MeteringLedgerDrawAlreadyCommitted":
                    raise LedgerRefused(
                        f"the contract refused to commit draw {row.id}: {exc}"
                    ) from None
            existing = read_onchain(ledger, contract, did)
        if existing.snapshot_root != snap_root or existing.seed_hash != seed_hash:
            raise LedgerDisagreement(
                f"the contract holds draw {row.id} with snapshot root "
                f"0x{existing.snapshot_root.hex()} and seed hash 0x{existing.seed_hash.hex()}, "
                f"not the committed 0x{snap_root.hex()} / 0x{seed_hash.hex()}"
            )
        if tx_hash is None:
            found = ledger.guard(
                lambda: onchain.find_event_tx(
                    contract, "DrawCommitted", did, from_block=max(0, row.created_block or 0)
                )
            )
            tx_hash = found[0] if found else None
    except (LedgerDisagreement, LedgerRefused) as exc:
        _set_error(ctx, row.id, f"{exc.name}: {exc.detail}")
        raise
    except DomainError as exc:  # LedgerUnavailable
        _set_error(ctx, row.id, f"{exc.name}: {exc.detail}")
        raise type(exc)(
            f"draw no. {row.number} ({row.id}) is recorded, but its commitment did not reach "
            f"the ledger: {exc.detail}. Retry with POST /api/draws/{row.id}/commit or "
            "`honest-metering draw reconcile`; nothing else about the draw can change.",
            draw_id=row.id,
        ) from None
    except (LedgerError, OSError) as exc:
        _set_error(ctx, row.id, f"{type(exc).__name__}: {exc}")
        raise LedgerRefused(f"committing draw {row.id} failed: {exc}", draw_id=row.id) from None

    with ctx.db.session() as s:
        fresh = s.get(Draw, row.id)
        assert fresh is not None
        if fresh.status == "committing":
            fresh.status = "committed"
            fresh.commit_tx = tx_hash
            fresh.commit_block = existing.commit_block
            fresh.target_block = existing.target_block
            fresh.committed_at = now
            fresh.last_error = None
            s.add(fresh)
            s.commit()
        return fresh


def retry_commit(ctx: AppContext, *, principal: Principal | None, ref: str) -> DrawPublic:
    """``POST /api/draws/{id}/commit``: finish a ``committing`` draw (no-op otherwise)."""
    require_role(principal, *STAFF)
    with ctx.db.read() as s:
        draw_id = load_draw(s, ref).id
    finish_commit(ctx, draw_id=draw_id)
    with ctx.db.read() as s:
        return draw_public(s, ctx=ctx, ref=draw_id, staff=True)


