"""Ledger clients: the persisted embedded chain and a JSON-RPC node (anvil)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from backend.config import Settings
from backend.context import AppContext
from backend.ledger import merkle
from backend.ledger.chain import (
    KEY_FILE,
    LedgerClient,
    LedgerError,
    LedgerKey,
    load_node_key,
    load_or_create_dev_key,
)
from backend.ledger.contract import LedgerRevert
from tests.conftest import ROOT, make_settings

LEAVES = [merkle.leaf_hash(bytes([i])) for i in range(10)]


def anchor(client: LedgerClient, size: int, old: int = 0) -> None:
    root = merkle.root_from_leaf_hashes(LEAVES[:size])
    proof = (
        merkle.consistency_proof(old, size, merkle.subtree_from_leaves(LEAVES)) if old else []
    )
    client.send(client.contract().functions.anchor(size, root, proof))


class TestLedgerClient:
    def test_deploys_once_and_anchors(self, ledger_settings: Settings) -> None:
        ctx = AppContext.create(ledger_settings)
        try:
            client = ctx.ledger()
            address = client.contract_address
            anchor(client, 3)
            anchor(client, 7, old=3)
            c = client.contract()
            assert client.call(c.functions.checkpointCount()) == 2
            _, size, root, _, _ = client.call(c.functions.latestCheckpoint())
            assert (size, root) == (7, merkle.root_from_leaf_hashes(LEAVES[:7]))
        finally:
            ctx.close()
        # A second context on the same database and ledger reuses the contract.
        ctx2 = AppContext.create(ledger_settings)
        try:
            assert ctx2.ledger().contract_address == address
        finally:
            ctx2.close()

    def test_revert_is_decoded_with_arguments(self, ledger_settings: Settings) -> None:
        ctx = AppContext.create(ledger_settings)
        try:
            client = ctx.ledger()
            anchor(client, 5)
            with pytest.raises(LedgerRevert) as info:
                anchor(client, 4, old=0)
            assert info.value.name == "MeteringLedgerTreeNotGrown"
            assert info.value.arguments == {"previousSize": 5, "newSize": 4}
            # Nothing was sent: the failed anchor cost no transaction.
            assert client.call(client.contract().functions.checkpointCount()) == 1
        finally:
            ctx.close()

    def test_advance_to_block(self, ledger_settings: Settings) -> None:
        ctx = AppContext.create(ledger_settings)
        try:
            client = ctx.ledger()
            target = client.block_number() + 3
            assert client.advance_to_block(target) >= target
        finally:
            ctx.close()


RESTART_SCRIPT = """
import json, sys
from backend.context import AppContext
from backend.ledger import merkle
from tests.conftest import make_settings
from pathlib import Path

ctx = AppContext.create(make_settings(Path(sys.argv[1])))
client = ctx.ledger()
c = client.contract()
leaves = [merkle.leaf_hash(bytes([i])) for i in range(10)]
count = client.call(c.functions.checkpointCount())
if sys.argv[2] == "anchor":
    client.send(c.functions.anchor(4, merkle.root_from_leaf_hashes(leaves[:4]), []))
out = {
    "address": client.contract_address,
    "count": client.call(c.functions.checkpointCount()),
    "count_before": count,
    "block": client.block_number(),
    "sender": client.key.address,
}
ctx.close()
print(json.dumps(out))
"""


def _run(data_dir: Path, mode: str) -> dict:  # type: ignore[type-arg]
    proc = subprocess.run(
        [sys.executable, "-c", RESTART_SCRIPT, str(data_dir), mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("HM_")},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_embedded_chain_survives_a_restart(tmp_path: Path) -> None:
    first = _run(tmp_path, "anchor")
    assert first["count"] == 1
    second = _run(tmp_path, "read")
    assert second["address"] == first["address"]
    assert second["sender"] == first["sender"]
    assert second["count_before"] == 1
    assert second["block"] >= first["block"]


class TestKeys:
    def test_dev_key_is_created_once_with_mode_0600(self, tmp_path: Path) -> None:
        k1 = load_or_create_dev_key(tmp_path)
        k2 = load_or_create_dev_key(tmp_path)
        assert k1.address == k2.address
        assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600

    def test_dev_key_permissions_are_tightened(self, tmp_path: Path) -> None:
        load_or_create_dev_key(tmp_path)
        os.chmod(tmp_path / KEY_FILE, 0o644)
        load_or_create_dev_key(tmp_path)
        assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600

    def test_key_never_shows_itself(self, tmp_path: Path) -> None:
        key = load_or_create_dev_key(tmp_path)
        secret = (tmp_path / KEY_FILE).read_text().strip()
        assert secret not in repr(key) and secret not in str(key)
        assert key.address in repr(key)

    def test_keystore_is_decrypted(self, tmp_path: Path) -> None:
        acct = Account.create()
        path = tmp_path / "key.json"
        path.write_text(json.dumps(Account.encrypt(acct.key, "pw", iterations=2)))
        s = make_settings(
            tmp_path,
            ledger_url="http://127.0.0.1:1",
            ledger_keystore=path,
            ledger_keystore_password="pw",
        )
        assert load_node_key(s).address == acct.address

    def test_wrong_keystore_password_is_a_clear_error(self, tmp_path: Path) -> None:
        acct = Account.create()
        path = tmp_path / "key.json"
        path.write_text(json.dumps(Account.encrypt(acct.key, "pw", iterations=2)))
        s = make_settings(
            tmp_path,
            ledger_url="http://127.0.0.1:1",
            ledger_keystore=path,
            ledger_keystore_password="wrong",
        )
        with pytest.raises(LedgerError, match="wrong password"):
            load_node_key(s)

    def test_node_without_key_is_a_clear_error(self, tmp_path: Path) -> None:
        with pytest.raises(LedgerError, match="HM_LEDGER_KEY"):
            load_node_key(make_settings(tmp_path, ledger_url="http://127.0.0.1:1"))

    def test_malformed_raw_key_does_not_echo_it(self, tmp_path: Path) -> None:
        s = make_settings(tmp_path, ledger_url="http://127.0.0.1:1", ledger_key="not-a-key-zz")
        with pytest.raises(LedgerError) as info:
            load_node_key(s)
        assert "not-a-key-zz" not in str(info.value)

    def test_ledger_key_signs(self) -> None:
        acct = Account.create()
        key = LedgerKey(bytes(acct.key))
        assert key.address == acct.address


def test_production_refuses_missing_secrets(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="HM_SECRET_KEY"):
        Settings(env="production", data_dir=tmp_path)
