"""Tests for the pure draw function (docs/draws.md).

The fast implementation is cross-checked against naive references written
here from the specification (a recursive RFC 9162 MTH, a full sort instead of
a heap, a plain loop for assignment) and against the hard-coded worked example
of docs/draws.md, so these tests do not merely round-trip the module's code.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Collection, Mapping, Sequence
from fractions import Fraction

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.inspections.selection import (
    TIERS,
    DuplicateInspector,
    DuplicateMerchant,
    InspectorEntry,
    InvalidDrawInput,
    NotEnoughInspectors,
    SeedMismatch,
    SnapshotEntry,
    assign_inspectors,
    assignment_key,
    inspector_leaf,
    inspectors_root,
    load_cap,
    merchant_order,
    plan_digest,
    plan_to_json,
    randomness,
    recusal_pairs,
    recusal_root,
    run_draw,
    seed_hash,
    select_merchants,
    selection_key,
    snapshot_leaf,
    snapshot_root,
    sort_snapshot,
    tier_count,
    verify_seed,
    verify_snapshot_root,
)
from backend.ledger.merkle import RootMismatch

USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
R1 = hashlib.sha256(b"randomness one").digest()
R2 = hashlib.sha256(b"randomness two").digest()
ALL = {"A": 10_000, "B": 10_000, "C": 10_000, "D": 10_000}


# ------------------------------------------------------------------ helpers


def synthetic_uscc(i: int) -> str:
    return f"915119{i:011d}X"


def make_entries(
    *, n: int, tiers: str = "ABCD", region_code: str = "511902", sector: str = "retail"
) -> list[SnapshotEntry]:
    return [
        SnapshotEntry(synthetic_uscc(i), tiers[i % len(tiers)], region_code, sector)
        for i in range(n)
    ]


def make_inspectors(*, m: int) -> list[InspectorEntry]:
    return [InspectorEntry(f"insp-{i:03d}", "巴中市市场监督管理局", "511900") for i in range(m)]


def rates(*, a: int = 0, b: int = 0, c: int = 0, d: int = 0) -> dict[str, int]:
    return {"A": a, "B": b, "C": c, "D": d}


def naive_mth(leaves: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH, recursively, straight from the RFC's definition."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + naive_mth(leaves[:k]) + naive_mth(leaves[k:])).digest()


def naive_select(
    r: bytes, entries: Sequence[SnapshotEntry], bp: Mapping[str, int]
) -> dict[str, list[str]]:
    out = {}
    for t in TIERS:
        members = [e.uscc for e in entries if e.tier == t]
        count = math.ceil(Fraction(len(members) * bp[t], 10_000))
        members.sort(key=lambda u: (hashlib.sha256(r + u.encode()).digest(), u))
        out[t] = members[:count]
    return out


def naive_assign(
    r: bytes,
    selected: Sequence[str],
    inspector_ids: Sequence[str],
    per_check: int,
    banned: Collection[tuple[str, str]],
) -> dict[str, list[str]] | tuple[str, int]:
    """Spec-level loop; returns the plan, or (uscc, available) where it fails."""
    m = len(inspector_ids)
    cap = math.ceil(Fraction(len(selected) * per_check, m)) + 1 if m else 0
    load = {i: 0 for i in inspector_ids}
    out: dict[str, list[str]] = {}
    for u in sorted(selected, key=lambda u: hashlib.sha256(r + u.encode()).digest()):
        order = sorted(
            inspector_ids, key=lambda i: hashlib.sha256(r + u.encode() + i.encode()).digest()
        )
        ok = [i for i in order if (i, u) not in banned and load[i] < cap]
        if len(ok) < per_check:
            return (u, len(ok))
        for i in ok[:per_check]:
            load[i] += 1
        out[u] = ok[:per_check]
    return out


# ------------------------------------------------------------------ encodings


class TestSnapshotEntry:
    def test_leaf_bytes(self) -> None:
        e = SnapshotEntry("91511902MA62Q3T556", "A", "511902", "ev_charging")
        assert snapshot_leaf(e) == b"91511902MA62Q3T556|A|511902|ev_charging"

    @pytest.mark.parametrize(
        ("uscc", "tier", "region", "sector"),
        [
            ("91511902ma62q3t556", "A", "511902", "retail"),  # lower case
            ("91511902MA62Q3T55", "A", "511902", "retail"),  # 17 characters
            ("91511902MA62Q3T5566", "A", "511902", "retail"),  # 19 characters
            ("91511902MA62Q3T55I", "A", "511902", "retail"),  # I is not in GB 32100
            ("91511902MA62Q3T55|", "A", "511902", "retail"),
            ("9151190２MA62Q3T556", "A", "511902", "retail"),  # full-width digit
            ("91511902MA62Q3T556", "E", "511902", "retail"),
            ("91511902MA62Q3T556", "a", "511902", "retail"),
            ("91511902MA62Q3T556", "A", "51190", "retail"),
            ("91511902MA62Q3T556", "A", "51190X", "retail"),
            ("91511902MA62Q3T556", "A", "511902", "Retail"),
            ("91511902MA62Q3T556", "A", "511902", "re|tail"),
            ("91511902MA62Q3T556", "A", "511902", ""),
            ("91511902MA62Q3T556", "A", "511902", "x" * 33),
        ],
    )
    def test_invalid_field_rejected(self, uscc: str, tier: str, region: str, sector: str) -> None:
        with pytest.raises(InvalidDrawInput):
            SnapshotEntry(uscc, tier, region, sector)

    def test_error_is_a_value_error(self) -> None:
        with pytest.raises(ValueError, match="tier"):
            SnapshotEntry("91511902MA62Q3T556", "E", "511902", "retail")


class TestInspectorEntry:
    def test_leaf_bytes(self) -> None:
        i = InspectorEntry("insp-01", "巴州区市场监督管理局", "511902")
        assert inspector_leaf(i) == "insp-01|511902|巴州区市场监督管理局".encode()

    @pytest.mark.parametrize(
        ("inspector_id", "unit", "region"),
        [
            ("", "unit", "511902"),
            ("a|b", "unit", "511902"),
            ("a b", "unit", "511902"),
            ("x" * 65, "unit", "511902"),
            ("检查员", "unit", "511902"),
            ("insp", "", "511902"),
            ("insp", "a|b", "511902"),
            ("insp", "a\nb", "511902"),
            ("insp", "e\u0301", "511902"),  # not NFC
            ("insp", "unit", "5119"),
        ],
    )
    def test_invalid_field_rejected(self, inspector_id: str, unit: str, region: str) -> None:
        with pytest.raises(InvalidDrawInput):
            InspectorEntry(inspector_id, unit, region)


# ------------------------------------------------------------------ snapshot root


class TestSnapshotRoot:
    def test_matches_naive_rfc9162(self) -> None:
        for n in range(0, 12):
            entries = make_entries(n=n)
            expected = naive_mth([snapshot_leaf(e) for e in entries])  # already uscc-sorted
            assert snapshot_root(entries) == expected

    def test_empty(self) -> None:
        assert snapshot_root([]) == hashlib.sha256(b"").digest()

    def test_order_independent(self) -> None:
        entries = make_entries(n=9)
        shuffled = entries[:]
        random.Random(7).shuffle(shuffled)
        assert snapshot_root(shuffled) == snapshot_root(entries)
        assert sort_snapshot(shuffled) == entries

    def test_any_tier_change_changes_root(self) -> None:
        entries = make_entries(n=7)
        root = snapshot_root(entries)
        for k, e in enumerate(entries):
            for tier in TIERS:
                if tier == e.tier:
                    continue
                changed = entries[:k] + [SnapshotEntry(e.uscc, tier, e.region_code, e.sector)]
                assert snapshot_root(changed + entries[k + 1 :]) != root

    def test_duplicate_uscc_rejected(self) -> None:
        entries = make_entries(n=3)
        dup = SnapshotEntry(entries[1].uscc, "D", "511923", "fuel")
        with pytest.raises(DuplicateMerchant) as exc:
            snapshot_root([*entries, dup])
        assert exc.value.uscc == entries[1].uscc

    def test_verify_mismatch_carries_roots(self) -> None:
        entries = make_entries(n=4)
        good = snapshot_root(entries)
        verify_snapshot_root(entries, good)
        with pytest.raises(RootMismatch) as exc:
            verify_snapshot_root(entries[:3], good)
        assert exc.value.expected == good
        assert exc.value.computed == snapshot_root(entries[:3])


class TestOtherRoots:
    def test_inspectors_root_matches_naive_and_is_order_independent(self) -> None:
        inspectors = make_inspectors(m=5)
        expected = naive_mth([inspector_leaf(i) for i in inspectors])
        assert inspectors_root(reversed(inspectors)) == expected

    def test_inspectors_sorted_by_id_not_by_leaf_bytes(self) -> None:
        # "ab|..." sorts after "abc|..." as bytes, but "ab" < "abc" as ids.
        a = InspectorEntry("ab", "u", "511900")
        b = InspectorEntry("abc", "u", "511900")
        assert inspectors_root([b, a]) == naive_mth([inspector_leaf(a), inspector_leaf(b)])

    def test_duplicate_inspector_rejected(self) -> None:
        with pytest.raises(DuplicateInspector) as exc:
            inspectors_root([*make_inspectors(m=2), InspectorEntry("insp-001", "x", "511902")])
        assert exc.value.inspector_id == "insp-001"

    def test_recusal_union_and_dedup(self) -> None:
        u1, u2 = synthetic_uscc(1), synthetic_uscc(2)
        pairs = recusal_pairs({("i2", u2), ("i1", u1)}, {u1: {"i1", "i3"}})
        assert pairs == [(u1, "i1"), (u1, "i3"), (u2, "i2")]
        leaves = [f"{u}|{i}".encode() for u, i in pairs]
        assert recusal_root({("i2", u2), ("i1", u1)}, {u1: {"i1", "i3"}}) == naive_mth(leaves)

    def test_recusal_rejects_bad_shapes(self) -> None:
        with pytest.raises(InvalidDrawInput):
            recusal_pairs({(synthetic_uscc(1), "i1")}, {})  # pair given the wrong way round
        with pytest.raises(InvalidDrawInput):
            recusal_pairs(set(), {synthetic_uscc(1): "i1"})


# ------------------------------------------------------------------ seed, randomness


class TestSeed:
    def test_formulas(self) -> None:
        seed, block = bytes(range(32)), bytes(range(32, 64))
        assert seed_hash(seed) == hashlib.sha256(seed).digest()
        assert randomness(seed, block) == hashlib.sha256(seed + block).digest()

    @pytest.mark.parametrize("size", [0, 31, 33, 64])
    def test_wrong_sizes_rejected(self, size: int) -> None:
        with pytest.raises(InvalidDrawInput):
            seed_hash(bytes(size))
        with pytest.raises(InvalidDrawInput):
            randomness(bytes(32), bytes(size))
        with pytest.raises(InvalidDrawInput):
            select_merchants(bytes(size), [], ALL)

    def test_verify_seed(self) -> None:
        seed = bytes(range(32))
        verify_seed(seed, seed_hash(seed))
        other = bytes(32)
        with pytest.raises(SeedMismatch) as exc:
            verify_seed(other, seed_hash(seed))
        assert exc.value.expected == seed_hash(seed)
        assert exc.value.computed == seed_hash(other)


# ------------------------------------------------------------------ selection


class TestTierCount:
    @pytest.mark.parametrize(
        ("n", "bp", "expected"),
        [
            (0, 0, 0),
            (0, 500, 0),
            (0, 10_000, 0),
            (1, 0, 0),
            (1, 1, 1),
            (1, 10_000, 1),
            (3, 10_000, 3),
            (20, 500, 1),
            (21, 500, 2),
            (7, 3_333, 3),
            (10_000, 1, 1),
            (10_001, 1, 2),
            (10**6, 9_999, 999_900),
        ],
    )
    def test_values(self, n: int, bp: int, expected: int) -> None:
        assert tier_count(n, bp) == expected

    @settings(max_examples=100)
    @given(st.integers(0, 10**7), st.integers(0, 10_000))
    def test_is_exact_ceiling(self, n: int, bp: int) -> None:
        assert tier_count(n, bp) == math.ceil(Fraction(n * bp, 10_000))


class TestSelectMerchants:
    @pytest.mark.parametrize(
        ("n", "bp"),
        [
            (0, rates(a=500, b=500, c=500, d=500)),
            (1, rates(a=1)),
            (3, rates(a=10_000, b=10_000, c=10_000, d=10_000)),
            (4, rates()),
            (40, rates(a=500, b=2_500, c=5_000, d=10_000)),
            (401, rates(a=1, b=9_999, c=3_333, d=0)),
        ],
    )
    def test_counts_and_reference(self, n: int, bp: dict[str, int]) -> None:
        entries = make_entries(n=n)
        got = select_merchants(R1, entries, bp)
        assert list(got) == list(TIERS)
        for t in TIERS:
            n_t = sum(e.tier == t for e in entries)
            assert len(got[t]) == math.ceil(Fraction(n_t * bp[t], 10_000))
        assert got == naive_select(R1, entries, bp)

    def test_full_rate_selects_whole_tier_in_key_order(self) -> None:
        entries = make_entries(n=10, tiers="B")
        got = select_merchants(R1, entries, rates(b=10_000))
        assert sorted(got["B"]) == [e.uscc for e in entries]
        assert got["B"] == sorted(got["B"], key=lambda u: selection_key(R1, u))

    def test_selection_key_encoding(self) -> None:
        u = synthetic_uscc(5)
        assert selection_key(R1, u) == hashlib.sha256(R1 + u.encode("ascii")).digest()

    def test_deterministic_and_randomness_sensitive(self) -> None:
        entries = make_entries(n=200)
        bp = rates(a=1_000, b=1_000, c=1_000, d=1_000)
        assert select_merchants(R1, entries, bp) == select_merchants(R1, entries, bp)
        assert select_merchants(R1, entries, bp) != select_merchants(R2, entries, bp)

    def test_input_order_irrelevant(self) -> None:
        entries = make_entries(n=100)
        shuffled = entries[:]
        random.Random(1).shuffle(shuffled)
        bp = rates(a=700, b=1_500, c=3_000, d=10_000)
        assert select_merchants(R1, shuffled, bp) == select_merchants(R1, entries, bp)

    def test_duplicate_uscc_rejected(self) -> None:
        entries = make_entries(n=5)
        with pytest.raises(DuplicateMerchant) as exc:
            select_merchants(R1, [*entries, entries[2]], ALL)
        assert exc.value.uscc == entries[2].uscc

    @pytest.mark.parametrize(
        "bad",
        [
            {"A": 1, "B": 1, "C": 1},
            {"A": 1, "B": 1, "C": 1, "D": 1, "E": 1},
            {"A": 0.05, "B": 1, "C": 1, "D": 1},
            {"A": True, "B": 1, "C": 1, "D": 1},
            {"A": -1, "B": 1, "C": 1, "D": 1},
            {"A": 10_001, "B": 1, "C": 1, "D": 1},
        ],
    )
    def test_bad_rates_rejected(self, bad: dict[str, int]) -> None:
        with pytest.raises(InvalidDrawInput):
            select_merchants(R1, make_entries(n=4), bad)

    @settings(max_examples=100, deadline=None)
    @given(
        st.lists(
            st.tuples(st.text(USCC_CHARS, min_size=18, max_size=18), st.sampled_from(TIERS)),
            max_size=60,
            unique_by=lambda t: t[0],
        ),
        st.fixed_dictionaries({t: st.integers(0, 10_000) for t in TIERS}),
        st.binary(min_size=32, max_size=32),
    )
    def test_property_counts(
        self, rows: list[tuple[str, str]], bp: dict[str, int], r: bytes
    ) -> None:
        entries = [SnapshotEntry(u, t, "511902", "retail") for u, t in rows]
        got = select_merchants(r, entries, bp)
        for t in TIERS:
            members = {u for u, tier in rows if tier == t}
            assert len(got[t]) == math.ceil(Fraction(len(members) * bp[t], 10_000))
            assert set(got[t]) <= members
            assert len(set(got[t])) == len(got[t])
        assert got == naive_select(r, entries, bp)



# ------------------------------------------------------------------ assignment


def check_assignment(
    plan: Mapping[str, Sequence[str]],
    *,
    selected: Collection[str],
    inspector_ids: Collection[str],
    per_check: int,
    banned: Collection[tuple[str, str]],
) -> None:
    assert set(plan) == set(selected)
    cap = load_cap(len(selected), per_check, len(inspector_ids))
    load: dict[str, int] = {}
    for uscc, ids in plan.items():
        assert len(ids) == per_check
        assert len(set(ids)) == per_check
        for i in ids:
            assert i in inspector_ids
            assert (i, uscc) not in banned
            load[i] = load.get(i, 0) + 1
    assert all(v <= cap for v in load.values())


class TestAssignInspectors:
    def test_reference_and_invariants(self) -> None:
        selected = [synthetic_uscc(i) for i in range(30)]
        inspectors = make_inspectors(m=12)
        ids = [i.id for i in inspectors]
        rng = random.Random(3)
        conflicts = {(rng.choice(ids), rng.choice(selected)) for _ in range(25)}
        previous = {u: {rng.choice(ids), rng.choice(ids)} for u in rng.sample(selected, 10)}
        banned = conflicts | {(i, u) for u, s in previous.items() for i in s}
        plan = assign_inspectors(R1, selected, inspectors, 3, conflicts, previous)
        check_assignment(plan, selected=selected, inspector_ids=ids, per_check=3, banned=banned)
        assert plan == naive_assign(R1, selected, ids, 3, banned)
        assert list(plan) == merchant_order(R1, selected)

    def test_assignment_key_encoding(self) -> None:
        u = synthetic_uscc(1)
        assert (
            assignment_key(R1, u, "insp-7") == hashlib.sha256(R1 + u.encode() + b"insp-7").digest()
        )

    def test_input_order_irrelevant(self) -> None:
        selected = [synthetic_uscc(i) for i in range(15)]
        inspectors = make_inspectors(m=6)
        plan = assign_inspectors(R1, selected, inspectors, 2)
        rng = random.Random(5)
        s2, i2 = selected[:], inspectors[:]
        rng.shuffle(s2)
        rng.shuffle(i2)
        again = assign_inspectors(R1, s2, i2, 2)
        assert again == plan
        assert list(again) == list(plan)

    def test_previous_draw_recused(self) -> None:
        u = synthetic_uscc(0)
        inspectors = make_inspectors(m=4)
        first = assign_inspectors(R1, [u], inspectors, 2)
        second = assign_inspectors(R1, [u], inspectors, 2, previous={u: set(first[u])})
        assert not set(first[u]) & set(second[u])

    def test_load_cap_respected_and_binding(self) -> None:
        # Inspector 2 is recused everywhere, so 0 and 1 carry every check until the cap.
        selected = [synthetic_uscc(i) for i in range(6)]
        inspectors = make_inspectors(m=3)
        conflicts = {("insp-002", u) for u in selected}
        assert load_cap(6, 2, 3) == 5
        order = merchant_order(R1, selected)
        with pytest.raises(NotEnoughInspectors) as exc:
            assign_inspectors(R1, selected, inspectors, 2, conflicts)
        e = exc.value
        assert (e.uscc, e.needed, e.available, e.recused, e.at_cap) == (order[5], 2, 0, 1, 2)
        ok = assign_inspectors(R1, selected[:5], inspectors, 2, conflicts)
        check_assignment(
            ok,
            selected=selected[:5],
            inspector_ids={"insp-000", "insp-001", "insp-002"},
            per_check=2,
            banned=conflicts,
        )

    def test_not_enough_inspectors_carries_values(self) -> None:
        u = synthetic_uscc(0)
        with pytest.raises(NotEnoughInspectors) as exc:
            assign_inspectors(R1, [u], make_inspectors(m=2), 2, {("insp-001", u)})
        assert (exc.value.uscc, exc.value.needed, exc.value.available) == (u, 2, 1)
        assert exc.value.recused == 1
        assert "needs 2 inspectors but only 1" in str(exc.value)

    def test_no_inspectors_at_all(self) -> None:
        u = synthetic_uscc(0)
        with pytest.raises(NotEnoughInspectors) as exc:
            assign_inspectors(R1, [u], [], 2)
        assert (exc.value.uscc, exc.value.needed, exc.value.available) == (u, 2, 0)

    def test_per_check_larger_than_directory(self) -> None:
        with pytest.raises(NotEnoughInspectors) as exc:
            assign_inspectors(R1, [synthetic_uscc(0)], make_inspectors(m=2), 3)
        assert (exc.value.needed, exc.value.available) == (3, 2)

    def test_empty_selection(self) -> None:
        assert assign_inspectors(R1, [], [], 2) == {}

    @pytest.mark.parametrize("per_check", [0, 1, 2.0, True])
    def test_per_check_below_two_rejected(self, per_check: int) -> None:
        with pytest.raises(InvalidDrawInput):
            assign_inspectors(R1, [synthetic_uscc(0)], make_inspectors(m=4), per_check)

    def test_duplicates_rejected(self) -> None:
        u = synthetic_uscc(0)
        with pytest.raises(DuplicateMerchant):
            assign_inspectors(R1, [u, u], make_inspectors(m=4), 2)
        with pytest.raises(DuplicateInspector):
            assign_inspectors(R1, [u], [*make_inspectors(m=2), *make_inspectors(m=1)], 2)

    @settings(max_examples=100, deadline=None)
    @given(
        st.integers(0, 25),
        st.integers(0, 10),
        st.integers(2, 4),
        st.sets(st.tuples(st.integers(0, 9), st.integers(0, 24)), max_size=60),
        st.dictionaries(st.integers(0, 24), st.sets(st.integers(0, 9), max_size=4), max_size=10),
        st.binary(min_size=32, max_size=32),
    )
    def test_property_recusal_and_cap(
        self,
        n: int,
        m: int,
        per_check: int,
        conflict_idx: set[tuple[int, int]],
        previous_idx: dict[int, set[int]],
        r: bytes,
    ) -> None:
        selected = [synthetic_uscc(i) for i in range(n)]
        inspectors = make_inspectors(m=m)
        ids = [i.id for i in inspectors]
        name = lambda k: f"insp-{k:03d}"  # noqa: E731
        conflicts = {(name(i), synthetic_uscc(u)) for i, u in conflict_idx}
        previous = {synthetic_uscc(u): {name(i) for i in s} for u, s in previous_idx.items()}
        banned = conflicts | {(i, u) for u, s in previous.items() for i in s}
        expected = naive_assign(r, selected, ids, per_check, banned)
        try:
            plan = assign_inspectors(r, selected, inspectors, per_check, conflicts, previous)
        except NotEnoughInspectors as e:
            assert expected == (e.uscc, e.available)
            assert e.needed == per_check and e.available < per_check
            return
        assert plan == expected
        check_assignment(
            plan, selected=selected, inspector_ids=ids, per_check=per_check, banned=banned
        )


# ------------------------------------------------------------------ plan


def draw_inputs(n: int = 60, m: int = 10) -> dict:
    entries = make_entries(n=n)
    inspectors = make_inspectors(m=m)
    return {
        "entries": entries,
        "rates": rates(a=500, b=1_000, c=2_000, d=5_000),
        "inspectors": inspectors,
        "per_check": 2,
        "conflicts": {("insp-001", entries[0].uscc), ("insp-002", entries[3].uscc)},
        "previous": {entries[1].uscc: {"insp-003", "insp-004"}},
    }


class TestRunDraw:
    def test_deterministic(self) -> None:
        a = run_draw(R1, **draw_inputs())
        b = run_draw(R1, **draw_inputs())
        assert a == b
        assert plan_digest(a) == plan_digest(b)

    def test_different_randomness_different_plan(self) -> None:
        a = run_draw(R1, **draw_inputs())
        b = run_draw(R2, **draw_inputs())
        assert a.selected != b.selected
        assert plan_digest(a) != plan_digest(b)

    def test_shuffled_inputs_same_plan(self) -> None:
        base = draw_inputs()
        shuffled = dict(base)
        rng = random.Random(11)
        shuffled["entries"] = rng.sample(base["entries"], len(base["entries"]))
        shuffled["inspectors"] = rng.sample(base["inspectors"], len(base["inspectors"]))
        assert plan_digest(run_draw(R1, **shuffled)) == plan_digest(run_draw(R1, **base))

    def test_plan_contents(self) -> None:
        inputs = draw_inputs()
        plan = run_draw(R1, **inputs)
        assert plan.snapshot_root == snapshot_root(inputs["entries"])
        assert plan.inspectors_root == inspectors_root(inputs["inspectors"])
        assert plan.recusal_root == recusal_root(inputs["conflicts"], inputs["previous"])
        assert plan.snapshot_size == 60
        chosen = [u for t in TIERS for u in plan.selected[t]]
        assert set(plan.assignments) == set(chosen)
        assert plan.load_cap == load_cap(len(chosen), 2, 10)

    def test_json_is_sorted_and_digest_is_jcs(self) -> None:
        plan = run_draw(R1, **draw_inputs())
        data = plan_to_json(plan)
        text = json.dumps(data)
        assert json.dumps(json.loads(text), sort_keys=True) == text
        assert plan_digest(plan) == hashlib.sha256(rfc8785.dumps(data)).hexdigest()
        assert [a["uscc"] for a in data["assignments"]] == list(plan.assignments)

    def test_tier_change_changes_digest(self) -> None:
        inputs = draw_inputs()
        e = inputs["entries"][10]
        changed = dict(inputs)
        changed["entries"] = [
            *inputs["entries"][:10],
            SnapshotEntry(e.uscc, "D" if e.tier != "D" else "A", e.region_code, e.sector),
            *inputs["entries"][11:],
        ]
        assert plan_digest(run_draw(R1, **changed)) != plan_digest(run_draw(R1, **inputs))


# ------------------------------------------------------------------ docs/draws.md §7


class TestWorkedExample:
    """The numbers pasted in docs/draws.md §7; change both together."""

    ENTRIES = [
        ("91511902MA62Q3T556", "A", "511902", "retail"),
        ("91511902MA6B8K2L0W", "A", "511902", "market"),
        ("91511903MA64C7DRXY", "A", "511903", "fuel"),
        ("92511921MA6E1H3NXY", "B", "511921", "catering"),
        ("92511922MA6F5J8P6C", "B", "511922", "optical"),
        ("91511923MA6G2K4Q6T", "C", "511923", "ev_charging"),
        ("93511903MA62R7U15L", "C", "511903", "market"),
        ("92511923MA6A1B2C3M", "D", "511923", "retail"),
    ]
    INSPECTORS = [
        ("insp-01", "巴中市市场监督管理局", "511900"),
        ("insp-02", "巴州区市场监督管理局", "511902"),
        ("insp-03", "恩阳区市场监督管理局", "511903"),
        ("insp-04", "通江县市场监督管理局", "511921"),
        ("insp-05", "平昌县市场监督管理局", "511923"),
    ]
    CONFLICTS = {("insp-04", "92511921MA6E1H3NXY")}
    PREVIOUS = {"91511903MA64C7DRXY": {"insp-05"}}
    RATES = {"A": 500, "B": 2000, "C": 5000, "D": 10000}
    SEED = bytes.fromhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
    BLOCK = bytes.fromhex("202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f")
    SEED_HASH = "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd"
    RANDOMNESS = "fdeab9acf3710362bd2658cdc9a29e8f9c757fcf9811603a8c447cd1d9151108"
    SNAPSHOT_ROOT = "cbd6207cfd4a2c4bd8de8c42d4e941ad71cc1f26000c3fcec4fd7eecebdb0945"
    INSPECTORS_ROOT = "84031a1ad23e03ef6c50d2e1293f772faf4a03de71d16af13294a3e416d217d6"
    RECUSAL_ROOT = "379cb32ddbb01cb24a8addfaa471cfa6521633ca6e23db411f9bcc9ed308367f"
    LEAF_HASHES = {
        "91511902MA62Q3T556": "3207437b0264afeb989d3673cc40bb9fe365ddedf40bb33667bf58da7ad890ac",
        "91511903MA64C7DRXY": "d42f82bcb7cc580566a9dae2bc5165ef977281a096ee1d88f711911772dd9178",
        "93511903MA62R7U15L": "14ab0eeb7208b645a6ab70834541dc59d73e23417ea9471b0d2d371f963945e0",
    }
    SELECTION_KEYS = {
        "91511903MA64C7DRXY": "250215c601b61b9775731b0f98e9dd91456be22422765ffa6d3fe1228421fee8",
        "92511923MA6A1B2C3M": "d614e092e5f1301b22b6e4689c2f07cd064a5d9f5d386402573d9743c204c3af",
    }
    FIRST_MERCHANT_KEYS = {
        "insp-05": "0ec378823268a71292d0666278ace78fd50e741a283d6b494bd4d2332bc0338c",
        "insp-02": "4aa20d950c1ed1c3290f076cca1901d0f4f3369b00f757c3ecd57548fc0f8bfe",
        "insp-04": "57d4e3d037d9d56413a0e9d612a8b9c9d2e416888881118f45b849f066f408ee",
        "insp-03": "580a6653d9341933da8e9c3e1a64307b6c89c32edb92405df412f858558b796e",
        "insp-01": "68eb6429eac3c00082f239c62b6f8bba2e129bd4c66d7006e711d8f61d6ed70f",
    }
    JCS = (
        '{"assignments":[{"inspectors":["insp-02","insp-04"],"uscc":"91511903MA64C7DRXY"},'
        '{"inspectors":["insp-02","insp-01"],"uscc":"92511921MA6E1H3NXY"},'
        '{"inspectors":["insp-02","insp-05"],"uscc":"91511923MA6G2K4Q6T"},'
        '{"inspectors":["insp-04","insp-05"],"uscc":"92511923MA6A1B2C3M"}],'
        '"inspector_count":5,'
        '"inspectors_root":"84031a1ad23e03ef6c50d2e1293f772faf4a03de71d16af13294a3e416d217d6",'
        '"load_cap":3,"per_check":2,'
        '"randomness":"fdeab9acf3710362bd2658cdc9a29e8f9c757fcf9811603a8c447cd1d9151108",'
        '"rates_bp":{"A":500,"B":2000,"C":5000,"D":10000},'
        '"recusal_root":"379cb32ddbb01cb24a8addfaa471cfa6521633ca6e23db411f9bcc9ed308367f",'
        '"selected":{"A":["91511903MA64C7DRXY"],"B":["92511921MA6E1H3NXY"],'
        '"C":["91511923MA6G2K4Q6T"],"D":["92511923MA6A1B2C3M"]},'
        '"snapshot_root":"cbd6207cfd4a2c4bd8de8c42d4e941ad71cc1f26000c3fcec4fd7eecebdb0945",'
        '"snapshot_size":8,"v":1}'
    )
    DIGEST = "9d488f83763bf6f3611a07f6c3ef8422fce54284ab65ce580c23a4fd68c68891"

    def entries(self) -> list[SnapshotEntry]:
        return [SnapshotEntry(*row) for row in self.ENTRIES]

    def inspectors(self) -> list[InspectorEntry]:
        return [InspectorEntry(*row) for row in self.INSPECTORS]

    def test_commit_reveal(self) -> None:
        assert seed_hash(self.SEED).hex() == self.SEED_HASH
        assert randomness(self.SEED, self.BLOCK).hex() == self.RANDOMNESS

    def test_snapshot(self) -> None:
        assert snapshot_root(self.entries()).hex() == self.SNAPSHOT_ROOT
        by_uscc = {e.uscc: e for e in self.entries()}
        for uscc, h in self.LEAF_HASHES.items():
            leaf = snapshot_leaf(by_uscc[uscc])
            assert hashlib.sha256(b"\x00" + leaf).hexdigest() == h
        r = bytes.fromhex(self.RANDOMNESS)
        for uscc, k in self.SELECTION_KEYS.items():
            assert selection_key(r, uscc).hex() == k

    def test_inspectors_and_recusals(self) -> None:
        first = inspector_leaf(self.inspectors()[0])
        assert first.hex() == (
            "696e73702d30317c3531313930307ce5b7b4e4b8ade5b882e5b882e59cbae79b91e79da3e7aea1"
            "e79086e5b180"
        )
        assert inspectors_root(self.inspectors()).hex() == self.INSPECTORS_ROOT
        assert recusal_root(self.CONFLICTS, self.PREVIOUS).hex() == self.RECUSAL_ROOT
        r = bytes.fromhex(self.RANDOMNESS)
        for inspector_id, k in self.FIRST_MERCHANT_KEYS.items():
            assert assignment_key(r, "91511903MA64C7DRXY", inspector_id).hex() == k

    def test_plan(self) -> None:
        plan = run_draw(
            bytes.fromhex(self.RANDOMNESS),
            self.entries(),
            self.RATES,
            self.inspectors(),
            2,
            self.CONFLICTS,
            self.PREVIOUS,
        )
        assert rfc8785.dumps(plan_to_json(plan)).decode() == self.JCS
        assert plan_digest(plan) == self.DIGEST
