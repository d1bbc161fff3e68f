"""Tests for ``backend.ledger.merkle`` (RFC 9162 §2.1 hashing, proofs, verification).

Three independent sources of truth, so the suite can fail for real:

1. Published vectors from transparency-dev/merkle (Go), copied byte for byte.
2. ``tests.ledger.reference``: a naive recursive implementation of the RFC's
   definitions that shares no code with merkle.py.
3. Negative cases made by mutating valid proofs, as transparency-dev does, with
   the exception *class* asserted wherever it is determined by the proof's
   shape (wrong shape -> InvalidProof, right shape but wrong hashes ->
   RootMismatch).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.ledger import merkle
from backend.ledger.merkle import InvalidProof, MerkleError, RootMismatch
from tests.ledger import reference as ref

PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def hx(value: str) -> bytes:
    return bytes.fromhex(value)


# ---------------------------------------------------------------------------
# Published vectors
# ---------------------------------------------------------------------------

# transparency-dev/merkle testonly/constants.go, LeafInputs() (also `leaves` in
# proof/verify_test.go).
LEAF_INPUTS: list[bytes] = [
    hx(""),
    hx("00"),
    hx("10"),
    hx("2021"),
    hx("3031"),
    hx("40414243"),
    hx("5051525354555657"),
    hx("606162636465666768696a6b6c6d6e6f"),
]

# transparency-dev/merkle testonly/constants.go, RootHashes(): index = tree size.
# Size 0 is EmptyRootHash(), SHA-256 of the empty string; sizes 1..8 are also
# the `roots` table of proof/verify_test.go (there indexed by size - 1).
ROOTS: list[bytes] = [
    hx("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    hx("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    hx("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    hx("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    hx("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    hx("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    hx("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    hx("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    hx("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]

# transparency-dev/merkle testonly/constants.go, NodeHashes(): NODE_HASHES[level][index]
# is MTH(D[index << level : (index + 1) << level]) over LEAF_INPUTS.
NODE_HASHES: list[list[bytes]] = [
    [
        hx("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        hx("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        hx("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
        hx("07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
        hx("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        hx("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
        hx("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        hx("46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ],
    [
        hx("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        hx("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        hx("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        hx("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ],
    [
        hx("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        hx("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ],
    [
        hx("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
    ],
]

# (leaf index, tree size, expected proof). transparency-dev/merkle
# proof/verify_test.go `inclusionProofs` (there the leaf is 1-based: {1, 8},
# {6, 8}, {3, 3}, {2, 5}) and testonly/reference_test.go TestRefInclusionProof
# ({0,1}, {0,2}, {1,2}, {2,3}, {1,5}, {0,8}, {5,8}).
INCLUSION_VECTORS: list[tuple[int, int, list[bytes]]] = [
    (0, 1, []),
    (0, 2, [hx("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7")]),
    (1, 2, [hx("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")]),
    (2, 3, [hx("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        1,
        5,
        [
            hx("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            hx("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            hx("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        0,
        8,
        [
            hx("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            hx("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            hx("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        5,
        8,
        [
            hx("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            hx("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            hx("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]

# (old size, new size, expected proof). transparency-dev/merkle
# proof/verify_test.go `consistencyProofs` and testonly/reference_test.go
# TestRefConsistencyProof.
CONSISTENCY_VECTORS: list[tuple[int, int, list[bytes]]] = [
    (1, 1, []),
    (
        1,
        8,
        [
            hx("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            hx("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            hx("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            hx("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            hx("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            hx("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            hx("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            hx("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            hx("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            hx("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            hx("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]

# Proof *shapes* from transparency-dev/merkle proof/proof_test.go (TestInclusion,
# TestConsistency), as compact.NodeID(level, index). A nested list is a Go
# `rehash(begin, end, ...)` group: nodes the Go code stores separately because
# their parent is not yet complete, and hashes together (Nodes.Rehash: each
# later node is the *left* child) into one ephemeral proof element.
Node = tuple[int, int]
ProofItem = Node | list[Node]

INCLUSION_SHAPES: list[tuple[int, int, list[ProofItem]]] = [  # (size, index, nodes)
    (1, 0, []),
    (2, 0, [(0, 1)]),
    (2, 1, [(0, 0)]),
    (3, 1, [(0, 0), (0, 2)]),
    (7, 0, [(0, 1), (1, 1), [(0, 6), (1, 2)]]),
    (7, 1, [(0, 0), (1, 1), [(0, 6), (1, 2)]]),
    (7, 2, [(0, 3), (1, 0), [(0, 6), (1, 2)]]),
    (7, 3, [(0, 2), (1, 0), [(0, 6), (1, 2)]]),
    (7, 4, [(0, 5), (0, 6), (2, 0)]),
    (7, 5, [(0, 4), (0, 6), (2, 0)]),
    (7, 6, [(1, 2), (2, 0)]),
    (4, 2, [(0, 3), (1, 0)]),
    (5, 3, [(0, 2), (1, 0), (0, 4)]),
    (6, 3, [(0, 2), (1, 0), (1, 2)]),
    (6, 4, [(0, 5), (2, 0)]),
    (15, 10, [(0, 11), (1, 4), [(0, 14), (1, 6)], (3, 0)]),
    (31, 24, [(0, 25), (1, 13), [(0, 30), (1, 14)], (3, 2), (4, 0)]),
    (95, 81, [(0, 80), (1, 41), (2, 21), [(0, 94), (1, 46), (2, 22)], (4, 4), (6, 0)]),
]

CONSISTENCY_SHAPES: list[tuple[int, int, list[ProofItem]]] = [  # (size1, size2, nodes)
    (1, 2, [(0, 1)]),
    (1, 4, [(0, 1), (1, 1)]),
    (1, 6, [(0, 1), (1, 1), (1, 2)]),
    (2, 3, [(0, 2)]),
    (2, 8, [(1, 1), (2, 1)]),
    (3, 7, [(0, 2), (0, 3), (1, 0), [(0, 6), (1, 2)]]),
    (4, 7, [[(0, 6), (1, 2)]]),
    (5, 7, [(0, 4), (0, 5), (0, 6), (2, 0)]),
    (6, 7, [(1, 2), (0, 6), (2, 0)]),
    (7, 8, [(0, 6), (0, 7), (1, 2), (2, 0)]),
    (1, 1, []),
    (2, 2, []),
    (3, 3, []),
    (4, 4, []),
    (5, 5, []),
    (7, 7, []),
    (8, 8, []),
    (2, 4, [(1, 1)]),
    (3, 5, [(0, 2), (0, 3), (1, 0), (0, 4)]),
    (3, 6, [(0, 2), (0, 3), (1, 0), (1, 2)]),
    (4, 6, [(1, 2)]),
    (1, 7, [(0, 1), (1, 1), [(0, 6), (1, 2)]]),
    (10, 15, [(1, 4), (1, 5), [(0, 14), (1, 6)], (3, 0)]),
    (24, 31, [(3, 2), [(0, 30), (1, 14), (2, 6)], (4, 0)]),
    (81, 95, [(0, 80), (0, 81), (1, 41), (2, 21), [(0, 94), (1, 46), (2, 22)], (4, 4), (6, 0)]),
]

# transparency-dev/merkle proof/verify_test.go: sha256SomeHash, sha256EmptyTreeHash.
SOME_HASH = hx("abacaba000000000000000000000000000000000000000000060061e00123456")
EMPTY_TREE_HASH = hx("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


# ---------------------------------------------------------------------------
# Shared fixtures (module-level data: cheap, immutable)
# ---------------------------------------------------------------------------

MAX_SIZE = 2048
# The published inputs first, so prefixes of length <= 8 are the vector trees.
ENTRIES: list[bytes] = LEAF_INPUTS + [b"entry %d" % i for i in range(len(LEAF_INPUTS), MAX_SIZE)]
LEAF_HASHES: list[bytes] = [merkle.leaf_hash(e) for e in ENTRIES]


def subtree_for(size: int) -> merkle.SubtreeHash:
    return merkle.subtree_from_leaves(LEAF_HASHES[:size])


def bit_ceil(n: int) -> int:
    return 1 << (n - 1).bit_length()


def is_rfc_shaped(start: int, end: int) -> bool:
    """A range RFC 9162's recursion can produce: start is a multiple of bit_ceil(len)."""
    return 0 <= start < end and start % bit_ceil(end - start) == 0


def recording_subtree(size: int) -> tuple[merkle.SubtreeHash, list[tuple[int, int]]]:
    """A subtree callback over the first ``size`` entries that logs what it is asked."""
    calls: list[tuple[int, int]] = []
    inner = subtree_for(size)

    def subtree(start: int, end: int) -> bytes:
        calls.append((start, end))
        return inner(start, end)

    return subtree, calls


def flip_bit(value: bytes, byte: int, bit: int) -> bytes:
    out = bytearray(value)
    out[byte] ^= 1 << bit
    return bytes(out)


def replaced(proof: Sequence[bytes], i: int, value: bytes) -> list[bytes]:
    out = list(proof)
    out[i] = value
    return out


Outcome = tuple[type[MerkleError], bytes, bytes] | tuple[type[MerkleError]] | None


def inclusion_outcome(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> Outcome:
    """None if merkle.verify_inclusion accepts, else the error (with roots if a mismatch)."""
    try:
        merkle.verify_inclusion(index, size, leaf, proof, root)
    except RootMismatch as e:
        return (RootMismatch, e.expected, e.computed)
    except InvalidProof:
        return (InvalidProof,)
    return None


def reference_inclusion_outcome(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> Outcome:
    computed = ref.root_from_path(index, size, leaf, list(proof))
    if computed is None:
        return (InvalidProof,)
    if computed != root:
        return (RootMismatch, root, computed)
    return None


def consistency_outcome(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> Outcome:
    try:
        merkle.verify_consistency(old_size, new_size, old_root, new_root, proof)
    except RootMismatch as e:
        return (RootMismatch, e.expected, e.computed)
    except InvalidProof:
        return (InvalidProof,)
    return None


def reference_consistency_outcome(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> Outcome:
    roots = ref.roots_from_proof(old_size, new_size, old_root, list(proof))
    if roots is None:
        return (InvalidProof,)
    old, new = roots
    if old != old_root:
        return (RootMismatch, old_root, old)
    if new != new_root:
        return (RootMismatch, new_root, new)
    return None


def inclusion_shape_ok(index: int, size: int, proof: Sequence[bytes]) -> bool:
    return 0 <= index < size and len(proof) == len(ref.path_ranges(index, size))


def consistency_shape_ok(old_size: int, new_size: int, proof: Sequence[bytes]) -> bool:
    return 0 < old_size <= new_size and len(proof) == len(ref.proof_ranges(old_size, new_size))


def assert_raises_exactly(
    cls: type[MerkleError], fn: Callable[..., object], *args: object
) -> MerkleError:
    """Call ``fn(*args)``; it must raise exactly ``cls`` (not a sibling or the base)."""
    with pytest.raises(MerkleError) as info:
        fn(*args)
    assert type(info.value) is cls, f"expected {cls.__name__}, got {info.value!r}"
    return info.value


# ---------------------------------------------------------------------------
# 1. Published vectors
# ---------------------------------------------------------------------------


class TestHasherVectors:
    """transparency-dev/merkle rfc6962/rfc6962_test.go TestRFC6962Hasher."""

    def test_empty_root(self) -> None:
        assert (
            hx("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
            == merkle.EMPTY_ROOT
        )
        assert merkle.root_from_leaf_hashes([]) == merkle.EMPTY_ROOT

    def test_empty_leaf(self) -> None:
        # The hash of an empty leaf is not the empty tree hash.
        assert merkle.leaf_hash(b"") == hx(
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        )

    def test_leaf(self) -> None:
        assert merkle.leaf_hash(b"L123456") == hx(
            "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
        )

    def test_node(self) -> None:
        assert merkle.node_hash(b"N123", b"N456") == hx(
            "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
        )

    def test_domain_separation(self) -> None:
        # rfc6962_test.go TestRFC6962HasherCollisions.
        h1, h2 = merkle.leaf_hash(b"Hello"), merkle.leaf_hash(b"World")
        assert h1 != h2
        assert merkle.node_hash(h1, h2) != merkle.leaf_hash(h1 + h2)
        assert merkle.node_hash(h1, h2) != merkle.node_hash(h2, h1)


@pytest.mark.parametrize("size", range(len(ROOTS)))
def test_root_vectors(size: int) -> None:
    assert merkle.root_from_leaf_hashes(LEAF_HASHES[:size]) == ROOTS[size]
    assert ref.mth(LEAF_INPUTS[:size]) == ROOTS[size]
    if size:
        assert subtree_for(size)(0, size) == ROOTS[size]


def test_node_hash_vectors() -> None:
    subtree = subtree_for(8)
    for level, row in enumerate(NODE_HASHES):
        for index, expected in enumerate(row):
            start, end = index << level, (index + 1) << level
            assert subtree(start, end) == expected, (level, index)
            assert merkle.perfect_subtrees(start, end) == [(level, index)]
            assert ref.mth(LEAF_INPUTS[start:end]) == expected


def test_compact_tree_vectors() -> None:
    # testonly/constants.go CompactTrees(): the perfect subtrees of each prefix.
    nh = NODE_HASHES
    compact = [
        [],
        [nh[0][0]],
        [nh[1][0]],
        [nh[1][0], nh[0][2]],
        [nh[2][0]],
        [nh[2][0], nh[0][4]],
        [nh[2][0], nh[1][2]],
        [nh[2][0], nh[1][2], nh[0][6]],
        [nh[3][0]],
    ]
    for size in range(1, 9):
        nodes = merkle.perfect_subtrees(0, size)
        assert [nh[level][index] for level, index in nodes] == compact[size]
        assert merkle.fold_right(compact[size]) == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "expected"), INCLUSION_VECTORS)
def test_inclusion_vectors(index: int, size: int, expected: list[bytes]) -> None:
    proof = merkle.inclusion_proof(index, size, subtree_for(size))
    assert proof == expected
    assert ref.path(index, LEAF_INPUTS[:size]) == expected
    leaf = merkle.leaf_hash(LEAF_INPUTS[index])
    assert merkle.root_from_inclusion_proof(index, size, leaf, expected) == ROOTS[size]
    merkle.verify_inclusion(index, size, leaf, expected, ROOTS[size])


@pytest.mark.parametrize(("old_size", "new_size", "expected"), CONSISTENCY_VECTORS)
def test_consistency_vectors(old_size: int, new_size: int, expected: list[bytes]) -> None:
    proof = merkle.consistency_proof(old_size, new_size, subtree_for(new_size))
    assert proof == expected
    assert ref.proof(old_size, LEAF_INPUTS[:new_size]) == expected
    assert merkle.roots_from_consistency_proof(old_size, new_size, ROOTS[old_size], expected) == (
        ROOTS[old_size],
        ROOTS[new_size],
    )
    merkle.verify_consistency(old_size, new_size, ROOTS[old_size], ROOTS[new_size], expected)


def _item_range(item: ProofItem) -> tuple[int, int]:
    nodes = item if isinstance(item, list) else [item]
    starts = [index << level for level, index in nodes]
    ends = [(index + 1) << level for level, index in nodes]
    return min(starts), max(ends)


def _item_hash(item: ProofItem) -> bytes:
    if not isinstance(item, list):
        level, index = item
        return NODE_HASHES[level][index]
    # Nodes.Rehash in proof/proof.go: the accumulated hash is the right child.
    acc = _item_hash(item[0])
    for node in item[1:]:
        acc = merkle.node_hash(_item_hash(node), acc)
    return acc


@pytest.mark.parametrize(("size", "index", "nodes"), INCLUSION_SHAPES)
def test_inclusion_shape_vectors(size: int, index: int, nodes: list[ProofItem]) -> None:
    subtree, calls = recording_subtree(size)
    proof = merkle.inclusion_proof(index, size, subtree)
    # Generation asks for the subtrees top-down and returns them leaf side first.
    assert calls[::-1] == [_item_range(item) for item in nodes]
    assert calls[::-1] == ref.path_ranges(index, size)
    if size <= 8:
        assert proof == [_item_hash(item) for item in nodes]
        leaf = merkle.leaf_hash(LEAF_INPUTS[index])
        merkle.verify_inclusion(index, size, leaf, proof, ROOTS[size])


@pytest.mark.parametrize(("old_size", "new_size", "nodes"), CONSISTENCY_SHAPES)
def test_consistency_shape_vectors(old_size: int, new_size: int, nodes: list[ProofItem]) -> None:
    subtree, calls = recording_subtree(new_size)
    proof = merkle.consistency_proof(old_size, new_size, subtree)
    assert calls[::-1] == [_item_range(item) for item in nodes]
    assert calls[::-1] == ref.proof_ranges(old_size, new_size)
    if new_size <= 8:
        assert proof == [_item_hash(item) for item in nodes]
        merkle.verify_consistency(old_size, new_size, ROOTS[old_size], ROOTS[new_size], proof)


@pytest.mark.parametrize(
    ("size", "index"),
    # proof/proof_test.go TestInclusion error rows.
    [(0, 0), (0, 1), (1, 2), (0, 3), (7, 8)],
)
def test_inclusion_generation_rejects_bad_params(size: int, index: int) -> None:
    assert_raises_exactly(InvalidProof, merkle.inclusion_proof, index, size, subtree_for(8))


@pytest.mark.parametrize(
    ("old_size", "new_size"),
    # proof/proof_test.go TestConsistency error rows, plus old size 0, which
    # this module refuses (transparency-dev accepts it with an empty proof).
    [(5, 0), (9, 8), (0, 0), (0, 5), (-1, 3)],
)
def test_consistency_generation_rejects_bad_params(old_size: int, new_size: int) -> None:
    assert_raises_exactly(
        InvalidProof, merkle.consistency_proof, old_size, new_size, subtree_for(8)
    )


def test_split_point() -> None:
    # testonly/reference_test.go TestDownToPowerOfTwo.
    for size, expected in [(2, 1), (7, 4), (8, 4), (63, 32), (28937, 16384)]:
        assert merkle.split_point(size) == expected
    for size in range(2, 1100):
        assert merkle.split_point(size) == ref.largest_power_of_two_below(size)
    for size in (-1, 0, 1):
        with pytest.raises(ValueError):
            merkle.split_point(size)


class TestVerifyInclusionSingleEntry:
    """proof/verify_test.go TestVerifyInclusionSingleEntry."""

    leaf = merkle.leaf_hash(b"data")

    def test_valid(self) -> None:
        # Root and leaf hash of a 1-entry tree are the same; the proof is empty.
        merkle.verify_inclusion(0, 1, self.leaf, [], self.leaf)

    def test_empty_leaf_hash(self) -> None:
        assert_raises_exactly(InvalidProof, merkle.verify_inclusion, 0, 1, b"", [], self.leaf)

    def test_empty_root(self) -> None:
        e = assert_raises_exactly(RootMismatch, merkle.verify_inclusion, 0, 1, self.leaf, [], b"")
        assert isinstance(e, RootMismatch) and e.computed == self.leaf

    def test_both_empty(self) -> None:
        assert_raises_exactly(InvalidProof, merkle.verify_inclusion, 0, 1, b"", [], b"")


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 0), (2, 1), (1, 1), (-1, 4), (4, 4)])
def test_verify_inclusion_bad_index(index: int, size: int) -> None:
    # proof/verify_test.go TestVerifyInclusion probes, plus negative / == size.
    for leaf, root in [
        (SOME_HASH, b""),
        (b"", EMPTY_TREE_HASH),
        (SOME_HASH, EMPTY_TREE_HASH),
        (SOME_HASH, SOME_HASH),
    ]:
        assert_raises_exactly(InvalidProof, merkle.verify_inclusion, index, size, leaf, [], root)
        with pytest.raises(InvalidProof):
            merkle.root_from_inclusion_proof(index, size, leaf, [])


class TestVerifyConsistencyTable:
    """proof/verify_test.go TestVerifyConsistency, with 32-byte stand-in roots.

    Differences, by design: merkle.py refuses old size 0 (the Go code accepts
    0 -> n with an empty proof) and requires 32-byte roots.
    """

    root1 = hashlib.sha256(b"don't care 1").digest()
    root2 = hashlib.sha256(b"don't care 2").digest()

    def test_equal_sizes_different_roots(self) -> None:
        e = assert_raises_exactly(
            RootMismatch, merkle.verify_consistency, 1, 1, self.root1, self.root2, []
        )
        assert "new root mismatch" in str(e)

    def test_equal_sizes_equal_roots(self) -> None:
        merkle.verify_consistency(1, 1, self.root2, self.root2, [])
        merkle.verify_consistency(7, 7, ROOTS[7], ROOTS[7], [])

    @pytest.mark.parametrize(("old_size", "new_size"), [(1, 0), (2, 1), (0, 0), (0, 1), (-1, 1)])
    def test_bad_sizes(self, old_size: int, new_size: int) -> None:
        for old_root, new_root in [(self.root1, self.root2), (EMPTY_TREE_HASH, EMPTY_TREE_HASH)]:
            assert_raises_exactly(
                InvalidProof,
                merkle.verify_consistency,
                old_size,
                new_size,
                old_root,
                new_root,
                [],
            )

    def test_empty_proof_for_growth(self) -> None:
        assert_raises_exactly(InvalidProof, merkle.verify_consistency, 1, 2, ROOTS[1], ROOTS[2], [])
        # Old size a power of two: the old root is prepended, still not enough.
        assert_raises_exactly(InvalidProof, merkle.verify_consistency, 4, 8, ROOTS[4], ROOTS[8], [])

    def test_equal_sizes_nonempty_proof(self) -> None:
        for size in (1, 3, 8):
            assert_raises_exactly(
                InvalidProof,
                merkle.verify_consistency,
                size,
                size,
                ROOTS[size],
                ROOTS[size],
                [EMPTY_TREE_HASH],
            )

    def test_wrong_length_old_root(self) -> None:
        proof = merkle.consistency_proof(3, 7, subtree_for(7))
        assert_raises_exactly(
            InvalidProof, merkle.verify_consistency, 3, 7, b"WrongRoot", ROOTS[7], proof
        )


# ---------------------------------------------------------------------------
# 2. Cross-check against the naive reference
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", range(0, 131))
def test_root_matches_reference(size: int) -> None:
    expected = ref.mth(ENTRIES[:size])
    assert merkle.root_from_leaf_hashes(LEAF_HASHES[:size]) == expected
    if size:
        assert subtree_for(size)(0, size) == expected
        assert (
            merkle.fold_right(
                [
                    ref.mth(ENTRIES[i << lv : (i + 1) << lv])
                    for lv, i in merkle.perfect_subtrees(0, size)
                ]
            )
            == expected
        )


def _inclusion_indices(size: int) -> list[int]:
    if size <= 64:
        return list(range(size))
    picks = {0, 1, size // 3, size // 2, size - 2, size - 1}
    picks |= {p for p in (32, 63, 64, 65, 95, 96, 127, 128) if p < size}
    return sorted(picks)


@pytest.mark.parametrize("size", range(1, 131))
def test_inclusion_matches_reference(size: int) -> None:
    entries = ENTRIES[:size]
    root = ref.mth(entries)
    for index in _inclusion_indices(size):
        subtree, calls = recording_subtree(size)
        proof = merkle.inclusion_proof(index, size, subtree)
        assert proof == ref.path(index, entries), index
        # The database-backed log can answer only RFC-shaped ranges cheaply.
        assert calls[::-1] == ref.path_ranges(index, size)
        assert all(is_rfc_shaped(s, e) for s, e in calls)
        leaf = LEAF_HASHES[index]
        assert merkle.root_from_inclusion_proof(index, size, leaf, proof) == root
        assert ref.root_from_path(index, size, leaf, proof) == root
        merkle.verify_inclusion(index, size, leaf, proof, root)


@pytest.mark.parametrize("new_size", range(1, 41))
def test_consistency_matches_reference(new_size: int) -> None:
    entries = ENTRIES[:new_size]
    new_root = ref.mth(entries)
    for old_size in range(1, new_size + 1):
        old_root = ref.mth(entries[:old_size])
        subtree, calls = recording_subtree(new_size)
        proof = merkle.consistency_proof(old_size, new_size, subtree)
        assert proof == ref.proof(old_size, entries), old_size
        assert calls[::-1] == ref.proof_ranges(old_size, new_size)
        assert all(is_rfc_shaped(s, e) for s, e in calls)
        assert merkle.roots_from_consistency_proof(old_size, new_size, old_root, proof) == (
            old_root,
            new_root,
        )
        assert ref.roots_from_proof(old_size, new_size, old_root, proof) == (old_root, new_root)
        merkle.verify_consistency(old_size, new_size, old_root, new_root, proof)


@pytest.mark.parametrize("new_size", [64, 65, 100, 127, 128, 129, 130])
def test_consistency_matches_reference_sampled(new_size: int) -> None:
    entries = ENTRIES[:new_size]
    new_root = ref.mth(entries)
    for old_size in sorted({1, 2, 3, 31, 32, 33, 63, 64, new_size - 1, new_size}):
        if old_size > new_size:
            continue
        old_root = ref.mth(entries[:old_size])
        proof = merkle.consistency_proof(old_size, new_size, subtree_for(new_size))
        assert proof == ref.proof(old_size, entries), old_size
        merkle.verify_consistency(old_size, new_size, old_root, new_root, proof)


def _rfc_ranges(max_size: int) -> set[tuple[int, int]]:
    """Every range the RFC's MTH/PATH/PROOF recursions touch for trees up to max_size."""
    ranges: set[tuple[int, int]] = set()
    for n in range(1, max_size + 1):
        ranges.update(ref.mth_ranges(n))
        for m in range(n):
            ranges.update(ref.path_ranges(m, n))
        for m in range(1, n + 1):
            ranges.update(ref.proof_ranges(m, n))
    return ranges


def _check_perfect_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    nodes = merkle.perfect_subtrees(start, end)
    # Contiguous, each one aligned on its own size, covering exactly [start, end).
    pos = start
    for level, index in nodes:
        assert level >= 0 and index << level == pos, (start, end, nodes)
        pos = (index + 1) << level
    assert pos == end, (start, end, nodes)
    return nodes


def test_perfect_subtrees_fold_to_mth_for_rfc_ranges() -> None:
    ranges = _rfc_ranges(48)
    assert all(is_rfc_shaped(s, e) for s, e in ranges)
    subtree = subtree_for(48)
    for start, end in sorted(ranges):
        nodes = _check_perfect_subtrees(start, end)
        sizes = [1 << level for level, _ in nodes]
        assert sizes == sorted(set(sizes), reverse=True), (start, end, nodes)
        assert len(nodes) <= (end - start).bit_length()
        expected = ref.mth(ENTRIES[start:end])
        hashes = [ref.mth(ENTRIES[i << lv : (i + 1) << lv]) for lv, i in nodes]
        assert merkle.fold_right(hashes) == expected, (start, end)
        assert subtree(start, end) == expected


@PROPERTY_SETTINGS
@given(length=st.integers(1, 1 << 20), block=st.integers(0, 1 << 12))
def test_perfect_subtrees_shape_for_rfc_ranges(length: int, block: int) -> None:
    start = block * bit_ceil(length)
    nodes = _check_perfect_subtrees(start, start + length)
    levels = [level for level, _ in nodes]
    assert levels == sorted(set(levels), reverse=True)
    # Exactly the binary expansion of the length.
    assert sum(1 << lv for lv in levels) == length
    assert len(nodes) == bin(length).count("1")


@PROPERTY_SETTINGS
@given(length=st.integers(1, 600), block=st.integers(0, 2))
def test_perfect_subtrees_hashes_for_rfc_ranges(length: int, block: int) -> None:
    start = block * bit_ceil(length)
    end = start + length
    if end > MAX_SIZE:
        start, end = 0, length
    nodes = merkle.perfect_subtrees(start, end)
    hashes = [merkle.root_from_leaf_hashes(LEAF_HASHES[i << lv : (i + 1) << lv]) for lv, i in nodes]
    assert merkle.fold_right(hashes) == ref.mth(ENTRIES[start:end])


@PROPERTY_SETTINGS
@given(start=st.integers(0, 1 << 30), length=st.integers(1, 1 << 30))
def test_perfect_subtrees_cover_any_range(start: int, length: int) -> None:
    _check_perfect_subtrees(start, start + length)


def test_perfect_subtrees_and_fold_right_reject_empty_input() -> None:
    for start, end in [(0, 0), (5, 5), (5, 4), (-1, 3)]:
        with pytest.raises(ValueError):
            merkle.perfect_subtrees(start, end)
    with pytest.raises(ValueError):
        merkle.fold_right([])


@PROPERTY_SETTINGS
@given(data=st.data(), size=st.integers(1, MAX_SIZE))
def test_large_trees_match_reference(data: st.DataObject, size: int) -> None:
    entries = ENTRIES[:size]
    root = ref.mth(entries)
    assert merkle.root_from_leaf_hashes(LEAF_HASHES[:size]) == root
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = merkle.inclusion_proof(index, size, subtree_for(size))
    assert proof == ref.path(index, entries)
    merkle.verify_inclusion(index, size, LEAF_HASHES[index], proof, root)
    old_size = data.draw(st.integers(1, size), label="old_size")
    old_root = ref.mth(entries[:old_size])
    cproof = merkle.consistency_proof(old_size, size, subtree_for(size))
    assert cproof == ref.proof(old_size, entries)
    merkle.verify_consistency(old_size, size, old_root, root, cproof)


# ---------------------------------------------------------------------------
# 3. Negative cases: mutate valid proofs
# ---------------------------------------------------------------------------

MUTATION_SIZES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 16, 17, 31, 32, 33]


def _inclusion_cases() -> list[tuple[int, int]]:
    return [(index, size) for size in MUTATION_SIZES for index in range(size)]


def _consistency_cases() -> list[tuple[int, int]]:
    return [(m, n) for n in MUTATION_SIZES for m in range(1, n)]


def _root(size: int) -> bytes:
    return merkle.root_from_leaf_hashes(LEAF_HASHES[:size])


class TestInclusionMutations:
    @pytest.mark.parametrize("size", MUTATION_SIZES)
    def test_wrong_leaf(self, size: int) -> None:
        root = _root(size)
        wrong = merkle.leaf_hash(b"WrongLeaf")
        for index in range(size):
            proof = merkle.inclusion_proof(index, size, subtree_for(size))
            e = assert_raises_exactly(
                RootMismatch, merkle.verify_inclusion, index, size, wrong, proof, root
            )
            assert isinstance(e, RootMismatch)
            assert e.expected == root and e.computed != root
            # Another leaf of the same tree at the wrong position: also a mismatch.
            other = LEAF_HASHES[(index + 1) % size]
            if size > 1:
                assert_raises_exactly(
                    RootMismatch, merkle.verify_inclusion, index, size, other, proof, root
                )
            # Raw entry instead of its leaf hash: wrong length.
            assert_raises_exactly(
                InvalidProof,
                merkle.verify_inclusion,
                index,
                size,
                b"WrongLeaf",
                proof,
                root,
            )

    @pytest.mark.parametrize("size", MUTATION_SIZES)
    def test_wrong_index(self, size: int) -> None:
        root = _root(size)
        for index in range(size):
            leaf = LEAF_HASHES[index]
            proof = merkle.inclusion_proof(index, size, subtree_for(size))
            for wrong in {index - 1, index + 1, index ^ 2, size, size + 1, -1}:
                if wrong == index:
                    continue
                cls = RootMismatch if inclusion_shape_ok(wrong, size, proof) else InvalidProof
                assert_raises_exactly(cls, merkle.verify_inclusion, wrong, size, leaf, proof, root)

    @pytest.mark.parametrize("size", MUTATION_SIZES)
    def test_wrong_size(self, size: int) -> None:
        """The proof for (index, size) must not verify as (index, size') in the tree of size'."""
        for index in range(size):
            leaf = LEAF_HASHES[index]
            proof = merkle.inclusion_proof(index, size, subtree_for(size))
            for wrong in {size - 1, size + 1, size * 2, size // 2, 0}:
                if wrong == size:
                    continue
                root = _root(wrong)
                cls = RootMismatch if inclusion_shape_ok(index, wrong, proof) else InvalidProof
                assert_raises_exactly(cls, merkle.verify_inclusion, index, wrong, leaf, proof, root)

    @pytest.mark.parametrize("size", MUTATION_SIZES)
    def test_truncated_and_extended(self, size: int) -> None:
        root = _root(size)
        for index in range(size):
            leaf = LEAF_HASHES[index]
            proof = merkle.inclusion_proof(index, size, subtree_for(size))
            bad: list[list[bytes]] = [
                proof + [b""],  # trailing garbage
                proof + [root],  # trailing root
                proof + [leaf],
                proof + [SOME_HASH, SOME_HASH],
                [b""] + proof,  # preceding garbage
                [root] + proof,  # preceding root
            ]
            if proof:
                bad += [proof[:-1], proof[1:], proof + [proof[-1]]]
            if len(proof) > 1:
                bad.append([proof[0], SOME_HASH] + proof[1:])  # inserted component
            for wrong in bad:
                assert_raises_exactly(
                    InvalidProof, merkle.verify_inclusion, index, size, leaf, wrong, root
                )
                with pytest.raises(InvalidProof):
                    merkle.root_from_inclusion_proof(index, size, leaf, wrong)

    @pytest.mark.parametrize("size", MUTATION_SIZES)
    def test_modified_elements(self, size: int) -> None:
        root = _root(size)
        for index in range(size):
            leaf = LEAF_HASHES[index]
            proof = merkle.inclusion_proof(index, size, subtree_for(size))
            for i, p in enumerate(proof):
                # verify_test.go flips bit 3 of byte 0; also try the last bit.
                for flipped in (flip_bit(p, 0, 3), flip_bit(p, 31, 0), flip_bit(p, 17, 7)):
                    wrong = replaced(proof, i, flipped)
                    e = assert_raises_exactly(
                        RootMismatch,
                        merkle.verify_inclusion,
                        index,
                        size,
                        leaf,
                        wrong,
                        root,
                    )
                    assert isinstance(e, RootMismatch) and e.expected == root
                for bad_length in (p[:31], p + b"\x00", b"", p + p):
                    wrong = replaced(proof, i, bad_length)
                    assert_raises_exactly(
                        InvalidProof,
                        merkle.verify_inclusion,
                        index,
                        size,
                        leaf,
                        wrong,
                        root,
                    )
                if i + 1 < len(proof):
                    swapped = list(proof)
                    swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
                    assert_raises_exactly(
                        RootMismatch,
                        merkle.verify_inclusion,
                        index,
                        size,
                        leaf,
                        swapped,
                        root,
                    )

    @pytest.mark.parametrize("size", MUTATION_SIZES)
    def test_wrong_root(self, size: int) -> None:
        root = _root(size)
        for index in range(size):
            leaf = LEAF_HASHES[index]
            proof = merkle.inclusion_proof(index, size, subtree_for(size))
            for wrong in (EMPTY_TREE_HASH, SOME_HASH, _root(size + 1), flip_bit(root, 5, 2)):
                e = assert_raises_exactly(
                    RootMismatch, merkle.verify_inclusion, index, size, leaf, proof, wrong
                )
                assert isinstance(e, RootMismatch)
                assert (e.expected, e.computed) == (wrong, root)
                assert wrong.hex() in str(e) and root.hex() in str(e)


class TestConsistencyMutations:
    @pytest.mark.parametrize("new_size", MUTATION_SIZES[1:])
    def test_wrong_roots(self, new_size: int) -> None:
        new_root = _root(new_size)
        for old_size in range(1, new_size):
            old_root = _root(old_size)
            proof = merkle.consistency_proof(old_size, new_size, subtree_for(new_size))
            wrong = merkle.leaf_hash(b"WrongRoot")

            e = assert_raises_exactly(
                RootMismatch,
                merkle.verify_consistency,
                old_size,
                new_size,
                wrong,
                new_root,
                proof,
            )
            assert isinstance(e, RootMismatch)
            if old_size & (old_size - 1):
                # The proof determines the old root: it is what gets compared.
                assert (e.expected, e.computed) == (wrong, old_root)
                assert str(e).startswith("old root mismatch")
            else:
                # A power-of-two old tree is itself the proof's first node, so
                # the wrong old root surfaces as a wrong new root.
                assert e.expected == new_root and e.computed != new_root
                assert str(e).startswith("new root mismatch")
            assert e.expected.hex() in str(e) and e.computed.hex() in str(e)

            e = assert_raises_exactly(
                RootMismatch,
                merkle.verify_consistency,
                old_size,
                new_size,
                old_root,
                wrong,
                proof,
            )
            assert isinstance(e, RootMismatch)
            assert (e.expected, e.computed) == (wrong, new_root)
            assert str(e) == f"new root mismatch: expected {wrong.hex()}, computed {new_root.hex()}"

            assert_raises_exactly(
                RootMismatch,
                merkle.verify_consistency,
                old_size,
                new_size,
                new_root,
                old_root,
                proof,
            )

    @pytest.mark.parametrize("new_size", MUTATION_SIZES[1:])
    def test_wrong_sizes(self, new_size: int) -> None:
        """A proof for (m, n) must not verify as (m', n') between the trees of those sizes."""
        for old_size in range(1, new_size):
            proof = merkle.consistency_proof(old_size, new_size, subtree_for(new_size))
            pairs = {(old_size + d, new_size) for d in (-1, 1, 2, -old_size)}
            pairs |= {(old_size ^ 2, new_size)}
            pairs |= {(old_size, new_size + d) for d in (-1, 1, new_size)}
            pairs |= {(old_size, new_size // 2), (new_size, old_size)}
            pairs.discard((old_size, new_size))
            for m, n in sorted(pairs):
                old_root, new_root = _root(max(m, 0)), _root(max(n, 0))
                cls = RootMismatch if consistency_shape_ok(m, n, proof) else InvalidProof
                assert_raises_exactly(
                    cls, merkle.verify_consistency, m, n, old_root, new_root, proof
                )

    @pytest.mark.parametrize("new_size", MUTATION_SIZES[1:])
    def test_truncated_and_extended(self, new_size: int) -> None:
        new_root = _root(new_size)
        for old_size in range(1, new_size):
            old_root = _root(old_size)
            proof = merkle.consistency_proof(old_size, new_size, subtree_for(new_size))
            bad: list[list[bytes]] = [
                [],  # empty proof
                proof[:-1],  # truncated
                proof[1:],
                proof + [b""],  # trailing garbage
                proof + [old_root],
                proof + [new_root],
                proof + [proof[-1]],
                [b""] + proof,  # preceding garbage
                [old_root] + proof,
                [new_root] + proof,
                [proof[0]] + proof,
                [proof[0], SOME_HASH] + proof[1:],
            ]
            for wrong in bad:
                assert_raises_exactly(
                    InvalidProof,
                    merkle.verify_consistency,
                    old_size,
                    new_size,
                    old_root,
                    new_root,
                    wrong,
                )
                with pytest.raises(InvalidProof):
                    merkle.roots_from_consistency_proof(old_size, new_size, old_root, wrong)

    @pytest.mark.parametrize("new_size", MUTATION_SIZES[1:])
    def test_modified_elements(self, new_size: int) -> None:
        new_root = _root(new_size)
        for old_size in range(1, new_size):
            old_root = _root(old_size)
            proof = merkle.consistency_proof(old_size, new_size, subtree_for(new_size))
            for i, p in enumerate(proof):
                # verify_test.go flips bit 4 of byte 0; also try others.
                for flipped in (flip_bit(p, 0, 4), flip_bit(p, 31, 0), flip_bit(p, 9, 7)):
                    wrong = replaced(proof, i, flipped)
                    assert_raises_exactly(
                        RootMismatch,
                        merkle.verify_consistency,
                        old_size,
                        new_size,
                        old_root,
                        new_root,
                        wrong,
                    )
                for bad_length in (p[:31], p + b"\x00", b""):
                    wrong = replaced(proof, i, bad_length)
                    assert_raises_exactly(
                        InvalidProof,
                        merkle.verify_consistency,
                        old_size,
                        new_size,
                        old_root,
                        new_root,
                        wrong,
                    )
                if i + 1 < len(proof):
                    swapped = list(proof)
                    swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
                    assert_raises_exactly(
                        RootMismatch,
                        merkle.verify_consistency,
                        old_size,
                        new_size,
                        old_root,
                        new_root,
                        swapped,
                    )


def test_every_bit_of_published_proofs_matters() -> None:
    """Flip each of the 256 bits of each element of two published proofs."""
    index, size, proof = INCLUSION_VECTORS[-1]
    leaf = merkle.leaf_hash(LEAF_INPUTS[index])
    for i, p in enumerate(proof):
        for bit in range(256):
            wrong = replaced(proof, i, flip_bit(p, bit // 8, bit % 8))
            assert_raises_exactly(
                RootMismatch, merkle.verify_inclusion, index, size, leaf, wrong, ROOTS[size]
            )
    old_size, new_size, cproof = CONSISTENCY_VECTORS[-1]
    for i, p in enumerate(cproof):
        for bit in range(256):
            wrong = replaced(cproof, i, flip_bit(p, bit // 8, bit % 8))
            assert_raises_exactly(
                RootMismatch,
                merkle.verify_consistency,
                old_size,
                new_size,
                ROOTS[old_size],
                ROOTS[new_size],
                wrong,
            )


def _inclusion_probes(
    index: int, size: int, proof: list[bytes], leaf: bytes, root: bytes
) -> list[tuple[str, int, int, bytes, list[bytes], bytes]]:
    """corruptInclusionProof of proof/verify_test.go, plus a few more."""
    probes = [
        ("index - 1", index - 1, size, leaf, proof, root),
        ("index + 1", index + 1, size, leaf, proof, root),
        ("index ^ 2", index ^ 2, size, leaf, proof, root),
        ("size - 1", index, size - 1, leaf, proof, root),
        ("size + 1", index, size + 1, leaf, proof, root),
        ("size * 2", index, size * 2, leaf, proof, root),
        ("size / 2", index, size // 2, leaf, proof, root),
        ("wrong leaf", index, size, merkle.leaf_hash(b"WrongLeaf"), proof, root),
        ("empty root", index, size, leaf, proof, EMPTY_TREE_HASH),
        ("random root", index, size, leaf, proof, SOME_HASH),
        ("trailing garbage", index, size, leaf, proof + [b""], root),
        ("trailing root", index, size, leaf, proof + [root], root),
        ("preceding garbage", index, size, leaf, [b""] + proof, root),
        ("preceding root", index, size, leaf, [root] + proof, root),
    ]
    for i, p in enumerate(proof):
        probes.append(
            (f"proof[{i}] bit 3", index, size, leaf, replaced(proof, i, flip_bit(p, 0, 3)), root)
        )
    if proof:
        probes.append(("removed component", index, size, leaf, proof[:-1], root))
    if len(proof) > 1:
        probes.append(
            ("inserted component", index, size, leaf, [proof[0], SOME_HASH] + proof[1:], root)
        )
    return probes


@pytest.mark.parametrize("size", MUTATION_SIZES)
def test_inclusion_probes_agree_with_reference(size: int) -> None:
    """Every probe is judged the same way by merkle.py and by the reference verifier."""
    root = _root(size)
    for index in range(size):
        leaf = LEAF_HASHES[index]
        proof = merkle.inclusion_proof(index, size, subtree_for(size))
        for desc, i, n, lf, pr, rt in _inclusion_probes(index, size, proof, leaf, root):
            got = inclusion_outcome(i, n, lf, pr, rt)
            assert got == reference_inclusion_outcome(i, n, lf, pr, rt), (index, size, desc)
            if got is None:
                # Only a different size with the very same path shape can pass:
                # the verifier binds the size through the root it is given.
                assert desc.startswith("size") and rt == root, (index, size, desc)


def _consistency_probes(
    m: int, n: int, proof: list[bytes], r1: bytes, r2: bytes
) -> list[tuple[str, int, int, bytes, bytes, list[bytes]]]:
    """corruptConsistencyProof of proof/verify_test.go."""
    probes = [
        ("size1 - 1", m - 1, n, r1, r2, proof),
        ("size1 + 1", m + 1, n, r1, r2, proof),
        ("size1 ^ 2", m ^ 2, n, r1, r2, proof),
        ("size2 * 2", m, n * 2, r1, r2, proof),
        ("size2 / 2", m, n // 2, r1, r2, proof),
        ("wrong root1", m, n, merkle.leaf_hash(b"WrongRoot"), r2, proof),
        ("wrong root2", m, n, r1, merkle.leaf_hash(b"WrongRoot"), proof),
        ("swapped roots", m, n, r2, r1, proof),
        ("empty proof", m, n, r1, r2, []),
        ("trailing garbage", m, n, r1, r2, proof + [b""]),
        ("trailing root1", m, n, r1, r2, proof + [r1]),
        ("trailing root2", m, n, r1, r2, proof + [r2]),
        ("preceding garbage", m, n, r1, r2, [b""] + proof),
        ("preceding root1", m, n, r1, r2, [r1] + proof),
        ("preceding root2", m, n, r1, r2, [r2] + proof),
        ("preceding proof[0]", m, n, r1, r2, [proof[0]] + proof),
        ("truncated proof", m, n, r1, r2, proof[:-1]),
    ]
    for i, p in enumerate(proof):
        probes.append((f"proof[{i}] bit 4", m, n, r1, r2, replaced(proof, i, flip_bit(p, 0, 4))))
    return probes


@pytest.mark.parametrize("new_size", MUTATION_SIZES[1:])
def test_consistency_probes_agree_with_reference(new_size: int) -> None:
    new_root = _root(new_size)
    for old_size in range(1, new_size):
        old_root = _root(old_size)
        proof = merkle.consistency_proof(old_size, new_size, subtree_for(new_size))
        for desc, m, n, r1, r2, pr in _consistency_probes(
            old_size, new_size, proof, old_root, new_root
        ):
            got = consistency_outcome(m, n, r1, r2, pr)
            assert got == reference_consistency_outcome(m, n, r1, r2, pr), (
                old_size,
                new_size,
                desc,
            )
            if got is None:
                assert desc.startswith("size") and (r1, r2) == (old_root, new_root), (
                    old_size,
                    new_size,
                    desc,
                )


def test_size_is_bound_only_through_the_root() -> None:
    """RFC 9162 verification authenticates (size, root) only as a pair.

    The path for leaf 0 of a 5-leaf tree has the same shape as for leaf 0 of a
    6-leaf tree, so it "verifies" for size 6 against the 5-leaf root. That is
    not a flaw of the algorithm (the 6-leaf tree's real root is rejected), but
    it is why callers must take size and root from the same signed checkpoint.
    """
    proof = merkle.inclusion_proof(0, 5, subtree_for(5))
    merkle.verify_inclusion(0, 6, LEAF_HASHES[0], proof, ROOTS[5])
    assert_raises_exactly(
        RootMismatch, merkle.verify_inclusion, 0, 6, LEAF_HASHES[0], proof, ROOTS[6]
    )
    cproof = merkle.consistency_proof(4, 7, subtree_for(7))
    merkle.verify_consistency(4, 6, ROOTS[4], ROOTS[7], cproof)
    assert_raises_exactly(RootMismatch, merkle.verify_consistency, 4, 6, ROOTS[4], ROOTS[6], cproof)


# ---------------------------------------------------------------------------
# 4. Properties over random trees
# ---------------------------------------------------------------------------


def fake_subtree(start: int, end: int) -> bytes:
    """Stands in for MTH(D[start:end]) of a tree too big to build: distinct per range."""
    assert is_rfc_shaped(start, end), (start, end)
    return hashlib.sha256(b"%d:%d" % (start, end)).digest()


def recording_fake_subtree() -> tuple[merkle.SubtreeHash, list[tuple[int, int]]]:
    calls: list[tuple[int, int]] = []

    def subtree(start: int, end: int) -> bytes:
        calls.append((start, end))
        return fake_subtree(start, end)

    return subtree, calls


def _or_invalid(fn: Callable[..., object], *args: object) -> object:
    try:
        return fn(*args)
    except InvalidProof:
        return InvalidProof


# Sizes up to 2**64, with extra weight on powers of two and their neighbours.
any_size = st.one_of(
    st.integers(1, 1 << 64),
    st.builds(lambda k, d: max(1, (1 << k) + d), st.integers(0, 64), st.integers(-2, 2)),
)
hash32 = st.binary(min_size=32, max_size=32)


@PROPERTY_SETTINGS
@given(data=st.data(), size=any_size, leaf=hash32)
def test_inclusion_at_any_size_agrees_with_reference(
    data: st.DataObject, size: int, leaf: bytes
) -> None:
    """Shapes and the bit-twiddling verifier against the recursive one, up to 2**64 leaves."""
    index = data.draw(st.one_of(st.integers(0, size - 1), st.sampled_from([0, size - 1])))
    subtree, calls = recording_fake_subtree()
    proof = merkle.inclusion_proof(index, size, subtree)
    assert calls[::-1] == ref.path_ranges(index, size)
    for i, n in [
        (index, size),
        (index - 1, size),
        (index + 1, size),
        (index, size - 1),
        (index, size + 1),
        (index ^ 1, size),
        (index, 2 * size),
    ]:
        got = _or_invalid(merkle.root_from_inclusion_proof, i, n, leaf, proof)
        expected = ref.root_from_path(i, n, leaf, proof)
        assert got == (InvalidProof if expected is None else expected), (i, n)


@PROPERTY_SETTINGS
@given(data=st.data(), new_size=any_size, old_root=hash32)
def test_consistency_at_any_size_agrees_with_reference(
    data: st.DataObject, new_size: int, old_root: bytes
) -> None:
    old_size = data.draw(
        st.one_of(
            st.integers(1, new_size),
            st.sampled_from([1, new_size, max(1, new_size - 1), 1 << (new_size.bit_length() - 1)]),
        )
    )
    subtree, calls = recording_fake_subtree()
    proof = merkle.consistency_proof(old_size, new_size, subtree)
    assert calls[::-1] == ref.proof_ranges(old_size, new_size)
    for m, n in [
        (old_size, new_size),
        (old_size - 1, new_size),
        (old_size + 1, new_size),
        (old_size, new_size - 1),
        (old_size, new_size + 1),
        (old_size ^ 1, new_size),
    ]:
        got = _or_invalid(merkle.roots_from_consistency_proof, m, n, old_root, proof)
        expected = ref.roots_from_proof(m, n, old_root, proof)
        assert got == (InvalidProof if expected is None else expected), (m, n)


random_leaves = st.lists(st.binary(max_size=12), min_size=1, max_size=200)


@PROPERTY_SETTINGS
@given(entries=random_leaves, data=st.data())
def test_random_inclusion_proofs_verify_and_any_bit_flip_fails(
    entries: list[bytes], data: st.DataObject
) -> None:
    size = len(entries)
    hashes = [merkle.leaf_hash(e) for e in entries]
    root = merkle.root_from_leaf_hashes(hashes)
    assert root == ref.mth(entries)
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = merkle.inclusion_proof(index, size, merkle.subtree_from_leaves(hashes))
    assert proof == ref.path(index, entries)
    merkle.verify_inclusion(index, size, hashes[index], proof, root)

    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), label="element")
        bit = data.draw(st.integers(0, 255), label="bit")
        wrong = replaced(proof, i, flip_bit(proof[i], bit // 8, bit % 8))
        assert_raises_exactly(
            RootMismatch, merkle.verify_inclusion, index, size, hashes[index], wrong, root
        )
    bit = data.draw(st.integers(0, 255), label="leaf bit")
    leaf = flip_bit(hashes[index], bit // 8, bit % 8)
    assert_raises_exactly(RootMismatch, merkle.verify_inclusion, index, size, leaf, proof, root)


@PROPERTY_SETTINGS
@given(entries=random_leaves, data=st.data())
def test_random_consistency_proofs_verify_and_any_bit_flip_fails(
    entries: list[bytes], data: st.DataObject
) -> None:
    new_size = len(entries)
    hashes = [merkle.leaf_hash(e) for e in entries]
    old_size = data.draw(st.integers(1, new_size), label="old_size")
    old_root = merkle.root_from_leaf_hashes(hashes[:old_size])
    new_root = merkle.root_from_leaf_hashes(hashes)
    proof = merkle.consistency_proof(old_size, new_size, merkle.subtree_from_leaves(hashes))
    assert proof == ref.proof(old_size, entries)
    merkle.verify_consistency(old_size, new_size, old_root, new_root, proof)

    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), label="element")
        bit = data.draw(st.integers(0, 255), label="bit")
        wrong = replaced(proof, i, flip_bit(proof[i], bit // 8, bit % 8))
        assert_raises_exactly(
            RootMismatch,
            merkle.verify_consistency,
            old_size,
            new_size,
            old_root,
            new_root,
            wrong,
        )
    bit = data.draw(st.integers(0, 255), label="root bit")
    which = data.draw(st.sampled_from(["old", "new"]), label="which root")
    r1 = flip_bit(old_root, bit // 8, bit % 8) if which == "old" else old_root
    r2 = flip_bit(new_root, bit // 8, bit % 8) if which == "new" else new_root
    assert_raises_exactly(
        RootMismatch, merkle.verify_consistency, old_size, new_size, r1, r2, proof
    )


@PROPERTY_SETTINGS
@given(data=st.data(), size=st.integers(1, 300))
def test_random_proof_mutations_agree_with_reference(data: st.DataObject, size: int) -> None:
    """Arbitrary same-length garbage, truncation or extension: judged like the reference."""
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = merkle.inclusion_proof(index, size, subtree_for(size))
    mutated = data.draw(
        st.one_of(
            st.lists(st.binary(min_size=32, max_size=32), min_size=len(proof), max_size=len(proof)),
            st.lists(st.sampled_from(proof + [SOME_HASH]), max_size=len(proof) + 2),
        ),
        label="proof",
    )
    claimed_index = data.draw(st.sampled_from([index, index - 1, index + 1]), label="claimed")
    root = _root(size)
    leaf = LEAF_HASHES[index]
    got = inclusion_outcome(claimed_index, size, leaf, mutated, root)
    assert got == reference_inclusion_outcome(claimed_index, size, leaf, mutated, root)
    if got is None:
        assert (claimed_index, mutated) == (index, proof)
