"""The shop page's 验证 proves the page complete (记录完整性), in a real Chromium; and so
does ``honest-metering verify --credit`` (issue 17, acceptance).

An insider withholds a penalty from one shop's page and from the API: its projection
row and its row in the table the listing reads (``log_leaf``) are deleted straight in
the database; the stored Merkle nodes, the chain and the subject index are untouched.
The browser's 验证 on any of that shop's records and the CLI both report the page
incomplete, naming the count proved against the count shown. The honest shop's page
verifies complete, with the count proved.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from backend.accounts import service as accounts
from backend.ledger import subject_index as si
from backend.ledger.trustroot_load import load_trust_root
from backend.timeutil import today_shanghai
from backend.verification.credit import verify_credit
from tests import factories
from tests.disclosure.conftest import LiveServer
from tests.disclosure.test_page_matches_record_browser import _press_verify, _steps
from tests.disclosure.ui import console_problems, wait_for

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def shops(live_server: LiveServer) -> Iterator[dict[str, Any]]:
    """Two shops, each: registration, its verification, pledge, penalty, spot check
    (5 records); all anchored; then one shop's penalty is withheld."""
    live = live_server
    with live.ctx.db.session() as s:
        accounts.create_staff_account(
            s, settings=live.settings, username="inspector.qian",
            password=factories.STAFF_PASSWORD, role="regulator",
        )
    t = live.http.post(
        "/api/auth/token",
        data={"username": "inspector.qian", "password": factories.STAFF_PASSWORD},
    )
    staff = {"Authorization": f"Bearer {t.json()['access_token']}"}
    decided = (today_shanghai() - timedelta(days=20)).isoformat()
    out: dict[str, Any] = {}
    for n, key in enumerate(("withheld", "honest")):
        body = factories.merchant_body(name=f"巴中市完整性测试{n}号店", sector="market")
        m = live.http.post("/api/merchants", json=body)
        assert m.status_code == 201, m.text
        tok = live.http.post(
            "/api/auth/token", data={"username": body["uscc"], "password": body["password"]}
        )
        h = {"Authorization": f"Bearer {tok.json()['access_token']}"}
        p = live.http.post("/api/pledges", json=factories.pledge_body(sector="market"), headers=h)
        assert p.status_code == 201, p.text
        v = live.http.post(f"/api/merchants/{body['uscc']}/verification", headers=staff)
        assert v.status_code == 201, v.text
        recs = {"merchant": m.json(), "verified": v.json(), "pledge": p.json()}
        for kind, extra in (
            ("penalty", {"decision_no": f"巴市监罚〔2025〕完{n}号", "decided_on": decided,
                         "amount_fen": 410000, "evidence_sha256": "ab" * 32}),
            ("spot_check", {"result": "未发现问题", "checked_on": decided}),
        ):
            r = live.http.post(
                "/api/supervision/records",
                json={"kind": kind, "uscc": body["uscc"], "authority": "巴中市市场监督管理局",
                      **extra},
                headers=staff,
            )
            assert r.status_code == 201, r.text
            recs[kind] = r.json()
        for rec in recs.values():
            live.wait_anchored(rec["record_id"])
        out[key] = recs

    penalty = out["withheld"]["penalty"]["record_id"]
    with live.ctx.db.session() as s:
        s.execute(text("DELETE FROM supervision_record WHERE record_id = :r"), {"r": penalty})
        s.execute(text("DELETE FROM log_leaf WHERE record_id = :r"), {"r": penalty})
        s.execute(text("DELETE FROM kept_page"))
        s.commit()
    yield out


def _open(browser: Any, live: LiveServer, uscc: str) -> None:
    browser.get(f"{live.url}/merchants/{uscc}")
    wait_for(browser, "#merchant-name")


def test_a_withheld_record_makes_the_page_incomplete_in_the_browser(
    browser: Any, live_server: LiveServer, shops: dict[str, Any]
) -> None:
    shop = shops["withheld"]
    _open(browser, live_server, shop["merchant"]["uscc"])
    penalty = shop["penalty"]["record_id"]
    assert browser.find_elements("id", "rec-" + penalty[:16]) == []  # not on the page

    result = _press_verify(browser, shop["spot_check"]["record_id"])
    assert result.get_attribute("data-state") == "failed", result.text
    steps = _steps(result)
    assert all(steps[k] == "ok" for k in ("record", "inclusion", "checkpoint", "page"))
    assert steps["complete"] == "fail"
    assert "记录不完整" in result.text
    assert "共有 5 条记录，本页显示 4 条" in result.text, result.text
    assert penalty[:16] in result.text
    assert console_problems(browser) == []


def test_an_honest_page_is_proved_complete_in_the_browser(
    browser: Any, live_server: LiveServer, shops: dict[str, Any]
) -> None:
    shop = shops["honest"]
    _open(browser, live_server, shop["merchant"]["uscc"])
    result = _press_verify(browser, shop["penalty"]["record_id"])
    assert result.get_attribute("data-state") == "verified", result.text
    assert _steps(result)["complete"] == "ok"
    assert "记录完整性" in result.text and "已证明 5 条记录" in result.text, result.text
    assert console_problems(browser) == []


def test_the_cli_reports_the_same_page_incomplete(
    live_server: LiveServer, shops: dict[str, Any]
) -> None:
    root = load_trust_root(f"{live_server.url}/.well-known/honest-metering/trust-root.json")
    honest = verify_credit(
        shops["honest"]["merchant"]["uscc"], base_url=live_server.url, trust_root=root
    )
    assert honest.ok, honest.render()
    assert "5 record(s) about" in honest.render()
    verdict = verify_credit(
        shops["withheld"]["merchant"]["uscc"], base_url=live_server.url, trust_root=root
    )
    assert not verdict.ok
    assert "INCOMPLETE" in verdict.summary(), verdict.render()
    assert "proves 5 record(s)" in verdict.summary(), verdict.render()


def _py_index_root(key: bytes, proof: dict[str, Any]) -> str | None:
    try:
        return si.root_from_proof(key, si.IndexProof.from_json(proof)).hex()
    except si.SubjectIndexError:
        return None


def test_the_sparse_merkle_check_matches_python(
    browser: Any, live_server: LiveServer, shops: dict[str, Any]
) -> None:
    """completeness.js's proof check and ids digest agree with subject_index.py on valid,
    absent and mutated proofs."""
    index = si.SubjectIndex()
    ids = {f"code-{i}": [bytes([i, j]) * 16 for j in range(1 + i % 3)] for i in range(60)}
    for code, rids in ids.items():
        index.put(si.subject_key(code), *si.ids_digest(rids))
    cases = []
    for code in [*list(ids)[:15], "absent-1", "absent-2", "absent-3"]:
        key = si.subject_key(code)
        proof = index.prove(key).to_json()
        variants = [("valid", proof)]
        sibs = list(proof["siblings"])  # type: ignore[call-overload]
        if sibs:
            flipped = ("0" if sibs[0][0] != "0" else "1") + sibs[0][1:]
            variants.append(("flipped", {**proof, "siblings": [flipped, *sibs[1:]]}))
            variants.append(("truncated", {**proof, "siblings": sibs[:-1]}))
        for name, p in variants:
            cases.append({"name": f"{name} {code}", "key": key.hex(), "proof": p,
                          "expected": _py_index_root(key, p),
                          "ids": [r.hex() for r in ids.get(code, [])],
                          "digest": si.ids_digest(ids.get(code, []))[1].hex()})
    assert sum(c["expected"] == index.root().hex() for c in cases) == 18
    _open(browser, live_server, shops["honest"]["merchant"]["uscc"])
    got = browser.execute_async_script(
        """
const [cases, done] = [arguments[0], arguments[arguments.length - 1]];
(async () => {
  const V = window.HMVerify;
  const out = [];
  for (const c of cases) {
    let root = null;
    try { root = V.bytesToHex(await V.indexRootFromProof(V.hexToBytes(c.key), c.proof)); }
    catch (e) { root = null; }
    out.push([root, V.bytesToHex(await V.idsDigest(c.ids))]);
  }
  return out;
})().then(done, e => done('ERROR ' + e));
""",
        cases,
    )
    assert isinstance(got, list), got
    assert [(c["name"], c["expected"], c["digest"]) for c in cases] == [
        (c["name"], g[0], g[1]) for c, g in zip(cases, got, strict=True)
    ]
