"""``POST /rpc`` against abuse: the eth_getLogs block range (and result count) is bounded,
and each client address has a call budget (429 with ``Retry-After`` beyond it).

Before these limits, ``eth_getLogs`` from block 0 to ``latest`` scanned the whole chain
under the lock every anchor needs, and nothing limited how often anyone could ask.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.config import Settings
from backend.context import AppContext
from backend.ledger import rpc
from backend.ledger.anchoring import Anchorer
from tests.ledger.conftest import append_records

LIMIT = 4  # the block range the getLogs tests allow


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def call(method: str, params: list[Any] | None = None, id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "method": method, "params": params or []}


def ctx_of(client: TestClient) -> AppContext:
    return client.app.state.ctx  # type: ignore[attr-defined,no-any-return]


def get_logs(client: TestClient, flt: dict[str, Any]) -> dict[str, Any]:
    resp = client.post("/rpc", json=call("eth_getLogs", [flt]))
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


# --- eth_getLogs ---------------------------------------------------------------------


@pytest.fixture
def chain(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, int]]:
    """An app whose getLogs range limit is ``LIMIT`` blocks, on a chain of 2 * LIMIT + 1
    blocks with one ``CheckpointAnchored`` log; yields the client and that log's block."""
    monkeypatch.setattr(rpc, "MAX_LOG_BLOCK_RANGE", LIMIT)
    app = create_app(settings.model_copy(update={"anchor_enabled": False}))
    with TestClient(app) as client:
        ctx = ctx_of(client)
        append_records(ctx, 2)
        Anchorer(ctx).run_once(force=True)
        ledger = ctx.ledger()
        anchored = ledger.block_number()
        ledger.advance_to_block(2 * LIMIT + 1)
        yield client, anchored


class TestGetLogsRange:
    def test_over_the_limit_is_refused_naming_limit_and_range(
        self, chain: tuple[TestClient, int]
    ) -> None:
        client, _ = chain
        body = get_logs(client, {"fromBlock": "0x1", "toBlock": hex(1 + LIMIT)})
        err = body["error"]
        assert err["code"] == rpc.LIMIT_EXCEEDED == -32005
        assert err["message"].startswith(f"query exceeds max block range {LIMIT}: ")
        assert f"blocks 1 to {1 + LIMIT} are {LIMIT + 1} blocks" in err["message"]
        assert err["data"] == {"maxBlockRange": LIMIT, "fromBlock": "0x1", "toBlock": "0x5"}

    def test_whole_chain_by_tags_is_refused(self, chain: tuple[TestClient, int]) -> None:
        client, _ = chain
        head = ctx_of(client).ledger().block_number()
        err = get_logs(client, {"fromBlock": "earliest", "toBlock": "latest"})["error"]
        assert err["code"] == -32005
        assert f"blocks 0 to {head} are {head + 1} blocks" in err["message"]

    def test_exactly_the_limit_is_accepted(self, chain: tuple[TestClient, int]) -> None:
        client, anchored = chain
        first, last = anchored - 1, anchored - 1 + LIMIT - 1
        body = get_logs(client, {"fromBlock": hex(first), "toBlock": hex(last)})
        assert "error" not in body, body
        # The same logs the chain itself has for those blocks (deployment and checkpoint).
        direct = ctx_of(client).ledger().w3.eth.get_logs({"fromBlock": first, "toBlock": last})
        assert [log["transactionHash"] for log in body["result"]] == [
            "0x" + bytes(log["transactionHash"]).hex() for log in direct
        ]
        assert hex(anchored) in {log["blockNumber"] for log in body["result"]}

    def test_range_past_the_head_is_cut_at_the_head(self, chain: tuple[TestClient, int]) -> None:
        """Bug: a toBlock past the head made eth-tester fail (-32603 BlockNotFound); a node
        answers with the logs up to its head."""
        client, _ = chain
        head = ctx_of(client).ledger().block_number()
        body = get_logs(client, {"fromBlock": hex(head - 1), "toBlock": hex(head + 10**6)})
        assert body.get("result") == [], body
        assert get_logs(client, {"fromBlock": hex(head + 1)}).get("result") == []

    def test_one_block_by_hash(self, chain: tuple[TestClient, int]) -> None:
        """Bug: eth-tester takes no blockHash filter, so every such query failed with
        -32602 "unexpected keyword argument"; the refusal above points clients to it."""
        client, anchored = chain
        block_hash = "0x" + bytes(ctx_of(client).ledger().w3.eth.get_block(anchored)["hash"]).hex()
        body = get_logs(client, {"blockHash": block_hash})
        assert [(log["blockNumber"], log["blockHash"]) for log in body["result"]] == [
            (hex(anchored), block_hash)
        ]
        err = get_logs(client, {"blockHash": "0x" + "ab" * 32})["error"]
        assert (err["code"], err["message"]) == (rpc.INVALID_PARAMS, f"unknown block 0x{'ab' * 32}")

    def test_block_hash_as_a_range_end_is_refused(self, chain: tuple[TestClient, int]) -> None:
        client, _ = chain
        err = get_logs(client, {"fromBlock": "0x" + "ab" * 32})["error"]
        assert err["code"] == rpc.INVALID_PARAMS
        assert "pass blockHash" in err["message"]

    def test_more_results_than_the_cap_are_refused(
        self, chain: tuple[TestClient, int], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        client, anchored = chain
        flt = {"fromBlock": hex(anchored), "toBlock": hex(anchored)}
        assert len(get_logs(client, flt)["result"]) == 1
        monkeypatch.setattr(rpc, "MAX_LOG_RESULTS", 0)
        err = get_logs(client, flt)["error"]
        assert err["code"] == -32005
        assert err["message"].startswith(
            f"query returned more than 0 results (blocks {anchored} to {anchored})"
        )


# --- the rate limit ------------------------------------------------------------------


@pytest.fixture
def limited(settings: Settings) -> Iterator[tuple[TestClient, Clock]]:
    """An app allowing 3 calls a minute per address, on a clock the test moves."""
    app = create_app(
        settings.model_copy(update={"anchor_enabled": False, "rpc_calls_per_minute": 3})
    )
    clock = Clock()
    with TestClient(app) as client:
        ctx_of(client).local(
            rpc.RATE_LIMITER, lambda: rpc.RateLimiter(calls_per_minute=3, clock=clock)
        )
        yield client, clock


def assert_refused(resp: Any, *, retry_after: int) -> None:
    assert resp.status_code == 429, resp.text
    assert resp.headers["Retry-After"] == str(retry_after)
    body = resp.json()
    assert set(body) == {"error", "detail", "retry_after_s"}
    assert body["error"] == "RateLimited"
    assert body["retry_after_s"] == retry_after
    assert "at most 3 a minute" in body["detail"]
    assert f"try again in {retry_after} s" in body["detail"]


class TestRateLimit:
    def test_the_call_past_the_limit_is_refused_until_refilled(
        self, limited: tuple[TestClient, Clock]
    ) -> None:
        client, clock = limited
        for i in range(3):
            resp = client.post("/rpc", json=call("eth_chainId", id=i))
            assert resp.status_code == 200 and resp.json()["result"].startswith("0x"), resp.text
        # 3 a minute: one call comes back every 20 s.
        assert_refused(client.post("/rpc", json=call("eth_chainId")), retry_after=20)
        clock.now += 19.5
        assert_refused(client.post("/rpc", json=call("eth_chainId")), retry_after=1)
        clock.now += 0.5
        assert client.post("/rpc", json=call("eth_chainId")).status_code == 200
        assert client.post("/rpc", json=call("eth_chainId")).status_code == 429

    def test_a_batch_counts_as_its_calls(self, limited: tuple[TestClient, Clock]) -> None:
        client, clock = limited
        two = [call("eth_chainId", id=1), call("eth_blockNumber", id=2)]
        resp = client.post("/rpc", json=two)
        assert resp.status_code == 200 and [r["id"] for r in resp.json()] == [1, 2]
        # One call left: a batch of two is refused whole, and spends nothing...
        assert_refused(client.post("/rpc", json=two), retry_after=20)
        # ...so the call left is still there.
        assert client.post("/rpc", json=call("eth_chainId")).status_code == 200
        clock.now += 40
        assert client.post("/rpc", json=two).status_code == 200

    def test_a_batch_larger_than_the_budget_is_an_invalid_request(
        self, limited: tuple[TestClient, Clock]
    ) -> None:
        """Waiting would never let it through, so it is not a 429 to retry."""
        client, _ = limited
        resp = client.post("/rpc", json=[call("eth_chainId", id=i) for i in range(4)])
        assert resp.status_code == 200
        assert resp.json()["error"] == {
            "code": rpc.INVALID_REQUEST,
            "message": "a batch holds 1 to 3 requests",
        }

    def test_malformed_requests_count_too(self, limited: tuple[TestClient, Clock]) -> None:
        client, _ = limited
        for _ in range(3):
            bad = client.post(
                "/rpc", content=b"{not json", headers={"Content-Type": "application/json"}
            )
            assert bad.json()["error"]["code"] == rpc.PARSE_ERROR
        assert_refused(client.post("/rpc", json=call("eth_chainId")), retry_after=20)

    def test_addresses_are_counted_apart(self, limited: tuple[TestClient, Clock]) -> None:
        client, _ = limited
        for _ in range(3):
            client.post("/rpc", json=call("eth_chainId"))
        assert client.post("/rpc", json=call("eth_chainId")).status_code == 429
        other = TestClient(client.app, client=("192.0.2.7", 50000))
        assert other.post("/rpc", json=call("eth_chainId")).status_code == 200

    def test_the_limit_is_the_setting(self, settings: Settings) -> None:
        app = create_app(
            settings.model_copy(update={"anchor_enabled": False, "rpc_calls_per_minute": 2})
        )
        with TestClient(app) as client:
            assert client.post("/rpc", json=[call("eth_chainId"), call("eth_chainId")]).json()
            resp = client.post("/rpc", json=call("eth_chainId"))
            assert resp.status_code == 429
            assert "at most 2 a minute" in resp.json()["detail"]
            assert 1 <= int(resp.headers["Retry-After"]) <= 30

    def test_zero_turns_it_off(self, settings: Settings) -> None:
        app = create_app(
            settings.model_copy(update={"anchor_enabled": False, "rpc_calls_per_minute": 0})
        )
        with TestClient(app) as client:
            for _ in range(3):
                resp = client.post("/rpc", json=[call("eth_chainId")] * rpc.MAX_BATCH)
                assert resp.status_code == 200 and len(resp.json()) == rpc.MAX_BATCH


class TestRateLimiter:
    def test_buckets_refill_continuously_up_to_a_minutes_calls(self) -> None:
        clock = Clock()
        limiter = rpc.RateLimiter(calls_per_minute=60, clock=clock)
        assert limiter.take("a", 60) == 0
        assert limiter.take("a", 1) == pytest.approx(1.0)
        clock.now += 2.5
        assert limiter.take("a", 2) == 0
        assert limiter.take("a", 1) == pytest.approx(0.5)
        clock.now += 3600  # idle for an hour: a full bucket, not more
        assert limiter.take("a", 60) == 0
        assert limiter.take("a", 1) > 0

    def test_memory_is_bounded_forgetting_the_least_recently_seen(self) -> None:
        clock = Clock()
        limiter = rpc.RateLimiter(calls_per_minute=1, max_clients=2, clock=clock)
        assert limiter.take("a", 1) == 0
        assert limiter.take("b", 1) == 0
        assert limiter.take("a", 1) > 0  # "a" seen again: now "b" is the oldest
        assert limiter.take("c", 1) == 0
        assert len(limiter) == 2
        assert limiter.take("a", 1) > 0  # still remembered, still empty
        assert limiter.take("b", 1) == 0  # forgotten, so a fresh bucket

    def test_more_calls_than_a_bucket_holds_is_a_programming_error(self) -> None:
        limiter = rpc.RateLimiter(calls_per_minute=3)
        with pytest.raises(ValueError):
            limiter.take("a", 4)
