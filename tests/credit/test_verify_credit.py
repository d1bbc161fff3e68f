"""``honest-metering verify --credit``: against a live service on the embedded chain,
it confirms a tier the records support and detects one they do not."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import text, update

from backend import cli
from backend.accounts import service as accounts
from backend.app import create_app
from backend.credit.models import MerchantRating
from backend.ledger.trustroot import TrustRoot
from backend.ledger.trustroot_load import load_trust_root
from backend.verification.credit import verify_credit
from tests import factories
from tests.conftest import free_port, make_settings
from tests.supervision import outcomes as o


@dataclass
class Live:
    url: str
    app: Any
    http: httpx.Client

    def staff(self, username: str, role: str) -> dict[str, str]:
        ctx = self.app.state.ctx
        with ctx.db.session() as s:
            accounts.create_staff_account(
                s, settings=ctx.settings, username=username, password=factories.STAFF_PASSWORD,
                role=role,
            )
        resp = self.http.post("/api/auth/token", data={"username": username,
                                                        "password": factories.STAFF_PASSWORD})
        return {"Authorization": f"Bearer {resp.json()['access_token']}"}

    def post(self, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        resp = self.http.post("/api/supervision/records", json=body, headers=headers)
        assert resp.status_code == 201, resp.text
        return resp.json()  # type: ignore[no-any-return]

    def wait_anchored(self, record_id: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.http.get(f"/api/records/{record_id}").json()["anchor_status"]
            if status["status"] == "anchored":
                return
            time.sleep(0.2)
        raise AssertionError(f"record {record_id} not anchored after {timeout} s")


@pytest.fixture
def live(tmp_path: Any) -> Iterator[Live]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(tmp_path / "data", public_base_url=url, anchor_interval_s=0.2)
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    with httpx.Client(base_url=url, timeout=30) as http:
        try:
            yield Live(url, app, http)
        finally:
            server.should_exit = True
            thread.join(30)


def _root_url(live: Live) -> str:
    return f"{live.url}/.well-known/honest-metering/trust-root.json"


def _root(live: Live) -> TrustRoot:
    """The live service's trust root (a real verifier gets it, and checks its
    fingerprint, from the regulator)."""
    return load_trust_root(_root_url(live))


@pytest.mark.slow
def test_verify_credit_confirms_then_detects_a_tampered_tier(
    live: Live, capsys: pytest.CaptureFixture[str]
) -> None:
    regulator = live.staff("reg-verify", "regulator")
    resp = live.http.post("/api/merchants", json=factories.merchant_body())
    assert resp.status_code == 201, resp.text
    uscc = resp.json()["uscc"]
    assert live.http.post(f"/api/merchants/{uscc}/verification", headers=regulator).is_success
    live.post(o.spot_check(uscc=uscc), regulator)
    # Past its three-month publicity: withheld (停止公示), and without effect today.
    live.post(o.penalty(uscc=uscc, decided_on=o.days_ago(120), amount_fen=100,
                        decision_no="OLD-1"), regulator)
    live.post(o.penalty(uscc=uscc, decided_on=o.days_ago(20), decision_no="NEW-1"), regulator)
    last = live.post(o.listing(uscc=uscc, on=o.days_ago(10)), regulator)
    live.wait_anchored(last["record_id"])

    verdict = verify_credit(uscc, base_url=live.url, trust_root=_root(live))
    assert verdict.ok, verdict.render()
    assert verdict.computed is not None
    assert (verdict.computed.tier, verdict.computed.score) == ("D", 32)
    assert "1 past their publicity period" in verdict.render()

    with pytest.raises(SystemExit) as exit_:
        cli.main(["verify", "--credit", uscc, "--url", live.url, "--trust-root", _root_url(live)])
    assert exit_.value.code == 0
    assert "VERIFIED" in capsys.readouterr().out

    # The operator quietly improves the displayed rating in the database.
    with live.app.state.ctx.db.session() as s:
        s.execute(update(MerchantRating).where(MerchantRating.uscc == uscc)
                  .values(tier="B", score=80))
        s.commit()
    assert live.http.get(f"/api/merchants/{uscc}/credit").json()["tier"] == "B"

    with pytest.raises(SystemExit) as exit_:
        cli.main(["verify", "--credit", uscc, "--url", live.url, "--trust-root", _root_url(live)])
    out = capsys.readouterr().out
    assert exit_.value.code == 1
    assert "MISMATCH" in out and "tier B (the records give D)" in out
    assert "NOT VERIFIED" in out


@pytest.mark.slow
def test_verify_credit_cannot_complete_for_unanchored_records(live: Live) -> None:
    regulator = live.staff("reg-verify2", "regulator")
    uscc = live.http.post("/api/merchants", json=factories.merchant_body()).json()["uscc"]
    assert live.http.post(f"/api/merchants/{uscc}/verification", headers=regulator).is_success
    live.app.state.anchor_worker.stop()
    live.post(o.spot_check(uscc=uscc), regulator)
    verdict = verify_credit(uscc, base_url=live.url, trust_root=_root(live))
    assert not verdict.ok and verdict.incomplete
    assert "not anchored" in verdict.summary()
    bad = verify_credit(factories.make_uscc(n=999_995), base_url=live.url, trust_root=_root(live))
    assert not bad.ok and "404" in bad.summary()


def withhold(live: Live, record_id: str) -> None:
    """An insider removes a record from what the page and the API list: its row in the
    table the listing reads (``log_leaf``) and its projection row. The stored Merkle
    nodes, the chain and the subject index are untouched."""
    with live.app.state.ctx.db.session() as s:
        s.execute(text("DELETE FROM supervision_record WHERE record_id = :r"), {"r": record_id})
        s.execute(text("DELETE FROM log_leaf WHERE record_id = :r"), {"r": record_id})
        s.execute(text("DELETE FROM kept_page"))
        s.commit()


@pytest.mark.slow
def test_verify_credit_proves_completeness_and_names_a_withheld_record(
    live: Live, capsys: pytest.CaptureFixture[str]
) -> None:
    regulator = live.staff("reg-complete", "regulator")
    uscc = live.http.post("/api/merchants", json=factories.merchant_body()).json()["uscc"]
    assert live.http.post(f"/api/merchants/{uscc}/verification", headers=regulator).is_success
    live.post(o.spot_check(uscc=uscc), regulator)
    penalty = live.post(o.penalty(uscc=uscc, decided_on=o.days_ago(20)), regulator)
    last = live.post(o.listing(uscc=uscc, on=o.days_ago(10)), regulator)
    live.wait_anchored(last["record_id"])

    verdict = verify_credit(uscc, base_url=live.url, trust_root=_root(live))
    assert verdict.ok, verdict.render()
    [step] = [s for s in verdict.steps if s.name == "completeness"]
    # registration, verification, spot check, penalty, listing
    assert step.detail.startswith(f"5 record(s) about {uscc} as of checkpoint"), step.detail

    # A code nobody registered: absence proven, and the verifier says so (no merchant to rate).
    nobody = factories.make_uscc(n=999_990)
    r = live.http.get(f"/api/merchants/{nobody}/completeness")
    assert r.status_code == 200 and r.json()["proves"] == "absence"

    withhold(live, penalty["record_id"])
    listed = live.http.get(f"/api/merchants/{uscc}/records").json()["items"]
    assert penalty["record_id"] not in {i["record_id"] for i in listed}
    verdict = verify_credit(uscc, base_url=live.url, trust_root=_root(live))
    assert not verdict.ok
    summary = verdict.summary()
    assert "INCOMPLETE" in summary and "proves 5 record(s)" in summary, summary
    # The API lists the records the rating reads: spot check, penalty, listing; the
    # registration and its verification are shown on the page, not in that list.
    assert "the service shows 2 of them" in summary, summary

    with pytest.raises(SystemExit) as exit_:
        cli.main(["verify", "--credit", uscc, "--url", live.url, "--trust-root", _root_url(live)])
    out = capsys.readouterr().out
    assert exit_.value.code != 0
    assert "INCOMPLETE" in out and "proves 5 record(s)" in out and "shows 2 of them" in out
