"""``POST /rpc`` cannot stall the chain (issue 15, severe).

Before: one anonymous ``eth_call`` of the BLAKE2F precompile (``0x…09``) with a large
``rounds`` ran for minutes in py-evm, in the serving process, holding the lock every
anchor and draw needs; a write made meanwhile stayed pending until it ended. Now every
public read runs in a read worker process on a snapshot of the chain (never under the
writer's lock), is cut off after ``HM_RPC_CALL_TIMEOUT_S`` (its worker killed), may ask
for at most ``HM_RPC_GAS_CAP`` gas, and is charged to its address's budget by cost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.config import Settings
from backend.context import AppContext
from backend.ledger import reader, rpc
from tests import factories
from tests.ledger.conftest import serve, wait_until

BLAKE2F = "0x0000000000000000000000000000000000000009"
GAS_CAP = 5_000_000  # the default


def blake2f_input(rounds: int) -> str:
    """EIP-152 input: rounds (4 bytes), h (64), m (128), t (16), final flag (1)."""
    return "0x" + rounds.to_bytes(4, "big").hex() + "00" * (64 + 128 + 16) + "01"


def call(method: str, params: list[Any] | None = None, id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "method": method, "params": params or []}


def blake2f_call(rounds: int, gas: int | None = None) -> dict[str, Any]:
    tx: dict[str, Any] = {"to": BLAKE2F, "data": blake2f_input(rounds)}
    if gas is not None:
        tx["gas"] = hex(gas)
    return call("eth_call", [tx, "latest"])


# At the default gas cap this call would run for minutes in py-evm (about 30,000 rounds
# a second here); it fits the cap with room for the intrinsic and calldata gas.
SLOW = blake2f_call(GAS_CAP - 100_000)


MODEXP = "0x0000000000000000000000000000000000000005"


def modexp_input() -> str:
    """EIP-198 input: lengths of base, exponent, modulus (32 bytes each), then them."""
    lengths = b"".join(n.to_bytes(32, "big") for n in (512, 32, 512))
    return "0x" + (lengths + b"\xff" * 512 + b"\xff" * 32 + b"\xff" * 512).hex()


def ctx_of(app: Any) -> AppContext:
    return app.state.ctx  # type: ignore[no-any-return]


class TestAnchoringNeverWaits:
    @pytest.fixture
    def service(self, settings: Settings) -> Iterator[tuple[str, AppContext]]:
        update = {"anchor_interval_s": 1.0, "rpc_call_timeout_s": 2.0, "rerate_enabled": False}
        app = create_app(settings.model_copy(update=update))
        with serve(app) as base:
            yield base, ctx_of(app)

    def test_blake2f_call_is_cut_off_and_a_write_is_anchored_meanwhile(
        self, service: tuple[str, AppContext]
    ) -> None:
        base, ctx = service
        with httpx.Client(base_url=base, timeout=600) as c:
            # The read workers are up (a first call starts them), as in a running service.
            assert c.post("/rpc", json=call("eth_blockNumber")).json()["result"]
        answer: dict[str, Any] = {}

        def slow_call() -> None:
            started = time.monotonic()
            with httpx.Client(base_url=base, timeout=600) as c:
                answer["response"] = c.post("/rpc", json=SLOW)
            answer["seconds"] = time.monotonic() - started

        thread = threading.Thread(target=slow_call)
        thread.start()
        time.sleep(0.5)  # the call is running
        written_at = time.monotonic()
        with httpx.Client(base_url=base, timeout=60) as c:
            resp = c.post("/api/merchants", json=factories.merchant_body())
            assert resp.status_code == 201, resp.text
            record_id = resp.json()["record_id"]
            # The usual interval (1 s here) plus generous room for a loaded machine.
            wait_until(
                lambda: c.get(f"/api/records/{record_id}").json()["anchor_status"]["status"]
                == "anchored",
                timeout=1.0 + 20,
                what="the write to be anchored while the BLAKE2F call runs",
                interval=0.1,
            )
        anchored_after = time.monotonic() - written_at
        thread.join(2.0 + 30)
        assert not thread.is_alive(), "the BLAKE2F call was not cut off"
        resp = answer["response"]
        assert resp.status_code == 200
        err = resp.json()["error"]
        assert err["code"] == rpc.LIMIT_EXCEEDED == -32005
        assert err["message"].startswith("execution aborted (timeout = 2s)")
        assert "HM_RPC_CALL_TIMEOUT_S" in err["message"]
        assert err["data"] == {"limit": "HM_RPC_CALL_TIMEOUT_S", "timeoutSeconds": 2.0}
        assert answer["seconds"] < 2.0 + 20
        print(
            f"BLAKE2F call cut off after {answer['seconds']:.2f}s; the write was anchored "
            f"{anchored_after:.2f}s after it was made"
        )
        # A fresh worker replaced the one killed: reads go on.
        with httpx.Client(base_url=base, timeout=60) as c:
            assert c.post("/rpc", json=call("eth_blockNumber")).json()["result"]

    def test_reads_do_not_take_the_writers_lock(self, service: tuple[str, AppContext]) -> None:
        """The anchoring worker and draws hold ``ledger.lock`` while they write; a public
        read answers all the same (it used to wait for the lock)."""
        base, ctx = service
        ledger = ctx.ledger()
        with httpx.Client(base_url=base, timeout=60) as c:
            assert c.post("/rpc", json=call("eth_blockNumber")).json()["result"]
            with ledger.lock:
                started = time.monotonic()
                resp = c.post(
                    "/rpc",
                    json=[
                        call("eth_blockNumber", id=1),
                        call("eth_getCode", [ledger.contract_address, "latest"], id=2),
                        call("eth_call", [{"to": ledger.contract_address, "data": "0x"}], id=3),
                    ],
                    timeout=30,
                )
                answered = time.monotonic() - started
        assert resp.status_code == 200
        block, code, reverted = resp.json()
        assert int(block["result"], 16) >= 1
        assert len(code["result"]) > 2
        assert reverted["error"]["code"] == rpc.EXECUTION_REVERTED
        assert answered < 20


class TestGasCap:
    @pytest.fixture
    def client(self, settings: Settings) -> Iterator[TestClient]:
        app = create_app(settings.model_copy(update={"anchor_enabled": False}))
        with TestClient(app) as c:
            yield c

    def test_more_gas_than_the_cap_is_refused_before_anything_runs(
        self, client: TestClient
    ) -> None:
        started = time.monotonic()
        resp = client.post("/rpc", json=blake2f_call(30_000_000 - 100_000, gas=30_000_000))
        assert resp.status_code == 200
        err = resp.json()["error"]
        assert err["code"] == -32005
        assert err["message"].startswith(
            f"gas 30000000 exceeds the gas cap of this endpoint, {GAS_CAP} (HM_RPC_GAS_CAP)"
        )
        assert err["data"] == {
            "limit": "HM_RPC_GAS_CAP",
            "gasCap": hex(GAS_CAP),
            "gas": hex(30_000_000),
        }
        assert time.monotonic() - started < 30  # startup of the workers; nothing ran

    def test_estimate_gas_is_capped_too(self, client: TestClient) -> None:
        over = call("eth_estimateGas", [{"to": BLAKE2F, "data": "0x", "gas": hex(GAS_CAP + 1)}])
        err = client.post("/rpc", json=over).json()["error"]
        assert err["code"] == -32005 and "HM_RPC_GAS_CAP" in err["message"]
        # The search for an estimate stops at the cap: more rounds than the cap allows
        # run out of gas at once (the precompile charges before it computes).
        beyond = call("eth_estimateGas", [{"to": BLAKE2F, "data": blake2f_input(GAS_CAP * 2)}])
        started = time.monotonic()
        err = client.post("/rpc", json=beyond).json()["error"]
        assert err["code"] == rpc.SERVER_ERROR == -32000
        assert err["message"].startswith(f"gas required exceeds allowance ({GAS_CAP})")
        assert err["data"] == {"limit": "HM_RPC_GAS_CAP", "gasCap": hex(GAS_CAP)}
        assert time.monotonic() - started < 20
        small = call("eth_estimateGas", [{"to": BLAKE2F, "data": blake2f_input(12)}])
        assert int(client.post("/rpc", json=small).json()["result"], 16) > 21_000

    def test_the_cap_is_the_setting(self, settings: Settings) -> None:
        update = {"anchor_enabled": False, "rpc_gas_cap": 200_000}
        app = create_app(settings.model_copy(update=update))
        with TestClient(app) as c:
            err = c.post("/rpc", json=blake2f_call(12, gas=200_001)).json()["error"]
            assert err["data"]["gasCap"] == hex(200_000)
            assert c.post("/rpc", json=blake2f_call(12, gas=200_000)).json()["result"]


# --- charging by cost ------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def metered(settings: Settings) -> Iterator[tuple[TestClient, rpc.RateLimiter]]:
    """An app allowing 600 calls a minute per address, on a clock that stands still."""
    app = create_app(
        settings.model_copy(update={"anchor_enabled": False, "rpc_call_timeout_s": 1.0})
    )
    clock = Clock()
    with TestClient(app) as client:
        limiter = ctx_of(app).local(
            rpc.RATE_LIMITER, lambda: rpc.RateLimiter(calls_per_minute=600, clock=clock)
        )
        client.post("/rpc", json=call("eth_chainId"))  # start the read workers
        limiter.settle("testclient", taken=1, used=0)
        yield client, limiter


class TestChargedByCost:
    def test_a_cheap_call_costs_one(self, metered: tuple[TestClient, rpc.RateLimiter]) -> None:
        client, limiter = metered
        client.post("/rpc", json=call("eth_blockNumber"))
        assert limiter.available("testclient") == pytest.approx(599)

    def test_eth_call_reserves_its_worst_case_and_is_charged_what_it_used(
        self, metered: tuple[TestClient, rpc.RateLimiter]
    ) -> None:
        client, limiter = metered
        # Reserved: 1 + 5M / 100k = 51 calls; used: 12 rounds, a little time: 1.
        limits = rpc.read_limits(ctx_of(client.app).settings)
        assert rpc.reservation(blake2f_call(12), limits) == 51
        assert client.post("/rpc", json=blake2f_call(12)).json()["result"]
        assert limiter.available("testclient") == pytest.approx(599)
        # Refused over the cap: one call.
        client.post("/rpc", json=blake2f_call(12, gas=GAS_CAP + 1))
        assert limiter.available("testclient") == pytest.approx(598)

    def test_gas_used_is_charged(self, metered: tuple[TestClient, rpc.RateLimiter]) -> None:
        """MODEXP with 4096-bit operands: a few hundred thousand gas in milliseconds."""
        client, limiter = metered
        tx = {"to": MODEXP, "data": modexp_input()}
        gas = int(client.post("/rpc", json=call("eth_estimateGas", [tx])).json()["result"], 16)
        assert 300_000 < gas < 500_000
        limiter.settle("testclient", taken=600 - int(limiter.available("testclient")), used=0)
        assert client.post("/rpc", json=call("eth_call", [tx])).json()["result"]
        assert 600 - limiter.available("testclient") == pytest.approx(1 + gas // 100_000)

    def test_blocks_scanned_are_charged(
        self, metered: tuple[TestClient, rpc.RateLimiter], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        client, limiter = metered
        ctx_of(client.app).ledger().advance_to_block(9)
        monkeypatch.setattr(rpc, "BLOCKS_PER_CALL", 2)
        flt = {"fromBlock": "0x1", "toBlock": "0x9"}
        resp = client.post("/rpc", json=call("eth_getLogs", [flt]))
        assert isinstance(resp.json()["result"], list)
        assert 600 - limiter.available("testclient") == pytest.approx(1 + 9 // 2)

    def test_a_call_cut_off_is_charged_its_reservation(
        self, metered: tuple[TestClient, rpc.RateLimiter]
    ) -> None:
        client, limiter = metered
        err = client.post("/rpc", json=SLOW).json()["error"]
        assert err["data"]["limit"] == "HM_RPC_CALL_TIMEOUT_S"
        # No gas named: the cap. max(1 + 5M / 100k, 1 s / 0.1 s) = 51.
        assert 600 - limiter.available("testclient") == pytest.approx(51)

    def test_without_budget_for_the_reservation_the_call_is_refused(
        self, settings: Settings
    ) -> None:
        app = create_app(settings.model_copy(update={"anchor_enabled": False}))
        clock = Clock()
        with TestClient(app) as client:
            ctx_of(app).local(
                rpc.RATE_LIMITER, lambda: rpc.RateLimiter(calls_per_minute=60, clock=clock)
            )
            for i in range(15):
                assert client.post("/rpc", json=call("eth_chainId", id=i)).status_code == 200
            # 45 left; an eth_call reserves 51 (its gas) even though it would cost 1.
            resp = client.post("/rpc", json=blake2f_call(12))
            assert resp.status_code == 429, resp.text
            body = resp.json()
            assert body["error"] == "RateLimited"
            assert "count by the gas, blocks and time they use" in body["detail"]
            assert resp.headers["Retry-After"] == "6"
            # Naming a small gas limit reserves less: 1 + 1 for 100k gas, 50 for the time.
            clock.now += 6
            assert client.post("/rpc", json=blake2f_call(12, gas=100_000)).status_code == 200


class TestAdmission:
    def test_every_place_taken_is_503_with_retry_after(self, settings: Settings) -> None:
        update = {"anchor_enabled": False, "rpc_read_workers": 1}
        app = create_app(settings.model_copy(update=update))
        with TestClient(app) as client:
            assert client.post("/rpc", json=call("eth_chainId")).status_code == 200
            pool: reader.ReadPool = ctx_of(app).local(rpc.READ_POOL, lambda: None)  # type: ignore[arg-type,return-value]
            for _ in range(reader.QUEUE_PER_WORKER):
                assert pool.admit()
            try:
                resp = client.post("/rpc", json=call("eth_chainId"))
                assert resp.status_code == 503, resp.text
                assert resp.headers["Retry-After"] == "1"
                body = resp.json()
                assert body["error"] == "RpcBusy"
                assert f"at most {reader.QUEUE_PER_WORKER} requests at once" in body["detail"]
            finally:
                for _ in range(reader.QUEUE_PER_WORKER):
                    pool.release()
            assert client.post("/rpc", json=call("eth_chainId")).status_code == 200
