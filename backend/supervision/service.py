"""Supervision outcomes: the rules for recording, correcting and revoking them.

Every outcome is a ``supervision.*`` record (docs/records.md) and a
``supervision_record`` row, appended in one transaction together with the
merchant's re-rating (:func:`backend.credit.service.prepare_rerate`).

- Regulators and admins write outcomes; the router checks the role, and
  :func:`record_outcome` checks it again (a service never trusts its caller).
- A correction is a record of the same kind with ``supersedes`` (the newest
  version only) and a ``correction_reason``; a revocation is a
  ``supervision.revocation`` with ``revokes`` and a ``reason``. Nothing is
  updated: both versions stay in the log and in this table.
- Every date of an outcome lies on or after :data:`EARLIEST_DATE` (an earlier one
  is a typo, e.g. 0001-01-01); dates of legal effect may not lie in the future, an
  instrument's ``valid_until`` may, up to 50 years ahead (``backend/inputs.py``).
  :func:`validate_date` is the one check.
- A spot check's ``draw_id`` names a revealed draw that selected its merchant
  (``backend/inspections``), looked up once per batch.
- A bulk file is validated as a whole (each row against the database *and* the
  rows before it) and written all or nothing: one bad row, no row written.
- Demonstration units belong to ``backend/pledges``: a single ``demonstration``
  outcome is handed to that service, and bulk files may not contain them.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Table, func, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col
from starlette.concurrency import run_in_threadpool

from backend.accounts import ratelimit
from backend.accounts.models import Role
from backend.accounts.service import Principal, require_role
from backend.context import AppContext
from backend.credit import service as credit
from backend.errors import Conflict, DomainError, NotFound, PayloadTooLarge, ValidationFailed
from backend.groupcommit import GroupCommit
from backend.inputs import validate_horizon
from backend.inspections import draws as inspection_draws
from backend.inspections.models import Draw, DrawAssignment
from backend.ledger import log
from backend.ledger.records import RecordDraft, Ref
from backend.ledger.status import AnchorStatus, anchor_status
from backend.ledger.write import write
from backend.merchants.models import Merchant
from backend.merchants.reference import ABNORMAL_LIST_REASONS
from backend.merchants.service import parse_uscc
from backend.merchants.text import InvalidText, clean_text
from backend.pledges import service as pledges
from backend.pledges.models import DemonstrationAction
from backend.supervision import tickets
from backend.supervision.models import (
    CSV_COLUMNS,
    KINDS,
    RECORD_TYPE_PREFIX,
    AbnormalListInput,
    BulkRowWritten,
    BulkWritten,
    Complaint,
    ComplaintCreate,
    ComplaintPage,
    ComplaintPrivate,
    ComplaintReceived,
    ComplaintReview,
    ComplaintReviewCreate,
    ComplaintReviewed,
    ComplaintReviewPublic,
    ComplaintVerifiedInput,
    DemonstrationInput,
    InstrumentInput,
    ListInput,
    PenaltyInput,
    RatingBrief,
    RevocationInput,
    RowError,
    SeriousListInput,
    SpotCheckInput,
    SupervisionInput,
    SupervisionRecord,
    SupervisionRecordPage,
    SupervisionRecordPublic,
    SupervisionRecordWritten,
    parse_draw_ref,
)
from backend.timeutil import aware, today_shanghai, utcnow

WRITER_ROLES: tuple[Role, ...] = ("regulator", "admin")
SUPERVISION: Table = SupervisionRecord.__table__  # type: ignore[attr-defined]
BULK_MAX_ROWS = 100_000
BULK_MAX_ERRORS = 1000
NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}
)
CSV_TYPES = frozenset({"text/csv", "application/csv"})
COMPLAINTS_PER_ADDRESS = ratelimit.Limit(max_events=10, window_s=3600)
CORRECTABLE = frozenset(
    {"spot_check", "penalty", "complaint_verified", "abnormal_list", "serious_list", "instrument"}
)

EARLIEST_DATE = date(2000, 1, 1)
"""No outcome date lies before this day. Not a rule of law but a guard against typos
(0001-01-01, 20025 for 2025): it admits any history a regulator could import —
the national credit publicity system and its lists date from 2014, the unified
credit code from 2015, and no rating input reaches back more than a few years."""

_ADAPTER: TypeAdapter[Any] = TypeAdapter(SupervisionInput)


class RowInvalid(ValidationFailed):
    """One outcome is invalid; ``field`` names the input field."""

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail, field=field, **extra)
        self.field = field


class DateInFuture(RowInvalid):
    pass


class DateTooEarly(RowInvalid):
    """A date before :data:`EARLIEST_DATE`."""


class UnknownDraw(NotFound):
    """A spot check names a draw that does not exist."""

    def __init__(self, detail: str, *, field: str | None = "draw_id") -> None:
        super().__init__(detail, field=field)
        self.field = field


class DrawNotRevealed(Conflict):
    """A spot check names a draw that has no plan (not revealed yet, failed or expired)."""

    def __init__(self, detail: str, *, field: str | None = "draw_id") -> None:
        super().__init__(detail, field=field)
        self.field = field


class MerchantNotSelected(ValidationFailed):
    """A spot check names a revealed draw that did not select its merchant."""

    def __init__(self, detail: str, *, field: str | None = "draw_id") -> None:
        super().__init__(detail, field=field)
        self.field = field


class SupervisionRecordNotFound(NotFound):
    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail, field=field)
        self.field = field


class AlreadyReplaced(Conflict):
    """The record named was already superseded or revoked: act on its newest version."""

    def __init__(self, detail: str, *, field: str | None = None, newest: str | None = None) -> None:
        super().__init__(detail, field=field, newest=newest)
        self.field = field


class DuplicateOutcome(Conflict):
    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail, field=field)
        self.field = field


class ListingConflict(Conflict):
    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail, field=field)
        self.field = field


class BulkValidationFailed(ValidationFailed):
    """At least one row of a bulk file is invalid; nothing was written."""


class UnsupportedBulkFormat(DomainError):
    status_code = 415


class ComplaintNotFound(NotFound):
    pass


class ComplaintAlreadyReviewed(Conflict):
    pass


# --- a merchant's outcomes as the rules see them ------------------------------------------


@dataclass
class _Row:
    record_id: str
    kind: str
    body: Mapping[str, Any]
    refs: Sequence[Mapping[str, str]]
    effective_on: date


@dataclass
class MerchantState:
    """The outcomes of one merchant: what is current, open, superseded or revoked.

    Built from its ``supervision_record`` rows and extended with each accepted row
    of a bulk file, so later rows are checked against earlier ones.
    """

    uscc: str
    rows: dict[str, _Row] = field(default_factory=dict)
    incoming: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def add(self, row: _Row) -> None:
        self.rows[row.record_id] = row
        for ref in row.refs:
            self.incoming.setdefault(ref["record"], []).append((ref["rel"], row.record_id))

    def replaced_by(self, rid: str) -> tuple[str, str] | None:
        """(``superseded``/``revoked``, by record) or ``None`` for a current version."""
        for rel, src in self.incoming.get(rid, ()):
            if rel == "supersedes":
                return "superseded", src
            if rel == "revokes":
                return "revoked", src
        return None

    def newest(self, rid: str) -> str:
        seen = {rid}
        while True:
            by = self.replaced_by(rid)
            if by is None or by[0] != "superseded" or by[1] in seen:
                return rid
            rid = by[1]
            seen.add(rid)

    def ended_by(self, rid: str) -> str | None:
        for rel, src in self.incoming.get(rid, ()):
            if rel == "closes" and self.replaced_by(src) is None:
                return src
        return None

    def status(self, rid: str) -> tuple[str, str | None]:
        by = self.replaced_by(rid)
        if by is not None:
            return by
        end = self.ended_by(rid)
        return ("ended", end) if end else ("current", None)

    def current(self, kind: str) -> list[_Row]:
        return [
            r
            for r in self.rows.values()
            if r.kind == kind and self.replaced_by(r.record_id) is None
        ]

    def open_listings(self, kind: str) -> list[_Row]:
        return [
            r
            for r in self.current(kind)
            if r.body.get("action") == "in" and self.ended_by(r.record_id) is None
        ]


def _row_of(r: SupervisionRecord) -> _Row:
    return _Row(r.record_id, r.kind, r.body, r.refs, r.effective_on)


def load_states(session: Session, usccs: Iterable[str]) -> dict[str, MerchantState]:
    wanted = sorted(set(usccs))
    states = {u: MerchantState(u) for u in wanted}
    t = SUPERVISION.c
    conn = session.connection()
    for i in range(0, len(wanted), 500):
        rows = conn.execute(
            select(t.uscc, t.record_id, t.kind, t.body, t.refs, t.effective_on)
            .where(t.uscc.in_(wanted[i : i + 500]))
            .order_by(t.leaf_index)
        )
        for uscc, rid, kind, body, refs, eff in rows:
            states[uscc].add(_Row(rid, kind, body, refs, eff))
    return states


STATELESS = frozenset({"spot_check", "instrument"})
"""Kinds whose checks never look at the merchant's other outcomes (unless correcting)."""


def needs_state(inp: Any) -> bool:
    return inp.kind not in STATELESS or getattr(inp, "supersedes", None) is not None


# --- validating one outcome -----------------------------------------------------------------


@dataclass
class Prepared:
    kind: str
    uscc: str
    body: dict[str, Any]
    refs: list[Ref]
    effective_on: date | None
    draw_id: str | None = None
    provisional: str | None = None
    """``row:N`` while a bulk file is checked, before the record has its real id."""

    def draft(self, principal: Principal) -> RecordDraft:
        return RecordDraft(
            type=RECORD_TYPE_PREFIX + self.kind,
            subject=self.uscc,
            actor=principal.actor,
            body=self.body,
            refs=tuple(self.refs),
        )


def _text(value: str, name: str, max_len: int, *, multiline: bool = False) -> str:
    try:
        return clean_text(value, field=name, max_len=max_len, multiline=multiline)
    except InvalidText as exc:
        raise RowInvalid(exc.detail, **exc.extra) from None


def validate_date(d: date, name: str, today: date, *, may_be_future: bool = False) -> str:
    """The one check of an outcome's date ``name``: not before :data:`EARLIEST_DATE`
    and, unless ``may_be_future`` (an instrument's ``valid_until``), not after
    ``today``; a future date at most :data:`backend.inputs.HORIZON_YEARS` ahead.
    Returns the date as the record writes it."""
    validate_horizon(d, field=name, today=today)
    if d < EARLIEST_DATE:
        raise DateTooEarly(
            f"{name} {d} is before {EARLIEST_DATE}, the earliest date an outcome may have; "
            "check the year",
            field=name,
        )
    if d > today and not may_be_future:
        raise DateInFuture(
            f"{name} {d} is in the future (today is {today} in Asia/Shanghai); record an "
            "outcome once it has happened",
            field=name,
        )
    return d.isoformat()


def _is_person(uscc: str) -> bool:
    # Registered by market regulation (9) as an individual business (2): 个体工商户.
    return uscc[0] == "9" and uscc[1] == "2"


@dataclass
class Checker:
    """Validates outcomes against the database state and the rows accepted before."""

    session: Session
    today: date
    states: dict[str, MerchantState]
    merchants: set[str]
    versions: list[credit.PolicyVersion]
    draws: dict[str, tuple[int, str] | None] = field(default_factory=dict)
    """draw id -> (number, status), ``None`` for no such draw (:meth:`load_draws`)."""
    selected: set[tuple[str, str]] = field(default_factory=set)
    """(draw id, uscc) of the looked-up pairs whose revealed draw selected the merchant."""
    looked_up: set[tuple[str, str]] = field(default_factory=set)
    numbers: dict[int, str | None] = field(default_factory=dict)
    """draw number -> draw id, ``None`` for no such draw (a form may name a draw by number)."""

    def _draw_id_of(self, ref: str) -> str | None:
        """The draw id ``ref`` names: an id, or a draw number looked up already."""
        return self.numbers.get(int(ref)) if ref.isdigit() else ref

    def uscc(self, raw: str) -> str:
        try:
            code = parse_uscc(raw)
        except ValidationFailed as exc:
            raise RowInvalid(exc.detail, **{**exc.extra, "field": "uscc"}) from None
        if code not in self.merchants:
            raise SupervisionRecordNotFound(
                f"no registered merchant with credit code {code}; register it first",
                field="uscc",
            )
        return code

    def load_draws(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Look up the draws of (draw id, uscc) pairs, and whether each selected its
        merchant: two queries for a whole batch (per 500), none for pairs seen before;
        a draw named by its number costs one more."""
        pairs = list(pairs)
        conn = self.session.connection()
        numbers = sorted({int(d) for d, _ in pairs if d.isdigit()} - self.numbers.keys())
        for i in range(0, len(numbers), 500):
            nums = numbers[i : i + 500]
            by_number: dict[int, str] = {
                int(n): str(did)
                for n, did in conn.execute(
                    select(col(Draw.number), col(Draw.id)).where(col(Draw.number).in_(nums))
                )
            }
            for n in nums:
                self.numbers[n] = by_number.get(n)
        todo = {
            (did, u) for ref, u in pairs if (did := self._draw_id_of(ref)) is not None
        } - self.looked_up
        if not todo:
            return
        ids = sorted({d for d, _ in todo} - self.draws.keys())
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            found = {
                d: (int(n), str(st))
                for d, n, st in conn.execute(
                    select(col(Draw.id), col(Draw.number), col(Draw.status)).where(
                        col(Draw.id).in_(chunk)
                    )
                )
            }
            for d in chunk:
                self.draws[d] = found.get(d)
        # Only a revealed draw has a plan (its assignments) to look the merchant up in.
        wanted = sorted(
            (d, u) for d, u in todo if (info := self.draws[d]) is not None and info[1] == "revealed"
        )
        for i in range(0, len(wanted), 500):
            self.selected.update(
                (d, u)
                for d, u in conn.execute(
                    select(col(DrawAssignment.draw_id), col(DrawAssignment.uscc)).where(
                        tuple_(col(DrawAssignment.draw_id), col(DrawAssignment.uscc)).in_(
                            wanted[i : i + 500]
                        )
                    )
                )
            )
        self.looked_up |= todo

    def draw(self, ref: str, uscc: str) -> str:
        """The id of the draw ``ref`` (its id, or its number) if it is a revealed draw
        (its plan is final) that selected ``uscc``; otherwise the error says which of
        the three it is not."""
        self.load_draws([(ref, uscc)])
        draw_id = self._draw_id_of(ref)
        if draw_id is None:
            raise UnknownDraw(
                f"draw_id: there is no draw no. {ref} (spot check of merchant {uscc}); "
                "name the draw by its number or the id on its page, or leave draw_id out"
            )
        info = self.draws[draw_id]
        if info is None:
            raise UnknownDraw(
                f"draw_id: there is no draw {draw_id} (spot check of merchant {uscc}); "
                "name the draw by its number or the id on its page, or leave draw_id out"
            )
        number, status = info
        if status != "revealed":
            when = "yet" if status in ("committing", "committed") else "ever"
            raise DrawNotRevealed(
                f"draw_id: draw no. {number} ({draw_id}) is {status}, not revealed: it has "
                f"selected no merchant {when}, so merchant {uscc}'s spot check cannot come "
                "from it"
            )
        if (draw_id, uscc) not in self.selected:
            raise MerchantNotSelected(
                f"draw_id: draw no. {number} ({draw_id}) did not select merchant {uscc}; a "
                "check the draw did not plan is recorded without draw_id"
            )
        return draw_id

    def state(self, uscc: str) -> MerchantState:
        st = self.states.get(uscc)
        if st is None:
            st = self.states[uscc] = load_states(self.session, [uscc])[uscc]
        return st

    def target(self, st: MerchantState, rid: str, name: str) -> _Row:
        row = st.rows.get(rid)
        if row is None:
            raise SupervisionRecordNotFound(
                f"{name}: merchant {st.uscc} has no supervision record {rid}", field=name
            )
        by = st.replaced_by(rid)
        if by is not None:
            newest = st.newest(rid)
            what = f"superseded by {by[1]}" if by[0] == "superseded" else f"revoked by {by[1]}"
            raise AlreadyReplaced(
                f"{name}: record {rid} was already {what}"
                + (f"; act on the newest version {newest}" if by[0] == "superseded" else ""),
                field=name,
                newest=newest if by[0] == "superseded" else None,
            )
        return row

    def accept(self, inp: Any, provisional: str) -> Prepared:
        """:meth:`prepare` an outcome, then count it as written under its provisional
        id (``row:N``), so that later outcomes of the same batch are checked against
        it (a second correction of one record, an ``out`` ending this ``in``)."""
        prep = self.prepare(inp)
        prep.provisional = provisional
        # A stateless outcome matters to no later one: its merchant's need not load.
        if prep.uscc in self.states or needs_state(inp):
            self.state(prep.uscc).add(
                _Row(
                    provisional,
                    prep.kind,
                    prep.body,
                    [r.to_json() for r in prep.refs],
                    prep.effective_on or self.today,
                )
            )
        return prep

    def prepare(self, inp: Any) -> Prepared:
        uscc = self.uscc(inp.uscc)
        # A stateless kind never looks at the merchant's other outcomes: skip loading them.
        st = self.state(uscc) if needs_state(inp) else MerchantState(uscc)
        if isinstance(inp, RevocationInput):
            return self._revocation(inp, uscc, st)
        if isinstance(inp, DemonstrationInput):
            raise RowInvalid(
                "demonstration units are awarded one at a time: use POST /api/supervision/records "
                f"or POST /api/merchants/{uscc}/demonstration",
                field="kind",
            )
        refs: list[Ref] = []
        replaced: _Row | None = None
        if inp.supersedes is not None:
            replaced = self.target(st, inp.supersedes, "supersedes")
            if replaced.kind != inp.kind:
                raise RowInvalid(
                    f"supersedes: record {inp.supersedes} is a {replaced.kind}, not a {inp.kind}; "
                    "a correction has the kind of the record it corrects",
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
        body, eff, draw_id = self._body(inp, uscc, st, replaced, refs)
        if replaced is not None:
            body["correction_reason"] = _text(
                str(inp.correction_reason), "correction_reason", 500, multiline=True
            )
        return Prepared(inp.kind, uscc, body, refs, eff, draw_id)

    def _body(
        self, inp: Any, uscc: str, st: MerchantState, replaced: _Row | None, refs: list[Ref]
    ) -> tuple[dict[str, Any], date, str | None]:
        today = self.today
        if isinstance(inp, SpotCheckInput):
            checked_on = validate_date(inp.checked_on, "checked_on", today)
            draw_id = None if inp.draw_id is None else self.draw(inp.draw_id, uscc)
            return (
                {
                    "result": inp.result,
                    "checked_on": checked_on,
                    "authority": _text(inp.authority, "authority", 200),
                    "draw_id": draw_id,
                    "evidence_sha256": inp.evidence_sha256,
                },
                inp.checked_on,
                draw_id,
            )
        if isinstance(inp, PenaltyInput):
            decided_on = validate_date(inp.decided_on, "decided_on", today)
            decision_no = _text(inp.decision_no, "decision_no", 200)
            for r in st.current("penalty"):
                if r.body.get("decision_no") == decision_no and r is not replaced:
                    raise DuplicateOutcome(
                        f"merchant {uscc} already has penalty {decision_no} (record "
                        f"{r.record_id}); correct it with supersedes instead",
                        field="decision_no",
                    )
            lower = inp.lower_amount
            if lower is None:
                try:
                    policy = credit.in_force(self.versions, inp.decided_on).policy
                except DomainError:
                    policy = self.versions[-1].policy
                lower = policy.is_lower_amount(amount_fen=inp.amount_fen, person=_is_person(uscc))
            return (
                {
                    "decision_no": decision_no,
                    "decided_on": decided_on,
                    "authority": _text(inp.authority, "authority", 200),
                    "amount_fen": inp.amount_fen,
                    "lower_amount": lower,
                    "circulated_criticism": inp.circulated_criticism,
                    "special_sector": inp.special_sector,
                    "performed": inp.performed,
                    "evidence_sha256": inp.evidence_sha256,
                },
                inp.decided_on,
                None,
            )
        if isinstance(inp, ComplaintVerifiedInput):
            cid = _text(inp.complaint_id, "complaint_id", 64)
            for r in st.current("complaint_verified"):
                if r.body.get("complaint_id") == cid and r is not replaced:
                    raise DuplicateOutcome(
                        f"complaint {cid} about merchant {uscc} is already recorded (record "
                        f"{r.record_id})",
                        field="complaint_id",
                    )
            return (
                {
                    "complaint_id": cid,
                    "verified_on": validate_date(inp.verified_on, "verified_on", today),
                    "summary": _text(inp.summary, "summary", 500, multiline=True),
                },
                inp.verified_on,
                None,
            )
        if isinstance(inp, AbnormalListInput | SeriousListInput):
            return self._listing(inp, uscc, st, replaced, refs), inp.on, None
        if isinstance(inp, InstrumentInput):
            verified_on = validate_date(inp.verified_on, "verified_on", today)
            valid_until = validate_date(inp.valid_until, "valid_until", today, may_be_future=True)
            if inp.valid_until < inp.verified_on:
                raise RowInvalid(
                    f"valid_until {inp.valid_until} is before verified_on {inp.verified_on}",
                    field="valid_until",
                )
            return (
                {
                    "instrument_type": _text(inp.instrument_type, "instrument_type", 200),
                    "serial": _text(inp.serial, "serial", 100),
                    "certificate_no": _text(inp.certificate_no, "certificate_no", 100),
                    "verified_on": verified_on,
                    "valid_until": valid_until,
                },
                inp.verified_on,
                None,
            )
        raise RowInvalid(f"unknown kind {inp.kind!r}", field="kind")  # pragma: no cover

    def _listing(
        self, inp: ListInput, uscc: str, st: MerchantState, replaced: _Row | None, refs: list[Ref]
    ) -> dict[str, Any]:
        kind = inp.kind  # type: ignore[attr-defined]
        name = "abnormal-operations list" if kind == "abnormal_list" else "serious-violation list"
        on = validate_date(inp.on, "on", self.today)
        if replaced is not None and replaced.body.get("action") != inp.action:
            raise RowInvalid(
                f"a correction keeps the action: record {replaced.record_id} is an "
                f"{replaced.body.get('action')!r}",
                field="action",
            )
        if inp.action == "in":
            if inp.closes is not None:
                raise RowInvalid("closes is only for action 'out'", field="closes")
            if replaced is not None and st.ended_by(replaced.record_id) is not None:
                raise ListingConflict(
                    f"listing {replaced.record_id} has already ended; correct or revoke its 'out' "
                    "record first",
                    field="supersedes",
                )
            if kind == "abnormal_list":
                if inp.reason is None or inp.reason not in ABNORMAL_LIST_REASONS:
                    allowed = ", ".join(
                        f"{c} ({r.name})" for c, r in ABNORMAL_LIST_REASONS.items()
                    )
                    raise RowInvalid(
                        f"reason must be one of the listing reasons: {allowed}; got {inp.reason!r}",
                        field="reason",
                    )
                reason = inp.reason
                clash = [
                    r for r in st.open_listings(kind)
                    if r.body.get("reason") == reason and r is not replaced
                ]
            else:
                if inp.reason is None:
                    raise RowInvalid("reason is required", field="reason")
                reason = _text(inp.reason, "reason", 500, multiline=True)
                clash = [r for r in st.open_listings(kind) if r is not replaced]
            if clash:
                raise ListingConflict(
                    f"merchant {uscc} is already on the {name} since {clash[0].body.get('on')} "
                    f"(record {clash[0].record_id})",
                    field="action",
                )
            return {"action": "in", "on": on, "reason": reason}

        # action == "out"
        if replaced is not None:
            targets = [st.rows[ref["record"]] for ref in replaced.refs
                       if ref["rel"] == "closes" and ref["record"] in st.rows]
            if inp.closes is not None and inp.closes not in {t.record_id for t in targets}:
                raise RowInvalid(
                    "a correction of an 'out' ends the same listing(s) as the record it corrects",
                    field="closes",
                )
        elif inp.closes is not None:
            target = self.target(st, inp.closes, "closes")
            if target.kind != kind or target.body.get("action") != "in":
                raise RowInvalid(
                    f"closes: record {inp.closes} is not a listing on the {name}", field="closes"
                )
            if st.ended_by(target.record_id) is not None:
                raise ListingConflict(
                    f"closes: listing {inp.closes} has already ended", field="closes"
                )
            targets = [target]
        else:
            targets = st.open_listings(kind)
            if not targets:
                raise ListingConflict(f"merchant {uscc} is not on the {name}", field="action")
        for t in targets:
            if inp.on < t.effective_on:
                raise RowInvalid(
                    f"on {inp.on} is before the listing it ends ({t.effective_on}, record "
                    f"{t.record_id})",
                    field="on",
                )
            refs.append(Ref("closes", t.record_id))
        if inp.reason is not None:
            reason = _text(inp.reason, "reason", 500, multiline=True)
        elif kind == "abnormal_list":
            cures = [ABNORMAL_LIST_REASONS[c].cure for c in
                     dict.fromkeys(str(t.body.get("reason")) for t in targets)
                     if c in ABNORMAL_LIST_REASONS]
            if not cures:
                raise RowInvalid("reason is required", field="reason")
            reason = "；".join(cures)
        else:
            raise RowInvalid("reason is required", field="reason")
        return {"action": "out", "on": on, "reason": reason}

    def _revocation(self, inp: RevocationInput, uscc: str, st: MerchantState) -> Prepared:
        target = self.target(st, inp.revokes, "revokes")
        if target.kind == "revocation":
            raise RowInvalid(
                "a revocation is final and cannot be revoked; record the outcome again instead",
                field="revokes",
            )
        return Prepared(
            "revocation",
            uscc,
            {"reason": _text(inp.reason, "reason", 500, multiline=True)},
            [Ref("revokes", target.record_id)],
            None,
        )


def _normalised(raw: str) -> str | None:
    try:
        return parse_uscc(raw)
    except ValidationFailed:
        return None


def draw_refs(inputs: Iterable[Any]) -> list[tuple[str, str]]:
    """(draw id, uscc as given) of every spot check that names a draw."""
    return [
        (inp.draw_id, inp.uscc)
        for inp in inputs
        if isinstance(inp, SpotCheckInput) and inp.draw_id is not None
    ]


def _checker(
    session: Session,
    usccs: Iterable[str],
    today: date,
    *,
    now: datetime,
    with_state: Iterable[str] | None = None,
    draws: Iterable[tuple[str, str]] = (),
) -> Checker:
    """A checker knowing which merchants exist, with the outcomes of ``with_state``
    (default: of all ``usccs``) loaded, and the ``draws`` (:func:`draw_refs`) looked
    up; others load when first needed."""
    codes = {c for c in map(_normalised, usccs) if c is not None}
    known: set[str] = set()
    wanted = sorted(codes)
    for i in range(0, len(wanted), 500):
        known.update(
            session.execute(
                select(col(Merchant.uscc)).where(col(Merchant.uscc).in_(wanted[i : i + 500]))
            ).scalars()
        )
    stateful = known if with_state is None else known.intersection(
        c for c in map(_normalised, with_state) if c is not None
    )
    checker = Checker(
        session=session,
        today=today,
        states=load_states(session, stateful),
        merchants=known,
        versions=credit.ensure_policy(session, now=now),
    )
    # An unknown merchant fails before its draw is looked at: skip its pairs.
    checker.load_draws((d, c) for d, raw in draws if (c := _normalised(raw)) in known)
    return checker


# --- writing ------------------------------------------------------------------------------


def _write(
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
    checker = _checker(
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
            written.append((i, p, checker.accept(data, f"row:{i}")))
        except DomainError as exc:
            results[i] = exc
    if written:
        appended, ratings = _write(
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
        kind="demonstration",
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


# --- bulk ---------------------------------------------------------------------------------


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Spreadsheet software in China saves CSV in GB18030 (GBK) by default.
        try:
            return data.decode("gb18030")
        except UnicodeDecodeError:
            raise BulkValidationFailed(
                "the file is neither UTF-8 nor GB18030 text", errors=[], error_count=0
            ) from None


def parse_bulk(
    content_type: str | None, data: bytes
) -> tuple[list[tuple[int, Any]], list[RowError]]:
    """(row number, raw row) pairs and the errors found while reading the file."""
    media = _media_type(content_type)
    textdata = _decode(data)
    rows: list[tuple[int, Any]] = []
    errors: list[RowError] = []
    if media in NDJSON_TYPES:
        for n, line in enumerate(textdata.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(RowError(row=n, field=None, problem=f"not JSON: {exc.msg}"))
                continue
            except RecursionError:
                errors.append(RowError(row=n, field=None, problem="not JSON: nested too deeply"))
                continue
            if not isinstance(value, dict):
                errors.append(
                    RowError(row=n, field=None, problem="each line must be a JSON object")
                )
                continue
            rows.append((n, value))
        return rows, errors
    if media in CSV_TYPES:
        reader = csv.reader(io.StringIO(textdata, newline=""))
        header = next(reader, None)
        if header is None:
            return rows, errors
        names = [h.strip() for h in header]
        unknown = [h for h in names if h not in CSV_COLUMNS]
        for h in unknown:
            errors.append(
                RowError(
                    row=0,
                    field=h,
                    problem=f"unknown column {h!r}; columns are: {', '.join(CSV_COLUMNS)}",
                )
            )
        dupes = {h for h in names if names.count(h) > 1}
        for h in sorted(dupes):
            errors.append(RowError(row=0, field=h, problem=f"column {h!r} appears twice"))
        if "kind" not in names or "uscc" not in names:
            errors.append(RowError(row=0, field=None, problem="the header needs kind and uscc"))
        for n, cells in enumerate(reader, start=1):
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(names):
                errors.append(
                    RowError(
                        row=n,
                        field=None,
                        problem=f"row has {len(cells)} cells, the header has {len(names)}",
                    )
                )
                continue
            rows.append((n, {k: v.strip() for k, v in zip(names, cells, strict=True) if v.strip()}))
        return rows, errors
    raise UnsupportedBulkFormat(
        f"send a CSV file (Content-Type: text/csv, with a header row) or JSON lines "
        f"(Content-Type: application/x-ndjson); got {content_type!r}"
    )


def _pydantic_errors(n: int, exc: ValidationError) -> list[RowError]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] in KINDS:
            loc = loc[1:]
        typ = err.get("type", "")
        if typ in ("union_tag_not_found", "union_tag_invalid"):
            out.append(
                RowError(row=n, field="kind", problem=f"kind must be one of: {', '.join(KINDS)}")
            )
            continue
        problem = err.get("msg", "invalid")
        if typ == "extra_forbidden":
            problem = "not a field of this kind"
        out.append(RowError(row=n, field=".".join(loc) or None, problem=problem))
    return out


def record_bulk(
    session: Session,
    *,
    principal: Principal | None,
    content_type: str | None,
    data: bytes,
    now: datetime | None = None,
) -> BulkWritten:
    """Validate every row, then write all of them in one transaction, or none."""
    p = require_role(principal, *WRITER_ROLES)
    now = now or utcnow()
    today = today_shanghai(now)
    raw_rows, errors = parse_bulk(content_type, data)
    if len(raw_rows) > BULK_MAX_ROWS:
        raise PayloadTooLarge(
            f"{len(raw_rows)} rows in one file; at most {BULK_MAX_ROWS} — split the file"
        )
    parsed: list[tuple[int, Any]] = []
    for n, raw in raw_rows:
        try:
            parsed.append((n, _ADAPTER.validate_python(raw)))
        except ValidationError as exc:
            errors.extend(_pydantic_errors(n, exc))
    checker = _checker(
        session,
        [inp.uscc for _, inp in parsed],
        today,
        now=now,
        with_state=[inp.uscc for _, inp in parsed if needs_state(inp)],
        draws=draw_refs(inp for _, inp in parsed),
    )
    prepared: list[tuple[int, Prepared]] = []
    for n, inp in parsed:
        try:
            prepared.append((n, checker.accept(inp, f"row:{n}")))
        except DomainError as exc:
            errors.append(RowError(row=n, field=getattr(exc, "field", None), problem=exc.detail))
    if not errors and not prepared:
        errors.append(RowError(row=0, field=None, problem="the file has no rows"))
    if errors:
        errors.sort(key=lambda e: e.row)
        bad_rows = len({e.row for e in errors})
        raise BulkValidationFailed(
            f"{bad_rows} of {len(raw_rows)} row(s) are invalid ({len(errors)} problem(s)); "
            "nothing was written",
            errors=[e.model_dump() for e in errors[:BULK_MAX_ERRORS]],
            error_count=len(errors),
            errors_truncated=len(errors) > BULK_MAX_ERRORS,
        )
    appended, ratings = _write(
        session, [(p, x) for _, x in prepared], now=now, versions=checker.versions
    )
    session.commit()
    return BulkWritten(
        count=len(appended),
        merchants=len(ratings),
        anchor_status=anchor_status(session, appended[-1].leaf_index),
        records=[
            BulkRowWritten(row=n, record_id=rec.record_id, leaf_index=rec.leaf_index)
            for (n, _), rec in zip(prepared, appended, strict=True)
        ],
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
        if kind not in KINDS:
            raise ValidationFailed(f"unknown kind {kind!r}; allowed: {', '.join(KINDS)}")
        conditions.append(col(SupervisionRecord.kind) == kind)
    if draw_id:
        # As an outcome names it: the id in any case, with or without 0x, or the number.
        try:
            ref = parse_draw_ref(draw_id)
        except ValueError as exc:
            raise ValidationFailed(f"draw_id {draw_id!r} {exc}") from None
        if ref.isdigit():
            found = session.execute(
                select(col(Draw.id)).where(col(Draw.number) == int(ref))
            ).scalar_one_or_none()
            ref = found or ""  # no such draw: no records
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


# --- complaints -----------------------------------------------------------------------------


def complaint_key(address: str | None) -> str:
    return f"complaint:{address or 'unknown'}"[:200]


def submit_complaint(
    session: Session,
    *,
    principal: Principal | None,
    data: ComplaintCreate,
    address: str | None,
    now: datetime | None = None,
) -> ComplaintReceived:
    """Anyone may complain, anonymously too; limited per client address."""
    now = now or utcnow()
    # Taken atomically; committed (or rolled back) with the complaint.
    ratelimit.take(
        session,
        key=complaint_key(address),
        limit=COMPLAINTS_PER_ADDRESS,
        now=now,
        what="complaints from this address",
    )
    code = parse_uscc(data.uscc)
    if session.get(Merchant, code) is None:
        raise SupervisionRecordNotFound(
            f"no registered merchant with credit code {code}", field="uscc"
        )
    content = _text(data.content, "content", 2000, multiline=True)
    contact = None
    if data.contact is not None and data.contact.strip():
        contact = _text(data.contact, "contact", 100)
    complaint = Complaint(
        id=uuid.uuid4().hex,
        uscc=code,
        content=content,
        contact=contact,
        submitted_at=now,
        account_id=principal.account_id if principal is not None else None,
    )
    session.add(complaint)
    issued = tickets.issue(session, complaint_id=complaint.id, now=now)
    session.commit()
    return ComplaintReceived(
        complaint_id=complaint.id,
        uscc=code,
        submitted_at=now,
        ticket=issued.ticket,
        check_code=issued.code,
    )


def _complaint_private(c: Complaint, review: ComplaintReview | None) -> ComplaintPrivate:
    return ComplaintPrivate(
        complaint_id=c.id,
        uscc=c.uscc,
        content=c.content,
        contact=c.contact,
        submitted_at=aware(c.submitted_at),
        status="pending" if review is None else review.outcome,  # type: ignore[arg-type]
        review=None
        if review is None
        else ComplaintReviewPublic(
            outcome=review.outcome,  # type: ignore[arg-type]
            decided_on=review.decided_on,
            summary=review.summary,
            record_id=review.record_id,
        ),
    )


def get_complaint(session: Session, *, complaint_id: str) -> ComplaintPrivate:
    c = session.get(Complaint, complaint_id)
    if c is None:
        raise ComplaintNotFound(f"no complaint {complaint_id}")
    return _complaint_private(c, session.get(ComplaintReview, complaint_id))


def list_complaints(
    session: Session,
    *,
    status: str | None,
    uscc: str | None,
    limit: int,
    offset: int,
    usccs: Sequence[str] | None = None,
) -> ComplaintPage:
    """Complaints, newest first; ``usccs``: only about these merchants (a name search)."""
    query = select(Complaint, ComplaintReview).join(
        ComplaintReview,
        ComplaintReview.complaint_id == Complaint.id,  # type: ignore[arg-type]
        isouter=True,
    )
    if uscc:
        query = query.where(col(Complaint.uscc) == parse_uscc(uscc))
    if usccs is not None:
        query = query.where(col(Complaint.uscc).in_(list(usccs)))
    if status == "pending":
        query = query.where(col(ComplaintReview.complaint_id).is_(None))
    elif status in ("verified", "rejected"):
        query = query.where(col(ComplaintReview.outcome) == status)
    elif status is not None:
        raise ValidationFailed(f"status must be pending, verified or rejected; got {status!r}")
    total = int(session.execute(select(func.count()).select_from(query.subquery())).scalar_one())
    rows = session.execute(
        query.order_by(Complaint.submitted_at.desc()).limit(limit).offset(offset)  # type: ignore[attr-defined]
    ).all()
    return ComplaintPage(
        total=total,
        limit=limit,
        offset=offset,
        items=[_complaint_private(c, r) for c, r in rows],
    )


def review_complaint(
    session: Session,
    *,
    principal: Principal | None,
    complaint_id: str,
    data: ComplaintReviewCreate,
    now: datetime | None = None,
) -> ComplaintReviewed:
    """A regulator verifies (appends ``supervision.complaint_verified``) or rejects a complaint."""
    p = require_role(principal, *WRITER_ROLES)
    now = now or utcnow()
    today = today_shanghai(now)
    # Locked (PostgreSQL; SQLite's write transaction is exclusive already): concurrent
    # reviews of one complaint take turns, and the later ones find the review.
    c = session.get(Complaint, complaint_id, with_for_update=True)
    if c is None:
        raise ComplaintNotFound(f"no complaint {complaint_id}")
    if session.get(ComplaintReview, complaint_id) is not None:
        raise ComplaintAlreadyReviewed(f"complaint {complaint_id} has already been reviewed")
    on = data.decided_on or today
    submitted = today_shanghai(aware(c.submitted_at))
    if not submitted <= on <= today:
        raise RowInvalid(
            f"decided_on {on} must lie between the complaint ({submitted}) and today ({today})",
            field="decided_on",
        )
    summary = _text(data.summary, "summary", 500, multiline=True)
    rec = None
    if data.outcome == "verified":
        checker = _checker(session, [c.uscc], today, now=now)
        prepared = checker.prepare(
            ComplaintVerifiedInput(
                kind="complaint_verified", uscc=c.uscc, complaint_id=c.id, verified_on=on,
                summary=summary,
            )
        )
        (rec,), _ = _write(session, [(p, prepared)], now=now, versions=checker.versions)
    review = ComplaintReview(
        complaint_id=c.id,
        outcome=data.outcome,
        decided_on=on,
        summary=summary,
        at=now,
        account_id=p.account_id,
        record_id=rec.record_id if rec else None,
    )
    session.add(review)
    try:
        session.flush()
    except IntegrityError:
        # A concurrent review of the same complaint committed first (its key exists):
        # nothing of this one is written, the record appended above included.
        session.rollback()
        raise ComplaintAlreadyReviewed(
            f"complaint {complaint_id} has already been reviewed"
        ) from None
    session.commit()
    private = _complaint_private(c, review)
    return ComplaintReviewed(
        **private.model_dump(),
        record_id=rec.record_id if rec else None,
        leaf_index=rec.leaf_index if rec else None,
        anchor_status=anchor_status(session, rec.leaf_index) if rec else None,
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
                col(SupervisionRecord.kind) == "spot_check",
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
