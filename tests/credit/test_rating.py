"""Tests for the credit policy document and the pure metering-credit rating."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from backend.credit.policy import (
    DEFAULT_POLICY,
    PUBLISHED_SPOT_CHECK_RESULTS,
    TIERS,
    CreditPolicy,
    add_months,
    select_policy,
    window_end,
)
from backend.credit.rating import (
    Factor,
    InvalidRecord,
    MixedSubjects,
    Rating,
    UnknownSpotCheckResult,
    change_dates,
    rate,
    repair_eligibility,
    tier_for_score,
)
from tests.credit import factories as f

D = date
Records = Sequence[Mapping[str, Any]]


def score(records: Records, as_of: date) -> int:
    return rate(records, DEFAULT_POLICY, as_of).score


def kinds(rating: Rating) -> list[tuple[str, int]]:
    return [(x.kind, x.points) for x in rating.factors]


def _case(id_: str, records: Records, as_of: date, expected: int) -> Any:
    return pytest.param(records, as_of, expected, id=id_)


# ---------------------------------------------------------------------------
# Policy document
# ---------------------------------------------------------------------------


class TestAddMonths:
    @pytest.mark.parametrize(
        ("start", "months", "expected"),
        [
            pytest.param(D(2026, 3, 1), 36, D(2029, 3, 1), id="same-day"),
            pytest.param(D(2026, 1, 31), 1, D(2026, 2, 28), id="clamp-feb"),
            pytest.param(D(2028, 1, 31), 1, D(2028, 2, 29), id="clamp-leap-feb"),
            pytest.param(D(2028, 2, 29), 12, D(2029, 2, 28), id="leap-day-plus-year"),
            pytest.param(D(2025, 11, 30), 3, D(2026, 2, 28), id="across-year-clamp"),
            pytest.param(D(2026, 12, 15), 1, D(2027, 1, 15), id="december"),
            pytest.param(D(2026, 5, 31), 0, D(2026, 5, 31), id="zero"),
        ],
    )
    def test_add_months(self, start: date, months: int, expected: date) -> None:
        assert add_months(start, months) == expected
        assert window_end(start, months) == expected

    def test_negative_months_refused(self) -> None:
        with pytest.raises(ValueError, match="months must be >= 0"):
            add_months(D(2026, 1, 1), -1)


def _policy(**changes: Any) -> dict[str, Any]:
    """The default policy document with some top-level or dotted fields replaced."""
    doc = DEFAULT_POLICY.model_dump(mode="json")
    for dotted, value in changes.items():
        target = doc
        *path, last = dotted.split("__")
        for part in path:
            target = target[part]
        target[last] = value
    return doc


def _no_floats(value: object) -> bool:
    if isinstance(value, float):
        return False
    if isinstance(value, dict):
        return all(_no_floats(v) for v in value.values())
    if isinstance(value, list):
        return all(_no_floats(v) for v in value)
    return True


class TestCreditPolicy:
    def test_default_round_trips_as_record_body(self) -> None:
        body = DEFAULT_POLICY.model_dump(mode="json")
        assert CreditPolicy.model_validate(body) == DEFAULT_POLICY
        assert _no_floats(body)
        assert body["version"] == 1
        assert body["effective_from"] == "2026-01-01"
        assert body["spot_check_rate_bp"] == {"A": 300, "B": 1000, "C": 3000, "D": 10000}

    def test_default_numbers(self) -> None:
        p = DEFAULT_POLICY
        assert p.base_score == 80
        assert (p.pledge.points, p.pledge.validity_months) == (5, 12)
        assert (p.demonstration.points, p.demonstration.validity_months) == (10, 36)
        assert (p.spot_check_pass.points, p.spot_check_pass.cap) == (2, 6)
        assert p.spot_check_pass.window_months == 36
        assert (p.spot_check_problem.points, p.spot_check_problem.window_months) == (-10, 12)
        assert (p.penalty_lower.points, p.penalty_lower.window_months) == (-10, 3)
        assert (p.penalty_other.points, p.penalty_other.window_months) == (-30, 36)
        assert (p.complaint.points, p.complaint.cap, p.complaint.window_months) == (-5, -15, 12)
        assert (p.instrument_overdue.points, p.instrument_overdue.cap) == (-10, -20)
        assert (p.abnormal_list.points, p.abnormal_list.tier_cap) == (-20, "C")
        assert p.abnormal_list.serious_after_months == 36
        assert p.serious_list.tier == "D"
        assert (p.tier_thresholds.A, p.tier_thresholds.B, p.tier_thresholds.C) == (90, 75, 60)
        assert p.lower_amount.person_below_fen == 1_000_000
        assert p.lower_amount.organisation_below_fen == 10_000_000
        assert p.repair.min_publicity_months == 6
        assert p.repair.special_sector_min_publicity_months == 12
        assert set(p.spot_check_results) == set(PUBLISHED_SPOT_CHECK_RESULTS)

    @pytest.mark.parametrize(
        ("result", "outcome"),
        [
            ("未发现问题", "pass"),
            ("发现问题已责令改正", "problem"),
            ("未按规定公示信息", "problem"),
            ("通过登记的住所(经营场所)无法联系", "problem"),
            ("不配合检查情节严重", "problem"),
            ("未发现开展本次抽查涉及的经营活动", "neutral"),
            ("发现问题待后续处理", "pending"),
        ],
    )
    def test_spot_check_results_mapping(self, result: str, outcome: str) -> None:
        assert DEFAULT_POLICY.spot_check_results[result] == outcome

    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            pytest.param(
                {"tier_thresholds__B": 95}, "0 < C < B < A <= 100", id="thresholds-not-descending"
            ),
            pytest.param({"tier_thresholds__C": 75}, "0 < C < B < A <= 100", id="thresholds-equal"),
            pytest.param({"tier_thresholds__A": 101}, "0 < C < B < A <= 100", id="threshold-101"),
            pytest.param({"tier_thresholds__C": 0}, "0 < C < B < A <= 100", id="threshold-0"),
            pytest.param(
                {"pledge__points": -5}, "pledge.points is a bonus and must be >= 0", id="bonus-neg"
            ),
            pytest.param(
                {"spot_check_pass__points": -2, "spot_check_pass__cap": -6},
                "spot_check_pass.points is a bonus",
                id="pass-negative",
            ),
            pytest.param(
                {"penalty_other__points": 30},
                "penalty_other.points is a deduction and must be <= 0",
                id="deduction-positive",
            ),
            pytest.param(
                {"abnormal_list__points": 20},
                "abnormal_list.points is a deduction",
                id="abnormal-positive",
            ),
            pytest.param(
                {"spot_check_pass__cap": 1},
                "spot_check_pass.cap must be >= spot_check_pass.points (2)",
                id="bonus-cap-below-points",
            ),
            pytest.param(
                {"complaint__cap": -3},
                "complaint.cap must be <= complaint.points (-5)",
                id="deduction-cap-above-points",
            ),
            pytest.param(
                {"instrument_overdue__cap": 20},
                "instrument_overdue.cap must be <= instrument_overdue.points (-10)",
                id="deduction-cap-wrong-sign",
            ),
            pytest.param({"base_score": 101}, "base_score must be between 0 and 100", id="base"),
            pytest.param(
                {"penalty_lower__window_months": 48},
                "penalty_lower.window_months must not exceed penalty_other.window_months",
                id="short-window-longer",
            ),
            pytest.param(
                {"spot_check_rate_bp__B": 200},
                "must not fall as risk rises",
                id="rates-not-ascending",
            ),
            pytest.param(
                {"spot_check_rate_bp__D": 10001}, "between 0 and 10000", id="rate-over-100-percent"
            ),
            pytest.param(
                {"repair__special_sector_min_publicity_months": 3},
                "must be at least repair.min_publicity_months (6)",
                id="repair-special-shorter",
            ),
            pytest.param(
                {"spot_check_results": {"未发现问题": "pass"}},
                "must classify every published result value; add: 发现问题已责令改正",
                id="results-incomplete",
            ),
            pytest.param(
                {"spot_check_results__未发现问题": "bonus"}, "'pass', 'problem'", id="bad-outcome"
            ),
            pytest.param(
                {"penalty_other__window_months": 36.0}, "valid integer", id="float-months"
            ),
            pytest.param({"complaint__points": "-5"}, "valid integer", id="string-points"),
            pytest.param({"spot_check_rate_bp__A": 0.03}, "valid integer", id="float-rate"),
            pytest.param({"complaint__window_months": 0}, "greater than or equal to 1", id="0m"),
            pytest.param({"version": 0}, "greater than or equal to 1", id="version-0"),
            pytest.param(
                {"lower_amount__person_below_fen": 0}, "greater than 0", id="lower-amount-0"
            ),
            pytest.param({"abnormal_list__tier_cap": "E"}, "'A', 'B', 'C' or 'D'", id="tier-E"),
            pytest.param({"surprise": 1}, "Extra inputs are not permitted", id="extra-field"),
        ],
    )
    def test_validation_errors(self, changes: dict[str, Any], message: str) -> None:
        with pytest.raises(ValidationError) as info:
            CreditPolicy.model_validate(_policy(**changes))
        assert message in str(info.value)

    def test_all_errors_reported_together(self) -> None:
        with pytest.raises(ValidationError) as info:
            CreditPolicy.model_validate(_policy(pledge__points=-1, complaint__points=5))
        text = str(info.value)
        assert "pledge.points is a bonus" in text
        assert "complaint.points is a deduction" in text

    def test_zero_points_switches_a_rule_off(self) -> None:
        policy = CreditPolicy.model_validate(_policy(complaint__points=0, complaint__cap=0))
        records = [f.complaint(verified_on=D(2026, 3, 1))]
        assert rate(records, policy, D(2026, 3, 2)).score == 80

    def test_is_frozen(self) -> None:
        with pytest.raises(ValidationError):
            DEFAULT_POLICY.base_score = 70  # type: ignore[misc]

    @pytest.mark.parametrize(
        ("amount_fen", "person", "expected"),
        [
            (999_999, True, True),
            (1_000_000, True, False),
            (9_999_999, False, True),
            (10_000_000, False, False),
        ],
    )
    def test_is_lower_amount(self, amount_fen: int, person: bool, expected: bool) -> None:
        assert DEFAULT_POLICY.is_lower_amount(amount_fen=amount_fen, person=person) is expected

    @pytest.mark.parametrize(("tier", "bp"), [("A", 300), ("B", 1000), ("C", 3000), ("D", 10000)])
    def test_spot_check_rate_for(self, tier: Any, bp: int) -> None:
        assert DEFAULT_POLICY.spot_check_rate_for(tier) == bp

    def test_select_policy(self) -> None:
        v2 = CreditPolicy.model_validate(
            _policy(version=2, effective_from="2027-01-01", base_score=75)
        )
        assert select_policy([v2, DEFAULT_POLICY], D(2026, 12, 31)) is DEFAULT_POLICY
        assert select_policy([v2, DEFAULT_POLICY], D(2027, 1, 1)) is v2
        with pytest.raises(LookupError, match="no credit policy is in force on 2025-12-31"):
            select_policy([v2, DEFAULT_POLICY], D(2025, 12, 31))


# ---------------------------------------------------------------------------
# Tiers
# ---------------------------------------------------------------------------


class TestTierForScore:
    @pytest.mark.parametrize(
        ("value", "tier"),
        [(0, "D"), (59, "D"), (60, "C"), (74, "C"), (75, "B"), (89, "B"), (90, "A"), (100, "A")],
        ids=lambda v: str(v),
    )
    def test_thresholds(self, value: int, tier: str) -> None:
        assert tier_for_score(value, DEFAULT_POLICY) == tier

    @pytest.mark.parametrize(
        ("records", "expected_score", "expected_tier"),
        [
            pytest.param([], 80, "B", id="base-80-B"),
            pytest.param([f.demonstration_award(on=D(2026, 1, 1))], 90, "A", id="90-A"),
            pytest.param(
                [f.complaint(verified_on=D(2026, 1, 1), complaint_id="1")], 75, "B", id="75-B"
            ),
            pytest.param(
                [
                    f.complaint(verified_on=D(2026, 1, 1), complaint_id="1"),
                    f.spot_check(checked_on=D(2026, 1, 2), result="发现问题已责令改正"),
                ],
                65,
                "C",
                id="65-C",
            ),
            pytest.param([f.penalty(decided_on=D(2026, 1, 1))], 50, "D", id="50-D"),
        ],
    )
    def test_through_rate(self, records: Records, expected_score: int, expected_tier: str) -> None:
        rating = rate(records, DEFAULT_POLICY, D(2026, 3, 1))
        assert (rating.score, rating.tier, rating.score_tier) == (
            expected_score,
            expected_tier,
            expected_tier,
        )


# ---------------------------------------------------------------------------
# Windows at their boundaries
# ---------------------------------------------------------------------------

_PASS = f.spot_check(checked_on=D(2026, 3, 1))
_PROBLEM = f.spot_check(checked_on=D(2026, 3, 1), result="发现问题已责令改正")
_UNREACHABLE = f.spot_check(checked_on=D(2026, 3, 1), result="通过登记的住所(经营场所)无法联系")
_LOWER = f.penalty(decided_on=D(2026, 3, 1), amount_fen=500_000, lower_amount=True)
_CRITICISM = f.penalty(decided_on=D(2026, 3, 1), amount_fen=0, circulated_criticism=True)
_LOWER_MONTH_END = f.penalty(decided_on=D(2025, 11, 30), lower_amount=True)
_OTHER = f.penalty(decided_on=D(2026, 3, 1))
_COMPLAINT = f.complaint(verified_on=D(2026, 3, 1))
_PLEDGE = f.pledge(valid_from=D(2026, 3, 1), valid_until=D(2027, 3, 1))
_AWARD = f.demonstration_award(on=D(2026, 3, 1), valid_until=D(2029, 3, 1))
_INSTRUMENT = f.instrument(verified_on=D(2025, 7, 1), valid_until=D(2026, 6, 30))


class TestWindows:
    @pytest.mark.parametrize(
        ("records", "as_of", "expected"),
        [
            _case("no-records", [], D(2026, 3, 1), 80),
            _case("pass-day-before-check", [_PASS], D(2026, 2, 28), 80),
            _case("pass-on-check-day", [_PASS], D(2026, 3, 1), 82),
            _case("pass-last-day", [_PASS], D(2029, 2, 28), 82),
            _case("pass-window-end", [_PASS], D(2029, 3, 1), 80),
            _case("problem-last-day", [_PROBLEM], D(2027, 2, 28), 70),
            _case("problem-window-end", [_PROBLEM], D(2027, 3, 1), 80),
            _case("unreachable-is-problem", [_UNREACHABLE], D(2026, 3, 1), 70),
            _case("lower-fine-last-day", [_LOWER], D(2026, 5, 31), 70),
            _case("lower-fine-window-end", [_LOWER], D(2026, 6, 1), 80),
            _case("criticism-last-day", [_CRITICISM], D(2026, 5, 31), 70),
            _case("criticism-window-end", [_CRITICISM], D(2026, 6, 1), 80),
            _case("lower-month-end-clamped-last-day", [_LOWER_MONTH_END], D(2026, 2, 27), 70),
            _case("lower-month-end-clamped-end", [_LOWER_MONTH_END], D(2026, 2, 28), 80),
            _case("other-penalty-last-day", [_OTHER], D(2029, 2, 28), 50),
            _case("other-penalty-window-end", [_OTHER], D(2029, 3, 1), 80),
            _case("complaint-last-day", [_COMPLAINT], D(2027, 2, 28), 75),
            _case("complaint-window-end", [_COMPLAINT], D(2027, 3, 1), 80),
            _case("pledge-day-before", [_PLEDGE], D(2026, 2, 28), 80),
            _case("pledge-first-day", [_PLEDGE], D(2026, 3, 1), 85),
            _case("pledge-last-day", [_PLEDGE], D(2027, 2, 28), 85),
            _case("pledge-expired", [_PLEDGE], D(2027, 3, 1), 80),
            _case("award-first-day", [_AWARD], D(2026, 3, 1), 90),
            _case("award-last-day", [_AWARD], D(2029, 2, 28), 90),
            _case("award-expired", [_AWARD], D(2029, 3, 1), 80),
            _case("instrument-on-valid-until", [_INSTRUMENT], D(2026, 6, 30), 80),
            _case("instrument-day-after", [_INSTRUMENT], D(2026, 7, 1), 70),
        ],
    )
    def test_boundaries(self, records: Records, as_of: date, expected: int) -> None:
        assert score(records, as_of) == expected

    def test_factor_reason_and_until(self) -> None:
        (factor,) = rate([_PASS], DEFAULT_POLICY, D(2026, 3, 1)).factors
        assert factor == Factor(
            record_id=_PASS["record_id"],
            kind="spot_check_pass",
            points=2,
            reason_zh="2026年3月1日抽查结果为“未发现问题”，加2分（3年内有效，2029年3月1日起不再计入）",
            applies_until=D(2029, 3, 1),
        )

    @pytest.mark.parametrize(
        ("record", "kind", "points", "until", "fragment"),
        [
            pytest.param(
                _PROBLEM,
                "spot_check_problem",
                -10,
                D(2027, 3, 1),
                "扣10分（1年内有效",
                id="problem",
            ),
            pytest.param(_LOWER, "penalty_lower", -10, D(2026, 6, 1), "较低数额罚款", id="lower"),
            pytest.param(
                _CRITICISM, "penalty_lower", -10, D(2026, 6, 1), "通报批评", id="criticism"
            ),
            pytest.param(_OTHER, "penalty_other", -30, D(2029, 3, 1), "公示3年", id="other"),
            pytest.param(
                _COMPLAINT, "complaint", -5, D(2027, 3, 1), "投诉经核实，扣5分", id="complaint"
            ),
            pytest.param(
                _PLEDGE, "pledge", 5, D(2027, 3, 1), "诚信计量自我承诺有效，加5分", id="pledge"
            ),
            pytest.param(
                _AWARD, "demonstration", 10, D(2029, 3, 1), "示范单位，加10分", id="award"
            ),
        ],
    )
    def test_factor_per_kind(
        self, record: Mapping[str, Any], kind: str, points: int, until: date, fragment: str
    ) -> None:
        (factor,) = rate([record], DEFAULT_POLICY, D(2026, 3, 1)).factors
        assert (factor.record_id, factor.kind, factor.points, factor.applies_until) == (
            record["record_id"],
            kind,
            points,
            until,
        )
        assert fragment in factor.reason_zh
        assert "2026年3月1日" in factor.reason_zh

    @pytest.mark.parametrize(
        "result",
        ["未发现开展本次抽查涉及的经营活动", "发现问题待后续处理"],
        ids=["neutral", "pending"],
    )
    def test_results_without_effect(self, result: str) -> None:
        rating = rate(
            [f.spot_check(checked_on=D(2026, 3, 1), result=result)], DEFAULT_POLICY, D(2026, 3, 2)
        )
        assert (rating.score, rating.factors) == (80, ())


class TestCaps:
    def test_spot_check_pass_cap(self) -> None:
        checks = [f.spot_check(checked_on=D(2026, m, 1)) for m in (1, 2, 3, 4)]
        rating = rate(checks, DEFAULT_POLICY, D(2026, 5, 1))
        assert rating.score == 86
        assert [x.points for x in rating.factors] == [2, 2, 2, 0]
        assert rating.factors[3].record_id == checks[3]["record_id"]
        assert "抽查加分已达6分上限，本次不再计分" in rating.factors[3].reason_zh

    def test_spot_check_cap_frees_up_when_the_oldest_expires(self) -> None:
        checks = [f.spot_check(checked_on=D(2026, m, 1)) for m in (1, 2, 3, 4)]
        assert score(checks, D(2028, 12, 31)) == 86
        rating = rate(checks, DEFAULT_POLICY, D(2029, 1, 1))
        assert rating.score == 86
        assert [x.points for x in rating.factors] == [2, 2, 2]
        assert score(checks, D(2029, 2, 1)) == 84

    def test_complaint_cap(self) -> None:
        complaints = [
            f.complaint(verified_on=D(2026, 3, d), complaint_id=str(d)) for d in (1, 2, 3, 4)
        ]
        rating = rate(complaints, DEFAULT_POLICY, D(2026, 4, 1))
        assert rating.score == 65
        assert [x.points for x in rating.factors] == [-5, -5, -5, 0]
        assert "投诉扣分已达15分上限" in rating.factors[3].reason_zh

    def test_complaint_cap_partial(self) -> None:
        policy = CreditPolicy.model_validate(_policy(complaint__cap=-12))
        complaints = [
            f.complaint(verified_on=D(2026, 3, d), complaint_id=str(d)) for d in (1, 2, 3)
        ]
        rating = rate(complaints, policy, D(2026, 4, 1))
        assert [x.points for x in rating.factors] == [-5, -5, -2]
        assert "本次扣2分" in rating.factors[2].reason_zh

    def test_instrument_overdue_cap(self) -> None:
        instruments = [
            f.instrument(verified_on=D(2025, 1, 1), valid_until=D(2025, 12, d), serial=f"S{d}")
            for d in (1, 2, 3)
        ]
        rating = rate(instruments, DEFAULT_POLICY, D(2026, 1, 1))
        assert rating.score == 60
        assert [x.points for x in rating.factors] == [-10, -10, 0]
        assert all(x.applies_until is None for x in rating.factors)
        assert "2025年12月2日起超期未检定" in rating.factors[0].reason_zh

    def test_instrument_reverified(self) -> None:
        old = f.instrument(verified_on=D(2025, 7, 1), valid_until=D(2026, 6, 30))
        new = f.instrument(verified_on=D(2026, 7, 10), valid_until=D(2027, 7, 9))
        assert score([old, new], D(2026, 7, 9)) == 70
        assert score([old, new], D(2026, 7, 10)) == 80

    def test_instruments_are_told_apart_by_type_and_serial(self) -> None:
        scale = f.instrument(verified_on=D(2025, 1, 1), valid_until=D(2025, 12, 31))
        dispenser = f.instrument(
            verified_on=D(2026, 1, 5), valid_until=D(2026, 12, 31), instrument_type="燃油加油机"
        )
        assert score([scale, dispenser], D(2026, 2, 1)) == 70

    def test_score_clamped_at_zero_and_hundred(self) -> None:
        penalties = [f.penalty(decided_on=D(2026, 3, d), decision_no=str(d)) for d in (1, 2, 3)]
        assert score(penalties, D(2026, 4, 1)) == 0
        best = [
            _PLEDGE,
            _AWARD,
            *[f.spot_check(checked_on=D(2026, 1, d)) for d in (1, 2, 3)],
        ]
        rating = rate(best, DEFAULT_POLICY, D(2026, 3, 1))
        assert (rating.score, rating.tier) == (100, "A")
        assert sum(x.points for x in rating.factors) == 21


# ---------------------------------------------------------------------------
# Pledges, demonstration, repair, supersede and revoke
# ---------------------------------------------------------------------------


class TestPledge:
    def test_withdrawn(self) -> None:
        withdrawn = f.pledge_withdrawn(pledge=_PLEDGE, withdrawn_on=D(2026, 6, 1))
        assert score([_PLEDGE, withdrawn], D(2026, 5, 31)) == 85
        assert score([_PLEDGE, withdrawn], D(2026, 6, 1)) == 80

    def test_renewed(self) -> None:
        renewal = f.pledge(
            valid_from=D(2027, 3, 1), valid_until=D(2028, 3, 1), renews=_PLEDGE, pledge_id="P-2"
        )
        rating = rate([_PLEDGE, renewal], DEFAULT_POLICY, D(2027, 3, 1))
        assert kinds(rating) == [("pledge", 5)]
        assert rating.factors[0].record_id == renewal["record_id"]
        assert (
            rate([_PLEDGE, renewal], DEFAULT_POLICY, D(2027, 2, 1)).factors[0].record_id
            == (_PLEDGE["record_id"])
        )
        assert score([_PLEDGE, renewal], D(2028, 3, 1)) == 80

    def test_two_active_pledges_count_once(self) -> None:
        second = f.pledge(valid_from=D(2026, 4, 1), pledge_id="P-2")
        rating = rate([_PLEDGE, second], DEFAULT_POLICY, D(2026, 5, 1))
        assert kinds(rating) == [("pledge", 5)]
        assert rating.factors[0].record_id == second["record_id"]


class TestDemonstration:
    @pytest.mark.parametrize("rel", ["withdraws", "revokes"])
    def test_withdrawn(self, rel: str) -> None:
        withdraw = f.demonstration_withdraw(on=D(2026, 8, 1), award=_AWARD, rel=rel)
        assert score([_AWARD, withdraw], D(2026, 7, 31)) == 90
        assert score([_AWARD, withdraw], D(2026, 8, 1)) == 80

    def test_withdraw_without_ref_ends_earlier_awards_only(self) -> None:
        withdraw = f.demonstration_withdraw(on=D(2026, 8, 1), award=None)
        later = f.demonstration_award(on=D(2026, 9, 1))
        assert score([_AWARD, withdraw], D(2026, 8, 1)) == 80
        assert score([_AWARD, withdraw, later], D(2026, 9, 1)) == 90


class TestRepair:
    def test_stops_counting_on_decided_on(self) -> None:
        application = f.repair_applied(penalty=_OTHER, applied_on=D(2026, 9, 5))
        decision = f.repair_decided(application=application, decided_on=D(2026, 9, 10))
        records = [_OTHER, application, decision]
        assert score(records, D(2026, 9, 9)) == 50
        assert score(records, D(2026, 9, 10)) == 80

    def test_rejected_repair_keeps_counting(self) -> None:
        application = f.repair_applied(penalty=_OTHER, applied_on=D(2026, 9, 5))
        decision = f.repair_decided(
            application=application, decided_on=D(2026, 9, 10), decision="rejected"
        )
        assert score([_OTHER, application, decision], D(2026, 9, 10)) == 50

    def test_repair_of_an_earlier_version_covers_the_correction(self) -> None:
        corrected = f.penalty(
            decided_on=D(2026, 3, 1), supersedes=_OTHER, at=f.at_for(D(2026, 3, 5))
        )
        application = f.repair_applied(penalty=_OTHER, applied_on=D(2026, 9, 5))
        decision = f.repair_decided(application=application, decided_on=D(2026, 9, 10))
        assert score([_OTHER, corrected, application, decision], D(2026, 9, 10)) == 80

    def test_repair_of_another_penalty_does_not_count(self) -> None:
        other = f.penalty(decided_on=D(2026, 4, 1), decision_no="2")
        application = f.repair_applied(penalty=other, applied_on=D(2026, 10, 5))
        decision = f.repair_decided(application=application, decided_on=D(2026, 10, 10))
        assert score([_OTHER, other, application, decision], D(2026, 10, 10)) == 50


class TestSupersedeAndRevoke:
    def test_pending_superseded_by_final_result(self) -> None:
        pending = f.spot_check(checked_on=D(2026, 3, 1), result="发现问题待后续处理")
        final = f.spot_check(
            checked_on=D(2026, 4, 1), result="发现问题已责令改正", supersedes=pending
        )
        assert score([pending, final], D(2026, 3, 31)) == 80
        rating = rate([pending, final], DEFAULT_POLICY, D(2026, 4, 1))
        assert kinds(rating) == [("spot_check_problem", -10)]
        assert rating.factors[0].record_id == final["record_id"]

    def test_correction_replaces_original(self) -> None:
        correction = f.spot_check(
            checked_on=D(2026, 3, 1),
            result="发现问题已责令改正",
            supersedes=_PASS,
            at=f.at_for(D(2026, 3, 10)),
        )
        assert kinds(rate([_PASS, correction], DEFAULT_POLICY, D(2026, 3, 20))) == [
            ("spot_check_problem", -10)
        ]

    def test_chain_newest_version_counts(self) -> None:
        v2 = f.penalty(
            decided_on=D(2026, 3, 1),
            lower_amount=True,
            supersedes=_OTHER,
            at=f.at_for(D(2026, 3, 2)),
        )
        v3 = f.penalty(decided_on=D(2026, 3, 1), supersedes=v2, at=f.at_for(D(2026, 3, 3)))
        rating = rate([v3, _OTHER, v2], DEFAULT_POLICY, D(2026, 4, 1))
        assert [(x.record_id, x.points) for x in rating.factors] == [(v3["record_id"], -30)]

    def test_supersede_across_types_is_ignored(self) -> None:
        bogus = f.record(
            type="supervision.complaint_verified",
            body={"complaint_id": "X", "verified_on": "2026-03-02", "summary": ""},
            effective=D(2026, 3, 2),
            refs=[f.ref("supersedes", _OTHER)],
        )
        assert score([_OTHER, bogus], D(2026, 4, 1)) == 45

    def test_revoked_counts_until_the_revocation_date(self) -> None:
        revoked = f.revocation(target=_OTHER, on=D(2026, 5, 1))
        assert score([_OTHER, revoked], D(2026, 4, 30)) == 50
        assert score([_OTHER, revoked], D(2026, 5, 1)) == 80

    def test_revocation_date_is_shanghai_date_of_at(self) -> None:
        revoked = f.revocation(target=_OTHER, on=D(2026, 5, 1))
        revoked["at"] = "2026-04-30T16:00:00.000000Z"  # 2026-05-01 00:00 in Shanghai
        assert score([_OTHER, revoked], D(2026, 4, 30)) == 50
        assert score([_OTHER, revoked], D(2026, 5, 1)) == 80

    def test_revoking_an_old_version_voids_the_chain(self) -> None:
        v2 = f.penalty(decided_on=D(2026, 3, 1), supersedes=_OTHER, at=f.at_for(D(2026, 3, 2)))
        revoked = f.revocation(target=_OTHER, on=D(2026, 5, 1))
        assert score([_OTHER, v2, revoked], D(2026, 5, 1)) == 80

    def test_revocations_are_final(self) -> None:
        revoked = f.revocation(target=_OTHER, on=D(2026, 5, 1))
        undo = f.revocation(target=revoked, on=D(2026, 6, 1))
        assert score([_OTHER, revoked, undo], D(2026, 6, 1)) == 80

    def test_revoked_repair_decision_restores_the_penalty(self) -> None:
        application = f.repair_applied(penalty=_OTHER, applied_on=D(2026, 9, 5))
        decision = f.repair_decided(application=application, decided_on=D(2026, 9, 10))
        revoked = f.revocation(target=decision, on=D(2026, 10, 1))
        records = [_OTHER, application, decision, revoked]
        assert score(records, D(2026, 9, 30)) == 80
        assert score(records, D(2026, 10, 1)) == 50

    def test_records_after_as_of_are_ignored(self) -> None:
        records = [
            f.penalty(decided_on=D(2026, 3, 2)),
            f.spot_check(checked_on=D(2026, 3, 2)),
            f.abnormal_list(action="in", on=D(2026, 3, 2)),
            f.serious_list(action="in", on=D(2026, 3, 2)),
        ]
        rating = rate(records, DEFAULT_POLICY, D(2026, 3, 1))
        assert (rating.score, rating.tier, rating.factors) == (80, "B", ())

    def test_unrated_types_are_skipped(self) -> None:
        registered = f.record(
            type="merchant.registered", body={"uscc": f.SUBJECT}, effective=D(2026, 1, 1)
        )
        policy_record = f.record(
            type="credit.policy",
            body=DEFAULT_POLICY.model_dump(mode="json"),
            effective=D(2026, 1, 1),
            subject=None,
        )
        assert score([registered, policy_record], D(2026, 3, 1)) == 80


# ---------------------------------------------------------------------------
# Lists
# ---------------------------------------------------------------------------

_HIGH = [
    _PLEDGE,
    _AWARD,
    *[f.spot_check(checked_on=D(2026, 1, d)) for d in (1, 2, 3)],
]
"""Score 100 (80 + 5 + 10 + 6, clamped) on 2026-03-01 … 2027-02-28."""


class TestLists:
    def test_abnormal_caps_tier_at_c_and_deducts(self) -> None:
        listed = f.abnormal_list(action="in", on=D(2026, 4, 1))
        rating = rate([*_HIGH, listed], DEFAULT_POLICY, D(2026, 4, 1))
        assert (rating.score, rating.score_tier, rating.tier) == (81, "B", "C")
        assert rating.on_abnormal_list and rating.abnormal_listed_on == D(2026, 4, 1)
        assert rating.factors[-1].kind == "abnormal_list"
        assert "信用等级最高为C级" in rating.factors[-1].reason_zh

    def test_abnormal_low_score_keeps_worse_tier(self) -> None:
        listed = f.abnormal_list(action="in", on=D(2026, 4, 1))
        rating = rate([listed], DEFAULT_POLICY, D(2026, 4, 1))
        assert (rating.score, rating.tier) == (60, "C")
        rating = rate([listed, _COMPLAINT], DEFAULT_POLICY, D(2026, 4, 1))
        assert (rating.score, rating.tier) == (55, "D")

    @pytest.mark.parametrize("rel", ["closes", "revokes", None])
    def test_abnormal_in_and_out(self, rel: str | None) -> None:
        listed = f.abnormal_list(action="in", on=D(2026, 4, 1))
        removed = (
            f.abnormal_list(action="out", on=D(2026, 6, 1), closes=listed, rel=rel)
            if rel
            else f.abnormal_list(action="out", on=D(2026, 6, 1))
        )
        records = [*_HIGH, listed, removed]
        assert rate(records, DEFAULT_POLICY, D(2026, 5, 31)).tier == "C"
        rating = rate(records, DEFAULT_POLICY, D(2026, 6, 1))
        assert (rating.score, rating.tier, rating.on_abnormal_list) == (100, "A", False)

    def test_relisting_after_out(self) -> None:
        first = f.abnormal_list(action="in", on=D(2026, 4, 1))
        out = f.abnormal_list(action="out", on=D(2026, 6, 1))
        again = f.abnormal_list(action="in", on=D(2026, 7, 1))
        rating = rate([first, out, again], DEFAULT_POLICY, D(2026, 7, 1))
        assert rating.abnormal_listed_on == D(2026, 7, 1)

    def test_curing_one_reason_leaves_the_other_listing(self) -> None:
        report = f.abnormal_list(action="in", on=D(2026, 4, 1))
        address = f.abnormal_list(action="in", on=D(2026, 5, 1), reason="通过登记的住所无法联系")
        cured = f.abnormal_list(action="out", on=D(2026, 6, 1), closes=report)
        rating = rate([report, address, cured], DEFAULT_POLICY, D(2026, 6, 1))
        assert rating.on_abnormal_list and rating.abnormal_listed_on == D(2026, 5, 1)

    def test_abnormal_due_for_serious_after_three_years(self) -> None:
        listed = f.abnormal_list(action="in", on=D(2026, 4, 1))
        assert not rate([listed], DEFAULT_POLICY, D(2029, 3, 31)).due_for_serious_list
        assert rate([listed], DEFAULT_POLICY, D(2029, 4, 1)).due_for_serious_list

    def test_serious_overrides_a_hundred(self) -> None:
        listed = f.serious_list(action="in", on=D(2026, 4, 1))
        rating = rate([*_HIGH, listed], DEFAULT_POLICY, D(2026, 4, 1))
        assert (rating.score, rating.score_tier, rating.tier) == (100, "A", "D")
        assert rating.on_serious_list and rating.serious_listed_on == D(2026, 4, 1)
        assert rating.factors[-1].kind == "serious_list"
        assert rating.factors[-1].points == 0

    def test_serious_out(self) -> None:
        listed = f.serious_list(action="in", on=D(2026, 4, 1))
        removed = f.serious_list(action="out", on=D(2027, 4, 1), closes=listed)
        assert rate([*_HIGH[2:], listed, removed], DEFAULT_POLICY, D(2027, 3, 31)).tier == "D"
        assert rate([*_HIGH[2:], listed, removed], DEFAULT_POLICY, D(2027, 4, 1)).tier == "B"

    def test_serious_and_abnormal_together(self) -> None:
        records = [
            f.serious_list(action="in", on=D(2026, 4, 1)),
            f.abnormal_list(action="in", on=D(2026, 4, 1)),
        ]
        rating = rate(records, DEFAULT_POLICY, D(2026, 4, 1))
        assert (rating.score, rating.tier) == (60, "D")

    def test_serious_due_for_removal(self) -> None:
        listed = f.serious_list(action="in", on=D(2026, 4, 1))
        assert not rate([listed], DEFAULT_POLICY, D(2029, 3, 31)).due_for_serious_list_removal
        assert rate([listed], DEFAULT_POLICY, D(2029, 4, 1)).due_for_serious_list_removal

    @pytest.mark.parametrize("rel", ["closes", "revokes"])
    def test_revoked_out_relists(self, rel: str) -> None:
        listed = f.abnormal_list(action="in", on=D(2026, 4, 1))
        removed = f.abnormal_list(action="out", on=D(2026, 6, 1), closes=listed, rel=rel)
        revoked = f.revocation(target=removed, on=D(2026, 7, 1))
        records = [listed, removed, revoked]
        assert not rate(records, DEFAULT_POLICY, D(2026, 6, 30)).on_abnormal_list
        assert rate(records, DEFAULT_POLICY, D(2026, 7, 1)).on_abnormal_list


# ---------------------------------------------------------------------------
# Input errors
# ---------------------------------------------------------------------------


class TestInputErrors:
    def test_unknown_spot_check_result(self) -> None:
        bad = f.spot_check(checked_on=D(2026, 3, 1), result="合格")
        with pytest.raises(UnknownSpotCheckResult) as info:
            rate([bad], DEFAULT_POLICY, D(2026, 3, 1))
        assert info.value.record_id == bad["record_id"]
        assert "'合格'" in str(info.value)

    def test_mixed_subjects(self) -> None:
        other = f.spot_check(checked_on=D(2026, 3, 1), subject=f.OTHER_SUBJECT)
        with pytest.raises(MixedSubjects) as info:
            rate([_PASS, other], DEFAULT_POLICY, D(2026, 3, 1))
        assert set(info.value.subjects) == {f.SUBJECT, f.OTHER_SUBJECT}

    def test_missing_subject(self) -> None:
        anonymous = f.spot_check(checked_on=D(2026, 3, 1), subject=None)
        with pytest.raises(InvalidRecord, match="must name its subject"):
            rate([anonymous], DEFAULT_POLICY, D(2026, 3, 1))

    def test_missing_effective_date(self) -> None:
        broken = f.complaint(verified_on=D(2026, 3, 1))
        del broken["body"]["verified_on"]
        with pytest.raises(InvalidRecord, match="verified_on") as info:
            rate([broken], DEFAULT_POLICY, D(2026, 3, 1))
        assert info.value.record_id == broken["record_id"]

    @pytest.mark.parametrize(
        ("record", "breaks", "message"),
        [
            pytest.param(
                _PLEDGE,
                lambda r: r["body"].pop("valid_until"),
                "no 'valid_until'",
                id="pledge-no-valid-until",
            ),
            pytest.param(
                _AWARD,
                lambda r: r["body"].update(valid_until="2029/3/1"),
                "valid_until must be YYYY-MM-DD",
                id="award-bad-date",
            ),
            pytest.param(
                _OTHER,
                lambda r: r["body"].pop("decision_no"),
                "no 'decision_no'",
                id="penalty-no-decision-no",
            ),
            pytest.param(
                _INSTRUMENT,
                lambda r: r["body"].pop("serial"),
                "no 'serial'",
                id="instrument-no-serial",
            ),
            pytest.param(
                _PASS,
                lambda r: r.update(refs=[{"record": "x"}]),
                "needs 'rel'",
                id="ref-without-rel",
            ),
            pytest.param(
                _PASS, lambda r: r.update(refs=None), "refs must be a list", id="refs-none"
            ),
        ],
    )
    def test_missing_body_field_names_the_record(
        self, record: Mapping[str, Any], breaks: Any, message: str
    ) -> None:
        broken = copy.deepcopy(dict(record))
        breaks(broken)
        with pytest.raises(InvalidRecord, match=message) as info:
            rate([broken], DEFAULT_POLICY, D(2026, 7, 1))
        assert info.value.record_id == broken["record_id"]

    @pytest.mark.parametrize(
        "broken",
        [
            f.abnormal_list(action="IN", on=D(2026, 3, 1)),
            f.serious_list(action="remove", on=D(2026, 3, 1)),
            f.record(
                type="supervision.demonstration",
                body={"action": "awarded", "on": "2026-03-01", "valid_until": "2029-03-01"},
                effective=D(2026, 3, 1),
            ),
        ],
        ids=["abnormal-IN", "serious-remove", "demonstration-awarded"],
    )
    def test_unknown_action(self, broken: Mapping[str, Any]) -> None:
        with pytest.raises(InvalidRecord, match="action must be") as info:
            rate([broken], DEFAULT_POLICY, D(2026, 3, 1))
        assert info.value.record_id == broken["record_id"]

    def test_naive_at_refused(self) -> None:
        revoked = f.revocation(target=_OTHER, on=D(2026, 5, 1))
        revoked["at"] = "2026-05-01T02:00:00"
        with pytest.raises(InvalidRecord, match="must be UTC"):
            rate([_OTHER, revoked], DEFAULT_POLICY, D(2026, 5, 1))

    def test_duplicate_record_counts_once(self) -> None:
        assert score([_COMPLAINT, dict(_COMPLAINT)], D(2026, 3, 1)) == 75

    def test_forged_duplicate_id_refused(self) -> None:
        forged = {**_COMPLAINT, "body": {**_COMPLAINT["body"], "summary": "改过"}}
        with pytest.raises(InvalidRecord, match="two different records"):
            rate([_COMPLAINT, forged], DEFAULT_POLICY, D(2026, 3, 1))

    def test_inputs_not_mutated(self) -> None:
        records = [_PASS, _OTHER, f.revocation(target=_OTHER, on=D(2026, 5, 1))]
        snapshot = [dict(r) for r in records]
        rate(records, DEFAULT_POLICY, D(2026, 6, 1))
        assert records == snapshot


# ---------------------------------------------------------------------------
# change_dates
# ---------------------------------------------------------------------------


class TestChangeDates:
    @pytest.mark.parametrize(
        ("records", "after", "expected"),
        [
            pytest.param([], D(2026, 1, 1), [], id="empty"),
            pytest.param([_PASS], D(2026, 1, 1), [D(2026, 3, 1), D(2029, 3, 1)], id="pass"),
            pytest.param([_PASS], D(2026, 3, 1), [D(2029, 3, 1)], id="after-is-exclusive"),
            pytest.param([_PASS], D(2029, 3, 1), [], id="nothing-left"),
            pytest.param([_LOWER], D(2026, 3, 1), [D(2026, 6, 1)], id="lower"),
            pytest.param([_OTHER], D(2026, 3, 1), [D(2029, 3, 1)], id="other"),
            pytest.param([_INSTRUMENT], D(2026, 1, 1), [D(2026, 7, 1)], id="instrument-due"),
            pytest.param([_PLEDGE], D(2026, 3, 1), [D(2027, 3, 1)], id="pledge"),
            pytest.param([_AWARD], D(2026, 3, 1), [D(2029, 3, 1)], id="award"),
            pytest.param(
                [f.spot_check(checked_on=D(2026, 3, 1), result="发现问题待后续处理")],
                D(2026, 3, 1),
                [],
                id="pending-has-no-end",
            ),
            pytest.param(
                [f.abnormal_list(action="in", on=D(2026, 4, 1))],
                D(2026, 4, 1),
                [D(2029, 4, 1)],
                id="abnormal-due-serious",
            ),
        ],
    )
    def test_dates(self, records: Records, after: date, expected: list[date]) -> None:
        assert change_dates(records, DEFAULT_POLICY, after) == expected

    def test_superseded_record_end_is_dropped(self) -> None:
        correction = f.spot_check(
            checked_on=D(2026, 3, 1),
            result="发现问题已责令改正",
            supersedes=_PASS,
            at=f.at_for(D(2026, 3, 10)),
        )
        assert change_dates([_PASS, correction], DEFAULT_POLICY, D(2026, 3, 10)) == [D(2027, 3, 1)]

    def test_future_records_and_revocations(self) -> None:
        revoked = f.revocation(target=_OTHER, on=D(2026, 5, 1))
        assert change_dates([_OTHER, revoked], DEFAULT_POLICY, D(2026, 3, 1)) == [
            D(2026, 5, 1),
            D(2029, 3, 1),
        ]
        assert change_dates([_OTHER, revoked], DEFAULT_POLICY, D(2026, 5, 1)) == []

    def test_repair_decision_date(self) -> None:
        application = f.repair_applied(penalty=_OTHER, applied_on=D(2026, 9, 5))
        decision = f.repair_decided(application=application, decided_on=D(2026, 9, 10))
        assert change_dates([_OTHER, application, decision], DEFAULT_POLICY, D(2026, 9, 1)) == [
            D(2026, 9, 5),
            D(2026, 9, 10),
            D(2029, 3, 1),
        ]


# ---------------------------------------------------------------------------
# repair_eligibility
# ---------------------------------------------------------------------------


class TestRepairEligibility:
    def test_eligible(self) -> None:
        assert (
            repair_eligibility(_OTHER["record_id"], [_OTHER], DEFAULT_POLICY, D(2026, 9, 1)) == []
        )

    def test_minimum_publicity_not_elapsed(self) -> None:
        assert repair_eligibility(
            _OTHER["record_id"], [_OTHER], DEFAULT_POLICY, D(2026, 8, 31)
        ) == ["自处罚决定之日（2026年3月1日）起公示未满6个月，2026年9月1日起方可申请"]

    def test_special_sector_needs_a_year(self) -> None:
        food = f.penalty(decided_on=D(2026, 3, 1), special_sector=True)
        unmet = repair_eligibility(food["record_id"], [food], DEFAULT_POLICY, D(2027, 2, 28))
        assert unmet == [
            "自处罚决定之日（2026年3月1日）起公示未满1年（食品、药品、特种设备领域），"
            "2027年3月1日起方可申请"
        ]
        assert repair_eligibility(food["record_id"], [food], DEFAULT_POLICY, D(2027, 3, 1)) == []

    def test_not_performed(self) -> None:
        unpaid = f.penalty(decided_on=D(2026, 3, 1), performed=False)
        assert repair_eligibility(unpaid["record_id"], [unpaid], DEFAULT_POLICY, D(2026, 9, 1)) == [
            "行政处罚尚未履行完毕"
        ]

    def test_performed_by_correction(self) -> None:
        unpaid = f.penalty(decided_on=D(2026, 3, 1), performed=False)
        paid = f.penalty(decided_on=D(2026, 3, 1), supersedes=unpaid, at=f.at_for(D(2026, 5, 1)))
        assert (
            repair_eligibility(unpaid["record_id"], [unpaid, paid], DEFAULT_POLICY, D(2026, 9, 1))
            == []
        )

    def test_later_penalty(self) -> None:
        later = f.penalty(decided_on=D(2026, 5, 1), decision_no="巴市监罚〔2026〕9号")
        assert repair_eligibility(
            _OTHER["record_id"], [_OTHER, later], DEFAULT_POLICY, D(2026, 9, 1)
        ) == ["该处罚之后又受到行政处罚：2026年5月1日（巴市监罚〔2026〕9号）"]

    def test_same_day_and_earlier_penalties_are_not_later(self) -> None:
        same_day = f.penalty(decided_on=D(2026, 3, 1), decision_no="2")
        earlier = f.penalty(decided_on=D(2026, 2, 1), decision_no="3")
        assert (
            repair_eligibility(
                _OTHER["record_id"], [_OTHER, same_day, earlier], DEFAULT_POLICY, D(2026, 9, 1)
            )
            == []
        )

    def test_revoked_later_penalty_is_not_a_repeat(self) -> None:
        later = f.penalty(decided_on=D(2026, 5, 1), decision_no="9")
        revoked = f.revocation(target=later, on=D(2026, 6, 1))
        assert (
            repair_eligibility(
                _OTHER["record_id"], [_OTHER, later, revoked], DEFAULT_POLICY, D(2026, 9, 1)
            )
            == []
        )

    @pytest.mark.parametrize(
        ("listing", "message"),
        [
            (f.abnormal_list(action="in", on=D(2026, 4, 1)), "当前被列入经营异常名录"),
            (f.serious_list(action="in", on=D(2026, 4, 1)), "当前被列入严重违法失信名单"),
        ],
        ids=["abnormal", "serious"],
    )
    def test_listed(self, listing: Mapping[str, Any], message: str) -> None:
        assert repair_eligibility(
            _OTHER["record_id"], [_OTHER, listing], DEFAULT_POLICY, D(2026, 9, 1)
        ) == [message]

    def test_already_repaired(self) -> None:
        application = f.repair_applied(penalty=_OTHER, applied_on=D(2026, 9, 5))
        decision = f.repair_decided(application=application, decided_on=D(2026, 9, 10))
        assert repair_eligibility(
            _OTHER["record_id"], [_OTHER, application, decision], DEFAULT_POLICY, D(2026, 9, 10)
        ) == ["该行政处罚已于2026年9月10日完成信用修复"]

    def test_publicity_over(self) -> None:
        assert repair_eligibility(_OTHER["record_id"], [_OTHER], DEFAULT_POLICY, D(2029, 3, 1)) == [
            "该行政处罚公示期为3年，2029年3月1日起已不再公示，无需信用修复"
        ]

    def test_lower_amount_publicity_ends_before_repair_opens(self) -> None:
        assert repair_eligibility(_LOWER["record_id"], [_LOWER], DEFAULT_POLICY, D(2026, 6, 1)) == [
            "该行政处罚公示期为3个月，2026年6月1日起已不再公示，无需信用修复",
            "自处罚决定之日（2026年3月1日）起公示未满6个月，2026年9月1日起方可申请",
        ]

    def test_unknown_penalty(self) -> None:
        assert repair_eligibility("ab" * 32, [_OTHER], DEFAULT_POLICY, D(2026, 9, 1)) == [
            "截至2026年9月1日没有这条行政处罚记录"
        ]
        assert repair_eligibility(_PASS["record_id"], [_PASS], DEFAULT_POLICY, D(2026, 9, 1)) == [
            "截至2026年9月1日没有这条行政处罚记录"
        ]
        assert repair_eligibility(
            _OTHER["record_id"], [_OTHER], DEFAULT_POLICY, D(2026, 2, 28)
        ) == ["截至2026年2月28日没有这条行政处罚记录"]

    def test_revoked_penalty(self) -> None:
        revoked = f.revocation(target=_OTHER, on=D(2026, 5, 1))
        assert repair_eligibility(
            _OTHER["record_id"], [_OTHER, revoked], DEFAULT_POLICY, D(2026, 9, 1)
        ) == ["该行政处罚记录已被撤销，无需信用修复"]

    def test_every_condition_at_once_in_order(self) -> None:
        unpaid = f.penalty(decided_on=D(2026, 3, 1), performed=False)
        records = [
            unpaid,
            f.penalty(decided_on=D(2026, 4, 1), decision_no="9"),
            f.abnormal_list(action="in", on=D(2026, 4, 1)),
            f.serious_list(action="in", on=D(2026, 4, 1)),
        ]
        unmet = repair_eligibility(unpaid["record_id"], records, DEFAULT_POLICY, D(2026, 5, 1))
        assert [m[:6] for m in unmet] == [
            "自处罚决定之",
            "行政处罚尚未",
            "该处罚之后又",
            "当前被列入经",
            "当前被列入严",
        ]


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------

_START = D(2026, 1, 1)
_DATES = st.dates(min_value=_START, max_value=D(2027, 12, 31))
_KINDS = (
    "spot_check",
    "correction",
    "penalty",
    "complaint",
    "instrument",
    "abnormal_in",
    "abnormal_out",
    "serious_in",
    "serious_out",
    "pledge",
    "pledge_withdrawn",
    "award",
    "award_withdraw",
    "revocation",
    "repair",
)


@st.composite
def merchant_records(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A plausible-or-not history of one merchant: every record type, with refs."""
    out: list[dict[str, Any]] = []
    by_type: dict[str, list[dict[str, Any]]] = {}

    def keep(r: dict[str, Any], key: str) -> None:
        out.append(r)
        by_type.setdefault(key, []).append(r)

    for _ in range(draw(st.integers(0, 14))):
        kind = draw(st.sampled_from(_KINDS))
        d = draw(_DATES)
        at = f.at_for(d + timedelta(days=draw(st.integers(0, 3))))
        if kind == "spot_check":
            keep(
                f.spot_check(
                    checked_on=d, result=draw(st.sampled_from(PUBLISHED_SPOT_CHECK_RESULTS)), at=at
                ),
                "spot_check",
            )
        elif kind == "correction" and by_type.get("spot_check"):
            old = draw(st.sampled_from(by_type["spot_check"]))
            keep(
                f.spot_check(
                    checked_on=d,
                    result=draw(st.sampled_from(PUBLISHED_SPOT_CHECK_RESULTS)),
                    supersedes=old,
                    at=at,
                ),
                "spot_check",
            )
        elif kind == "penalty":
            keep(
                f.penalty(
                    decided_on=d,
                    decision_no=str(len(out)),
                    lower_amount=draw(st.booleans()),
                    circulated_criticism=draw(st.booleans()),
                    special_sector=draw(st.booleans()),
                    performed=draw(st.booleans()),
                    at=at,
                ),
                "penalty",
            )
        elif kind == "complaint":
            keep(f.complaint(verified_on=d, complaint_id=str(len(out))), "complaint")
        elif kind == "instrument":
            keep(
                f.instrument(
                    verified_on=d,
                    valid_until=d + timedelta(days=draw(st.integers(0, 500))),
                    serial=draw(st.sampled_from(["S1", "S2", "S3"])),
                ),
                "instrument",
            )
        elif kind in ("abnormal_in", "serious_in"):
            make = f.abnormal_list if kind == "abnormal_in" else f.serious_list
            keep(make(action="in", on=d), kind)
        elif kind in ("abnormal_out", "serious_out"):
            make = f.abnormal_list if kind == "abnormal_out" else f.serious_list
            opened = by_type.get(kind.replace("out", "in"), [])
            use_ref: bool = draw(st.booleans())
            target = draw(st.sampled_from(opened)) if opened and use_ref else None
            keep(make(action="out", on=d, closes=target), kind)
        elif kind == "pledge":
            old = by_type.get("pledge")
            use_ref = draw(st.booleans())
            renews = draw(st.sampled_from(old)) if old and use_ref else None
            keep(f.pledge(valid_from=d, renews=renews, pledge_id=str(len(out))), "pledge")
        elif kind == "pledge_withdrawn" and by_type.get("pledge"):
            target = draw(st.sampled_from(by_type["pledge"]))
            keep(f.pledge_withdrawn(pledge=target, withdrawn_on=d), kind)
        elif kind == "award":
            until = d + timedelta(days=draw(st.integers(1, 1200)))
            keep(f.demonstration_award(on=d, valid_until=until), "award")
        elif kind == "award_withdraw":
            awards = by_type.get("award", [])
            use_ref = draw(st.booleans())
            target = draw(st.sampled_from(awards)) if awards and use_ref else None
            keep(f.demonstration_withdraw(on=d, award=target), kind)
        elif kind == "revocation" and out:
            keep(f.revocation(target=draw(st.sampled_from(out)), on=d), kind)
        elif kind == "repair" and by_type.get("penalty"):
            target = draw(st.sampled_from(by_type["penalty"]))
            application = f.repair_applied(penalty=target, applied_on=d)
            keep(application, "repair_applied")
            decided = d + timedelta(days=draw(st.integers(0, 60)))
            keep(
                f.repair_decided(
                    application=application,
                    decided_on=decided,
                    decision=draw(st.sampled_from(["approved", "rejected"])),
                ),
                "repair_decided",
            )
    return out


_AS_OF = st.dates(min_value=D(2025, 12, 1), max_value=D(2031, 1, 31))


class TestProperties:
    @settings(max_examples=100, deadline=None)
    @given(records=merchant_records(), as_of=_AS_OF, data=st.data())
    def test_order_never_matters(
        self, records: list[dict[str, Any]], as_of: date, data: st.DataObject
    ) -> None:
        shuffled = data.draw(st.permutations(records))
        assert rate(shuffled, DEFAULT_POLICY, as_of) == rate(records, DEFAULT_POLICY, as_of)
        assert change_dates(shuffled, DEFAULT_POLICY, as_of) == change_dates(
            records, DEFAULT_POLICY, as_of
        )

    @settings(max_examples=100, deadline=None)
    @given(records=merchant_records(), as_of=_AS_OF)
    def test_score_and_tier_are_well_formed(
        self, records: list[dict[str, Any]], as_of: date
    ) -> None:
        rating = rate(records, DEFAULT_POLICY, as_of)
        assert 0 <= rating.score <= 100
        assert rating.tier in TIERS
        raw = DEFAULT_POLICY.base_score + sum(x.points for x in rating.factors)
        assert rating.score == max(0, min(100, raw))
        assert rating.score_tier == tier_for_score(rating.score, DEFAULT_POLICY)
        if rating.on_serious_list:
            assert rating.tier == "D"
        elif rating.on_abnormal_list:
            assert rating.tier in ("C", "D")
        else:
            assert rating.tier == rating.score_tier
        for factor in rating.factors:
            assert factor.applies_until is None or factor.applies_until > as_of

    @settings(max_examples=25, deadline=None)
    @given(records=merchant_records())
    def test_change_dates_are_complete(self, records: list[dict[str, Any]]) -> None:
        after = D(2025, 12, 31)
        announced = set(change_dates(records, DEFAULT_POLICY, after))
        previous = dataclasses.replace(rate(records, DEFAULT_POLICY, after), as_of=_START)
        day = _START
        while day <= D(2031, 1, 31):
            current = rate(records, DEFAULT_POLICY, day)
            if current != dataclasses.replace(previous, as_of=day):
                assert day in announced, f"rating changed on {day} unannounced"
            previous = current
            day += timedelta(days=1)
