"""The metering-credit policy: every number the rating uses, as one versioned document.

A :class:`CreditPolicy` is the body of a ``credit.policy`` record
(:func:`policy_body`); a new version is a new record that
``supersedes`` the previous one. Because the rating is a pure function of
(records, policy, date), publishing the policy is what makes a displayed tier
reproducible by anyone.

This module must never read a clock, the environment or the database, and
must never hold mutable state: it defines the document, validates it, and
does the calendar arithmetic the document's windows are defined by.

Exact representations (no floats anywhere in the document):

- points and thresholds are integers on the 0–100 score scale;
- spot-check rates are integer basis points (1 % = 100 bp, 100 % = 10 000 bp);
- money is integer fen (¥1 = 100 fen);
- periods are whole calendar months (a year is 12 months), never days.

Which rules a document's numbers feed is ``docs/credit-rating.md``; a document
names that specification by its SHA-256 (``spec_sha256``), so a verifier knows
which rules apply. Documents older than the field name none and follow the rules
of the specification's first version.

Date arithmetic (used by every window in the rating):

- ``add_months(d, n)`` is the same day of the month ``n`` months later; when
  that month is shorter, the last day of that month (2024-01-31 + 1 month =
  2024-02-29, 2024-02-29 + 12 months = 2025-02-28).
- A window of ``n`` months starting on ``start`` covers the dates ``d`` with
  ``start <= d < add_months(start, n)``: a spot check on 2026-03-01 with a
  36-month window counts up to and including 2029-02-28 and no longer counts
  on 2029-03-01. ``window_end`` returns that exclusive end.
"""

from __future__ import annotations

import calendar
import hashlib
from collections.abc import Iterable
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from backend.ledger.records import MAX_SAFE_INT
from backend.merchants.reference import SPOT_CHECK_RESULTS

Tier = Literal["A", "B", "C", "D"]
"""SAMR credit-risk classes: A low, B ordinary, C elevated, D high."""

TIERS: tuple[Tier, ...] = ("A", "B", "C", "D")
"""Tiers from best (lowest risk) to worst."""

SpotCheckOutcome = Literal["pass", "problem", "neutral", "pending"]
"""How a published spot-check result value affects the rating:

- ``pass``: a passed check (bonus, capped, for ``spot_check_pass.window_months``);
- ``problem``: a problem found (deduction for ``spot_check_problem.window_months``);
- ``neutral``: no effect at all (nothing about metering was assessed);
- ``pending``: no effect until a record that ``supersedes`` it gives the final result.
"""

PUBLISHED_SPOT_CHECK_RESULTS: tuple[str, ...] = SPOT_CHECK_RESULTS
"""The seven result values of the national enterprise credit publicity system."""

SCORE_MIN = 0
SCORE_MAX = 100
BASIS_POINTS_FULL = 10_000

# The document is a record body, so every integer must be JSON-safe (docs/records.md);
# and every window must end inside the calendar (``date`` stops at 9999), which a
# century of months keeps far from.
INT_MAX = MAX_SAFE_INT
MONTHS_MAX = 1200

Int = Annotated[int, Field(strict=True, ge=-INT_MAX, le=INT_MAX)]
"""An integer that must arrive as an integer: ``3.0`` or ``"3"`` are refused."""
Months = Annotated[int, Field(strict=True, ge=1, le=MONTHS_MAX)]
Fen = Annotated[int, Field(strict=True, gt=0, le=INT_MAX)]

RATING_SPEC_PATH = "docs/credit-rating.md"
RATING_SPEC_SHA256 = "fb929ac893d87621fbd1668f517cafd3caf03165a48e369a888d2043e968e347"
"""SHA-256 of ``docs/credit-rating.md`` (its UTF-8 bytes, CRLF read as LF): the rules this
code implements. ``tests/credit/test_rating_spec.py`` holds the two together."""

SAME_RULES_SPEC_SHA256: frozenset[str] = frozenset(
    {
        RATING_SPEC_SHA256,
        # Before the optional spot_check_min_interval_months (read by draws, not by the
        # rating): the same rules.
        "1793a6079e8180b2e2393d7e7c1af90112d65a02e585b4d085045715d5fbdf98",
    }
)
"""Every specification hash whose rules are exactly this code's. An edit of
``docs/credit-rating.md`` that changes no rule (a typo, a clearer sentence) adds the new
hash here and keeps the old one, so policy versions recorded under the old text still
verify; an edit that changes a rule replaces the set."""


def hash_spec(text: bytes) -> str:
    """The hash a policy document records for a specification text (CRLF read as LF)."""
    return hashlib.sha256(text.replace(b"\r\n", b"\n")).hexdigest()



def add_months(d: date, months: int) -> date:
    """Same day ``months`` calendar months later, clamped to the end of that month.

    Precondition: ``months >= 0``. Pure; this is the only calendar arithmetic the
    policy's windows use.
    """
    if months < 0:
        raise ValueError(f"months must be >= 0, got {months}")
    index = d.year * 12 + (d.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    if d.day <= 28:  # every month has the day: skip the calendar (a hot path when re-rating)
        return date(year, month, d.day)
    day = min(d.day, calendar.monthrange(year, month)[1])
    return date(year, month, day)


def window_end(start: date, months: int) -> date:
    """The first date a window of ``months`` starting on ``start`` no longer covers."""
    return add_months(start, months)


class _Document(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ValidityRule(_Document):
    """A bonus for a status with its own validity (pledge, demonstration award).

    ``validity_months`` is what the writer uses to fill ``valid_until`` on the
    record (``add_months(valid_from, validity_months)``, an exclusive end); the
    rating reads ``valid_until`` from the record.
    """

    points: Int
    validity_months: Months


class WindowRule(_Document):
    """Points for each event, counted for ``window_months`` from the event's date."""

    points: Int
    window_months: Months


class CappedWindowRule(WindowRule):
    """Like :class:`WindowRule`, but the events in force together add up to at most ``cap``."""

    cap: Int


class CappedRule(_Document):
    """Points for each condition while it lasts, adding up to at most ``cap``."""

    points: Int
    cap: Int


class AbnormalListRule(_Document):
    """On the abnormal-operations list: points, a tier ceiling, and the escalation period."""

    points: Int
    tier_cap: Tier
    serious_after_months: Months
    """Still listed this long → due for the serious-violation list (flagged, not applied)."""


class SeriousListRule(_Document):
    """On the serious-violation list: a forced tier, and the longest listing period."""

    tier: Tier
    removal_after_months: Months
    """Listed this long → due for removal (flagged, not applied)."""


class TierThresholds(_Document):
    """Minimum score of each tier; below ``C`` is D."""

    A: Int
    B: Int
    C: Int

    @model_validator(mode="after")
    def validate_descending(self) -> TierThresholds:
        if not SCORE_MIN < self.C < self.B < self.A <= SCORE_MAX:
            raise ValueError(
                "tier thresholds must satisfy 0 < C < B < A <= 100, "
                f"got A={self.A}, B={self.B}, C={self.C}"
            )
        return self


class SpotCheckRates(_Document):
    """Yearly spot-check rate per tier, in basis points (300 = 3 %)."""

    A: Int
    B: Int
    C: Int
    D: Int

    @model_validator(mode="after")
    def validate_rates(self) -> SpotCheckRates:
        rates = (self.A, self.B, self.C, self.D)
        if any(not 0 <= r <= BASIS_POINTS_FULL for r in rates):
            raise ValueError(
                f"spot-check rates are basis points between 0 and {BASIS_POINTS_FULL}, "
                f"got A={self.A}, B={self.B}, C={self.C}, D={self.D}"
            )
        if not self.A <= self.B <= self.C <= self.D:
            raise ValueError(
                "spot-check rates must not fall as risk rises (A <= B <= C <= D), "
                f"got A={self.A}, B={self.B}, C={self.C}, D={self.D}"
            )
        return self


class SpotCheckIntervals(_Document):
    """Minimum interval per tier, in whole months, between two checks of one merchant
    (0: no minimum). Read by draws (``docs/draws.md`` §8.4), not by the rating."""

    A: Annotated[int, Field(strict=True, ge=0, le=MONTHS_MAX)]
    B: Annotated[int, Field(strict=True, ge=0, le=MONTHS_MAX)]
    C: Annotated[int, Field(strict=True, ge=0, le=MONTHS_MAX)]
    D: Annotated[int, Field(strict=True, ge=0, le=MONTHS_MAX)]


class LowerAmountThresholds(_Document):
    """A fine strictly below these amounts (integer fen) is a "lower amount" (*local*)."""

    person_below_fen: Fen
    organisation_below_fen: Fen


class RepairRule(_Document):
    """Minimum publicity, counted from ``decided_on``, before repair may be applied for."""

    min_publicity_months: Months
    special_sector_min_publicity_months: Months
    """Food, drug and special-equipment penalties (``special_sector`` on the record)."""

    @model_validator(mode="after")
    def validate_special_not_shorter(self) -> RepairRule:
        if self.special_sector_min_publicity_months < self.min_publicity_months:
            raise ValueError(
                "repair.special_sector_min_publicity_months must be at least "
                f"repair.min_publicity_months ({self.min_publicity_months}), "
                f"got {self.special_sector_min_publicity_months}"
            )
        return self


class CreditPolicy(_Document):
    """One version of the metering-credit policy: the body of a ``credit.policy`` record.

    Signs: bonuses (``pledge``, ``demonstration``, ``spot_check_pass``) are >= 0;
    deductions (everything else with points) are <= 0; a ``cap`` has the sign of
    its ``points`` and is at least as large in magnitude. A rule with 0 points is
    switched off.
    """

    version: Annotated[int, Field(strict=True, ge=1, le=INT_MAX)]
    effective_from: date
    base_score: Int
    pledge: ValidityRule
    demonstration: ValidityRule
    spot_check_pass: CappedWindowRule
    spot_check_problem: WindowRule
    penalty_lower: WindowRule
    """Lower-amount fine or circulated criticism: short publicity window."""
    penalty_other: WindowRule
    """Every other penalty: long publicity window, unless repaired."""
    complaint: CappedWindowRule
    instrument_overdue: CappedRule
    abnormal_list: AbnormalListRule
    serious_list: SeriousListRule
    tier_thresholds: TierThresholds
    spot_check_rate_bp: SpotCheckRates
    lower_amount: LowerAmountThresholds
    repair: RepairRule
    spot_check_results: dict[str, SpotCheckOutcome]
    """Published result value → outcome. Must classify all seven published values."""
    spot_check_min_interval_months: SpotCheckIntervals | None = None
    """Optional: the minimum interval of each tier (:class:`SpotCheckIntervals`); absent
    (``None``) in documents that set none, which have no minimum. Left out of the record
    body when absent (:func:`policy_body`), so such documents are as they always were."""
    spec_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    """SHA-256 of the rating specification this version follows (:func:`hash_spec` of
    ``docs/credit-rating.md``); absent (``None``) in documents recorded before the field
    existed, which follow the specification's first version."""

    @field_validator("spot_check_results")
    @classmethod
    def validate_results_cover_published(
        cls, value: dict[str, SpotCheckOutcome]
    ) -> dict[str, SpotCheckOutcome]:
        missing = [r for r in PUBLISHED_SPOT_CHECK_RESULTS if r not in value]
        if missing:
            raise ValueError(
                "spot_check_results must classify every published result value; "
                f"add: {', '.join(missing)}"
            )
        return value

    @model_validator(mode="after")
    def validate_signs_and_caps(self) -> CreditPolicy:
        errors: list[str] = []
        if not SCORE_MIN <= self.base_score <= SCORE_MAX:
            errors.append(f"base_score must be between 0 and 100, got {self.base_score}")
        bonuses: dict[str, int] = {
            "pledge.points": self.pledge.points,
            "demonstration.points": self.demonstration.points,
            "spot_check_pass.points": self.spot_check_pass.points,
        }
        deductions: dict[str, int] = {
            "spot_check_problem.points": self.spot_check_problem.points,
            "penalty_lower.points": self.penalty_lower.points,
            "penalty_other.points": self.penalty_other.points,
            "complaint.points": self.complaint.points,
            "instrument_overdue.points": self.instrument_overdue.points,
            "abnormal_list.points": self.abnormal_list.points,
        }
        for name, points in bonuses.items():
            if points < 0:
                errors.append(f"{name} is a bonus and must be >= 0, got {points}")
        for name, points in deductions.items():
            if points > 0:
                errors.append(f"{name} is a deduction and must be <= 0, got {points}")
        capped: dict[str, CappedWindowRule | CappedRule] = {
            "spot_check_pass": self.spot_check_pass,
            "complaint": self.complaint,
            "instrument_overdue": self.instrument_overdue,
        }
        for name, rule in capped.items():
            if rule.points >= 0 and not 0 <= rule.points <= rule.cap:
                errors.append(
                    f"{name}.cap must be >= {name}.points ({rule.points}) for a bonus, "
                    f"got {rule.cap}"
                )
            if rule.points < 0 and not rule.cap <= rule.points:
                errors.append(
                    f"{name}.cap must be <= {name}.points ({rule.points}) for a deduction, "
                    f"got {rule.cap}"
                )
        if self.penalty_lower.window_months > self.penalty_other.window_months:
            errors.append(
                "penalty_lower.window_months must not exceed penalty_other.window_months "
                f"({self.penalty_other.window_months}), got {self.penalty_lower.window_months}"
            )
        if errors:
            raise ValueError("; ".join(errors))
        return self

    def spot_check_rate_for(self, tier: Tier) -> int:
        """The yearly spot-check rate of ``tier`` in basis points."""
        return int(getattr(self.spot_check_rate_bp, tier))

    @model_serializer(mode="wrap")
    def _omit_absent_intervals(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        # A document that sets no minimum interval is dumped (and recorded) without the
        # key, exactly as documents were before the field existed. (No return annotation:
        # with one, pydantic would document the model as a bare object in OpenAPI.)
        data: dict[str, Any] = handler(self)
        if data.get("spot_check_min_interval_months", 0) is None:
            del data["spot_check_min_interval_months"]
        return data

    def min_interval_months_for(self, tier: str) -> int:
        """The minimum interval of ``tier`` in months between two checks (0: none)."""
        intervals = self.spot_check_min_interval_months
        return 0 if intervals is None else int(getattr(intervals, tier))

    def is_lower_amount(self, *, amount_fen: int, person: bool) -> bool:
        """Whether a fine is a "lower amount" (strictly below the threshold).

        For the service that records a penalty; the rating itself reads the
        ``lower_amount`` flag stored on the penalty record.
        """
        limit = (
            self.lower_amount.person_below_fen
            if person
            else (self.lower_amount.organisation_below_fen)
        )
        return amount_fen < limit


def policy_body(policy: CreditPolicy) -> dict[str, Any]:
    """The body of the ``credit.policy`` record of ``policy``: its JSON, without the
    optional minimum intervals when it sets none (documents recorded before the field
    existed never carried it)."""
    return policy.model_dump(mode="json")


def select_policy(policies: Iterable[CreditPolicy], as_of: date) -> CreditPolicy:
    """The policy in force on ``as_of``: the highest version with ``effective_from <= as_of``.

    Raises ``LookupError`` when no version is in force yet.
    """
    in_force = [p for p in policies if p.effective_from <= as_of]
    if not in_force:
        raise LookupError(f"no credit policy is in force on {as_of.isoformat()}")
    return max(in_force, key=lambda p: p.version)


DEFAULT_POLICY = CreditPolicy(
    version=1,
    effective_from=date(2026, 1, 1),
    base_score=80,
    pledge=ValidityRule(points=5, validity_months=12),
    demonstration=ValidityRule(points=10, validity_months=36),
    spot_check_pass=CappedWindowRule(points=2, cap=6, window_months=36),
    spot_check_problem=WindowRule(points=-10, window_months=12),
    penalty_lower=WindowRule(points=-10, window_months=3),
    penalty_other=WindowRule(points=-30, window_months=36),
    complaint=CappedWindowRule(points=-5, cap=-15, window_months=12),
    instrument_overdue=CappedRule(points=-10, cap=-20),
    abnormal_list=AbnormalListRule(points=-20, tier_cap="C", serious_after_months=36),
    serious_list=SeriousListRule(tier="D", removal_after_months=36),
    tier_thresholds=TierThresholds(A=90, B=75, C=60),
    spot_check_rate_bp=SpotCheckRates(A=300, B=1000, C=3000, D=10000),
    lower_amount=LowerAmountThresholds(
        person_below_fen=1_000_000, organisation_below_fen=10_000_000
    ),
    repair=RepairRule(min_publicity_months=6, special_sector_min_publicity_months=12),
    spot_check_results={
        # A check that found nothing wrong is the "合格 / 未发现问题" of the policy table.
        "未发现问题": "pass",
        "发现问题已责令改正": "problem",
        # Failing to publish, being unreachable or obstructing the check are findings
        # against the operator in their own right, so they weigh like a problem found.
        "未按规定公示信息": "problem",
        "通过登记的住所(经营场所)无法联系": "problem",
        "不配合检查情节严重": "problem",
        # Nothing was assessed, so nothing is rewarded and nothing is held against it.
        "未发现开展本次抽查涉及的经营活动": "neutral",
        # The final result comes later as a record that supersedes this one.
        "发现问题待后续处理": "pending",
    },
    spec_sha256=RATING_SPEC_SHA256,
)
"""Version 1: the default metering-credit policy table, every number editable."""
