"""The independent verifier: a real bundle verifies through the CLI using only the
bundle, the pinned trust root and the ledger; every one-byte change to the record, the
proof or the checkpoint is rejected with its reason; without a trust root nothing is
VERIFIED."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.app import create_app
from backend.ledger import merkle
from backend.ledger.anchoring import Anchorer
from backend.ledger.trustroot import TrustRoot, parse_trust_root
from backend.verification.bundle import verify_bundle
from tests.conftest import ROOT, AnvilNode, free_port, make_settings, require, start_anvil
from tests.ledger.conftest import append_records, run_cli, serve


@dataclass
class Anchored:
    kind: str
    bundle: dict[str, Any]
    ledger_url: str  # what a verifier uses: the service's /rpc, or the node
    pass_ledger: list[str]  # CLI arguments naming the ledger when the bundle does not
    trust_root: dict[str, Any]  # as served
    bundle_v2: dict[str, Any]
    base: str

    @property
    def root(self) -> TrustRoot:
        return parse_trust_root(self.trust_root)


@pytest.fixture(scope="module", params=["embedded", "anvil"])
def anchored(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Anchored]:
    """A served app with two checkpoints, and the bundle of one record (module-wide)."""
    tmp = tmp_path_factory.mktemp(f"verify-{request.param}")
    node: AnvilNode | None = None
    port = free_port()
    if request.param == "anvil":
        available = (ROOT / "node_modules" / ".bin" / "anvil").exists()
        require(available, "anvil not installed (run: npm ci)")
        node = start_anvil()
        settings = make_settings(
            tmp / "data", ledger_url=node.url, ledger_key=node.key, anchor_enabled=False
        )
    else:
        settings = make_settings(
            tmp / "data", anchor_enabled=False, public_base_url=f"http://127.0.0.1:{port}"
        )
    try:
        app = create_app(settings)
        with serve(app, port=port) as base:
            ctx = app.state.ctx
            recs = append_records(ctx, 5)
            Anchorer(ctx).run_once(force=True)
            append_records(ctx, 4, start=5)
            Anchorer(ctx).run_once(force=True)
            proof = f"{base}/api/records/{recs[2].record_id}/proof"
            bundle = httpx.get(proof).json()
            v2 = httpx.get(proof, params={"version": 2}).json()
            root = httpx.get(f"{base}/.well-known/honest-metering/trust-root.json").json()
            if node is None:
                yield Anchored("embedded", bundle, bundle["ledger_url"], [], root, v2, base)
            else:
                yield Anchored(
                    "anvil", bundle, node.url, ["--ledger", node.url], root, v2, base
                )
    finally:
        if node is not None:
            node.stop()


def _flip_hex(h: str, pos: int = -1) -> str:
    """Change one hex digit (one byte) of a 0x-hex or plain-hex string."""
    chars = list(h)
    i = pos if pos >= 0 else len(chars) + pos
    chars[i] = "1" if chars[i] != "1" else "2"
    return "".join(chars)


def _change_record_byte(b: dict[str, Any]) -> None:
    rec = b["record"]
    i = rec.index('"n":') + 4
    b["record"] = rec[:i] + str((int(rec[i]) + 1) % 10) + rec[i + 1 :]


MUTATIONS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "record byte": (_change_record_byte, "the record was changed"),
    "record id": (lambda b: b.update(record_id=_flip_hex(b["record_id"])), "not to its record id"),
    "leaf hash": (lambda b: b.update(leaf_hash=_flip_hex(b["leaf_hash"])), "is not the hash of"),
    "leaf index": (lambda b: b.update(leaf_index=b["leaf_index"] + 1), "leads to root"),
    "proof byte": (
        lambda b: b["inclusion_proof"].__setitem__(0, _flip_hex(b["inclusion_proof"][0], 5)),
        "not to the checkpoint's root",
    ),
    "proof truncated": (lambda b: b["inclusion_proof"].pop(), "inclusion proof is malformed"),
    "checkpoint root": (
        lambda b: b["checkpoint"].update(root=_flip_hex(b["checkpoint"]["root"])),
        "not to the checkpoint's root",
    ),
    "checkpoint tree size": (
        # The proof has the same shape for both sizes here: only the chain can tell.
        lambda b: b["checkpoint"].update(tree_size=b["checkpoint"]["tree_size"] + 1),
        "the contract's checkpoint 1 has tree size",
    ),
    "checkpoint index": (
        lambda b: b["checkpoint"].update(index=b["checkpoint"]["index"] - 1),
        "the contract's checkpoint 0 has tree size",
    ),
    "checkpoint block": (
        lambda b: b["checkpoint"].update(block_number=b["checkpoint"]["block_number"] + 1),
        "the contract's checkpoint 1 has block",
    ),
    "transaction hash": (
        lambda b: b["checkpoint"].update(
            transaction_hash=_flip_hex(b["checkpoint"]["transaction_hash"])
        ),
        "is not on chain",
    ),
    "chain id": (
        lambda b: b["checkpoint"].update(chain_id=b["checkpoint"]["chain_id"] + 1),
        "(pinned: chain",
    ),
    "contract address": (
        lambda b: b["checkpoint"].update(
            contract_address=_flip_hex(b["checkpoint"]["contract_address"], 10)
        ),
        "(pinned: contract",
    ),
}


class TestVerifyBundle:
    def test_genuine_bundle_verifies(self, anchored: Anchored) -> None:
        v = verify_bundle(anchored.bundle, trust_root=anchored.root, ledger_url=anchored.ledger_url)
        assert v.ok, v.render()
        assert [c.name for c in v.checks] == [
            "format",
            "record",
            "inclusion",
            "trust root",
            "signed checkpoint",
            "ledger",
            "checkpoint",
            "transaction",
            "contract",
        ]
        assert v.checks[4].status == "skipped"  # version 1: no signed checkpoint
        assert v.summary().startswith("VERIFIED")
        assert f"pinned by trust root {anchored.root.fingerprint}" in v.summary()

    def test_version_2_bundle_checks_the_signed_checkpoint(self, anchored: Anchored) -> None:
        b = anchored.bundle_v2
        assert b["version"] == 2 and b["signed_checkpoint"].count("\u2014 ") == 1
        v = verify_bundle(b, trust_root=anchored.root, ledger_url=anchored.ledger_url)
        assert v.ok, v.render()
        signed = next(c for c in v.checks if c.name == "signed checkpoint")
        assert signed.status == "ok", v.render()
        # Signed by another key: refused, naming the pinned key.
        from backend.ledger import checkpoint as cps
        from backend.ledger import note as notes

        head = cps.parse_checkpoint_text(notes.parse_note(b["signed_checkpoint"]).text)
        forger = notes.Signer.generate(head.origin)
        forged = {**b, "signed_checkpoint": cps.sign_checkpoint(head, forger).format()}
        v = verify_bundle(forged, trust_root=anchored.root, ledger_url=anchored.ledger_url)
        assert not v.ok and "not signed by the log key" in (v.reason or ""), v.render()
        # The genuine note with its size changed: the log key's signature no longer holds.
        tampered = b["signed_checkpoint"].replace(f"\n{head.size}\n", f"\n{head.size - 1}\n")
        v = verify_bundle(
            {**b, "signed_checkpoint": tampered}, trust_root=anchored.root,
            ledger_url=anchored.ledger_url,
        )
        assert not v.ok and "does not verify" in (v.reason or ""), v.render()

    def test_without_a_trust_root_nothing_is_verified(self, anchored: Anchored) -> None:
        v = verify_bundle(anchored.bundle, ledger_url=anchored.ledger_url)
        assert not v.ok and v.incomplete
        assert all(c.status == "ok" for c in v.checks[:-1]), v.render()
        assert "no trust root pinned" in (v.reason or "")
        assert v.summary().startswith("NOT VERIFIED (could not complete the check): no trust")

    @pytest.mark.parametrize("mutation", sorted(MUTATIONS))
    def test_one_changed_byte_is_rejected(self, anchored: Anchored, mutation: str) -> None:
        mutate, reason = MUTATIONS[mutation]
        b = copy.deepcopy(anchored.bundle)
        mutate(b)
        v = verify_bundle(b, trust_root=anchored.root, ledger_url=anchored.ledger_url)
        assert not v.ok
        assert not v.incomplete, v.render()
        assert reason in (v.reason or ""), v.render()
        assert v.summary().startswith("NOT VERIFIED")

    def test_self_consistent_forgery_is_caught_by_the_chain(self, anchored: Anchored) -> None:
        """A changed record with a recomputed hash, proof and root passes every offline
        check; only the anchored root exposes it."""
        b = copy.deepcopy(anchored.bundle)
        _change_record_byte(b)
        leaf = merkle.leaf_hash(b["record"].encode())
        size, index = b["checkpoint"]["tree_size"], b["leaf_index"]
        leaves = [merkle.leaf_hash(b"other %d" % i) for i in range(size)]
        leaves[index] = leaf
        sub = merkle.subtree_from_leaves(leaves)
        b.update(
            record_id=leaf.hex(),
            leaf_hash="0x" + leaf.hex(),
            inclusion_proof=["0x" + p.hex() for p in merkle.inclusion_proof(index, size, sub)],
        )
        b["checkpoint"]["root"] = "0x" + merkle.root_from_leaf_hashes(leaves).hex()
        v = verify_bundle(b, trust_root=anchored.root, ledger_url=anchored.ledger_url)
        assert [c.status for c in v.checks[:4]] == ["ok", "ok", "ok", "ok"]
        assert not v.ok and not v.incomplete
        assert "the contract's checkpoint 1 has root" in (v.reason or "")

    @pytest.mark.parametrize(
        ("change", "reason"),
        [
            (lambda b: b.update(version=3), "unsupported proof bundle version 3"),
            (lambda b: b.update(version=2), "signed_checkpoint is required in version 2"),
            (lambda b: b.update(format="something"), "not a proof bundle"),
            (lambda b: b.update(extra=1), "extra"),
            (lambda b: b.update(leaf_hash="0xzz"), "leaf_hash"),
        ],
        ids=["version", "v2-unsigned", "format", "unknown-field", "bad-hex"],
    )
    def test_unreadable_bundles_are_incomplete(
        self, anchored: Anchored, change: Callable[[dict[str, Any]], None], reason: str
    ) -> None:
        b = copy.deepcopy(anchored.bundle)
        change(b)
        v = verify_bundle(b, trust_root=anchored.root, ledger_url=anchored.ledger_url)
        assert not v.ok and v.incomplete
        assert reason in (v.reason or "")

    def test_unreachable_ledger_is_incomplete(self, anchored: Anchored) -> None:
        v = verify_bundle(
            anchored.bundle, trust_root=anchored.root, ledger_url=f"http://127.0.0.1:{free_port()}"
        )
        assert not v.ok and v.incomplete
        assert "cannot read the ledger" in (v.reason or "")
        assert v.summary().startswith("NOT VERIFIED (could not complete")
        # The verdict says what held without the chain, and that the anchor was not checked.
        v = verify_bundle(
            anchored.bundle_v2, trust_root=anchored.root,
            ledger_url=f"http://127.0.0.1:{free_port()}",
        )
        assert v.incomplete and not v.ok
        assert (
            "Checked offline: record, inclusion, trust root, signed checkpoint." in v.summary()
        ), v.render()
        assert "Not checked: the anchor on chain" in v.summary()


def _no_service_env(tmp: Path) -> dict[str, str]:
    """An environment whose service settings point nowhere: the verifier must not care."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("HM_")}
    env["HM_DATA_DIR"] = str(tmp / "no-such-data-dir")
    env["HM_DATABASE_URL"] = f"sqlite:///{tmp / 'no-such-dir' / 'db.sqlite3'}"
    return env


def _pin(anchored: Anchored, tmp_path: Path) -> list[str]:
    path = tmp_path / "trust-root.json"
    path.write_text(json.dumps(anchored.trust_root), "utf-8")
    return ["--trust-root", str(path)]


class TestVerifyCommand:
    def test_bundle_verifies_through_the_cli(self, anchored: Anchored, tmp_path: Path) -> None:
        path = tmp_path / "bundle.json"
        path.write_text(json.dumps(anchored.bundle, ensure_ascii=False), "utf-8")
        proc = run_cli(
            ["verify", str(path), *_pin(anchored, tmp_path), *anchored.pass_ledger],
            env=_no_service_env(tmp_path),
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "VERIFIED: record " + anchored.bundle["record_id"] in proc.stdout
        assert "[FAIL]" not in proc.stdout
        # It never touched the service's files.
        assert not (tmp_path / "no-such-data-dir").exists()
        assert not (tmp_path / "no-such-dir").exists()
        # The trust root by URL works too; without one the command refuses and says why.
        url = anchored.base + "/.well-known/honest-metering/trust-root.json"
        proc = run_cli(
            ["verify", str(path), "--trust-root", url, *anchored.pass_ledger],
            env=_no_service_env(tmp_path),
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        proc = run_cli(["verify", str(path), *anchored.pass_ledger], env=_no_service_env(tmp_path))
        assert proc.returncode == 2
        assert "VERIFIED:" not in proc.stdout.replace("NOT VERIFIED", "")
        assert "no trust root pinned" in proc.stdout
        bad = tmp_path / "bad-root.json"
        bad.write_text(json.dumps({**anchored.trust_root, "witness_quorum": 0, "version": 9}))
        proc = run_cli(
            ["verify", str(path), "--trust-root", str(bad), *anchored.pass_ledger],
            env=_no_service_env(tmp_path),
        )
        assert proc.returncode == 2 and "not signed by the log key" in proc.stderr

    def test_tampered_bundle_is_rejected_with_the_reason(
        self, anchored: Anchored, tmp_path: Path
    ) -> None:
        b = copy.deepcopy(anchored.bundle)
        _change_record_byte(b)
        path = tmp_path / "bundle.json"
        path.write_text(json.dumps(b, ensure_ascii=False), "utf-8")
        proc = run_cli(
            ["verify", str(path), "--json", *_pin(anchored, tmp_path), *anchored.pass_ledger],
            env=_no_service_env(tmp_path),
        )
        assert proc.returncode == 1, proc.stdout + proc.stderr
        out = json.loads(proc.stdout)
        assert out["verified"] is False
        assert "the record was changed" in out["reason"]

    def test_missing_file_and_missing_ledger(self, anchored: Anchored, tmp_path: Path) -> None:
        proc = run_cli(["verify", str(tmp_path / "nope.json")], env=_no_service_env(tmp_path))
        assert proc.returncode == 2
        assert "cannot read" in proc.stdout
        if anchored.kind == "anvil":
            # An external node is not named in the bundle: the user must say which.
            path = tmp_path / "bundle.json"
            path.write_text(json.dumps(anchored.bundle), "utf-8")
            proc = run_cli(
                ["verify", str(path), *_pin(anchored, tmp_path)], env=_no_service_env(tmp_path)
            )
            assert proc.returncode == 2
            assert "pass --ledger" in proc.stdout


def test_verifier_imports_no_database_code() -> None:
    code = (
        "import sys, backend.verification.bundle, backend.ledger.cli\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'sqlmodel', "
        "'alembic', 'psycopg') or m in ('backend.db', 'backend.context'))\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
