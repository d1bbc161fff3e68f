"""``honest-metering deploy-contract`` and ``contract ...`` against a real node (anvil):
keystore signing, password sources, no secret ever echoed, a zero-gas-price network,
key rotation (add the new anchorer, remove the old) and the two-step admin transfer."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from backend.ledger import contract_cli
from tests.conftest import AnvilNode, anvil_command, free_port, require, wait_for_port
from tests.ledger.conftest import append_records, run_cli

PASSWORD = "keystore-pass-Ω-1234"
# anvil's well-known development accounts 1 and 2 (account 0 is tests.conftest.ANVIL_KEY).
KEY_B = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
KEY_C = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"

pytestmark = pytest.mark.anvil


def write_keystore(path: Path, key: str, password: str = PASSWORD) -> str:
    """An encrypted keystore (cheap KDF for test speed) with mode 0600; returns its address."""
    keyfile = Account.encrypt(key, password, kdf="pbkdf2", iterations=1000)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        import json

        json.dump(keyfile, f)
    return str(Account.from_key(key).address)


def env_for(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HM_")}
    env["HM_ENV"] = "test"
    env.update(values)
    return env


def deployed_address(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    found = re.fullmatch(r"HM_CONTRACT_ADDRESS=(0x[0-9a-fA-F]{40})", last)
    assert found, result.stdout
    return found.group(1)


def no_secrets(result: subprocess.CompletedProcess[str], *secrets: str) -> None:
    for secret in secrets:
        bare = secret.removeprefix("0x")
        assert bare not in result.stdout and bare not in result.stderr


class TestDeployContract:
    def test_refuses_without_a_key(self, anvil: AnvilNode) -> None:
        result = run_cli(["deploy-contract", "--ledger", anvil.url], env=env_for())
        assert result.returncode == 2
        assert "no signing key" in result.stderr and "--keystore" in result.stderr

    def test_refuses_without_a_ledger(self, tmp_path: Path) -> None:
        keystore = tmp_path / "key.json"
        write_keystore(keystore, KEY_B)
        result = run_cli(["deploy-contract", "--keystore", str(keystore)], env=env_for())
        assert result.returncode == 2 and "--ledger URL" in result.stderr

    def test_deploys_with_a_keystore_and_prints_the_setting(
        self, anvil: AnvilNode, tmp_path: Path
    ) -> None:
        keystore = tmp_path / "key.json"
        deployer = write_keystore(keystore, KEY_B)
        result = run_cli(
            ["deploy-contract", "--ledger", anvil.url, "--keystore", str(keystore)],
            env=env_for(HM_LEDGER_KEYSTORE_PASSWORD=PASSWORD),
        )
        address = deployed_address(result)
        assert deployer in result.stdout and "chain 31337" in result.stdout
        no_secrets(result, PASSWORD, KEY_B)

        status = run_cli(
            ["contract", "status", "--ledger", anvil.url, "--contract", address,
             "--check", deployer],
            env=env_for(),
        )
        assert status.returncode == 0, status.stderr
        assert f"admin: {deployer}" in status.stdout
        assert f"{deployer}: anchorer" in status.stdout

    def test_password_file_and_a_wrong_password(self, anvil: AnvilNode, tmp_path: Path) -> None:
        keystore = tmp_path / "key.json"
        write_keystore(keystore, KEY_B)
        wrong = tmp_path / "wrong.txt"
        wrong.write_text("not-the-password\n")
        wrong.chmod(0o600)
        result = run_cli(
            ["deploy-contract", "--ledger", anvil.url, "--keystore", str(keystore),
             "--password-file", str(wrong)],
            env=env_for(HM_LEDGER_KEYSTORE_PASSWORD=PASSWORD),  # the file wins over the env
        )
        assert result.returncode == 2 and "wrong password" in result.stderr
        no_secrets(result, "not-the-password", PASSWORD, KEY_B)

        right = tmp_path / "right.txt"
        right.write_text(PASSWORD + "\n")
        right.chmod(0o644)
        result = run_cli(
            ["deploy-contract", "--ledger", anvil.url, "--keystore", str(keystore),
             "--password-file", str(right)],
            env=env_for(),
        )
        deployed_address(result)
        assert "chmod 600" in result.stderr  # warned about the readable password file
        no_secrets(result, PASSWORD, KEY_B)

    def test_without_a_password_and_no_terminal_it_says_how_to_give_one(
        self, anvil: AnvilNode, tmp_path: Path
    ) -> None:
        keystore = tmp_path / "key.json"
        write_keystore(keystore, KEY_B)
        result = run_cli(
            ["deploy-contract", "--ledger", anvil.url, "--keystore", str(keystore)],
            env=env_for(),
        )
        assert result.returncode == 2
        assert "--password-file" in result.stderr and "HM_LEDGER_KEYSTORE_PASSWORD" in result.stderr

    def test_prompts_for_the_password_in_a_terminal(
        self, anvil: AnvilNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        from backend.cli import build_parser

        keystore = tmp_path / "key.json"
        write_keystore(keystore, KEY_B)
        for name in list(os.environ):
            if name.startswith("HM_"):
                monkeypatch.delenv(name)
        prompts: list[str] = []
        monkeypatch.setattr(contract_cli.sys.stdin, "isatty", lambda: True)
        monkeypatch.setattr(
            contract_cli.getpass, "getpass", lambda prompt: prompts.append(prompt) or PASSWORD
        )
        args = build_parser().parse_args(
            ["deploy-contract", "--ledger", anvil.url, "--keystore", str(keystore)]
        )
        assert args.func(args) == 0
        assert len(prompts) == 1 and str(keystore) in prompts[0]
        out = capsys.readouterr()
        assert "HM_CONTRACT_ADDRESS=0x" in out.out and PASSWORD not in out.out + out.err


@pytest.fixture
def zero_gas_anvil() -> Iterator[str]:
    """anvil configured like a zero-gas-price consortium chain (base fee 0, no minimum tip)."""
    command = anvil_command()
    require(command is not None, "anvil not installed (run: npm ci)")
    assert command is not None
    port = free_port()
    proc = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port), "--silent",
         "--base-fee", "0", "--gas-price", "0", "--disable-min-priority-fee"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_zero_gas_price_network_needs_no_funds(zero_gas_anvil: str, tmp_path: Path) -> None:
    keystore = tmp_path / "key.json"
    fresh = "0x" + os.urandom(32).hex()  # an account nobody funded
    address = write_keystore(keystore, fresh)
    args = ["deploy-contract", "--ledger", zero_gas_anvil, "--keystore", str(keystore)]
    result = run_cli(args, env=env_for(HM_LEDGER_KEYSTORE_PASSWORD=PASSWORD))
    assert result.returncode == 2
    assert f"account {address} has 0 wei" in result.stderr
    assert "HM_LEDGER_PRIORITY_FEE_WEI=0" in result.stderr
    result = run_cli(
        args,
        env=env_for(HM_LEDGER_KEYSTORE_PASSWORD=PASSWORD, HM_LEDGER_PRIORITY_FEE_WEI="0"),
    )
    deployed_address(result)
    no_secrets(result, PASSWORD, fresh)


def test_key_rotation_and_admin_transfer(anvil: AnvilNode, tmp_path: Path) -> None:
    """The runbook of docs/operations.md: the service anchors with key A; B is added, the
    service switches to B and anchors; A is removed. Then admin goes A -> C in two steps."""
    from backend.context import AppContext
    from tests.conftest import make_settings

    key_a = anvil.key
    addr_a, addr_b, addr_c = (Account.from_key(k).address for k in (key_a, KEY_B, KEY_C))
    address = deployed_address(
        run_cli(["deploy-contract", "--ledger", anvil.url], env=env_for(HM_LEDGER_KEY=key_a))
    )
    data = tmp_path / "data"
    base = {
        "HM_DATA_DIR": str(data), "HM_LEDGER_URL": anvil.url, "HM_CONTRACT_ADDRESS": address,
        "HM_DEMO_ON_FIRST_START": "false",
    }
    ctx = AppContext.create(make_settings(data, anchor_enabled=False))
    try:
        append_records(ctx, 3)
        first = run_cli(["anchor", "--once"], env=env_for(**base, HM_LEDGER_KEY=key_a))
        assert first.returncode == 0 and "anchored checkpoint 0" in first.stdout, first.stderr

        def contract(*args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
            extra = {"HM_LEDGER_KEY": key} if key else {}
            return run_cli(["contract", *args], env=env_for(**base, **extra))

        assert contract("add-anchorer", addr_b, key=key_a).returncode == 0
        append_records(ctx, 2, start=3)
        second = run_cli(["anchor", "--once"], env=env_for(**base, HM_LEDGER_KEY=KEY_B))
        assert second.returncode == 0 and "anchored checkpoint 1" in second.stdout, second.stderr
        assert contract("remove-anchorer", addr_a, key=key_a).returncode == 0
        status = contract("status", "--check", addr_a, "--check", addr_b)
        assert f"{addr_a}: not an anchorer" in status.stdout
        assert f"{addr_b}: anchorer" in status.stdout
        assert "checkpoints: 2" in status.stdout

        # B is an anchorer, not the admin: the contract refuses, with its custom error.
        refused = contract("add-anchorer", addr_c, key=KEY_B)
        assert refused.returncode == 1
        assert "MeteringLedgerUnauthorizedAdmin" in refused.stderr
        assert contract("transfer-admin", addr_c, key=key_a).returncode == 0
        assert f"pending admin: {addr_c}" in contract("status").stdout
        wrong = contract("accept-admin", key=KEY_B)
        assert wrong.returncode == 1 and "MeteringLedgerUnauthorizedPendingAdmin" in wrong.stderr
        assert contract("accept-admin", key=KEY_C).returncode == 0
        final = contract("status").stdout
        assert f"admin: {addr_c}" in final and "pending admin: (none)" in final
    finally:
        ctx.close()
