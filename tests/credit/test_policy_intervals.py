"""The optional minimum interval per tier in the policy document
(``spot_check_min_interval_months``): old documents stay valid and byte-identical,
new ones carry it, bad values are refused."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from backend.credit.policy import DEFAULT_POLICY, CreditPolicy, policy_body


def _doc(**over: Any) -> dict[str, Any]:
    return {**policy_body(DEFAULT_POLICY), **over}


def test_a_document_without_intervals_is_as_before() -> None:
    body = policy_body(DEFAULT_POLICY)
    assert "spot_check_min_interval_months" not in body
    policy = CreditPolicy.model_validate(body)
    assert policy.spot_check_min_interval_months is None
    assert [policy.min_interval_months_for(t) for t in "ABCD"] == [0, 0, 0, 0]
    assert policy_body(policy) == body


def test_a_document_with_intervals_keeps_them() -> None:
    months = {"A": 0, "B": 0, "C": 6, "D": 3}
    policy = CreditPolicy.model_validate(_doc(spot_check_min_interval_months=months))
    assert policy_body(policy)["spot_check_min_interval_months"] == months
    assert policy.min_interval_months_for("C") == 6
    assert CreditPolicy.model_validate(_doc(spot_check_min_interval_months=None)) == (
        CreditPolicy.model_validate(_doc())
    )


@pytest.mark.parametrize(
    "months",
    [
        {"A": -1, "B": 0, "C": 0, "D": 0},
        {"A": 0, "B": 0, "C": 0, "D": 1201},
        {"A": 0, "B": 0, "C": 0, "D": 1.0},
        {"A": 0, "B": 0, "C": 0, "D": "3"},
        {"A": 0, "B": 0, "C": 0},
        {"A": 0, "B": 0, "C": 0, "D": 0, "E": 1},
    ],
)
def test_bad_intervals_are_refused(months: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CreditPolicy.model_validate(_doc(spot_check_min_interval_months=months))
