"""The data dir is 0700 and the SQLite databases in it 0600 (issue 15, Info): they hold
contacts, password hashes and keys. Whatever the umask; older, looser ones are tightened."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.config import Settings
from tests import factories
from tests.conftest import make_settings


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the usual default: files 0644, directories 0755
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def run_the_service(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        factories.register(client)  # a write: the WAL file exists now
        client.app.state.ctx.ledger()  # type: ignore[attr-defined]  # the embedded chain
        data = settings.data_dir
        assert (data / "honest-metering.sqlite3-wal").exists()
        check(data)


def check(data: Path) -> None:
    assert mode(data) == 0o700
    files = [p for p in data.iterdir() if p.is_file()]
    assert any(p.name == "honest-metering.sqlite3" for p in files)
    assert any(p.suffix == ".sqlite3" and "chain" in p.name for p in files), files
    loose = {p.name: oct(mode(p)) for p in files if mode(p) & 0o077}
    assert loose == {}


def test_a_new_data_dir_and_its_databases_are_private(
    tmp_path: Path, loose_umask: None
) -> None:
    run_the_service(make_settings(tmp_path / "data", anchor_enabled=False))


def test_an_older_looser_data_dir_is_tightened(tmp_path: Path, loose_umask: None) -> None:
    settings = make_settings(tmp_path / "data", anchor_enabled=False)
    run_the_service(settings)
    os.chmod(settings.data_dir, 0o755)
    for p in settings.data_dir.iterdir():
        if p.suffix == ".sqlite3" or p.name.endswith(("-wal", "-shm")):
            os.chmod(p, 0o644)
    run_the_service(settings)
