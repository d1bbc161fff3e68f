"""The witness's add-checkpoint rules (c2sp.org/tlog-witness), in process."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.ledger import checkpoint as cps
from backend.ledger import merkle
from backend.ledger import note as notes
from backend.ledger.checkpoint import format_request, parse_request
from backend.witness.core import Witness, WitnessState

ORIGIN = "bazhong.example/log"


def leaves(n: int, tag: bytes = b"r") -> list[bytes]:
    return [merkle.leaf_hash(tag + b"%d" % i) for i in range(n)]


class Log:
    def __init__(self, key: notes.Signer, tag: bytes = b"r") -> None:
        self.key, self.tag = key, tag

    def head(self, size: int) -> cps.TreeHead:
        return cps.TreeHead(ORIGIN, size, merkle.root_from_leaf_hashes(leaves(size, self.tag)))

    def request(self, old: int, size: int) -> bytes:
        proof = (
            merkle.consistency_proof(old, size, merkle.subtree_from_leaves(leaves(size, self.tag)))
            if 0 < old < size
            else []
        )
        return format_request(old, proof, cps.sign_checkpoint(self.head(size), self.key).format())


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Witness, Log]:
    log_key = notes.Signer.generate(ORIGIN)
    w = Witness(
        key=notes.Signer.generate("notary.example/w1", notes.SIG_COSIGNATURE_V1),
        logs={ORIGIN: [log_key.verifier]},
        state=WitnessState(tmp_path / "w.sqlite3"),
        clock=lambda: 1_700_000_000,
    )
    return w, Log(log_key)


def test_cosigns_consistent_checkpoints(setup: tuple[Witness, Log]) -> None:
    w, log = setup
    a = w.add_checkpoint(log.request(0, 5))
    assert a.status == 200, a.body
    sig = notes.parse_signature_line(a.body)
    note = notes.Note(log.head(5).text, (sig,))
    assert notes.verified_by(note, [w.key.verifier]) == {w.key.verifier: 1_700_000_000}
    for old, new in [(5, 8), (8, 8), (8, 300)]:
        a = w.add_checkpoint(log.request(old, new))
        assert a.status == 200, (old, new, a.body)
    stored = w.state.latest(ORIGIN)
    assert stored is not None and stored[0] == 300
    assert stored[2].count("\u2014 ") == 2  # the log's signature and ours


def test_stale_fork_and_bad_requests(setup: tuple[Witness, Log]) -> None:
    w, log = setup
    assert w.add_checkpoint(log.request(0, 10)).status == 200
    stale = w.add_checkpoint(log.request(0, 12))
    assert (stale.status, stale.body, stale.content_type) == (409, "10\n", "text/x.tlog.size")
    # A fork: same keys, other records. From its own last size: 409; from ours: 422.
    fork = Log(log.key, b"fork")
    assert w.add_checkpoint(fork.request(5, 10)).status == 409
    same_size = w.add_checkpoint(fork.request(10, 10))
    assert same_size.status == 422 and "fork" in same_size.body
    bigger = w.add_checkpoint(fork.request(10, 12))
    assert bigger.status == 422 and "consistency proof does not hold" in bigger.body
    assert [r[3] for r in w.state.refused()] == [409, 409, 422, 422]
    # Unknown log, wrong key, bad shape, old > size, non-empty proof from 0.
    other = cps.sign_checkpoint(cps.TreeHead("other.example/log", 1, bytes(32)), log.key)
    assert w.add_checkpoint(format_request(0, [], other.format())).status == 404
    stranger = Log(notes.Signer.generate(ORIGIN))
    assert w.add_checkpoint(stranger.request(10, 12)).status == 403
    assert w.add_checkpoint(b"old 1\n\nnot a checkpoint\n").status == 400
    assert w.add_checkpoint(log.request(12, 11)).status == 400
    body = format_request(0, [bytes(32)], cps.sign_checkpoint(log.head(3), log.key).format())
    assert w.add_checkpoint(body).status == 409  # old 0 is not what it knows
    assert w.state.latest(ORIGIN)[0] == 10  # type: ignore[index]


def test_empty_tree_and_request_parsing(setup: tuple[Witness, Log]) -> None:
    w, log = setup
    empty = cps.TreeHead(ORIGIN, 0, bytes(32))
    bad = format_request(0, [], cps.sign_checkpoint(empty, log.key).format())
    assert w.add_checkpoint(bad).status == 422
    assert w.add_checkpoint(log.request(0, 0)).status == 200
    old, proof, text = parse_request(log.request(3, 7))
    assert old == 3 and len(proof) == 4 and text.startswith(ORIGIN)
    for body in (b"old 01\n\nx", b"new 1\n\nx", b"old 1\nxx\n\nx", b"old 1\n"):
        with pytest.raises(ValueError):
            parse_request(body)
