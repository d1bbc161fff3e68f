"""SQLite writers of one process queue on one lock (issue 15 M4): a writer that cannot
have it in time fails fast with 503 DatabaseBusy and Retry-After, readers never wait
for it, and the connection of a refused writer stays usable."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from backend.db import Database, DatabaseBusy, sqlite_write_lock


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path}/db.sqlite3")
    database.migrate()
    yield database
    database.dispose()


def _write(db: Database, key: str) -> None:
    with db.session() as s:
        s.execute(text("INSERT INTO rate_limit (key, tat_ms) VALUES (:k, 0)"), {"k": key})
        s.commit()


def test_a_queued_writer_fails_fast_and_readers_go_on(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_write_lock(db.url), "wait_s", 0.5)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db.session() as s:
            s.execute(text("INSERT INTO rate_limit (key, tat_ms) VALUES ('held', 0)"))
            holding.set()
            release.wait(30)
            s.commit()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(30)
        with pytest.raises(DatabaseBusy) as refused:
            _write(db, "queued")
        assert refused.value.status_code == 503
        assert refused.value.headers["Retry-After"] == "2"
        with db.read() as s:  # WAL: a reader does not wait for the writer
            assert s.execute(text("SELECT count(*) FROM rate_limit")).scalar_one() == 0
    finally:
        release.set()
        holder.join(30)
    _write(db, "after")
    with db.read() as s:
        keys = s.execute(text("SELECT key FROM rate_limit ORDER BY key")).scalars().all()
    assert keys == ["after", "held"]


def test_concurrent_writers_all_get_their_turn(db: Database) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(10):
                _write(db, f"w{n}-{i}")
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    with db.read() as s:
        assert s.execute(text("SELECT count(*) FROM rate_limit")).scalar_one() == 200
