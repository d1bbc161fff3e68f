"""Demo seeding: ~2,000 made-up merchants with a consistent two-year history,
in seconds, with the README's demo credentials; the first-start hook; the
refusal to seed a production database."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from backend.app import create_app
from backend.config import Settings
from backend.db import Database
from backend.ledger import log
from backend.ledger.models import LogLeaf
from backend.merchants import demo
from backend.merchants.models import Merchant, MerchantVerification
from backend.merchants.reference import DIVISIONS, SECTORS
from backend.merchants.uscc import is_valid_uscc
from backend.pledges import queries
from backend.pledges.models import DemonstrationAward, Pledge, PledgeWithdrawal
from tests.conftest import make_settings


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Database, float]]:
    settings = make_settings(tmp_path_factory.mktemp("demo") / "data", anchor_enabled=False)
    settings.data_dir.mkdir(parents=True)
    db = Database(settings.db_url)
    db.migrate()
    started = time.monotonic()
    summary = demo.seed_demo(db, settings=settings)
    elapsed = time.monotonic() - started
    assert summary is not None
    yield settings, db, elapsed
    db.dispose()


def test_seeds_in_seconds(seeded: tuple[Settings, Database, float]) -> None:
    _, _, elapsed = seeded
    assert elapsed < 30, f"demo seeding took {elapsed:.1f} s"


def test_about_two_thousand_merchants_everywhere(seeded: tuple[Settings, Database, float]) -> None:
    _, db, _ = seeded
    with db.read() as s:
        rows = s.execute(select(Merchant.uscc, Merchant.sector, Merchant.region_code)).all()
    assert len(rows) == demo.DEMO_MERCHANTS
    assert all(is_valid_uscc(u) for u, _, _ in rows)
    assert {sec for _, sec, _ in rows} == set(SECTORS)
    assert {reg for _, _, reg in rows} == set(DIVISIONS)
    assert {m["uscc"] for m in demo.SHOWCASE} <= {u for u, _, _ in rows}


def test_history_is_consistent(seeded: tuple[Settings, Database, float]) -> None:
    _, db, _ = seeded
    today = queries.shanghai_date(datetime.now(UTC))
    with db.read() as s:
        pledges = s.execute(select(Pledge)).scalars().all()
        withdrawn = {w.pledge_id for w in s.execute(select(PledgeWithdrawal)).scalars()}
        statuses = Counter(queries.pledge_status(s, p, today) for p in pledges)
        per_merchant = Counter(
            u for (u,) in s.execute(select(Pledge.uscc).where(queries.active_pledge_clause(today)))
        )
        # Every renewal's record refers to the pledge it renews.
        by_id = {p.id: p for p in pledges}
        for p in pledges:
            env = log.get_envelope(s, p.record_id)
            refs = [r["record"] for r in env["refs"] if r["rel"] == "renews"]
            assert refs == ([by_id[p.renews_pledge_id].record_id] if p.renews_pledge_id else [])
            assert env["body"]["valid_until"] == p.valid_until.isoformat()
        verified = dict(
            s.execute(select(MerchantVerification.uscc, MerchantVerification.verified_on)).all()
        )
        awards = s.execute(select(DemonstrationAward)).scalars().all()
        for a in awards:
            assert a.uscc in verified and verified[a.uscc] < a.awarded_on
            assert any(
                p.uscc == a.uscc and p.valid_from <= a.awarded_on < p.valid_until for p in pledges
            )
        leaves = s.execute(
            select(LogLeaf.leaf_index, LogLeaf.appended_at).order_by(LogLeaf.leaf_index)
        ).all()
    assert max(per_merchant.values()) == 1  # one current pledge per merchant
    assert statuses["active"] > 1000
    assert statuses["renewed"] > 100
    assert statuses["expired"] > 10
    assert statuses["withdrawn"] == len(withdrawn) > 5
    assert 20 <= len(awards) <= 200
    times = [t for _, t in leaves]
    assert times == sorted(times)  # the log is in time order
    assert times[-1] <= datetime.now(UTC)


def test_demo_credentials_work(seeded: tuple[Settings, Database, float]) -> None:
    settings, _, _ = seeded
    with TestClient(create_app(settings)) as c:
        for username, role, password in demo.DEMO_STAFF:
            resp = c.post("/api/auth/token", data={"username": username, "password": password})
            assert resp.status_code == 200
            assert resp.json()["account"]["role"] == role
        uscc = demo.SHOWCASE[0]["uscc"]
        resp = c.post(
            "/api/auth/token", data={"username": uscc, "password": demo.DEMO_MERCHANT_PASSWORD}
        )
        assert resp.status_code == 200
        public = c.get(f"/api/merchants/{uscc}").json()
        assert public["verification"]["label"] == "已核验"
        assert public["current_pledge"]["status"] == "active"
        assert public["demonstration"]["status"] == "active"
        assert (
            c.get(f"/api/merchants/{demo.SHOWCASE[1]['uscc']}").json()["verification"]["label"]
            == "未核验"
        )
        stats = c.get("/api/stats/overview").json()
        assert stats["merchants"] == demo.DEMO_MERCHANTS
        assert 0 < stats["demonstration_units"] < 200


def test_second_seed_does_nothing(seeded: tuple[Settings, Database, float]) -> None:
    settings, db, _ = seeded
    with db.read() as s:
        before = log.tree_size(s)
    assert demo.seed_demo(db, settings=settings) is None
    with db.read() as s:
        assert log.tree_size(s) == before


def test_refused_in_production(tmp_path: Path) -> None:
    settings = Settings(
        env="production",
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path}/x.sqlite3",
        secret_key="p" * 40,
    )
    with pytest.raises(RuntimeError, match="production"):
        demo.seed_demo(Database(settings.db_url), settings=settings)
    app = create_app(settings)
    assert demo.seed_on_first_start not in app.state.startup_hooks


def test_first_start_hook(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", anchor_enabled=False, demo_on_first_start=True)
    with TestClient(create_app(settings)) as c:
        assert c.get("/api/stats/overview").json()["merchants"] == demo.DEMO_MERCHANTS
    # A restart with data finds merchants and seeds nothing more.
    with TestClient(create_app(settings)) as c:
        assert c.get("/api/stats/overview").json()["merchants"] == demo.DEMO_MERCHANTS
    off = make_settings(tmp_path / "other", anchor_enabled=False, demo_on_first_start=False)
    with TestClient(create_app(off)) as c:
        assert c.get("/api/stats/overview").json()["merchants"] == 0


def test_demo_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from backend import cli

    monkeypatch.setenv("HM_ENV", "test")
    monkeypatch.setenv("HM_DATA_DIR", str(tmp_path / "cli"))
    with pytest.raises(SystemExit) as exit_:
        cli.main(["demo", "--merchants", "60"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "seeded 60 merchants" in out
    assert "regulator / demo-regulator-2025" in out
    db = Database(f"sqlite:///{tmp_path / 'cli' / 'honest-metering.sqlite3'}")
    with db.read() as s:
        assert s.execute(select(func.count()).select_from(Merchant)).scalar_one() == 60
    db.dispose()
    with pytest.raises(SystemExit) as again:
        cli.main(["demo"])
    assert again.value.code == 0
    assert "already has merchants" in capsys.readouterr().out
    monkeypatch.setenv("HM_ENV", "production")
    monkeypatch.setenv("HM_SECRET_KEY", "p" * 40)
    monkeypatch.setenv("HM_DATABASE_URL", f"sqlite:///{tmp_path}/prod.sqlite3")
    with pytest.raises(SystemExit) as prod:
        cli.main(["demo"])
    assert prod.value.code == 2


def test_dates_are_plausible(seeded: tuple[Settings, Database, float]) -> None:
    _, db, _ = seeded
    with db.read() as s:
        first = s.execute(select(func.min(Pledge.valid_from))).scalar_one()
    assert date(2020, 1, 1) < first < queries.shanghai_date(datetime.now(UTC))


def test_readme_states_the_demo_credentials() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for username, _, password in demo.DEMO_STAFF:
        assert f"`{username}` | `{password}`" in readme
    assert f"`{demo.DEMO_MERCHANT_PASSWORD}`" in readme
    assert demo.SHOWCASE[0]["uscc"] in readme
