"""A naive Merkle tree written straight from the text of RFC 9162 §2.1.

It exists only to cross-check ``backend.ledger.merkle``, so it shares no code
with it (only ``hashlib``) and favours being obviously right over being fast:
every definition below is the RFC's recursion over the list of entries
``D[n]``, with slices where the RFC writes ``D[a:b]``. It must never be
imported by ``backend`` code, and must never be "optimised" into the shape of
the code it checks.

The two verifiers at the bottom are *not* the RFC's §2.1.3.2 / §2.1.4.2
bit-twiddling algorithms (that is what merkle.py implements); they invert the
recursive definitions of PATH and SUBPROOF instead, so a bug in one approach
is unlikely to be mirrored in the other.
"""

from __future__ import annotations

import hashlib


def hash_leaf(entry: bytes) -> bytes:
    """MTH({d(0)}) = SHA-256(0x00 || d(0))."""
    return hashlib.sha256(b"\x00" + entry).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """k, the largest power of two smaller than n (n > 1), found by counting up."""
    assert n > 1
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(entries: list[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 §2.1.1."""
    n = len(entries)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hash_leaf(entries[0])
    k = largest_power_of_two_below(n)
    return hash_children(mth(entries[:k]), mth(entries[k:]))


def path(m: int, entries: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1."""
    n = len(entries)
    assert 0 <= m < n
    if n == 1:
        return []
    k = largest_power_of_two_below(n)
    if m < k:
        return path(m, entries[:k]) + [mth(entries[k:])]
    return path(m - k, entries[k:]) + [mth(entries[:k])]


def proof(m: int, entries: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1, for 0 < m <= n."""
    assert 0 < m <= len(entries)
    return subproof(m, entries, True)


def subproof(m: int, entries: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 9162 §2.1.4.1."""
    n = len(entries)
    if m == n:
        return [] if b else [mth(entries)]
    k = largest_power_of_two_below(n)
    if m <= k:
        return subproof(m, entries[:k], b) + [mth(entries[k:])]
    return subproof(m - k, entries[k:], False) + [mth(entries[:k])]


# Shapes: the same recursions, but naming the leaf range [start, end) of each
# proof element instead of hashing it. Used to predict a proof's length and to
# check which ranges the production code asks its ``subtree`` callback for.


def path_ranges(m: int, n: int, start: int = 0) -> list[tuple[int, int]]:
    """The ranges whose MTH make up PATH(m, D[start:start + n])."""
    assert 0 <= m < n
    if n == 1:
        return []
    k = largest_power_of_two_below(n)
    if m < k:
        return path_ranges(m, k, start) + [(start + k, start + n)]
    return path_ranges(m - k, n - k, start + k) + [(start, start + k)]


def proof_ranges(m: int, n: int) -> list[tuple[int, int]]:
    """The ranges whose MTH make up PROOF(m, D[n])."""
    assert 0 < m <= n
    return _subproof_ranges(m, n, True, 0)


def _subproof_ranges(m: int, n: int, b: bool, start: int) -> list[tuple[int, int]]:
    if m == n:
        return [] if b else [(start, start + n)]
    k = largest_power_of_two_below(n)
    if m <= k:
        return _subproof_ranges(m, k, b, start) + [(start + k, start + n)]
    return _subproof_ranges(m - k, n - k, False, start + k) + [(start, start + k)]


def mth_ranges(n: int, start: int = 0) -> list[tuple[int, int]]:
    """Every range [a, b) whose MTH the definition of MTH(D[start:start + n]) uses."""
    if n == 0:
        return []
    if n == 1:
        return [(start, start + 1)]
    k = largest_power_of_two_below(n)
    return [(start, start + n)] + mth_ranges(k, start) + mth_ranges(n - k, start + k)


# Verifiers by inverting the definitions. They return None when the proof has
# the wrong number of elements or an element of the wrong length, else the
# root(s) the proof leads to; comparing with a trusted root is the caller's job.


def root_from_path(m: int, n: int, leaf: bytes, proof_: list[bytes]) -> bytes | None:
    """Undo PATH(m, D[n]): rebuild MTH(D[n]) from the leaf hash and its path."""
    if not 0 <= m < n or len(leaf) != 32 or any(len(p) != 32 for p in proof_):
        return None
    if n == 1:
        return leaf if not proof_ else None
    if not proof_:
        return None
    k = largest_power_of_two_below(n)
    *rest, last = proof_
    if m < k:
        left = root_from_path(m, k, leaf, rest)
        return None if left is None else hash_children(left, last)
    right = root_from_path(m - k, n - k, leaf, rest)
    return None if right is None else hash_children(last, right)


def roots_from_proof(
    m: int, n: int, old_root: bytes, proof_: list[bytes]
) -> tuple[bytes, bytes] | None:
    """Undo PROOF(m, D[n]): rebuild (MTH(D[0:m]), MTH(D[0:n])) from the proof.

    Where SUBPROOF(..., b=True) stops without emitting a node (the old tree is a
    whole subtree), the old root given by the verifier stands in for it.
    """
    if not 0 < m <= n or len(old_root) != 32 or any(len(p) != 32 for p in proof_):
        return None
    return _undo_subproof(m, n, True, old_root, proof_)


def _undo_subproof(
    m: int, n: int, b: bool, old_root: bytes, proof_: list[bytes]
) -> tuple[bytes, bytes] | None:
    if m == n:
        if b:
            return (old_root, old_root) if not proof_ else None
        return (proof_[0], proof_[0]) if len(proof_) == 1 else None
    if not proof_:
        return None
    k = largest_power_of_two_below(n)
    *rest, last = proof_
    if m <= k:
        sub = _undo_subproof(m, k, b, old_root, rest)
        if sub is None:
            return None
        old, new = sub
        # The old tree lies wholly in the left subtree; only the new one grows.
        return old, hash_children(new, last)
    sub = _undo_subproof(m - k, n - k, False, old_root, rest)
    if sub is None:
        return None
    old, new = sub
    return hash_children(last, old), hash_children(last, new)
