"""The subject index (``backend/ledger/subject_index.py``): hashing against a naive
reference and hand-built vectors, proofs of membership and absence, and negative cases
made by mutating valid proofs."""

from __future__ import annotations

import ast
import hashlib
import random
from pathlib import Path

import pytest

from backend.ledger import subject_index as si
from backend.ledger.subject_index import (
    EMPTY,
    IndexLeaf,
    IndexProof,
    IndexRootMismatch,
    InvalidIndexProof,
    SubjectIndex,
    SubjectIndexError,
)

MODULE = Path(si.__file__)


def sha(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def reference_root(leaves: dict[bytes, tuple[int, bytes]], depth: int = 0) -> bytes:
    """The tree hash straight from the definition, written independently of the module."""
    if not leaves:
        return bytes(32)
    if len(leaves) == 1:
        ((key, (count, digest)),) = leaves.items()
        return sha(b"\x10", key, count.to_bytes(8, "big"), digest)
    zero = {k: v for k, v in leaves.items() if not (k[depth // 8] >> (7 - depth % 8)) & 1}
    one = {k: v for k, v in leaves.items() if k not in zero}
    return sha(b"\x11", reference_root(zero, depth + 1), reference_root(one, depth + 1))


def entries(n: int, seed: int = 1) -> dict[bytes, tuple[int, bytes]]:
    rng = random.Random(seed)
    return {
        si.subject_key(f"subject-{seed}-{i}"): (rng.randint(1, 9), rng.randbytes(32))
        for i in range(n)
    }


def build(leaves: dict[bytes, tuple[int, bytes]]) -> SubjectIndex:
    index = SubjectIndex()
    for key, (count, digest) in leaves.items():
        index.put(key, count, digest)
    return index


class TestHashing:
    def test_key_and_bit_order(self) -> None:
        assert si.subject_key("91511902MA62Q3T556") == sha(b"91511902MA62Q3T556")
        key = bytes([0b1010_0000]) + bytes(31)
        assert [si.bit(key, d) for d in range(4)] == [1, 0, 1, 0]
        assert si.bit(bytes(31) + b"\x01", 255) == 1

    def test_ids_digest_is_a_chain_in_log_order(self) -> None:
        a, b = sha(b"a"), sha(b"b")
        c1 = sha(b"\x12", bytes(32), a)
        assert si.ids_digest([a, b]) == (2, sha(b"\x12", c1, b))
        assert si.ids_digest([a.hex(), b.hex()]) == si.ids_digest([a, b])
        assert si.extend_ids_digest(si.ids_digest([a])[1], b) == si.ids_digest([a, b])[1]
        assert si.ids_digest([b, a]) != si.ids_digest([a, b])
        assert si.ids_digest([]) == (0, EMPTY)
        with pytest.raises(SubjectIndexError, match="32 bytes"):
            si.ids_digest([b"short"])

    def test_leaf_refuses_bad_shapes(self) -> None:
        for key, count, digest in [(bytes(31), 1, EMPTY), (EMPTY, 0, EMPTY), (EMPTY, 2**64, EMPTY)]:
            with pytest.raises(SubjectIndexError):
                si.leaf_hash(key, count, digest)

    def test_small_vectors(self) -> None:
        assert SubjectIndex().root() == EMPTY
        k1 = bytes([0x00]) + bytes(31)  # bit 0 = 0
        k2 = bytes([0x40]) + bytes(31)  # bit 0 = 0, bit 1 = 1
        k3 = bytes([0x80]) + bytes(31)  # bit 0 = 1
        d = sha(b"ids")
        l1, l2, l3 = (sha(b"\x10", k, (5).to_bytes(8, "big"), d) for k in (k1, k2, k3))
        assert build({k1: (5, d)}).root() == l1  # a lone leaf is the root
        # k1 and k2 part at bit 1: their pair sits under an empty right sibling at bit 0.
        assert build({k1: (5, d), k2: (5, d)}).root() == sha(
            b"\x11", sha(b"\x11", l1, l2), bytes(32)
        )
        assert build({k3: (5, d), k1: (5, d), k2: (5, d)}).root() == sha(
            b"\x11", sha(b"\x11", l1, l2), l3
        )

    @pytest.mark.parametrize("n", [0, 1, 2, 3, 17, 200])
    def test_incremental_bulk_and_reference_agree(self, n: int) -> None:
        leaves = entries(n, seed=n)
        want = reference_root(leaves)
        assert build(leaves).root() == want
        assert SubjectIndex.from_entries((k, c, d) for k, (c, d) in leaves.items()).root() == want
        shuffled = list(leaves.items())
        random.Random(7).shuffle(shuffled)
        assert build(dict(shuffled)).root() == want

    def test_updating_a_count_changes_the_root_as_a_rebuild_does(self) -> None:
        leaves = entries(50)
        index = build(leaves)
        key = next(iter(leaves))
        count, digest = leaves[key]
        new_digest = si.extend_ids_digest(digest, sha(b"another record"))
        index.put(key, count + 1, new_digest)
        leaves[key] = (count + 1, new_digest)
        assert index.root() == reference_root(leaves)
        assert len(index) == 50 and index.get(key) == IndexLeaf(key, count + 1, new_digest)


class TestProofs:
    leaves = entries(300, seed=3)
    index = build(leaves)
    root = index.root()

    def test_membership_of_every_subject(self) -> None:
        for key, (count, digest) in self.leaves.items():
            proof = self.index.prove(key)
            si.verify_membership(self.root, key, count, digest, proof)
            assert len(proof.siblings) <= 20  # about log2(300) + a few

    def test_absence_both_ways_a_path_can_end(self) -> None:
        ends = {"empty": 0, "other leaf": 0}
        for i in range(300):
            key = si.subject_key(f"nobody-{i}")
            proof = self.index.prove(key)
            si.verify_absence(self.root, key, proof)
            ends["empty" if proof.leaf is None else "other leaf"] += 1
        assert all(ends.values()), ends

    def test_empty_and_single_leaf_indexes(self) -> None:
        key = si.subject_key("91511902MA62Q3T556")
        si.verify_absence(EMPTY, key, SubjectIndex().prove(key))
        one = build({key: (3, sha(b"x"))})
        other = si.subject_key("92511923MA6A1B2C3M")
        si.verify_absence(one.root(), other, one.prove(other))
        si.verify_membership(one.root(), key, 3, sha(b"x"), one.prove(key))

    def test_json_round_trip(self) -> None:
        for key in [next(iter(self.leaves)), si.subject_key("nobody")]:
            proof = self.index.prove(key)
            assert IndexProof.from_json(proof.to_json()) == proof

    # -- negative cases: mutate a valid proof -------------------------------------------

    def _member(self) -> tuple[bytes, int, bytes, IndexProof]:
        key = sorted(self.leaves)[123]
        count, digest = self.leaves[key]
        return key, count, digest, self.index.prove(key)

    def test_withheld_or_added_record_is_caught(self) -> None:
        key, count, digest, proof = self._member()
        for c in (count - 1, count + 1):
            with pytest.raises(InvalidIndexProof, match=f"{count} record"):
                si.verify_membership(self.root, key, c, digest, proof)
        with pytest.raises(InvalidIndexProof):
            si.verify_membership(self.root, key, count, si.extend_ids_digest(digest, EMPTY), proof)

    def test_forged_leaf_count_is_caught_by_the_root(self) -> None:
        key, count, digest, proof = self._member()
        assert proof.leaf is not None
        forged = IndexProof(proof.siblings, IndexLeaf(key, count - 1 or 2, digest))
        with pytest.raises(IndexRootMismatch) as err:
            si.verify_membership(self.root, key, forged.leaf.count, digest, forged)  # type: ignore[union-attr]
        assert err.value.expected == self.root and err.value.computed != self.root

    @pytest.mark.parametrize("where", ["first", "middle", "last"])
    def test_flipped_bit_in_a_sibling(self, where: str) -> None:
        key, count, digest, proof = self._member()
        i = {"first": 0, "middle": len(proof.siblings) // 2, "last": len(proof.siblings) - 1}[
            where
        ]
        s = bytearray(proof.siblings[i])
        s[5] ^= 0x04
        bad = IndexProof(proof.siblings[:i] + (bytes(s),) + proof.siblings[i + 1 :], proof.leaf)
        with pytest.raises(IndexRootMismatch):
            si.verify_membership(self.root, key, count, digest, bad)

    def test_truncated_extended_and_reordered(self) -> None:
        key, count, digest, proof = self._member()
        for siblings in (
            proof.siblings[:-1],
            proof.siblings[1:],
            proof.siblings + (sha(b"extra"),),
            (sha(b"extra"),) + proof.siblings,
            tuple(reversed(proof.siblings)),
        ):
            bad = IndexProof(siblings, proof.leaf)
            with pytest.raises((InvalidIndexProof, IndexRootMismatch)):
                si.verify_membership(self.root, key, count, digest, bad)

    def test_proof_of_another_subject_or_root(self) -> None:
        key, count, digest, proof = self._member()
        other = sorted(self.leaves)[124]
        with pytest.raises(InvalidIndexProof, match="proves absence"):
            si.verify_membership(self.root, other, count, digest, proof)
        with pytest.raises(IndexRootMismatch):
            si.verify_membership(sha(b"another root"), key, count, digest, proof)

    def test_membership_and_absence_cannot_stand_for_each_other(self) -> None:
        key, count, digest, proof = self._member()
        with pytest.raises(InvalidIndexProof, match="proves membership"):
            si.verify_absence(self.root, key, proof)
        absent = si.subject_key("nobody-1")
        with pytest.raises(InvalidIndexProof, match="proves absence"):
            si.verify_membership(self.root, absent, count, digest, self.index.prove(absent))
        # Hiding a present subject behind an empty end does not reach the root.
        with pytest.raises((InvalidIndexProof, IndexRootMismatch)):
            si.verify_absence(self.root, key, IndexProof(proof.siblings, None))

    def test_absence_proof_mutations(self) -> None:
        for i in range(40):
            key = si.subject_key(f"nobody-{i}")
            proof = self.index.prove(key)
            if proof.leaf is not None:
                break
        assert proof.leaf is not None
        # The neighbouring leaf is real; moving it off the key's path is refused.
        moved = bytes([proof.leaf.key[0] ^ 0x80]) + proof.leaf.key[1:]
        bad = IndexProof(proof.siblings, IndexLeaf(moved, proof.leaf.count, proof.leaf.digest))
        with pytest.raises(InvalidIndexProof, match="not on the path"):
            si.verify_absence(self.root, key, bad)
        with pytest.raises(IndexRootMismatch):
            si.verify_absence(self.root, key, IndexProof(proof.siblings, None))

    def test_malformed_shapes(self) -> None:
        key, count, digest, proof = self._member()
        with pytest.raises(InvalidIndexProof, match="never an empty"):
            si.root_from_proof(key, IndexProof(proof.siblings[:-1] + (EMPTY,), proof.leaf))
        with pytest.raises(InvalidIndexProof, match="at most 256"):
            si.root_from_proof(key, IndexProof((sha(b"s"),) * 257, None))
        with pytest.raises(InvalidIndexProof, match="32 bytes"):
            si.root_from_proof(key, IndexProof((b"short",), None))
        with pytest.raises(InvalidIndexProof, match="32 bytes"):
            si.root_from_proof(b"short", proof)

    @pytest.mark.parametrize(
        "data",
        [
            {},
            {"siblings": "ab", "leaf": None},
            {"siblings": ["AB" * 32], "leaf": None},
            {"siblings": ["ab" * 31], "leaf": None},
            {"siblings": [], "leaf": {"key": "ab" * 32, "count": "3", "ids_digest": "ab" * 32}},
            {"siblings": [], "leaf": {"key": "ab" * 32, "count": 3.0, "ids_digest": "ab" * 32}},
            {"siblings": [], "leaf": {"key": "ab" * 32, "count": 0, "ids_digest": "ab" * 32}},
            {"siblings": [], "leaf": {"key": "ab" * 32, "count": 3}},
            {"siblings": [], "leaf": "ab"},
        ],
    )
    def test_bad_json_refused(self, data: dict[str, object]) -> None:
        with pytest.raises(InvalidIndexProof, match="not a subject-index proof"):
            IndexProof.from_json(data)


def test_module_imports_only_hashlib() -> None:
    tree = ast.parse(MODULE.read_text(encoding="utf-8"))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert names <= {"hashlib", "__future__", "collections.abc"}, names
