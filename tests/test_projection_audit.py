"""Tables are projections of the log: tampering with them while the service is
stopped is named by ``honest-metering audit`` (table, key, record id), and
``honest-metering rebuild --from-log`` restores the public answers byte for byte.

Runs on SQLite and on PostgreSQL, on a seeded demo database.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from backend import cli
from backend.app import create_app
from backend.config import Settings
from backend.db import Database
from backend.demo import seed as demo
from backend.timeutil import utcnow
from tests import factories
from tests.conftest import make_settings


@dataclass
class World:
    settings: Settings
    db: Database
    env: dict[str, str]


@pytest.fixture(params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    data = tmp_path / "data"
    env = {"HM_ENV": "test", "HM_DATA_DIR": str(data), "HM_DEMO_ON_FIRST_START": "false",
           "HM_SECRET_KEY": "test-secret-key-0123456789abcdef0123456789"}
    overrides: dict[str, object] = {"anchor_enabled": False, "view_warm_interval_s": 0}
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        overrides["database_url"] = url
        env["HM_DATABASE_URL"] = url
    settings = make_settings(data, **overrides)
    settings.data_dir.mkdir(parents=True)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    db = Database(settings.db_url)
    db.migrate()
    # Yesterday, so that what the service does today follows the seeded history.
    assert demo.seed_demo(db, settings=settings, merchants_n=60, now=utcnow() - timedelta(days=1))
    yield World(settings, db, env)
    db.dispose()


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    return int(exit_.value.code or 0), capsys.readouterr().out


_NONCE = re.compile(r'nonce="[^"]*"|nonce-[A-Za-z0-9+/=_-]+')


def _public_answers(settings: Settings, uscc: str) -> dict[str, bytes]:
    """What anyone can read about one merchant (the page without its per-request nonce)."""
    paths = [
        f"/api/merchants/{uscc}",
        f"/api/merchants/{uscc}/credit",
        f"/api/merchants/{uscc}/records",
        f"/api/merchants?q={uscc[:8]}",
        f"/merchants/{uscc}",
    ]
    out = {}
    with TestClient(create_app(settings)) as client:
        for p in paths:
            resp = client.get(p)
            assert resp.status_code == 200, (p, resp.text)
            out[p] = _NONCE.sub("nonce", resp.text).encode()
    return out


def _one(db: Database, sql: str, **params: object) -> tuple:  # type: ignore[type-arg]
    with db.engine.connect() as conn:
        row = conn.execute(text(sql), params).first()
    assert row is not None, sql
    return tuple(row)


def test_audit_names_tampering_and_rebuild_restores(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    db, settings = world.db, world.settings
    code, out = _run(["audit", "--quiet"], capsys)
    assert code == 0, out
    assert "every table the public reads matches the log" in out

    # A merchant with a penalty: its name and the amount are what a visitor reads.
    (uscc, penalty_id, body) = _one(
        # verified: an unverified registration shows no tier (issue 15 M5)
        db, "SELECT uscc, record_id, body FROM supervision_record WHERE kind = 'penalty' "
        "AND uscc IN (SELECT uscc FROM merchant_verification) ORDER BY record_id LIMIT 1",
    )
    (merchant_rid, real_name) = _one(
        db, "SELECT record_id, name FROM merchant WHERE uscc = :u", u=uscc
    )
    (gone_id,) = _one(
        db, "SELECT record_id FROM supervision_record WHERE kind = 'spot_check' "
        "AND uscc <> :u ORDER BY record_id LIMIT 1", u=uscc,
    )
    before = _public_answers(settings, uscc)  # also keeps the merchant's view

    body = json.loads(body) if isinstance(body, str) else dict(body)
    real_amount = body["amount_fen"]
    body["amount_fen"] = 1
    fake = "f" * 64
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE merchant SET name = '篡改后的名称' WHERE uscc = :u"), {"u": uscc})
        conn.execute(
            text("UPDATE supervision_record SET body = :b WHERE record_id = :r"),
            {"b": json.dumps(body, ensure_ascii=False), "r": penalty_id},
        )
        conn.execute(text("DELETE FROM supervision_record WHERE record_id = :r"), {"r": gone_id})
        conn.execute(
            text(
                "INSERT INTO supervision_record (record_id, leaf_index, uscc, kind, "
                "effective_on, body, refs, target_record_id, draw_id, at, account_id) "
                "SELECT :f, 999999, uscc, kind, effective_on, body, refs, target_record_id, "
                "draw_id, at, account_id FROM supervision_record WHERE record_id = :r"
            ),
            {"f": fake, "r": penalty_id},
        )
        conn.execute(
            text("UPDATE merchant_view SET body = replace(body, :a, :b) WHERE uscc = :u"),
            {"a": real_name, "b": "假冒的名称", "u": uscc},
        )
    tampered = _public_answers(settings, uscc)
    assert b"\xe5\x81\x87\xe5\x86\x92" in tampered[f"/api/merchants/{uscc}"]  # 假冒: served

    code, out = _run(["audit", "--quiet"], capsys)
    assert code == 1, out
    findings = [line for line in out.splitlines() if line.startswith("FINDING table ")]
    joined = "\n".join(findings)
    assert f"merchant [{uscc}] record {merchant_rid}: altered: name: '篡改后的名称'" in joined
    assert (
        f"supervision_record [{penalty_id}] record {penalty_id}: altered: "
        f"body.amount_fen: 1 should be {real_amount}"
    ) in joined
    assert f"supervision_record [{gone_id}] record {gone_id}: row missing" in joined
    assert f"supervision_record [{fake}] record {fake}: row in no record (inserted)" in joined
    assert f"merchant_view [{uscc}]" in joined
    assert "audit FAILED" in out and "rebuild --from-log" in out

    code, out = _run(["rebuild", "--from-log", "--dry-run", "--quiet"], capsys)
    assert code == 0 and "dry run: nothing written" in out
    code, out = _run(["audit", "--quiet"], capsys)
    assert code == 1, "a dry run must not write"

    code, out = _run(["rebuild", "--from-log", "--quiet"], capsys)
    assert code == 0, out
    code, out = _run(["audit", "--quiet"], capsys)
    assert code == 0, out
    after = _public_answers(settings, uscc)
    for path, answer in before.items():
        assert after[path] == answer, path


def test_private_columns_are_checked_against_the_record(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """A contact is in no record in clear; its salted digest is, and audit checks it."""
    (uscc,) = _one(world.db, "SELECT uscc FROM merchant ORDER BY uscc LIMIT 1")
    with world.db.engine.begin() as conn:
        conn.execute(
            text("UPDATE merchant SET contact_phone = '13900000000' WHERE uscc = :u"),
            {"u": uscc},
        )
    code, out = _run(["audit", "--quiet"], capsys)
    assert code == 1
    assert f"merchant [{uscc}]" in out and "contact_digest" in out


def test_rating_history_is_checked_against_the_log(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """The tier history a shop page charts is recomputed from the records accepted by
    the time each change was written."""
    (row_id, tier) = _one(world.db, "SELECT id, tier FROM rating_change WHERE tier <> 'A' "
                                    "ORDER BY id LIMIT 1")
    with world.db.engine.begin() as conn:
        conn.execute(text("UPDATE rating_change SET tier = 'A' WHERE id = :i"), {"i": row_id})
    code, out = _run(["audit", "--quiet"], capsys)
    assert code == 1
    assert f"rating_change [{row_id}]" in out and f"tier: 'A' should be '{tier}'" in out


def test_staff_actions_and_registration_decisions_are_projections(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """``account.*``, ``merchant.rejected`` and ``merchant.transferred`` (issue 15 M5) are
    records with projections: audit names a tampered or deleted row, rebuild restores it,
    and a re-registration after a rejection replays to the same merchant row."""
    db, settings = world.db, world.settings
    (squatted,) = _one(db, "SELECT uscc FROM merchant WHERE uscc NOT IN "
                           "(SELECT uscc FROM merchant_verification) ORDER BY uscc LIMIT 1")
    (transferred,) = _one(db, "SELECT uscc FROM merchant_verification ORDER BY uscc LIMIT 1")
    with TestClient(create_app(settings)) as client:
        regulator = factories.bearer(client, username="regulator", password="demo-regulator-2025")
        admin = factories.bearer(client, username="admin", password="demo-admin-2025")
        reason = {"reason": "该统一社会信用代码不属于登记人"}
        rejected = client.post(f"/api/merchants/{squatted}/rejection", json=reason,
                               headers=regulator)
        assert rejected.status_code == 201, rejected.text
        owner = factories.register(client, headers=regulator, uscc=squatted, name="真正的经营者")
        resp = client.post(f"/api/merchants/{transferred}/transfer", json=reason,
                           headers=regulator)
        assert resp.status_code == 201, resp.text
        resp = client.post("/api/accounts/regulator/password-reset", headers=admin)
        assert resp.status_code == 200, resp.text
        reset_id = resp.json()["record_id"]
    code, out = _run(["audit", "--quiet"], capsys)
    assert code == 0, out

    rejection_id = rejected.json()["record_id"]
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE merchant SET name = '冒名登记的商店', record_id = :r "
                          "WHERE uscc = :u"), {"u": squatted, "r": "0" * 64})
        conn.execute(text("DELETE FROM merchant_registration_action WHERE record_id = :r"),
                     {"r": rejection_id})
        conn.execute(text("UPDATE account_action SET action = 'enabled' WHERE record_id = :r"),
                     {"r": reset_id})
    code, out = _run(["audit", "--quiet"], capsys)
    assert code == 1, out
    assert f"merchant [{squatted}] record {owner['record_id']}: altered" in out
    assert f"merchant_registration_action [{rejection_id}] record {rejection_id}: row missing" \
        in out
    assert f"account_action [{reset_id}] record {reset_id}: altered: action: 'enabled' " \
        "should be 'password_reset'" in out
    code, out = _run(["rebuild", "--from-log", "--quiet"], capsys)
    assert code == 0, out
    code, out = _run(["audit", "--quiet"], capsys)
    assert code == 0, out
    (name,) = _one(db, "SELECT name FROM merchant WHERE uscc = :u", u=squatted)
    assert name == "真正的经营者"


def test_a_kept_page_edited_behind_the_service_is_named_and_rebuilt(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """A kept shop page (backend/disclosure/kept.py) is served as it is while its ETag
    holds: audit compares it with the page rendered afresh and names an edited one;
    ``rebuild --from-log`` renders it again."""
    import gzip

    db, settings = world.db, world.settings
    (uscc, name) = _one(
        db, "SELECT uscc, name FROM merchant WHERE uscc IN "
        "(SELECT uscc FROM merchant_verification) ORDER BY uscc LIMIT 1",
    )
    page = f"/merchants/{uscc}"
    before = _public_answers(settings, uscc)[page]  # kept by this visit
    code, out = _run(["audit", "--quiet"], capsys)
    assert code == 0, out

    (body,) = _one(db, "SELECT body FROM kept_page WHERE uscc = :u", u=uscc)
    forged = gzip.decompress(bytes(body)).replace(name.encode(), "假冒的名称".encode())
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE kept_page SET body = :b WHERE uscc = :u"),
                     {"b": gzip.compress(forged), "u": uscc})
    assert "假冒的名称".encode() in _public_answers(settings, uscc)[page]  # served as kept

    code, out = _run(["audit", "--quiet"], capsys)
    assert code == 1, out
    assert f"FINDING table kept_page [{uscc}]" in out, out

    code, out = _run(["rebuild", "--from-log", "--quiet"], capsys)
    assert code == 0, out
    (rebuilt,) = _one(db, "SELECT body FROM kept_page WHERE uscc = :u", u=uscc)
    assert gzip.decompress(bytes(rebuilt)) == before  # rendered again, not just dropped
    code, out = _run(["audit", "--quiet"], capsys)
    assert code == 0, out
    assert _public_answers(settings, uscc)[page] == before
