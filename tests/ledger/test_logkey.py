"""The log's checkpoint signing key: mode 0600, rotation, refusal in production."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.config import Settings
from backend.ledger import logkey
from tests.conftest import make_settings
from tests.ledger.conftest import run_cli, settings_env


def test_created_once_with_mode_0600(settings: Settings) -> None:
    key = logkey.load_log_key(settings)
    path = settings.log_key_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key.name == settings.origin == "127.0.0.1:8000"
    path.chmod(0o644)
    assert logkey.load_log_key(settings) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_production_needs_a_key(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    s = make_settings(tmp_path / "data").model_copy(update={"env": "production"})
    with pytest.raises(logkey.LogKeyError, match="log-key rotate"):
        logkey.load_log_key(s)
    # The service still runs; it says so loudly and signs nothing.
    prod = make_settings(
        tmp_path / "data", env="production", anchor_enabled=False, rerate_enabled=False,
        database_url=f"sqlite:///{tmp_path}/hm.sqlite3", secret_key="p" * 40,
    )
    with caplog.at_level("ERROR"), TestClient(create_app(prod)) as client:
        assert client.get("/healthz").status_code == 200
        r = client.get("/checkpoint")
        assert r.status_code == 503 and r.json()["error"] == "LogKeyError"
    assert any("SECURITY: the log cannot sign" in m for m in caplog.messages)
    assert not s.log_key_path.exists()


def test_a_key_for_another_origin_is_refused(settings: Settings) -> None:
    logkey.load_log_key(settings)
    other = settings.model_copy(update={"log_origin": "bazhong.example/log"})
    with pytest.raises(logkey.LogKeyError, match="is for origin '127.0.0.1:8000'"):
        logkey.load_log_key(other)


def test_rotate_by_command_keeps_the_old_key(settings: Settings) -> None:
    env = settings_env(settings)
    first = run_cli(["log-key", "show"], env=env)
    assert first.returncode == 0, first.stderr
    old_vkey = first.stdout.strip()
    r = run_cli(["log-key", "rotate"], env=env)
    assert r.returncode == 0, r.stderr
    assert f"retired log key {old_vkey}" in r.stdout
    new = logkey.load_log_key(settings)
    assert new.verifier.vkey != old_vkey
    assert new.verifier.vkey in r.stdout
    [retired] = logkey.retired_keys(settings)
    assert retired.verifier.vkey == old_vkey
    for p in settings.log_key_path.parent.glob("log-signing.key*"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert "PRIVATE" not in r.stdout + r.stderr


def test_pages_render_without_a_usable_log_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A missing or wrong log key makes the endpoints that sign answer 503 with the Chinese
    reason; the public pages (which show the trust root's fingerprint) still render, say
    that the trust root is unavailable, and the start logs a SECURITY line."""
    s = make_settings(tmp_path / "data", anchor_enabled=False, rerate_enabled=False)
    # A key for another log: load_log_key refuses it (as production refuses no key).
    logkey._write_new(s.log_key_path, logkey.notes.Signer.generate("elsewhere.example/log"))
    with caplog.at_level("ERROR"), TestClient(create_app(s)) as client:
        client.app.state.ctx.require_ledger()  # type: ignore[attr-defined]
        html = {"accept": "text/html"}
        for path in ("/", "/verify"):
            r = client.get(path, headers=html)
            assert r.status_code == 200, (path, r.status_code, r.text[:300])
        assert "暂时无法取得" in client.get("/verify", headers=html).text
        for path in ("/checkpoint", "/.well-known/honest-metering/trust-root.json"):
            r = client.get(path)
            assert r.status_code == 503 and r.json()["error"] == "LogKeyError", (path, r.text)
            assert "日志签名密钥" in r.json()["detail_zh"]
    assert any("SECURITY: the log cannot sign" in m for m in caplog.messages)
