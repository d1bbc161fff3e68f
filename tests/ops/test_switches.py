"""Background workers each process runs can be switched off (e.g. on extra workers or hosts
where a timer runs ``honest-metering rerate --due`` instead)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from backend.app import create_app
from tests.conftest import make_settings


def test_rerate_worker_has_an_off_switch(tmp_path: Path) -> None:
    on = make_settings(tmp_path / "on", anchor_enabled=False)
    with TestClient(create_app(on)) as client:
        worker = client.app.state.rerate_worker  # type: ignore[attr-defined]
        assert worker is not None and worker._thread.is_alive()
    off = make_settings(tmp_path / "off", anchor_enabled=False, rerate_enabled=False)
    with TestClient(create_app(off)) as client:
        assert client.app.state.rerate_worker is None  # type: ignore[attr-defined]
        # The default policy is still published, and a policy change does not need the worker.
        assert client.get("/api/credit/policy").status_code == 200
