"""``POST /rpc``: the embedded chain served read-only as standard Ethereum JSON-RPC.

So that any Ethereum client (web3.py, the CLI verifier, a wallet, the browser)
can read the checkpoints without the service's files. Only read methods are
allowed; results are rendered in standard JSON-RPC form (quantities and byte
strings as 0x-hex). With an external node this endpoint is off: clients use
the node.

This module must never forward a method that changes the chain or signs.
"""

from __future__ import annotations

import ast
import json
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from web3 import Web3
from web3.exceptions import BlockNotFound, TransactionNotFound

from backend.deps import CtxDep
from backend.errors import DomainError, NotFound

logger = logging.getLogger("honest_metering.rpc")

router = APIRouter(tags=["ledger"])

MAX_BATCH = 100
CALL_GAS_CAP = 30_000_000
_BLOCK_TAGS = frozenset({"latest", "earliest", "pending", "safe", "finalized"})

# JSON-RPC 2.0 error codes
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
EXECUTION_REVERTED = 3


class RpcDisabled(NotFound):
    pass


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


# --- conversions -------------------------------------------------------------------


def to_rpc(value: Any) -> Any:
    """Python/web3 values -> standard JSON-RPC JSON (quantities and bytes as 0x-hex)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): to_rpc(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_rpc(v) for v in value]
    raise RpcError(INTERNAL_ERROR, f"cannot render a {type(value).__name__} as JSON-RPC")


def _block_id(value: Any) -> Any:
    if value is None:
        return "latest"
    if isinstance(value, str):
        if value in _BLOCK_TAGS:
            return value
        if value.startswith("0x"):
            if len(value) == 66:
                return value  # a block hash (EIP-1898 style)
            try:
                return int(value, 16)
            except ValueError:
                pass
    if isinstance(value, dict):
        if "blockHash" in value:
            return str(value["blockHash"])
        if "blockNumber" in value:
            return _block_id(value["blockNumber"])
    raise RpcError(INVALID_PARAMS, f"invalid block identifier {value!r}")


def _quantity(value: Any, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise RpcError(INVALID_PARAMS, f"{what} must be a 0x-hex quantity, got {value!r}")


def _param(params: list[Any], i: int, what: str, default: Any = ...) -> Any:
    if len(params) > i:
        return params[i]
    if default is ...:
        raise RpcError(INVALID_PARAMS, f"missing parameter {i}: {what}")
    return default


def _address(value: Any) -> Any:
    if not isinstance(value, str) or not Web3.is_address(value):
        raise RpcError(INVALID_PARAMS, f"invalid address {value!r}")
    return Web3.to_checksum_address(value)


def _revert_data(exc: Exception) -> bytes | None:
    """Revert bytes from web3's ``ContractLogicError`` (the provider reports them like a
    node) or from eth-tester's ``TransactionFailed("execution reverted: b'...'")``."""
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            pass
    for arg in exc.args:
        if isinstance(arg, bytes):
            return arg
        if isinstance(arg, str):
            text = arg.removeprefix("execution reverted: ")
            if text[:2] in ("b'", 'b"'):
                try:
                    lit = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    return None
                if isinstance(lit, bytes):
                    return lit
    return None


# --- methods -----------------------------------------------------------------------


def _get_block(w3: Web3, params: list[Any]) -> Any:
    block = _block_id(_param(params, 0, "block"))
    full = bool(_param(params, 1, "full transactions", False))
    try:
        return w3.eth.get_block(block, full_transactions=full)
    except BlockNotFound:
        return None


def _get_logs(w3: Web3, params: list[Any]) -> Any:
    flt = _param(params, 0, "filter")
    if not isinstance(flt, dict):
        raise RpcError(INVALID_PARAMS, "eth_getLogs needs a filter object")
    out: dict[str, Any] = {}
    if "blockHash" in flt:
        out["blockHash"] = flt["blockHash"]
    else:
        out["fromBlock"] = _block_id(flt.get("fromBlock", "latest"))
        out["toBlock"] = _block_id(flt.get("toBlock", "latest"))
    if flt.get("address") is not None:
        addr = flt["address"]
        out["address"] = [_address(a) for a in addr] if isinstance(addr, list) else _address(addr)
    if flt.get("topics") is not None:
        out["topics"] = flt["topics"]
    return w3.eth.get_logs(out)  # type: ignore[arg-type]


def _call(w3: Web3, params: list[Any]) -> Any:
    tx = _param(params, 0, "call object")
    if not isinstance(tx, dict) or "to" not in tx:
        raise RpcError(INVALID_PARAMS, "eth_call needs a call object with 'to'")
    call: dict[str, Any] = {"to": _address(tx["to"])}
    data = tx.get("data", tx.get("input"))
    if data is not None:
        call["data"] = data
    # A read: the sender, value and fees are dropped (no view here depends on them, and
    # an unfunded sender would fail on the embedded chain); gas is capped.
    gas = _quantity(tx["gas"], "gas") if tx.get("gas") is not None else CALL_GAS_CAP
    call["gas"] = min(gas, CALL_GAS_CAP)
    block = _block_id(_param(params, 1, "block", "latest"))
    try:
        return w3.eth.call(call, block)  # type: ignore[arg-type]
    except Exception as exc:
        data_bytes = _revert_data(exc)
        if data_bytes is not None or "revert" in str(exc).lower():
            raise RpcError(
                EXECUTION_REVERTED,
                "execution reverted",
                None if data_bytes is None else "0x" + data_bytes.hex(),
            ) from None
        raise


def _receipt(w3: Web3, params: list[Any]) -> Any:
    try:
        return w3.eth.get_transaction_receipt(_param(params, 0, "transaction hash"))
    except TransactionNotFound:
        return None


def _transaction(w3: Web3, params: list[Any]) -> Any:
    try:
        return w3.eth.get_transaction(_param(params, 0, "transaction hash"))
    except TransactionNotFound:
        return None


METHODS: dict[str, Callable[[Web3, list[Any]], Any]] = {
    "eth_chainId": lambda w3, p: w3.eth.chain_id,
    "net_version": lambda w3, p: str(w3.eth.chain_id),
    "web3_clientVersion": lambda w3, p: "honest-metering/embedded-chain (read-only)",
    "eth_syncing": lambda w3, p: False,
    "eth_blockNumber": lambda w3, p: w3.eth.block_number,
    "eth_getBlockByNumber": _get_block,
    "eth_getBlockByHash": _get_block,
    "eth_getTransactionReceipt": _receipt,
    "eth_getTransactionByHash": _transaction,
    "eth_getLogs": _get_logs,
    "eth_getCode": lambda w3, p: w3.eth.get_code(
        _address(_param(p, 0, "address")), _block_id(_param(p, 1, "block", "latest"))
    ),
    "eth_getBalance": lambda w3, p: w3.eth.get_balance(
        _address(_param(p, 0, "address")), _block_id(_param(p, 1, "block", "latest"))
    ),
    "eth_call": _call,
}


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(body: bytes) -> Any:
    """The request as RFC 8259 JSON: Python's parser also takes NaN and Infinity (and turns
    1e999 into inf), which no response could then echo back as the request's ``id``."""
    return json.loads(body, parse_float=_finite, parse_constant=_not_json)


def _error(req_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": req_id, "error": err}


def handle_one(w3: Web3, req: Any) -> dict[str, Any]:
    if not isinstance(req, dict) or req.get("jsonrpc") != "2.0" or "method" not in req:
        rid = req.get("id") if isinstance(req, dict) else None
        return _error(rid, INVALID_REQUEST, "invalid JSON-RPC 2.0 request")
    req_id = req.get("id")
    method = req["method"]
    params = req.get("params", [])
    if not isinstance(params, list):
        return _error(req_id, INVALID_PARAMS, "params must be an array")
    fn = METHODS.get(method) if isinstance(method, str) else None
    if fn is None:
        return _error(
            req_id,
            METHOD_NOT_FOUND,
            f"method {method!r} is not available: this endpoint serves the embedded chain "
            f"read-only ({', '.join(sorted(METHODS))})",
        )
    try:
        result = to_rpc(fn(w3, params))
    except RpcError as exc:
        return _error(req_id, exc.code, exc.message, exc.data)
    except DomainError as exc:
        return _error(req_id, INTERNAL_ERROR, exc.detail)
    except (ValueError, TypeError) as exc:
        return _error(req_id, INVALID_PARAMS, f"invalid params for {method}: {exc}")
    except Exception as exc:
        logger.exception("JSON-RPC %s failed", method)
        return _error(req_id, INTERNAL_ERROR, f"{method} failed: {type(exc).__name__}")
    return {"jsonrpc": "2.0", "id": req_id, "result": result}


@router.post(
    "/rpc",
    summary="Read-only Ethereum JSON-RPC for the embedded chain",
    description="Standard JSON-RPC 2.0 (single or batch). Allowed methods: "
    + ", ".join(sorted(METHODS))
    + ". Off (404) when the service uses an external node.",
)
async def rpc(request: Request, ctx: CtxDep) -> JSONResponse:
    if not ctx.settings.embedded_chain:
        raise RpcDisabled(
            "/rpc serves only the embedded chain; this service anchors on an external "
            "Ethereum node: read the checkpoints from that node"
        )
    try:
        payload = parse_json(await request.body())
    except Exception:
        return JSONResponse(_error(None, PARSE_ERROR, "request body is not valid JSON"))
    from starlette.concurrency import run_in_threadpool

    w3 = (await run_in_threadpool(ctx.require_ledger)).w3
    if isinstance(payload, list):
        if not payload or len(payload) > MAX_BATCH:
            return JSONResponse(
                _error(None, INVALID_REQUEST, f"a batch holds 1 to {MAX_BATCH} requests")
            )
        results = [await run_in_threadpool(handle_one, w3, r) for r in payload]
        return JSONResponse(results)
    return JSONResponse(await run_in_threadpool(handle_one, w3, payload))
