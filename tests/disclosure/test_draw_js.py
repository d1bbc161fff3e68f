"""The in-browser draw re-check (static/draw.js) against the specification and Python.

draw.js is an independent implementation of docs/draws.md. In a real Chromium it
must reproduce the worked example of that page (roots, selection keys, plan digest)
and agree with ``backend/inspections/selection.py`` on random draws: the same
plan, or the same NotEnoughInspectors failure.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

import pytest

from backend.inspections import selection
from tests.conftest import ROOT
from tests.disclosure.conftest import LiveServer
from tests.factories import make_uscc

DRAW_JS = ROOT / "backend" / "disclosure" / "static" / "draw.js"
DOC = ROOT / "docs" / "draws.md"

RUN = """
const [cases, done] = [arguments[0], arguments[arguments.length - 1]];
(async () => {
  const V = window.HMVerify, D = window.HMDraw;
  const out = [];
  for (const c of cases) {
    const roots = {
      snapshot: V.bytesToHex(await D.snapshotRoot(c.entries)),
      inspectors: V.bytesToHex(await D.inspectorsRoot(c.inspectors)),
      recusals: V.bytesToHex(await D.recusalRoot(c.pairs)),
    };
    try {
      const plan = await D.runDraw(V.hexToBytes(c.randomness), c.entries, c.rates, c.inspectors,
                                   c.per_check, c.pairs, roots);
      out.push({plan: plan, digest: await D.planDigest(plan), roots: roots});
    } catch (e) {
      out.push({failed: e.notEnough || String(e.message || e), roots: roots});
    }
  }
  return out;
})().then(done, e => done('ERROR ' + e));
"""


def _open(browser: Any, live: LiveServer) -> None:
    # Any page that loads verify.js then draw.js; the draw page needs a draw, so load them here.
    browser.get(live.url + "/verify")
    browser.execute_async_script(
        "const done = arguments[0];"
        "const s = document.createElement('script'); s.src = '/static/draw.js';"
        "s.onload = () => done(true); document.head.appendChild(s);"
    )


def _worked_example() -> dict[str, Any]:
    text = DOC.read_text("utf-8")
    entries = []
    for line in re.findall(r"^\| `(9\w{17}\\\|[A-D]\\\|\d{6}\\\|[a-z_]+)` \|", text, re.M):
        uscc, tier, region, sector = line.replace("\\|", "|").split("|")
        entries.append({"uscc": uscc, "tier": tier, "region_code": region, "sector": sector})
    inspectors = []
    for line in re.findall(r"^\| `(insp-\d\d\\\|\d{6}\\\|[^`]+)` \|", text, re.M):
        iid, region, unit = line.replace("\\|", "|").split("|")
        inspectors.append({"id": iid, "unit": unit, "region_code": region})
    assert len(entries) == 8 and len(inspectors) == 5
    return {
        "entries": entries,
        "inspectors": inspectors,
        "pairs": [["91511903MA64C7DRXY", "insp-05"], ["92511921MA6E1H3NXY", "insp-04"]],
        "rates": {"A": 500, "B": 2000, "C": 5000, "D": 10000},
        "per_check": 2,
        "randomness": "fdeab9acf3710362bd2658cdc9a29e8f9c757fcf9811603a8c447cd1d9151108",
    }


@pytest.mark.browser
def test_worked_example_of_the_specification(browser: Any, live_server: LiveServer) -> None:
    _open(browser, live_server)
    (got,) = browser.execute_async_script(RUN, [_worked_example()])
    assert got["roots"] == {
        "snapshot": "cbd6207cfd4a2c4bd8de8c42d4e941ad71cc1f26000c3fcec4fd7eecebdb0945",
        "inspectors": "84031a1ad23e03ef6c50d2e1293f772faf4a03de71d16af13294a3e416d217d6",
        "recusals": "379cb32ddbb01cb24a8addfaa471cfa6521633ca6e23db411f9bcc9ed308367f",
    }
    assert got["digest"] == "9d488f83763bf6f3611a07f6c3ef8422fce54284ab65ce580c23a4fd68c68891"
    assert got["plan"]["assignments"] == [
        {"uscc": "91511903MA64C7DRXY", "inspectors": ["insp-02", "insp-04"]},
        {"uscc": "92511921MA6E1H3NXY", "inspectors": ["insp-02", "insp-01"]},
        {"uscc": "91511923MA6G2K4Q6T", "inspectors": ["insp-02", "insp-05"]},
        {"uscc": "92511923MA6A1B2C3M", "inspectors": ["insp-04", "insp-05"]},
    ]


def _random_case(rng: random.Random, n: int) -> dict[str, Any]:
    tiers = "ABCD"
    entries = [
        {
            "uscc": make_uscc(n=rng.randrange(10**6), region=rng.choice(["511902", "511923"])),
            "tier": rng.choice(tiers),
            "region_code": rng.choice(["511902", "511903", "511921"]),
            "sector": rng.choice(["retail", "fuel", "ev_charging"]),
        }
        for _ in range(n)
    ]
    entries = list({e["uscc"]: e for e in entries}.values())
    inspectors = [
        {
            "id": f"insp-{i:03d}",
            "unit": rng.choice(["巴州区市场监督管理局", "平昌县市场监督管理局"]),
            "region_code": "511902",
        }
        for i in rng.sample(range(1000), rng.randrange(2, 9))
    ]
    pairs = sorted(
        {
            (rng.choice(entries)["uscc"], rng.choice(inspectors)["id"])
            for _ in range(rng.randrange(0, 12))
        }
    )
    return {
        "entries": entries,
        "inspectors": inspectors,
        "pairs": [list(p) for p in pairs],
        "rates": {t: rng.choice([0, 300, 1000, 5000, 10000]) for t in tiers},
        "per_check": rng.choice([2, 2, 3]),
        "randomness": rng.randbytes(32).hex(),
    }


def _python(case: dict[str, Any]) -> dict[str, Any]:
    entries = [
        selection.SnapshotEntry(e["uscc"], e["tier"], e["region_code"], e["sector"])
        for e in case["entries"]
    ]
    inspectors = [
        selection.InspectorEntry(i["id"], i["unit"], i["region_code"]) for i in case["inspectors"]
    ]
    conflicts = {(iid, uscc) for uscc, iid in case["pairs"]}
    try:
        plan = selection.run_draw(
            bytes.fromhex(case["randomness"]),
            entries,
            case["rates"],
            inspectors,
            case["per_check"],
            conflicts=conflicts,
        )
    except selection.NotEnoughInspectors as exc:
        return {"failed": {"uscc": exc.uscc, "needed": exc.needed, "available": exc.available,
                           "recused": exc.recused, "at_cap": exc.at_cap}}
    return {"plan": selection.plan_to_json(plan), "digest": selection.plan_digest(plan)}


@pytest.mark.browser
def test_random_draws_match_python(browser: Any, live_server: LiveServer) -> None:
    _open(browser, live_server)
    rng = random.Random(9162)
    cases = [_random_case(rng, n) for n in (1, 5, 40, 120, 300, 60, 17, 250)]
    got = browser.execute_async_script(RUN, cases)
    assert isinstance(got, list), got
    outcomes = {"plan": 0, "failed": 0}
    for case, g in zip(cases, got, strict=True):
        want = _python(case)
        if "failed" in want:
            outcomes["failed"] += 1
            assert g.get("failed") == want["failed"]
        else:
            outcomes["plan"] += 1
            assert json.dumps(g["plan"], sort_keys=True) == json.dumps(want["plan"], sort_keys=True)
            assert g["digest"] == want["digest"]
    assert outcomes["plan"] >= 3


def test_draw_selector_matches_the_contract() -> None:
    from web3 import Web3

    from backend.ledger.contract import load_artifact

    source = DRAW_JS.read_text("utf-8")
    found = re.search(r"SELECTOR_DRAW = '(0x[0-9a-f]{8})'", source)
    assert found and found.group(1) == "0x" + Web3.keccak(text="draw(bytes32)")[:4].hex()
    fn = next(e for e in load_artifact()["abi"] if e.get("name") == "draw")
    assert [c["type"] for c in fn["outputs"][0]["components"]] == [
        "bytes32",
        "bytes32",
        "bytes32",
        "bytes32",
        "uint64",
        "uint64",
        "uint64",
        "bool",
    ]
