"""Verifiable random draws (双随机、一公开): commit, reveal, plan, results.

The rules live here; the pure selection is :mod:`backend.inspections.selection`
(never re-implemented here) and ``docs/draws.md`` is the specification.

Order of effects, so that a crash anywhere leaves something a retry can finish:

1. **Commit** (:func:`create_draw`): check the ledger answers; then, in one
   database transaction, snapshot the eligible merchants, freeze the inspector
   directory and the recusal pairs, draw a secret seed, append the
   ``draw.committed`` record (its record id *is* the on-chain ``drawId``) and
   insert the draw with status ``committing``. Only then send
   ``commitDraw(drawId, snapshotRoot, sha256(seed))`` and mark the draw
   ``committed``. If the ledger fails in between, the draw stays
   ``committing``; :func:`finish_commit` (``POST /api/draws/{id}/commit``,
   ``honest-metering draw reconcile``) reads the contract and either adopts the
   commitment already on chain or sends it again. Nothing else can change:
   every input is already fixed by the record.
2. **Reveal** (:func:`reveal_draw`): advance the chain past the target block
   if it can be mined (embedded chain, anvil), send ``revealDraw``, read the
   randomness back and check it equals ``SHA-256(seed || blockhash(target))``
   computed here; then, in one transaction, run the selection and append
   ``draw.revealed`` and ``draw.plan`` (or ``draw.failed``) with the plan rows.
   A reveal already on chain (a crash after the transaction) is adopted.

Records go through the one write path (:func:`backend.ledger.write.write`, which
appends them in the caller's transaction). The ``draw`` tables are this module's
operational state, written here beside the records; they are not projections (yet).

The seed is secret until the reveal: it is in the ``draw`` row only, never in a
record or a response before ``revealed``. This module never reads the clock
except through its ``now`` arguments and :mod:`backend.timeutil`.
"""

from __future__ import annotations

import gc
import json
import logging
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, insert, or_, select
from sqlmodel import Session, col

from backend.accounts.service import Principal, require_role
from backend.context import AppContext
from backend.credit import service as credit
from backend.credit.models import MerchantRating
from backend.credit.policy import TIERS
from backend.errors import Conflict, DomainError, NotFound, ValidationFailed
from backend.inputs import validate_horizon
from backend.inspections import directory, onchain, selection
from backend.inspections.models import (
    AssignmentPublic,
    ChainInfo,
    Draw,
    DrawAssignment,
    DrawCreate,
    DrawInspector,
    DrawInspectorPublic,
    DrawPage,
    DrawPublic,
    DrawRecord,
    DrawRecusal,
    DrawSnapshotEntry,
    DrawSummary,
    DrawWritten,
    InspectionItem,
    InspectorRef,
    RecusalList,
    RecusalPublic,
    SpotCheckResult,
)
from backend.inspections.records import COMMITTED, EXPIRED, FAILED, PLAN, REVEALED
from backend.ledger import log
from backend.ledger.chain import LedgerClient, LedgerError
from backend.ledger.contract import LedgerRevert
from backend.ledger.models import LogLeaf
from backend.ledger.records import SYSTEM, Actor, RecordDraft, Ref
from backend.ledger.service import ledger_url_for
from backend.ledger.status import anchor_status
from backend.ledger.write import write
from backend.merchants.models import Merchant, MerchantVerification
from backend.merchants.service import parse_region, parse_sector
from backend.timeutil import today_shanghai, utcnow

logger = logging.getLogger("honest_metering.draws")

COMMITMENT_VERSION = 1
RESULT_WORKING_DAYS = 20
STAFF = directory.STAFF
_INSERT_CHUNK = 5000
_IN_CHUNK = 500
_FETCH_CHUNK = 20_000


# --- errors -------------------------------------------------------------------------------


class DrawNotFound(NotFound):
    pass


class InvalidDraw(ValidationFailed):
    pass


class EmptySnapshot(ValidationFailed):
    pass


class NotEnoughInspectors(ValidationFailed):
    pass


class ItemInactive(ValidationFailed):
    pass


class DrawNotDue(Conflict):
    """The target block has not been mined yet and this chain cannot be asked to mine."""


class DrawAlreadyRevealed(Conflict):
    pass


class DrawExpired(Conflict):
    pass


class LedgerDisagreement(DomainError):
    """The contract holds something other than what this service committed or computed."""

    status_code = 502


class LedgerRefused(DomainError):
    """The contract refused a draw transaction for a reason a retry will not cure."""

    status_code = 502


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a draw builds 10^5-10^6 small objects.

    None of them form cycles (reference counting frees them), but every collection
    would walk all of them: with the collector running, building a 10^6-merchant
    snapshot grows faster than linearly.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --- small pure helpers ---------------------------------------------------------------------


def add_working_days(start: date, days: int) -> date:
    """``days`` working days (Monday-Friday) after ``start``; public holidays are not known."""
    d = start
    while days > 0:
        d += timedelta(days=1)
        if d.weekday() < 5:
            days -= 1
    return d


def _b32(hex_str: str) -> bytes:
    raw = bytes.fromhex(hex_str.removeprefix("0x"))
    if len(raw) != 32:
        raise ValueError(f"expected 32 bytes, got {len(raw)}")
    return raw


def parse_draw_ref(ref: str) -> str | int:
    """A draw is named by its id (64 hex digits, ``0x`` optional) or its number."""
    text = ref.strip().lower().removeprefix("0x")
    if text.isdigit() and len(text) < 19:
        return int(text)
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return text
    raise InvalidDraw(f"a draw is named by its number or its 64-hex-digit id, got {ref!r}")


# --- snapshot -------------------------------------------------------------------------------


def build_snapshot(
    session: Session,
    *,
    regions: Sequence[str] | None,
    sectors: Sequence[str],
    today: date,
    versions: Sequence[credit.PolicyVersion],
) -> list[selection.SnapshotEntry]:
    """Verified merchants in scope, each with its credit tier on ``today``.

    The tier is the merchant's maintained rating (``merchant_rating``) when that
    is current; a merchant never rated, or whose rating is due for a change,
    is rated here from its records with the same function and policy (not
    stored: the rating cache has its own owner).
    """
    current_policy = credit.in_force(versions, today).version
    # The same staleness rule as the credit sweep (backend/credit/service.py, _due),
    # evaluated in SQL so that 10^6 rows come back as four short strings each.
    current = case(
        (
            and_(
                or_(
                    col(MerchantRating.next_change_on).is_(None),
                    col(MerchantRating.next_change_on) > today,
                ),
                col(MerchantRating.policy_version) == current_policy,
                col(MerchantRating.as_of) <= today,
            ),
            col(MerchantRating.tier),
        ),
        else_=None,
    )
    sector: Any = col(Merchant.sector)
    if _wide_scope(session, sectors):
        # SQLite has no statistics: it would find the scope through the sector index
        # and then sort 10^6 rows by USCC. For a scope covering most merchants, walking
        # the USCC index is about twice as fast; `sector || ''` keeps the index out.
        sector = sector + ""
    query = (
        select(col(Merchant.uscc), col(Merchant.region_code), col(Merchant.sector), current)
        .join(MerchantVerification, col(MerchantVerification.uscc) == col(Merchant.uscc))
        .outerjoin(MerchantRating, col(MerchantRating.uscc) == col(Merchant.uscc))
        .where(sector.in_(list(sectors)))
        .order_by(col(Merchant.uscc))
    )
    if regions:
        query = query.where(col(Merchant.region_code).in_(list(regions)))
    entries: list[selection.SnapshotEntry] = []
    stale: dict[str, tuple[str, str]] = {}
    entry = selection.SnapshotEntry
    result = session.connection().execute(query)
    try:
        # The DBAPI's plain tuples (four strings need no result processing): building a
        # Row object per merchant would double the time at 10^6 merchants.
        cursor = result.cursor
        while batch := cursor.fetchmany(_FETCH_CHUNK):
            for uscc, region, sector, tier in batch:
                if tier is not None:
                    entries.append(entry(uscc, tier, region, sector))
                else:
                    stale[uscc] = (region, sector)
    finally:
        result.close()
    if stale:
        records = credit.load_records(session, stale)
        for uscc, (region, sector) in stale.items():
            rating, _ = credit.compute(records[uscc], versions, today)
            entries.append(selection.SnapshotEntry(uscc, rating.tier, region, sector))
    return selection.sort_snapshot(entries)


def _wide_scope(session: Session, sectors: Sequence[str]) -> bool:
    """Whether the sectors in scope hold more than a quarter of the merchants (SQLite only)."""
    if session.get_bind().dialect.name != "sqlite":
        return False
    total = session.execute(select(func.count()).select_from(Merchant)).scalar_one()
    if total < 10_000:
        return False
    in_scope = session.execute(
        select(func.count()).select_from(Merchant).where(col(Merchant.sector).in_(list(sectors)))
    ).scalar_one()
    return bool(in_scope * 4 > total)


def previous_assignments(
    session: Session, usccs: Iterable[str] | None = None
) -> dict[str, tuple[str, list[str]]]:
    """For each merchant, (draw id, inspector ids) of its most recent revealed assignment."""
    query = (
        select(
            col(DrawAssignment.uscc), col(DrawAssignment.draw_id), col(DrawAssignment.inspector_ids)
        )
        .join(Draw, col(Draw.id) == col(DrawAssignment.draw_id))
        .where(col(Draw.status) == "revealed")
        .order_by(col(Draw.revealed_at), col(Draw.number))
    )
    wanted = set(usccs) if usccs is not None else None
    out: dict[str, tuple[str, list[str]]] = {}
    for uscc, draw_id, ids in session.execute(query):
        if wanted is None or uscc in wanted:
            out[uscc] = (draw_id, list(ids))
    return out


# --- create and commit ----------------------------------------------------------------------


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


def _recusals(
    session: Session, snapshot_usccs: set[str]
) -> tuple[set[tuple[str, str]], dict[str, set[str]], list[dict[str, Any]]]:
    """Conflicts, previous-draw pairs, and the rows that record where each pair comes from."""
    conflicts = directory.active_conflicts(session)
    previous_src = previous_assignments(session, snapshot_usccs)
    previous = {u: set(ids) for u, (_, ids) in previous_src.items()}
    rows: list[dict[str, Any]] = [
        {"uscc": u, "inspector_id": i, "source": "conflict", "source_draw_id": None}
        for i, u in sorted(conflicts)
    ]
    for u, (draw_id, ids) in sorted(previous_src.items()):
        rows.extend(
            {"uscc": u, "inspector_id": i, "source": "previous", "source_draw_id": draw_id}
            for i in sorted(set(ids))
        )
    return conflicts, previous, rows


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
        inputs = _validate(s, data, today)
        versions = credit.ensure_policy(s, now=now)
        policy = credit.in_force(versions, today)
        given: dict[str, int] = (
            data.rates_bp.model_dump()
            if data.rates_bp is not None
            else {t: policy.policy.spot_check_rate_for(t) for t in TIERS}
        )
        rates = selection.validate_rates(given)
        entries = build_snapshot(
            s, regions=inputs.regions, sectors=inputs.sectors, today=today, versions=versions
        )
        if not entries:
            raise EmptySnapshot(
                "no verified merchant is in scope "
                f"(regions {inputs.regions or 'all'}, sectors {inputs.sectors})"
            )
        inspectors = directory.active_inspectors(s, regions=inputs.inspector_regions)
        if len(inspectors) < data.per_check:
            raise NotEnoughInspectors(
                f"{len(inspectors)} active inspector(s) in the directory"
                + (f" for regions {inputs.inspector_regions}" if inputs.inspector_regions else "")
                + f", but per_check is {data.per_check}",
                needed=data.per_check,
                available=len(inspectors),
            )
        usccs = {e.uscc for e in entries}
        conflicts, previous, recusal_rows = _recusals(s, usccs)
        seed = secrets.token_bytes(selection.SEED_SIZE)
        tier_counts: dict[str, int] = dict.fromkeys(selection.TIERS, 0)
        for e in entries:
            tier_counts[e.tier] += 1
        number = int(s.execute(select(func.coalesce(func.max(Draw.number), 0))).scalar_one()) + 1
        results_due = add_working_days(inputs.planned_end, RESULT_WORKING_DAYS)
        snap_root = selection.snapshot_root(entries)
        body: dict[str, Any] = {
            "v": COMMITMENT_VERSION,
            "number": number,
            "item": {
                "item_id": inputs.item.id,
                "title": inputs.item.title,
                "legal_basis": inputs.item.legal_basis,
                "method": inputs.item.method,
                "record": inputs.item.record_id,
            },
            "scope": {"regions": inputs.regions, "sectors": inputs.sectors},
            "inspector_regions": inputs.inspector_regions,
            "planned_start": inputs.planned_start.isoformat(),
            "planned_end": inputs.planned_end.isoformat(),
            "results_due": results_due.isoformat(),
            "tier_date": today.isoformat(),
            "policy": {"version": policy.version, "record": policy.record_id},
            "rates_bp": rates,
            "per_check": data.per_check,
            "snapshot_root": snap_root.hex(),
            "snapshot_size": len(entries),
            "tier_counts": tier_counts,
            "selected_counts": {t: selection.tier_count(tier_counts[t], rates[t]) for t in TIERS},
            "inspectors_root": selection.inspectors_root(inspectors).hex(),
            "inspector_count": len(inspectors),
            "recusal_root": selection.recusal_root(conflicts, previous).hex(),
            "recusal_count": len(selection.recusal_pairs(conflicts, previous)),
            "seed_hash": selection.seed_hash(seed).hex(),
            "chain": {
                "chain_id": ledger.chain_id,
                "contract": ledger.contract_address,
                "reveal_delay_blocks": delay,
            },
        }
        refs = [Ref("item", inputs.item.record_id), Ref("policy", policy.record_id)]
        rec = write(
            s,
            RecordDraft(type=COMMITTED, subject=None, actor=p.actor, body=body, refs=refs),
            now=now,
        ).one
        draw_id = rec.record_id
        s.add(
            Draw(
                id=draw_id,
                number=number,
                status="committing",
                item_id=inputs.item.id,  # type: ignore[arg-type]
                body=body,
                commit_leaf_index=rec.leaf_index,
                seed=seed.hex(),
                planned_end=inputs.planned_end,
                results_due=results_due,
                created_at=now,
                account_id=p.account_id,
                chain_id=ledger.chain_id,
                contract_address=ledger.contract_address,
                created_block=head,
            )
        )
        s.flush()
        _bulk_insert(
            s,
            DrawSnapshotEntry,
            (
                {
                    "draw_id": draw_id,
                    "uscc": e.uscc,
                    "tier": e.tier,
                    "region_code": e.region_code,
                    "sector": e.sector,
                }
                for e in entries
            ),
        )
        _bulk_insert(
            s,
            DrawInspector,
            (
                {
                    "draw_id": draw_id,
                    "inspector_id": i.id,
                    "unit": i.unit,
                    "region_code": i.region_code,
                }
                for i in inspectors
            ),
        )
        _bulk_insert(s, DrawRecusal, ({"draw_id": draw_id, **r} for r in recusal_rows))
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


def _bulk_insert(session: Session, model: Any, rows: Iterable[dict[str, Any]]) -> None:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= _INSERT_CHUNK:
            session.execute(insert(model), batch)
            batch = []
    if batch:
        session.execute(insert(model), batch)


def load_draw(session: Session, ref: str | int) -> Draw:
    parsed = parse_draw_ref(ref) if isinstance(ref, str) else ref
    if isinstance(parsed, int):
        row = session.execute(select(Draw).where(col(Draw.number) == parsed)).scalars().first()
    else:
        row = session.get(Draw, parsed)
    if row is None:
        raise DrawNotFound(f"no draw {ref}")
    return row


def _detached(session: Session, ref: str | int) -> Draw:
    """The draw row, detached so it stays readable after the read session ends."""
    row = load_draw(session, ref)
    session.expunge(row)
    return row


def _read_draw(ledger: LedgerClient, contract: Any, did: bytes) -> onchain.OnChainDraw:
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
        row = _detached(s, draw_id)
    if row.status != "committing":
        return row
    ledger = ledger or ctx.require_ledger()
    body = row.body
    did = _b32(row.id)
    snap_root = _b32(body["snapshot_root"])
    seed_hash = _b32(body["seed_hash"])
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
        existing = _read_draw(ledger, contract, did)
        if not existing.committed:
            try:
                tx = ledger.send(contract.functions.commitDraw(did, snap_root, seed_hash))
                tx_hash = tx.tx_hash
            except LedgerRevert as exc:
                if exc.name != "MeteringLedgerDrawAlreadyCommitted":
                    raise LedgerRefused(
                        f"the contract refused to commit draw {row.id}: {exc}"
                    ) from None
            existing = _read_draw(ledger, contract, did)
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


# --- reveal ----------------------------------------------------------------------------------


def _expire(ctx: AppContext, row: Draw, head: int, now: datetime) -> None:
    with ctx.db.session() as s:
        fresh = s.get(Draw, row.id)
        assert fresh is not None
        if fresh.status != "committed":
            return
        rec = write(
            s,
            RecordDraft(
                type=EXPIRED,
                subject=None,
                actor=SYSTEM,
                body={
                    "draw_id": row.id,
                    "target_block": row.target_block,
                    "last_reveal_block": (row.target_block or 0) + onchain.REVEAL_WINDOW_BLOCKS,
                    "head_block": head,
                },
                refs=(Ref("expires", row.id),),
            ),
            now=now,
        ).one
        fresh.status = "expired"
        fresh.outcome_record_id = rec.record_id
        s.add(fresh)
        s.commit()


def reveal_draw(
    ctx: AppContext,
    *,
    principal: Principal | None,
    ref: str,
    now: datetime | None = None,
    actor: Actor | None = None,
) -> DrawWritten:
    """Reveal the seed on the ledger, run the selection, publish the plan."""
    if actor is None:
        actor = require_role(principal, *STAFF).actor
    now = now or utcnow()
    with ctx.db.read() as s:
        row = _detached(s, ref)
    if row.status in ("revealed", "failed"):
        raise DrawAlreadyRevealed(f"draw no. {row.number} was revealed at block {row.reveal_block}")
    if row.status == "expired":
        raise DrawExpired(
            f"draw no. {row.number} expired: its seed was not revealed within "
            f"{onchain.REVEAL_WINDOW_BLOCKS} blocks of target block {row.target_block}"
        )
    ledger = ctx.require_ledger()
    if row.status == "committing":
        row = finish_commit(ctx, draw_id=row.id, ledger=ledger, now=now)
    assert row.target_block is not None
    did = _b32(row.id)
    seed = _b32(row.seed)
    contract = ledger.contract()
    state = _read_draw(ledger, contract, did)
    reveal_tx: str | None = None
    if not state.revealed:
        head = ledger.block_number()
        if state.expired_at(head):
            _expire(ctx, row, head, now)
            raise DrawExpired(
                f"draw no. {row.number} expired: the chain is at block {head}, past the last "
                f"block ({row.target_block + onchain.REVEAL_WINDOW_BLOCKS}) whose reveal may "
                f"use the hash of target block {row.target_block}; commit a new draw"
            )
        # anvil estimates gas against the head block: the head must be past the target.
        if head < row.target_block + 1:
            try:
                ledger.advance_to_block(row.target_block + 1)
            except DomainError:
                raise DrawNotDue(
                    f"draw no. {row.number} can be revealed from block {row.target_block + 1}; "
                    f"the chain is at block {head}. Try again once it has been mined.",
                    reveal_from_block=row.target_block + 1,
                    head_block=head,
                ) from None
        try:
            tx = ledger.send(contract.functions.revealDraw(did, seed))
            reveal_tx = tx.tx_hash
        except LedgerRevert as exc:
            if exc.name == "MeteringLedgerRevealWindowExpired":
                _expire(ctx, row, int(exc.arguments.get("currentBlock", 0)), now)
                raise DrawExpired(f"draw no. {row.number} expired: {exc}") from None
            if exc.name == "MeteringLedgerRevealTooEarly":
                raise DrawNotDue(f"draw no. {row.number} cannot be revealed yet: {exc}") from None
            if exc.name != "MeteringLedgerDrawAlreadyRevealed":
                raise LedgerRefused(
                    f"the contract refused to reveal draw {row.id}: {exc}"
                ) from None
        except LedgerError as exc:
            raise LedgerRefused(f"revealing draw {row.id} failed: {exc}") from None
        state = _read_draw(ledger, contract, did)
    if not state.revealed:
        raise LedgerDisagreement(f"the contract does not show draw {row.id} as revealed")
    if reveal_tx is None:
        found = ledger.guard(
            lambda: onchain.find_event_tx(
                contract, "DrawRevealed", did, from_block=row.commit_block or 0
            )
        )
        reveal_tx = found[0] if found else None
    bhash = ledger.guard(lambda: onchain.block_hash(ledger.w3, state.target_block))
    local = selection.randomness(state.seed, bhash)
    if state.seed != seed or local != state.randomness:
        raise LedgerDisagreement(
            f"draw {row.id}: the contract's randomness 0x{state.randomness.hex()} is not "
            f"SHA-256(seed || blockhash({state.target_block})) = 0x{local.hex()}"
        )
    _publish(
        ctx,
        draw_id=row.id,
        actor=actor,
        state=state,
        block_hash=bhash,
        reveal_tx=reveal_tx,
        now=now,
    )
    today = today_shanghai(now)
    with ctx.db.read() as s:
        view = draw_public(s, ctx=ctx, ref=row.id, today=today, staff=True)
    revealed = next(r for r in view.records if r.type == REVEALED)
    return DrawWritten(
        **view.model_dump(),
        record_id=revealed.record_id,
        leaf_index=revealed.leaf_index,
        anchor_status=revealed.anchor_status,
    )


def committed_inputs(
    session: Session, draw_id: str
) -> tuple[list[selection.SnapshotEntry], list[selection.InspectorEntry], set[tuple[str, str]]]:
    """The snapshot, directory and recusal pairs (as (inspector_id, uscc)) a draw committed to."""
    entries = [
        selection.SnapshotEntry(u, t, r, sec)
        for u, t, r, sec in session.execute(
            select(
                col(DrawSnapshotEntry.uscc),
                col(DrawSnapshotEntry.tier),
                col(DrawSnapshotEntry.region_code),
                col(DrawSnapshotEntry.sector),
            ).where(col(DrawSnapshotEntry.draw_id) == draw_id)
        )
    ]
    inspectors = [
        selection.InspectorEntry(i, u, r)
        for i, u, r in session.execute(
            select(
                col(DrawInspector.inspector_id),
                col(DrawInspector.unit),
                col(DrawInspector.region_code),
            ).where(col(DrawInspector.draw_id) == draw_id)
        )
    ]
    pairs = {
        (i, u)
        for u, i in session.execute(
            select(col(DrawRecusal.uscc), col(DrawRecusal.inspector_id)).where(
                col(DrawRecusal.draw_id) == draw_id
            )
        )
    }
    return entries, inspectors, pairs


def _publish(
    ctx: AppContext,
    *,
    draw_id: str,
    actor: Actor,
    state: onchain.OnChainDraw,
    block_hash: bytes,
    reveal_tx: str | None,
    now: datetime,
) -> None:
    with ctx.db.session() as s, gc_paused():
        # A draw being committed reads which draws are revealed (rotation recusals,
        # docs/draws.md §8.4): holding the same lock makes "revealed when it was
        # committed" exactly "its draw.plan precedes the draw.committed in the log".
        directory.serialise(s, directory.PG_DRAW_LOCK)
        row = s.get(Draw, draw_id)
        assert row is not None
        if row.status not in ("committed", "committing"):
            return  # another request finished it first
        body = row.body
        entries, inspectors, pairs = committed_inputs(s, draw_id)
        # The committed roots must still describe these rows; a mismatch means the
        # tables were altered after the commit, and no plan may come from them.
        for what, computed in (
            ("snapshot_root", selection.snapshot_root(entries)),
            ("inspectors_root", selection.inspectors_root(inspectors)),
            ("recusal_root", selection.recusal_root(pairs, {})),
        ):
            if computed.hex() != body[what]:
                raise LedgerDisagreement(
                    f"draw {draw_id}: the stored inputs give {what} {computed.hex()}, but the "
                    f"draw committed to {body[what]}; the database was altered"
                )
        revealed_body = {
            "draw_id": draw_id,
            "seed": state.seed.hex(),
            "seed_hash": state.seed_hash.hex(),
            "commit_tx": row.commit_tx,
            "commit_block": state.commit_block,
            "target_block": state.target_block,
            "block_hash": block_hash.hex(),
            "randomness": state.randomness.hex(),
            "reveal_tx": reveal_tx,
            "reveal_block": state.reveal_block,
            "chain_id": row.chain_id,
            "contract": row.contract_address,
        }
        revealed = write(
            s,
            RecordDraft(
                type=REVEALED,
                subject=None,
                actor=actor,
                body=revealed_body,
                refs=(Ref("reveals", draw_id),),
            ),
            now=now,
        ).one
        tiers = {e.uscc: e.tier for e in entries}
        try:
            plan = selection.run_draw(
                state.randomness,
                entries,
                body["rates_bp"],
                inspectors,
                body["per_check"],
                conflicts=pairs,
            )
        except selection.NotEnoughInspectors as exc:
            outcome = write(
                s,
                RecordDraft(
                    type=FAILED,
                    subject=None,
                    actor=actor,
                    body={
                        "draw_id": draw_id,
                        "error": "NotEnoughInspectors",
                        "uscc": exc.uscc,
                        "needed": exc.needed,
                        "available": exc.available,
                        "recused": exc.recused,
                        "at_cap": exc.at_cap,
                    },
                    refs=(Ref("fails", draw_id), Ref("follows", revealed.record_id)),
                ),
                now=now,
            ).one
            row.status = "failed"
            row.failure = str(exc)
        else:
            plan_json = selection.plan_to_json(plan)
            outcome = write(
                s,
                RecordDraft(
                    type=PLAN,
                    subject=None,
                    actor=actor,
                    body=plan_json,
                    refs=(Ref("plans", draw_id), Ref("follows", revealed.record_id)),
                ),
                now=now,
            ).one
            due = row.results_due
            _bulk_insert(
                s,
                DrawAssignment,
                (
                    {
                        "draw_id": draw_id,
                        "uscc": uscc,
                        "position": pos,
                        "tier": tiers[uscc],
                        "inspector_ids": list(ids),
                        "due_on": due,
                    }
                    for pos, (uscc, ids) in enumerate(plan.assignments.items())
                ),
            )
            row.status = "revealed"
            row.plan_digest = selection.plan_digest(plan)
        row.commit_block = state.commit_block
        row.target_block = state.target_block
        row.reveal_tx = reveal_tx
        row.reveal_block = state.reveal_block
        row.randomness = state.randomness.hex()
        row.revealed_at = now
        row.revealed_record_id = revealed.record_id
        row.outcome_record_id = outcome.record_id
        row.last_error = None
        s.add(row)
        s.commit()


# --- reconcile -------------------------------------------------------------------------------


@dataclass
class ReconcileReport:
    committed: list[str]
    revealed: list[str]
    expired: list[str]
    failed: dict[str, str]
    waiting: list[str]

    def describe(self) -> str:
        parts = [
            f"{len(self.committed)} commitment(s) completed",
            f"{len(self.revealed)} draw(s) revealed",
            f"{len(self.expired)} expired",
            f"{len(self.waiting)} waiting for their target block",
        ]
        text = ", ".join(parts)
        for draw_id, why in self.failed.items():
            text += f"\n  draw {draw_id}: {why}"
        return text


def reconcile(
    ctx: AppContext, *, reveal: bool = False, now: datetime | None = None
) -> ReconcileReport:
    """Finish every ``committing`` draw; with ``reveal``, reveal those whose target has passed."""
    report = ReconcileReport([], [], [], {}, [])
    with ctx.db.read() as s:
        pending = [
            (d.id, d.status)
            for d in s.execute(
                select(Draw)
                .where(col(Draw.status).in_(["committing", "committed"]))
                .order_by(col(Draw.number))
            ).scalars()
        ]
    for draw_id, status in pending:
        try:
            if status == "committing":
                finish_commit(ctx, draw_id=draw_id, now=now)
                report.committed.append(draw_id)
            if reveal:
                reveal_draw(ctx, principal=None, ref=draw_id, now=now, actor=SYSTEM)
                report.revealed.append(draw_id)
        except DrawNotDue:
            report.waiting.append(draw_id)
        except DrawExpired:
            report.expired.append(draw_id)
        except DomainError as exc:
            report.failed[draw_id] = f"{exc.name}: {exc.detail}"
    return report


# --- reads -----------------------------------------------------------------------------------


def _leaves(session: Session, record_ids: Sequence[str]) -> dict[str, LogLeaf]:
    if not record_ids:
        return {}
    rows = session.execute(
        select(LogLeaf).where(col(LogLeaf.record_id).in_(list(record_ids)))
    ).scalars()
    return {r.record_id: r for r in rows}


def _draw_record(session: Session, leaf: LogLeaf) -> DrawRecord:
    return DrawRecord(
        type=leaf.record_type,
        record_id=leaf.record_id,
        leaf_index=int(leaf.leaf_index),
        canonical=bytes(leaf.canonical).decode("utf-8"),
        anchor_status=anchor_status(session, int(leaf.leaf_index)),
    )


def _body_of(leaf: LogLeaf | None) -> dict[str, Any] | None:
    if leaf is None:
        return None
    env: dict[str, Any] = log.parse_canonical(bytes(leaf.canonical))
    body: dict[str, Any] = env["body"]
    return body


@dataclass(frozen=True)
class DrawResult:
    """A current spot-check record that names a draw (supervision owns those records)."""

    record_id: str
    body: Mapping[str, Any]


ResultsReader = Callable[[Session, Sequence[str]], dict[str, dict[str, list[DrawResult]]]]
_results_reader: ResultsReader | None = None


def set_results_reader(reader: ResultsReader) -> None:
    """Supervision, which records the results and sits above this package, says how to
    read them (``backend/domains.py`` wires it)."""
    global _results_reader
    _results_reader = reader


def current_results(
    session: Session, draw_ids: Sequence[str]
) -> dict[str, dict[str, list[DrawResult]]]:
    """draw id -> uscc -> the current spot-check records that name the draw, oldest first."""
    if _results_reader is None:
        raise RuntimeError("no draw results reader: import backend.domains")
    return _results_reader(session, draw_ids)


def _assignments(
    session: Session, row: Draw, *, today: date, units: Mapping[str, str]
) -> list[AssignmentPublic]:
    results = current_results(session, [row.id])[row.id]
    out = []
    for a in session.execute(
        select(DrawAssignment)
        .where(col(DrawAssignment.draw_id) == row.id)
        .order_by(col(DrawAssignment.position))
    ).scalars():
        found = results.get(a.uscc, [])
        overdue = not found and today > a.due_on
        out.append(
            AssignmentPublic(
                uscc=a.uscc,
                tier=a.tier,
                position=a.position,
                inspectors=[InspectorRef(id=i, unit=units.get(i, "")) for i in a.inspector_ids],
                due_on=a.due_on,
                result_status="recorded" if found else ("overdue" if overdue else "pending"),
                overdue=overdue,
                results=[
                    SpotCheckResult(
                        record_id=r.record_id,
                        result=str(r.body.get("result")),
                        checked_on=r.body.get("checked_on"),
                        authority=r.body.get("authority"),
                    )
                    for r in found
                ],
            )
        )
    return out


def draw_public(
    session: Session,
    *,
    ctx: AppContext,
    ref: str | int,
    today: date | None = None,
    staff: bool = False,
) -> DrawPublic:
    """Everything about a draw that may be published (the seed only once revealed)."""
    today = today or today_shanghai()
    row = load_draw(session, ref)
    record_ids = [
        r for r in (row.id, row.revealed_record_id, row.outcome_record_id) if r is not None
    ]
    leaves = _leaves(session, record_ids)
    committed = _body_of(leaves.get(row.id))
    if committed is None:
        raise DrawNotFound(f"the draw.committed record of draw {row.id} is missing from the log")
    revealed = _body_of(leaves.get(row.revealed_record_id or ""))
    outcome_leaf = leaves.get(row.outcome_record_id or "")
    plan = (
        _body_of(outcome_leaf)
        if outcome_leaf is not None and outcome_leaf.record_type == PLAN
        else None
    )
    directory_rows = [
        DrawInspectorPublic(id=i, unit=u, region_code=r)
        for i, u, r in session.execute(
            select(
                col(DrawInspector.inspector_id),
                col(DrawInspector.unit),
                col(DrawInspector.region_code),
            )
            .where(col(DrawInspector.draw_id) == row.id)
            .order_by(col(DrawInspector.inspector_id))
        )
    ]
    units = {d.id: d.unit for d in directory_rows}
    assignments = _assignments(session, row, today=today, units=units)
    head = None
    if staff:
        ledger = ctx.ledger_if_open()
        if ledger is not None:
            try:
                head = ledger.block_number()
            except DomainError:
                head = None
    return DrawPublic(
        id=row.id,
        number=row.number,
        status=row.status,  # type: ignore[arg-type]
        item=committed["item"],
        regions=committed["scope"]["regions"],
        sectors=committed["scope"]["sectors"],
        inspector_regions=committed["inspector_regions"],
        planned_start=date.fromisoformat(committed["planned_start"]),
        planned_end=date.fromisoformat(committed["planned_end"]),
        results_due=date.fromisoformat(committed["results_due"]),
        rates_bp=committed["rates_bp"],
        per_check=committed["per_check"],
        commitment=committed,
        seed=revealed["seed"] if revealed else None,
        randomness=revealed["randomness"] if revealed else None,
        block_hash=revealed["block_hash"] if revealed else None,
        chain=ChainInfo(
            chain_id=row.chain_id,
            contract_address=row.contract_address,
            ledger_url=ledger_url_for(ctx.settings),
            commit_tx=row.commit_tx,
            commit_block=row.commit_block,
            target_block=row.target_block,
            reveal_tx=row.reveal_tx,
            reveal_block=row.reveal_block,
            head_block=head,
        ),
        records=[_draw_record(session, leaves[r]) for r in record_ids if r in leaves],
        inspectors=directory_rows,
        plan=plan,
        plan_digest=row.plan_digest,
        assignments=assignments,
        failure=row.failure,
        overdue=sum(1 for a in assignments if a.overdue),
        created_at=row.created_at,
    )


def list_draws(
    session: Session,
    *,
    status: str | None = None,
    item_id: int | None = None,
    overdue_only: bool = False,
    limit: int = 20,
    offset: int = 0,
    today: date | None = None,
) -> DrawPage:
    today = today or today_shanghai()
    query = select(Draw)
    if status is not None:
        query = query.where(col(Draw.status) == status)
    if item_id is not None:
        query = query.where(col(Draw.item_id) == item_id)
    if overdue_only:
        # Only revealed draws whose results deadline has passed can have overdue checks.
        query = query.where(col(Draw.status) == "revealed", col(Draw.results_due) < today)
    rows = list(session.execute(query.order_by(col(Draw.number).desc())).scalars())
    ids = [r.id for r in rows]
    counts: dict[str, int] = {}
    for draw_id, n in session.execute(
        select(col(DrawAssignment.draw_id), func.count())
        .where(col(DrawAssignment.draw_id).in_(ids))
        .group_by(col(DrawAssignment.draw_id))
    ):
        counts[draw_id] = int(n)
    results = current_results(session, ids)
    summaries = []
    for r in rows:
        selected = counts.get(r.id) if r.status == "revealed" else None
        recorded = len(results.get(r.id, {})) if r.status == "revealed" else None
        overdue = None
        if selected is not None and recorded is not None:
            overdue = _overdue_count(session, r, results.get(r.id, {}), today)
        if overdue_only and not overdue:
            continue
        body = r.body
        summaries.append(
            DrawSummary(
                id=r.id,
                number=r.number,
                status=r.status,  # type: ignore[arg-type]
                item_id=r.item_id,
                item_title=body["item"]["title"],
                regions=body["scope"]["regions"],
                sectors=body["scope"]["sectors"],
                planned_start=date.fromisoformat(body["planned_start"]),
                planned_end=r.planned_end,
                results_due=r.results_due,
                snapshot_size=body["snapshot_size"],
                selected=selected,
                results_recorded=recorded,
                overdue=overdue,
                created_at=r.created_at,
            )
        )
    return DrawPage(
        total=len(summaries),
        limit=limit,
        offset=offset,
        items=summaries[offset : offset + limit],
    )


def _overdue_count(session: Session, row: Draw, results: Mapping[str, Any], today: date) -> int:
    if today <= row.results_due:
        return 0
    n = 0
    for (uscc,) in session.execute(
        select(col(DrawAssignment.uscc)).where(col(DrawAssignment.draw_id) == row.id)
    ):
        if uscc not in results:
            n += 1
    return n


def snapshot_rows(
    db: Any, draw_id: str, *, batch: int = 20_000
) -> Iterator[tuple[str, str, str, str]]:
    """A draw's snapshot entries in USCC order, streamed in batches (own read sessions)."""
    after = ""
    while True:
        with db.read() as s:
            rows = s.execute(
                select(
                    col(DrawSnapshotEntry.uscc),
                    col(DrawSnapshotEntry.tier),
                    col(DrawSnapshotEntry.region_code),
                    col(DrawSnapshotEntry.sector),
                )
                .where(
                    col(DrawSnapshotEntry.draw_id) == draw_id, col(DrawSnapshotEntry.uscc) > after
                )
                .order_by(col(DrawSnapshotEntry.uscc))
                .limit(batch)
            ).all()
        yield from ((u, t, r, sec) for u, t, r, sec in rows)
        if len(rows) < batch:
            return
        after = rows[-1][0]


def snapshot_json(db: Any, row: Draw) -> Iterator[bytes]:
    """``GET /api/draws/{id}/snapshot`` as JSON chunks (never all 10^6 entries in memory)."""
    head = {
        "draw_id": row.id,
        "snapshot_root": row.body["snapshot_root"],
        "snapshot_size": row.body["snapshot_size"],
    }
    yield json.dumps(head)[:-1].encode() + b', "entries": ['
    sep = ""
    chunk: list[str] = []
    for uscc, tier, region, sector in snapshot_rows(db, row.id):
        chunk.append(
            sep + json.dumps({"uscc": uscc, "tier": tier, "region_code": region, "sector": sector})
        )
        sep = ","
        if len(chunk) >= 5000:
            yield "".join(chunk).encode()
            chunk = []
    yield ("".join(chunk) + "]}").encode()


def recusal_list(session: Session, *, ref: str) -> RecusalList:
    row = load_draw(session, ref)
    grouped: dict[tuple[str, str], RecusalPublic] = {}
    for u, i, source, src_draw in session.execute(
        select(
            col(DrawRecusal.uscc),
            col(DrawRecusal.inspector_id),
            col(DrawRecusal.source),
            col(DrawRecusal.source_draw_id),
        ).where(col(DrawRecusal.draw_id) == row.id)
    ):
        item = grouped.setdefault((u, i), RecusalPublic(uscc=u, inspector_id=i, sources=[]))
        item.sources = sorted({*item.sources, source})
        if src_draw:
            item.previous_draw = src_draw
    items = [grouped[k] for k in sorted(grouped)]
    return RecusalList(
        draw_id=row.id, recusal_root=row.body["recusal_root"], count=len(items), items=items
    )


def draw_for_result(session: Session, *, draw_id: str, uscc: str) -> Draw:
    """For the supervision service: the draw a spot-check result names, if it planned that merchant.

    Raises :class:`DrawNotFound` or :class:`InvalidDraw`.
    """
    row = load_draw(session, draw_id)
    if row.status != "revealed":
        raise InvalidDraw(f"draw no. {row.number} has no plan (status {row.status})")
    if session.get(DrawAssignment, (row.id, uscc)) is None:
        raise InvalidDraw(f"draw no. {row.number} did not select merchant {uscc}")
    return row
