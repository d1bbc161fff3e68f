"""RFC 9162 §2.1 Merkle tree hashing, proofs and proof verification.

This is the one implementation of RFC 9162 hashing in the Python code base;
everything else calls it. It is pure: bytes in, bytes out, no I/O, and it
imports only ``hashlib``. Proof *generation* does not own the leaves: it asks a
``subtree`` callback for the hash of a leaf range, so the same algorithm serves
an in-memory list (tests, verifiers) and the database-backed log (which
answers from stored perfect-subtree hashes in O(log n) reads).

Terminology follows RFC 9162: a tree of ``size`` leaves, leaf ``index`` in
``[0, size)``, MTH(D[a:b]) the hash of the leaves ``a`` (inclusive) to ``b``
(exclusive).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()

SubtreeHash = Callable[[int, int], bytes]
"""``subtree(start, end)`` returns MTH(D[start:end]); ranges are RFC-shaped (see
:func:`perfect_subtrees`)."""


class MerkleError(ValueError):
    """Base class: a proof or its parameters are not acceptable."""


class InvalidProof(MerkleError):
    """The proof has the wrong shape for the given index and sizes."""


class RootMismatch(MerkleError):
    """The proof is well formed but leads to a different root."""

    def __init__(self, *, expected: bytes, computed: bytes, what: str = "root") -> None:
        self.expected = expected
        self.computed = computed
        super().__init__(
            f"{what} mismatch: expected {expected.hex()}, computed {computed.hex()}"
        )


def leaf_hash(data: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d)."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def split_point(size: int) -> int:
    """The largest power of two strictly smaller than ``size`` (``size`` > 1)."""
    if size < 2:
        raise ValueError(f"split_point needs size >= 2, got {size}")
    return 1 << ((size - 1).bit_length() - 1)


def perfect_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """Decompose the leaf range ``[start, end)`` into perfect subtrees.

    Returns ``(level, index)`` pairs, left to right; the pair covers the leaves
    ``[index << level, (index + 1) << level)``. For the ranges RFC 9162's
    recursion produces (``start`` a multiple of the smallest power of two that
    is >= ``end - start``) the subtrees have strictly decreasing sizes and
    folding their hashes from the right gives MTH(D[start:end]); there are at
    most log2(end - start) + 1 of them.
    """
    if not 0 <= start < end:
        raise ValueError(f"perfect_subtrees needs 0 <= start < end, got [{start}, {end})")
    out: list[tuple[int, int]] = []
    while start < end:
        level = (start & -start).bit_length() - 1 if start else (end - start).bit_length() - 1
        while (1 << level) > end - start:
            level -= 1
        out.append((level, start >> level))
        start += 1 << level
    return out


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """Combine perfect-subtree hashes (left to right) into the range's MTH."""
    if not hashes:
        raise ValueError("fold_right needs at least one hash")
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def root_from_leaf_hashes(leaves: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes (O(n) hashing; for verifiers and audits)."""
    if not leaves:
        return EMPTY_ROOT
    # Bottom-up with the RFC's left-heavy shape: at each level pair left to
    # right and carry an odd last node up unchanged.
    level = list(leaves)
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def subtree_from_leaves(leaves: Sequence[bytes]) -> SubtreeHash:
    """A ``subtree`` callback over an in-memory list of leaf hashes."""

    def subtree(start: int, end: int) -> bytes:
        return root_from_leaf_hashes(leaves[start:end])

    return subtree


def inclusion_proof(index: int, size: int, subtree: SubtreeHash) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, leaf-side hash first."""
    if not 0 <= index < size:
        raise InvalidProof(f"leaf index {index} is outside a tree of size {size}")
    proof: list[bytes] = []
    start, end, m = 0, size, index
    while end - start > 1:
        k = split_point(end - start)
        if m < k:
            proof.append(subtree(start + k, end))
            end = start + k
        else:
            proof.append(subtree(start, start + k))
            start, m = start + k, m - k
    proof.reverse()
    return proof


def consistency_proof(old_size: int, new_size: int, subtree: SubtreeHash) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]) of RFC 9162 §2.1.4.1."""
    if not 0 < old_size <= new_size:
        raise InvalidProof(
            f"consistency proof needs 0 < old size <= new size, got {old_size} and {new_size}"
        )
    proof: list[bytes] = []
    start, end, m, complete = 0, new_size, old_size, True
    while True:
        if m == end - start:
            if not complete:
                proof.append(subtree(start, end))
            break
        k = split_point(end - start)
        if m <= k:
            proof.append(subtree(start + k, end))
            end = start + k
        else:
            proof.append(subtree(start, start + k))
            start, m, complete = start + k, m - k, False
    proof.reverse()
    return proof


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise InvalidProof(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")


def root_from_inclusion_proof(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root that ``proof`` leads to for leaf hash ``leaf`` (RFC 9162 §2.1.3.2)."""
    if not 0 <= index < size:
        raise InvalidProof(f"leaf index {index} is outside a tree of size {size}")
    _check_hash(leaf, "leaf hash")
    fn, sn, r = index, size - 1, leaf
    for i, p in enumerate(proof):
        _check_hash(p, f"proof element {i}")
        if sn == 0:
            raise InvalidProof(
                f"inclusion proof too long: {len(proof)} elements, only {i} needed "
                f"for index {index} in a tree of size {size}"
            )
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof(
            f"inclusion proof too short: {len(proof)} elements for index {index} "
            f"in a tree of size {size}"
        )
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise :class:`MerkleError` unless ``proof`` shows ``leaf`` at ``index`` under ``root``."""
    computed = root_from_inclusion_proof(index, size, leaf, proof)
    if computed != root:
        raise RootMismatch(expected=root, computed=computed)


def roots_from_consistency_proof(
    old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """The (old, new) roots that ``proof`` leads to (RFC 9162 §2.1.4.2).

    ``old_root`` is needed as the proof's first node when ``old_size`` is a
    power of two (the RFC omits it from the proof then).
    """
    if not 0 < old_size <= new_size:
        raise InvalidProof(
            f"consistency proof needs 0 < old size <= new size, got {old_size} and {new_size}"
        )
    _check_hash(old_root, "old root")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof element {i}")
    if old_size == new_size:
        if proof:
            raise InvalidProof(
                f"consistency proof between equal sizes must be empty, got {len(proof)} elements"
            )
        return old_root, old_root
    nodes = list(proof)
    if old_size & (old_size - 1) == 0:
        nodes.insert(0, old_root)
    if not nodes:
        raise InvalidProof("consistency proof is empty")
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for i, c in enumerate(nodes[1:], start=1):
        if sn == 0:
            raise InvalidProof(
                f"consistency proof too long: {len(proof)} elements for sizes "
                f"{old_size} -> {new_size} (element {i} is extra)"
            )
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof(
            f"consistency proof too short: {len(proof)} elements for sizes "
            f"{old_size} -> {new_size}"
        )
    return fr, sr


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise :class:`MerkleError` unless the tree ``new_size`` extends the tree ``old_size``."""
    fr, sr = roots_from_consistency_proof(old_size, new_size, old_root, proof)
    if fr != old_root:
        raise RootMismatch(expected=old_root, computed=fr, what="old root")
    if sr != new_root:
        raise RootMismatch(expected=new_root, computed=sr, what="new root")
