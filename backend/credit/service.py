"""Credit rules that touch the database: the policy records, the rating cache,
re-rating, and what the public may see of a merchant's records.

The rules themselves live in the pure modules: :mod:`backend.credit.policy`
(the document) and :mod:`backend.credit.rating` (score, tier, change dates,
repair eligibility, disclosure). This module feeds them records from the log
and keeps ``merchant_rating`` current:

- :func:`rerate_merchant` / :func:`rerate_merchants` recompute in the caller's
  transaction; every service that appends a record about a merchant calls one
  before it commits (supervision outcomes, pledges, demonstration units,
  repairs), so a rating is never older than the newest record about it;
- :func:`sweep` recomputes merchants whose ``next_change_on`` has come (a window
  ended, a new policy version took effect) and merchants never rated; with
  ``full=True`` it re-rates everyone from one streaming pass over the log.

Records are read from ``log_leaf`` with ``json.loads`` (their canonical form is
checked by ``honest-metering audit``, not on every rating). This module never
writes a record other than ``credit.policy``; it never reads a clock except
through :mod:`backend.timeutil`.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import Table, func, select, text
from sqlmodel import Session

from backend.background import BackgroundThread
from backend.context import AppContext
from backend.credit import rating
from backend.credit.models import (
    CreditHistory,
    CreditPolicyVersion,
    CreditPublic,
    DisclosedRecord,
    FactorPublic,
    MerchantRating,
    MerchantRecords,
    PolicyList,
    PolicyPublic,
    RatingChange,
    RatingChangePublic,
    TierCount,
    TierStats,
)
from backend.credit.policy import (
    DEFAULT_POLICY,
    RATING_SPEC_PATH,
    RATING_SPEC_SHA256,
    TIERS,
    CreditPolicy,
    policy_body,
    select_policy,
)
from backend.credit.records import POLICY
from backend.db import Database, upsert
from backend.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from backend.inputs import validate_horizon
from backend.ledger import log, projection
from backend.ledger.records import SYSTEM, Actor, RecordDraft, Ref
from backend.ledger.status import anchor_status, anchored_size
from backend.ledger.write import Hook, write
from backend.merchants import queries as merchant_queries
from backend.merchants.models import Merchant
from backend.merchants.records import REGISTERED
from backend.merchants.service import get_merchant, parse_uscc, require_verified
from backend.timeutil import SHANGHAI, aware, today_shanghai, utcnow

logger = logging.getLogger("honest_metering.credit")


# Core tables: typed columns for the bulk queries here (no ORM objects per row).
RATING: Table = MerchantRating.__table__  # type: ignore[attr-defined]
POLICIES: Table = CreditPolicyVersion.__table__  # type: ignore[attr-defined]
CHANGES: Table = RatingChange.__table__  # type: ignore[attr-defined]
RATED_TYPES: tuple[str, ...] = tuple(sorted(rating.RATED_TYPES))
_IN_CHUNK = 500
PG_SWEEP_LOCK = 7340010


class PolicyNotFound(NotFound):
    pass


class NoPolicyInForce(ValidationFailed):
    pass


class InvalidPolicy(ValidationFailed):
    pass


class PolicyBackdated(ValidationFailed):
    pass


class PolicyVersionConflict(Conflict):
    pass


class CreditUnavailable(ServiceUnavailable):
    pass


# --- policies -------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyVersion:
    version: int
    record_id: str
    leaf_index: int
    policy: CreditPolicy


_parsed: dict[str, CreditPolicy] = {}
_parsed_lock = threading.Lock()


def _parse_policy(record_id: str, document: Mapping[str, Any]) -> CreditPolicy:
    # Policy documents are few and immutable (a record id names its content): parse once.
    with _parsed_lock:
        found = _parsed.get(record_id)
    if found is None:
        found = CreditPolicy.model_validate(document)
        with _parsed_lock:
            _parsed[record_id] = found
    return found


def policy_versions(session: Session) -> list[PolicyVersion]:
    c = POLICIES.c
    rows = session.execute(
        select(c.version, c.record_id, c.leaf_index, c.document).order_by(c.version)
    ).all()
    return [PolicyVersion(v, rid, int(li), _parse_policy(rid, doc)) for v, rid, li, doc in rows]


def in_force(versions: Sequence[PolicyVersion], as_of: date) -> PolicyVersion:
    if not versions:
        raise CreditUnavailable("no credit policy has been published yet")
    try:
        chosen = select_policy([v.policy for v in versions], as_of)
    except LookupError:
        first = min(v.policy.effective_from for v in versions)
        raise NoPolicyInForce(
            f"no credit policy is in force on {as_of.isoformat()}; the first version took "
            f"effect on {first.isoformat()}"
        ) from None
    return next(v for v in versions if v.version == chosen.version)


def next_policy_date(versions: Sequence[PolicyVersion], after: date) -> date | None:
    later = [v.policy.effective_from for v in versions if v.policy.effective_from > after]
    return min(later) if later else None


def _append_policy(
    session: Session,
    policy: CreditPolicy,
    *,
    actor: Actor,
    previous: PolicyVersion | None,
    now: datetime,
) -> tuple[CreditPolicyVersion, log.AppendedRecord]:
    refs = (Ref("supersedes", previous.record_id),) if previous is not None else ()
    rec = write(
        session,
        RecordDraft(
            type=POLICY, subject=None, actor=actor, body=policy_body(policy), refs=refs
        ),
        now=now,
    ).one
    row = session.get(CreditPolicyVersion, policy.version)
    assert row is not None  # projected by backend/credit/records.py
    return row, rec


def ensure_policy(session: Session, *, now: datetime | None = None) -> list[PolicyVersion]:
    """The policy versions, publishing version 1 (the default policy) if there is none.

    In the caller's write transaction. Two processes starting together cannot both
    publish version 1: appends are serialised on the log head, and the second
    insert of version 1 violates the primary key, rolling back its record too.
    """
    versions = policy_versions(session)
    if versions:
        return versions
    _append_policy(
        session, DEFAULT_POLICY, actor=SYSTEM, previous=None, now=now or utcnow()
    )
    return policy_versions(session)


def ensure_default_policy(db: Database) -> None:
    from sqlalchemy.exc import IntegrityError

    with db.session() as s:
        if policy_versions(s):
            return
        try:
            ensure_policy(s)
            s.commit()
            logger.info("published credit policy version 1 (the default policy)")
        except IntegrityError:
            s.rollback()  # another process published it first


def _policy_public(
    session: Session, v: PolicyVersion, versions: Sequence[PolicyVersion], today: date
) -> PolicyPublic:
    try:
        current = in_force(versions, today).version
    except NoPolicyInForce:
        current = None
    previous = [p for p in versions if p.version < v.version]
    return PolicyPublic(
        version=v.version,
        effective_from=v.policy.effective_from,
        in_force=current == v.version,
        record_id=v.record_id,
        leaf_index=v.leaf_index,
        supersedes=previous[-1].record_id if previous else None,
        document=v.policy,
        anchor_status=anchor_status(session, v.leaf_index),
    )


def get_policy(session: Session, *, version: int | None = None, today: date) -> PolicyPublic:
    versions = policy_versions(session)
    if version is None:
        chosen = in_force(versions, today)
    else:
        found = [v for v in versions if v.version == version]
        if not found:
            raise PolicyNotFound(
                f"no credit policy version {version}; versions 1..{len(versions)} exist"
            )
        chosen = found[0]
    return _policy_public(session, chosen, versions, today)


def list_policies(session: Session, *, today: date) -> PolicyList:
    versions = policy_versions(session)
    try:
        current: int | None = in_force(versions, today).version
    except (NoPolicyInForce, CreditUnavailable):
        current = None
    return PolicyList(
        in_force=current, items=[_policy_public(session, v, versions, today) for v in versions]
    )


def put_policy(
    session: Session,
    *,
    principal: Any,
    document: Mapping[str, Any],
    now: datetime | None = None,
) -> tuple[PolicyPublic, log.AppendedRecord]:
    """Publish the next policy version (admins; the router checks the role)."""
    now = now or utcnow()
    today = today_shanghai(now)
    versions = ensure_policy(session, now=now)
    newest = versions[-1]
    doc = dict(document)
    expected = newest.version + 1
    given = doc.get("version", expected)
    if given != expected:
        raise PolicyVersionConflict(
            f"the next policy version is {expected} (the newest is {newest.version}), got "
            f"version {given!r}; reload the policy and try again"
        )
    doc["version"] = expected
    # A new version follows the rules this service implements (docs/credit-rating.md §11).
    spec = doc.get("spec_sha256")
    if spec is None:
        doc["spec_sha256"] = RATING_SPEC_SHA256
    elif spec != RATING_SPEC_SHA256:
        raise InvalidPolicy(
            f"spec_sha256 {spec!r} names a rating specification this service does not "
            f"implement; it implements {RATING_SPEC_PATH} with SHA-256 {RATING_SPEC_SHA256} "
            "(omit spec_sha256 to use it)"
        )
    try:
        policy = CreditPolicy.model_validate(doc)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()))
            problems.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
        raise InvalidPolicy("invalid credit policy: " + "; ".join(problems)) from None
    validate_horizon(policy.effective_from, field="effective_from", today=today)
    if policy.effective_from < today:
        raise PolicyBackdated(
            f"effective_from {policy.effective_from} is in the past (today is {today} in "
            "Asia/Shanghai); a policy can only take effect today or later"
        )
    _, rec = _append_policy(
        session,
        policy,
        actor=principal.actor,
        previous=newest,
        now=now,
    )
    # Every rating may change on the new version's first day: let the sweep know.
    eff = policy.effective_from
    session.execute(
        text(
            "UPDATE merchant_rating SET next_change_on = :d "
            "WHERE next_change_on IS NULL OR next_change_on > :d"
        ),
        {"d": eff},
    )
    session.commit()
    versions = policy_versions(session)
    v = next(x for x in versions if x.version == expected)
    return _policy_public(session, v, versions, today), rec


# --- reading records -------------------------------------------------------------------


_decode = json.JSONDecoder().decode


def _envelope(record_id: str, canonical: bytes, leaf_index: int | None = None) -> dict[str, Any]:
    env: dict[str, Any] = _decode(canonical.decode("utf-8"))
    env["record_id"] = record_id
    if leaf_index is not None:
        env["leaf_index"] = leaf_index
    return env


def _chunks(items: Sequence[str], size: int = _IN_CHUNK) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def load_records(
    session: Session, usccs: Iterable[str], *, with_index: bool = False
) -> dict[str, list[dict[str, Any]]]:
    """The rating-relevant records of each merchant (any order; the rating ignores order)."""
    wanted = sorted(set(usccs))
    out: dict[str, list[dict[str, Any]]] = {u: [] for u in wanted}
    rated = rating.RATED_TYPES
    conn = session.connection()
    for chunk in _chunks(wanted):
        # Filter the type in Python: with it in SQL, SQLite prefers the record_type index
        # and scans every record of those types instead of the merchants' few.
        rows = conn.execute(log.leaves_of_subjects(chunk))
        for subject, rid, canonical, idx, typ in rows:
            if typ in rated:
                out[subject].append(
                    _envelope(rid, bytes(canonical), int(idx) if with_index else None)
                )
    return out


# --- rating ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rated:
    uscc: str
    rating: rating.Rating
    next_change_on: date | None


def compute(
    records: Sequence[Mapping[str, Any]], versions: Sequence[PolicyVersion], as_of: date
) -> tuple[rating.Rating, date | None]:
    """The rating on ``as_of`` and the next date it may change by itself."""
    policy = in_force(versions, as_of).policy
    result, changes = rating.rate_with_change_dates(records, policy, as_of)
    candidates = [d for d in (changes[0] if changes else None, next_policy_date(versions, as_of))
                  if d is not None]
    return result, min(candidates) if candidates else None


def factor_json(f: rating.Factor) -> dict[str, Any]:
    """A factor as JSON (the cached row, and docs/credit-rating-examples.json)."""
    return {
        "record_id": f.record_id,
        "kind": f.kind,
        "points": f.points,
        "reason_zh": f.reason_zh,
        "applies_until": f.applies_until.isoformat() if f.applies_until else None,
    }


def _row(r: Rated, now: datetime) -> dict[str, Any]:
    x = r.rating
    return {
        "uscc": r.uscc,
        "tier": x.tier,
        "score": x.score,
        "score_tier": x.score_tier,
        "policy_version": x.policy_version,
        "as_of": x.as_of,
        "computed_at": now,
        "next_change_on": r.next_change_on,
        "on_abnormal_list": x.on_abnormal_list,
        "on_serious_list": x.on_serious_list,
        "due_for_serious_list": x.due_for_serious_list,
        "due_for_serious_list_removal": x.due_for_serious_list_removal,
        "factors": [factor_json(f) for f in x.factors],
    }


_UPDATABLE = (
    "tier",
    "score",
    "score_tier",
    "policy_version",
    "as_of",
    "computed_at",
    "next_change_on",
    "on_abnormal_list",
    "on_serious_list",
    "due_for_serious_list",
    "due_for_serious_list_removal",
    "factors",
)


def _upsert(session: Session, rows: list[dict[str, Any]]) -> None:
    upsert(session, RATING, rows, key=["uscc"], update=_UPDATABLE)


def _current_rows(
    session: Session, usccs: Sequence[str] | None
) -> dict[str, tuple[str, int, int]]:
    c = RATING.c
    query = select(c.uscc, c.tier, c.score, c.policy_version)
    if usccs is None:
        return {u: (t, s, p) for u, t, s, p in session.execute(query)}
    out: dict[str, tuple[str, int, int]] = {}
    for chunk in _chunks(list(usccs)):
        for u, t, s, p in session.execute(query.where(c.uscc.in_(chunk))):
            out[u] = (t, s, p)
    return out


def _store(
    session: Session,
    results: Sequence[Rated],
    *,
    now: datetime,
    cause: str,
    cause_record_ids: Mapping[str, str] | None = None,
    versions: Sequence[PolicyVersion] = (),
    existing: Mapping[str, tuple[str, int, int]] | None = None,
) -> int:
    """Upsert the cache rows and append history for those whose rating changed.

    The caller holds the append lock (it appended in this transaction, or took
    :func:`_lock_appends`), so the log's size now is what the ratings were computed
    from: each history row keeps it as ``basis_size`` for audit to replay."""
    basis = log.tree_size(session)
    if existing is None:
        existing = _current_rows(session, [r.uscc for r in results])
    policy_ids = {v.version: v.record_id for v in versions}
    history = []
    for r in results:
        x = r.rating
        before = existing.get(r.uscc)
        now_key = (x.tier, x.score, x.policy_version)
        if before == now_key:
            continue
        if before is None:
            why, rid = "initial", (cause_record_ids or {}).get(r.uscc)
        elif cause == "record":
            why, rid = "record", (cause_record_ids or {}).get(r.uscc)
        elif before[2] != x.policy_version:
            why, rid = "policy", policy_ids.get(x.policy_version)
        else:
            why, rid = "time", None
        history.append(
            {
                "uscc": r.uscc,
                "tier": x.tier,
                "score": x.score,
                "policy_version": x.policy_version,
                "from_date": x.as_of,
                "cause": why,
                "cause_record_id": rid,
                "at": now,
                "basis_size": basis,
            }
        )
    _upsert(session, [_row(r, now) for r in results])
    if history:
        session.execute(CHANGES.insert(), history)
    return len(history)


def rerate_merchants(
    session: Session,
    usccs: Iterable[str],
    *,
    as_of: date | None = None,
    cause_record_ids: Mapping[str, str] | None = None,
    now: datetime | None = None,
    versions: Sequence[PolicyVersion] | None = None,
) -> dict[str, rating.Rating]:
    """Recompute and store the ratings of ``usccs`` in the caller's transaction.

    Call it after appending records about these merchants and before committing;
    ``cause_record_ids`` names the record that caused each re-rating (for the
    history). Raises :class:`backend.credit.rating.RatingError` for a record the
    rating cannot read, which rolls the write back: an unreadable record never
    reaches the log.
    """
    now = now or utcnow()
    day = as_of or today_shanghai(now)
    # ``versions``: the policy versions the caller read in this transaction already.
    versions = versions if versions is not None else ensure_policy(session, now=now)
    wanted = sorted(set(usccs))
    records = load_records(session, wanted)
    results = []
    for u in wanted:
        result, nxt = compute(records[u], versions, day)
        results.append(Rated(u, result, nxt))
    _store(session, results, now=now, cause="record", cause_record_ids=cause_record_ids,
           versions=versions)
    return {r.uscc: r.rating for r in results}


# --- re-rating around an append: computed before the log lock, stored under it -----------


@dataclass(frozen=True)
class PendingRatings:
    """Ratings computed by :func:`prepare_rerate`, to be stored by :func:`store_rerate`."""

    as_of: date
    seen_size: int
    """The log size read before the merchants' records were."""
    versions: Sequence[PolicyVersion]
    results: Sequence[Rated]


def prepare_rerate(
    session: Session,
    new_records: Mapping[str, Sequence[log.SealedRecord]],
    *,
    as_of: date,
    now: datetime,
    versions: Sequence[PolicyVersion] | None = None,
) -> PendingRatings:
    """Re-rate the merchants about whom ``new_records`` are about to be appended, before
    the append takes the log lock: from their records committed so far plus the new ones.

    The write path of every outcome holds the log lock from its append to its commit,
    and every transaction that appends waits for it; reading and rating the merchants'
    records outside it shortens that wait. :func:`store_rerate` (after the append)
    checks that nothing the ratings read has changed since, and rates again if it has.
    """
    versions = versions if versions is not None else ensure_policy(session, now=now)
    # Read before the records: whatever commits after this is in [seen_size, our start).
    seen = int(session.execute(text("SELECT size FROM log_head WHERE id = 1")).scalar_one())
    records = load_records(session, new_records)
    for uscc, sealed in new_records.items():
        records[uscc].extend(
            _envelope(r.record_id, r.canonical)
            for r in sealed
            if r.envelope["type"] in rating.RATED_TYPES
        )
    results = [Rated(u, *compute(records[u], versions, as_of)) for u in sorted(new_records)]
    return PendingRatings(as_of, seen, versions, results)


def store_rerate(
    session: Session,
    pending: PendingRatings,
    *,
    appended_from: int,
    cause_record_ids: Mapping[str, str],
    now: datetime,
) -> dict[str, rating.Rating]:
    """Store ratings from :func:`prepare_rerate`, after this transaction appended its
    records from leaf ``appended_from`` on (so the log lock is held until commit).

    Another transaction may have committed records between the read and the lock: any
    about these merchants make their ratings be computed again, and a new policy
    version makes all of them be, now from the log as this transaction sees it (its
    own records included). The result is what :func:`rerate_merchants` after the
    append would have stored.
    """
    results = list(pending.results)
    versions = pending.versions
    stale: set[str] = set()
    if appended_from > pending.seen_size:
        usccs = [r.uscc for r in results]
        policy_changed = False
        for chunk in _chunks(usccs):
            for subject, record_type in session.execute(
                log.subjects_and_types_between(pending.seen_size, appended_from, chunk, POLICY)
            ):
                if record_type == POLICY:
                    policy_changed = True
                else:
                    stale.add(subject)
        if policy_changed:
            versions = policy_versions(session)
            stale = set(usccs)
    if stale:
        records = load_records(session, stale)
        results = [
            Rated(r.uscc, *compute(records[r.uscc], versions, pending.as_of))
            if r.uscc in stale
            else r
            for r in results
        ]
    _store(session, results, now=now, cause="record", cause_record_ids=cause_record_ids,
           versions=versions)
    return {r.uscc: r.rating for r in results}


def _rated_subjects(records: Iterable[Any]) -> dict[str, list[Any]]:
    """Records by merchant, for the merchants whose rating they can change (a new
    registration too: a merchant is rated from the start)."""
    out: dict[str, list[Any]] = {}
    for r in records:
        env = r.envelope
        if env["subject"] is not None and (
            env["type"] in rating.RATED_TYPES or env["type"] == REGISTERED
        ):
            out.setdefault(env["subject"], []).append(r)
    return out


def _hook_prepare(
    session: Session, sealed: Sequence[log.SealedRecord], now: datetime
) -> PendingRatings | None:
    by_merchant = _rated_subjects(sealed)
    if not by_merchant:
        return None
    return prepare_rerate(session, by_merchant, as_of=today_shanghai(now), now=now)


def _hook_after(
    session: Session,
    appended: Sequence[log.AppendedRecord],
    pending: PendingRatings,
    now: datetime,
) -> dict[str, rating.Rating]:
    # The record that caused each merchant's re-rating: its last one here.
    causes = {u: recs[-1].record_id for u, recs in _rated_subjects(appended).items()}
    return store_rerate(
        session, pending, appended_from=appended[0].leaf_index, cause_record_ids=causes, now=now
    )


RERATE_HOOK = Hook("credit", prepare=_hook_prepare, after=_hook_after)
"""Re-rates the merchants a write is about: rated before the log lock, stored after
(``backend/domains.py`` registers it with the write path)."""


def rerate_merchant(
    session: Session,
    uscc: str,
    *,
    as_of: date | None = None,
    cause_record_id: str | None = None,
    now: datetime | None = None,
) -> rating.Rating:
    """:func:`rerate_merchants` for one merchant (about 1-5 ms): call before committing."""
    causes = {uscc: cause_record_id} if cause_record_id else None
    return rerate_merchants(session, [uscc], as_of=as_of, cause_record_ids=causes, now=now)[uscc]


# --- the sweep ---------------------------------------------------------------------------


@dataclass
class SweepResult:
    as_of: date
    merchants: int = 0
    records: int = 0
    changed: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    compute_seconds: float = 0.0
    """Reading, parsing and rating; the rest is storing."""

    def describe(self) -> str:
        text_ = (
            f"re-rated {self.merchants} merchant(s) from {self.records} record(s) as of "
            f"{self.as_of}: {self.changed} rating(s) changed, in {self.seconds:.2f} s"
        )
        if self.failed:
            text_ += f"; {len(self.failed)} could not be rated: {', '.join(self.failed[:10])}"
        return text_


def _lock_appends(session: Session) -> None:
    """Hold off appenders until commit, so no record slips between reading and writing.

    SQLite write transactions already start with BEGIN IMMEDIATE (backend/db.py).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_SWEEP_LOCK})
        session.execute(text("SELECT size FROM log_head WHERE id = 1 FOR UPDATE"))


def _due(session: Session, today: date, policy_version: int) -> list[str]:
    r = RATING.c
    registered = merchant_queries.registered_usccs()
    uscc = registered.selected_columns.uscc
    unrated = registered.where(~select(r.uscc).where(r.uscc == uscc).exists())
    due = select(r.uscc).where(
        (r.next_change_on <= today) | (r.policy_version != policy_version) | (r.as_of > today)
    )
    return sorted({u for (u,) in session.execute(unrated)} | {u for (u,) in session.execute(due)})


def _stream_all(
    session: Session, size: int, *, with_index: bool = False
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(subject, records) for every subject with rated records below leaf ``size``.

    One pass in subject order over the subject index (Core rows, no ORM objects).
    ``with_index`` adds each record's ``leaf_index``.
    """
    result = session.connection().execute(
        log.leaves_by_subject(size).execution_options(yield_per=20_000)
    )
    rated = rating.RATED_TYPES
    decode = _decode
    current: str | None = None
    batch: list[dict[str, Any]] = []
    for subject, rid, canonical, idx, typ in result:
        if subject != current:
            if batch:
                yield current, batch  # type: ignore[misc]
            current, batch = subject, []
        if typ in rated:
            env = decode(bytes(canonical).decode("utf-8"))
            env["record_id"] = rid
            if with_index:
                env["leaf_index"] = int(idx)
            batch.append(env)
    if batch:
        yield current, batch  # type: ignore[misc]


def sweep(
    db: Database,
    *,
    today: date | None = None,
    full: bool = False,
    now: datetime | None = None,
) -> SweepResult:
    """Re-rate merchants whose rating may have changed by ``today`` (all with ``full``).

    Computes from a consistent read of the log up to its current size, then, in one
    write transaction that holds appenders off, re-reads the merchants that received
    records meanwhile and stores everything. Idempotent: running it twice (or in two
    processes at once) stores the same rows and no duplicate history.
    """
    started = time.perf_counter()
    now = now or utcnow()
    day = today or today_shanghai(now)
    res = SweepResult(as_of=day)
    with db.session() as s:
        versions = ensure_policy(s, now=now)
        s.commit()
    current_version = in_force(versions, day).version
    results: dict[str, Rated] = {}

    def rate_one(u: str, recs: Sequence[Mapping[str, Any]]) -> None:
        try:
            result, nxt = compute(recs, versions, day)
        except rating.RatingError as exc:
            logger.error("cannot rate merchant %s: %s", u, exc)
            res.failed.append(u)
            return
        results[u] = Rated(u, result, nxt)
        res.records += len(recs)

    # Hundreds of thousands of short-lived dicts: the cyclic GC would re-scan the
    # long-lived results on every collection (about 15 % of a full re-rating).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with db.read() as s:
            size = log.tree_size(s)
            if full:
                merchants = set(merchant_queries.all_usccs(s))
                for subject, recs in _stream_all(s, size):
                    if subject in merchants:
                        rate_one(subject, recs)
                unrated = merchants.difference(results, res.failed)
                if unrated:
                    empty, nxt = compute([], versions, day)
                    for u in unrated:
                        results[u] = Rated(u, empty, nxt)
            else:
                due = _due(s, day, current_version)
                for u, recs in load_records(s, due).items():
                    rate_one(u, recs)

        res.compute_seconds = time.perf_counter() - started
        with db.session() as s:
            _lock_appends(s)
            # Records appended since the read: re-rate their merchants in this transaction.
            late = {u for u in log.subjects_since(s, size) if u in results}
            if late:
                for u, recs in load_records(s, late).items():
                    rate_one(u, recs)
            existing = _current_rows(s, None if full else list(results))
            res.changed = _store(
                s,
                list(results.values()),
                now=now,
                cause="sweep",
                versions=versions,
                existing=existing,
            )
            s.commit()
    finally:
        if gc_was_enabled:
            gc.enable()
    res.merchants = len(results)
    res.seconds = time.perf_counter() - started
    return res


class RerateWorker(BackgroundThread):
    """Runs :func:`sweep` at start, after every Asia/Shanghai midnight, and on :meth:`wake`."""

    thread_name = "rerate-worker"

    def __init__(self, ctx: AppContext, *, clock: Callable[[], datetime] = utcnow) -> None:
        super().__init__()
        self.ctx = ctx
        self.clock = clock
        self.last: SweepResult | None = None
        self.last_error: str | None = None

    def _seconds_to_midnight(self) -> float:
        now = self.clock().astimezone(SHANGHAI)
        midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), SHANGHAI)
        return max(1.0, (midnight - now).total_seconds() + 2.0)

    def run(self) -> None:
        while not self.stopping:
            try:
                self.last = sweep(self.ctx.db, now=self.clock())
                self.last_error = None
                if self.last.merchants:
                    logger.info(self.last.describe())
            except Exception as exc:  # keep the worker alive; the next run retries
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.exception("rating sweep failed")
            self.pause(min(self._seconds_to_midnight(), 3600.0))


def install(app: FastAPI) -> None:
    """Publish the default policy if none exists, and run the daily sweep with the app
    (unless ``HM_RERATE_ENABLED=false``: then run ``honest-metering rerate`` from a timer)."""

    def start(ctx: AppContext) -> None:
        ensure_default_policy(ctx.db)
        if ctx.settings.rerate_enabled:
            app.state.rerate_worker = RerateWorker(ctx).start()

    def stop(ctx: AppContext) -> None:
        worker = getattr(app.state, "rerate_worker", None)
        if worker is not None:
            worker.stop()
            app.state.rerate_worker = None

    app.state.rerate_worker = None
    app.state.startup_hooks.append(start)
    app.state.shutdown_hooks.append(stop)


# --- reads ----------------------------------------------------------------------------------


def _merchant(session: Session, uscc: str) -> Merchant:
    return get_merchant(session, parse_uscc(uscc))


def _factor_public(f: Mapping[str, Any]) -> FactorPublic:
    return FactorPublic(
        record_id=f["record_id"],
        kind=f["kind"],
        points=f["points"],
        reason_zh=f["reason_zh"],
        applies_until=date.fromisoformat(f["applies_until"]) if f["applies_until"] else None,
    )


def get_credit(session: Session, *, uscc: str, as_of: date | None, today: date) -> CreditPublic:
    """The rating on ``as_of`` (default today): today's from the maintained cache,
    another date's computed from the records. None before a regulator has verified the
    registration (409 ``MerchantNotVerified``)."""
    m = _merchant(session, uscc)
    require_verified(session, m.uscc)
    versions = policy_versions(session)
    day = as_of or today
    v = in_force(versions, day)
    row = session.get(MerchantRating, m.uscc) if day == today else None
    fresh = (
        row is not None
        and row.as_of <= today
        and (row.next_change_on is None or row.next_change_on > today)
        and row.policy_version == v.version
    )
    if row is not None and fresh:
        return CreditPublic(
            uscc=m.uscc,
            as_of=day,
            tier=row.tier,
            score=row.score,
            score_tier=row.score_tier,
            base_score=v.policy.base_score,
            policy_version=row.policy_version,
            policy_record_id=v.record_id,
            on_abnormal_list=row.on_abnormal_list,
            on_serious_list=row.on_serious_list,
            due_for_serious_list=row.due_for_serious_list,
            due_for_serious_list_removal=row.due_for_serious_list_removal,
            next_change_on=row.next_change_on,
            factors=[_factor_public(f) for f in row.factors],
            spot_check_rate_bp=v.policy.spot_check_rate_for(row.tier),  # type: ignore[arg-type]
            source="current",
        )
    # Not rated yet, or a change date passed before the sweep ran: compute it now.
    records = load_records(session, [m.uscc])[m.uscc]
    result, nxt = compute(records, versions, day)
    return CreditPublic(
        uscc=m.uscc,
        as_of=day,
        tier=result.tier,
        score=result.score,
        score_tier=result.score_tier,
        base_score=v.policy.base_score,
        policy_version=result.policy_version,
        policy_record_id=v.record_id,
        on_abnormal_list=result.on_abnormal_list,
        on_serious_list=result.on_serious_list,
        due_for_serious_list=result.due_for_serious_list,
        due_for_serious_list_removal=result.due_for_serious_list_removal,
        next_change_on=nxt,
        factors=[_factor_public(factor_json(f)) for f in result.factors],
        spot_check_rate_bp=v.policy.spot_check_rate_for(result.tier),
        source="current" if day == today else "computed",
    )


def credit_history(session: Session, *, uscc: str) -> CreditHistory:
    m = _merchant(session, uscc)
    require_verified(session, m.uscc)
    rows = session.execute(
        select(RatingChange).where(CHANGES.c.uscc == m.uscc).order_by(CHANGES.c.id)
    ).scalars()
    items: list[RatingChangePublic] = []
    previous: str | None = None
    for r in rows:
        items.append(
            RatingChangePublic(
                from_date=r.from_date,
                tier=r.tier,
                score=r.score,
                policy_version=r.policy_version,
                tier_changed=r.tier != previous,
                cause=r.cause,  # type: ignore[arg-type]
                cause_record_id=r.cause_record_id,
                at=r.at,
            )
        )
        previous = r.tier
    return CreditHistory(uscc=m.uscc, items=items)


def tier_stats(session: Session, *, today: date) -> TierStats:
    r = RATING.c
    # Only verified registrations show a tier (issue 15 M5): the others are unrated here.
    m = merchant_queries.verified_places().subquery()
    rows = session.execute(
        select(r.tier, m.c.region_code, m.c.sector, func.count())
        .join_from(RATING, m, m.c.uscc == r.uscc)
        .group_by(r.tier, m.c.region_code, m.c.sector)
        .order_by(r.tier, m.c.region_code, m.c.sector)
    ).all()
    total = merchant_queries.count_not_rejected(session)
    by_tier: dict[str, int] = {t: 0 for t in TIERS}
    by_region: dict[str, dict[str, int]] = {}
    by_sector: dict[str, dict[str, int]] = {}
    cells = []
    for tier, region, sector, n in rows:
        n = int(n)
        by_tier[tier] = by_tier.get(tier, 0) + n
        reg = by_region.setdefault(region, {t: 0 for t in TIERS})
        reg[tier] = reg.get(tier, 0) + n
        sec = by_sector.setdefault(sector, {t: 0 for t in TIERS})
        sec[tier] = sec.get(tier, 0) + n
        cells.append(TierCount(tier=tier, region_code=region, sector=sector, count=n))
    return TierStats(
        as_of=today,
        total=total,
        unrated=total - sum(by_tier.values()),
        by_tier=by_tier,
        by_region=by_region,
        by_sector=by_sector,
        cells=cells,
    )


def disclosed_records(session: Session, *, uscc: str, today: date) -> MerchantRecords:
    """The merchant's records that anyone may see and recompute the rating from."""
    m = _merchant(session, uscc)
    versions = policy_versions(session)
    v = in_force(versions, today)
    records = load_records(session, [m.uscc], with_index=True)[m.uscc]
    shown = rating.disclosure(records, v.policy, today)
    keep = set(shown.shown)
    cp_size = anchored_size(session)
    items = []
    for env in sorted(records, key=lambda e: e["leaf_index"]):
        if env["record_id"] not in keep:
            continue
        idx = env.pop("leaf_index")
        rid = env.pop("record_id")
        items.append(
            DisclosedRecord(
                record_id=rid, leaf_index=idx, type=env["type"], anchored=idx < cp_size, record=env
            )
        )
    return MerchantRecords(uscc=m.uscc, as_of=today, items=items, withheld=len(shown.withheld))


# --- audit -----------------------------------------------------------------------------

_COMPARED = tuple(c for c in _UPDATABLE if c != "computed_at")


def _audit_ratings(session: Session, ctx: projection.CheckContext) -> list[projection.Difference]:
    """Every ``merchant_rating`` row against the rating recomputed from the log on the
    row's own ``as_of`` (every merchant is rated from its registration on)."""
    versions = policy_versions(session)
    found: list[projection.Difference] = []
    live = {
        r["uscc"]: r for r in session.connection().execute(select(RATING)).mappings()
    }
    merchants = merchant_queries.all_usccs(session)
    size = log.tree_size(session)
    records: dict[str, list[dict[str, Any]]] = {u: [] for u in merchants}
    for subject, recs in _stream_all(session, size):
        if subject in records:
            records[subject] = recs
    for n, u in enumerate(merchants):
        row = live.pop(u, None)
        if row is None:
            found.append(projection.Difference("merchant_rating", (u,), "deleted", None))
            continue
        try:
            result, nxt = compute(records[u], versions, row["as_of"])
        except (rating.RatingError, NoPolicyInForce) as exc:
            found.append(projection.Difference(
                "merchant_rating", (u,), "unratable", None, detail=str(exc)))
            continue
        want = _row(Rated(u, result, nxt), utcnow())
        diff = tuple(
            c for c in _COMPARED if projection.normal(row[c]) != projection.normal(want[c])
        )
        if diff:
            found.append(projection.Difference(
                "merchant_rating", (u,), "altered", None, diff,
                {c: row[c] for c in diff}, {c: want[c] for c in diff},
            ))
        if ctx.progress is not None and n % 5000 == 4999:
            ctx.progress("checking ratings", n + 1, len(merchants))
    for u in live:
        found.append(projection.Difference("merchant_rating", (u,), "inserted", None))
    return found


def _rebuild_ratings(session: Session, ctx: projection.CheckContext) -> int:
    """Drop rows of merchants that do not exist, then rate every merchant as of today."""
    _lock_appends(session)  # nothing is appended between reading the records and storing
    known = merchant_queries.registered_usccs()
    gone = session.connection().execute(RATING.delete().where(RATING.c.uscc.not_in(known))).rowcount
    merchants = merchant_queries.all_usccs(session)
    versions = ensure_policy(session, now=utcnow())
    records = load_records(session, merchants)
    results = [Rated(u, *compute(records[u], versions, ctx.today)) for u in merchants]
    _store(session, results, now=utcnow(), cause="time", versions=versions)
    return int(gone or 0) + len(results)


RATINGS_CHECK = projection.Check("merchant_rating", _audit_ratings, _rebuild_ratings)


def _audit_history(session: Session, ctx: projection.CheckContext) -> list[projection.Difference]:
    """Every ``rating_change`` row against the rating recomputed on its ``from_date``
    from the records the row was computed from: the log's first ``basis_size``
    records, and the policy versions among them. (Rows from before ``basis_size``
    existed fall back to the records whose ``at`` is not after the row's.)"""
    all_versions = policy_versions(session)
    found: list[projection.Difference] = []
    rows = session.connection().execute(select(CHANGES).order_by(CHANGES.c.uscc, CHANGES.c.id))
    size = log.tree_size(session)
    records: dict[str, list[dict[str, Any]]] = {}
    for subject, recs in _stream_all(session, size, with_index=True):
        records[subject] = recs
    published = {
        int(v): aware(at) for v, at in session.execute(select(POLICIES.c.version, POLICIES.c.at))
    }
    for row in rows.mappings():
        basis = row["basis_size"]
        at = aware(row["at"])
        if basis is not None:
            known = [r for r in records.get(row["uscc"], []) if r["leaf_index"] < basis]
            versions = [v for v in all_versions if v.leaf_index < basis] or all_versions
        else:
            stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            known = [r for r in records.get(row["uscc"], []) if r["at"] <= stamp]
            versions = [
                v for v in all_versions if published.get(v.version, at) <= at
            ] or all_versions
        try:
            result, _ = compute(known, versions, row["from_date"])
        except (rating.RatingError, NoPolicyInForce) as exc:
            found.append(projection.Difference(
                "rating_change", (row["id"],), "unratable", row["cause_record_id"],
                detail=str(exc)))
            continue
        want = {"tier": result.tier, "score": result.score,
                "policy_version": result.policy_version}
        diff = tuple(c for c in want if row[c] != want[c])
        if diff:
            found.append(projection.Difference(
                "rating_change", (row["id"],), "altered", row["cause_record_id"], diff,
                {c: row[c] for c in diff}, {c: want[c] for c in diff},
            ))
    return found


def _rebuild_history(session: Session, ctx: projection.CheckContext) -> int:
    """The history of displayed ratings cannot be replayed exactly (it records when a
    tier changed by the passing of time): rows that disagree with the log are kept and
    reported by audit until someone decides; nothing is rewritten."""
    return 0


HISTORY_CHECK = projection.Check(
    "rating_change", _audit_history, _rebuild_history, repairs=False
)
