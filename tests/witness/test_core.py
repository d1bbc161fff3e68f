"""The witness's add-checkpoint rules (c2sp.org/tlog-witness), in process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.ledger import checkpoint as cps
from backend.ledger import merkle
from backend.ledger import note as notes
from backend.ledger import trustroot as tr
from backend.ledger.checkpoint import format_request, parse_request
from backend.verification.checkpoints import compare
from backend.witness.core import Witness, WitnessState
from tests.ledger.conftest import run_cli

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


def test_two_signed_heads_of_one_size_prove_misbehaviour(tmp_path: Path) -> None:
    log_key = notes.Signer.generate(ORIGIN)
    w = notes.Signer.generate("notary.example/w1", notes.SIG_COSIGNATURE_V1)
    root = tr.sign(
        tr.TrustRootBody(
            version=1, issued_at="2026-12-03T00:00:00Z",
            log=tr.LogIdentity(origin=ORIGIN, key=log_key.verifier.vkey),
            ledger=tr.LedgerIdentity(
                chain_id=1, contract_address="0x" + "11" * 20, deployment_block=1
            ),
            witnesses=(tr.Witness(name=w.name, key=w.verifier.vkey),), witness_quorum=1,
        ),
        [log_key],
    )
    honest, forked = Log(log_key), Log(log_key, b"fork")
    a = cps.sign_checkpoint(honest.head(7), log_key)
    a = a.with_signatures([w.sign(a.text, timestamp=1_700_000_000)])
    b = cps.sign_checkpoint(forked.head(7), log_key)
    c = cps.sign_checkpoint(honest.head(9), log_key)
    result = compare([a.format(), b.format()], root)
    assert result.misbehaviour
    assert "PROOF OF MISBEHAVIOUR" in result.lines[-1] and "size 7" in result.lines[-1]
    assert "cosigned by notary.example/w1" in result.lines[0]
    assert not compare([a.format(), c.format()], root).misbehaviour
    stranger = cps.sign_checkpoint(forked.head(7), notes.Signer.generate(ORIGIN))
    with pytest.raises(notes.NoteError, match="checkpoint 2"):
        compare([a.format(), stranger.format()], root)
    # Through the command line.
    files = []
    for i, n in enumerate((a, b), start=1):
        files.append(tmp_path / f"cp{i}.txt")
        files[-1].write_text(n.format())
    root_file = tmp_path / "trust-root.json"
    root_file.write_text(json.dumps(root.to_json()))
    proc = run_cli(["verify", "--trust-root", str(root_file), "--checkpoints", *map(str, files)])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "PROOF OF MISBEHAVIOUR" in proc.stdout
    proc = run_cli(["verify", "--checkpoints", *map(str, files)])
    assert proc.returncode == 2 and "needs --trust-root" in proc.stderr
