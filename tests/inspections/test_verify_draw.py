"""``verify --draw``: a published plan, snapshot, directory or record altered after the
fact is caught; an honest draw verifies; the command line works against a running service."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from backend.app import create_app
from backend.cli import main
from backend.config import Settings
from backend.verification.draw import DrawVerdict, verify_draw
from tests import factories
from tests.conftest import free_port, make_settings, wait_for_port
from tests.inspections.helpers import (
    add_inspectors,
    add_item,
    create_draw,
    ctx_of,
    reveal,
    seed_merchants,
    trust_root_of,
)

RATES = {"A": 3000, "B": 3000, "C": 5000, "D": 10000}


def _verify(client: TestClient, ref: str) -> DrawVerdict:
    return verify_draw(
        ref, base_url="", http=client, w3=ctx_of(client).ledger().w3,
        trust_root=trust_root_of(client),
    )


def _sql(client: TestClient, statement: str, **params: Any) -> None:
    with ctx_of(client).db.session() as s:
        s.execute(text(statement), params)
        s.commit()


@pytest.fixture
def revealed(client: TestClient, regulator: dict[str, str]) -> dict[str, Any]:
    seed_merchants(client, tiers=["A", "A", "B", "B", "B", "C", "D", "D"])
    add_inspectors(client, regulator, count=4)
    item = add_item(client, regulator)
    draw = create_draw(client, regulator, item_id=item, rates_bp=RATES)
    return reveal(client, regulator, draw["id"])


def _failed(verdict: DrawVerdict, step: str) -> str:
    assert not verdict.ok and not verdict.incomplete, verdict.render()
    failing = [s for s in verdict.steps if s.status == "FAIL"]
    assert failing[0].name == step, verdict.render()
    return failing[0].detail


class TestVerifyDraw:
    def test_honest_draw_verifies(self, client: TestClient, revealed: dict[str, Any]) -> None:
        verdict = _verify(client, revealed["id"])
        assert verdict.ok, verdict.render()
        assert [s.name for s in verdict.steps] == [
            "commitment",
            "trust root",
            "snapshot",
            "inspectors",
            "recusals",
            "ledger",
            "on-chain commit",
            "randomness",
            "plan",
        ]
        assert verdict.to_dict()["verified"] is True
        assert "VERIFIED" in verdict.render()

    def test_the_trust_root_is_pinned(self, client: TestClient, revealed: dict[str, Any]) -> None:
        """The chain and contract come from the pinned trust root, never from the service's
        JSON: a draw committed elsewhere fails naming the pinned contract, and without a
        trust root every check runs but the verdict is never VERIFIED."""
        w3 = ctx_of(client).ledger().w3
        unpinned = verify_draw(revealed["id"], base_url="", http=client, w3=w3)
        assert not unpinned.ok and unpinned.incomplete, unpinned.render()
        assert all(s.status == "ok" for s in unpinned.steps[:-1])
        assert unpinned.steps[-1].name == "trust root"
        assert "no trust root pinned" in (unpinned.reason or "")
        assert "NOT VERIFIED" in unpinned.render()

        root = trust_root_of(client)
        real = root.body.ledger.contract_address
        elsewhere = "0x" + ("1" if real[2] != "1" else "2") + real[3:]
        other = root.model_copy(update={"body": root.body.model_copy(
            update={"ledger": root.body.ledger.model_copy(
                update={"contract_address": elsewhere})})})
        v = verify_draw(revealed["id"], base_url="", http=client, w3=w3, trust_root=other)
        detail = _failed(v, "trust root")
        assert f"(pinned: contract {elsewhere})" in detail
        assert f"contract {real}" in detail

    def test_altered_plan_is_caught(self, client: TestClient, revealed: dict[str, Any]) -> None:
        first = revealed["assignments"][0]
        ids = [i["id"] for i in first["inspectors"]]
        others = [i["id"] for i in revealed["inspectors"] if i["id"] not in ids]
        _sql(
            client,
            "UPDATE draw_assignment SET inspector_ids = :ids WHERE draw_id = :d AND uscc = :u",
            ids=f'["{ids[0]}", "{others[0]}"]',
            d=revealed["id"],
            u=first["uscc"],
        )
        detail = _failed(_verify(client, revealed["id"]), "plan")
        assert first["uscc"] in detail and others[0] in detail

    def test_swapped_merchant_in_plan_is_caught(
        self, client: TestClient, revealed: dict[str, Any]
    ) -> None:
        chosen = {a["uscc"] for a in revealed["assignments"]}
        with ctx_of(client).db.read() as s:
            spared = next(
                u
                for (u,) in s.execute(
                    text("SELECT uscc FROM draw_snapshot_entry WHERE draw_id = :d"),
                    {"d": revealed["id"]},
                )
                if u not in chosen
            )
        victim = revealed["assignments"][-1]["uscc"]
        _sql(
            client,
            "UPDATE draw_assignment SET uscc = :new WHERE draw_id = :d AND uscc = :old",
            new=spared,
            old=victim,
            d=revealed["id"],
        )
        _failed(_verify(client, revealed["id"]), "plan")

    def test_altered_snapshot_tier_is_caught(
        self, client: TestClient, revealed: dict[str, Any]
    ) -> None:
        uscc = revealed["plan"]["selected"]["D"][0]
        _sql(
            client,
            "UPDATE draw_snapshot_entry SET tier = 'A' WHERE draw_id = :d AND uscc = :u",
            d=revealed["id"],
            u=uscc,
        )
        detail = _failed(_verify(client, revealed["id"]), "snapshot")
        assert revealed["commitment"]["snapshot_root"] in detail

    def test_merchant_dropped_from_snapshot_is_caught(
        self, client: TestClient, revealed: dict[str, Any]
    ) -> None:
        _sql(
            client,
            "DELETE FROM draw_snapshot_entry WHERE draw_id = :d AND uscc = :u",
            d=revealed["id"],
            u=revealed["plan"]["selected"]["A"][0],
        )
        assert "7 entries" in _failed(_verify(client, revealed["id"]), "snapshot")

    def test_altered_directory_is_caught(
        self, client: TestClient, revealed: dict[str, Any]
    ) -> None:
        _sql(
            client,
            "UPDATE draw_inspector SET unit = '恩阳区市场监督管理局' WHERE draw_id = :d",
            d=revealed["id"],
        )
        _failed(_verify(client, revealed["id"]), "inspectors")

    def test_dropped_recusal_is_caught(
        self, client: TestClient, regulator: dict[str, str], revealed: dict[str, Any]
    ) -> None:
        second = create_draw(client, regulator, item_id=revealed["item"]["item_id"], rates_bp=RATES)
        _sql(client, "DELETE FROM draw_recusal WHERE draw_id = :d", d=second["id"])
        _failed(_verify(client, second["id"]), "recusals")

    def test_altered_commitment_record_is_caught(
        self, client: TestClient, revealed: dict[str, Any]
    ) -> None:
        _sql(
            client,
            "UPDATE log_leaf SET canonical = CAST(REPLACE(CAST(canonical AS TEXT), :a, :b) "
            "AS BLOB) WHERE record_id = :d",
            a='"per_check":2',
            b='"per_check":3',
            d=revealed["id"],
        )
        assert "was changed" in _failed(_verify(client, revealed["id"]), "draw.committed")

    def test_unrevealed_draw_is_incomplete(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        seed_merchants(client, tiers=["B", "C"])
        add_inspectors(client, regulator, count=2)
        draw = create_draw(client, regulator, item_id=add_item(client, regulator))
        verdict = _verify(client, draw["id"])
        assert verdict.incomplete and not verdict.ok
        assert verdict.steps[-1].name == "reveal"
        assert all(s.status == "ok" for s in verdict.steps[:-1]), verdict.render()

    def test_unknown_draw(self, client: TestClient) -> None:
        verdict = _verify(client, "999")
        assert verdict.incomplete and "404" in (verdict.reason or "")


def _serve(settings: Settings, port: int) -> tuple[Any, threading.Thread]:
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_port(port)
    while not server.started:
        time.sleep(0.05)
    return server, thread


def test_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``draw reveal`` and ``verify --draw`` as a user runs them; one process at a time
    opens the embedded chain, as in production."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = make_settings(tmp_path / "data", public_base_url=base, anchor_enabled=False)
    with TestClient(create_app(settings)) as c:
        headers = factories.create_staff(c, username="regulator1", role="regulator")
        seed_merchants(c, tiers=["A", "B", "C", "D", "D"])
        add_inspectors(c, headers, count=3)
        draw = create_draw(c, headers, item_id=add_item(c, headers))

    env = {
        "HM_ENV": "test",
        "HM_DATA_DIR": str(settings.data_dir),
        "HM_SECRET_KEY": settings.secret_key.get_secret_value(),  # type: ignore[union-attr]
        "HM_PUBLIC_BASE_URL": base,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as done:
        main(["draw", "reveal", str(draw["number"])])
    assert done.value.code == 0
    assert f"draw no. {draw['number']} ({draw['id']}) revealed" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        main(["draw", "reveal", draw["id"]])
    assert done.value.code == 1
    assert "DrawAlreadyRevealed" in capsys.readouterr().err

    server, thread = _serve(settings, port)
    try:
        with pytest.raises(SystemExit) as done:
            main(["verify", "--draw", draw["id"], "--url", base])
        out = capsys.readouterr().out
        assert done.value.code == 2, out  # no trust root pinned: never VERIFIED
        assert "no trust root pinned" in out and "NOT VERIFIED" in out
        root_url = base + "/.well-known/honest-metering/trust-root.json"
        with pytest.raises(SystemExit) as done:
            main(["verify", "--draw", draw["id"], "--url", base, "--trust-root", root_url])
        out = capsys.readouterr().out
        assert done.value.code == 0, out
        assert "VERIFIED: draw no. 1" in out
        assert f"{base}/rpc serves chain" in out
        with pytest.raises(SystemExit) as done:
            main(["verify", "--draw", "2", "--url", base, "--json", "--trust-root", root_url])
        assert done.value.code == 2
        assert '"incomplete": true' in capsys.readouterr().out
    finally:
        server.should_exit = True
        thread.join(10)
