"""A draw's life beyond the happy path: refused inputs, a ledger that is down or fails
half-way, a draw that cannot be staffed or expires, results and the overdue flag."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from backend.app import create_app
from backend.errors import LedgerUnavailable
from backend.inspections import selection
from backend.inspections.draws import base, inputs, reading, results, snapshot
from backend.inspections.draws import reveal as reveal_module
from backend.inspections.models import Draw
from backend.ledger import log
from backend.ledger.chain import LedgerClient
from backend.ledger.models import LogLeaf
from tests import factories
from tests.conftest import ANVIL_KEY, free_port, make_settings
from tests.inspections.helpers import (
    add_inspectors,
    add_item,
    create_draw,
    ctx_of,
    draw_body,
    reveal,
    seed_merchants,
)
from tests.inspections.test_verify_draw import _verify


@pytest.fixture
def ready(client: TestClient, regulator: dict[str, str]) -> dict[str, Any]:
    """Eight verified merchants, four inspectors and an item."""
    usccs = seed_merchants(client, tiers=["A", "A", "B", "B", "B", "C", "D", "D"])
    inspectors = add_inspectors(client, regulator, count=4)
    return {"usccs": usccs, "inspectors": inspectors, "item": add_item(client, regulator)}


def _log_size(client: TestClient) -> int:
    with ctx_of(client).db.read() as s:
        return log.tree_size(s)


class TestCreateDraw:
    def test_anonymous_and_merchant_refused(
        self, client: TestClient, ready: dict[str, Any]
    ) -> None:
        resp = client.post("/api/draws", json=draw_body(item_id=ready["item"]))
        assert resp.status_code == 401
        _, merchant = factories.merchant_with_login(client)
        resp = client.post("/api/draws", json=draw_body(item_id=ready["item"]), headers=merchant)
        assert resp.status_code == 403
        assert resp.json()["error"] == "RoleNotPermitted"

    @pytest.mark.parametrize(
        ("fields", "status", "error"),
        [
            ({"per_check": 1}, 422, "ValidationFailed"),
            ({"item_id": 99}, 404, "ItemNotFound"),
            ({"sectors": ["fuel"]}, 422, "InvalidDraw"),
            ({"sectors": ["spaceships"]}, 422, "UnknownSector"),
            ({"regions": ["110000"]}, 422, "UnknownRegion"),
            ({"regions": ["511923"]}, 422, "EmptySnapshot"),
            ({"per_check": 5}, 422, "NotEnoughInspectors"),
            ({"inspector_regions": ["511921"]}, 422, "NotEnoughInspectors"),
            ({"rates_bp": {"A": 10001, "B": 0, "C": 0, "D": 0}}, 422, "ValidationFailed"),
            ({"planned_end": "2020-01-01"}, 422, "InvalidDraw"),
            # Issue 15: booleans are not numbers (true was 1 basis point, item 1).
            ({"rates_bp": {"A": True, "B": 0, "C": 0, "D": 0}}, 422, "ValidationFailed"),
            ({"item_id": True}, 422, "ValidationFailed"),
            # Issue 15: year 9999 overflowed the period check (500).
            ({"planned_start": "9999-12-30", "planned_end": "9999-12-31"}, 422,
             "DateBeyondHorizon"),
        ],
    )
    def test_refused_inputs_write_nothing(
        self,
        client: TestClient,
        regulator: dict[str, str],
        ready: dict[str, Any],
        fields: dict[str, Any],
        status: int,
        error: str,
    ) -> None:
        before = _log_size(client)
        body = draw_body(item_id=ready["item"])
        body.update(fields)
        resp = client.post("/api/draws", json=body, headers=regulator)
        assert resp.status_code == status, resp.text
        assert resp.json()["error"] == error
        assert _log_size(client) == before

    def test_default_rates_come_from_the_policy(
        self, client: TestClient, regulator: dict[str, str], ready: dict[str, Any]
    ) -> None:
        body = create_draw(client, regulator, item_id=ready["item"])["commitment"]
        assert body["rates_bp"] == {"A": 300, "B": 1000, "C": 3000, "D": 10000}
        assert body["policy"]["version"] == 1
        assert body["selected_counts"] == {"A": 1, "B": 1, "C": 1, "D": 2}
        assert body["scope"] == {"regions": [], "sectors": ["market", "retail"]}
        due = date.fromisoformat(body["results_due"])
        assert due == base.add_working_days(date.fromisoformat(body["planned_end"]), 20)

    def test_unrated_merchant_is_rated_on_the_fly(
        self, client: TestClient, regulator: dict[str, str], ready: dict[str, Any]
    ) -> None:
        (unrated,) = seed_merchants(client, tiers=[None])
        draw = create_draw(client, regulator, item_id=ready["item"])
        snapshot = client.get(f"/api/draws/{draw['id']}/snapshot").json()
        entry = next(e for e in snapshot["entries"] if e["uscc"] == unrated)
        assert entry == {"uscc": unrated, "tier": "B", "region_code": "511902", "sector": "retail"}
        assert snapshot["snapshot_size"] == 9 == len(snapshot["entries"])
        assert [e["uscc"] for e in snapshot["entries"]] == sorted(
            e["uscc"] for e in snapshot["entries"]
        )

    def test_wide_scope_query_gives_the_same_snapshot(
        self,
        client: TestClient,
        regulator: dict[str, str],
        ready: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        narrow = create_draw(client, regulator, item_id=ready["item"])
        monkeypatch.setattr(snapshot, "_wide_scope", lambda *_: True)
        wide = create_draw(client, regulator, item_id=ready["item"])
        assert wide["commitment"]["snapshot_root"] == narrow["commitment"]["snapshot_root"]

    def test_ledger_down_writes_nothing(self, tmp_path: Path) -> None:
        settings = make_settings(
            tmp_path / "data",
            ledger_url=f"http://127.0.0.1:{free_port()}",
            ledger_key=ANVIL_KEY,
            anchor_enabled=False,
        )
        with TestClient(create_app(settings)) as c:
            headers = factories.create_staff(c, username="regulator1", role="regulator")
            seed_merchants(c, tiers=["B", "B"])
            add_inspectors(c, headers, count=2)
            item = add_item(c, headers)
            before = _log_size(c)
            resp = c.post("/api/draws", json=draw_body(item_id=item), headers=headers)
            assert resp.status_code == 503
            assert resp.json()["error"] == "LedgerUnavailable"
            assert _log_size(c) == before
            with ctx_of(c).db.read() as s:
                assert s.execute(select(func.count()).select_from(Draw)).scalar_one() == 0

    def test_commit_interrupted_then_finished(
        self,
        client: TestClient,
        regulator: dict[str, str],
        ready: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        real_send = LedgerClient.send

        def down(self: LedgerClient, fn: Any, **kw: Any) -> Any:
            if getattr(fn, "fn_name", None) == "commitDraw":
                raise LedgerUnavailable("ledger unreachable: ConnectionError")
            return real_send(self, fn, **kw)

        monkeypatch.setattr(LedgerClient, "send", down)
        resp = client.post("/api/draws", json=draw_body(item_id=ready["item"]), headers=regulator)
        assert resp.status_code == 503
        err = resp.json()
        assert err["error"] == "LedgerUnavailable"
        draw_id = err["draw_id"]
        assert "/commit" in err["detail"]
        shown = client.get(f"/api/draws/{draw_id}").json()
        assert shown["status"] == "committing" and shown["chain"]["commit_block"] is None
        assert client.post(f"/api/draws/{draw_id}/reveal", headers=regulator).status_code == 503

        monkeypatch.setattr(LedgerClient, "send", real_send)
        resp = client.post(f"/api/draws/{draw_id}/commit", headers=regulator)
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == "committed"
        assert resp.json()["chain"]["commit_tx"].startswith("0x")
        out = reveal(client, regulator, draw_id)
        assert out["status"] == "revealed"
        assert _verify(client, draw_id).ok

    def test_reconcile_adopts_a_commitment_already_on_chain(
        self,
        client: TestClient,
        regulator: dict[str, str],
        ready: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # The transaction went through, but the process died before recording that.
        real_send = LedgerClient.send

        def lost(self: LedgerClient, fn: Any, **kw: Any) -> Any:
            result = real_send(self, fn, **kw)
            if getattr(fn, "fn_name", None) == "commitDraw":
                raise LedgerUnavailable("connection lost waiting for the receipt")
            return result

        monkeypatch.setattr(LedgerClient, "send", lost)
        resp = client.post("/api/draws", json=draw_body(item_id=ready["item"]), headers=regulator)
        assert resp.status_code == 503
        draw_id = resp.json()["draw_id"]
        monkeypatch.setattr(LedgerClient, "send", real_send)
        report = reveal_module.reconcile(ctx_of(client))
        assert report.committed == [draw_id] and not report.failed
        shown = client.get(f"/api/draws/{draw_id}").json()
        assert shown["status"] == "committed"
        assert shown["chain"]["commit_tx"].startswith("0x")


class TestReveal:
    def test_interrupted_reveal_is_adopted(
        self,
        client: TestClient,
        regulator: dict[str, str],
        ready: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        draw = create_draw(client, regulator, item_id=ready["item"])
        real_publish = reveal_module._publish

        def crash(*args: Any, **kw: Any) -> None:
            raise RuntimeError("power cut")

        monkeypatch.setattr(reveal_module, "_publish", crash)
        with pytest.raises(RuntimeError, match="power cut"):
            client.post(f"/api/draws/{draw['id']}/reveal", headers=regulator)
        assert client.get(f"/api/draws/{draw['id']}").json()["status"] == "committed"
        monkeypatch.setattr(reveal_module, "_publish", real_publish)
        out = reveal(client, regulator, draw["id"])
        assert out["status"] == "revealed"
        assert out["chain"]["reveal_tx"].startswith("0x")
        assert _verify(client, draw["id"]).ok
        again = client.post(f"/api/draws/{draw['id']}/reveal", headers=regulator)
        assert again.status_code == 409
        assert again.json()["error"] == "DrawAlreadyRevealed"

    def test_unstaffable_draw_fails_verifiably(
        self, client: TestClient, regulator: dict[str, str], ready: dict[str, Any]
    ) -> None:
        # Two inspectors, each declared in conflict with one D merchant: whichever D
        # merchant comes first cannot get two inspectors.
        inspectors = ready["inspectors"][:2]
        client.patch(
            f"/api/inspectors/{ready['inspectors'][2]}", json={"active": False}, headers=regulator
        )
        client.patch(
            f"/api/inspectors/{ready['inspectors'][3]}", json={"active": False}, headers=regulator
        )
        d_merchants = ready["usccs"][-2:]
        for inspector, uscc in zip(inspectors, d_merchants, strict=True):
            resp = client.post(
                f"/api/inspectors/{inspector}/conflicts", json={"uscc": uscc}, headers=regulator
            )
            assert resp.status_code == 201
        draw = create_draw(client, regulator, item_id=ready["item"])
        out = reveal(client, regulator, draw["id"])
        assert out["status"] == "failed"
        assert out["plan"] is None and out["assignments"] == []
        assert out["failure"].startswith(f"merchant {d_merchants[0]}") or out["failure"].startswith(
            f"merchant {d_merchants[1]}"
        )
        assert [r["type"] for r in out["records"]][-1] == "draw.failed"
        # docs/draws.md §4: every inspector of the directory is counted once, as
        # available (taken), recused, or at the load cap.
        failed = out["records"][-1]
        with ctx_of(client).db.read() as s:
            body = log.get_envelope(s, failed["record_id"])["body"]
        assert body["needed"] == 2 and body["recused"] >= 1
        assert body["available"] + body["recused"] + body["at_cap"] == 2
        verdict = _verify(client, draw["id"])
        assert verdict.ok, verdict.render()
        assert "fails exactly as published" in verdict.steps[-1].detail

    def test_rotation_counts_draws_revealed_before_the_commit_latest_reveal_first(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        """docs/draws.md §8.4: a draw committed but not yet revealed does not count, and
        the most recent assignment is the one revealed last, whatever the draw numbers."""
        usccs = seed_merchants(client, tiers=["D", "D"])
        add_inspectors(client, regulator, count=6)
        item = add_item(client, regulator)

        def previous_draws(draw_id: str) -> set[str | None]:
            rec = client.get(f"/api/draws/{draw_id}/recusals").json()["items"]
            assert {r["uscc"] for r in rec} <= set(usccs)
            return {r["previous_draw"] for r in rec if "previous" in r["sources"]}

        first = reveal(client, regulator, create_draw(client, regulator, item_id=item)["id"])
        second = create_draw(client, regulator, item_id=item)  # committed, not revealed
        third = create_draw(client, regulator, item_id=item)
        assert previous_draws(second["id"]) == previous_draws(third["id"]) == {first["id"]}
        reveal(client, regulator, third["id"])
        reveal(client, regulator, second["id"])  # no. 2 revealed after no. 3
        fourth = create_draw(client, regulator, item_id=item)
        assert previous_draws(fourth["id"]) == {second["id"]}

    def test_expired_draw(
        self, client: TestClient, regulator: dict[str, str], ready: dict[str, Any]
    ) -> None:
        draw = create_draw(client, regulator, item_id=ready["item"])
        ledger = ctx_of(client).ledger()
        ledger.advance_to_block(draw["chain"]["target_block"] + 256)
        resp = client.post(f"/api/draws/{draw['id']}/reveal", headers=regulator)
        assert resp.status_code == 409, resp.text
        assert resp.json()["error"] == "DrawExpired"
        shown = client.get(f"/api/draws/{draw['id']}").json()
        assert shown["status"] == "expired"
        assert shown["seed"] is None
        assert [r["type"] for r in shown["records"]] == ["draw.committed", "draw.expired"]

    def test_same_inputs_same_plan(
        self, client: TestClient, regulator: dict[str, str], ready: dict[str, Any]
    ) -> None:
        out = reveal(client, regulator, create_draw(client, regulator, item_id=ready["item"])["id"])
        with ctx_of(client).db.read() as s:
            entries, inspectors, pairs = inputs.committed_inputs(s, out["id"])
        randomness = bytes.fromhex(out["randomness"])
        body = out["commitment"]
        plans = [
            selection.plan_to_json(
                selection.run_draw(
                    randomness,
                    order(entries),
                    body["rates_bp"],
                    order(inspectors),
                    body["per_check"],
                    conflicts=pairs,
                )
            )
            for order in (list, lambda xs: list(reversed(xs)))
        ]
        assert plans[0] == plans[1] == out["plan"]


class TestResults:
    def test_results_and_overdue(
        self, client: TestClient, regulator: dict[str, str], ready: dict[str, Any]
    ) -> None:
        out = reveal(client, regulator, create_draw(client, regulator, item_id=ready["item"])["id"])
        first, second = out["assignments"][0]["uscc"], out["assignments"][1]["uscc"]
        record = {
            "kind": "spot_check",
            "result": "未发现问题",
            "checked_on": date.today().isoformat(),
            "authority": "巴州区市场监督管理局",
            "draw_id": out["id"],
        }
        r1 = client.post(
            "/api/supervision/records", json={**record, "uscc": first}, headers=regulator
        )
        assert r1.status_code == 201, r1.text
        r2 = client.post(
            "/api/supervision/records", json={**record, "uscc": second}, headers=regulator
        )
        assert r2.status_code == 201, r2.text
        revoke = client.post(
            "/api/supervision/records",
            json={
                "kind": "revocation",
                "uscc": second,
                "revokes": r2.json()["record_id"],
                "reason": "录入错误",
            },
            headers=regulator,
        )
        assert revoke.status_code == 201, revoke.text

        shown = client.get(f"/api/draws/{out['id']}").json()
        status = {a["uscc"]: a for a in shown["assignments"]}
        assert status[first]["result_status"] == "recorded"
        assert status[first]["results"][0]["record_id"] == r1.json()["record_id"]
        assert status[second]["result_status"] == "pending"  # revoked results do not count
        assert shown["overdue"] == 0

        late = date.fromisoformat(out["results_due"]) + timedelta(days=1)
        with ctx_of(client).db.read() as s:
            view = reading.draw_public(s, ctx=ctx_of(client), ref=out["id"], today=late)
            page = reading.list_draws(s, overdue_only=True, today=late)
            on_time = reading.list_draws(s, overdue_only=True, today=late - timedelta(days=1))
        flags = {a.uscc: a for a in view.assignments}
        assert not flags[first].overdue and flags[first].result_status == "recorded"
        assert flags[second].overdue and flags[second].result_status == "overdue"
        assert view.overdue == len(out["assignments"]) - 1
        assert [d.id for d in page.items] == [out["id"]]
        assert page.items[0].overdue == view.overdue and page.items[0].results_recorded == 1
        assert on_time.items == []

    def test_public_listing(
        self, client: TestClient, regulator: dict[str, str], ready: dict[str, Any]
    ) -> None:
        committed = create_draw(client, regulator, item_id=ready["item"])
        revealed = reveal(
            client, regulator, create_draw(client, regulator, item_id=ready["item"])["id"]
        )
        page = client.get("/api/draws").json()
        assert [d["number"] for d in page["items"]] == [2, 1]
        assert page["items"][0]["selected"] == len(revealed["assignments"])
        assert page["items"][1]["selected"] is None
        only = client.get("/api/draws", params={"status": "committed"}).json()
        assert [d["id"] for d in only["items"]] == [committed["id"]]
        by_number = client.get("/api/draws/2").json()
        assert by_number["id"] == revealed["id"]
        assert client.get("/api/draws/nonsense").json()["error"] == "InvalidDraw"
        assert client.get("/api/draws/77").status_code == 404


def test_working_days() -> None:
    friday = date(2026, 11, 27)
    assert base.add_working_days(friday, 1) == date(2026, 11, 30)
    assert base.add_working_days(friday, 20) == date(2026, 12, 25)
    assert base.add_working_days(date(2026, 11, 28), 1) == date(2026, 11, 30)  # Saturday
    assert base.add_working_days(friday, 0) == friday


def test_log_records_are_subjectless(
    client: TestClient, regulator: dict[str, str], ready: dict[str, Any]
) -> None:
    reveal(client, regulator, create_draw(client, regulator, item_id=ready["item"])["id"])
    with ctx_of(client).db.read() as s:
        rows = s.execute(
            select(LogLeaf.record_type, LogLeaf.subject).where(
                LogLeaf.record_type.like("draw.%") | LogLeaf.record_type.like("inspection.%")  # type: ignore[attr-defined]
            )
        ).all()
    assert {t for t, _ in rows} >= {
        "draw.committed",
        "draw.revealed",
        "draw.plan",
        "inspection.inspector",
        "inspection.item",
    }
    assert all(subject is None for _, subject in rows)


def test_draw_for_result(
    client: TestClient, regulator: dict[str, str], ready: dict[str, Any]
) -> None:
    """What the supervision service can call to check a spot check's draw_id."""
    committed = create_draw(client, regulator, item_id=ready["item"])
    out = reveal(client, regulator, create_draw(client, regulator, item_id=ready["item"])["id"])
    planned = out["assignments"][0]["uscc"]
    spared = next(u for u in ready["usccs"] if u not in {a["uscc"] for a in out["assignments"]})
    with ctx_of(client).db.read() as s:
        assert results.draw_for_result(s, draw_id=out["id"], uscc=planned).id == out["id"]
        with pytest.raises(base.InvalidDraw, match="did not select"):
            results.draw_for_result(s, draw_id=out["id"], uscc=spared)
        with pytest.raises(base.InvalidDraw, match="has no plan"):
            results.draw_for_result(s, draw_id=committed["id"], uscc=planned)
        with pytest.raises(base.DrawNotFound):
            results.draw_for_result(s, draw_id="ab" * 32, uscc=planned)


def test_find_event_tx_pages_through_the_chain(
    client: TestClient, regulator: dict[str, str], ready: dict[str, Any]
) -> None:
    """The commit of a draw is found from block 0 without one wide eth_getLogs call
    (nodes refuse ranges wider than their limit)."""
    from backend.inspections import onchain

    ledger = ctx_of(client).ledger()
    ledger.advance_to_block(10)
    draw = create_draw(client, regulator, item_id=ready["item"])
    contract = ledger.contract()
    did = bytes.fromhex(draw["id"].removeprefix("0x"))
    commit_block = draw["chain"]["commit_block"]
    assert commit_block > 10
    ledger.advance_to_block(commit_block + 5)
    asked: list[tuple[int, int]] = []

    class Events:
        """The contract's events, noting the block range of every eth_getLogs."""

        def __getattr__(self, name: str) -> Any:
            def event() -> Any:
                real = getattr(contract.events, name)()

                class Logs:
                    def get_logs(self, **kw: Any) -> Any:
                        asked.append((kw["from_block"], kw["to_block"]))
                        return real.get_logs(**kw)

                return Logs()

            return event

    class Spied:
        w3 = contract.w3
        events = Events()

    found = onchain.find_event_tx(Spied(), "DrawCommitted", did, from_block=0, step=2)
    assert found is not None and found[1] == commit_block
    assert found[0] == draw["chain"]["commit_tx"]
    assert all(b - a + 1 <= 2 for a, b in asked) and asked[0] == (0, 1)
    assert asked[-1][0] <= commit_block <= asked[-1][1]  # stopped at the first hit
    none = onchain.find_event_tx(contract, "DrawCommitted", did, from_block=commit_block + 1)
    assert none is None
