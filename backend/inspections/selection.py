"""Verifiable random inspections (双随机): the pure, re-implementable part.

Once a draw's seed is revealed, *which* merchants are checked and *by whom* is
a pure function of the revealed randomness and inputs committed before it was
known. This module is that function; ``docs/draws.md`` is its specification,
byte for byte, so that anyone can re-run a draw in another language and compare
the plan digest.

It must never do I/O, read a clock or the environment, use floating point, or
use any randomness other than its ``randomness`` argument. It imports only the
standard library and :mod:`backend.ledger.merkle` (the one RFC 9162
implementation). Every collection it accepts is treated as a set: the order in
which callers pass entries, inspectors or selected merchants never changes the
result.
"""

from __future__ import annotations

import hashlib
import heapq
import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import rfc8785

from backend.ledger import merkle

PLAN_VERSION = 1
TIERS: tuple[str, ...] = ("A", "B", "C", "D")
BASIS_POINTS = 10_000
SEED_SIZE = 32
BLOCK_HASH_SIZE = 32
RANDOMNESS_SIZE = 32
KEY_SIZE = 32  # SHA-256 digest: selection and assignment keys
MIN_PER_CHECK = 2
SEPARATOR = "|"

# GB 32100-2015: 18 characters from 0-9 and A-Z without I, O, S, V, Z. Check
# characters are the merchant registry's business, not the draw's.
_USCC_RE = re.compile(r"[0-9A-HJ-NP-RTUWXY]{18}")
_REGION_RE = re.compile(r"[0-9]{6}")
_SECTOR_RE = re.compile(r"[a-z_]{1,32}")
_INSPECTOR_ID_RE = re.compile(r"[0-9A-Za-z_-]{1,64}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_UNIT_MAX_CHARS = 200


# --------------------------------------------------------------------------- errors


class SelectionError(Exception):
    """Base class of everything this module raises on purpose."""


class InvalidDrawInput(SelectionError, ValueError):
    """An input does not have the form ``docs/draws.md`` specifies."""


class DuplicateMerchant(InvalidDrawInput):
    """The same USCC appears twice in a snapshot or a selection."""

    def __init__(self, uscc: str) -> None:
        self.uscc = uscc
        super().__init__(f"USCC {uscc} appears more than once; a snapshot lists each merchant once")


class DuplicateInspector(InvalidDrawInput):
    """The same inspector id appears twice in the inspector directory."""

    def __init__(self, inspector_id: str) -> None:
        self.inspector_id = inspector_id
        super().__init__(
            f"inspector id {inspector_id} appears more than once; "
            "the directory lists each inspector once"
        )


class SeedMismatch(SelectionError, ValueError):
    """A revealed seed does not hash to the committed seed hash."""

    def __init__(self, *, expected: bytes, computed: bytes) -> None:
        self.expected = expected
        self.computed = computed
        super().__init__(
            f"seed hash mismatch: committed {expected.hex()}, revealed seed hashes to "
            f"{computed.hex()}"
        )


class NotEnoughInspectors(SelectionError):
    """Fewer than ``needed`` inspectors are eligible for a merchant.

    Deterministic: anyone re-running the draw fails at the same merchant with
    the same numbers. ``available`` counts inspectors that passed recusal and
    the load cap; ``recused`` and ``at_cap`` say why the others did not.
    """

    def __init__(
        self, uscc: str, needed: int, available: int, *, recused: int = 0, at_cap: int = 0
    ) -> None:
        self.uscc = uscc
        self.needed = needed
        self.available = available
        self.recused = recused
        self.at_cap = at_cap
        super().__init__(
            f"merchant {uscc} needs {needed} inspectors but only {available} are eligible "
            f"({recused} recused, {at_cap} at the load cap); add inspectors to the "
            "directory or lower per_check before committing the next draw"
        )


# --------------------------------------------------------------------- validation


def _require_bytes(value: object, size: int, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != size:
        got = (
            f"{len(value)} bytes" if isinstance(value, bytes | bytearray) else type(value).__name__
        )
        raise InvalidDrawInput(f"{what} must be exactly {size} bytes, got {got}")
    return bytes(value)


def _require_match(pattern: re.Pattern[str], value: object, what: str, rule: str) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise InvalidDrawInput(f"{what} {value!r} is invalid: must be {rule}")
    return value


def validate_uscc(value: object) -> str:
    """Return ``value`` if it is an upper-case, 18-character GB 32100 code."""
    return _require_match(
        _USCC_RE, value, "USCC", "18 characters from 0-9 and A-Z without I, O, S, V, Z"
    )


def validate_inspector_id(value: object) -> str:
    """Return ``value`` if it is 1-64 ASCII letters, digits, '_' or '-'."""
    return _require_match(
        _INSPECTOR_ID_RE, value, "inspector id", "1-64 characters from A-Z, a-z, 0-9, '_', '-'"
    )


def _validate_region(value: object) -> str:
    return _require_match(_REGION_RE, value, "region code", "6 digits (GB/T 2260)")


# ---------------------------------------------------------------- seed, randomness


def seed_hash(seed: bytes) -> bytes:
    """SHA-256(seed): what a draw commits to before the target block."""
    return hashlib.sha256(_require_bytes(seed, SEED_SIZE, "seed")).digest()


def verify_seed(seed: bytes, committed: bytes) -> None:
    """Raise :class:`SeedMismatch` unless ``seed`` hashes to ``committed``."""
    computed = seed_hash(seed)
    if computed != committed:
        raise SeedMismatch(expected=committed, computed=computed)


def randomness(seed: bytes, block_hash: bytes) -> bytes:
    """SHA-256(seed || blockhash(targetBlock)), the contract's formula (64 bytes in)."""
    seed = _require_bytes(seed, SEED_SIZE, "seed")
    block_hash = _require_bytes(block_hash, BLOCK_HASH_SIZE, "block hash")
    return hashlib.sha256(seed + block_hash).digest()


# ------------------------------------------------------------------------ snapshot


@dataclass(frozen=True, slots=True)
class SnapshotEntry:
    """One eligible merchant as committed in a draw's snapshot.

    Validated on construction, so every instance has a canonical encoding.
    """

    uscc: str
    tier: str
    region_code: str
    sector: str

    def __post_init__(self) -> None:
        validate_uscc(self.uscc)
        if self.tier not in TIERS:
            raise InvalidDrawInput(f"tier {self.tier!r} is invalid: must be one of A, B, C, D")
        _validate_region(self.region_code)
        _require_match(_SECTOR_RE, self.sector, "sector", "1-32 characters from a-z and '_'")


def snapshot_leaf(entry: SnapshotEntry) -> bytes:
    """Canonical bytes of an entry: ASCII ``uscc|tier|region_code|sector``."""
    return f"{entry.uscc}|{entry.tier}|{entry.region_code}|{entry.sector}".encode("ascii")


def sort_snapshot(entries: Iterable[SnapshotEntry]) -> list[SnapshotEntry]:
    """Entries in ascending USCC order; raise :class:`DuplicateMerchant` on a repeat."""
    ordered = sorted(entries, key=lambda e: e.uscc)
    for prev, cur in zip(ordered, ordered[1:], strict=False):
        if prev.uscc == cur.uscc:
            raise DuplicateMerchant(cur.uscc)
    return ordered


def snapshot_root(entries: Iterable[SnapshotEntry]) -> bytes:
    """RFC 9162 root over the leaf hashes of the entries sorted by USCC."""
    return merkle.root_from_leaf_hashes(
        [merkle.leaf_hash(snapshot_leaf(e)) for e in sort_snapshot(entries)]
    )


def verify_snapshot_root(entries: Iterable[SnapshotEntry], committed: bytes) -> None:
    """Raise :class:`merkle.RootMismatch` unless ``entries`` give the committed root."""
    computed = snapshot_root(entries)
    if computed != committed:
        raise merkle.RootMismatch(expected=committed, computed=computed, what="snapshot root")


# ----------------------------------------------------------------------- selection


def tier_count(n: int, rate_bp: int) -> int:
    """⌈n × rate_bp ÷ 10000⌉ in integer arithmetic."""
    return (n * rate_bp + BASIS_POINTS - 1) // BASIS_POINTS


def validate_rates(rates: Mapping[str, int]) -> dict[str, int]:
    """Return the rates as a dict in tier order; every tier needs an int in 0..10000."""
    if set(rates) != set(TIERS):
        raise InvalidDrawInput(
            f"rates must give exactly the tiers A, B, C, D (basis points), got {sorted(rates)}"
        )
    out: dict[str, int] = {}
    for tier in TIERS:
        bp = rates[tier]
        if type(bp) is not int or not 0 <= bp <= BASIS_POINTS:
            raise InvalidDrawInput(
                f"rate for tier {tier} is {bp!r}: must be an integer number of basis points "
                f"in 0..{BASIS_POINTS} (e.g. 5% = 500)"
            )
        out[tier] = bp
    return out


def selection_key(randomness: bytes, uscc: str) -> bytes:
    """SHA-256(randomness || ASCII uscc): 32 + 18 bytes in, no separator."""
    return hashlib.sha256(randomness + uscc.encode("ascii")).digest()


def select_merchants(
    randomness: bytes, entries: Iterable[SnapshotEntry], rates: Mapping[str, int]
) -> dict[str, list[str]]:
    """Per tier, the ⌈n·rate⌉ merchants with the smallest selection keys.

    ``rates`` maps every tier to basis points (0..10000). The result has the
    keys A, B, C, D in that order; each list is in ascending (key, uscc) order.
    O(n log k) hashing and comparisons.
    """
    randomness = _require_bytes(randomness, RANDOMNESS_SIZE, "randomness")
    bps = validate_rates(rates)
    # Each sort item is key || uscc as one bytes object: the key has a fixed
    # length, so byte order is (key, uscc) order, and comparing bytes is
    # several times faster than comparing tuples at 10^6 entries.
    by_tier: dict[str, list[bytes]] = {t: [] for t in TIERS}
    seen: set[str] = set()
    sha256 = hashlib.sha256
    for e in entries:
        if e.uscc in seen:
            raise DuplicateMerchant(e.uscc)
        seen.add(e.uscc)
        uscc = e.uscc.encode("ascii")
        by_tier[e.tier].append(sha256(randomness + uscc).digest() + uscc)
    return {
        t: [
            item[KEY_SIZE:].decode("ascii")
            for item in heapq.nsmallest(tier_count(len(keyed), bps[t]), keyed)
        ]
        for t, keyed in by_tier.items()
    }


# ---------------------------------------------------------------------- inspectors


@dataclass(frozen=True, slots=True)
class InspectorEntry:
    """One inspector in the directory (执法检查人员名录); never a name.

    ``unit`` and ``region_code`` are committed with the directory but do not
    influence assignment.
    """

    id: str
    unit: str
    region_code: str

    def __post_init__(self) -> None:
        validate_inspector_id(self.id)
        unit = self.unit
        if (
            not isinstance(unit, str)
            or not 1 <= len(unit) <= _UNIT_MAX_CHARS
            or SEPARATOR in unit
            or _CONTROL_RE.search(unit)
            or not unicodedata.is_normalized("NFC", unit)
        ):
            raise InvalidDrawInput(
                f"unit {unit!r} is invalid: must be 1-{_UNIT_MAX_CHARS} characters in "
                "Unicode NFC, without '|' or control characters"
            )
        _validate_region(self.region_code)


def inspector_leaf(entry: InspectorEntry) -> bytes:
    """Canonical bytes of an inspector: UTF-8 ``id|region_code|unit``."""
    return f"{entry.id}|{entry.region_code}|{entry.unit}".encode()


def sort_inspectors(inspectors: Iterable[InspectorEntry]) -> list[InspectorEntry]:
    """Inspectors in ascending id order; raise :class:`DuplicateInspector` on a repeat."""
    ordered = sorted(inspectors, key=lambda i: i.id)
    for prev, cur in zip(ordered, ordered[1:], strict=False):
        if prev.id == cur.id:
            raise DuplicateInspector(cur.id)
    return ordered


def inspectors_root(inspectors: Iterable[InspectorEntry]) -> bytes:
    """RFC 9162 root over the inspector leaves sorted by id."""
    return merkle.root_from_leaf_hashes(
        [merkle.leaf_hash(inspector_leaf(i)) for i in sort_inspectors(inspectors)]
    )


def recusal_pairs(
    conflicts: Collection[tuple[str, str]], previous: Mapping[str, Collection[str]]
) -> list[tuple[str, str]]:
    """The union of both recusal sources as sorted, distinct (uscc, inspector_id) pairs.

    ``conflicts`` holds (inspector_id, uscc) pairs; ``previous`` maps a USCC to
    the inspectors who checked it in the previous draw. Both mean the same
    thing here: that inspector may not check that merchant.
    """
    pairs: set[tuple[str, str]] = set()
    for item in conflicts:
        if not isinstance(item, tuple) or len(item) != 2:
            raise InvalidDrawInput(f"conflict {item!r} must be an (inspector_id, uscc) pair")
        inspector_id, uscc = item
        pairs.add((validate_uscc(uscc), validate_inspector_id(inspector_id)))
    for uscc, ids in previous.items():
        validate_uscc(uscc)
        if isinstance(ids, str):
            raise InvalidDrawInput(f"previous[{uscc}] must be a set of inspector ids, not a str")
        for inspector_id in ids:
            pairs.add((uscc, validate_inspector_id(inspector_id)))
    return sorted(pairs)


def recusal_root(
    conflicts: Collection[tuple[str, str]], previous: Mapping[str, Collection[str]]
) -> bytes:
    """RFC 9162 root over ASCII ``uscc|inspector_id`` leaves of :func:`recusal_pairs`."""
    return merkle.root_from_leaf_hashes(
        [
            merkle.leaf_hash(f"{u}|{i}".encode("ascii"))
            for u, i in recusal_pairs(conflicts, previous)
        ]
    )


def assignment_key(randomness: bytes, uscc: str, inspector_id: str) -> bytes:
    """SHA-256(randomness || ASCII uscc || ASCII inspector_id), no separators.

    Only the last field has a variable length, so the input is unambiguous.
    """
    return hashlib.sha256(randomness + uscc.encode("ascii") + inspector_id.encode("ascii")).digest()


def load_cap(checks: int, per_check: int, inspector_count: int) -> int:
    """⌈checks × per_check ÷ inspector_count⌉ + 1, or 0 with no inspectors."""
    if inspector_count == 0:
        return 0
    return (checks * per_check + inspector_count - 1) // inspector_count + 1


def merchant_order(randomness: bytes, selected: Iterable[str]) -> list[str]:
    """Selected merchants in processing order: ascending (selection key, uscc)."""
    randomness = _require_bytes(randomness, RANDOMNESS_SIZE, "randomness")
    keyed: list[tuple[bytes, str]] = []
    seen: set[str] = set()
    for uscc in selected:
        validate_uscc(uscc)
        if uscc in seen:
            raise DuplicateMerchant(uscc)
        seen.add(uscc)
        keyed.append((selection_key(randomness, uscc), uscc))
    keyed.sort()
    return [u for _, u in keyed]


def assign_inspectors(
    randomness: bytes,
    selected: Iterable[str],
    inspectors: Iterable[InspectorEntry],
    per_check: int,
    conflicts: Collection[tuple[str, str]] = frozenset(),
    previous: Mapping[str, Collection[str]] | None = None,
) -> dict[str, list[str]]:
    """Greedy, deterministic assignment of ``per_check`` inspectors to each merchant.

    Merchants are processed in :func:`merchant_order` (the order of
    ``selected`` is irrelevant). For each, inspectors are tried in ascending
    (assignment key, id) order and taken unless recused (a conflict, or they
    checked the merchant in the previous draw) or already holding
    :func:`load_cap` checks. Raises :class:`NotEnoughInspectors` at the first
    merchant that cannot be staffed; there is no backtracking.

    Returns merchant -> inspector ids (in the order taken), in processing order.
    """
    randomness = _require_bytes(randomness, RANDOMNESS_SIZE, "randomness")
    if type(per_check) is not int or per_check < MIN_PER_CHECK:
        raise InvalidDrawInput(
            f"per_check is {per_check!r}: at least {MIN_PER_CHECK} inspectors per check"
        )
    ids = [i.id.encode("ascii") for i in sort_inspectors(inspectors)]
    recused = set(recusal_pairs(conflicts, previous or {}))
    order = merchant_order(randomness, selected)
    cap = load_cap(len(order), per_check, len(ids))
    load = dict.fromkeys((i.decode("ascii") for i in ids), 0)
    sha256 = hashlib.sha256
    plan: dict[str, list[str]] = {}
    for uscc in order:
        prefix = randomness + uscc.encode("ascii")
        # key || id as one bytes object sorts as (key, id); a heap pops only
        # as far as needed, which on success is a few inspectors, not all.
        ranked = [sha256(prefix + i).digest() + i for i in ids]
        heapq.heapify(ranked)
        taken: list[str] = []
        n_recused = n_at_cap = 0
        while ranked and len(taken) < per_check:
            inspector_id = heapq.heappop(ranked)[KEY_SIZE:].decode("ascii")
            if (uscc, inspector_id) in recused:
                n_recused += 1
            elif load[inspector_id] >= cap:
                n_at_cap += 1
            else:
                taken.append(inspector_id)
        if len(taken) < per_check:
            # The heap is exhausted here, so the counts cover every inspector.
            raise NotEnoughInspectors(
                uscc, per_check, len(taken), recused=n_recused, at_cap=n_at_cap
            )
        for inspector_id in taken:
            load[inspector_id] += 1
        plan[uscc] = taken
    return plan


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class Plan:
    """The result of a draw together with the digests of everything it depends on."""

    randomness: bytes
    snapshot_root: bytes
    snapshot_size: int
    rates_bp: Mapping[str, int]
    selected: Mapping[str, Sequence[str]]
    inspectors_root: bytes
    inspector_count: int
    recusal_root: bytes
    per_check: int
    load_cap: int
    assignments: Mapping[str, Sequence[str]]
    """Merchant -> inspector ids, in processing order."""


def run_draw(
    randomness: bytes,
    entries: Iterable[SnapshotEntry],
    rates: Mapping[str, int],
    inspectors: Iterable[InspectorEntry],
    per_check: int,
    conflicts: Collection[tuple[str, str]] = frozenset(),
    previous: Mapping[str, Collection[str]] | None = None,
) -> Plan:
    """Select merchants, then assign inspectors; bundle both with input digests."""
    randomness = _require_bytes(randomness, RANDOMNESS_SIZE, "randomness")
    entries = list(entries)
    inspectors = list(inspectors)
    previous = previous or {}
    selected = select_merchants(randomness, entries, rates)
    chosen = [u for t in TIERS for u in selected[t]]
    assignments = assign_inspectors(randomness, chosen, inspectors, per_check, conflicts, previous)
    return Plan(
        randomness=randomness,
        snapshot_root=snapshot_root(entries),
        snapshot_size=len(entries),
        rates_bp=validate_rates(rates),
        selected=selected,
        inspectors_root=inspectors_root(inspectors),
        inspector_count=len(inspectors),
        recusal_root=recusal_root(conflicts, previous),
        per_check=per_check,
        load_cap=load_cap(len(chosen), per_check, len(inspectors)),
        assignments=assignments,
    )


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """The plan as JSON-ready data: keys sorted, hashes lower-case hex.

    ``assignments`` is a list in processing order, so the order survives JCS.
    """
    return {
        "assignments": [
            {"inspectors": list(ids), "uscc": uscc} for uscc, ids in plan.assignments.items()
        ],
        "inspector_count": plan.inspector_count,
        "inspectors_root": plan.inspectors_root.hex(),
        "load_cap": plan.load_cap,
        "per_check": plan.per_check,
        "randomness": plan.randomness.hex(),
        "rates_bp": {t: plan.rates_bp[t] for t in TIERS},
        "recusal_root": plan.recusal_root.hex(),
        "selected": {t: list(plan.selected[t]) for t in TIERS},
        "snapshot_root": plan.snapshot_root.hex(),
        "snapshot_size": plan.snapshot_size,
        "v": PLAN_VERSION,
    }


def plan_digest(plan: Plan) -> str:
    """Lower-case hex SHA-256 of the RFC 8785 (JCS) bytes of :func:`plan_to_json`."""
    return plan_json_digest(plan_to_json(plan))


def plan_json_digest(data: Mapping[str, Any]) -> str:
    """:func:`plan_digest` of a plan already in its JSON form (a ``draw.plan`` body)."""
    return hashlib.sha256(rfc8785.dumps(dict(data))).hexdigest()
