"""The subject index: a sparse Merkle tree over every subject's records, for completeness proofs.

For each subject (a merchant's USCC) the index holds how many records name it
and a digest of their record ids in log order. A root over all subjects lets
the service prove both

- **membership**: "this subject has exactly these ``count`` records", and
- **absence**: "no record names this subject",

against one 32-byte root, in O(log n) hashes for n subjects.

Every checkpoint commits to this root through its last leaf, a
``ledger.subject_index`` record; ``backend/ledger/index_store.py`` keeps and
audits the index, ``backend/ledger/completeness.py`` serves its proofs
(docs/proof-bundle.md, "Completeness proofs"). This module is the hashing and
the proofs only. It is pure: bytes in, bytes out, no I/O, and it imports only
``hashlib`` (and ``collections.abc`` for types).

Definitions (every hash SHA-256; the prefixes differ from RFC 9162's 0x00/0x01
so that no index hash can be taken for a log hash):

- ``key(subject)`` = SHA-256(UTF-8(subject)): the subject's 256-bit position;
  bit ``d`` is bit ``7 - d % 8`` of byte ``d // 8`` (most significant first).
- **ids digest** of record ids r_1 … r_n (32 bytes each, log order):
  ``c_0`` = 32 zero bytes, ``c_i`` = SHA-256(0x12 ‖ c_(i-1) ‖ r_i); the digest is
  ``c_n``. It can be extended record by record as the log grows.
- **leaf** of a subject with ``count`` ≥ 1 records:
  SHA-256(0x10 ‖ key ‖ count as 8 bytes big-endian ‖ ids digest).
- **empty** subtree: 32 zero bytes.
- **tree hash** of a set S of leaves whose keys share their first ``d`` bits:
  empty if S is empty; the leaf hash if S has one leaf (a lone leaf sits at the
  top of the largest subtree it has to itself, as in Diem's sparse Merkle
  tree); otherwise SHA-256(0x11 ‖ T(S0, d+1) ‖ T(S1, d+1)) where S0, S1 are the
  leaves whose bit ``d`` is 0, 1. The **root** is T(all leaves, 0).

A **proof** for a key lists the sibling hashes along the key's path from the
root down to where the path ends (a subtree with at most one leaf), and that
end: no leaf (empty), or one leaf with its key, count and ids digest. It proves
membership when the leaf's key is the key, absence when the end is empty or a
leaf with another key that shares the path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

HASH_SIZE = 32
KEY_BITS = 256
EMPTY = bytes(HASH_SIZE)
LEAF_PREFIX = b"\x10"
NODE_PREFIX = b"\x11"
IDS_PREFIX = b"\x12"
COUNT_BYTES = 8
MAX_COUNT = 2**64 - 1


class SubjectIndexError(ValueError):
    """Base class: a subject-index input or proof is not acceptable."""


class InvalidIndexProof(SubjectIndexError):
    """The proof has the wrong shape, or does not say what it is used for."""


class IndexRootMismatch(SubjectIndexError):
    """The proof is well formed but leads to another root."""

    def __init__(self, *, expected: bytes, computed: bytes) -> None:
        self.expected = expected
        self.computed = computed
        super().__init__(
            f"subject index root mismatch: expected {expected.hex()}, computed {computed.hex()}"
        )


def subject_key(subject: str) -> bytes:
    """The subject's position in the index: SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(subject.encode("utf-8")).digest()


def _id_bytes(record_id: bytes | str) -> bytes:
    raw = bytes.fromhex(record_id) if isinstance(record_id, str) else record_id
    if len(raw) != HASH_SIZE:
        raise SubjectIndexError(f"a record id is {HASH_SIZE} bytes, got {len(raw)}")
    return raw


def extend_ids_digest(digest: bytes, record_id: bytes | str) -> bytes:
    """The ids digest after one more record (``record_id`` as bytes or 64 hex digits)."""
    return hashlib.sha256(IDS_PREFIX + digest + _id_bytes(record_id)).digest()


def ids_digest(record_ids: Iterable[bytes | str]) -> tuple[int, bytes]:
    """``(count, digest)`` of record ids in log order."""
    count, digest = 0, EMPTY
    for rid in record_ids:
        digest = extend_ids_digest(digest, rid)
        count += 1
    return count, digest


def leaf_hash(key: bytes, count: int, digest: bytes) -> bytes:
    """The leaf of a subject with ``count`` (≥ 1) records and their ids digest."""
    if len(key) != HASH_SIZE or len(digest) != HASH_SIZE:
        raise SubjectIndexError("a key and an ids digest are 32 bytes each")
    if not 1 <= count <= MAX_COUNT:
        raise SubjectIndexError(f"a leaf counts 1..2^64-1 records, got {count}")
    return hashlib.sha256(
        LEAF_PREFIX + key + count.to_bytes(COUNT_BYTES, "big") + digest
    ).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def bit(key: bytes, depth: int) -> int:
    """Bit ``depth`` of ``key``, most significant first."""
    return (key[depth >> 3] >> (7 - (depth & 7))) & 1


class IndexLeaf:
    """One subject's entry: its key, its record count and their ids digest."""

    __slots__ = ("key", "count", "digest", "hash")

    def __init__(self, key: bytes, count: int, digest: bytes) -> None:
        self.key = key
        self.count = count
        self.digest = digest
        self.hash = leaf_hash(key, count, digest)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IndexLeaf) and (self.key, self.count, self.digest) == (
            other.key,
            other.count,
            other.digest,
        )

    def __hash__(self) -> int:
        return hash((self.key, self.count, self.digest))

    def __repr__(self) -> str:
        return f"IndexLeaf(key={self.key.hex()}, count={self.count}, digest={self.digest.hex()})"


class IndexProof:
    """Where a key's path ends (``leaf``: ``None`` for an empty subtree) and the sibling
    hashes on the way: ``siblings[d]`` is the other child of the path's node at depth ``d``."""

    __slots__ = ("siblings", "leaf")

    def __init__(self, siblings: tuple[bytes, ...], leaf: IndexLeaf | None) -> None:
        self.siblings = siblings
        self.leaf = leaf

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, IndexProof)
            and self.siblings == other.siblings
            and self.leaf == other.leaf
        )

    def __hash__(self) -> int:
        return hash((self.siblings, self.leaf))

    def to_json(self) -> dict[str, object]:
        leaf = self.leaf
        return {
            "siblings": [s.hex() for s in self.siblings],
            "leaf": None
            if leaf is None
            else {"key": leaf.key.hex(), "count": leaf.count, "ids_digest": leaf.digest.hex()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> IndexProof:
        """Parse :meth:`to_json` output; anything else is :class:`InvalidIndexProof`."""
        try:
            raw = data["siblings"]
            if not isinstance(raw, list):
                raise TypeError("siblings must be a list")
            siblings = tuple(_hex32(s) for s in raw)
            leaf_data = data["leaf"]
            leaf = None
            if leaf_data is not None:
                if not isinstance(leaf_data, Mapping):
                    raise TypeError("leaf must be an object or null")
                count = leaf_data["count"]
                if type(count) is not int:
                    raise TypeError("count must be an integer")
                leaf = IndexLeaf(_hex32(leaf_data["key"]), count, _hex32(leaf_data["ids_digest"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidIndexProof(f"not a subject-index proof: {exc}") from None
        return cls(siblings, leaf)


def _hex32(value: object) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * HASH_SIZE or value != value.lower():
        raise ValueError(f"expected 64 lower-case hex digits, got {value!r}")
    return bytes.fromhex(value)


class _Node:
    __slots__ = ("left", "right", "hash")

    def __init__(self, left: _Tree, right: _Tree) -> None:
        self.left = left
        self.right = right
        self.hash = node_hash(_hash(left), _hash(right))


_Tree = _Node | IndexLeaf | None


def _hash(t: _Tree) -> bytes:
    return EMPTY if t is None else t.hash


def _join(a: IndexLeaf, b: IndexLeaf, depth: int) -> _Node:
    """The smallest subtree holding two leaves that share their first ``depth`` bits."""
    ba, bb = bit(a.key, depth), bit(b.key, depth)
    if ba != bb:
        return _Node(a, b) if ba == 0 else _Node(b, a)
    inner = _join(a, b, depth + 1)
    return _Node(inner, None) if ba == 0 else _Node(None, inner)


def _put(t: _Tree, leaf: IndexLeaf, depth: int) -> _Tree:
    if t is None:
        return leaf
    if isinstance(t, IndexLeaf):
        return leaf if t.key == leaf.key else _join(t, leaf, depth)
    if bit(leaf.key, depth) == 0:
        t.left = _put(t.left, leaf, depth + 1)
    else:
        t.right = _put(t.right, leaf, depth + 1)
    t.hash = node_hash(_hash(t.left), _hash(t.right))
    return t


def _build(leaves: list[IndexLeaf], lo: int, hi: int, depth: int) -> _Tree:
    """Bulk build of ``leaves[lo:hi]``, sorted by key and sharing their first ``depth``
    bits (n leaf hashes + fewer than n node hashes; the split found by bisection)."""
    if hi - lo == 0:
        return None
    if hi - lo == 1:
        return leaves[lo]
    a, b = lo, hi  # first index in [lo, hi) whose bit ``depth`` is 1, or hi
    while a < b:
        mid = (a + b) // 2
        if bit(leaves[mid].key, depth):
            b = mid
        else:
            a = mid + 1
    return _Node(_build(leaves, lo, a, depth + 1), _build(leaves, a, hi, depth + 1))


class SubjectIndex:
    """The index in memory: put a subject's ``(count, digest)``, read the root, prove a key.

    ``put`` costs O(depth) hashes, about log2(n) + 2 for n random keys.
    """

    def __init__(self) -> None:
        self._root: _Tree = None
        self._leaves: dict[bytes, IndexLeaf] = {}

    @classmethod
    def from_entries(cls, entries: Iterable[tuple[bytes, int, bytes]]) -> SubjectIndex:
        """Build from ``(key, count, digest)`` at once (a repeated key: the last one wins)."""
        index = cls()
        for key, count, digest in entries:
            index._leaves[key] = IndexLeaf(key, count, digest)
        leaves = sorted(index._leaves.values(), key=lambda x: x.key)
        index._root = _build(leaves, 0, len(leaves), 0)
        return index

    def __len__(self) -> int:
        return len(self._leaves)

    def get(self, key: bytes) -> IndexLeaf | None:
        return self._leaves.get(key)

    def put(self, key: bytes, count: int, digest: bytes) -> None:
        leaf = IndexLeaf(key, count, digest)
        self._leaves[key] = leaf
        self._root = _put(self._root, leaf, 0)

    def root(self) -> bytes:
        return _hash(self._root)

    def prove(self, key: bytes) -> IndexProof:
        """The proof for ``key``: of membership if it is in the index, else of absence."""
        if len(key) != HASH_SIZE:
            raise SubjectIndexError(f"a key is {HASH_SIZE} bytes, got {len(key)}")
        siblings: list[bytes] = []
        t = self._root
        depth = 0
        while isinstance(t, _Node):
            if bit(key, depth):
                siblings.append(_hash(t.left))
                t = t.right
            else:
                siblings.append(_hash(t.right))
                t = t.left
            depth += 1
        return IndexProof(tuple(siblings), t)


def root_from_proof(key: bytes, proof: IndexProof) -> bytes:
    """The root ``proof`` leads to for ``key``; checks the proof's shape.

    Preconditions checked: ``key`` is 32 bytes; at most 256 siblings, each 32
    bytes; a leaf at the end shares the key's first ``len(siblings)`` bits; the
    end's sibling is not empty (a lone leaf or an empty subtree never sits
    beside an empty one: the pair would have been one subtree).
    """
    if len(key) != HASH_SIZE:
        raise InvalidIndexProof(f"a key is {HASH_SIZE} bytes, got {len(key)}")
    siblings = proof.siblings
    depth = len(siblings)
    if depth > KEY_BITS:
        raise InvalidIndexProof(f"a path has at most {KEY_BITS} siblings, got {depth}")
    if any(len(s) != HASH_SIZE for s in siblings):
        raise InvalidIndexProof("every sibling is 32 bytes")
    leaf = proof.leaf
    if leaf is not None:
        if any(bit(leaf.key, d) != bit(key, d) for d in range(depth)):
            raise InvalidIndexProof(
                f"the proof's leaf {leaf.key.hex()} is not on the path of key {key.hex()}"
            )
        if depth == KEY_BITS and leaf.key != key:
            raise InvalidIndexProof("two keys cannot share all 256 bits")
    if depth and siblings[-1] == EMPTY:
        raise InvalidIndexProof("the sibling of a path's end is never an empty subtree")
    if leaf is None and depth == 0:
        return EMPTY
    h = EMPTY if leaf is None else leaf.hash
    for d in range(depth - 1, -1, -1):
        h = node_hash(siblings[d], h) if bit(key, d) else node_hash(h, siblings[d])
    return h


def verify_membership(
    root: bytes, key: bytes, count: int, digest: bytes, proof: IndexProof
) -> None:
    """Check that ``key`` holds exactly ``count`` records with ids digest ``digest`` under
    ``root``. Raises :class:`InvalidIndexProof` or :class:`IndexRootMismatch`."""
    leaf = proof.leaf
    if leaf is None or leaf.key != key:
        raise InvalidIndexProof(f"the proof does not end at key {key.hex()}: it proves absence")
    if (leaf.count, leaf.digest) != (count, digest):
        raise InvalidIndexProof(
            f"the proof's leaf holds {leaf.count} record(s) with ids digest "
            f"{leaf.digest.hex()}, not {count} with {digest.hex()}"
        )
    computed = root_from_proof(key, proof)
    if computed != root:
        raise IndexRootMismatch(expected=root, computed=computed)


def verify_absence(root: bytes, key: bytes, proof: IndexProof) -> None:
    """Check that no record names ``key`` under ``root``. Raises :class:`InvalidIndexProof`
    or :class:`IndexRootMismatch`."""
    if proof.leaf is not None and proof.leaf.key == key:
        raise InvalidIndexProof(
            f"the proof ends at key {key.hex()} with {proof.leaf.count} record(s): "
            "it proves membership"
        )
    computed = root_from_proof(key, proof)
    if computed != root:
        raise IndexRootMismatch(expected=root, computed=computed)
