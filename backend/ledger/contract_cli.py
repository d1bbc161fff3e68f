"""Commands for the MeteringLedger contract on a real chain: ``deploy-contract`` and
``contract status|add-anchorer|remove-anchorer|transfer-admin|accept-admin``.

They sign with an encrypted keystore (``--keystore FILE`` or ``HM_LEDGER_KEYSTORE``)
whose password comes from ``--password-file``, ``HM_LEDGER_KEYSTORE_PASSWORD`` or
a prompt — in that order — or, on development nodes only, a raw ``HM_LEDGER_KEY``.
Without a key they refuse. Passwords and keys are never printed, not even in
errors; only addresses are.

The service itself never deploys on a node in production: an operator runs
``deploy-contract`` once and sets the ``HM_CONTRACT_ADDRESS`` line it prints.
"""

from __future__ import annotations

import argparse
import getpass
import json
import stat
import sys
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_REFUSED = 1  # the contract refused (not admin, not pending admin, ...)
EXIT_INCOMPLETE = 2  # no key, wrong password, ledger unreachable, bad arguments


class CommandError(Exception):
    """Stops a command with a message for the operator (never containing a secret)."""


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


def _warn_if_readable(path: Path, what: str) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if mode & 0o077:
        _err(
            f"warning: {what} {path} can be read by other users (mode {mode:04o}); "
            f"run: chmod 600 {path}"
        )


def read_password(args: argparse.Namespace, settings: Any, keystore: Path) -> str:
    """The keystore password: --password-file, HM_LEDGER_KEYSTORE_PASSWORD, or a prompt."""
    if getattr(args, "password_file", None) is not None:
        path: Path = args.password_file
        _warn_if_readable(path, "password file")
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot read the password file {path}: {exc.strerror}") from None
        return text.rstrip("\r\n")
    if settings.ledger_keystore_password is not None:
        return str(settings.ledger_keystore_password.get_secret_value())
    if sys.stdin.isatty():
        return getpass.getpass(f"password of keystore {keystore}: ")
    raise CommandError(
        f"keystore {keystore} needs its password: pass --password-file FILE, set "
        "HM_LEDGER_KEYSTORE_PASSWORD, or run the command in a terminal to be asked"
    )


def load_key(args: argparse.Namespace, settings: Any) -> Any:
    """The signing key from the keystore (or a development raw key); refuses without one."""
    from eth_account import Account

    from backend.ledger.chain import LedgerKey

    keystore: Path | None = getattr(args, "keystore", None) or settings.ledger_keystore
    if keystore is not None:
        _warn_if_readable(keystore, "keystore")
        try:
            keyfile = json.loads(keystore.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CommandError(f"cannot read the keystore {keystore}: {exc.strerror}") from None
        except ValueError:
            raise CommandError(f"{keystore} is not a JSON keystore file") from None
        password = read_password(args, settings, keystore)
        try:
            raw = Account.decrypt(keyfile, password)
        except ValueError:
            raise CommandError(
                f"cannot decrypt the keystore {keystore}: wrong password?"
            ) from None
        return LedgerKey(bytes(raw))
    if settings.ledger_key is not None:
        if settings.env == "production":
            raise CommandError(
                "HM_LEDGER_KEY (a raw key) is for development nodes; in production sign with "
                "an encrypted keystore: --keystore FILE"
            )
        from backend.ledger.chain import LedgerError, load_node_key

        try:
            return load_node_key(settings)
        except LedgerError as exc:
            raise CommandError(str(exc)) from None
    raise CommandError(
        "no signing key: pass --keystore FILE (an encrypted Ethereum keystore; its password "
        "from --password-file, HM_LEDGER_KEYSTORE_PASSWORD or a prompt), or set "
        "HM_LEDGER_KEYSTORE"
    )


def _ledger_url(args: argparse.Namespace, settings: Any) -> str:
    url = getattr(args, "ledger", None) or settings.ledger_url
    if not url:
        raise CommandError(
            "which chain? pass --ledger URL (the node's JSON-RPC URL) or set HM_LEDGER_URL; "
            "the embedded development chain deploys its contract by itself"
        )
    return str(url)


def open_client(args: argparse.Namespace, settings: Any, *, key: Any | None) -> Any:
    from web3 import Web3

    from backend.ledger.chain import LedgerClient, LedgerKey

    url = _ledger_url(args, settings)
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 10}))
    # Read-only commands still need an account object; a throwaway one never signs.
    signer = key if key is not None else LedgerKey(b"\x01" * 32)
    client = LedgerClient(
        w3,
        signer,
        embedded=False,
        timeout_s=settings.chain_poll_timeout_s,
        priority_fee_wei=settings.ledger_priority_fee_wei,
    )
    client.chain_id  # noqa: B018 - fail now, with a clear message, if the node is down
    return client


def _contract_address(args: argparse.Namespace, settings: Any) -> str:
    address = getattr(args, "contract", None) or settings.contract_address
    if not address:
        raise CommandError("which contract? pass --contract ADDRESS or set HM_CONTRACT_ADDRESS")
    return str(address)


def _check_funds(client: Any, gas: int) -> None:
    from web3 import Web3

    fees = client.fees()
    per_gas = int(fees.get("maxFeePerGas", fees.get("gasPrice", 0)))
    need = gas * per_gas
    if need == 0:
        return
    account = Web3.to_checksum_address(client.key.address)
    balance = int(client.guard(lambda: client.w3.eth.get_balance(account)))
    if balance < need:
        raise CommandError(
            f"account {client.key.address} has {balance} wei on chain {client.chain_id}, and "
            f"this transaction may cost up to {need} wei: fund the account, or on a "
            "zero-gas-price network set HM_LEDGER_PRIORITY_FEE_WEI=0"
        )


def _run(fn: Any) -> Any:
    """Run a command body; map failures to exit codes and messages without secrets."""
    from backend.errors import LedgerUnavailable
    from backend.ledger.chain import LedgerError
    from backend.ledger.contract import LedgerRevert

    try:
        return fn()
    except CommandError as exc:
        _err(f"error: {exc}")
        return EXIT_INCOMPLETE
    except LedgerUnavailable as exc:
        _err(f"error: the ledger is unreachable: {exc.detail}")
        return EXIT_INCOMPLETE
    except LedgerRevert as exc:
        _err(f"refused by the contract: {exc}")
        return EXIT_REFUSED
    except LedgerError as exc:
        _err(f"error: {exc}")
        return EXIT_INCOMPLETE


# --- deploy-contract -----------------------------------------------------------------------


def _deploy(args: argparse.Namespace) -> int:
    from backend.config import get_settings

    def body() -> int:
        settings = get_settings()
        _ledger_url(args, settings)  # before asking for a password
        key = load_key(args, settings)
        client = open_client(args, settings, key=key)
        from backend.ledger.contract import ABI, BYTECODE

        delay = args.reveal_delay_blocks or settings.draw_reveal_delay_blocks
        factory = client.w3.eth.contract(abi=ABI, bytecode=BYTECODE)
        gas = int(client.guard(lambda: factory.constructor(delay).estimate_gas(
            {"from": client.key.address}
        )))
        _check_funds(client, int(gas * 1.2) + 10_000)
        print(
            f"deploying MeteringLedger on chain {client.chain_id} from {client.key.address} "
            f"(draw reveal delay {delay} blocks)…",
            file=sys.stderr,
        )
        address, tx = client.deploy_with_receipt(reveal_delay_blocks=delay)
        print(f"deployed MeteringLedger at {address} on chain {client.chain_id}")
        print(f"  transaction {tx.tx_hash}, block {tx.block_number}, gas used {tx.gas_used}")
        print(f"  admin and first anchorer: {client.key.address}")
        print("set this in the service's environment:")
        print(f"HM_CONTRACT_ADDRESS={address}")
        return EXIT_OK

    return int(_run(body))


# --- contract ... ----------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    from backend.config import get_settings

    def body() -> int:
        settings = get_settings()
        client = open_client(args, settings, key=None)
        address = _contract_address(args, settings)
        if not client.has_code(address):
            raise CommandError(f"no contract code at {address} on chain {client.chain_id}")
        contract = client.contract(address)
        admin = client.call(contract.functions.admin())
        pending = client.call(contract.functions.pendingAdmin())
        count = int(client.call(contract.functions.checkpointCount()))
        delay = int(client.call(contract.functions.revealDelayBlocks()))
        print(f"MeteringLedger {contract.address} on chain {client.chain_id}")
        print(f"  admin: {admin}")
        print(f"  pending admin: {pending if int(pending, 16) else '(none)'}")
        print(f"  checkpoints: {count}")
        print(f"  draw reveal delay: {delay} blocks")
        for account in args.check or []:
            ok = bool(client.call(contract.functions.isAnchorer(account)))
            print(f"  {account}: {'anchorer' if ok else 'not an anchorer'}")
        return EXIT_OK

    return int(_run(body))


def _admin_call(function: str, *, takes_account: bool) -> Any:
    def command(args: argparse.Namespace) -> int:
        from backend.config import get_settings

        def body() -> int:
            from web3 import Web3

            settings = get_settings()
            _ledger_url(args, settings)  # before asking for a password
            address = _contract_address(args, settings)
            key = load_key(args, settings)
            client = open_client(args, settings, key=key)
            if not client.has_code(address):
                raise CommandError(f"no contract code at {address} on chain {client.chain_id}")
            contract = client.contract(address)
            params: list[Any] = []
            if takes_account:
                if not Web3.is_address(args.account):
                    raise CommandError(f"{args.account!r} is not an Ethereum address")
                params = [Web3.to_checksum_address(args.account)]
            fn = getattr(contract.functions, function)(*params)
            _check_funds(client, 200_000)
            tx = client.send(fn)
            print(
                f"{function}({', '.join(params)}) from {client.key.address}: "
                f"transaction {tx.tx_hash}, block {tx.block_number}"
            )
            return EXIT_OK

        return int(_run(body))

    return command


def _key_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--keystore",
        type=Path,
        metavar="FILE",
        help="encrypted Ethereum keystore (JSON) to sign with (default HM_LEDGER_KEYSTORE)",
    )
    p.add_argument(
        "--password-file",
        type=Path,
        metavar="FILE",
        help="file holding the keystore password (default HM_LEDGER_KEYSTORE_PASSWORD, "
        "else a prompt)",
    )


def _ledger_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ledger", metavar="URL", help="JSON-RPC URL of a node (default HM_LEDGER_URL)")


def _contract_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--contract", metavar="ADDRESS", help="the MeteringLedger (default HM_CONTRACT_ADDRESS)"
    )


def register(sub: Any) -> None:
    p = sub.add_parser(
        "deploy-contract",
        help="deploy the MeteringLedger contract on a node; prints HM_CONTRACT_ADDRESS",
        description="Deploy MeteringLedger on a JSON-RPC node, signed with a keystore; the "
        "signer becomes the contract's admin and first anchorer. Prints the address and the "
        "HM_CONTRACT_ADDRESS line to set (last line of output). Exit codes: 0 deployed, "
        "2 not done (no key, wrong password, node unreachable, no funds).",
    )
    _ledger_argument(p)
    _key_arguments(p)
    p.add_argument(
        "--reveal-delay-blocks",
        type=int,
        default=None,
        help="blocks between a draw's commitment and its reveal (default "
        "HM_DRAW_REVEAL_DELAY_BLOCKS)",
    )
    p.set_defaults(func=_deploy)

    p = sub.add_parser(
        "contract",
        help="inspect the MeteringLedger contract or change its roles (anchorers, admin)",
        description="Roles of the MeteringLedger contract. Key rotation: add-anchorer NEW, "
        "switch the service to NEW's keystore, then remove-anchorer OLD. Handing the admin "
        "role over is two steps: transfer-admin NEW by the admin, accept-admin by NEW. "
        "Exit codes: 0 done, 1 refused by the contract, 2 not done.",
    )
    csub = p.add_subparsers(dest="contract_command", required=True)
    c = csub.add_parser("status", help="admin, pending admin, checkpoints; --check ADDRESS")
    _ledger_argument(c)
    _contract_argument(c)
    c.add_argument(
        "--check", action="append", metavar="ADDRESS", help="say whether ADDRESS is an anchorer"
    )
    c.set_defaults(func=_status)
    for name, function, takes, text in (
        ("add-anchorer", "addAnchorer", True, "let ACCOUNT anchor checkpoints (admin only)"),
        ("remove-anchorer", "removeAnchorer", True, "stop ACCOUNT anchoring (admin only)"),
        ("transfer-admin", "transferAdmin", True, "offer the admin role to ACCOUNT (admin only)"),
        ("accept-admin", "acceptAdmin", False, "accept the admin role offered to this key"),
    ):
        c = csub.add_parser(name, help=text)
        if takes:
            c.add_argument("account", metavar="ACCOUNT")
        _ledger_argument(c)
        _contract_argument(c)
        _key_arguments(c)
        c.set_defaults(func=_admin_call(function, takes_account=takes))
