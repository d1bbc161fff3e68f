"""What is shown publicly (停止公示) never changes the rating anyone recomputes from it."""

from __future__ import annotations

from datetime import date
from typing import Any

from hypothesis import given, settings

from backend.credit.policy import DEFAULT_POLICY
from backend.credit.rating import change_dates, disclosure, rate, rate_with_change_dates
from tests.credit import factories as f
from tests.credit.test_rating import _AS_OF, merchant_records

D = date


def _shown(records: list[dict[str, Any]], as_of: date) -> list[dict[str, Any]]:
    keep = set(disclosure(records, DEFAULT_POLICY, as_of).shown)
    return [r for r in records if r["record_id"] in keep]


class TestDisclosure:
    def test_penalty_shown_during_publicity_then_withheld(self) -> None:
        p = f.penalty(decided_on=D(2026, 3, 1), lower_amount=True)  # 3 months
        assert disclosure([p], DEFAULT_POLICY, D(2026, 5, 31)).shown == (p["record_id"],)
        d = disclosure([p], DEFAULT_POLICY, D(2026, 6, 1))
        assert d.shown == () and d.withheld == (p["record_id"],)

    def test_repaired_penalty_withheld_with_its_repair(self) -> None:
        p = f.penalty(decided_on=D(2026, 1, 10))
        app = f.repair_applied(penalty=p, applied_on=D(2026, 7, 10))
        dec = f.repair_decided(application=app, decided_on=D(2026, 7, 20))
        before = disclosure([p, app, dec], DEFAULT_POLICY, D(2026, 7, 19))
        # The decision takes effect later: shown, but not counted yet.
        assert set(before.shown) == {p["record_id"], app["record_id"], dec["record_id"]}
        after = disclosure([p, app, dec], DEFAULT_POLICY, D(2026, 7, 20))
        assert after.shown == ()
        assert set(after.withheld) == {p["record_id"], app["record_id"], dec["record_id"]}

    def test_rejected_repair_keeps_penalty_shown(self) -> None:
        p = f.penalty(decided_on=D(2026, 1, 10))
        app = f.repair_applied(penalty=p, applied_on=D(2026, 7, 10))
        dec = f.repair_decided(application=app, decided_on=D(2026, 7, 20), decision="rejected")
        d = disclosure([p, app, dec], DEFAULT_POLICY, D(2026, 8, 1))
        assert set(d.shown) == {p["record_id"], app["record_id"], dec["record_id"]}

    def test_revoked_outcome_and_its_revocation_withheld(self) -> None:
        s = f.spot_check(checked_on=D(2026, 2, 1), result="发现问题已责令改正")
        fixed = f.spot_check(checked_on=D(2026, 2, 1), supersedes=s)
        rev = f.revocation(target=fixed, on=D(2026, 3, 1))
        other = f.spot_check(checked_on=D(2026, 2, 5))
        d = disclosure([s, fixed, rev, other], DEFAULT_POLICY, D(2026, 4, 1))
        assert d.shown == (other["record_id"],)
        assert set(d.withheld) == {s["record_id"], fixed["record_id"], rev["record_id"]}

    def test_later_records_are_shown(self) -> None:
        s = f.spot_check(checked_on=D(2026, 5, 1))
        assert disclosure([s], DEFAULT_POLICY, D(2026, 4, 1)).shown == (s["record_id"],)

    @settings(max_examples=150, deadline=None)
    @given(records=merchant_records(), as_of=_AS_OF)
    def test_rating_the_shown_records_gives_the_same_rating(
        self, records: list[dict[str, Any]], as_of: date
    ) -> None:
        assert rate(_shown(records, as_of), DEFAULT_POLICY, as_of) == rate(
            records, DEFAULT_POLICY, as_of
        )
        d = disclosure(records, DEFAULT_POLICY, as_of)
        assert not set(d.shown) & set(d.withheld)
        assert set(d.shown) | set(d.withheld) == {r["record_id"] for r in records}


class TestRateWithChangeDates:
    @settings(max_examples=100, deadline=None)
    @given(records=merchant_records(), as_of=_AS_OF)
    def test_same_as_the_two_calls(self, records: list[dict[str, Any]], as_of: date) -> None:
        assert rate_with_change_dates(records, DEFAULT_POLICY, as_of) == (
            rate(records, DEFAULT_POLICY, as_of),
            change_dates(records, DEFAULT_POLICY, as_of),
        )
