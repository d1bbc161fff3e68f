"""The reproducible tiered metering-credit rating: a pure function of (records, policy, date).

Anyone holding a merchant's disclosed records and the anchored ``credit.policy``
record can re-run :func:`rate` and get the displayed score, tier and reasons.
:func:`change_dates` tells a scheduler when the same records will rate
differently by the mere passage of time; :func:`repair_eligibility` says which
conditions for credit repair of a penalty are not yet met.

This module must never read a clock, the database, the environment or the
network; never mutate its inputs; never build a pydantic model per record
(it re-rates 10^6 records at a time); and never let the order of the records
it is given change its answer.

Reading of the records (``docs/records.md``):

- A record takes effect on the date of legal effect in its body
  (``checked_on``, ``decided_on``, ``verified_on``, ``on``, ``valid_from``,
  ``withdrawn_on``, ``applied_on``); ``supervision.revocation`` has none, so it
  takes effect on the Asia/Shanghai date of its ``at``. Records effective after
  ``as_of`` are ignored as if absent.
- Supersession (``supersedes``, and ``renews`` between pledges) links records of
  the same type into a chain; only the newest version counts (newest by ``at``,
  then record id, should a chain ever fork). A ``revokes`` ref from a
  ``supervision.revocation`` or ``pledge.withdrawn`` voids the whole chain of
  the record it names. Those two are final: revoking one of them does not
  restore what it revoked (record the outcome again instead).
- A pledge counts while ``valid_from <= as_of < valid_until``; so does a
  demonstration award (``on <= as_of < valid_until``) unless withdrawn.
- An instrument is valid up to and including its ``valid_until`` (the last day
  printed on the certificate) and overdue from the day after, per
  (``instrument_type``, ``serial``) using its latest verification.
- List ``out`` / demonstration ``withdraw`` records close the ``in`` / ``award``
  records they reference; one that references none closes every earlier one of
  its list. A merchant is on a list while any ``in`` is open: with one listing
  reason at a time this is "the latest event decides", and a listing for a
  second reason is not ended by curing the first.
- Windows follow :mod:`backend.credit.policy`: an event on ``start`` with an
  ``n``-month window counts on ``start <= d < add_months(start, n)``.
  ``Factor.applies_until`` is that exclusive end: the first date on which the
  factor no longer counts, and a date :func:`change_dates` reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Literal, TypeVar

from backend.credit.policy import (
    SCORE_MAX,
    SCORE_MIN,
    TIERS,
    CreditPolicy,
    Tier,
    add_months,
)

FactorKind = Literal[
    "pledge",
    "demonstration",
    "spot_check_pass",
    "spot_check_problem",
    "penalty_lower",
    "penalty_other",
    "complaint",
    "instrument_overdue",
    "abnormal_list",
    "serious_list",
]

PLEDGE = "pledge.made"
PLEDGE_WITHDRAWN = "pledge.withdrawn"
SPOT_CHECK = "supervision.spot_check"
PENALTY = "supervision.penalty"
COMPLAINT = "supervision.complaint_verified"
ABNORMAL_LIST = "supervision.abnormal_list"
SERIOUS_LIST = "supervision.serious_list"
INSTRUMENT = "supervision.instrument"
DEMONSTRATION = "supervision.demonstration"
REVOCATION = "supervision.revocation"
REPAIR_APPLIED = "credit.repair_applied"
REPAIR_DECIDED = "credit.repair_decided"

_AT = ""
_EFFECTIVE_FIELD: dict[str, str] = {
    PLEDGE: "valid_from",
    PLEDGE_WITHDRAWN: "withdrawn_on",
    SPOT_CHECK: "checked_on",
    PENALTY: "decided_on",
    COMPLAINT: "verified_on",
    ABNORMAL_LIST: "on",
    SERIOUS_LIST: "on",
    INSTRUMENT: "verified_on",
    DEMONSTRATION: "on",
    REVOCATION: _AT,
    REPAIR_APPLIED: "applied_on",
    REPAIR_DECIDED: "decided_on",
}
"""The record types the rating reads, and the body field giving each its effective date."""

RATED_TYPES: frozenset[str] = frozenset(_EFFECTIVE_FIELD)
"""The record types the rating reads; every other type is skipped."""

SUPERSEDE_RELS = frozenset({"supersedes", "renews"})
REVOKE_REL = "revokes"
_REVOKING_TYPES = frozenset({REVOCATION, PLEDGE_WITHDRAWN})
"""Only these records void what they ``revokes``; list ``out`` and demonstration
``withdraw`` records end what they reference from their own date, whatever the rel."""

# Asia/Shanghai has kept UTC+8 without daylight saving since 1991; a fixed offset
# keeps the rating free of the host's tz database.
_SHANGHAI = timezone(timedelta(hours=8))
_ONE_DAY = timedelta(days=1)
_TIER_RANK: dict[str, int] = {t: i for i, t in enumerate(TIERS)}
_T = TypeVar("_T")


class RatingError(ValueError):
    """Base class: the records cannot be rated as given."""


class InvalidRecord(RatingError):
    """A record lacks a field the rating needs, or holds a value it cannot read."""

    def __init__(self, record_id: object, problem: str) -> None:
        self.record_id = record_id
        self.problem = problem
        super().__init__(
            f"record {record_id}: {problem}; fix the record's writer, the rating reads "
            "records exactly as docs/records.md defines them"
        )


class UnknownSpotCheckResult(InvalidRecord):
    """A spot-check result value the policy's ``spot_check_results`` does not classify."""


class MixedSubjects(RatingError):
    """Records of more than one merchant were passed to one rating."""

    def __init__(self, first: object, second: object) -> None:
        self.subjects = (first, second)
        super().__init__(
            f"records of two merchants ({first} and {second}) in one rating; "
            "rate each merchant's records separately"
        )


@dataclass(frozen=True, slots=True)
class Factor:
    """One record's contribution to a rating.

    ``applies_until`` is the first date on which this factor no longer counts
    (an exclusive end), or ``None`` while it lasts until some later record ends it
    (an overdue instrument, a listing). ``points`` already reflects caps, so
    ``base_score + sum(points)`` is the score before clamping to 0–100.
    """

    record_id: str
    kind: FactorKind
    points: int
    reason_zh: str
    applies_until: date | None


@dataclass(frozen=True, slots=True)
class Rating:
    """A merchant's metering-credit rating on ``as_of`` under policy ``policy_version``."""

    score: int
    tier: Tier
    score_tier: Tier
    """The tier the score alone gives, before the list rules."""
    policy_version: int
    as_of: date
    factors: tuple[Factor, ...]
    on_abnormal_list: bool
    on_serious_list: bool
    abnormal_listed_on: date | None
    """Start of the earliest listing still open."""
    serious_listed_on: date | None
    due_for_serious_list: bool
    """Abnormal listing open for ``abnormal_list.serious_after_months``: a regulator must act."""
    due_for_serious_list_removal: bool
    """Every open serious listing is ``serious_list.removal_after_months`` old."""


class _Rec:
    """A record as the rating sees it: dates parsed once, body left as given."""

    __slots__ = ("rid", "type", "eff", "at", "body", "refs")

    def __init__(
        self,
        rid: str,
        type_: str,
        eff: date,
        at: str,
        body: Mapping[str, Any],
        refs: Sequence[Mapping[str, Any]],
    ) -> None:
        self.rid = rid
        self.type = type_
        self.eff = eff
        self.at = at
        self.body = body
        self.refs = refs

    def key(self) -> tuple[date, str, str]:
        """Chronological order; ``at`` (fixed-width UTC) then record id break ties."""
        return (self.eff, self.at, self.rid)


def _shanghai_date(at: str) -> date:
    moment = datetime.fromisoformat(at)
    if moment.tzinfo is None:
        raise ValueError(f"'at' must be UTC with a Z suffix, got {at!r}")
    return moment.astimezone(_SHANGHAI).date()


def newest_version(records: Iterable[Mapping[str, Any]], record_id: str) -> str:
    """The newest version of a record: follow ``supersedes`` refs from it (a revoked
    record is its own newest version; revocation is not a correction)."""
    superseded_by: dict[str, str] = {}
    for r in records:
        for ref in r.get("refs") or ():
            if ref.get("rel") == "supersedes":
                superseded_by.setdefault(ref["record"], r["record_id"])
    seen = {record_id}
    while record_id in superseded_by and superseded_by[record_id] not in seen:
        record_id = superseded_by[record_id]
        seen.add(record_id)
    return record_id


def effective_on(record: Mapping[str, Any]) -> date | None:
    """The date from which a record takes effect (its body's effective field, or the
    Asia/Shanghai date of ``at`` for a revocation); ``None`` for a type the rating
    does not read."""
    field = _EFFECTIVE_FIELD.get(record["type"])
    if field is None:
        return None
    if field == _AT:
        return _shanghai_date(record["at"])
    return date.fromisoformat(record["body"][field])


def _parse(records: Iterable[Mapping[str, Any]], until: date | None) -> list[_Rec]:
    """The records the rating reads, effective on or before ``until`` (all when ``None``)."""
    by_id: dict[str, _Rec] = {}
    fields = _EFFECTIVE_FIELD
    fromiso = date.fromisoformat
    subject: object = None
    for r in records:
        field = fields.get(r["type"])
        if field is None:
            continue
        try:
            rid = r["record_id"]
            body = r["body"]
            at = r["at"]
            eff = _shanghai_date(at) if field == _AT else fromiso(body[field])
            s = r["subject"]
            refs = r["refs"]
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRecord(
                r.get("record_id"), f"cannot read {field or 'at'} or the envelope: {exc!r}"
            ) from exc
        if s != subject:
            if subject is not None:
                raise MixedSubjects(subject, s)
            subject = s
        if s is None:
            raise InvalidRecord(rid, f"a {r['type']} record must name its subject")
        if until is not None and eff > until:
            continue
        seen = by_id.get(rid)
        if seen is not None:
            if seen.body != body or seen.type != r["type"] or seen.at != at or seen.refs != refs:
                raise InvalidRecord(rid, "two different records carry this record id")
            continue
        by_id[rid] = _Rec(rid, r["type"], eff, at, body, refs)
    return list(by_id.values())


class _View:
    """The chains among some records: what is superseded, what is void, what counts."""

    __slots__ = ("by_id", "parent", "superseded", "void_roots", "current")

    def __init__(self, recs: list[_Rec]) -> None:
        by_id = {r.rid: r for r in recs}
        superseded: set[str] = set()
        revoked: list[str] = []
        links: list[tuple[str, str]] = []
        for r in recs:
            for ref in r.refs:
                rel = ref["rel"]
                if rel in SUPERSEDE_RELS:
                    old = by_id.get(ref["record"])
                    if old is not None and old.type == r.type and old is not r:
                        superseded.add(old.rid)
                        links.append((r.rid, old.rid))
                elif rel == REVOKE_REL and r.type in _REVOKING_TYPES:
                    revoked.append(ref["record"])
        self.by_id = by_id
        self.superseded = superseded
        self.parent: dict[str, str] = {}
        for a, b in links:
            ra, rb = self.root(a), self.root(b)
            if ra != rb:
                # Attaching the larger id under the smaller makes every chain's root its
                # smallest record id, whatever order the links came in.
                lo, hi = (ra, rb) if ra < rb else (rb, ra)
                self.parent[hi] = lo
        self.void_roots = {self.root(t) for t in revoked if t in by_id}
        void_roots = self.void_roots
        current = [
            r for r in recs if r.rid not in superseded and self.root(r.rid) not in void_roots
        ]
        if links:
            newest: dict[str, _Rec] = {}
            for r in current:
                root = self.root(r.rid)
                best = newest.get(root)
                if best is None or (r.at, r.rid) > (best.at, best.rid):
                    newest[root] = r
            current = list(newest.values())
        self.current = current

    def root(self, rid: str) -> str:
        parent = self.parent
        top = rid
        while top in parent:
            top = parent[top]
        # Path compression keeps long correction chains linear.
        while rid != top:
            parent[rid], rid = top, parent[rid]
        return top

    def is_dead(self, rid: str) -> bool:
        """Superseded or void: permanent, since records never leave the log."""
        return rid in self.superseded or self.root(rid) in self.void_roots


def _still_open(openers: list[_Rec], closers: list[_Rec]) -> list[_Rec]:
    if not closers:
        return openers
    opener_ids = {o.rid for o in openers}
    closed: set[str] = set()
    # Unreferenced closers each close every earlier opener: together, everything
    # before the last of them.
    last_blanket: tuple[date, str, str] | None = None
    for c in closers:
        targets = [ref["record"] for ref in c.refs if ref["record"] in opener_ids]
        if targets:
            closed.update(targets)
        else:
            ck = c.key()
            if last_blanket is None or ck > last_blanket:
                last_blanket = ck
    return [
        o
        for o in openers
        if o.rid not in closed and (last_blanket is None or o.key() > last_blanket)
    ]


def _split(recs: list[_Rec], opening: str, closing: str) -> tuple[list[_Rec], list[_Rec]]:
    openers: list[_Rec] = []
    closers: list[_Rec] = []
    for r in recs:
        action = r.body["action"]
        if action == opening:
            openers.append(r)
        elif action == closing:
            closers.append(r)
        else:
            raise InvalidRecord(r.rid, f"action must be {opening!r} or {closing!r}, got {action!r}")
    return openers, closers


def _repairs(view: _View, decisions: list[_Rec]) -> dict[str, date]:
    """Penalty chain root → date of the earliest approved repair among ``decisions``."""
    repaired: dict[str, date] = {}
    by_id = view.by_id
    for d in decisions:
        if d.body["decision"] != "approved":
            continue
        for ref in d.refs:
            app = by_id.get(ref["record"])
            # Any version of the application will do, as long as it was not revoked.
            if app is None or app.type != REPAIR_APPLIED or view.root(app.rid) in view.void_roots:
                continue
            targets = [x["record"] for x in app.refs if x["rel"] == "repairs"]
            targets.append(app.body.get("penalty_record"))
            for t in targets:
                penalty = by_id.get(t) if isinstance(t, str) else None
                if penalty is not None and penalty.type == PENALTY:
                    root = view.root(penalty.rid)
                    if root not in repaired or d.eff < repaired[root]:
                        repaired[root] = d.eff
    return repaired


def _zh_date(d: date) -> str:
    return f"{d.year}年{d.month}月{d.day}日"


def _zh_months(months: int) -> str:
    return f"{months // 12}年" if months % 12 == 0 else f"{months}个月"


def _zh_points(points: int) -> str:
    if points > 0:
        return f"加{points}分"
    if points < 0:
        return f"扣{-points}分"
    return "不计分"


def _zh_capped(points: int, nominal: int, cap: int, what: str) -> str:
    if points == nominal:
        return _zh_points(points)
    if points == 0:
        return f"{what}已达{abs(cap)}分上限，本次不再计分"
    return f"{what}已达{abs(cap)}分上限，本次{_zh_points(points)}"


def _allocate(count: int, points: int, cap: int) -> list[int]:
    """Points for ``count`` events in order, so that their sum stops at ``cap``."""
    out: list[int] = []
    remaining = cap
    for _ in range(count):
        p = min(points, remaining) if points >= 0 else max(points, remaining)
        remaining -= p
        out.append(p)
    return out


def _spot_check_outcome(r: _Rec, results: Mapping[str, str]) -> tuple[str, str]:
    result = r.body["result"]
    outcome = results.get(result)
    if outcome is None:
        raise UnknownSpotCheckResult(
            r.rid,
            f"spot-check result {result!r} is not classified by the policy's spot_check_results",
        )
    return result, outcome


def _is_short_penalty(body: Mapping[str, Any]) -> bool:
    return bool(body["lower_amount"]) or bool(body["circulated_criticism"])


_REQUIRED: dict[str, tuple[str, ...]] = {
    PLEDGE: ("valid_until",),
    SPOT_CHECK: ("result",),
    PENALTY: ("decision_no", "lower_amount", "circulated_criticism", "special_sector", "performed"),
    ABNORMAL_LIST: ("action",),
    SERIOUS_LIST: ("action",),
    INSTRUMENT: ("instrument_type", "serial", "valid_until"),
    DEMONSTRATION: ("action",),
    REPAIR_DECIDED: ("decision",),
}
"""Body fields read besides the effective date (checked only to explain a failure)."""


def _explained(recs: list[_Rec], compute: Callable[[], _T]) -> _T:
    """Run ``compute``; turn a bare lookup or parse failure into an :class:`InvalidRecord`.

    The hot path indexes bodies directly; only when that fails are the records
    searched for the culprit, so well-formed input pays nothing for the message.
    """
    try:
        return compute()
    except RatingError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise _culprit(recs, exc) from exc


def _culprit(recs: list[_Rec], exc: Exception) -> InvalidRecord:
    for r in sorted(recs, key=lambda x: x.rid):
        body = r.body
        needed = _REQUIRED.get(r.type, ())
        if r.type == DEMONSTRATION and body.get("action") == "award":
            needed = (*needed, "valid_until")
        for name in needed:
            if name not in body:
                return InvalidRecord(r.rid, f"{r.type} body has no {name!r}")
        if "valid_until" in needed:
            try:
                date.fromisoformat(body["valid_until"])
            except (TypeError, ValueError):
                return InvalidRecord(
                    r.rid, f"valid_until must be YYYY-MM-DD, got {body['valid_until']!r}"
                )
        if not isinstance(r.refs, list | tuple):
            return InvalidRecord(r.rid, f"refs must be a list, got {r.refs!r}")
        for ref in r.refs:
            if not isinstance(ref, Mapping) or "rel" not in ref or "record" not in ref:
                return InvalidRecord(r.rid, f"each ref needs 'rel' and 'record', got {ref!r}")
    return InvalidRecord(None, f"a record could not be read: {exc!r}")


def tier_for_score(score: int, policy: CreditPolicy) -> Tier:
    """The tier a score alone gives: A at or above ``tier_thresholds.A``, …, else D."""
    t = policy.tier_thresholds
    if score >= t.A:
        return "A"
    if score >= t.B:
        return "B"
    if score >= t.C:
        return "C"
    return "D"


def _worse(a: Tier, b: Tier) -> Tier:
    return a if _TIER_RANK[a] >= _TIER_RANK[b] else b


_GROUPED = (
    PLEDGE,
    SPOT_CHECK,
    PENALTY,
    COMPLAINT,
    ABNORMAL_LIST,
    SERIOUS_LIST,
    INSTRUMENT,
    DEMONSTRATION,
    REPAIR_DECIDED,
)


def _group(current: list[_Rec]) -> dict[str, list[_Rec]]:
    groups: dict[str, list[_Rec]] = {t: [] for t in _GROUPED}
    for r in current:
        g = groups.get(r.type)
        if g is not None:
            g.append(r)
    return groups


def rate(records: Sequence[Mapping[str, Any]], policy: CreditPolicy, as_of: date) -> Rating:
    """Rate one merchant's records on ``as_of`` under ``policy``.

    ``records`` are envelopes as in ``docs/records.md`` (``record_id``, ``type``,
    ``subject``, ``at``, ``body``, ``refs``), all about one merchant; records of
    types the rating does not read (registration, policy, draws) are skipped.
    Raises :class:`InvalidRecord` for a record it cannot read and
    :class:`MixedSubjects` for records of two merchants.
    """
    recs = _parse(records, as_of)
    return _explained(recs, lambda: _rate(_View(recs), policy, as_of))


def _rate(view: _View, policy: CreditPolicy, as_of: date) -> Rating:
    groups = _group(view.current)
    # (sort key, factor): factors are listed by start date, then kind, then record id.
    found: list[tuple[tuple[date, int, str], Factor]] = []
    fromiso = date.fromisoformat

    def add(start: date, order: int, factor: Factor) -> None:
        found.append(((start, order, factor.record_id), factor))

    # Pledge: one bonus however many pledges are active; the one valid longest is shown.
    rule_p = policy.pledge
    active_pledges = []
    for r in groups[PLEDGE]:
        until = fromiso(r.body["valid_until"])
        if as_of < until:
            active_pledges.append((until, r.rid, r))
    if active_pledges:
        until, _, r = max(active_pledges, key=lambda x: (x[0], x[1]))
        add(
            r.eff,
            0,
            Factor(
                r.rid,
                "pledge",
                rule_p.points,
                f"{_zh_date(r.eff)}起诚信计量自我承诺有效，{_zh_points(rule_p.points)}"
                f"（{_zh_date(until)}起不再计入）",
                until,
            ),
        )

    # Demonstration unit: one bonus for the longest-valid award not withdrawn.
    rule_d = policy.demonstration
    awards, withdrawals = _split(groups[DEMONSTRATION], "award", "withdraw")
    active_awards = []
    for r in _still_open(awards, withdrawals):
        until = fromiso(r.body["valid_until"])
        if as_of < until:
            active_awards.append((until, r.rid, r))
    if active_awards:
        until, _, r = max(active_awards, key=lambda x: (x[0], x[1]))
        add(
            r.eff,
            1,
            Factor(
                r.rid,
                "demonstration",
                rule_d.points,
                f"{_zh_date(r.eff)}获评诚信计量自我承诺示范单位，{_zh_points(rule_d.points)}"
                f"（{_zh_date(until)}起不再计入）",
                until,
            ),
        )

    # Spot checks.
    rule_sp, rule_sq = policy.spot_check_pass, policy.spot_check_problem
    results = policy.spot_check_results
    passes: list[tuple[_Rec, str, date]] = []
    for r in groups[SPOT_CHECK]:
        result, outcome = _spot_check_outcome(r, results)
        if outcome == "pass":
            end = add_months(r.eff, rule_sp.window_months)
            if as_of < end:
                passes.append((r, result, end))
        elif outcome == "problem":
            end = add_months(r.eff, rule_sq.window_months)
            if as_of < end:
                add(
                    r.eff,
                    3,
                    Factor(
                        r.rid,
                        "spot_check_problem",
                        rule_sq.points,
                        f"{_zh_date(r.eff)}抽查结果为“{result}”，{_zh_points(rule_sq.points)}"
                        f"（{_zh_months(rule_sq.window_months)}内有效，{_zh_date(end)}起不再计入）",
                        end,
                    ),
                )
    passes.sort(key=lambda x: (x[0].eff, x[0].rid))
    for (r, result, end), pts in zip(
        passes, _allocate(len(passes), rule_sp.points, rule_sp.cap), strict=True
    ):
        add(
            r.eff,
            2,
            Factor(
                r.rid,
                "spot_check_pass",
                pts,
                f"{_zh_date(r.eff)}抽查结果为“{result}”，"
                f"{_zh_capped(pts, rule_sp.points, rule_sp.cap, '抽查加分')}"
                f"（{_zh_months(rule_sp.window_months)}内有效，{_zh_date(end)}起不再计入）",
                end,
            ),
        )

    # Penalties: the short window for a lower amount or circulated criticism; a repair
    # approved on or before as_of ends the penalty's effect.
    repaired = _repairs(view, groups[REPAIR_DECIDED]) if groups[REPAIR_DECIDED] else {}
    rule_pl, rule_po = policy.penalty_lower, policy.penalty_other
    for r in groups[PENALTY]:
        if repaired and view.root(r.rid) in repaired:
            continue
        body = r.body
        short = _is_short_penalty(body)
        rule = rule_pl if short else rule_po
        end = add_months(r.eff, rule.window_months)
        if as_of >= end:
            continue
        if short:
            what = "通报批评" if body["circulated_criticism"] else "较低数额罚款"
            reason = (
                f"{_zh_date(r.eff)}受到行政处罚（{body['decision_no']}，{what}），"
                f"{_zh_points(rule.points)}（公示{_zh_months(rule.window_months)}，"
                f"{_zh_date(end)}起不再计入）"
            )
        else:
            reason = (
                f"{_zh_date(r.eff)}受到行政处罚（{body['decision_no']}），"
                f"{_zh_points(rule.points)}（公示{_zh_months(rule.window_months)}，"
                f"{_zh_date(end)}起不再计入；信用修复后即不再计入）"
            )
        kind: FactorKind = "penalty_lower" if short else "penalty_other"
        add(r.eff, 4, Factor(r.rid, kind, rule.points, reason, end))

    # Verified complaints, capped.
    rule_c = policy.complaint
    complaints: list[tuple[_Rec, date]] = []
    for r in groups[COMPLAINT]:
        end = add_months(r.eff, rule_c.window_months)
        if as_of < end:
            complaints.append((r, end))
    complaints.sort(key=lambda x: (x[0].eff, x[0].rid))
    for (r, end), pts in zip(
        complaints, _allocate(len(complaints), rule_c.points, rule_c.cap), strict=True
    ):
        add(
            r.eff,
            5,
            Factor(
                r.rid,
                "complaint",
                pts,
                f"{_zh_date(r.eff)}投诉经核实，"
                f"{_zh_capped(pts, rule_c.points, rule_c.cap, '投诉扣分')}"
                f"（{_zh_months(rule_c.window_months)}内有效，{_zh_date(end)}起不再计入）",
                end,
            ),
        )

    # Instruments: the latest verification of each instrument decides; overdue the day
    # after valid_until.
    rule_i = policy.instrument_overdue
    latest: dict[tuple[str, str], _Rec] = {}
    for r in groups[INSTRUMENT]:
        k = (r.body["instrument_type"], r.body["serial"])
        seen = latest.get(k)
        if seen is None or r.key() > seen.key():
            latest[k] = r
    overdue: list[tuple[date, str, _Rec]] = []
    for r in latest.values():
        valid_until = fromiso(r.body["valid_until"])
        if valid_until < as_of:
            overdue.append((valid_until, r.rid, r))
    overdue.sort(key=lambda x: (x[0], x[1]))
    for (valid_until, _, r), pts in zip(
        overdue, _allocate(len(overdue), rule_i.points, rule_i.cap), strict=True
    ):
        add(
            valid_until + _ONE_DAY,
            6,
            Factor(
                r.rid,
                "instrument_overdue",
                pts,
                f"计量器具“{r.body['instrument_type']}”（编号{r.body['serial']}）检定有效期至"
                f"{_zh_date(valid_until)}，{_zh_date(valid_until + _ONE_DAY)}起超期未检定，"
                f"{_zh_capped(pts, rule_i.points, rule_i.cap, '超期器具扣分')}"
                "（重新检定后不再计入）",
                None,
            ),
        )

    # Lists.
    rule_a, rule_s = policy.abnormal_list, policy.serious_list
    abnormal_open = _still_open(*_split(groups[ABNORMAL_LIST], "in", "out"))
    serious_open = _still_open(*_split(groups[SERIOUS_LIST], "in", "out"))
    abnormal_on = serious_on = None
    if abnormal_open:
        first = min(abnormal_open, key=_Rec.key)
        abnormal_on = first.eff
        add(
            abnormal_on,
            7,
            Factor(
                first.rid,
                "abnormal_list",
                rule_a.points,
                f"{_zh_date(abnormal_on)}起被列入经营异常名录，{_zh_points(rule_a.points)}，"
                f"信用等级最高为{rule_a.tier_cap}级（移出名录后不再计入）",
                None,
            ),
        )
    if serious_open:
        first = min(serious_open, key=_Rec.key)
        serious_on = first.eff
        add(
            serious_on,
            8,
            Factor(
                first.rid,
                "serious_list",
                0,
                f"{_zh_date(serious_on)}起被列入严重违法失信名单，信用等级为{rule_s.tier}级"
                "（移出名单后不再计入）",
                None,
            ),
        )

    found.sort(key=lambda x: x[0])
    factors = tuple(f for _, f in found)
    raw = policy.base_score + sum(f.points for f in factors)
    score = SCORE_MIN if raw < SCORE_MIN else SCORE_MAX if raw > SCORE_MAX else raw
    score_tier = tier_for_score(score, policy)
    tier = score_tier
    if abnormal_open:
        tier = _worse(tier, rule_a.tier_cap)
    if serious_open:
        tier = _worse(tier, rule_s.tier)
    return Rating(
        score=score,
        tier=tier,
        score_tier=score_tier,
        policy_version=policy.version,
        as_of=as_of,
        factors=factors,
        on_abnormal_list=bool(abnormal_open),
        on_serious_list=bool(serious_open),
        abnormal_listed_on=abnormal_on,
        serious_listed_on=serious_on,
        due_for_serious_list=(
            abnormal_on is not None
            and as_of >= add_months(abnormal_on, rule_a.serious_after_months)
        ),
        due_for_serious_list_removal=bool(serious_open)
        and all(as_of >= add_months(r.eff, rule_s.removal_after_months) for r in serious_open),
    )


def _end_dates(r: _Rec, policy: CreditPolicy) -> Iterable[date]:
    """The dates on which ``r`` stops (or starts, for escalation flags) changing a rating."""
    body = r.body
    t = r.type
    if t == SPOT_CHECK:
        _, outcome = _spot_check_outcome(r, policy.spot_check_results)
        if outcome == "pass":
            return (add_months(r.eff, policy.spot_check_pass.window_months),)
        if outcome == "problem":
            return (add_months(r.eff, policy.spot_check_problem.window_months),)
        return ()
    if t == PENALTY:
        rule = policy.penalty_lower if _is_short_penalty(body) else policy.penalty_other
        return (add_months(r.eff, rule.window_months),)
    if t == COMPLAINT:
        return (add_months(r.eff, policy.complaint.window_months),)
    if t == PLEDGE:
        return (date.fromisoformat(body["valid_until"]),)
    if t == DEMONSTRATION:
        return (date.fromisoformat(body["valid_until"]),) if body["action"] == "award" else ()
    if t == INSTRUMENT:
        return (date.fromisoformat(body["valid_until"]) + _ONE_DAY,)
    if t == ABNORMAL_LIST and body["action"] == "in":
        return (add_months(r.eff, policy.abnormal_list.serious_after_months),)
    if t == SERIOUS_LIST and body["action"] == "in":
        return (add_months(r.eff, policy.serious_list.removal_after_months),)
    return ()


def change_dates(
    records: Sequence[Mapping[str, Any]], policy: CreditPolicy, after: date
) -> list[date]:
    """Every date after ``after`` on which the rating may differ from the day before.

    Those are the effective dates of records not yet in effect, and the ends of
    windows and validity periods (an instrument's due date is ``valid_until`` + 1
    day). A record already superseded or voided on ``after`` never counts again
    and contributes nothing; other dates may turn out not to change the rating
    (a capped factor expiring, say): the list is complete, not minimal. Sorted,
    without duplicates.
    """
    recs = _parse(records, None)
    return _explained(recs, lambda: _change_dates(recs, policy, after))


def _change_dates(
    recs: list[_Rec], policy: CreditPolicy, after: date, view: _View | None = None
) -> list[date]:
    if view is None:
        view = _View([r for r in recs if r.eff <= after])
    dates: set[date] = set()
    for r in recs:
        if r.eff > after:
            dates.add(r.eff)
        elif view.is_dead(r.rid):
            continue
        for d in _end_dates(r, policy):
            if d > after:
                dates.add(d)
    return sorted(dates)


def rate_with_change_dates(
    records: Sequence[Mapping[str, Any]], policy: CreditPolicy, as_of: date
) -> tuple[Rating, list[date]]:
    """``(rate(records, policy, as_of), change_dates(records, policy, as_of))``, reading the
    records once (what keeping 10^5 ratings current needs)."""
    recs = _parse(records, None)

    def both() -> tuple[Rating, list[date]]:
        view = _View([r for r in recs if r.eff <= as_of])
        dates = _change_dates(recs, policy, as_of, view)
        return _rate(view, policy, as_of), dates

    return _explained(recs, both)


@dataclass(frozen=True, slots=True)
class Disclosure:
    """Which of a merchant's records are shown to the public on a date (停止公示).

    ``shown`` and ``withheld`` are sorted record ids; together they are every
    record the rating reads. The guarantee (a tested property): rating only the
    shown records gives exactly the same :class:`Rating` on that date as rating
    all of them, so anyone can reproduce the displayed tier from what is shown.
    """

    shown: tuple[str, ...]
    withheld: tuple[str, ...]


def disclosure(
    records: Sequence[Mapping[str, Any]], policy: CreditPolicy, as_of: date
) -> Disclosure:
    """Split ``records`` into those shown publicly on ``as_of`` and those withheld.

    Withheld, with every version of their chain:

    - a penalty past its publicity window (``penalty_lower`` / ``penalty_other``
      ``window_months`` from ``decided_on``), or repaired by an approved credit
      repair decided on or before ``as_of`` — it stops being shown and stops counting;
    - any record voided by a ``supervision.revocation``, and the revocation itself
      (an annulled outcome is not published);
    - a repair application whose penalties are all withheld, and a repair decision
      whose applications are all withheld.

    Records effective after ``as_of`` are shown (they do not count yet anyway).
    Records of types the rating does not read are in neither list.
    """
    recs = _parse(records, None)
    return _explained(recs, lambda: _disclosure(recs, policy, as_of))


def _disclosure(recs: list[_Rec], policy: CreditPolicy, as_of: date) -> Disclosure:
    view = _View([r for r in recs if r.eff <= as_of])
    by_id = view.by_id
    groups = _group(view.current)
    withheld: set[str] = set()  # chain roots

    repaired = _repairs(view, groups[REPAIR_DECIDED]) if groups[REPAIR_DECIDED] else {}
    for r in groups[PENALTY]:
        rule = policy.penalty_lower if _is_short_penalty(r.body) else policy.penalty_other
        root = view.root(r.rid)
        if root in repaired or as_of >= add_months(r.eff, rule.window_months):
            withheld.add(root)
    revocations = [r for r in by_id.values() if r.type == REVOCATION]
    for rev in revocations:
        for ref in rev.refs:
            if ref["rel"] == REVOKE_REL and ref["record"] in by_id:
                withheld.add(view.root(ref["record"]))

    def all_withheld(targets: list[Any]) -> bool:
        known = [t for t in targets if isinstance(t, str) and t in by_id]
        return bool(known) and all(view.root(t) in withheld for t in known)

    for r in by_id.values():
        if r.type == REPAIR_APPLIED:
            targets = [x["record"] for x in r.refs if x["rel"] == "repairs"]
            targets.append(r.body.get("penalty_record"))
            if all_withheld(targets):
                withheld.add(view.root(r.rid))
    for r in by_id.values():
        if r.type == REPAIR_DECIDED and all_withheld([x["record"] for x in r.refs]):
            withheld.add(view.root(r.rid))
    for rev in revocations:
        if all_withheld([x["record"] for x in rev.refs if x["rel"] == REVOKE_REL]):
            withheld.add(view.root(rev.rid))

    shown: list[str] = []
    hidden: list[str] = []
    for r in recs:
        if r.rid in by_id and view.root(r.rid) in withheld:
            hidden.append(r.rid)
        else:
            shown.append(r.rid)
    return Disclosure(shown=tuple(sorted(shown)), withheld=tuple(sorted(hidden)))


def repair_eligibility(
    penalty_record_id: str,
    records: Sequence[Mapping[str, Any]],
    policy: CreditPolicy,
    as_of: date,
) -> list[str]:
    """The unmet conditions for credit repair of a penalty on ``as_of``, in plain Chinese.

    An empty list means the merchant may apply. Checked in this order: the
    penalty exists and is not revoked (alone, if not); not already repaired;
    still within its publicity window; the minimum publicity period (6 months,
    12 for special sectors, counted from ``decided_on``) has elapsed; the
    penalty was performed; no later penalty (every penalty in this service is a
    metering penalty, so any penalty decided after this one is "of the same
    kind"); on neither list. Whether the harm was removed is not in the records:
    the reviewer judges it. The newest version of the penalty's chain is read.
    """
    recs = _parse(records, as_of)
    return _explained(recs, lambda: _repair_eligibility(penalty_record_id, recs, policy, as_of))


def _repair_eligibility(
    penalty_record_id: str, recs: list[_Rec], policy: CreditPolicy, as_of: date
) -> list[str]:
    view = _View(recs)
    target = view.by_id.get(penalty_record_id)
    if target is None or target.type != PENALTY:
        return [f"截至{_zh_date(as_of)}没有这条行政处罚记录"]
    root = view.root(target.rid)
    if root in view.void_roots:
        return ["该行政处罚记录已被撤销，无需信用修复"]
    groups = _group(view.current)
    penalty = next(r for r in groups[PENALTY] if view.root(r.rid) == root)
    body = penalty.body
    unmet: list[str] = []

    repaired = _repairs(view, groups[REPAIR_DECIDED])
    if root in repaired:
        unmet.append(f"该行政处罚已于{_zh_date(repaired[root])}完成信用修复")

    rule = policy.penalty_lower if _is_short_penalty(body) else policy.penalty_other
    publicity_end = add_months(penalty.eff, rule.window_months)
    if as_of >= publicity_end:
        unmet.append(
            f"该行政处罚公示期为{_zh_months(rule.window_months)}，"
            f"{_zh_date(publicity_end)}起已不再公示，无需信用修复"
        )

    special = bool(body["special_sector"])
    months = (
        policy.repair.special_sector_min_publicity_months
        if special
        else policy.repair.min_publicity_months
    )
    earliest = add_months(penalty.eff, months)
    if as_of < earliest:
        sector = "（食品、药品、特种设备领域）" if special else ""
        unmet.append(
            f"自处罚决定之日（{_zh_date(penalty.eff)}）起公示未满{_zh_months(months)}{sector}，"
            f"{_zh_date(earliest)}起方可申请"
        )

    if not body["performed"]:
        unmet.append("行政处罚尚未履行完毕")

    later = sorted(
        (r for r in groups[PENALTY] if r.eff > penalty.eff),
        key=_Rec.key,
    )
    if later:
        listed = "；".join(f"{_zh_date(r.eff)}（{r.body['decision_no']}）" for r in later)
        unmet.append(f"该处罚之后又受到行政处罚：{listed}")

    if _still_open(*_split(groups[ABNORMAL_LIST], "in", "out")):
        unmet.append("当前被列入经营异常名录")
    if _still_open(*_split(groups[SERIOUS_LIST], "in", "out")):
        unmet.append("当前被列入严重违法失信名单")
    return unmet


__all__: list[str] = [
    "Disclosure",
    "Factor",
    "FactorKind",
    "InvalidRecord",
    "MixedSubjects",
    "RATED_TYPES",
    "Rating",
    "RatingError",
    "UnknownSpotCheckResult",
    "change_dates",
    "disclosure",
    "effective_on",
    "newest_version",
    "rate",
    "rate_with_change_dates",
    "repair_eligibility",
    "tier_for_score",
]
