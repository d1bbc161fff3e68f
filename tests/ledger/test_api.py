"""The log's HTTP API: checkpoints, records, proof bundles, consistency proofs,
readiness, and the read-only JSON-RPC endpoint of the embedded chain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from web3 import Web3
from web3.exceptions import ContractCustomError

from backend.app import create_app
from backend.config import Settings
from backend.context import AppContext
from backend.ledger import log as ledger_log
from backend.ledger import merkle
from backend.ledger.anchoring import Anchorer
from backend.ledger.bundle import parse_bundle, unhex
from backend.ledger.contract import ABI, decode_error
from backend.verification.bundle import Verdict, check_offline
from tests.conftest import make_settings
from tests.ledger.conftest import append_records, serve


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app on the embedded chain with the worker off: tests anchor explicitly."""
    app = create_app(settings.model_copy(update={"anchor_enabled": False}))
    with TestClient(app) as c:
        yield c


def ctx_of(client: TestClient) -> AppContext:
    return client.app.state.ctx  # type: ignore[attr-defined,no-any-return]


def anchor(client: TestClient) -> None:
    Anchorer(ctx_of(client)).run_once(force=True)


class TestCheckpoints:
    def test_latest_before_any(self, client: TestClient) -> None:
        r = client.get("/api/log/checkpoints/latest")
        assert r.status_code == 404
        assert r.json()["error"] == "CheckpointNotFound"

    def test_latest_and_list(self, client: TestClient) -> None:
        ctx = ctx_of(client)
        append_records(ctx, 3)
        anchor(client)
        append_records(ctx, 2, start=3)
        anchor(client)
        latest = client.get("/api/log/checkpoints/latest")
        assert latest.status_code == 200
        body = latest.json()
        ledger = ctx.ledger()
        assert body["index"] == 1
        assert body["chain_id"] == ledger.chain_id
        assert body["contract_address"] == ledger.contract_address
        assert body["root"].startswith("0x") and len(body["root"]) == 66
        assert body["transaction_hash"].startswith("0x") and body["block_number"] > 0
        assert body["anchored_at"].endswith("Z") or body["anchored_at"].endswith("+00:00")
        size = body["tree_size"]
        receipt = ledger.w3.eth.get_transaction_receipt(body["transaction_hash"])
        assert receipt["blockNumber"] == body["block_number"]

        page = client.get("/api/log/checkpoints", params={"offset": 0, "limit": 1}).json()
        assert page["total"] == 2 and page["limit"] == 1
        assert [c["index"] for c in page["items"]] == [0]
        page2 = client.get("/api/log/checkpoints", params={"offset": 1, "limit": 10}).json()
        assert [c["tree_size"] for c in page2["items"]] == [size]

    def test_list_rejects_bad_paging(self, client: TestClient) -> None:
        r = client.get("/api/log/checkpoints", params={"limit": 0})
        assert r.status_code == 422
        assert r.json()["error"] == "ValidationFailed"


class TestRecords:
    def test_pending_then_anchored(self, client: TestClient) -> None:
        [rec] = append_records(client.app.state.ctx, 1)  # type: ignore[attr-defined]
        r = client.get(f"/api/records/{rec.record_id}")
        assert r.status_code == 200
        body = r.json()
        assert body["record_id"] == rec.record_id
        assert body["leaf_index"] == rec.leaf_index
        assert body["leaf_hash"] == "0x" + rec.record_id
        assert body["canonical"].encode() == rec.canonical
        assert body["record"] == rec.envelope
        assert body["anchor_status"]["status"] == "pending"

        anchor(client)
        status = client.get(f"/api/records/{rec.record_id}").json()["anchor_status"]
        assert status["status"] == "anchored"
        assert status["checkpoint"] == 0
        assert status["tree_size"] >= rec.leaf_index + 1

    def test_unknown_record(self, client: TestClient) -> None:
        r = client.get("/api/records/" + "ab" * 32)
        assert r.status_code == 404
        assert r.json()["error"] == "RecordNotFound"

    def test_malformed_record_id(self, client: TestClient) -> None:
        r = client.get("/api/records/not-a-hash")
        assert r.status_code == 422
        assert r.json()["error"] == "ValidationFailed"


class TestProof:
    def test_409_while_pending(self, client: TestClient) -> None:
        [rec] = append_records(client.app.state.ctx, 1)  # type: ignore[attr-defined]
        r = client.get(f"/api/records/{rec.record_id}/proof")
        assert r.status_code == 409
        body = r.json()
        assert body["error"] == "RecordNotAnchored"
        assert "pending anchor" in body["detail"]
        assert body["anchor_status"]["status"] == "pending"

    def test_bundle(self, client: TestClient) -> None:
        ctx = ctx_of(client)
        recs = append_records(ctx, 6)
        anchor(client)
        rec = recs[4]
        r = client.get(f"/api/records/{rec.record_id}/proof")
        assert r.status_code == 200
        data = r.json()
        b = parse_bundle(data)  # exactly the documented format
        assert (b.format, b.version) == ("honest-metering/proof-bundle", 1)
        assert b.record.encode("utf-8") == rec.canonical
        assert b.leaf_index == rec.leaf_index and b.leaf_hash == "0x" + rec.record_id
        ledger = ctx.ledger()
        cp = b.checkpoint
        assert (cp.index, cp.chain_id, cp.contract_address) == (
            0,
            ledger.chain_id,
            ledger.contract_address,
        )
        assert cp.anchored_at.endswith("Z")
        assert b.ledger_url == ctx.settings.base_url + "/rpc"
        merkle.verify_inclusion(
            b.leaf_index,
            cp.tree_size,
            unhex(b.leaf_hash),
            [unhex(p) for p in b.inclusion_proof],
            unhex(cp.root),
        )
        v = Verdict()
        assert check_offline(b, v), v.render()

    def test_bundle_against_a_chosen_checkpoint(self, client: TestClient) -> None:
        ctx = ctx_of(client)
        [rec] = append_records(ctx, 1)
        anchor(client)
        first_size = client.get("/api/log/checkpoints/latest").json()["tree_size"]
        append_records(ctx, 3, start=1)
        anchor(client)
        latest = client.get(f"/api/records/{rec.record_id}/proof").json()
        assert latest["checkpoint"]["index"] == 1
        old = client.get(f"/api/records/{rec.record_id}/proof", params={"checkpoint": 0}).json()
        assert old["checkpoint"]["index"] == 0
        pinned = client.get(f"/api/records/{rec.record_id}/proof", params={"checkpoint": 0})
        assert pinned.headers["cache-control"] == "public, max-age=86400"
        assert old["checkpoint"]["tree_size"] == first_size
        missing = client.get(f"/api/records/{rec.record_id}/proof", params={"checkpoint": 7})
        assert missing.status_code == 404
        assert missing.json()["error"] == "CheckpointNotFound"

    def test_inclusion_path_is_cached_per_leaf_and_checkpoint(
        self, client: TestClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        ctx = ctx_of(client)
        recs = append_records(ctx, 5)
        anchor(client)
        calls: list[tuple[int, int]] = []
        real = ledger_log.inclusion_proof

        def counted(session: Any, index: int, size: int) -> list[bytes]:
            calls.append((index, size))
            return real(session, index, size)

        monkeypatch.setattr(ledger_log, "inclusion_proof", counted)
        r = client.get(f"/api/records/{recs[2].record_id}/proof")
        assert r.headers["cache-control"] == "public, max-age=60"
        first = r.json()
        again = client.get(f"/api/records/{recs[2].record_id}/proof").json()
        assert again == first
        assert calls == [(recs[2].leaf_index, first["checkpoint"]["tree_size"])]
        # Another leaf, or the same leaf under a later checkpoint, is a path of its own.
        client.get(f"/api/records/{recs[3].record_id}/proof")
        append_records(ctx, 2, start=5)
        anchor(client)
        later = client.get(f"/api/records/{recs[2].record_id}/proof").json()
        assert later["checkpoint"]["index"] == 1 and len(calls) == 3
        merkle.verify_inclusion(
            later["leaf_index"], later["checkpoint"]["tree_size"], unhex(later["leaf_hash"]),
            [unhex(p) for p in later["inclusion_proof"]], unhex(later["checkpoint"]["root"]),
        )

    def test_record_not_covered_by_chosen_checkpoint(self, client: TestClient) -> None:
        ctx = ctx_of(client)
        append_records(ctx, 1)
        anchor(client)
        [late] = append_records(ctx, 1, start=1)
        anchor(client)
        r = client.get(f"/api/records/{late.record_id}/proof", params={"checkpoint": 0})
        assert r.status_code == 409
        assert r.json()["error"] == "RecordNotAnchored"


class TestConsistency:
    def test_proof_verifies(self, client: TestClient) -> None:
        append_records(client.app.state.ctx, 11)  # type: ignore[attr-defined]
        r = client.get("/api/log/consistency", params={"first": 3, "second": 11})
        assert r.status_code == 200
        body = r.json()
        merkle.verify_consistency(
            3,
            11,
            unhex(body["first_root"]),
            unhex(body["second_root"]),
            [unhex(p) for p in body["proof"]],
        )

    @pytest.mark.parametrize(
        ("first", "second"), [(5, 3), (1, 999)], ids=["first>second", "beyond-tree"]
    )
    def test_invalid_sizes(self, client: TestClient, first: int, second: int) -> None:
        append_records(client.app.state.ctx, 4)  # type: ignore[attr-defined]
        r = client.get("/api/log/consistency", params={"first": first, "second": second})
        assert r.status_code == 422
        assert r.json()["error"] == "InvalidTreeSize"

    def test_missing_parameter(self, client: TestClient) -> None:
        r = client.get("/api/log/consistency", params={"first": 1})
        assert r.status_code == 422
        assert r.json()["error"] == "ValidationFailed"


class TestReadiness:
    def test_healthz(self, client: TestClient) -> None:
        assert client.get("/healthz").json() == {"status": "ok"}

    def test_readyz_reports_anchoring(self, client: TestClient) -> None:
        ctx = ctx_of(client)
        append_records(ctx, 2)
        anchor(client)
        append_records(ctx, 3, start=2)
        r = client.get("/readyz")
        assert r.status_code == 200
        body = r.json()
        assert body["checks"] == {"database": "up", "ledger": "up", "checkpoints": "up"}
        a = body["anchoring"]
        assert a["pending_leaves"] == 3
        assert a["oldest_pending_age_s"] >= 0
        assert a["last_checkpoint"] == 0
        assert a["last_checkpoint_age_s"] >= 0
        assert a["worker"] is None  # disabled in this app

    def test_readyz_names_the_ledger_when_down(self, tmp_path: object) -> None:
        from pathlib import Path

        from tests.conftest import free_port, make_settings

        settings = make_settings(
            Path(str(tmp_path)) / "data",
            ledger_url=f"http://127.0.0.1:{free_port()}",
            ledger_key="0x" + "11" * 32,
            anchor_enabled=False,
        )
        with TestClient(create_app(settings)) as c:
            r = c.get("/readyz")
            assert r.status_code == 503
            body = r.json()
            assert body["checks"]["database"] == "up"
            assert body["checks"]["ledger"].startswith("down")


class TestRpc:
    """``POST /rpc`` through a real web3 HTTP client against a real server."""

    @pytest.fixture
    def rpc(self, settings: Settings) -> Iterator[tuple[Web3, AppContext]]:
        app = create_app(settings.model_copy(update={"anchor_enabled": False}))
        with serve(app) as base:
            ctx: AppContext = app.state.ctx
            append_records(ctx, 3)
            Anchorer(ctx).run_once(force=True)
            yield Web3(Web3.HTTPProvider(base + "/rpc")), ctx

    def test_reads_the_chain_like_any_node(self, rpc: tuple[Web3, AppContext]) -> None:
        w3, ctx = rpc
        ledger = ctx.ledger()
        assert w3.is_connected()
        assert w3.eth.chain_id == ledger.chain_id
        assert w3.eth.block_number == ledger.block_number()
        block = w3.eth.get_block("latest", full_transactions=True)
        assert block["number"] == ledger.block_number()
        assert block["hash"] == ledger.w3.eth.get_block("latest")["hash"]
        tx = block["transactions"][0]
        receipt = w3.eth.get_transaction_receipt(tx["hash"])
        assert receipt["status"] == 1 and receipt["blockNumber"] == block["number"]
        assert w3.eth.get_transaction(tx["hash"])["to"] == ledger.contract_address
        assert w3.eth.get_block(block["hash"])["number"] == block["number"]
        assert len(w3.eth.get_code(ledger.contract_address)) > 0

        contract = w3.eth.contract(address=ledger.contract_address, abi=ABI)
        assert contract.functions.checkpointCount().call() == 1
        size, _ts, bn, root = contract.functions.checkpoint(0).call()
        assert bn == block["number"] and size >= 3
        events = contract.events.CheckpointAnchored.get_logs(from_block=0)
        assert [(e["args"]["index"], e["args"]["root"]) for e in events] == [(0, root)]

    def test_revert_carries_the_custom_error(self, rpc: tuple[Web3, AppContext]) -> None:
        w3, ctx = rpc
        contract = w3.eth.contract(address=ctx.ledger().contract_address, abi=ABI)
        with pytest.raises(ContractCustomError) as err:
            contract.functions.checkpoint(5).call()
        name, args = decode_error(err.value.data)  # type: ignore[arg-type]
        assert (name, args) == ("MeteringLedgerUnknownCheckpoint", {"index": 5, "count": 1})

    def test_write_methods_are_refused(self, rpc: tuple[Web3, AppContext]) -> None:
        w3, _ = rpc
        for method, params in [
            ("eth_sendRawTransaction", ["0x00"]),
            ("eth_sendTransaction", [{}]),
            ("eth_accounts", []),
            ("evm_mine", []),
        ]:
            resp = w3.provider.make_request(method, params)  # type: ignore[arg-type]
            assert resp["error"]["code"] == -32601, (method, resp)

    def test_batch_and_malformed(self, settings: Settings) -> None:
        app = create_app(settings.model_copy(update={"anchor_enabled": False}))
        with TestClient(app) as c:
            batch = c.post(
                "/rpc",
                json=[
                    {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
                    {"jsonrpc": "2.0", "id": 2, "method": "eth_blockNumber"},
                    {"jsonrpc": "2.0", "id": 3, "method": "personal_sign", "params": []},
                ],
            ).json()
            assert [r["id"] for r in batch] == [1, 2, 3]
            assert batch[0]["result"].startswith("0x")
            assert batch[2]["error"]["code"] == -32601
            bad = c.post("/rpc", content=b"{not json", headers={"content-type": "application/json"})
            assert bad.json()["error"]["code"] == -32700
            invalid = c.post("/rpc", json={"id": 1, "method": "eth_chainId"}).json()
            assert invalid["error"]["code"] == -32600

    def test_off_with_an_external_node(self, tmp_path: object) -> None:
        from pathlib import Path

        from tests.conftest import make_settings

        settings = make_settings(
            Path(str(tmp_path)) / "data",
            ledger_url="http://127.0.0.1:1",
            ledger_key="0x" + "11" * 32,
            anchor_enabled=False,
        )
        with TestClient(create_app(settings)) as c:
            r = c.post("/rpc", json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
            assert r.status_code == 404
            assert r.json()["error"] == "RpcDisabled"


def test_bundle_ledger_url_follows_the_service_port(tmp_path: Path) -> None:
    """Bug: bundles named http://127.0.0.1:8000/rpc whatever port the service ran on."""
    settings = make_settings(tmp_path / "data", port=8765)
    assert settings.base_url == "http://127.0.0.1:8765"
    explicit = make_settings(tmp_path / "data", port=8765, public_base_url="https://hm.example.cn/")
    assert explicit.base_url == "https://hm.example.cn"
