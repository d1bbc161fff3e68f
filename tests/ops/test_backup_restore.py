"""Backups restore to a database that passes ``honest-metering audit`` against the chain.

SQLite: sqlite3's online backup API while the service runs (with data and anchored
checkpoints), restored into a fresh data dir. PostgreSQL: ``pg_dump -Fc`` / ``pg_restore``
into a fresh database. The chain (anvil, a real node) is the independent witness: the
audit reads the checkpoints from it, not from the backup. A backup older than the last
checkpoint fails the audit, naming the missing records — the chain proves the loss.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.config import Settings
from tests import factories
from tests.conftest import POSTGRES_URL, AnvilNode, make_settings, require
from tests.ledger.conftest import append_records, run_cli, wait_until

DB_FILE = "honest-metering.sqlite3"


def audit_env(*, data_dir: Path, database_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HM_")}
    env.update(HM_ENV="test", HM_DATA_DIR=str(data_dir))
    if database_url:
        env["HM_DATABASE_URL"] = database_url
    return env


def audit(anvil: AnvilNode, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Read-only: the checkpoints come from the node, the contract address from the restored
    # database; no signing key is needed.
    return run_cli(["audit", "--quiet", "--ledger", anvil.url], env=env)


@contextmanager
def running_service(settings: Settings) -> Iterator[TestClient]:
    """The app with its anchoring worker, plus some API writes."""
    with TestClient(create_app(settings)) as client:
        factories.register(client)
        factories.register(client)
        yield client


def anchor_everything(client: TestClient) -> int:
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    from backend.ledger import log

    with ctx.db.read() as s:
        size = log.tree_size(s)

    def anchored() -> bool:
        # The checkpoint covers the whole log, its subject index record included.
        resp = client.get("/api/log/checkpoints/latest")
        with ctx.db.read() as s:
            now = log.tree_size(s)
        return resp.status_code == 200 and resp.json()["tree_size"] == now > size

    wait_until(anchored, timeout=60, what=f"a checkpoint covering tree size {size}")
    with ctx.db.read() as s:
        return log.tree_size(s)


def sqlite_backup(src: Path, dst: Path) -> None:
    """sqlite3's online backup API: a consistent copy while the service keeps writing."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(src) as source, sqlite3.connect(dst) as target:
        source.backup(target)


@pytest.mark.anvil
def test_sqlite_online_backup_restores_and_audits_clean(
    anvil: AnvilNode, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    settings = make_settings(data, ledger_url=anvil.url, ledger_key=anvil.key,
                             rerate_enabled=False)
    with running_service(settings) as client:
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        append_records(ctx, 5)
        first_size = anchor_everything(client)
        sqlite_backup(data / DB_FILE, tmp_path / "backup-1" / DB_FILE)
        append_records(ctx, 7, start=5)
        second_size = anchor_everything(client)
        assert second_size == first_size + 7 + 1  # and the subject index record
        # Taken while the service is up; a record appended after it is simply pending.
        sqlite_backup(data / DB_FILE, tmp_path / "backup-2" / DB_FILE)

    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copy(tmp_path / "backup-2" / DB_FILE, restored / DB_FILE)
    result = audit(anvil, audit_env(data_dir=restored))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"all {second_size} record(s) match the" in result.stdout

    # An older backup lacks records the chain has a checkpoint for: the audit says so.
    stale = tmp_path / "stale"
    stale.mkdir()
    shutil.copy(tmp_path / "backup-1" / DB_FILE, stale / DB_FILE)
    result = audit(anvil, audit_env(data_dir=stale))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FINDING" in result.stdout and "audit FAILED" in result.stdout


def test_embedded_chain_data_dir_backup(tmp_path: Path) -> None:
    """Development setup: the database *and* the embedded chain live in the data dir, so
    both SQLite files are backed up (and the dev key copied)."""
    data = tmp_path / "data"
    with running_service(make_settings(data, rerate_enabled=False)) as client:
        append_records(client.app.state.ctx, 4)  # type: ignore[attr-defined]
        size = anchor_everything(client)
        restored = tmp_path / "restored"
        sqlite_backup(data / DB_FILE, restored / DB_FILE)
        sqlite_backup(data / "chain.sqlite3", restored / "chain.sqlite3")
        shutil.copy2(data / "ledger-key.hex", restored / "ledger-key.hex")
    result = run_cli(["audit", "--quiet"], env=audit_env(data_dir=restored))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"all {size} record(s) match" in result.stdout


@contextmanager
def fresh_database() -> Iterator[str]:
    name = f"hm_restore_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.mark.anvil
@pytest.mark.postgres
def test_postgres_pg_dump_restores_and_audits_clean(
    anvil: AnvilNode, postgres_url: str, tmp_path: Path
) -> None:
    for tool in ("pg_dump", "pg_restore"):
        require(shutil.which(tool) is not None, f"{tool} (PostgreSQL client) not installed")
    data = tmp_path / "data"
    settings = make_settings(data, database_url=postgres_url, ledger_url=anvil.url,
                             ledger_key=anvil.key, rerate_enabled=False)
    dump = tmp_path / "hm.dump"
    with running_service(settings) as client:
        append_records(client.app.state.ctx, 6)  # type: ignore[attr-defined]
        size = anchor_everything(client)
        # Online: pg_dump takes a consistent snapshot while the service runs.
        subprocess.run(
            ["pg_dump", "--format=custom", "--no-owner", f"--dbname={postgres_url}",
             f"--file={dump}"],
            check=True, capture_output=True, timeout=120,
        )
    with fresh_database() as target:
        subprocess.run(
            ["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={target}", str(dump)],
            check=True, capture_output=True, timeout=120,
        )
        restored = tmp_path / "restored"
        restored.mkdir()
        result = audit(anvil, audit_env(data_dir=restored, database_url=target))
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"all {size} record(s) match" in result.stdout
