"""Draws through the HTTP API, on the embedded chain and on anvil: commit, reveal,
plan, recusal, verification, and what happens when the ledger misbehaves."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest
import rfc8785
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.inspections import selection
from backend.ledger.contract import LedgerRevert
from backend.verification.draw import verify_draw
from tests import factories
from tests.conftest import make_settings
from tests.inspections.helpers import (
    add_inspectors,
    add_item,
    create_draw,
    ctx_of,
    reveal,
    seed_merchants,
    trust_root_of,
)

RATES = {"A": 500, "B": 2000, "C": 5000, "D": 10000}


def _verify(client: TestClient, ref: str):  # type: ignore[no-untyped-def]
    ledger = ctx_of(client).ledger()
    return verify_draw(
        ref, base_url="", http=client, w3=ledger.w3, trust_root=trust_root_of(client)
    )


class TestDrawOnEachLedger:
    def test_commit_reveal_plan_verify(
        self, ledger_client: TestClient, staff: dict[str, str]
    ) -> None:
        c = ledger_client
        tiers = ["A"] * 5 + ["B"] * 6 + ["C"] * 3 + ["D"] * 2
        usccs = seed_merchants(c, tiers=tiers)
        seed_merchants(c, tiers=["A", "B"], verified=False)  # never eligible
        seed_merchants(c, tiers=["D"], sector="fuel")  # outside the scope
        inspectors = add_inspectors(c, staff, count=6)
        conflict = c.post(
            f"/api/inspectors/{inspectors[0]}/conflicts", json={"uscc": usccs[-1]}, headers=staff
        )
        assert conflict.status_code == 201, conflict.text
        item = add_item(c, staff)

        draw = create_draw(c, staff, item_id=item, sectors=["retail"], rates_bp=RATES)
        assert draw["status"] == "committed"
        assert draw["seed"] is None and "seed" not in draw["commitment"]
        assert draw["record_id"] == draw["id"]
        body = draw["commitment"]
        assert body["snapshot_size"] == len(usccs)
        assert body["tier_counts"] == {"A": 5, "B": 6, "C": 3, "D": 2}
        assert body["selected_counts"] == {"A": 1, "B": 2, "C": 2, "D": 2}
        assert body["rates_bp"] == RATES and body["per_check"] == 2
        chain = draw["chain"]
        assert chain["target_block"] == chain["commit_block"] + 2
        # The on-chain drawId is the record id of draw.committed.
        committed = draw["records"][0]
        assert committed["type"] == "draw.committed"
        assert hashlib.sha256(b"\x00" + committed["canonical"].encode()).hexdigest() == draw["id"]
        # The secret seed appears nowhere before the reveal.
        ctx = ctx_of(c)
        from backend.inspections.models import Draw

        with ctx.db.read() as s:
            seed = s.get(Draw, draw["id"]).seed
        assert seed not in c.get(f"/api/draws/{draw['id']}").text
        assert seed not in committed["canonical"]

        out = reveal(c, staff, draw["id"])
        assert out["status"] == "revealed"
        assert out["seed"] == seed
        assert [r["type"] for r in out["records"]] == [
            "draw.committed",
            "draw.revealed",
            "draw.plan",
        ]
        assert (
            out["randomness"]
            == selection.randomness(bytes.fromhex(seed), bytes.fromhex(out["block_hash"])).hex()
        )
        plan = out["plan"]
        by_tier = Counter(a["tier"] for a in out["assignments"])
        for t, n in body["tier_counts"].items():
            assert len(plan["selected"][t]) == by_tier[t] == -(-n * RATES[t] // 10000)
        assert all(len(a["inspectors"]) == 2 for a in out["assignments"])
        for a in out["assignments"]:
            ids = [i["id"] for i in a["inspectors"]]
            assert len(set(ids)) == 2
            assert not (a["uscc"] == usccs[-1] and inspectors[0] in ids)
            assert all(i["unit"] == "巴州区市场监督管理局" for i in a["inspectors"])
            assert a["result_status"] == "pending" and not a["overdue"]
        assert out["plan_digest"] == hashlib.sha256(rfc8785.dumps(plan)).hexdigest()

        verdict = _verify(c, str(out["number"]))
        assert verdict.ok, verdict.render()

    def test_wrong_seed_is_rejected_by_the_contract(
        self, ledger_client: TestClient, staff: dict[str, str]
    ) -> None:
        c = ledger_client
        seed_merchants(c, tiers=["B"] * 4)
        add_inspectors(c, staff, count=3)
        draw = create_draw(c, staff, item_id=add_item(c, staff))
        ledger = ctx_of(c).ledger()
        ledger.advance_to_block(draw["chain"]["target_block"] + 1)
        wrong = bytes(32)
        with pytest.raises(LedgerRevert) as err:
            ledger.send(ledger.contract().functions.revealDraw(bytes.fromhex(draw["id"]), wrong))
        assert err.value.name == "MeteringLedgerSeedMismatch"
        assert err.value.arguments["drawId"] == bytes.fromhex(draw["id"])
        assert err.value.arguments["expectedSeedHash"].hex() == draw["commitment"]["seed_hash"]
        assert err.value.arguments["computedHash"] == hashlib.sha256(wrong).digest()
        # The right seed still works afterwards.
        assert reveal(c, staff, draw["id"])["status"] == "revealed"

    def test_consecutive_draws_rotate_inspectors(
        self, ledger_client: TestClient, staff: dict[str, str]
    ) -> None:
        c = ledger_client
        usccs = seed_merchants(c, tiers=["D"] * 3)
        add_inspectors(c, staff, count=5)
        item = add_item(c, staff)
        first = reveal(c, staff, create_draw(c, staff, item_id=item)["id"])
        second_committed = create_draw(c, staff, item_id=item)
        rec = c.get(f"/api/draws/{second_committed['id']}/recusals").json()
        expected = {(a["uscc"], i["id"]) for a in first["assignments"] for i in a["inspectors"]}
        assert {(r["uscc"], r["inspector_id"]) for r in rec["items"]} == expected
        assert all(r["previous_draw"] == first["id"] for r in rec["items"])
        assert second_committed["commitment"]["recusal_count"] == len(expected) == 6
        second = reveal(c, staff, second_committed["id"])
        before = {a["uscc"]: {i["id"] for i in a["inspectors"]} for a in first["assignments"]}
        assert {a["uscc"] for a in second["assignments"]} == set(usccs)
        for a in second["assignments"]:
            assert not before[a["uscc"]] & {i["id"] for i in a["inspectors"]}
        verdict = _verify(c, second["id"])
        assert verdict.ok, verdict.render()
        assert any(s.name == "rotation" and s.status == "ok" for s in verdict.steps)


@pytest.mark.postgres
def test_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    """The same draw on PostgreSQL (production's database), embedded chain."""
    settings = make_settings(tmp_path / "data", database_url=postgres_url, anchor_enabled=False)
    with TestClient(create_app(settings)) as c:
        staff = factories.create_staff(c, username="regulator1", role="regulator")
        seed_merchants(c, tiers=["A", "B", "B", "C", "D", None])
        add_inspectors(c, staff, count=8)
        item = add_item(c, staff)
        first = reveal(c, staff, create_draw(c, staff, item_id=item, rates_bp=RATES)["id"])
        second = reveal(c, staff, create_draw(c, staff, item_id=item, rates_bp=RATES)["id"])
        assert first["status"] == second["status"] == "revealed"
        snapshot = c.get(f"/api/draws/{second['id']}/snapshot").json()
        assert [e["uscc"] for e in snapshot["entries"]] == sorted(
            e["uscc"] for e in snapshot["entries"]
        )
        verdict = _verify(c, second["id"])
        assert verdict.ok, verdict.render()
