"""``docs/credit-rating.md`` and its examples agree with the reference implementation.

- every example of ``docs/credit-rating-examples.json`` rates exactly as recorded there
  (score, tiers, flags, factors with their wording, change dates, ``next_change_on``);
- the table and the listings of the specification say what the examples file says;
- the examples cover every factor kind and every edge the specification names;
- the examples' records are real envelopes (canonical record ids);
- ``next_change_on`` is a bound: no change before it (property-style);
- ``RATING_SPEC_SHA256`` is the hash of the specification's text.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.credit import rating
from backend.credit.policy import (
    DEFAULT_POLICY,
    RATING_SPEC_PATH,
    RATING_SPEC_SHA256,
    SAME_RULES_SPEC_SHA256,
    CreditPolicy,
    hash_spec,
    select_policy,
)
from backend.credit.service import PolicyVersion, compute, factor_json
from backend.ledger.records import canonical_bytes, record_id_of
from tests.credit import spec_reference
from tests.credit.test_rating import merchant_records

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / RATING_SPEC_PATH
EXAMPLES = json.loads((ROOT / "docs" / "credit-rating-examples.json").read_text("utf-8"))
D = date


def _cases() -> list[Any]:
    return [
        pytest.param(ex, r, id=f"{ex['name']}@{r['as_of']}")
        for ex in EXAMPLES["examples"]
        for r in ex["ratings"]
    ]


def _load_generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "credit_examples", ROOT / "scripts" / "credit_examples.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_versions = _load_generator().versions_of


def _jsonable(value: object) -> object:
    return value.isoformat() if isinstance(value, date) else value


class TestExamples:
    @pytest.mark.parametrize(("example", "want"), _cases())
    def test_example_rates_as_recorded(
        self, example: Mapping[str, Any], want: Mapping[str, Any]
    ) -> None:
        as_of = D.fromisoformat(want["as_of"])
        versions = _versions(example["policies"])
        got, nxt = compute(example["records"], versions, as_of)
        policy = select_policy([v.policy for v in versions], as_of)
        later = {v.policy.effective_from for v in versions if v.policy.effective_from > as_of}
        changes = sorted({*rating.change_dates(example["records"], policy, as_of), *later})
        fields = {f.name for f in dataclasses.fields(rating.Rating)} - {"factors"}
        assert {k: _jsonable(getattr(got, k)) for k in fields} == {k: want[k] for k in fields}
        assert [factor_json(f) for f in got.factors] == want["factors"]
        assert [d.isoformat() for d in changes] == want["change_dates"]
        assert _jsonable(nxt) == want["next_change_on"]
        assert set(want) == fields | {"factors", "change_dates", "next_change_on"}

    @pytest.mark.parametrize("case", EXAMPLES["refusals"], ids=lambda c: c["name"])
    def test_refusals(self, case: Mapping[str, Any]) -> None:
        error = getattr(rating, case["error"])
        assert issubclass(error, rating.RatingError)
        with pytest.raises(error):
            compute(case["records"], _versions(case["policies"]), D.fromisoformat(case["as_of"]))

    def test_file_is_what_the_generator_writes(self) -> None:
        done = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "credit_examples.py"), "--check"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stderr

    def test_records_are_real_envelopes(self) -> None:
        for example in EXAMPLES["examples"]:
            for r in example["records"]:
                envelope = {k: v for k, v in r.items() if k != "record_id"}
                assert record_id_of(canonical_bytes(envelope)) == r["record_id"]
                assert r["type"] in rating.RATED_TYPES
                assert r["subject"] == EXAMPLES["subject"]

    def test_policies_are_valid_documents(self) -> None:
        for name, doc in EXAMPLES["policies"].items():
            policy = CreditPolicy.model_validate(doc)
            assert "spec_sha256" not in doc, name  # the examples are the specification's own
            if name == "v1":
                assert policy == DEFAULT_POLICY.model_copy(update={"spec_sha256": None})

    def test_every_factor_kind_and_edge_is_covered(self) -> None:
        kinds = {
            f["kind"] for ex in EXAMPLES["examples"] for r in ex["ratings"] for f in r["factors"]
        }
        assert kinds == set(get_args(rating.FactorKind))
        covers = {c for ex in EXAMPLES["examples"] for c in ex["covers"]}
        edges = {
            "month-end", "exclusive-end", "cap", "cap-tie", "list-in", "list-out",
            "blanket-out", "repair", "revocation", "re-verification", "supersession",
            "one-bonus", "clamp", "tier-cap", "forced-tier", "due-flag", "shanghai-date",
            "circulated_criticism", "neutral", "pending", "policy-selection", "future-record",
        }
        assert edges <= covers, edges - covers
        flags = {
            key
            for ex in EXAMPLES["examples"]
            for r in ex["ratings"]
            for key in ("due_for_serious_list", "due_for_serious_list_removal",
                        "on_abnormal_list", "on_serious_list")
            if r[key]
        }
        assert len(flags) == 4


class TestSpecificationText:
    text = SPEC.read_text("utf-8")

    def test_table_matches_the_examples(self) -> None:
        rows = re.findall(
            r"^\| `([a-z0-9-]+)` \| (\d{4}-\d\d-\d\d) \| (\d+) \| (\d+) \| ([ABCD]) \| ([ABCD]) "
            r"\| (\S+) \|$",
            self.text,
            re.M,
        )
        want = [
            (ex["name"], r["as_of"], str(r["policy_version"]), str(r["score"]),
             r["score_tier"], r["tier"], r["next_change_on"] or "—")
            for ex in EXAMPLES["examples"]
            for r in ex["ratings"]
        ]
        assert rows == want

    def test_listings_match_the_examples(self) -> None:
        blocks = re.findall(
            r"^```text example=(\S+) as_of=(\S+)\n(.*?)^```$", self.text, re.M | re.S
        )
        assert len(blocks) >= 4
        by_name = {ex["name"]: ex for ex in EXAMPLES["examples"]}
        for name, as_of, body in blocks:
            want = next(r for r in by_name[name]["ratings"] if r["as_of"] == as_of)
            lines = [f"{f['points']:+d} {f['kind']} {f['reason_zh']}" for f in want["factors"]]
            assert body.splitlines() == lines, name

    def test_every_factor_kind_has_its_wording(self) -> None:
        for kind in get_args(rating.FactorKind):
            assert re.search(rf"^\| `{kind}` \| `", self.text, re.M), kind

    def test_every_policy_field_is_described(self) -> None:
        for name in CreditPolicy.model_fields:
            assert re.search(rf"^\| `{name}` \|", self.text, re.M), name

    def test_every_rated_type_has_its_effective_date(self) -> None:
        for type_ in rating.RATED_TYPES:
            assert re.search(rf"^\| `{re.escape(type_)}` \| ", self.text, re.M), type_


class TestSpecHash:
    def test_constant_is_the_hash_of_the_specification(self) -> None:
        assert hash_spec(SPEC.read_bytes()) == RATING_SPEC_SHA256, (
            f"{RATING_SPEC_PATH} changed: set RATING_SPEC_SHA256 in backend/credit/policy.py to "
            f"{hash_spec(SPEC.read_bytes())} (and keep the old hash in SAME_RULES_SPEC_SHA256 "
            "if no rule changed)"
        )
        assert RATING_SPEC_SHA256 in SAME_RULES_SPEC_SHA256

    def test_line_endings_do_not_change_the_hash(self) -> None:
        data = SPEC.read_bytes()
        assert hash_spec(data.replace(b"\n", b"\r\n")) == hash_spec(data)
        assert hash_spec(data + b" ") != hash_spec(data)

    def test_default_policy_names_the_specification(self) -> None:
        body = DEFAULT_POLICY.model_dump(mode="json")
        assert body["spec_sha256"] == RATING_SPEC_SHA256

    def test_documents_without_the_field_still_read(self) -> None:
        body = DEFAULT_POLICY.model_dump(mode="json")
        del body["spec_sha256"]
        assert CreditPolicy.model_validate(body).spec_sha256 is None

    @pytest.mark.parametrize("bad", ["", "ab", "G" * 64, "A" * 64, 1, "0" * 65])
    def test_malformed_hash_refused(self, bad: object) -> None:
        body = DEFAULT_POLICY.model_dump(mode="json") | {"spec_sha256": bad}
        with pytest.raises(ValueError, match="spec_sha256"):
            CreditPolicy.model_validate(body)


_V2 = CreditPolicy.model_validate(
    DEFAULT_POLICY.model_dump(mode="json")
    | {"version": 2, "effective_from": "2027-06-01", "base_score": 75}
)
_VERSIONS = [
    PolicyVersion(1, "1" * 64, 0, DEFAULT_POLICY),
    PolicyVersion(2, "2" * 64, 1, _V2),
]


class TestNextChangeIsABound:
    """§8: with no new record, nothing in the rating changes before ``next_change_on``."""

    @settings(max_examples=60, deadline=None)
    @given(
        records=merchant_records(),
        as_of=st.dates(min_value=D(2026, 1, 1), max_value=D(2028, 6, 30)),
    )
    def test_no_change_before_next_change_on(
        self, records: list[dict[str, Any]], as_of: date
    ) -> None:
        first, nxt = compute(records, _VERSIONS, as_of)
        assert nxt is None or nxt > as_of
        end = nxt if nxt is not None else as_of + timedelta(days=4 * 366)
        day = as_of + timedelta(days=1)
        while day < end and day <= D(2031, 12, 31):
            current, _ = compute(records, _VERSIONS, day)
            assert current == dataclasses.replace(first, as_of=day), (
                f"the rating changed on {day}, before next_change_on {nxt}"
            )
            day += timedelta(days=1)

    def test_a_bound_not_a_prediction(self) -> None:
        # The withdrawn award's old end is a change date on which nothing changes.
        example = next(x for x in EXAMPLES["examples"] if x["name"] == "demonstration")
        versions = _versions(example["policies"])
        before, nxt = compute(example["records"], versions, D(2027, 3, 1))
        assert nxt == D(2029, 2, 1)
        after, _ = compute(example["records"], versions, nxt)
        assert after == dataclasses.replace(before, as_of=nxt)


def _as_reference(got: rating.Rating) -> dict[str, Any]:
    return {
        **{f.name: getattr(got, f.name) for f in dataclasses.fields(rating.Rating)
           if f.name not in ("factors", "policy_version", "as_of")},
        "factors": [dataclasses.asdict(f) for f in got.factors],
    }


class TestSecondImplementation:
    """``tests/credit/spec_reference.py`` was written from the specification alone; where it
    and the reference implementation disagree, the specification does not say enough."""

    @pytest.mark.parametrize(("example", "want"), _cases())
    def test_examples(self, example: Mapping[str, Any], want: Mapping[str, Any]) -> None:
        as_of = D.fromisoformat(want["as_of"])
        doc = next(
            EXAMPLES["policies"][n] for n in reversed(example["policies"])
            if D.fromisoformat(EXAMPLES["policies"][n]["effective_from"]) <= as_of
        )
        policy = CreditPolicy.model_validate(doc)
        assert spec_reference.rate(example["records"], doc, as_of) == _as_reference(
            rating.rate(example["records"], policy, as_of)
        )

    @settings(max_examples=300, deadline=None)
    @given(
        records=merchant_records(),
        as_of=st.dates(min_value=D(2026, 1, 1), max_value=D(2031, 1, 31)),
    )
    def test_random_histories(self, records: list[dict[str, Any]], as_of: date) -> None:
        doc = DEFAULT_POLICY.model_dump(mode="json")
        assert spec_reference.rate(records, doc, as_of) == _as_reference(
            rating.rate(records, DEFAULT_POLICY, as_of)
        )
        assert spec_reference.change_dates(records, doc, as_of) == rating.change_dates(
            records, DEFAULT_POLICY, as_of
        )

    def test_the_second_implementation_imports_nothing_of_ours(self) -> None:
        text = (Path(spec_reference.__file__)).read_text("utf-8")
        assert "backend" not in text.split('"""', 2)[2]
