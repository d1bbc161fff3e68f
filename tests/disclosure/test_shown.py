"""What the shop page shows comes from the tables, and says which record and values.

- Honest tables agree with the log, field for field, for every kind of record a
  shop page lists (the demo's two years of history, on SQLite and PostgreSQL):
  otherwise 验证 would call an honest page inconsistent.
- The page shows a table's value (not the log's), with the record id and the
  value next to the text (``data-record``, ``data-shown``), and a record whose
  row is gone is shown as missing rather than read from the log.

The browser side (验证 naming the difference) is test_page_matches_record_browser.py.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update
from sqlmodel import Session

from backend.db import Database
from backend.demo import seed as demo
from backend.disclosure import describe, shop
from backend.disclosure.kept import KeptPage
from backend.ledger.models import LogLeaf
from backend.supervision.models import SupervisionRecord
from backend.timeutil import today_shanghai
from tests import factories
from tests.conftest import make_settings

HTML = {"Accept": "text/html,application/xhtml+xml"}
SHOP_TYPES = set(describe.SECTION_OF)
LEAF = LogLeaf.__table__  # type: ignore[attr-defined]


def _seeded_db(tmp_path: Path, database_url: str | None) -> Database:
    extra: dict[str, Any] = {"database_url": database_url} if database_url else {}
    settings = make_settings(tmp_path / "data", anchor_enabled=False, **extra)
    settings.data_dir.mkdir(parents=True)
    db = Database(settings.db_url)
    db.migrate()
    now = datetime.now(UTC)
    assert demo.seed_demo(db, settings=settings, merchants_n=300, now=now) is not None
    return db


def _assert_tables_agree_with_the_log(db: Database) -> Counter[str]:
    kinds: Counter[str] = Counter()
    with Session(db.engine) as s:
        logged = {
            rid: json.loads(bytes(canonical))
            for rid, typ, canonical in s.execute(
                select(LEAF.c.record_id, LEAF.c.record_type, LEAF.c.canonical)
            )
            if typ in SHOP_TYPES
        }
        held = shop.records_as_held(s, {rid: env["type"] for rid, env in logged.items()})
    assert set(held) == set(logged), "records a shop page may list but no table holds"
    for rid, env in logged.items():
        h = held[rid]
        kinds[env["type"]] += 1
        assert (h["type"], h["at"], h["refs"]) == (env["type"], env["at"], env["refs"]), rid
        assert h["body"] == {k: env["body"].get(k) for k in h["body"]}, (rid, env["type"])
    return kinds


def test_tables_agree_with_the_log_on_every_record_a_shop_page_lists(tmp_path: Path) -> None:
    kinds = _assert_tables_agree_with_the_log(_seeded_db(tmp_path, None))
    # The demo's history has every kind of record a shop page lists, but revocations
    # (withheld with what they revoke; their rows are written like every outcome's).
    assert set(kinds) == SHOP_TYPES - {"supervision.revocation"}, kinds


def test_tables_agree_with_the_log_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    kinds = _assert_tables_agree_with_the_log(_seeded_db(tmp_path, postgres_url))
    assert set(kinds) == SHOP_TYPES - {"supervision.revocation"}, kinds


def _item(page: str, record_id: str) -> str:
    found = re.search(rf'<li class="record" id="rec-{record_id[:16]}".*?</li>', page, re.S)
    assert found, f"record {record_id} not on the page"
    return found.group(0)


def _shown(fragment: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    found = re.search(
        r'data-record="(\w+)" data-shown="([^"]*)" data-shown-how="([^"]*)"', fragment
    )
    assert found, fragment[:300]
    return (
        found.group(1),
        json.loads(html.unescape(found.group(2))),
        json.loads(html.unescape(found.group(3))),
    )


def _penalty(client: TestClient, regulator: dict[str, str], uscc: str) -> dict[str, Any]:
    r = client.post(
        "/api/supervision/records",
        json={
            "kind": "penalty",
            "uscc": uscc,
            "decision_no": "巴市监罚〔2025〕7号",
            "decided_on": (today_shanghai() - timedelta(days=3)).isoformat(),
            "authority": "巴中市市场监督管理局",
            "amount_fen": 410000,
            "evidence_sha256": "cd" * 32,
        },
        headers=regulator,
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


class TestShopPage:
    def test_shows_the_table_with_the_record_and_values_behind_the_text(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        m = factories.register(client, name="巴中市称心肉铺")
        penalty = _penalty(client, regulator, m["uscc"])
        page = client.get(f"/merchants/{m['uscc']}", headers=HTML).text
        rid, shown, how = _shown(_item(page, penalty["record_id"]))
        assert rid == penalty["record_id"]
        assert shown["body.amount_fen"] == 410000 and how["body.amount_fen"]["as"] == "yuan"
        assert shown["type"] == "supervision.penalty" and "at" in shown
        assert '<dd data-field="body.amount_fen">4,100.00 元</dd>' in page

        with client.app.state.ctx.db.session() as s:  # type: ignore[attr-defined]
            row = s.get(SupervisionRecord, rid)
            s.execute(
                update(SupervisionRecord)
                .where(SupervisionRecord.record_id == rid)  # type: ignore[arg-type]
                .values(body={**row.body, "amount_fen": 1})
            )
            # The kept copy of the page (backend/disclosure/kept.py) is rendered again
            # when the merchant's stamp changes; an insider drops it to show the edit now.
            s.execute(delete(KeptPage))
            s.commit()
        page = client.get(f"/merchants/{m['uscc']}", headers=HTML).text
        item = _item(page, rid)
        assert '<dd data-field="body.amount_fen">0.01 元</dd>' in item
        assert _shown(item)[1]["body.amount_fen"] == 1
        # The header: the registration record's fields.
        header = re.search(r'<div class="card" id="merchant-card"[^>]*>', page)
        assert header and _shown(header.group(0))[0] == m["record_id"]
        assert _shown(header.group(0))[1]["body.name"] == "巴中市称心肉铺"

    def test_a_record_without_its_row_is_shown_missing_not_read_from_the_log(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        m = factories.register(client)
        penalty = _penalty(client, regulator, m["uscc"])
        with client.app.state.ctx.db.session() as s:  # type: ignore[attr-defined]
            s.execute(
                delete(SupervisionRecord).where(
                    SupervisionRecord.record_id == penalty["record_id"]  # type: ignore[arg-type]
                )
            )
            s.commit()
        r = client.get(f"/merchants/{m['uscc']}", headers=HTML)
        assert r.status_code == 200
        item = _item(r.text, penalty["record_id"])
        assert "数据表中缺少这条记录" in item and 'data-shown-missing="true"' in item
        assert "4,100.00" not in item


@pytest.mark.parametrize(
    ("fen", "text"),
    [(0, "0.00 元"), (1, "0.01 元"), (410000, "4,100.00 元"), (123456789, "1,234,567.89 元"),
     (-150, "-1.50 元"), (None, "—"), (True, "—"), (1.5, "—")],
)
def test_yuan(fen: Any, text: str) -> None:
    from backend.disclosure.shown import yuan

    assert yuan(fen) == text
