"""Search that finds what people type (backend/merchants/search.py), on SQLite and
PostgreSQL: characters left out, any fragment of a credit code, one wrong character,
answered from the database's trigram index (EXPLAIN, never a stopwatch)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, event, insert, text

from backend import cli
from backend.app import create_app
from backend.merchants.models import Merchant, MerchantSearch
from backend.merchants.search import fold, search_keys
from tests import factories
from tests.conftest import make_settings

VALID = "91511902MA62Q3T556"
SHOP = "巴中市巴山诚信超市有限公司"


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    overrides: dict[str, object] = {"anchor_enabled": False, "view_warm_interval_s": 0}
    if request.param == "postgresql":
        overrides["database_url"] = request.getfixturevalue("postgres_url")
    settings = make_settings(tmp_path / "data", **overrides)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def shops(site: TestClient) -> TestClient:
    factories.register(site, uscc=VALID, name=SHOP)
    # Decoys that share some of the typed characters, but not all of them in order.
    factories.register(site, name="巴州区山城超市")
    factories.register(site, name="平昌县佳佳超市")
    factories.register(site, name="巴中市巴山副食店")
    factories.register(site, name="恩阳区柳林银耳专业合作社")
    return site


def _names(client: TestClient, q: str) -> list[str]:
    resp = client.get("/api/merchants", params={"q": q})
    assert resp.status_code == 200, resp.text
    return [m["name"] for m in resp.json()["items"]]


def _codes(client: TestClient, q: str) -> list[str]:
    resp = client.get("/api/merchants", params={"q": q})
    assert resp.status_code == 200, resp.text
    return [m["uscc"] for m in resp.json()["items"]]


class TestWhatPeopleType:
    def test_characters_left_out_best_match_first(self, shops: TestClient) -> None:
        names = _names(shops, "巴山超市")
        assert names[0] == SHOP
        assert "恩阳区柳林银耳专业合作社" not in names

    def test_any_fragment_of_a_credit_code(self, shops: TestClient) -> None:
        assert _codes(shops, "MA62Q3T5") == [VALID]
        assert _codes(shops, "ma62q3t5") == [VALID]
        assert _codes(shops, "Q3T556") == [VALID]

    def test_one_wrong_character_in_a_name(self, shops: TestClient) -> None:
        assert _names(shops, "巴山城信超市")[0] == SHOP  # 诚 typed as 城
        assert _names(shops, "巴中市巴山诚信超币有限公司")[0] == SHOP

    def test_one_wrong_character_in_a_code(self, shops: TestClient) -> None:
        assert _codes(shops, "MA62Q4T5") == [VALID]
        assert _codes(shops, "91511902MA62Q3T55X") == [VALID]

    def test_nothing_like_it(self, shops: TestClient) -> None:
        assert _names(shops, "眼镜") == []
        assert _codes(shops, "XXXXXXXXXX") == []

    def test_total_past_the_last_page(self, shops: TestClient) -> None:
        for q in (None, "超市"):
            first = shops.get("/api/merchants", params={"q": q} if q else {}).json()
            past = shops.get("/api/merchants", params={"offset": 50, **({"q": q} if q else {})})
            assert past.status_code == 200
            assert past.json()["items"] == [] and past.json()["total"] == first["total"] > 0

    def test_suggestions(self, shops: TestClient) -> None:
        resp = shops.get("/api/merchants/suggest", params={"q": "巴山超市"})
        assert resp.status_code == 200, resp.text
        items = resp.json()["items"]
        assert items[0] == {"uscc": VALID, "name": SHOP, "region_name": "巴州区"}
        assert len(items) <= 8
        assert shops.get("/api/merchants/suggest", params={"q": " "}).json() == {"items": []}
        bad = shops.get("/api/merchants/suggest", params={"q": "x\x07"})
        assert bad.status_code == 422 and bad.json()["error"] == "InvalidText"


def _explain(client: TestClient, statement: str, params: object) -> str:
    """The plan of a statement as the driver ran it (its own placeholders and values).
    On PostgreSQL with sequential and plain index scans priced out: whether the planner
    *can* answer from the trigram index, whatever a small test table's statistics make
    cheapest (at 10^5 rows and more it chooses the index by itself)."""
    db = client.app.state.ctx.db  # type: ignore[attr-defined]
    prefix = "EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN "
    with db.read() as s:
        if not db.is_sqlite:
            for knob in ("enable_seqscan", "enable_indexscan", "enable_indexonlyscan"):
                s.connection().exec_driver_sql(f"SET LOCAL {knob} = off")
        rows = s.connection().exec_driver_sql(prefix + statement, params)  # type: ignore[arg-type]
        return "\n".join(str(tuple(r)) for r in rows)


def test_search_is_an_index_lookup_at_a_hundred_thousand_merchants(site: TestClient) -> None:
    """The query a search runs reads the trigram index, not every merchant."""
    db = site.app.state.ctx.db  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    n = 100_000 if db.is_sqlite else 20_000
    rows = [
        {
            "uscc": factories.make_uscc(n=10_000_000 + i, region="511921"),
            "name": f"通江县第{i}号商店",
            "sector": "retail", "region_code": "511921", "sub_area": None,
            "address": "巴中市通江县诺江镇", "contact_person": "x", "contact_phone": "1",
            "contact_salt": "00" * 16, "registered_at": now,
            "record_id": f"{i:064x}", "leaf_index": -1 - i,
        }
        for i in range(n)
    ]
    with db.session() as s:
        s.execute(insert(Merchant), rows)
        s.execute(insert(MerchantSearch), [
            {"uscc": r["uscc"], "folded": fold(r["name"]),
             "keys": search_keys(uscc=r["uscc"], name=r["name"])}
            for r in rows
        ])
        if not db.is_sqlite:
            s.execute(text("ANALYZE merchant_search"))
            s.execute(text("ANALYZE merchant"))
        s.commit()
    target = rows[4_321]
    assert _codes(site, target["uscc"][8:16]) == [target["uscc"]]
    assert _names(site, "第4321号")[0] == target["name"]

    statements: list[tuple[str, object]] = []
    engines = {db.read_engine, db.quick_engine}

    def keep(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        if "merchant_search" in statement or re.search(r"FROM merchant(?!_)", statement):
            statements.append((statement, params))

    reads = db.async_reads  # PostgreSQL: the API's search runs on the event loop
    compile_sql = reads._sql if reads is not None else None

    def kept_sql(statement, keep_compiled=True):  # type: ignore[no-untyped-def]
        assert compile_sql is not None
        sql, values = compile_sql(statement, keep_compiled)
        keep(None, None, sql, values, None, False)
        return sql, values

    for engine in engines:
        event.listen(engine, "before_cursor_execute", keep)
    if reads is not None:
        reads._sql = kept_sql
    try:
        site.get("/api/merchants", params={"q": "第4321号"})
        site.get("/api/merchants", params={"q": target["uscc"][8:16]})
        site.get("/api/merchants", params={"q": target["uscc"][:12]})  # a code's start
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", keep)
        if reads is not None:
            del reads._sql
    assert statements
    assert any("merchant_search" in sql for sql, _ in statements)
    for sql, params in statements:
        plan = _explain(site, sql, params)
        trigram = "merchant_search" in sql
        if db.is_sqlite:
            if trigram:
                assert "VIRTUAL TABLE INDEX" in plan, plan  # the FTS5 trigram index
            assert "SCAN merchant " not in plan + " ", plan
            assert "SCAN merchant," not in plan, plan
            assert "SCAN merchant_search " not in plan + " ", plan
        else:
            if trigram:
                assert "ix_merchant_search_keys_trgm" in plan, plan
            else:
                assert "merchant_pkey" in plan, plan
            assert "Seq Scan on merchant" not in plan, plan


def _cli(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    return int(exit_.value.code or 0)


def test_rebuilt_from_the_log(site: TestClient, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The search keys are a projection: lost rows are named by audit and restored by
    ``rebuild --from-log``, index included."""
    factories.register(site, uscc=VALID, name=SHOP)
    ctx = site.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.session() as s:
        s.execute(delete(MerchantSearch))
        s.commit()
    assert _codes(site, "MA62Q3T5") == []
    settings = ctx.settings
    monkeypatch.setenv("HM_ENV", "test")
    monkeypatch.setenv("HM_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("HM_SECRET_KEY", settings.secret_key.get_secret_value())
    monkeypatch.setenv("HM_DEMO_ON_FIRST_START", "false")
    if not ctx.db.is_sqlite:
        monkeypatch.setenv("HM_DATABASE_URL", str(settings.database_url))
    assert _cli(["audit", "--quiet"]) == 1
    assert _cli(["rebuild", "--from-log", "--quiet"]) == 0
    assert _codes(site, "MA62Q3T5") == [VALID]
    assert _names(site, "巴山超市") == [SHOP]
