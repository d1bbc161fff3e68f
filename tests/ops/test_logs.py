"""Structured logs: one JSON object per line with the request's id, route, status and
duration — and never a password, a token or a phone number, even when code (ours, or a
library at debug level) tries to log one."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from backend.app import create_app
from backend.ops import logs
from tests import factories
from tests.conftest import ROOT, free_port, make_settings, wait_for_port

PASSWORD = "Hunter2-Secret-Passw0rd"
PHONE = "13912345678"
COMPLAINT_PHONE = "15887654321"


def _lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if line.strip():
            out.append(json.loads(line))  # every line is one JSON object
    return out


def _assert_clean(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text, f"{secret[:6]}… appears in the log output"
    # Phone numbers with separators too.
    assert "139 1234 5678" not in text and "139-1234-5678" not in text


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Everything logged at DEBUG and above, through the service's JSON handler."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.RequestContext())
    handler.addFilter(logs.RedactSecrets())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield buf
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


class TestRedaction:
    def test_secrets_logged_on_purpose_during_a_request_are_redacted(
        self, tmp_path: Path, captured: io.StringIO
    ) -> None:
        app = create_app(
            make_settings(tmp_path / "data", anchor_enabled=False, rerate_enabled=False)
        )
        leaky = logging.getLogger("honest_metering.test_leaky")
        token_holder: dict[str, str] = {}

        @app.post("/api/test-leaky")
        def leaky_route(body: dict[str, Any]) -> dict[str, bool]:
            token = token_holder["token"]
            leaky.info("login attempt password=%s token=%s phone %s", PASSWORD, token, PHONE)
            leaky.info("request body %s", body)
            leaky.info("header Authorization: Bearer %s", token)
            leaky.warning("who", extra={"authorization": f"Bearer {token}", "contact": PHONE})
            leaky.info("dsn postgresql://hm:%s@db/hm", PASSWORD)
            try:
                raise ValueError(f"cannot use password {PASSWORD!r} for {PHONE}")
            except ValueError:
                leaky.exception("failed")
            return {"ok": True}

        with TestClient(app) as c:
            m = factories.register(c, contact_phone=PHONE, password=PASSWORD)
            token = factories.token(c, username=m["uscc"], password=PASSWORD)
            token_holder["token"] = token
            resp = c.post(
                "/api/test-leaky",
                json={"password": PASSWORD, "contact_phone": PHONE, "note": f"call {PHONE}"},
                headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-test-1"},
            )
            assert resp.status_code == 200
            assert resp.headers["x-request-id"] == "req-test-1"
            c.post("/api/complaints", json={"uscc": m["uscc"], "content": "少称",
                                            "contact": f"电话 {COMPLAINT_PHONE}"})

        text = captured.getvalue()
        _assert_clean(text, PASSWORD, token, PHONE, COMPLAINT_PHONE)
        lines = _lines(text)
        inside = [r for r in lines if r["logger"] == "honest_metering.test_leaky"]
        assert len(inside) == 6
        for r in inside:
            assert r["request_id"] == "req-test-1" and r["route"] == "/api/test-leaky"
            assert {"time", "level", "logger", "message"} <= set(r)
        assert inside[3]["authorization"] == logs.REDACTED
        assert inside[3]["contact"] == logs.REDACTED
        assert "ValueError" in inside[5]["exception"]
        access = [r for r in lines if r["logger"] == "honest_metering.access"]
        leaky_access = [r for r in access if r.get("request_id") == "req-test-1"]
        assert len(leaky_access) == 1
        assert leaky_access[0]["status"] == 200 and leaky_access[0]["duration_ms"] > 0
        assert leaky_access[0]["route"] == "/api/test-leaky"
        assert leaky_access[0]["method"] == "POST"

    @pytest.mark.parametrize(
        ("text", "hidden"),
        [
            ("password=abc123&next=/", "abc123"),
            ('{"password": "two words"}', "two words"),
            ("{'api_key': 'k-123'}", "k-123"),
            ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA"),
            ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "c2lnbmF0dXJl"),
            ("HM_LEDGER_KEY=0xac0974bec39a17e36ba4a6b4d238ff94", "ac0974bec3"),
            ("https://user:s3cr3t@node.example/rpc", "s3cr3t"),
            ("联系电话+86 139-1234-5678。", "1234-5678"),
        ],
    )
    def test_redact_text(self, text: str, hidden: str) -> None:
        assert hidden not in logs.redact_text(text)

    @pytest.mark.parametrize(
        "text",
        [
            "anchored checkpoint 3: tree size 1048576 (+1), tx 0xa13912345678b, gas 91234",
            "block 13912345678901 at 1795719195.78",
            "record 91511902MA62Q3T556 appended",
        ],
    )
    def test_ordinary_numbers_and_hashes_stay(self, text: str) -> None:
        assert logs.redact_text(text) == text


SQL_SECRET = "老王家的秘密地址-甲"


class TestSqlParameters:
    """Issue 15 (Info): SQL parameters (names, contacts, password hashes) appeared in
    logged tracebacks."""

    @pytest.mark.parametrize(
        "db", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
    )
    def test_a_failed_statement_logs_no_parameters(
        self, tmp_path: Path, captured: io.StringIO, db: str, request: pytest.FixtureRequest
    ) -> None:
        over: dict[str, Any] = {"anchor_enabled": False, "rerate_enabled": False}
        if db == "postgresql":
            over["database_url"] = request.getfixturevalue("postgres_url")
        app = create_app(make_settings(tmp_path / "data", **over))

        @app.post("/api/test-failing-insert")
        def failing() -> None:
            # A real statement the database refuses (NOT NULL columns missing).
            with app.state.ctx.db.session() as s:
                s.execute(text("INSERT INTO merchant (uscc, address) VALUES (:u, :a)"),
                          {"u": "91511902MA62Q3T556", "a": SQL_SECRET})

        with TestClient(app, raise_server_exceptions=False) as client:
            resp = client.post("/api/test-failing-insert")
        assert (resp.status_code, resp.json()["error"]) == (500, "InternalError")
        out = captured.getvalue()
        assert "INSERT INTO merchant" in out  # the traceback was logged...
        assert SQL_SECRET not in out  # ...without the values

    def test_parameters_in_any_logged_text_are_redacted(self) -> None:
        from sqlalchemy import create_engine

        engine = create_engine("sqlite://")  # a plain engine, parameters shown in errors
        try:
            with engine.connect() as conn:
                conn.execute(text("CREATE TABLE t (a TEXT NOT NULL, b TEXT NOT NULL)"))
                conn.execute(text("INSERT INTO t (a) VALUES (:a)"), {"a": SQL_SECRET})
        except Exception as exc:  # noqa: BLE001
            message = str(exc)
        finally:
            engine.dispose()
        assert SQL_SECRET in message
        assert SQL_SECRET not in logs.redact_text(message)
        assert "[parameters: [REDACTED]]" in logs.redact_text(message)
        detail = (
            'duplicate key value violates unique constraint "account_username_key"\n'
            "DETAIL:  Key (username)=(wang.secret) already exists."
        )
        assert "wang.secret" not in logs.redact_text(detail)
        row = "DETAIL:  Failing row contains (91511902MA62Q3T556, null, 老王, 139)."
        assert logs.redact_text(row) == "DETAIL:  Failing row contains ([REDACTED])."


@pytest.mark.slow
def test_served_with_json_logs_never_logs_secrets(tmp_path: Path) -> None:
    """The real command: `honest-metering serve` with HM_LOG_JSON=true at debug level
    (SQL, HTTP and web3 internals included), driven through registration, login, an
    authenticated call and a complaint."""
    port = free_port()
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HM_", "PROMETHEUS_"))}
    env.update(
        HM_ENV="test",
        HM_DATA_DIR=str(data),
        HM_DEMO_ON_FIRST_START="false",
        HM_SECRET_KEY="test-secret-key-0123456789abcdef0123456789",
        HM_LOG_JSON="true",
        HM_LOG_LEVEL="debug",
        HM_ANCHOR_INTERVAL_S="0.2",
    )
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "backend.cli", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_port(port, timeout=60)
            base = f"http://127.0.0.1:{port}"
            body = factories.merchant_body(contact_phone=PHONE, password=PASSWORD)
            with httpx.Client(base_url=base, timeout=30) as c:
                assert c.post("/api/merchants", json=body).status_code == 201
                resp = c.post(
                    "/api/auth/token", data={"username": body["uscc"], "password": PASSWORD}
                )
                token = resp.json()["access_token"]
                me = c.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
                assert me.status_code == 200
                bad = c.post(
                    "/api/auth/token", data={"username": body["uscc"], "password": PASSWORD + "x"}
                )
                assert bad.status_code == 401
                c.post("/api/complaints", json={"uscc": body["uscc"], "content": "少称",
                                                "contact": COMPLAINT_PHONE})
                assert c.get("/api/nope?token=" + token).status_code == 404
                deadline = time.monotonic() + 30
                while c.get("/metrics").text.find("hm_log_pending_leaves 0.0") < 0:
                    assert time.monotonic() < deadline, "records were not anchored"
                    time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    text = log_path.read_text(encoding="utf-8")
    _assert_clean(text, PASSWORD, token, PHONE, COMPLAINT_PHONE)
    lines = _lines(text)
    assert any(r["logger"].startswith("uvicorn") for r in lines)
    assert any(r["logger"] == "honest_metering.anchoring" for r in lines)
    access = [r for r in lines if r["logger"] == "honest_metering.access"]
    assert {r["route"] for r in access} >= {"/api/merchants", "/api/auth/token", "<unmatched>"}
    for r in access:
        assert {"time", "level", "request_id", "method", "route", "status", "duration_ms"} <= set(r)


def test_request_ids_are_unique_and_plain_tokens() -> None:
    ids = [logs.new_request_id(None) for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)
    assert logs.new_request_id("req-from-client.1") == "req-from-client.1"
    # Not a plain token: replaced, not echoed into logs and headers.
    assert logs.new_request_id("bad id\r\n") != "bad id\r\n"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_request_ids_differ_between_processes() -> None:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, logs.new_request_id(None).encode())
        os._exit(0)
    os.close(w)
    child = os.read(r, 64).decode()
    os.close(r)
    os.waitpid(pid, 0)
    parent = logs.new_request_id(None)
    assert child[:8] != parent[:8]  # each process has a prefix of its own
