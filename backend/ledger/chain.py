"""Ledger clients: the embedded chain persisted on disk, or any Ethereum JSON-RPC node.

Both are reached through one ``web3.Web3`` object and one signing account, so
everything above this module (anchoring, draws, the verifier) is the same for
both. The embedded chain is eth-tester's py-evm backend on a SQLite
key-value store in the data dir: created from genesis once, reopened on later
starts, so blocks, checkpoints and the deployed contract survive restarts.

Keys never appear in logs, responses or exceptions: ``LedgerKey`` hides its
secret from ``repr`` and only ``sign_transaction`` ever sees it.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import sqlite3
import stat
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from web3 import Web3
from web3.exceptions import ContractLogicError, TimeExhausted

from backend.config import Settings
from backend.errors import LedgerUnavailable
from backend.ledger.contract import ABI, BYTECODE, revert_from_exception
from backend.privatefiles import private_dir, private_file

# Importing eth_account (above) imports py_ecc, which raises the whole process's recursion
# limit to 100000: deeper than the C stack holds, so parsing a deeply nested JSON request
# body (json's C decoder recurses per level) crashes the process with SIGSEGV instead of
# raising RecursionError. Bring it back to what py-evm needs for the EVM's 1024 nested
# calls (it sets this itself when the embedded chain is imported), and no more.
EVM_RECURSION_LIMIT = 1024 * 12
sys.setrecursionlimit(min(sys.getrecursionlimit(), EVM_RECURSION_LIMIT))

KEY_FILE = "ledger-key.hex"
CHAIN_DB_FILE = "chain.sqlite3"
GENESIS_BALANCE = 10**24  # wei; the embedded chain has no other source of gas


class LedgerError(Exception):
    """The ledger refused or failed an operation (not a reachability problem)."""


class LedgerKey:
    """A signing key that never shows itself."""

    def __init__(self, private_key: bytes) -> None:
        self._account: LocalAccount = Account.from_key(private_key)

    @property
    def address(self) -> str:
        return self._account.address

    def sign_transaction(self, tx: dict[str, Any]) -> bytes:
        return bytes(self._account.sign_transaction(tx).raw_transaction)

    def sign_typed_data(self, full_message: dict[str, Any]) -> bytes:
        return bytes(self._account.sign_typed_data(full_message=full_message).signature)

    def __repr__(self) -> str:
        return f"LedgerKey(address={self.address})"

    __str__ = __repr__


def load_or_create_dev_key(data_dir: Path) -> LedgerKey:
    """The embedded chain's key: generated once, kept in the data dir with mode 0600."""
    path = data_dir / KEY_FILE
    private_dir(data_dir)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, 0o600)
    return LedgerKey(bytes.fromhex(path.read_text().strip()))


def load_node_key(settings: Settings) -> LedgerKey:
    if settings.ledger_keystore is not None:
        if settings.ledger_keystore_password is None:
            raise LedgerError("HM_LEDGER_KEYSTORE needs HM_LEDGER_KEYSTORE_PASSWORD")
        keyfile = json.loads(settings.ledger_keystore.read_text())
        try:
            raw = Account.decrypt(keyfile, settings.ledger_keystore_password.get_secret_value())
        except ValueError:
            raise LedgerError(
                f"cannot decrypt keystore {settings.ledger_keystore}: wrong password?"
            ) from None
        return LedgerKey(bytes(raw))
    if settings.ledger_key is not None:
        raw_hex = settings.ledger_key.get_secret_value().removeprefix("0x")
        try:
            return LedgerKey(bytes.fromhex(raw_hex))
        except ValueError:
            raise LedgerError("HM_LEDGER_KEY is not a 32-byte hex private key") from None
    raise LedgerError(
        "a JSON-RPC ledger needs a signing key: set HM_LEDGER_KEYSTORE (+ password) "
        "or HM_LEDGER_KEY"
    )


# --- the embedded chain --------------------------------------------------------


class _SQLiteKV:
    """py-evm key-value store on one SQLite table; batches are SQLite transactions."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL)")
        self._in_tx = False

    def get(self, key: bytes) -> bytes | None:
        row = self._conn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def set(self, key: bytes, value: bytes) -> None:
        self._conn.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))

    def delete(self, key: bytes) -> None:
        self._conn.execute("DELETE FROM kv WHERE k = ?", (key,))

    def is_empty(self) -> bool:
        return self._conn.execute("SELECT 1 FROM kv LIMIT 1").fetchone() is None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._in_tx:
            yield
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._in_tx = True
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")
        finally:
            self._in_tx = False

    def close(self) -> None:
        self._conn.close()


def _persistent_atomic_db(kv: _SQLiteKV) -> Any:
    from eth.db.atomic import AtomicDB
    from eth.db.backends.base import BaseDB

    class KVAdapter(BaseDB):
        def __getitem__(self, key: bytes) -> bytes:
            value = kv.get(key)
            if value is None:
                raise KeyError(key)
            return value

        def __setitem__(self, key: bytes, value: bytes) -> None:
            kv.set(key, value)

        def __delitem__(self, key: bytes) -> None:
            if kv.get(key) is None:
                raise KeyError(key)
            kv.delete(key)

        def _exists(self, key: bytes) -> bool:
            return kv.get(key) is not None

    class PersistentAtomicDB(AtomicDB):
        @contextmanager
        def atomic_batch(self) -> Iterator[Any]:
            with kv.transaction(), super().atomic_batch() as batch:
                yield batch

    return PersistentAtomicDB(KVAdapter())


def _tester_chain_class() -> Any:
    """The same chain class eth-tester builds in ``setup_tester_chain`` (Prague, PoS)."""
    from eth.chains.base import MiningChain
    from eth.vm.forks import PragueVM
    from eth_utils.toolz import assoc

    class PersistedTesterChain(MiningChain):
        chain_id = 131277322940537
        vm_configuration = ((0, PragueVM),)  # type: ignore[assignment]

        def create_header_from_parent(self, parent_header: Any, **header_params: Any) -> Any:
            return super().create_header_from_parent(
                parent_header, **assoc(header_params, "gas_limit", parent_header.gas_limit)
            )

        def get_transaction_builder(self) -> Any:
            return super().get_vm().get_transaction_builder()

    return PersistedTesterChain


def open_embedded_chain(data_dir: Path, key: LedgerKey) -> tuple[Any, _SQLiteKV]:
    """An eth-tester ``EthereumTester`` on the chain persisted in ``data_dir``."""
    from eth_keys import keys
    from eth_tester import EthereumTester, PyEVMBackend
    from eth_tester.backends.pyevm.main import (
        get_default_account_keys,
        get_default_genesis_params,
    )

    kv = _SQLiteKV(private_file(data_dir / CHAIN_DB_FILE))
    base_db = _persistent_atomic_db(kv)
    chain_class = _tester_chain_class()
    # Besides the service key, a few well-known eth-tester accounts are funded so
    # tests can act as "someone else"; none of them is an anchorer.
    account_keys = (keys.PrivateKey(key._account.key),) + tuple(get_default_account_keys(3))
    if kv.is_empty():
        genesis_state = {
            k.public_key.to_canonical_address(): {
                "balance": GENESIS_BALANCE,
                "nonce": 0,
                "code": b"",
                "storage": {},
            }
            for k in account_keys
        }
        chain = chain_class.from_genesis(base_db, get_default_genesis_params(), genesis_state)
    else:
        chain = chain_class(base_db)

    backend = PyEVMBackend.__new__(PyEVMBackend)
    backend.account_keys = account_keys
    backend.chain = chain
    tester = EthereumTester(backend=backend, auto_mine_transactions=True)
    return tester, kv


def _revert_bytes(exc: Exception) -> bytes | str:
    """The revert data behind eth-tester's TransactionFailed, or its message if it has none."""
    raw: Any = exc.args[0] if exc.args else b""
    if isinstance(raw, Exception):  # eth_estimateGas nests the py-evm Revert
        raw = raw.args[0] if raw.args else b""
    if isinstance(raw, str) and raw[:2] in ("b'", 'b"'):
        # eth_call gives str(Revert(data)), i.e. the repr of the revert bytes.
        try:
            literal = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return raw
        if isinstance(literal, bytes):
            return literal
    return raw if isinstance(raw, bytes | str) else str(raw)


def make_tester_provider(tester: Any, lock: threading.RLock | None = None) -> Any:
    """web3's EthereumTesterProvider that reports reverts the way JSON-RPC nodes do.

    Stock web3 turns eth-tester's ``TransactionFailed`` into an exception whose
    message is the repr of the revert bytes, so ``ContractCustomError`` never
    fires. Nodes (geth, anvil, Besu) answer ``eth_call`` and ``eth_estimateGas``
    with ``{"code": 3, "message": "execution reverted", "data": "0x..."}``;
    this provider does the same, so callers see one behaviour on every ledger.
    With ``lock``, one thread at a time touches py-evm.
    """
    from eth_tester.exceptions import TransactionFailed
    from web3.providers.eth_tester import EthereumTesterProvider

    guard = lock or threading.RLock()

    class Provider(EthereumTesterProvider):
        _REVERTING_METHODS = frozenset({"eth_call", "eth_estimateGas"})

        def make_request(self, method: Any, params: Any) -> Any:
            with guard:
                if method not in self._REVERTING_METHODS:
                    return super().make_request(method, params)
                namespace, _, endpoint = method.partition("_")
                assert self.api_endpoints is not None
                request_id = self._current_request_id
                self._current_request_id += 1
                try:
                    result = self.api_endpoints[namespace][endpoint](self.ethereum_tester, params)
                except TransactionFailed as exc:
                    raw = _revert_bytes(exc)
                    error: dict[str, Any] = {"code": 3, "message": "execution reverted"}
                    if isinstance(raw, bytes):
                        error["data"] = "0x" + raw.hex()
                    else:
                        error["message"] = f"execution reverted: {raw}"
                    return {"jsonrpc": "2.0", "id": request_id, "error": error}
                return {"jsonrpc": "2.0", "id": request_id, "result": result}

    return Provider(tester)


# --- the client ----------------------------------------------------------------


@dataclass(frozen=True)
class TxResult:
    tx_hash: str
    block_number: int
    gas_used: int
    logs: list[Any]


class LedgerClient:
    """A web3 connection, the signing key, and the MeteringLedger contract."""

    def __init__(
        self,
        w3: Web3,
        key: LedgerKey,
        *,
        embedded: bool,
        tester: Any = None,
        kv: _SQLiteKV | None = None,
        lock: threading.RLock | None = None,
        timeout_s: float = 30.0,
        priority_fee_wei: int = 10**9,
    ) -> None:
        self.w3 = w3
        self.key = key
        self.embedded = embedded
        self.tester = tester
        self._kv = kv
        self.lock = lock or threading.RLock()
        self.timeout_s = timeout_s
        self.priority_fee_wei = priority_fee_wei
        self.contract_address: str | None = None
        self._chain_id: int | None = None

    # connection -------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: Settings) -> LedgerClient:
        if settings.embedded_chain:
            key = load_or_create_dev_key(settings.data_dir)
            tester, kv = open_embedded_chain(settings.data_dir, key)
            lock = threading.RLock()
            w3 = Web3(make_tester_provider(tester, lock))
            return cls(w3, key, embedded=True, tester=tester, kv=kv, lock=lock)
        assert settings.ledger_url is not None
        w3 = Web3(
            Web3.HTTPProvider(settings.ledger_url, request_kwargs={"timeout": 10})
        )
        return cls(
            w3,
            load_node_key(settings),
            embedded=False,
            timeout_s=settings.chain_poll_timeout_s,
            priority_fee_wei=settings.ledger_priority_fee_wei,
        )

    def close(self) -> None:
        if self._kv is not None:
            self._kv.close()
            self._kv = None

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self.guard(lambda: self.w3.eth.chain_id))
        return self._chain_id

    def is_up(self) -> bool:
        try:
            self.w3.eth.block_number  # noqa: B018
            return True
        except Exception:
            return False

    def block_number(self) -> int:
        return int(self.guard(lambda: self.w3.eth.block_number))

    def guard(self, fn: Any) -> Any:
        """Run ``fn`` (a ledger call); turn connection failures into LedgerUnavailable.

        Public: other modules (draws, anchoring) wrap their own web3 reads in it so a
        node that is down is one error everywhere, never a raw requests exception.
        """
        try:
            return fn()
        except (ContractLogicError, LedgerError):
            raise
        except (OSError, TimeExhausted) as exc:
            raise LedgerUnavailable(f"ledger unreachable: {type(exc).__name__}") from None
        except Exception as exc:
            if type(exc).__module__.startswith(("requests", "urllib3", "aiohttp")):
                raise LedgerUnavailable(f"ledger unreachable: {type(exc).__name__}") from None
            raise

    # contract ---------------------------------------------------------------

    def contract(self, address: str | None = None) -> Any:
        addr = address or self.contract_address
        if addr is None:
            raise LedgerError("no MeteringLedger contract address is known yet")
        return self.w3.eth.contract(address=Web3.to_checksum_address(addr), abi=ABI)

    def deploy(self, *, reveal_delay_blocks: int) -> str:
        return self.deploy_with_receipt(reveal_delay_blocks=reveal_delay_blocks)[0]

    def deploy_with_receipt(self, *, reveal_delay_blocks: int) -> tuple[str, TxResult]:
        """Deploy a MeteringLedger (this key becomes admin and anchorer); its address and tx."""

        factory = self.w3.eth.contract(abi=ABI, bytecode=BYTECODE)
        result = self.send(factory.constructor(reveal_delay_blocks))
        receipt = self.guard(lambda: self.w3.eth.get_transaction_receipt(HexStr(result.tx_hash)))
        address = receipt["contractAddress"]
        if not address:
            raise LedgerError(f"deployment transaction {result.tx_hash} created no contract")
        self.contract_address = Web3.to_checksum_address(address)
        return self.contract_address, result

    def has_code(self, address: str) -> bool:
        code = self.guard(lambda: self.w3.eth.get_code(Web3.to_checksum_address(address)))
        return len(code) > 0

    # transactions -----------------------------------------------------------

    def send(self, fn: Any, *, gas: int | None = None) -> TxResult:
        """Sign and send a contract call (or constructor); wait for its receipt.

        The call is first simulated so a revert surfaces as ``LedgerRevert``
        with the contract's custom error instead of a spent transaction.
        """
        sender = self.key.address
        with self.lock:
            if gas is None:
                try:
                    estimate = self.guard(lambda: fn.estimate_gas({"from": sender}))
                except ContractLogicError as exc:
                    raise _as_revert(exc) from None
                gas = int(estimate * 1.2) + 10_000
            nonce = self.guard(
                lambda: self.w3.eth.get_transaction_count(
                    Web3.to_checksum_address(sender), "pending"
                )
            )
            tx = fn.build_transaction(
                {
                    "from": sender,
                    "nonce": nonce,
                    "gas": gas,
                    "chainId": self.chain_id,
                    **self.fees(),
                }
            )
            raw = self.key.sign_transaction(tx)
            tx_hash = self.guard(lambda: self.w3.eth.send_raw_transaction(raw))
        receipt = self.wait_for_receipt(tx_hash)
        if receipt["status"] != 1:
            raise LedgerError(f"transaction {Web3.to_hex(tx_hash)} failed on chain")
        return TxResult(
            tx_hash=Web3.to_hex(tx_hash),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            logs=list(receipt["logs"]),
        )

    def fees(self) -> dict[str, int]:
        """Fee fields for the next transaction (EIP-1559, or legacy gasPrice on old chains)."""
        block = self.guard(lambda: self.w3.eth.get_block("latest"))
        tip = self.priority_fee_wei
        if "baseFeePerGas" not in block:
            # A chain without EIP-1559 (e.g. an old clique genesis): legacy pricing.
            return {"gasPrice": max(tip, int(self.guard(lambda: self.w3.eth.gas_price)))}
        base = int(block["baseFeePerGas"] or 0)
        return {"maxFeePerGas": base * 2 + tip, "maxPriorityFeePerGas": tip}

    def wait_for_receipt(self, tx_hash: Any) -> Any:
        return self.guard(
            lambda: self.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=self.timeout_s, poll_latency=0.05
            )
        )

    def call(self, fn: Any, block: Any = "latest") -> Any:
        try:
            return self.guard(lambda: fn.call({"from": self.key.address}, block_identifier=block))
        except ContractLogicError as exc:
            raise _as_revert(exc) from None

    # blocks -------------------------------------------------------------------

    def advance_to_block(self, target: int, *, timeout_s: float | None = None) -> int:
        """Make sure the chain's head is at least ``target``.

        The embedded chain mines empty blocks; a development node (anvil) is asked
        to mine; a real network is waited for.
        """
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.timeout_s)
        while True:
            head = self.block_number()
            if head >= target:
                return head
            if self.embedded:
                with self.lock:
                    self.tester.mine_blocks(target - head)
                continue
            mined = False
            with contextlib.suppress(Exception):
                resp = self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
                mined = "error" not in resp
            if mined:
                continue
            if time.monotonic() > deadline:
                raise LedgerUnavailable(
                    f"chain head {head} did not reach block {target} in time"
                )
            time.sleep(0.5)


def _as_revert(exc: ContractLogicError) -> Exception:
    """The contract's custom error as LedgerRevert, else a LedgerError with the node's words."""

    revert = revert_from_exception(exc)
    if revert is not None:
        return revert
    return LedgerError(f"contract call reverted: {exc}")
