"""GET /metrics in one process: request counters and latencies by route *template*, log and
checkpoint state read from the database at scrape time, ledger reachability, anchor failures
counted by the anchoring worker, the optional bearer token. (Several workers: test_workers.py.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.context import AppContext
from backend.ledger.anchoring import Anchorer, AnchorWorker, FileAnchorLock
from backend.ops import server
from tests.conftest import free_port, make_settings
from tests.ledger.conftest import append_records
from tests.ops.conftest import metric


def scrape(client: TestClient) -> str:
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    return resp.text


class TestRequests:
    def test_counted_by_route_template_method_and_status(self, client: TestClient) -> None:
        probe = "ab" * 32
        before = scrape(client)
        labels = {"route": "/api/records/{record_id}", "method": "GET", "status": "404"}
        seen = metric(before, "hm_http_requests_total", **labels)
        timed = metric(
            before, "hm_http_request_duration_seconds_count",
            route="/api/records/{record_id}", method="GET",
        )
        for _ in range(3):
            assert client.get(f"/api/records/{probe}").status_code == 404
        client.get("/no/such/path/" + "zz" * 8)
        after = scrape(client)
        assert metric(after, "hm_http_requests_total", **labels) == seen + 3
        assert metric(
            after, "hm_http_request_duration_seconds_count",
            route="/api/records/{record_id}", method="GET",
        ) == timed + 3
        assert metric(after, "hm_http_requests_total", route="<unmatched>", status="404") >= 1
        # Labels never carry what the client sent.
        assert probe not in after and "zzzz" not in after

    def test_request_id_is_echoed_or_made(self, client: TestClient) -> None:
        assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers[
            "x-request-id"
        ] == "abc-123"
        made = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
        assert made.headers["x-request-id"] != "bad id\twith spaces"
        assert len(made.headers["x-request-id"]) == 16


class TestState:
    def test_pending_leaves_and_checkpoint_age(self, tmp_path: Path) -> None:
        settings = make_settings(tmp_path / "data", anchor_enabled=False, rerate_enabled=False)
        with TestClient(create_app(settings)) as client:
            ctx: AppContext = client.app.state.ctx  # type: ignore[attr-defined]
            base = metric(scrape(client), "hm_log_tree_size")
            append_records(ctx, 5)
            text = scrape(client)
            assert metric(text, "hm_log_tree_size") == base + 5
            assert metric(text, "hm_log_pending_leaves") == base + 5
            assert metric(text, "hm_log_oldest_pending_age_seconds") >= 0
            assert metric(text, "hm_checkpoints") == 0
            assert "hm_last_checkpoint_age_seconds" not in text
            assert metric(text, "hm_database_up") == 1
            assert metric(text, "hm_ledger_up") == 1

            before = metric(text, "hm_checkpoints_anchored_total")
            worker = AnchorWorker(ctx, lock=FileAnchorLock(tmp_path / "lock"))
            Anchorer(ctx).run_once(force=True)  # anchor now (the worker's pass is the same)
            worker.step()  # nothing pending: not counted again
            text = scrape(client)
            assert metric(text, "hm_log_pending_leaves") == 0
            assert metric(text, "hm_checkpoints") == 1
            # 5 records and the subject index record that ends the checkpoint
            assert metric(text, "hm_last_checkpoint_tree_size") == base + 5 + 1
            assert 0 <= metric(text, "hm_last_checkpoint_age_seconds") < 120
            assert metric(text, "hm_checkpoints_anchored_total") == before
            append_records(ctx, 1)
            worker.anchorer.forget_reconciliation()
            worker.anchorer.settings = settings.model_copy(update={"anchor_max_pending": 1})
            worker.step()
            assert metric(scrape(client), "hm_checkpoints_anchored_total") == before + 1
            worker.lock.release()  # type: ignore[union-attr]

    def test_ledger_down_and_anchor_failures(self, tmp_path: Path) -> None:
        # A node URL where nothing listens: writes go on, anchoring fails and is counted.
        settings = make_settings(
            tmp_path / "data",
            ledger_url=f"http://127.0.0.1:{free_port()}",
            ledger_key="0x" + "11" * 32,
            anchor_enabled=False,
            rerate_enabled=False,
        )
        with TestClient(create_app(settings)) as client:
            ctx: AppContext = client.app.state.ctx  # type: ignore[attr-defined]
            append_records(ctx, 2)
            text = scrape(client)
            before = metric(text, "hm_anchor_failures_total", reason="ledger_unavailable")
            pending = metric(text, "hm_log_pending_leaves")
            assert pending >= 2
            worker = AnchorWorker(ctx, lock=FileAnchorLock(tmp_path / "lock"))
            worker.step()
            worker.step()
            worker.lock.release()  # type: ignore[union-attr]
            text = scrape(client)
            assert metric(text, "hm_anchor_failures_total",
                          reason="ledger_unavailable") == before + 2
            assert metric(text, "hm_ledger_up") == 0
            assert "hm_ledger_block_number" not in text
            assert metric(text, "hm_log_pending_leaves") == pending  # writes kept, unanchored
            assert metric(text, "hm_database_up") == 1


class TestToken:
    def test_metrics_token(self, tmp_path: Path) -> None:
        settings = make_settings(
            tmp_path / "data", anchor_enabled=False, rerate_enabled=False,
            metrics_token="scrape-token-0123456789",
        )
        with TestClient(create_app(settings)) as client:
            resp = client.get("/metrics")
            assert resp.status_code == 401 and resp.json()["error"] == "MetricsTokenRequired"
            assert resp.headers["www-authenticate"] == "Bearer"
            wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            ok = client.get(
                "/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"}
            )
            assert ok.status_code == 200 and "hm_log_tree_size" in ok.text


    @pytest.mark.parametrize(
        ("env", "token", "warned"),
        [("production", None, True), ("production", "scrape-token-0123456789", False),
         ("development", None, False)],
    )
    def test_public_metrics_are_announced_at_start_in_production(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture, env: str, token: str | None,
        warned: bool,
    ) -> None:
        # Issue 15 (Info): /metrics is public unless HM_METRICS_TOKEN is set.
        settings = make_settings(
            tmp_path / "data", env=env, metrics_token=token, anchor_enabled=False,
            rerate_enabled=False, database_url=f"sqlite:///{tmp_path}/hm.sqlite3",
            secret_key="p" * 40,
        )
        with caplog.at_level("WARNING"), TestClient(create_app(settings)) as client:
            assert client.get("/healthz").status_code == 200
        loud = [r for r in caplog.records
                if r.levelname == "WARNING" and "GET /metrics is public" in r.getMessage()]
        assert len(loud) == (1 if warned else 0)
        if warned:
            assert "HM_METRICS_TOKEN" in loud[0].getMessage()


class TestServe:
    def test_several_workers_need_a_node(self, tmp_path: Path) -> None:
        embedded = make_settings(tmp_path / "data")
        server.check_workers(embedded, 1)
        with pytest.raises(server.ServeRefused, match="HM_LEDGER_URL"):
            server.check_workers(embedded, 4)
        node = make_settings(tmp_path / "data", ledger_url="http://127.0.0.1:1",
                             ledger_key="0x" + "11" * 32)
        server.check_workers(node, 4)

    def test_multiprocess_dir_starts_empty(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Recorded first, so the variable prepare_multiprocess_metrics exports is undone.
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
        monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
        settings = make_settings(tmp_path / "data")
        stale = settings.data_dir / server.MULTIPROC_SUBDIR / "counter_123.db"
        stale.parent.mkdir(parents=True)
        stale.write_bytes(b"old run")
        path = server.prepare_multiprocess_metrics(settings)
        assert path == stale.parent and not stale.exists()
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(path.resolve())
