"""Demo seeding: ~2,000 made-up merchants with a consistent two-year history,
in seconds, with the README's demo credentials; two years of supervision
outcomes recorded through the services and rated by the credit service; the
inspection directories; the demo draw (after seeding, never in it); the
first-start hook; the refusal to seed a production database."""

from __future__ import annotations

import functools
import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from backend.app import create_app
from backend.config import Settings
from backend.credit import service as credit
from backend.credit.models import CreditRepair, CreditRepairDecision, MerchantRating
from backend.db import Database
from backend.demo import seed as demo
from backend.inspections.models import Draw, InspectionItem, Inspector, InspectorConflict
from backend.ledger import log
from backend.ledger.models import LogLeaf
from backend.merchants.models import Merchant, MerchantVerification
from backend.merchants.reference import DIVISIONS, SECTORS, SPOT_CHECK_RESULTS
from backend.pledges import queries
from backend.pledges.models import (
    DemonstrationAward,
    DemonstrationWithdrawal,
    Pledge,
    PledgeWithdrawal,
)
from backend.pledges.queries import add_months
from backend.supervision.models import Complaint, ComplaintReview, SupervisionRecord
from backend.timeutil import shanghai_date, utcnow
from backend.uscc import is_valid_uscc
from tests.conftest import make_settings

Seeded = tuple[Settings, Database, float, datetime, demo.DemoSummary]
LEGAL_DATES = ("checked_on", "decided_on", "verified_on", "on")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    settings = make_settings(tmp_path_factory.mktemp("demo") / "data", anchor_enabled=False)
    settings.data_dir.mkdir(parents=True)
    db = Database(settings.db_url)
    db.migrate()
    now = utcnow()
    started = time.monotonic()
    summary = demo.seed_demo(db, settings=settings, now=now)
    elapsed = time.monotonic() - started
    assert summary is not None
    yield settings, db, elapsed, now, summary
    db.dispose()


def test_about_two_thousand_merchants_everywhere(seeded: Seeded) -> None:
    _, db, _, _, _ = seeded
    with db.read() as s:
        rows = s.execute(select(Merchant.uscc, Merchant.sector, Merchant.region_code)).all()
    assert len(rows) == demo.DEMO_MERCHANTS
    assert all(is_valid_uscc(u) for u, _, _ in rows)
    assert {sec for _, sec, _ in rows} == set(SECTORS)
    assert {reg for _, _, reg in rows} == set(DIVISIONS)
    assert {m["uscc"] for m in demo.SHOWCASE} <= {u for u, _, _ in rows}


def test_history_is_consistent(seeded: Seeded) -> None:
    _, db, _, _, _ = seeded
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


def test_outcomes_are_records_written_by_the_services(seeded: Seeded) -> None:
    _, db, _, _, summary = seeded
    with db.read() as s:
        rows = s.execute(select(SupervisionRecord)).scalars().all()
        leaves = {
            rid: (typ, subject, idx)
            for rid, typ, subject, idx in s.execute(
                select(LogLeaf.record_id, LogLeaf.record_type, LogLeaf.subject, LogLeaf.leaf_index)
            )
        }
        # Every outcome row is its record, and every outcome record has its row.
        for r in rows:
            assert leaves[r.record_id] == (f"supervision.{r.kind}", r.uscc, r.leaf_index)
        awards = len(s.execute(select(DemonstrationAward)).all()) + len(
            s.execute(select(DemonstrationWithdrawal)).all()
        )
        outcome_records = sum(1 for t, _, _ in leaves.values() if t.startswith("supervision."))
        assert outcome_records == len(rows) + awards
        repairs = s.execute(
            select(CreditRepair, CreditRepairDecision).join(
                CreditRepairDecision,
                CreditRepairDecision.repair_id == CreditRepair.id,  # type: ignore[arg-type]
                isouter=True,
            )
        ).all()
        complaints = s.execute(
            select(Complaint, ComplaintReview).join(
                ComplaintReview,
                ComplaintReview.complaint_id == Complaint.id,  # type: ignore[arg-type]
                isouter=True,
            )
        ).all()
        ratings = {r.uscc: r for r in s.execute(select(MerchantRating)).scalars()}
        s.expunge_all()  # read below, after the session
    kinds = Counter(r.kind for r in rows)
    for kind in (
        "spot_check",
        "penalty",
        "complaint_verified",
        "abnormal_list",
        "serious_list",
        "instrument",
    ):
        assert kinds[kind] > 0, kind
    assert kinds == summary.supervision.outcomes

    results = Counter(r.body["result"] for r in rows if r.kind == "spot_check")
    assert set(results) == set(SPOT_CHECK_RESULTS)
    assert results.most_common(1)[0][0] == "未发现问题"
    assert results["未发现问题"] > 0.6 * sum(results.values())
    corrected = Counter(r.kind for r in rows if any(x["rel"] == "supersedes" for x in r.refs))
    assert corrected["spot_check"] > 0 and corrected["penalty"] > 0  # final results; paid fines

    penalties = [r.body for r in rows if r.kind == "penalty"]
    assert {p["lower_amount"] for p in penalties} == {True, False}
    assert {p["performed"] for p in penalties} == {True, False}
    assert any(p["circulated_criticism"] for p in penalties)
    for kind in ("abnormal_list", "serious_list"):
        assert {r.body["action"] for r in rows if r.kind == kind} == {"in", "out"}, kind
    assert 1 <= sum(1 for r in rows if r.kind == "serious_list" and r.body["action"] == "in") <= 2
    instruments = {r.body["instrument_type"] for r in rows if r.kind == "instrument"}
    assert {"燃油加油机", "电子计价秤", "出租汽车计价器", "焦度计"} <= instruments
    overdue = [
        u for u, r in ratings.items() if any(f["kind"] == "instrument_overdue" for f in r.factors)
    ]
    assert 5 <= len(overdue) <= 200

    # Credit repair through the real flow: applied by the merchant after the minimum
    # publicity period, approved by the regulator; the penalty then no longer counts.
    approved = [
        (rep, dec) for rep, dec in repairs if dec is not None and dec.decision == "approved"
    ]
    assert 2 <= len(approved) <= 3
    by_id = {r.record_id: r for r in rows}
    for rep, dec in approved:
        assert rep.record_id in leaves and dec.record_id in leaves
        penalty = by_id[rep.penalty_record_id]
        months = 12 if penalty.body["special_sector"] else 6
        assert rep.applied_on >= add_months(date.fromisoformat(penalty.body["decided_on"]), months)
        assert penalty.body["performed"] and not penalty.body["lower_amount"]
        assert rep.applied_on <= dec.decided_on
        assert not any(f["kind"] == "penalty_other" for f in ratings[rep.uscc].factors)

    # Complaints: verified ones are records; a few anonymous ones still wait for review.
    reviewed = [(c, r) for c, r in complaints if r is not None]
    assert all(r.record_id in leaves for _, r in reviewed if r.outcome == "verified")
    assert any(r.outcome == "rejected" and r.record_id is None for _, r in reviewed)
    pending = [c for c, r in complaints if r is None]
    assert len(pending) >= 3
    assert all(c.contact is None and c.account_id is None for c in pending)
    assert kinds["complaint_verified"] > 50


def test_tiers_look_like_a_city(seeded: Seeded) -> None:
    _, db, _, now, summary = seeded
    today = shanghai_date(now)
    with db.read() as s:
        tiers = Counter(t for (t,) in s.execute(select(MerchantRating.tier)))
    assert sum(tiers.values()) == demo.DEMO_MERCHANTS  # everyone is rated
    assert tiers == Counter(summary.tiers)
    share = {t: tiers[t] / demo.DEMO_MERCHANTS for t in "ABCD"}
    assert 0.08 <= share["A"] <= 0.22, share
    assert 0.55 <= share["B"] <= 0.80, share
    assert 0.07 <= share["C"] <= 0.18, share
    assert 0.01 <= share["D"] <= 0.06, share
    # The stored ratings are the credit service's own, and current: a full re-rating
    # from the log changes none of them.
    assert credit.sweep(db, today=today, full=True, now=now).changed == 0


def test_nothing_is_dated_in_the_future(seeded: Seeded) -> None:
    _, db, _, now, _ = seeded
    today = shanghai_date(now)
    with db.read() as s:
        latest = s.execute(select(func.max(LogLeaf.appended_at))).scalar_one()
        rows = s.execute(select(SupervisionRecord)).scalars().all()
        complaints = s.execute(select(Complaint)).scalars().all()
        reviews = s.execute(select(ComplaintReview)).scalars().all()
        repairs = s.execute(select(CreditRepair)).scalars().all()
        decisions = s.execute(select(CreditRepairDecision)).scalars().all()
        conflicts = s.execute(select(InspectorConflict)).scalars().all()
        s.expunge_all()
    assert latest.replace(tzinfo=UTC) <= now
    for r in rows:
        assert r.effective_on <= today and r.at.replace(tzinfo=UTC) <= now
        for key in LEGAL_DATES:
            if key in r.body:
                assert date.fromisoformat(r.body[key]) <= today, r.body
    assert all(c.submitted_at.replace(tzinfo=UTC) <= now for c in complaints)
    assert all(r.decided_on <= today for r in reviews)
    assert all(r.applied_on <= today for r in repairs)
    assert all(d.decided_on <= today for d in decisions)
    assert all(c.declared_on <= today for c in conflicts)
    # ...and the history spreads over two years.
    first = min(r.effective_on for r in rows)
    assert first <= today - timedelta(days=600)
    assert max(r.effective_on for r in rows) >= today - timedelta(days=31)


def test_inspection_directories(seeded: Seeded) -> None:
    _, db, _, _, summary = seeded
    with db.read() as s:
        inspectors = s.execute(select(Inspector)).scalars().all()
        items = s.execute(select(InspectionItem)).scalars().all()
        conflicts = s.execute(select(InspectorConflict)).scalars().all()
        directory_records = [
            bytes(c).decode()
            for (c,) in s.execute(
                select(LogLeaf.canonical).where(LogLeaf.record_type.like("inspection.%"))  # type: ignore[attr-defined]
            )
        ]
        draws = s.execute(select(func.count()).select_from(Draw)).scalar_one()
        s.expunge_all()
    assert 30 <= len(inspectors) <= 50
    assert {i.region_code for i in inspectors} == set(DIVISIONS)
    assert sum(not i.active for i in inspectors) == 1
    for i in inspectors:  # names are private: only their salted digests are records
        assert re.fullmatch(r"[A-Za-z0-9_-]+", i.id)
        assert not any(i.name in text for text in directory_records)
    bases = " ".join(i.legal_basis for i in items)
    for law in (
        "《中华人民共和国计量法》",
        "《商品量计量违法行为处罚规定》",
        "《加油站计量监督管理办法》",
        "《眼镜制配计量监督管理办法》",
    ):
        assert law in bases
    assert len(items) >= 5 and all(i.active for i in items)
    assert 3 <= len(conflicts) <= 5
    assert sum(c.withdrawn_record_id is not None for c in conflicts) == 1
    assert summary.directory == {
        "inspectors": len(inspectors),
        "items": len(items),
        "conflicts": len(conflicts),
    }
    assert draws == 0  # a draw needs the ledger: never part of seeding


def _without_service_ids(body: dict[str, object]) -> str:
    """The body, less the complaint id this service drew itself (a uuid4)."""
    if re.fullmatch(r"[0-9a-f]{32}", str(body.get("complaint_id"))):
        body = {**body, "complaint_id": "-"}
    return str(sorted(body.items()))


def test_seeding_is_deterministic(tmp_path: Path) -> None:
    """The same seed on the same day plans the same history (salts and the ids the
    services draw themselves aside)."""
    now = utcnow()

    def outcomes(name: str) -> list[tuple[str, str, str]]:
        settings = make_settings(tmp_path / name, anchor_enabled=False)
        settings.data_dir.mkdir(parents=True)
        db = Database(settings.db_url)
        db.migrate()
        assert demo.seed_demo(db, settings=settings, merchants_n=150, now=now) is not None
        with db.read() as s:
            rows = s.execute(
                select(
                    SupervisionRecord.uscc, SupervisionRecord.kind, SupervisionRecord.body
                ).order_by(SupervisionRecord.leaf_index)
            ).all()
        db.dispose()
        return [(u, k, _without_service_ids(b)) for u, k, b in rows]

    first = outcomes("one")
    assert len(first) > 200
    assert outcomes("two") == first


def test_demo_credentials_work(seeded: Seeded) -> None:
    settings, _, _, _, _ = seeded
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


def test_second_seed_does_nothing(seeded: Seeded) -> None:
    settings, db, _, _, _ = seeded
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
    hooks = app.state.startup_hooks + app.state.shutdown_hooks
    assert not [h for h in hooks if getattr(h, "__module__", None) == demo.__name__]


def _wait_for_demo_draw(c: TestClient, timeout_s: float = 180.0) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout_s
    while True:
        page = c.get("/api/draws").json()
        if page["total"] and page["items"][0]["status"] == "revealed":
            draw = c.get(f"/api/draws/{page['items'][0]['number']}").json()
            if any(a["result_status"] == "recorded" for a in draw["assignments"]):
                return draw  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"no demo draw after {timeout_s} s: {page}"
        time.sleep(0.5)


def test_first_start_hook(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", anchor_enabled=False, demo_on_first_start=True)
    app = create_app(settings)
    with TestClient(app) as c:
        assert c.get("/api/stats/overview").json()["merchants"] == demo.DEMO_MERCHANTS
        tiers = c.get("/api/stats/tiers").json()["by_tier"]
        assert all(tiers[t] > 0 for t in "ABCD"), tiers
        # After the start, in the background: the draw, revealed, with its first results.
        draw = _wait_for_demo_draw(c)
        recorded = [a for a in draw["assignments"] if a["result_status"] == "recorded"]
        assert 0 < len(recorded) < len(draw["assignments"])
        assert all(len(a["inspectors"]) >= 2 for a in draw["assignments"])
    assert app.state.demo_draw is None  # stopped with the app
    # A restart with data finds merchants and seeds nothing more, nor draws again.
    with TestClient(create_app(settings)) as c:
        assert c.get("/api/stats/overview").json()["merchants"] == demo.DEMO_MERCHANTS
        assert c.get("/api/draws").json()["total"] == 1
    off = make_settings(tmp_path / "other", anchor_enabled=False, demo_on_first_start=False)
    with TestClient(create_app(off)) as c:
        assert c.get("/api/stats/overview").json()["merchants"] == 0


def test_first_start_does_not_wait_for_the_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the ledger down, the service starts with its demo data at once; the draw
    keeps trying in the background and stops with the service."""
    monkeypatch.setattr(demo, "seed_demo", functools.partial(demo.seed_demo, merchants_n=60))
    settings = make_settings(
        tmp_path / "data",
        anchor_enabled=False,
        demo_on_first_start=True,
        ledger_url="http://127.0.0.1:1",
        ledger_key="0x" + "11" * 32,
    )
    app = create_app(settings)
    with TestClient(app) as c:
        assert c.get("/api/stats/overview").json()["merchants"] == 60
        worker = app.state.demo_draw
        deadline = time.monotonic() + 60
        while worker.error is None:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert "ledger" in worker.error.lower()
        assert not worker.done.is_set()  # still trying
        assert c.get("/api/draws").json()["total"] == 0
    assert worker.done.wait(5)


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
    assert "spot checks" in out and "inspection items" in out
    assert "random inspection draw no. 1 revealed" in out
    assert "regulator / demo-regulator-2025" in out
    db = Database(f"sqlite:///{tmp_path / 'cli' / 'honest-metering.sqlite3'}")
    with db.read() as s:
        assert s.execute(select(func.count()).select_from(Merchant)).scalar_one() == 60
        (draw,) = s.execute(select(Draw)).scalars().all()
        assert draw.status == "revealed"
        results = s.execute(
            select(func.count())
            .select_from(SupervisionRecord)
            .where(
                SupervisionRecord.draw_id == draw.id  # type: ignore[arg-type]
            )
        ).scalar_one()
        assert results > 0
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


def test_dates_are_plausible(seeded: Seeded) -> None:
    _, db, _, _, _ = seeded
    with db.read() as s:
        first = s.execute(select(func.min(Pledge.valid_from))).scalar_one()
    assert date(2020, 1, 1) < first < queries.shanghai_date(datetime.now(UTC))


def test_readme_states_the_demo_credentials() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for username, _, password in demo.DEMO_STAFF:
        assert f"`{username}` | `{password}`" in readme
    assert f"`{demo.DEMO_MERCHANT_PASSWORD}`" in readme
    assert demo.SHOWCASE[0]["uscc"] in readme


def test_seeding_reports_progress(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The port stays closed while the demo is seeded: the log says how far it is."""
    settings = make_settings(tmp_path / "data", anchor_enabled=False)
    settings.data_dir.mkdir(parents=True)
    db = Database(settings.db_url)
    db.migrate()
    try:
        with caplog.at_level("INFO", logger=demo.log.name):
            assert demo.seed_demo(db, settings=settings, merchants_n=60) is not None
    finally:
        db.dispose()
    lines = [r.getMessage() for r in caplog.records if r.name == demo.log.name]
    assert lines[0].startswith("demo data: seeding 60 made-up merchants")
    percents = [int(m.group(1)) for m in map(re.compile(r"(\d+)% written").search, lines) if m]
    assert len(percents) >= 10 and percents == sorted(percents) and percents[-1] == 100
    assert lines[-1] == "demo data: rating every merchant"
