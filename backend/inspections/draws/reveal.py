"""Revealing a draw (:func:`reveal_draw`) and finishing what a crash left (:func:`reconcile`).

Advance the chain past the target block if it can be mined (embedded chain, anvil),
send ``revealDraw``, read the randomness back and check it equals
``SHA-256(seed || blockhash(target))`` computed here; then, in one transaction,
run the selection and append ``draw.revealed`` and ``draw.plan`` (or
``draw.failed``) through the one write path, whose projections write the plan rows
(``backend/inspections/draws/records.py``). A reveal already on chain (a crash
after the transaction) is adopted. A draw whose reveal window has passed gets a
``draw.expired`` record.

This module never reads the clock except through its ``now`` arguments and
:mod:`backend.timeutil`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlmodel import col

from backend.accounts.service import Principal, require_role
from backend.context import AppContext
from backend.errors import DomainError
from backend.inspections import directory, onchain, selection
from backend.inspections.draws import inputs
from backend.inspections.draws.base import (
    DrawAlreadyRevealed,
    DrawExpired,
    DrawNotDue,
    LedgerDisagreement,
    LedgerRefused,
    b32,
    detached,
    gc_paused,
)
from backend.inspections.draws.commit import STAFF, finish_commit, read_onchain
from backend.inspections.draws.reading import draw_public
from backend.inspections.models import Draw, DrawWritten
from backend.inspections.records import EXPIRED, FAILED, PLAN, REVEALED
from backend.ledger.chain import LedgerError
from backend.ledger.contract import LedgerRevert
from backend.ledger.records import SYSTEM, Actor, RecordDraft, Ref
from backend.ledger.write import write
from backend.timeutil import today_shanghai, utcnow


def _expire(ctx: AppContext, row: Draw, head: int, now: datetime) -> None:
    with ctx.db.session() as s:
        fresh = s.get(Draw, row.id)
        assert fresh is not None
        if fresh.status != "committed":
            return
        write(
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
        )
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
        row = detached(s, ref)
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
    did = b32(row.id)
    seed = b32(row.seed)
    contract = ledger.contract()
    state = read_onchain(ledger, contract, did)
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
        state = read_onchain(ledger, contract, did)
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
        entries, inspectors, pairs = inputs.committed_inputs(s, draw_id)
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
            write(
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
            )
        else:
            write(
                s,
                RecordDraft(
                    type=PLAN,
                    subject=None,
                    actor=actor,
                    body=selection.plan_to_json(plan),
                    refs=(Ref("plans", draw_id), Ref("follows", revealed.record_id)),
                ),
                now=now,
            )
        # The records' projections wrote the outcome; what none says is the operator's.
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


