"""Supervision outcomes: recording, correcting and revoking them, and reading them back.

Every outcome is a ``supervision.*`` record (docs/records.md) and a
``supervision_record`` row, appended in one transaction together with the
merchant's re-rating (:func:`backend.credit.service.prepare_rerate`).

- Regulators and admins write outcomes; the router checks the role, and
  :func:`record_outcome` checks it again (a service never trusts its caller).
- Each kind's body and its checks are declared once, in ``kinds.py``;
  :func:`prepare` applies them, and the checks every kind shares
  (``checks.py``): the merchant exists, dates are plausible, a correction acts
  on the newest version.
- A correction is a record of the same kind with ``supersedes`` (the newest
  version only) and a ``correction_reason``; a revocation is a
  ``supervision.revocation`` with ``revokes`` and a ``reason``. Nothing is
  updated: both versions stay in the log and in this table.
- Demonstration units belong to ``backend/pledges``: a single ``demonstration``
  outcome is handed to that service.

Bulk files (``bulk.py``) and complaints (``complaints.py``) write through
:func:`write_prepared` too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, col
from starlette.concurrency import run_in_threadpool

from backend.accounts.models import Role
from backend.accounts.service import Principal, require_role
from backend.context import AppContext
from backend.credit import service as credit
from backend.errors import DomainError, ValidationFailed
from backend.groupcommit import GroupCommit
from backend.inspections.draws import results as inspection_draws
from backend.ledger import log
from backend.ledger.records import Ref
from backend.ledger.status import AnchorStatus
from backend.ledger.write import write
from backend.merchants.service import parse_uscc
from backend.pledges import service as pledges
from backend.pledges.models import DemonstrationAction
from backend.supervision.checks import (
    Checker,
    MerchantState,
    Prepared,
    RowInvalid,
    StateRow,
    SupervisionRecordNotFound,
    checker_for,
    draw_refs,
    load_states,
    text_field,
    validate_date,
)
from backend.supervision.kinds import DEMONSTRATION, OUTCOMES, SPOT_CHECK
from backend.supervision.models import (
    RECORD_TYPE_PREFIX,
    DemonstrationInput,
    RatingBrief,
    SupervisionRecord,
    SupervisionRecordPage,
    SupervisionRecordPublic,
    SupervisionRecordWritten,
    parse_draw_ref,
)
from backend.timeutil import aware, today_shanghai, utcnow

WRITER_ROLES: tuple[Role, ...] = ("regulator", "admin")


# --- checking one outcome --------------------------------------------------------------------


def needs_state(inp: Any) -> bool:
    """Whether checking ``inp`` looks at its merchant's other outcomes."""
    return not OUTCOMES[inp.kind].stateless or getattr(inp, "supersedes", None) is not None


def prepare(c: Checker, inp: Any) -> Prepared:
    """The record ``inp`` makes, checked by its kind's declaration (``kinds.py``) against
    the database and the outcomes :func:`accept`-ed before it."""
    uscc = c.uscc(inp.uscc)
    kind = OUTCOMES[inp.kind]
    # A stateless kind never looks at the merchant's other outcomes: skip loading them.
    st = c.state(uscc) if needs_state(inp) else MerchantState(uscc)
    if kind.check is None:
        raise RowInvalid(kind.elsewhere.format(uscc=uscc), field="kind")
    refs: list[Ref] = []
    replaced: StateRow | None = None
    if kind.correctable:
        if inp.supersedes is not None:
            replaced = c.target(st, inp.supersedes, "supersedes")
            if replaced.kind != inp.kind:
                raise RowInvalid(
                    f"supersedes: record {inp.supersedes} is a {replaced.kind}, not a "
                    f"{inp.kind}; a correction has the kind of the record it corrects",
                    field="supersedes",
                )
            if inp.correction_reason is None:
                raise RowInvalid(
                    "a correction needs a correction_reason", field="correction_reason"
                )
            refs.append(Ref("supersedes", replaced.record_id))
        elif inp.correction_reason is not None:
            raise RowInvalid(
                "correction_reason is only for a correction (with supersedes)",
                field="correction_reason",
            )
    body, eff, draw_id = kind.check(c, inp, uscc, st, replaced, refs)
    if replaced is not None:
        body["correction_reason"] = text_field(
            str(inp.correction_reason), "correction_reason", 500, multiline=True
        )
    return Prepared(inp.kind, uscc, body, refs, eff, draw_id)


def accept(c: Checker, inp: Any, provisional: str) -> Prepared:
    """:func:`prepare` an outcome, then count it as written under its provisional id
    (``row:N``), so that later outcomes of the same batch are checked against it (a
    second correction of one record, an ``out`` ending this ``in``)."""
    prep = prepare(c, inp)
    prep.provisional = provisional
    # A stateless outcome matters to no later one: its merchant's need not load.
    if prep.uscc in c.states or needs_state(inp):
        c.state(prep.uscc).add(
            StateRow(
                provisional,
                prep.kind,
                prep.body,
                [r.to_json() for r in prep.refs],
                prep.effective_on or c.today,
            )
        )
    return prep


# --- writing ------------------------------------------------------------------------------


def write_prepared(
    session: Session,
    items: Sequence[tuple[Principal, Prepared]],
    *,
    now: datetime,
    versions: Sequence[credit.PolicyVersion] | None = None,
) -> tuple[list[log.AppendedRecord], dict[str, Any]]:
    """Append the records, each by its principal, insert their rows and re-rate their
    merchants, in the caller's transaction; returns the records and the new ratings.

    A row of a bulk file may refer to an earlier row of the same file (an ``out``
    ending a listing made above it) by its provisional id ``row:N``. A record's id
    does not depend on where it lands, so the reference names the real id before
    anything is appended. The ratings are computed before the append takes the log
    lock and stored after it (:func:`backend.credit.service.prepare_rerate`), so the
    lock, which every writer waits for, is held for the writes alone.
    """
    today = today_shanghai(now)
    real: dict[str, str] = {}
    sealed: list[log.SealedRecord] = []
    by_merchant: dict[str, list[log.SealedRecord]] = {}
    for who, p in items:
        if any(r.record.startswith("row:") for r in p.refs):
            p.refs = [Ref(r.rel, real.get(r.record, r.record)) for r in p.refs]
        one = log.seal(p.draft(who), at=now)
        if p.provisional is not None:
            real[p.provisional] = one.record_id
        sealed.append(one)
        by_merchant.setdefault(p.uscc, []).append(one)
    pending = credit.prepare_rerate(session, by_merchant, as_of=today, now=now, versions=versions)
    # Appends (taking the log lock until commit), projects the supervision_record rows
    # and stores the ratings computed above.
    done = write(session, sealed, now=now, prepared={"credit": pending})
    return done.records, done.results["credit"]


def _public(row: SupervisionRecord, st: MerchantState | None) -> SupervisionRecordPublic:
    status, by = st.status(row.record_id) if st is not None else ("current", None)
    return SupervisionRecordPublic(
        record_id=row.record_id,
        leaf_index=row.leaf_index,
        uscc=row.uscc,
        kind=row.kind,
        type=RECORD_TYPE_PREFIX + row.kind,
        effective_on=row.effective_on,
        body=row.body,
        refs=row.refs,
        at=aware(row.at),
        status=status,  # type: ignore[arg-type]
        replaced_by=by,
    )


def _brief(r: Any) -> RatingBrief:
    return RatingBrief(tier=r.tier, score=r.score, policy_version=r.policy_version, as_of=r.as_of)


def record_outcome(
    session: Session,
    *,
    principal: Principal | None,
    data: Any,
    now: datetime | None = None,
) -> SupervisionRecordWritten:
    """Record one outcome (or correction, or revocation) and re-rate the merchant."""
    p = require_role(principal, *WRITER_ROLES)
    now = now or utcnow()
    if isinstance(data, DemonstrationInput):
        return _demonstration(session, principal=p, data=data, now=now)
    (result,) = record_outcomes(session, [(p, data)], now=now)
    if isinstance(result, DomainError):
        raise result
    return result


async def submit_outcome(
    ctx: AppContext, *, principal: Principal | None, data: Any
) -> SupervisionRecordWritten:
    """``POST /api/supervision/records``: one outcome, committed together with those of
    concurrent requests (:func:`record_outcomes`), answered once it is durable. Waits on
    the event loop, holding no thread."""
    require_role(principal, *WRITER_ROLES)
    if isinstance(data, DemonstrationInput):

        def one() -> SupervisionRecordWritten:
            with ctx.db.session() as session:
                return record_outcome(session, principal=principal, data=data)

        return await run_in_threadpool(one)

    def run_batch(
        requests: Sequence[tuple[Principal | None, Any]],
    ) -> list[SupervisionRecordWritten | DomainError]:
        with ctx.db.session() as session:
            return record_outcomes(session, requests)

    group = ctx.local("supervision.group_commit", lambda: GroupCommit("supervision", run_batch))
    result: SupervisionRecordWritten = await group.submit_async((principal, data))
    return result


def record_outcomes(
    session: Session,
    requests: Sequence[tuple[Principal | None, Any]],
    *,
    now: datetime | None = None,
) -> list[SupervisionRecordWritten | DomainError]:
    """Record the outcomes of several independent requests in one transaction.

    The group commit behind ``POST /api/supervision/records``
    (:class:`backend.groupcommit.GroupCommit`): concurrent requests share one log
    append, one re-rating and one commit. Each request stands on its own: one that
    fails its checks gets its error back and writes nothing, and the others are
    written; each is checked against those before it, as if they had come one by
    one. Demonstration awards take :func:`record_outcome`. Commits, unless every
    request failed.
    """
    now = now or utcnow()
    today = today_shanghai(now)
    results: list[SupervisionRecordWritten | DomainError | None] = [None] * len(requests)
    accepted: list[tuple[int, Principal, Any]] = []
    for i, (principal, data) in enumerate(requests):
        try:
            p = require_role(principal, *WRITER_ROLES)
            if isinstance(data, DemonstrationInput):
                raise RowInvalid("a demonstration award is recorded on its own", field="kind")
        except DomainError as exc:
            results[i] = exc
            continue
        accepted.append((i, p, data))
    if not accepted:
        return results  # type: ignore[return-value]
    checker = checker_for(
        session,
        [data.uscc for _, _, data in accepted],
        today,
        now=now,
        with_state=[data.uscc for _, _, data in accepted if needs_state(data)],
        draws=draw_refs(data for _, _, data in accepted),
    )
    written: list[tuple[int, Principal, Prepared]] = []
    for i, p, data in accepted:
        try:
            written.append((i, p, accept(checker, data, f"row:{i}")))
        except DomainError as exc:
            results[i] = exc
    if written:
        appended, ratings = write_prepared(
            session, [(p, prep) for _, p, prep in written], now=now, versions=checker.versions
        )
        for (i, _, prep), rec in zip(written, appended, strict=True):
            env = rec.envelope
            results[i] = SupervisionRecordWritten(
                record_id=rec.record_id,
                leaf_index=rec.leaf_index,
                uscc=prep.uscc,
                kind=prep.kind,
                type=env["type"],
                effective_on=prep.effective_on or today,
                body=env["body"],
                refs=env["refs"],
                at=aware(now),
                status="current",
                replaced_by=None,
                # Not yet committed: no checkpoint can cover it yet.
                anchor_status=AnchorStatus(status="pending"),
                credit=_brief(ratings[prep.uscc]),
            )
        # Last: nothing may fail once the batch is committed (the group commit would
        # otherwise be left not knowing what was written).
        session.commit()
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def _demonstration(
    session: Session, *, principal: Principal, data: DemonstrationInput, now: datetime
) -> SupervisionRecordWritten:

    # The demonstration service bounds `on` by the registration and today and
    # `valid_until` by today; the floor of every outcome date still applies first.
    today = today_shanghai(now)
    for name, d in (("on", data.on), ("valid_until", data.valid_until)):
        if d is not None:
            validate_date(d, name, today, may_be_future=True)
    written = pledges.demonstration(
        session,
        principal=principal,
        uscc=data.uscc,
        action=DemonstrationAction(
            action=data.action, on=data.on, valid_until=data.valid_until, reason=data.reason
        ),
        now=now,
    )
    # The pledges service re-rates in its own transaction too; doing it again is harmless.
    result = credit.rerate_merchant(
        session, written.uscc, cause_record_id=written.record_id, now=now
    )
    session.commit()
    leaf = log.get_leaf(session, written.record_id)
    env = log.get_envelope(session, written.record_id)
    return SupervisionRecordWritten(
        record_id=written.record_id,
        leaf_index=written.leaf_index,
        uscc=written.uscc,
        kind=DEMONSTRATION.name,
        type=env["type"],
        effective_on=date.fromisoformat(env["body"]["on"]),
        body=env["body"],
        refs=env["refs"],
        at=leaf.appended_at,
        status="current",
        replaced_by=None,
        anchor_status=written.anchor_status,
        credit=_brief(result),
    )


# --- reads (staff) -------------------------------------------------------------------------


def get_record(session: Session, *, record_id: str) -> SupervisionRecordPublic:
    row = session.get(SupervisionRecord, record_id.strip().lower().removeprefix("0x"))
    if row is None:
        raise SupervisionRecordNotFound(f"no supervision record {record_id}")
    st = load_states(session, [row.uscc])[row.uscc]
    return _public(row, st)


def list_records(
    session: Session,
    *,
    uscc: str | None,
    kind: str | None,
    draw_id: str | None,
    limit: int,
    offset: int,
    usccs: Sequence[str] | None = None,
) -> SupervisionRecordPage:
    """Every outcome, corrections and revocations included (auditors see both versions);
    ``usccs``: only about these merchants (a name search)."""
    conditions: list[Any] = []
    if uscc:
        conditions.append(col(SupervisionRecord.uscc) == parse_uscc(uscc))
    if usccs is not None:
        conditions.append(col(SupervisionRecord.uscc).in_(list(usccs)))
    if kind:
        if kind not in OUTCOMES:
            raise ValidationFailed(f"unknown kind {kind!r}; allowed: {', '.join(OUTCOMES)}")
        conditions.append(col(SupervisionRecord.kind) == kind)
    if draw_id:
        # As an outcome names it: the id in any case, with or without 0x, or the number.
        try:
            ref = parse_draw_ref(draw_id)
        except ValueError as exc:
            raise ValidationFailed(f"draw_id {draw_id!r} {exc}") from None
        if ref.isdigit():
            found = inspection_draws.draw_ids_by_number(session, [int(ref)])
            ref = found.get(int(ref), "")  # no such draw: no records
        conditions.append(col(SupervisionRecord.draw_id) == ref)
    total = int(
        session.execute(
            select(func.count()).select_from(SupervisionRecord).where(*conditions)
        ).scalar_one()
    )
    rows = list(
        session.execute(
            select(SupervisionRecord)
            .where(*conditions)
            .order_by(col(SupervisionRecord.leaf_index).desc())
            .limit(limit)
            .offset(offset)
        ).scalars()
    )
    states = load_states(session, {r.uscc for r in rows})
    return SupervisionRecordPage(
        total=total,
        limit=limit,
        offset=offset,
        items=[_public(r, states[r.uscc]) for r in rows],
    )


# --- draw results ---------------------------------------------------------------------


def draw_results(
    session: Session, draw_ids: Sequence[str]
) -> dict[str, dict[str, list[inspection_draws.DrawResult]]]:
    """draw id -> uscc -> the current spot-check records that name the draw (the reader
    ``backend.inspections.draws.current_results`` uses).

    Current: not superseded by a correction, not revoked (both are later rows
    whose ``target_record_id`` names the record).
    """
    out: dict[str, dict[str, list[inspection_draws.DrawResult]]] = {d: {} for d in draw_ids}
    if not draw_ids:
        return out
    rows = (
        session.execute(
            select(SupervisionRecord).where(
                col(SupervisionRecord.draw_id).in_(list(draw_ids)),
                col(SupervisionRecord.kind) == SPOT_CHECK.name,
            )
        )
        .scalars()
        .all()
    )
    ids = [r.record_id for r in rows]
    replaced: set[str] = set()
    for i in range(0, len(ids), 500):
        replaced.update(
            t
            for (t,) in session.execute(
                select(col(SupervisionRecord.target_record_id)).where(
                    col(SupervisionRecord.target_record_id).in_(ids[i : i + 500])
                )
            )
            if t is not None
        )
    for r in sorted(rows, key=lambda r: r.leaf_index):
        if r.record_id in replaced or r.draw_id is None:
            continue
        found = inspection_draws.DrawResult(r.record_id, r.body)
        out[r.draw_id].setdefault(r.uscc, []).append(found)
    return out

