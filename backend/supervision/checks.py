"""What every outcome is checked against: the merchant, its other outcomes, the draw.

- Every date of an outcome lies on or after :data:`EARLIEST_DATE` (an earlier one
  is a typo, e.g. 0001-01-01); dates of legal effect may not lie in the future, an
  instrument's ``valid_until`` may, up to 50 years ahead (``backend/inputs.py``).
  :func:`validate_date` is the one check.
- A spot check's ``draw_id`` names a revealed draw that selected its merchant
  (``backend/inspections``), looked up once per batch (:meth:`Checker.load_draws`).
- :class:`MerchantState` is a merchant's outcomes as the rules see them: current,
  superseded, revoked, open listings. A batch extends it row by row, so that each
  outcome is checked against the ones before it.

The checks of each kind's body are declared with the kind (``kinds.py``); this
module holds what they share. It never writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Table, select
from sqlmodel import Session

from backend.accounts.service import Principal
from backend.credit import service as credit
from backend.errors import Conflict, NotFound, ValidationFailed
from backend.inputs import validate_horizon
from backend.inspections.draws import results as inspection_draws
from backend.ledger.records import RecordDraft, Ref
from backend.merchants import queries as merchant_queries
from backend.merchants.service import parse_uscc
from backend.merchants.text import InvalidText, clean_text
from backend.supervision.models import RECORD_TYPE_PREFIX, SpotCheckInput, SupervisionRecord

SUPERVISION: Table = SupervisionRecord.__table__  # type: ignore[attr-defined]

EARLIEST_DATE = date(2000, 1, 1)
"""No outcome date lies before this day. Not a rule of law but a guard against typos
(0001-01-01, 20025 for 2025): it admits any history a regulator could import —
the national credit publicity system and its lists date from 2014, the unified
credit code from 2015, and no rating input reaches back more than a few years."""


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


# --- a merchant's outcomes as the rules see them ------------------------------------------


@dataclass
class StateRow:
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
    rows: dict[str, StateRow] = field(default_factory=dict)
    incoming: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def add(self, row: StateRow) -> None:
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

    def current(self, kind: str) -> list[StateRow]:
        return [
            r
            for r in self.rows.values()
            if r.kind == kind and self.replaced_by(r.record_id) is None
        ]

    def open_listings(self, kind: str) -> list[StateRow]:
        return [
            r
            for r in self.current(kind)
            if r.body.get("action") == "in" and self.ended_by(r.record_id) is None
        ]


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
            states[uscc].add(StateRow(rid, kind, body, refs, eff))
    return states



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


def text_field(value: str, name: str, max_len: int, *, multiline: bool = False) -> str:
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


def is_person(uscc: str) -> bool:
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
        numbers = sorted({int(d) for d, _ in pairs if d.isdigit()} - self.numbers.keys())
        if numbers:
            by_number = inspection_draws.draw_ids_by_number(self.session, numbers)
            for n in numbers:
                self.numbers[n] = by_number.get(n)
        todo = {
            (did, u) for ref, u in pairs if (did := self._draw_id_of(ref)) is not None
        } - self.looked_up
        if not todo:
            return
        ids = sorted({d for d, _ in todo} - self.draws.keys())
        if ids:
            found = inspection_draws.draw_facts(self.session, ids)
            for d in ids:
                self.draws[d] = found.get(d)
        # Only a revealed draw has a plan (its assignments) to look the merchant up in.
        wanted = [
            (d, u) for d, u in todo if (info := self.draws[d]) is not None and info[1] == "revealed"
        ]
        if wanted:
            self.selected.update(inspection_draws.selected_pairs(self.session, wanted))
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

    def target(self, st: MerchantState, rid: str, name: str) -> StateRow:
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


def normalised(raw: str) -> str | None:
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


def checker_for(
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
    codes = {c for c in map(normalised, usccs) if c is not None}
    known = merchant_queries.registered_among(session, codes)
    stateful = known if with_state is None else known.intersection(
        c for c in map(normalised, with_state) if c is not None
    )
    checker = Checker(
        session=session,
        today=today,
        states=load_states(session, stateful),
        merchants=known,
        versions=credit.ensure_policy(session, now=now),
    )
    # An unknown merchant fails before its draw is looked at: skip its pairs.
    checker.load_draws((d, c) for d, raw in draws if (c := normalised(raw)) in known)
    return checker

