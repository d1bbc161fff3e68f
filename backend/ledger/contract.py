"""The MeteringLedger contract as Python sees it: ABI, bytecode, deployment, readable reverts.

Everything comes from the committed artifact ``contracts/build/MeteringLedger.json`` written
by ``scripts/compile_contracts.py``, so the ABI can never drift from the Solidity source
(``compile_contracts.py --check`` guards that).

This module must never compile Solidity, hold or read signing keys, or decide what to
anchor or when (that is the anchoring worker's job). It must never swallow a revert:
a revert either becomes a :class:`LedgerRevert` naming the contract's custom error and its
values, or the original web3 exception propagates.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode
from eth_typing import ChecksumAddress
from eth_utils import (
    abi_to_signature,
    function_signature_to_4byte_selector,
    get_abi_input_names,
    get_abi_input_types,
    to_checksum_address,
)
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.types import TxReceipt

CONTRACT_NAME = "MeteringLedger"
ARTIFACT_PATH = (
    Path(__file__).resolve().parents[2] / "contracts" / "build" / f"{CONTRACT_NAME}.json"
)

# Solidity's built-in revert payloads: require/revert strings and panics (overflow, ...).
_ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")
_PANIC_SELECTOR = bytes.fromhex("4e487b71")


class LedgerRevert(Exception):
    """A MeteringLedger call reverted with a known error.

    ``name`` is the Solidity error name (``MeteringLedgerSeedMismatch``, or ``Error`` /
    ``Panic`` for Solidity's built-ins), ``arguments`` maps each error parameter to its
    decoded value (``bytes`` for ``bytes32``, checksum ``str`` for addresses, ``int`` for
    integers), and ``data`` is the raw revert data. (``Exception.args`` is left alone.)
    """

    def __init__(self, name: str, arguments: dict[str, Any], *, data: bytes = b"") -> None:
        self.name = name
        self.arguments = arguments
        self.data = data
        shown = ", ".join(f"{k}={_show(v)}" for k, v in arguments.items())
        super().__init__(f"{name}({shown})")


def _show(value: Any) -> str:
    return "0x" + bytes(value).hex() if isinstance(value, bytes | bytearray) else str(value)


@cache
def load_artifact() -> dict[str, Any]:
    """The compiled contract: abi, bytecode, deployedBytecode, compiler, settings, ..."""
    try:
        text = ARTIFACT_PATH.read_text("utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"contract artifact {ARTIFACT_PATH} is missing; run "
            "`python scripts/compile_contracts.py` from a source checkout (the package must "
            "be used from a checkout or an editable install)"
        ) from None
    artifact: dict[str, Any] = json.loads(text)
    return artifact


ABI: list[dict[str, Any]] = load_artifact()["abi"]
BYTECODE: str = load_artifact()["bytecode"]


@cache
def _errors_by_selector() -> dict[bytes, tuple[str, list[str], list[str]]]:
    out: dict[bytes, tuple[str, list[str], list[str]]] = {}
    for item in ABI:
        if item.get("type") != "error":
            continue
        selector = function_signature_to_4byte_selector(abi_to_signature(item))  # type: ignore[arg-type]
        out[selector] = (
            item["name"],
            list(get_abi_input_names(item)),  # type: ignore[arg-type]
            list(get_abi_input_types(item)),  # type: ignore[arg-type]
        )
    out[_ERROR_STRING_SELECTOR] = ("Error", ["message"], ["string"])
    out[_PANIC_SELECTOR] = ("Panic", ["code"], ["uint256"])
    return out


def _as_bytes(data: bytes | str) -> bytes:
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    text = data.strip()
    try:
        return bytes.fromhex(text.removeprefix("0x").removeprefix("0X"))
    except ValueError:
        raise ValueError(f"revert data is not hex: {data!r}") from None


def decode_error(data: bytes | str) -> tuple[str, dict[str, Any]]:
    """Decode revert data (bytes or 0x-hex) into (error name, {parameter: value}).

    Knows the contract's custom errors plus Solidity's ``Error(string)`` and
    ``Panic(uint256)``. Raises ``ValueError`` for data that is none of these.
    """
    raw = _as_bytes(data)
    if len(raw) < 4:
        raise ValueError(f"revert data too short for an error selector: 0x{raw.hex()}")
    known = _errors_by_selector().get(raw[:4])
    if known is None:
        raise ValueError(
            f"unknown error selector 0x{raw[:4].hex()} (not in the {CONTRACT_NAME} ABI)"
        )
    name, names, types = known
    try:
        values = abi_decode(types, raw[4:])
    except Exception as exc:  # eth_abi raises several decoding error types
        raise ValueError(f"cannot decode {name} arguments from 0x{raw.hex()}: {exc}") from exc
    arguments = {
        n: to_checksum_address(v) if t == "address" else v
        for n, t, v in zip(names, types, values, strict=True)
    }
    return name, arguments


def revert_from_exception(exc: ContractLogicError) -> LedgerRevert | None:
    """The decoded :class:`LedgerRevert` behind a web3 revert exception, if its data decodes."""
    data = exc.data
    if isinstance(data, dict):  # some nodes nest it: {"data": "0x...", "message": ...}
        data = data.get("data")
    if not isinstance(data, bytes | str):
        return None
    try:
        name, arguments = decode_error(data)
    except ValueError:
        return None
    return LedgerRevert(name, arguments, data=_as_bytes(data))


def deploy(w3: Web3, *, sender: str, reveal_delay_blocks: int) -> ChecksumAddress:
    """Deploy a MeteringLedger from the node-managed account ``sender``; return its address."""
    factory = w3.eth.contract(abi=ABI, bytecode=BYTECODE)
    receipt = transact_or_raise(factory.constructor(reveal_delay_blocks), sender=sender)
    address = receipt["contractAddress"]
    if not address:
        tx = Web3.to_hex(receipt["transactionHash"])
        raise RuntimeError(f"deployment transaction {tx} created no contract")
    return to_checksum_address(address)


def ledger_contract(w3: Web3, address: str) -> Contract:
    """The deployed MeteringLedger at ``address``."""
    return w3.eth.contract(address=to_checksum_address(address), abi=ABI)


def call_or_raise(fn: Any, *, sender: str | None = None, block: Any = "latest") -> Any:
    """``fn.call(...)``, turning a decodable revert into :class:`LedgerRevert`."""
    tx = {"from": sender} if sender is not None else {}
    try:
        return fn.call(tx, block_identifier=block)
    except ContractLogicError as exc:
        revert = revert_from_exception(exc)
        if revert is None:
            raise
        raise revert from exc


def transact_or_raise(
    fn: Any, *, sender: str, gas: int | None = None, timeout: float = 120.0
) -> TxReceipt:
    """Send ``fn`` (a contract function or constructor) from the node-managed ``sender``.

    Waits for the receipt and returns it. Without ``gas`` the node estimates it, and a
    revert found while estimating becomes :class:`LedgerRevert`; so does a transaction
    mined with status 0 (its revert is reproduced with ``eth_call`` on the parent block's
    state, which is exact unless another transaction in the same block changed the outcome).
    """
    w3: Web3 = fn.w3
    tx_params: dict[str, Any] = {"from": sender}
    if gas is not None:
        tx_params["gas"] = gas
    try:
        tx_hash = fn.transact(tx_params)
    except ContractLogicError as exc:
        revert = revert_from_exception(exc)
        if revert is None:
            raise
        raise revert from exc
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout)
    if receipt["status"] != 1:
        tx = w3.eth.get_transaction(tx_hash)
        replay = {"from": sender, "to": tx.get("to"), "data": tx["input"], "gas": tx["gas"]}
        try:
            w3.eth.call(replay, block_identifier=receipt["blockNumber"] - 1)  # type: ignore[arg-type]
        except ContractLogicError as exc:
            revert = revert_from_exception(exc)
            if revert is not None:
                raise revert from exc
        raise RuntimeError(
            f"transaction {Web3.to_hex(tx_hash)} reverted in block {receipt['blockNumber']}"
        )
    return receipt
