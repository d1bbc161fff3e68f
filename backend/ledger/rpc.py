"""``POST /rpc``: the embedded chain served read-only as standard Ethereum JSON-RPC.

So that any Ethereum client (web3.py, the CLI verifier, a wallet, the browser)
can read the checkpoints without the service's files. Only read methods are
allowed; results are rendered in standard JSON-RPC form (quantities and byte
strings as 0x-hex). With an external node this endpoint is off: clients use
the node.

Public reads must never hold up anchoring or a draw, and must never run long:

- Every call runs in a read worker process on a snapshot of the chain
  (backend/ledger/reader.py), never in this process nor under the lock the
  anchoring worker and draws take. A call still running after
  ``HM_RPC_CALL_TIMEOUT_S`` is cut off (its worker is killed and replaced) and
  answered with -32005 naming the limit, like geth's ``RPCEVMTimeout``. At most
  ``reader.QUEUE_PER_WORKER`` requests per worker are admitted at once; more get
  503 ``RpcBusy`` with ``Retry-After`` at once.
- ``eth_call`` and ``eth_estimateGas`` may ask for at most ``HM_RPC_GAS_CAP`` gas
  (the cap when they name none), like geth's ``RPCGasCap``; more is refused with
  -32005 naming the cap, before anything runs.
- ``eth_getLogs`` scans at most ``MAX_LOG_BLOCK_RANGE`` blocks per call and returns
  at most ``MAX_LOG_RESULTS`` logs; a wider query is refused with EIP-1474's -32005
  and a message in the words nodes use ("query exceeds max block range N"), which
  client libraries recognise and answer by paging. A ``blockHash`` query reads one
  block and is never refused for its range.
- Each client address has a budget of ``HM_RPC_CALLS_PER_MINUTE`` calls a minute,
  charged by cost: a token bucket that holds a minute's calls and refills
  continuously. A cheap call costs one. ``eth_call``, ``eth_estimateGas`` and
  ``eth_getLogs`` first reserve their worst case (their gas limit at one call per
  ``GAS_PER_CALL`` gas, the block range at one per ``BLOCKS_PER_CALL`` blocks, and
  the whole time limit at one per ``SECONDS_PER_CALL`` s), then are charged what
  they used (gas, blocks scanned or time in the worker, whichever costs more; at
  least one); the rest comes back. A call cut off is charged its reservation. A
  request (a batch reserves for all its calls) that the budget cannot cover gets
  429 with ``Retry-After`` in the service's one error shape and costs nothing. The
  buckets live in this process's memory, not in the database like the login
  limiter (backend/accounts/ratelimit.py): this endpoint exists only with the
  embedded chain, which one process serves (backend/ops/server.py refuses several
  workers on it), so a shared count would buy nothing and would cost a database
  write on every read. Memory is bounded: at most ``MAX_TRACKED_CLIENTS`` addresses
  are remembered, the least recently seen forgotten first (one idle for a minute
  has a full bucket, so forgetting it changes nothing). The address is
  ``request.client.host``: behind a reverse proxy run uvicorn with
  ``--proxy-headers --forwarded-allow-ips=<proxy>``.

This module must never forward a method that changes the chain or signs, never run
a call in the serving process, and never scan the chain or spend a client's budget
without the limits above.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eth_typing import HexStr
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from web3 import Web3
from web3.exceptions import BlockNotFound, TransactionNotFound

from backend.config import Settings
from backend.context import AppContext
from backend.deps import CtxDep
from backend.errors import DomainError, NotFound, RateLimited, ServiceUnavailable, error_responses
from backend.ledger.reader import QUEUE_PER_WORKER, ReadAborted, ReadLimits, ReadPool, Usage

logger = logging.getLogger("honest_metering.rpc")

router = APIRouter(tags=["ledger"])

MAX_BATCH = 100
# eth_getLogs: blocks one call may scan (fromBlock..toBlock inclusive, after tags are
# resolved and toBlock is cut at the head), and logs one call may return.
MAX_LOG_BLOCK_RANGE = 5_000
MAX_LOG_RESULTS = 10_000
# Client addresses whose rate-limit buckets are remembered at once.
MAX_TRACKED_CLIENTS = 10_000
# What a call costs in calls of the budget, beyond the one every call costs.
GAS_PER_CALL = 100_000  # eth_call / eth_estimateGas: gas (py-evm: ~0.1 s of cheap opcodes)
BLOCKS_PER_CALL = 100  # eth_getLogs: blocks scanned (~0.03 s)
SECONDS_PER_CALL = 0.1  # any of those: time in a read worker
# Methods that run the EVM (gas cap, reservation by gas).
EVM_METHODS = frozenset({"eth_call", "eth_estimateGas"})
# The AppContext locals (``ctx.local``) holding this process's RateLimiter and ReadPool.
RATE_LIMITER = "rpc.rate_limiter"
READ_POOL = "rpc.read_pool"
_BLOCK_TAGS = frozenset({"latest", "earliest", "pending", "safe", "finalized"})

# JSON-RPC 2.0 error codes
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
EXECUTION_REVERTED = 3
SERVER_ERROR = -32000  # what geth answers for "gas required exceeds allowance"
LIMIT_EXCEEDED = -32005  # EIP-1474


class RpcDisabled(NotFound):
    pass


class RpcBusy(ServiceUnavailable):
    """Every read worker is taken: retry in a second."""

    headers = {"Retry-After": "1"}


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


@dataclass
class Env:
    """The limits one call runs under, and what it used (filled in as it runs)."""

    limits: ReadLimits
    usage: Usage = field(default_factory=Usage)


def _get_block(w3: Web3, params: list[Any], env: Env) -> Any:
    block = _block_id(_param(params, 0, "block"))
    full = bool(_param(params, 1, "full transactions", False))
    try:
        return w3.eth.get_block(block, full_transactions=full)
    except BlockNotFound:
        return None


def _log_block(w3: Web3, value: Any, *, head: int, what: str) -> int:
    """A ``fromBlock``/``toBlock`` of eth_getLogs as a block number."""
    block = _block_id(value)
    if isinstance(block, int):
        return block
    if block == "earliest":
        return 0
    if block in ("latest", "pending"):
        return head
    if block in ("safe", "finalized"):
        return int(w3.eth.get_block(block)["number"])
    raise RpcError(
        INVALID_PARAMS,
        f"{what} must be a block number or tag, not a block hash: to read one block's logs "
        "by its hash, pass blockHash",
    )


def validate_log_range(first: int, last: int, *, max_range: int) -> None:
    """Refuse an eth_getLogs query that would scan more than ``max_range`` blocks."""
    span = last - first + 1
    if span > max_range:
        raise RpcError(
            LIMIT_EXCEEDED,
            f"query exceeds max block range {max_range}: blocks {first} to {last} "
            f"are {span} blocks; ask for at most {max_range} blocks at a time, or "
            "for one block by blockHash",
            {"maxBlockRange": max_range, "fromBlock": hex(first), "toBlock": hex(last)},
        )


def _get_logs(w3: Web3, params: list[Any], env: Env) -> Any:
    flt = _param(params, 0, "filter")
    if not isinstance(flt, dict):
        raise RpcError(INVALID_PARAMS, "eth_getLogs needs a filter object")
    out: dict[str, Any] = {}
    if flt.get("address") is not None:
        addr = flt["address"]
        out["address"] = [_address(a) for a in addr] if isinstance(addr, list) else _address(addr)
    if flt.get("topics") is not None:
        out["topics"] = flt["topics"]
    # Numbers, not tags or hashes, go to the chain: the range checked is the range scanned
    # even if a block is mined meanwhile, and eth-tester takes no blockHash filter.
    if "blockHash" in flt:
        block_hash = flt["blockHash"]
        if not (isinstance(block_hash, str) and len(block_hash) == 66):
            raise RpcError(
                INVALID_PARAMS, f"blockHash must be a 32-byte 0x-hex hash, got {block_hash!r}"
            )
        try:
            first = last = int(w3.eth.get_block(HexStr(block_hash))["number"])
        except BlockNotFound:
            raise RpcError(INVALID_PARAMS, f"unknown block {block_hash}") from None
        asked = f"block {block_hash}"
    else:
        # Past the head there is nothing to scan (and eth-tester would fail on the missing
        # block), as nodes do.
        head = int(w3.eth.block_number)
        first = _log_block(w3, flt.get("fromBlock", "latest"), head=head, what="fromBlock")
        last = min(_log_block(w3, flt.get("toBlock", "latest"), head=head, what="toBlock"), head)
        if first > last:
            return []
        validate_log_range(first, last, max_range=env.limits.max_log_block_range)
        asked = f"blocks {first} to {last}"
    out["fromBlock"], out["toBlock"] = first, last
    env.usage.blocks = last - first + 1
    logs = w3.eth.get_logs(out)  # type: ignore[arg-type]
    max_results = env.limits.max_log_results
    if len(logs) > max_results:
        raise RpcError(
            LIMIT_EXCEEDED,
            f"query returned more than {max_results} results ({asked}): ask for a "
            "narrower block range or a narrower filter",
            {"maxResults": max_results},
        )
    return logs


def asked_gas(tx: Any, *, gas_cap: int) -> int:
    """The gas an eth_call / eth_estimateGas call object asks for (the cap when it names
    none); refused with -32005 naming ``HM_RPC_GAS_CAP`` when it asks for more."""
    if not isinstance(tx, dict) or tx.get("gas") is None:
        return gas_cap
    gas = _quantity(tx["gas"], "gas")
    if gas > gas_cap:
        raise RpcError(
            LIMIT_EXCEEDED,
            f"gas {gas} exceeds the gas cap of this endpoint, {gas_cap} (HM_RPC_GAS_CAP): "
            f"ask for at most {gas_cap} gas, or name none",
            {"limit": "HM_RPC_GAS_CAP", "gasCap": hex(gas_cap), "gas": hex(gas)},
        )
    return gas


def _call_object(tx: Any, method: str, *, gas_cap: int) -> dict[str, Any]:
    if not isinstance(tx, dict) or "to" not in tx:
        raise RpcError(INVALID_PARAMS, f"{method} needs a call object with 'to'")
    call: dict[str, Any] = {"to": _address(tx["to"])}
    data = tx.get("data", tx.get("input"))
    if data is not None:
        call["data"] = data
    # A read: the sender, value and fees are dropped (no view here depends on them, and
    # an unfunded sender would fail on the embedded chain); gas is capped.
    call["gas"] = asked_gas(tx, gas_cap=gas_cap)
    return call


def _evm_failure(exc: Exception, *, gas: int, gas_cap: int) -> Exception:
    """A failed EVM call as the JSON-RPC error nodes give (revert, out of gas), else as is."""
    data_bytes = _revert_data(exc)
    if data_bytes is not None or "revert" in str(exc).lower():
        return RpcError(
            EXECUTION_REVERTED,
            "execution reverted",
            None if data_bytes is None else "0x" + data_bytes.hex(),
        )
    if "out of gas" in str(exc).lower() or type(exc).__name__ == "OutOfGas":
        return RpcError(
            SERVER_ERROR,
            f"gas required exceeds allowance ({gas}): the call ran out of gas"
            + (
                f" at the gas cap of this endpoint (HM_RPC_GAS_CAP = {gas_cap})"
                if gas >= gas_cap
                else ""
            ),
            {"limit": "HM_RPC_GAS_CAP", "gasCap": hex(gas_cap)} if gas >= gas_cap else None,
        )
    return exc


def _call(w3: Web3, params: list[Any], env: Env) -> Any:
    gas_cap = env.limits.gas_cap
    call = _call_object(_param(params, 0, "call object"), "eth_call", gas_cap=gas_cap)
    block = _block_id(_param(params, 1, "block", "latest"))
    try:
        return w3.eth.call(call, block)  # type: ignore[arg-type]
    except Exception as exc:
        failure = _evm_failure(exc, gas=call["gas"], gas_cap=gas_cap)
        if failure is exc:
            raise
        raise failure from None


def _estimate_gas(w3: Web3, params: list[Any], env: Env) -> Any:
    # The read worker runs the estimate on blocks whose gas limit is the gas asked for
    # (backend/ledger/reader.py), so the search stops there.
    gas_cap = env.limits.gas_cap
    call = _call_object(_param(params, 0, "call object"), "eth_estimateGas", gas_cap=gas_cap)
    block = _block_id(_param(params, 1, "block", "latest"))
    try:
        gas = int(w3.eth.estimate_gas(call, block))  # type: ignore[arg-type]
    except Exception as exc:
        failure = _evm_failure(exc, gas=call["gas"], gas_cap=gas_cap)
        if failure is exc:
            raise
        raise failure from None
    env.usage.gas = max(env.usage.gas, gas)
    return gas


def _receipt(w3: Web3, params: list[Any], env: Env) -> Any:
    try:
        return w3.eth.get_transaction_receipt(_param(params, 0, "transaction hash"))
    except TransactionNotFound:
        return None


def _transaction(w3: Web3, params: list[Any], env: Env) -> Any:
    try:
        return w3.eth.get_transaction(_param(params, 0, "transaction hash"))
    except TransactionNotFound:
        return None


METHODS: dict[str, Callable[[Web3, list[Any], Env], Any]] = {
    "eth_chainId": lambda w3, p, e: w3.eth.chain_id,
    "net_version": lambda w3, p, e: str(w3.eth.chain_id),
    "web3_clientVersion": lambda w3, p, e: "honest-metering/embedded-chain (read-only)",
    "eth_syncing": lambda w3, p, e: False,
    "eth_blockNumber": lambda w3, p, e: w3.eth.block_number,
    "eth_getBlockByNumber": _get_block,
    "eth_getBlockByHash": _get_block,
    "eth_getTransactionReceipt": _receipt,
    "eth_getTransactionByHash": _transaction,
    "eth_getLogs": _get_logs,
    "eth_getCode": lambda w3, p, e: w3.eth.get_code(
        _address(_param(p, 0, "address")), _block_id(_param(p, 1, "block", "latest"))
    ),
    "eth_getBalance": lambda w3, p, e: w3.eth.get_balance(
        _address(_param(p, 0, "address")), _block_id(_param(p, 1, "block", "latest"))
    ),
    "eth_call": _call,
    "eth_estimateGas": _estimate_gas,
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


def handle_one(
    w3: Web3, req: Any, *, limits: ReadLimits, usage: Usage | None = None
) -> dict[str, Any]:
    """Answer one call on ``w3`` (in a read worker: backend/ledger/reader.py)."""
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
        result = to_rpc(fn(w3, params, Env(limits, usage if usage is not None else Usage())))
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


# --- cost -------------------------------------------------------------------------


def _method(req: Any) -> Any:
    return req.get("method") if isinstance(req, dict) else None


def _block_number_or_none(value: Any) -> int | None:
    try:
        block = _block_id(value)
    except RpcError:
        return None
    return block if isinstance(block, int) else None


def _calls(seconds: float) -> int:
    return math.ceil(seconds / SECONDS_PER_CALL)


def reservation(req: Any, limits: ReadLimits) -> int:
    """The most one call may cost, in calls of the budget (reserved before it runs)."""
    method = _method(req)
    params = req.get("params") if isinstance(req, dict) else None
    first = params[0] if isinstance(params, list) and params else None
    if method in EVM_METHODS:
        try:
            gas = asked_gas(first, gas_cap=limits.gas_cap)
        except RpcError:
            return 1  # refused before it runs
        return max(1 + math.ceil(gas / GAS_PER_CALL), _calls(limits.timeout_s))
    if method == "eth_getLogs":
        blocks = limits.max_log_block_range
        if isinstance(first, dict):
            if "blockHash" in first:
                blocks = 1
            else:
                lo = _block_number_or_none(first.get("fromBlock", "latest"))
                hi = _block_number_or_none(first.get("toBlock", "latest"))
                if lo is not None and hi is not None:
                    blocks = max(1, min(hi - lo + 1, blocks))
        return max(1 + math.ceil(blocks / BLOCKS_PER_CALL), _calls(limits.timeout_s))
    return 1


def cost(req: Any, usage: Usage, *, reserved: int) -> int:
    """What one call cost, in calls of the budget: at least one; for the methods that
    run the EVM or scan blocks, the gas, blocks or time it used, whichever is more; a
    call cut off at the time limit, its whole reservation."""
    if usage.cut_off:
        return reserved
    method = _method(req)
    if method in EVM_METHODS or method == "eth_getLogs":
        return max(
            1 + usage.gas // GAS_PER_CALL,
            1 + usage.blocks // BLOCKS_PER_CALL,
            int(usage.seconds / SECONDS_PER_CALL),
        )
    return 1


# --- rate limit --------------------------------------------------------------------


class RateLimiter:
    """A token bucket per client address, in this process's memory.

    A bucket holds at most ``calls_per_minute`` calls and refills continuously at
    ``calls_per_minute`` a minute; a request takes what it may cost before it runs
    (:meth:`take`), and what it did not use is given back, or what it used beyond is
    taken, afterwards (:meth:`settle`). A bucket is kept as the one time at which it
    will be full again (the "generic cell rate" form of a token bucket), so a refill is
    arithmetic on that time and nothing runs in the background; a debt is that time
    further ahead. ``clock`` (seconds, monotonic) is injectable so that tests need not
    sleep.
    """

    def __init__(
        self,
        *,
        calls_per_minute: int,
        max_clients: int = MAX_TRACKED_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if calls_per_minute < 1 or max_clients < 1:
            raise ValueError("a rate limiter needs at least one call a minute and one client")
        self.calls_per_minute = calls_per_minute
        self.max_clients = max_clients
        self._interval_s = 60 / calls_per_minute  # one call's refill time
        self._clock = clock
        # client -> when its bucket is full again; least recently seen first.
        self._full_at: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._full_at)

    def _remember(self, client: str, full_at: float) -> None:
        self._full_at[client] = full_at
        while len(self._full_at) > self.max_clients:
            self._full_at.popitem(last=False)

    def take(self, client: str, calls: int) -> float:
        """Spend ``calls`` of ``client``'s budget and return 0, or spend nothing and return
        the seconds until the budget will allow them. ``calls`` must fit in a full bucket."""
        if not 1 <= calls <= self.calls_per_minute:
            raise ValueError(f"{calls} calls do not fit a bucket of {self.calls_per_minute}")
        now = self._clock()
        with self._lock:
            full_at = max(self._full_at.pop(client, now), now)
            after = full_at + calls * self._interval_s
            # Empty after this request when ``after`` is a whole bucket's refill away.
            wait = max(0.0, after - now - self.calls_per_minute * self._interval_s)
            self._remember(client, full_at if wait else after)
        return wait

    def available(self, client: str) -> float:
        """The calls ``client`` may spend now (negative while it owes)."""
        now = self._clock()
        with self._lock:
            full_at = max(self._full_at.get(client, now), now)
        return self.calls_per_minute - (full_at - now) / self._interval_s

    def settle(self, client: str, *, taken: int, used: int) -> None:
        """After a request that took ``taken`` calls: give back what it did not use, or
        take what it used beyond (the bucket may then owe calls, and refuses until the
        debt is refilled)."""
        if used == taken:
            return
        now = self._clock()
        with self._lock:
            full_at = self._full_at.pop(client, now) + (used - taken) * self._interval_s
            self._remember(client, max(full_at, now))


def _rate_limiter(ctx: AppContext) -> RateLimiter | None:
    per_minute = ctx.settings.rpc_calls_per_minute
    if not per_minute:
        return None
    limiter: RateLimiter = ctx.local(RATE_LIMITER, lambda: RateLimiter(calls_per_minute=per_minute))
    return limiter


def _rate_limited(limiter: RateLimiter, wait_s: float) -> JSONResponse:
    """429 in the service's one error shape, with ``Retry-After`` (as the other limits)."""
    retry = max(1, math.ceil(wait_s))
    err = RateLimited(
        f"too many JSON-RPC calls from this address: at most {limiter.calls_per_minute} a "
        "minute (a batch counts as its calls; eth_call, eth_estimateGas and eth_getLogs "
        f"count by the gas, blocks and time they use); try again in {retry} s",
        retry_after_s=retry,
    )
    return JSONResponse(
        err.to_dict(), status_code=err.status_code, headers={"Retry-After": str(retry)}
    )


# --- read workers ------------------------------------------------------------------


def read_limits(settings: Settings) -> ReadLimits:
    """The limits of a call now (module values are read at each call, so tests may
    change them)."""
    return ReadLimits(
        gas_cap=settings.rpc_gas_cap,
        timeout_s=settings.rpc_call_timeout_s,
        max_log_block_range=MAX_LOG_BLOCK_RANGE,
        max_log_results=MAX_LOG_RESULTS,
    )


def _read_pool(ctx: AppContext) -> ReadPool:
    """This process's read workers, started on first use (after the chain exists)."""
    from backend.ledger.chain import CHAIN_DB_FILE

    ctx.require_ledger()  # creates the chain (and deploys the contract) on first start
    pool: ReadPool = ctx.local(
        READ_POOL,
        lambda: ReadPool(
            chain_db=ctx.settings.data_dir / CHAIN_DB_FILE,
            workers=ctx.settings.rpc_read_workers,
        ),
    )
    return pool


def run_call(pool: ReadPool, req: Any, limits: ReadLimits) -> tuple[dict[str, Any], Usage]:
    """One call in a read worker; a call cut off or lost as a JSON-RPC error naming why."""
    req_id = req.get("id") if isinstance(req, dict) else None
    try:
        return pool.run(req, limits)
    except ReadAborted as exc:
        if exc.timed_out:
            method = _method(req)
            logger.warning("JSON-RPC %s cut off after %g s", method, limits.timeout_s)
            return _error(
                req_id,
                LIMIT_EXCEEDED,
                f"execution aborted (timeout = {limits.timeout_s:g}s): {method} ran longer "
                f"than this endpoint allows a call (HM_RPC_CALL_TIMEOUT_S = "
                f"{limits.timeout_s:g} s)",
                {"limit": "HM_RPC_CALL_TIMEOUT_S", "timeoutSeconds": limits.timeout_s},
            ), Usage(seconds=limits.timeout_s, cut_off=True)
        return _error(req_id, INTERNAL_ERROR, f"the call was not answered: {exc}"), Usage(
            cut_off=True
        )


# --- the endpoint ------------------------------------------------------------------


@router.post(
    "/rpc",
    summary="Read-only Ethereum JSON-RPC for the embedded chain",
    description="Standard JSON-RPC 2.0 (single or batch). Allowed methods: "
    + ", ".join(sorted(METHODS))
    + ". eth_call and eth_estimateGas may ask for at most HM_RPC_GAS_CAP gas, and each "
    "call is cut off after HM_RPC_CALL_TIMEOUT_S (-32005 naming the limit). "
    f"eth_getLogs scans at most {MAX_LOG_BLOCK_RANGE} blocks per call (-32005 beyond). "
    "Each client address may spend HM_RPC_CALLS_PER_MINUTE calls a minute, a batch "
    f"counting as its calls, eth_call / eth_estimateGas one more per {GAS_PER_CALL} gas, "
    f"eth_getLogs one more per {BLOCKS_PER_CALL} blocks, or one per "
    f"{SECONDS_PER_CALL:g} s they run (429 with Retry-After beyond). 503 RpcBusy with "
    "Retry-After when every read worker is taken. Off (404) when the service uses an "
    "external node.",
    responses=error_responses(404, 429, 503),
)
async def rpc(request: Request, ctx: CtxDep) -> JSONResponse:
    if not ctx.settings.embedded_chain:
        raise RpcDisabled(
            "/rpc serves only the embedded chain; this service anchors on an external "
            "Ethereum node: read the checkpoints from that node"
        )
    try:
        payload = parse_json(await request.body())
        parsed = True
    except Exception:
        payload, parsed = None, False
    limiter = _rate_limiter(ctx)
    limits = read_limits(ctx.settings)
    max_batch = MAX_BATCH if limiter is None else min(MAX_BATCH, limiter.calls_per_minute)
    is_batch = isinstance(payload, list)
    batch_ok = is_batch and 0 < len(payload) <= max_batch
    calls: list[Any] = payload if batch_ok else [payload]
    runs = parsed and (batch_ok or not is_batch)
    reserved = [reservation(c, limits) for c in calls] if runs else [1]
    client = request.client.host if request.client else "unknown"
    taken = 0
    if limiter is not None:
        # Every request costs at least one call, a malformed one too.
        taken = min(sum(reserved), limiter.calls_per_minute)
        wait = limiter.take(client, taken)
        if wait:
            return _rate_limited(limiter, wait)
    if not parsed:
        return JSONResponse(_error(None, PARSE_ERROR, "request body is not valid JSON"))
    if is_batch and not batch_ok:
        return JSONResponse(
            _error(None, INVALID_REQUEST, f"a batch holds 1 to {max_batch} requests")
        )
    from starlette.concurrency import run_in_threadpool

    pool = await run_in_threadpool(_read_pool, ctx)
    if not pool.admit():
        if limiter is not None:
            limiter.settle(client, taken=taken, used=1)
        raise RpcBusy(
            f"all {pool.workers} JSON-RPC read workers are taken (at most "
            f"{pool.workers * QUEUE_PER_WORKER} requests at once); retry in a second"
        )
    used = 0
    results: list[dict[str, Any]] = []
    try:
        for req, most in zip(calls, reserved, strict=True):
            answer, usage = await run_in_threadpool(run_call, pool, req, limits)
            results.append(answer)
            used += cost(req, usage, reserved=most)
    finally:
        pool.release()
        if limiter is not None:
            limiter.settle(client, taken=taken, used=max(used, 1))
    return JSONResponse(results if is_batch else results[0])
