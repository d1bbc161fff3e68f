"""A draw and its plan are projections of the ``draw.*`` records: tampering with the
``draw`` or ``draw_assignment`` tables is named by the audit (table, key, record id)
and repaired by ``rebuild --from-log``; the committed inputs, which are in no record,
are checked against the roots their record commits to. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.inspections.draws import results
from tests import factories
from tests.conftest import make_settings
from tests.inspections.helpers import (
    add_inspectors,
    add_item,
    create_draw,
    ctx_of,
    reveal,
    seed_merchants,
)
from tests.inspections.test_records import audit, rebuild, sql


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def drawn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[TestClient, Any]]:
    """A revealed draw and a committed one, on each database (embedded chain)."""
    overrides: dict[str, object] = {"anchor_enabled": False}
    if request.param == "postgresql":
        overrides["database_url"] = request.getfixturevalue("postgres_url")
    settings = make_settings(tmp_path / "data", **overrides)
    with TestClient(create_app(settings)) as client:
        staff = factories.create_staff(client, username="regulator1", role="regulator")
        seed_merchants(client, tiers=["A", "B", "B", "C", "D", "D"])
        add_inspectors(client, staff, count=4)
        item = add_item(client, staff)
        first = reveal(client, staff, create_draw(client, staff, item_id=item)["id"])
        second = create_draw(client, staff, item_id=item)
        yield client, {"revealed": first, "committed": second}


def lines(client: TestClient) -> list[str]:
    return sorted(d.line() for d in audit(client))


def test_a_fresh_draw_matches_the_log(drawn: tuple[TestClient, Any]) -> None:
    client, draws = drawn
    assert draws["revealed"]["status"] == "revealed"
    assert draws["committed"]["status"] == "committed"  # the chain's answer, in no record
    assert lines(client) == [], "\n".join(lines(client))


def test_the_owner_answers_what_other_packages_ask(drawn: tuple[TestClient, Any]) -> None:
    """Supervision asks these instead of querying the draw tables."""
    client, draws = drawn
    first, second = draws["revealed"], draws["committed"]
    planned = first["assignments"][0]["uscc"]
    with ctx_of(client).db.read() as s:
        assert results.draw_ids_by_number(s, [first["number"], 99]) == {
            first["number"]: first["id"]
        }
        assert results.draw_facts(s, [first["id"], second["id"], "ab" * 32]) == {
            first["id"]: (first["number"], "revealed"),
            second["id"]: (second["number"], "committed"),
        }
        pairs = [(first["id"], planned), (second["id"], planned), (first["id"], "x")]
        assert results.selected_pairs(s, pairs) == {(first["id"], planned)}


def test_tampered_draw_rows_are_named_and_rebuilt(drawn: tuple[TestClient, Any]) -> None:
    client, draws = drawn
    first, second = draws["revealed"], draws["committed"]
    did = first["id"]
    planned = first["assignments"][0]
    before = {d["id"]: client.get(f"/api/draws/{d['id']}").json() for d in (first, second)}
    sql(client, "UPDATE draw SET status = 'failed', plan_digest = :x WHERE id = :d",
        x="0" * 64, d=did)
    sql(client, "DELETE FROM draw_assignment WHERE draw_id = :d AND uscc = :u",
        d=did, u=planned["uscc"])
    sql(client, "UPDATE draw SET status = 'expired' WHERE id = :d", d=second["id"])
    found = lines(client)
    joined = "\n".join(found)
    assert f"draw [{did}] record {did}: altered: " in joined
    assert "status: 'failed' should be 'revealed'" in joined
    assert f"draw_assignment [{did},{planned['uscc']}]: row missing (the log has it)" in joined
    assert f"draw [{second['id']}] record {second['id']}: altered: status: 'expired' should be " \
           "'committing'" in joined
    assert len(found) == 3, found

    rebuild(client)
    assert lines(client) == []
    after = {d["id"]: client.get(f"/api/draws/{d['id']}").json() for d in (first, second)}
    assert after[did] == before[did]
    # The log says the second draw was recorded; the chain says it is committed. A
    # rebuilt row waits for reconcile to adopt the commitment again.
    assert after[second["id"]]["status"] == "committing"
    resp = client.post(f"/api/draws/{second['id']}/commit",
                       headers=factories.create_staff(client, username="r2", role="regulator"))
    assert resp.status_code == 200, resp.text
    assert resp.json() == before[second["id"]] | {"chain": resp.json()["chain"]}
    assert resp.json()["status"] == "committed"


def test_a_forged_seed_and_altered_inputs_are_named(drawn: tuple[TestClient, Any]) -> None:
    client, draws = drawn
    second = draws["committed"]["id"]
    sql(client, "UPDATE draw SET seed = :s WHERE id = :d", s="ab" * 32, d=second)
    sql(client, "UPDATE draw_snapshot_entry SET tier = 'A' WHERE draw_id = :d AND tier = 'D'",
        d=second)
    found = lines(client)
    assert len(found) == 2, found
    assert f"draw [{second}] record {second}: private: seed does not hash" in found[0]
    assert found[1].startswith(f"draw_snapshot_entry [{second}] record {second}: not as "
                               "committed: the rows of draw")
    # The log holds only the roots: rebuild leaves them for a backup to restore.
    rebuild(client)
    assert len(lines(client)) == 2
    resp = client.post(
        f"/api/draws/{second}/reveal",
        headers=factories.create_staff(client, username="r3", role="regulator"),
    )
    # The contract refuses a seed that does not hash to the commitment.
    assert resp.status_code == 502 and resp.json()["error"] == "LedgerRefused", resp.text
