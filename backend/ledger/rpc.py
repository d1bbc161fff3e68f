"""``POST /rpc``: the embedded chain served read-only as standard Ethereum JSON-RPC.

So that any Ethereum client (web3.py, the CLI verifier, a wallet, the browser)
can read the checkpoints without the service's files. Only read methods are
allowed; results are rendered in standard JSON-RPC form (quantities and byte
strings as 0x-hex). With an external node this endpoint is off: clients use
the node.

Two limits keep one client from taking the chain from everyone else (py-evm runs
under one lock, which the anchoring worker needs too):

- ``eth_getLogs`` scans at most ``MAX_LOG_BLOCK_RANGE`` blocks per call (the scan
  costs about 0.3 ms a block on a small machine) and returns at most
  ``MAX_LOG_RESULTS`` logs; a wider query is refused with EIP-1474's -32005 and a
  message in the words nodes use ("query exceeds max block range N"), which
  client libraries recognise and answer by paging. A ``blockHash`` query reads one
  block and is never refused for its range.
- Each client address may make ``HM_RPC_CALLS_PER_MINUTE`` calls a minute (a batch
  counts as its number of calls): a token bucket that holds a minute's calls and
  refills continuously. Refused requests get 429 with ``Retry-After`` in the
  service's one error shape and cost nothing. The buckets live in this process's
  memory, not in the database like the login limiter (backend/accounts/
  ratelimit.py): this endpoint exists only with the embedded chain, which one
  process serves (backend/ops/server.py refuses several workers on it), so a
  shared count would buy nothing and would cost a database write on every read.
  Memory is bounded: at most ``MAX_TRACKED_CLIENTS`` addresses are remembered, the
  least recently seen forgotten first (one idle for a minute has a full bucket, so
  forgetting it changes nothing). The address is ``request.client.host``: behind a
  reverse proxy run uvicorn with ``--proxy-headers --forwarded-allow-ips=<proxy>``.

This module must never forward a method that changes the chain or signs, and never
scan the chain or spend a client's budget without the limits above.
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
from typing import Any

from eth_typing import HexStr
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from web3 import Web3
from web3.exceptions import BlockNotFound, TransactionNotFound

from backend.context import AppContext
from backend.deps import CtxDep
from backend.errors import DomainError, NotFound, RateLimited, error_responses

logger = logging.getLogger("honest_metering.rpc")

router = APIRouter(tags=["ledger"])

MAX_BATCH = 100
CALL_GAS_CAP = 30_000_000
# eth_getLogs: blocks one call may scan (fromBlock..toBlock inclusive, after tags are
# resolved and toBlock is cut at the head), and logs one call may return.
MAX_LOG_BLOCK_RANGE = 5_000
MAX_LOG_RESULTS = 10_000
# Client addresses whose rate-limit buckets are remembered at once.
MAX_TRACKED_CLIENTS = 10_000
# The AppContext local (``ctx.local``) holding this process's RateLimiter.
RATE_LIMITER = "rpc.rate_limiter"
_BLOCK_TAGS = frozenset({"latest", "earliest", "pending", "safe", "finalized"})

# JSON-RPC 2.0 error codes
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
EXECUTION_REVERTED = 3
LIMIT_EXCEEDED = -32005  # EIP-1474


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


def validate_log_range(first: int, last: int) -> None:
    """Refuse an eth_getLogs query that would scan more than ``MAX_LOG_BLOCK_RANGE`` blocks."""
    span = last - first + 1
    if span > MAX_LOG_BLOCK_RANGE:
        raise RpcError(
            LIMIT_EXCEEDED,
            f"query exceeds max block range {MAX_LOG_BLOCK_RANGE}: blocks {first} to {last} "
            f"are {span} blocks; ask for at most {MAX_LOG_BLOCK_RANGE} blocks at a time, or "
            "for one block by blockHash",
            {"maxBlockRange": MAX_LOG_BLOCK_RANGE, "fromBlock": hex(first), "toBlock": hex(last)},
        )


def _get_logs(w3: Web3, params: list[Any]) -> Any:
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
        validate_log_range(first, last)
        asked = f"blocks {first} to {last}"
    out["fromBlock"], out["toBlock"] = first, last
    logs = w3.eth.get_logs(out)  # type: ignore[arg-type]
    if len(logs) > MAX_LOG_RESULTS:
        raise RpcError(
            LIMIT_EXCEEDED,
            f"query returned more than {MAX_LOG_RESULTS} results ({asked}): ask for a "
            "narrower block range or a narrower filter",
            {"maxResults": MAX_LOG_RESULTS},
        )
    return logs


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


# --- rate limit --------------------------------------------------------------------


class RateLimiter:
    """A token bucket per client address, in this process's memory.

    A bucket holds at most ``calls_per_minute`` calls and refills continuously at
    ``calls_per_minute`` a minute; a request takes as many as it makes calls. A bucket
    is kept as the one time at which it will be full again (the "generic cell rate"
    form of a token bucket), so a refill is arithmetic on that time and nothing runs
    in the background. ``clock`` (seconds, monotonic) is injectable so that tests need
    not sleep.
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
            self._full_at[client] = full_at if wait else after
            while len(self._full_at) > self.max_clients:
                self._full_at.popitem(last=False)
        return wait


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
        f"minute (a batch counts as its number of calls); try again in {retry} s",
        retry_after_s=retry,
    )
    return JSONResponse(
        err.to_dict(), status_code=err.status_code, headers={"Retry-After": str(retry)}
    )


# --- the endpoint ------------------------------------------------------------------


@router.post(
    "/rpc",
    summary="Read-only Ethereum JSON-RPC for the embedded chain",
    description="Standard JSON-RPC 2.0 (single or batch). Allowed methods: "
    + ", ".join(sorted(METHODS))
    + f". eth_getLogs scans at most {MAX_LOG_BLOCK_RANGE} blocks per call (-32005 beyond). "
    "Each client address may make HM_RPC_CALLS_PER_MINUTE calls a minute, a batch counting "
    "as its calls (429 with Retry-After beyond). Off (404) when the service uses an "
    "external node.",
    responses=error_responses(404, 429),
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
    max_batch = MAX_BATCH if limiter is None else min(MAX_BATCH, limiter.calls_per_minute)
    is_batch = isinstance(payload, list)
    batch_ok = is_batch and 0 < len(payload) <= max_batch
    if limiter is not None:
        # Every request costs at least one call, a malformed one too.
        client = request.client.host if request.client else "unknown"
        wait = limiter.take(client, len(payload) if batch_ok else 1)
        if wait:
            return _rate_limited(limiter, wait)
    if not parsed:
        return JSONResponse(_error(None, PARSE_ERROR, "request body is not valid JSON"))
    from starlette.concurrency import run_in_threadpool

    w3 = (await run_in_threadpool(ctx.require_ledger)).w3
    if is_batch:
        if not batch_ok:
            return JSONResponse(
                _error(None, INVALID_REQUEST, f"a batch holds 1 to {max_batch} requests")
            )
        results = [await run_in_threadpool(handle_one, w3, r) for r in payload]
        return JSONResponse(results)
    return JSONResponse(await run_in_threadpool(handle_one, w3, payload))
