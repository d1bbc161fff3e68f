"""The directory tables are projections of the ``inspection.*`` records: every write
goes through the write path, ``audit`` rebuilds the tables from the log and names
each row an operator edited, deleted or inserted behind the service's back (an
inspector's name by its digest), and ``rebuild --from-log`` repairs them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from backend import cli
from backend.app import create_app
from backend.inspections import directory
from backend.ledger import log, projection
from backend.timeutil import today_shanghai, utcnow
from tests import factories
from tests.conftest import make_settings
from tests.inspections.helpers import ctx_of, seed_merchants

INSPECTOR = {"name": "王五", "unit": "巴州区市场监督管理局", "region_code": "511902"}
ITEM = {
    "title": "加油机计量检查",
    "legal_basis": "《加油站计量监督管理办法》",
    "sectors": ["fuel"],
    "method": "现场检查",
}
DIRECTORY_TABLES = {"inspector", "inspection_item", "inspector_conflict"}


def build_directory(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    """Two inspectors (one renamed and moved, one deactivated), an item and its new
    version, two conflicts (one withdrawn), all through the API."""

    def ok(resp: Any, status: int) -> dict[str, Any]:
        assert resp.status_code == status, resp.text
        return resp.json()  # type: ignore[no-any-return]

    first = ok(client.post("/api/inspectors", json=INSPECTOR, headers=headers), 201)
    second = ok(
        client.post("/api/inspectors", json={**INSPECTOR, "name": "赵六"}, headers=headers), 201
    )
    renamed = ok(
        client.patch(
            f"/api/inspectors/{first['id']}",
            json={"name": "王五一", "unit": "恩阳区市场监督管理局", "region_code": "511903"},
            headers=headers,
        ),
        200,
    )
    ok(
        client.patch(f"/api/inspectors/{second['id']}", json={"active": False}, headers=headers),
        200,
    )
    item = ok(client.post("/api/inspection-items", json=ITEM, headers=headers), 201)
    ok(
        client.patch(
            f"/api/inspection-items/{item['id']}",
            json={"sectors": ["fuel", "market"], "active": False},
            headers=headers,
        ),
        200,
    )
    usccs = seed_merchants(client, tiers=["B", "B"])
    kept = ok(
        client.post(
            f"/api/inspectors/{first['id']}/conflicts",
            json={"uscc": usccs[0], "reason": "配偶经营该店"},
            headers=headers,
        ),
        201,
    )
    ended = ok(
        client.post(
            f"/api/inspectors/{second['id']}/conflicts", json={"uscc": usccs[1]}, headers=headers
        ),
        201,
    )
    withdrawn = ok(
        client.delete(f"/api/inspectors/{second['id']}/conflicts/{ended['id']}", headers=headers),
        200,
    )
    return {
        "first": first,
        "renamed": renamed,
        "second": second,
        "item": item,
        "kept": kept,
        "withdrawn": withdrawn,
        "usccs": usccs,
    }


def audit(client: TestClient) -> list[projection.Difference]:
    """The projection audit, as ``honest-metering audit`` runs it."""
    ctx = ctx_of(client)
    with ctx.db.read() as s:
        _, found = projection.audit_all(
            s, projection.CheckContext(ctx.settings, today_shanghai(utcnow()))
        )
    return found


def rebuild(client: TestClient) -> list[projection.Difference]:
    ctx = ctx_of(client)
    with ctx.db.session() as s:
        found = projection.rebuild_all(
            s, projection.CheckContext(ctx.settings, today_shanghai(utcnow())), dry_run=False
        )
        s.commit()
    return found


def sql(client: TestClient, statement: str, **params: object) -> None:
    with ctx_of(client).db.session() as s:
        s.execute(text(statement), params)
        s.commit()


def lines(found: list[projection.Difference]) -> list[str]:
    return sorted(d.line() for d in found if d.table in DIRECTORY_TABLES)


@pytest.fixture
def built(client: TestClient, regulator: dict[str, str]) -> dict[str, Any]:
    return build_directory(client, regulator)


class TestProjections:
    def test_every_table_is_registered(self) -> None:
        names = {p.name for p in projection.all_projections()}
        assert names >= DIRECTORY_TABLES
        # A draw and its plan are projections; its committed inputs are in no record
        # (their roots are) and are audited against those roots instead.
        assert names >= {"draw", "draw_assignment"}
        assert not names & {"draw_snapshot_entry", "draw_inspector", "draw_recusal"}

    def test_written_rows_are_the_replay_of_the_log(
        self, client: TestClient, regulator: dict[str, str], built: dict[str, Any]
    ) -> None:
        assert lines(audit(client)) == []
        ctx = ctx_of(client)
        with ctx.db.read() as s:
            first = directory.get_inspector(s, built["first"]["id"])
            created = log.get_envelope(s, built["first"]["record_id"])
            newest = log.get_envelope(s, built["renamed"]["record_id"])
            # created_at comes from the first version, updated_at from the newest.
            assert first.created_at.replace(tzinfo=None) == projection.parse_time(
                created["at"]
            ).replace(tzinfo=None)
            assert first.updated_at.replace(tzinfo=None) == projection.parse_time(
                newest["at"]
            ).replace(tzinfo=None)
            assert (first.name, first.unit, first.region_code) == (
                "王五一",
                "恩阳区市场监督管理局",
                "511903",
            )
            assert newest["body"]["name_digest"] == directory.name_digest(first.name_salt, "王五一")
            assert "王五" not in str(newest)
            second = directory.get_inspector(s, built["second"]["id"])
            assert second.name == "赵六" and second.active is False  # the name is kept
            item = directory.get_item(s, built["item"]["id"])
            assert item.sectors == ["fuel", "market"] and item.active is False
            assert directory.active_conflicts(s) == {(built["first"]["id"], built["usccs"][0])}
        staff = client.get(
            f"/api/inspectors/{built['first']['id']}/conflicts", headers=regulator
        ).json()
        assert [(c["reason"], c["active"]) for c in staff] == [("配偶经营该店", True)]
        assert built["withdrawn"]["active"] is False
        assert built["withdrawn"]["withdrawn_record_id"] == built["withdrawn"]["record_id"]

    def test_tampered_item_is_named_and_rebuilt(
        self, client: TestClient, built: dict[str, Any]
    ) -> None:
        item_id = built["item"]["id"]
        sql(
            client,
            "UPDATE inspection_item SET title = '篡改的事项', active = :t WHERE id = :i",
            t=True,
            i=item_id,
        )
        found = lines(audit(client))
        assert len(found) == 1, found
        assert found[0].startswith(f"inspection_item [{item_id}] record ")
        assert "altered: title: '篡改的事项' should be '加油机计量检查'" in found[0]
        assert "active: True should be False" in found[0]

        assert len(lines(rebuild(client))) == 1
        assert lines(audit(client)) == []
        shown = client.get("/api/inspection-items").json()["items"]
        assert [(i["title"], i["active"]) for i in shown] == [("加油机计量检查", False)]

    def test_tampered_unit_and_name_are_named(
        self, client: TestClient, regulator: dict[str, str], built: dict[str, Any]
    ) -> None:
        iid = built["first"]["id"]
        sql(client, "UPDATE inspector SET unit = '伪造的单位', name = '张三' WHERE id = :i", i=iid)
        found = lines(audit(client))
        rid = built["renamed"]["record_id"]
        assert found == [
            f"inspector [{iid}] record {rid}: altered: unit: '伪造的单位' should be "
            "'恩阳区市场监督管理局'",
            f"inspector [{iid}] record {rid}: private: name/name_salt do not match the "
            "record's name_digest",
        ]
        rebuild(client)
        # The unit comes back from the log; the name is in no record, so it cannot.
        assert lines(audit(client)) == [found[1]]
        shown = client.get("/api/inspectors", headers=regulator).json()["items"]
        assert [i["unit"] for i in shown if i["id"] == iid] == ["恩阳区市场监督管理局"]

    def test_deleted_inspector_comes_back_without_its_name(
        self, client: TestClient, built: dict[str, Any]
    ) -> None:
        iid = built["second"]["id"]
        sql(client, "DELETE FROM inspector_conflict WHERE inspector_id = :i", i=iid)
        sql(client, "DELETE FROM inspector WHERE id = :i", i=iid)
        found = lines(audit(client))
        assert f"inspector [{iid}] record {built['second']['record_id']}" not in str(found)
        assert any(
            line.startswith(f"inspector [{iid}] record ")
            and line.endswith("row missing (the log has it)")
            for line in found
        ), found
        rebuild(client)
        found = lines(audit(client))
        assert len(found) == 1 and found[0].startswith(f"inspector [{iid}] ")
        assert "private: name/name_salt do not match" in found[0]
        with ctx_of(client).db.read() as s:
            row = directory.get_inspector(s, iid)
            assert (row.active, row.name) == (False, "")

    def test_conflicts_edited_deleted_or_invented_are_named(
        self, client: TestClient, built: dict[str, Any]
    ) -> None:
        kept, withdrawn = built["kept"], built["withdrawn"]
        declaration = withdrawn["declaration_record_id"]
        # Reactivate the withdrawn recusal, drop the active one, invent a third.
        sql(
            client,
            "UPDATE inspector_conflict SET withdrawn_on = NULL, withdrawn_record_id = NULL "
            "WHERE id = :i",
            i=withdrawn["id"],
        )
        sql(client, "DELETE FROM inspector_conflict WHERE id = :i", i=kept["id"])
        fake = "ab" * 32
        sql(
            client,
            "INSERT INTO inspector_conflict (inspector_id, uscc, declared_on, at, record_id, "
            "leaf_index) VALUES (:i, :u, :d, :a, :r, 0)",
            i=built["second"]["id"],
            u=built["usccs"][0],
            d=today_shanghai(utcnow()),
            a=utcnow(),
            r=fake,
        )
        found = lines(audit(client))
        assert len(found) == 3, found
        assert (
            f"inspector_conflict [{declaration}] record {declaration}: altered: withdrawn_on: "
            in "\n".join(found)
        )
        assert f"withdrawn_record_id: None should be '{withdrawn['record_id']}'" in "\n".join(found)
        assert (
            f"inspector_conflict [{kept['declaration_record_id']}] record "
            f"{kept['declaration_record_id']}: row missing (the log has it)" in found
        )
        assert f"inspector_conflict [{fake}] record {fake}: row in no record (inserted)" in found

        rebuild(client)
        assert lines(audit(client)) == []
        with ctx_of(client).db.read() as s:
            assert directory.active_conflicts(s) == {(built["first"]["id"], built["usccs"][0])}


class TestCommands:
    def test_audit_and_rebuild_from_log(
        self,
        client: TestClient,
        built: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        iid = built["first"]["id"]
        sql(client, "UPDATE inspector SET unit = '伪造的单位', name = '张三' WHERE id = :i", i=iid)
        ctx = ctx_of(client)
        ctx.close()  # the commands open the database and the chain themselves
        settings = ctx.settings
        monkeypatch.setenv("HM_ENV", settings.env)
        monkeypatch.setenv("HM_DATA_DIR", str(settings.data_dir))
        monkeypatch.setenv("HM_SECRET_KEY", settings.secret_key.get_secret_value())

        def run(*args: str) -> tuple[int, str]:
            with pytest.raises(SystemExit) as exit_:
                cli.main(list(args))
            return int(exit_.value.code or 0), capsys.readouterr().out

        code, out = run("audit", "--quiet")
        assert code == 1, out
        assert f"FINDING table inspector [{iid}] record " in out
        assert "altered: unit: '伪造的单位' should be '恩阳区市场监督管理局'" in out
        assert "private: name/name_salt do not match the record's name_digest" in out
        assert "2 table row(s) that do not match the log" in out

        code, out = run("rebuild", "--from-log", "--quiet")
        assert code == 0, out
        code, out = run("audit", "--quiet")
        assert code == 1 and "altered" not in out and "1 table row(s)" in out, out


@pytest.mark.postgres
def test_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    """The same projections on PostgreSQL: explicit item ids, surrogate conflict ids."""
    settings = make_settings(tmp_path / "data", database_url=postgres_url, anchor_enabled=False)
    with TestClient(create_app(settings)) as client:
        headers = factories.create_staff(client, username="regulator1", role="regulator")
        built = build_directory(client, headers)
        assert lines(audit(client)) == []
        sql(
            client,
            "UPDATE inspection_item SET title = '篡改的事项' WHERE id = :i",
            i=built["item"]["id"],
        )
        sql(
            client,
            "UPDATE inspector_conflict SET withdrawn_record_id = NULL, "
            "withdrawn_on = NULL WHERE id = :i",
            i=built["withdrawn"]["id"],
        )
        assert len(lines(audit(client))) == 2
        rebuild(client)
        assert lines(audit(client)) == []
        second = client.post("/api/inspection-items", json=ITEM, headers=headers)
        assert second.status_code == 201 and second.json()["id"] == built["item"]["id"] + 1
