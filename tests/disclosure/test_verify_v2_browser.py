"""The in-browser verifier against the pinned trust root, in a real Chromium (issue 14).

The service runs on an anvil node with three witnesses in its trust root (k = 2). The
page pins the trust root it was served with and checks a version 2 bundle as the CLI
does: the log key's signature and the witnesses' Ed25519 cosignatures (made here with
the same keys a witness process holds, in the C2SP format backend/ledger/note.py
writes), then the anchor through the node the visitor chose. A bundle handed out by a
second copy of the service (its own contract, its own log key) fails naming the pinned
contract or the pinned log key; a node the page may not read, or one that is down,
gives a Chinese message and an offline verdict that says the anchor was not checked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.config import Settings
from backend.ledger import note as notes
from backend.ledger.anchoring import Anchorer
from tests.conftest import AnvilNode, anvil_command, free_port, make_settings, require, start_anvil
from tests.ledger.conftest import append_records, serve
from tests.ledger.test_forged_bundle import FORGER_KEY

TRUST_ROOT = "/.well-known/honest-metering/trust-root.json"
pytestmark = pytest.mark.browser


@dataclass
class Site:
    url: str
    app: Any
    settings: Settings
    http: httpx.Client
    node: AnvilNode
    dead_node: str
    witnesses: list[notes.Signer]


@pytest.fixture(scope="module")
def node() -> Iterator[AnvilNode]:
    require(anvil_command() is not None, "anvil is not installed (run: npm ci)")
    n = start_anvil()
    try:
        yield n
    finally:
        n.stop()


@pytest.fixture(scope="module")
def site(node: AnvilNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    witnesses = [
        notes.Signer.generate(f"witness{i}.example", notes.SIG_COSIGNATURE_V1) for i in (1, 2, 3)
    ]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    dead_node = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = make_settings(
        tmp_path_factory.mktemp("v2site") / "data",
        public_base_url=url,
        anchor_interval_s=0.3,
        ledger_url=node.url,
        ledger_key=node.key,
        # The witnesses are down (nothing listens at their URLs): the service keeps
        # anchoring; the test adds cosignatures as the witnesses would have.
        witnesses=[
            {"name": w.name, "key": w.verifier.vkey, "url": f"http://127.0.0.1:{free_port()}"}
            for w in witnesses
        ],
        witness_quorum=2,
        verify_rpc_nodes=[node.url, dead_node],
    )
    app = create_app(settings)
    with serve(app, port=port), httpx.Client(base_url=url, timeout=30) as http:
        yield Site(url, app, settings, http, node, dead_node, witnesses)


@pytest.fixture(scope="module")
def bundle(site: Site) -> dict[str, Any]:
    """A version 2 bundle of an anchored record, signed by the log key only."""
    [rec] = append_records(site.app.state.ctx, 1)
    deadline = time.monotonic() + 60
    while True:
        r = site.http.get(f"/api/records/{rec.record_id}/proof?version=2")
        if r.status_code == 200:
            return r.json()  # type: ignore[no-any-return]
        assert r.status_code == 409, r.text
        if time.monotonic() > deadline:
            raise TimeoutError("the record was not anchored")
        time.sleep(0.2)


def cosigned(bundle: dict[str, Any], signers: list[notes.Signer]) -> dict[str, Any]:
    """The bundle with the signers' cosignatures added to its signed checkpoint."""
    note = notes.parse_note(bundle["signed_checkpoint"])
    now = int(time.time())
    sigs = [s.sign(note.text, timestamp=now) for s in signers]
    return {**bundle, "signed_checkpoint": note.with_signatures(sigs).format()}


def verify_on_page(
    browser: Any, site: Site, tmp_path: Path, data: dict[str, Any], *, node: str = ""
) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    path = tmp_path / f"bundle-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    browser.get(site.url + "/verify")
    browser.execute_script("window.localStorage.clear()")
    field = browser.find_element(By.ID, "rpc-node")
    field.clear()
    if node:
        field.send_keys(node)
    browser.find_element(By.ID, "bundle-text").send_keys(" ")
    browser.execute_script(
        "document.getElementById('bundle-text').value = arguments[0];", path.read_text("utf-8")
    )
    browser.find_element(By.ID, "verify-button").click()
    result = browser.find_element(By.ID, "verify-result")
    WebDriverWait(browser, 90).until(
        lambda d: result.get_attribute("data-state") in ("verified", "failed", "incomplete")
    )
    return result


def statuses(result: Any) -> dict[str, str]:
    from selenium.webdriver.common.by import By

    return {
        li.get_attribute("data-step"): li.get_attribute("data-status")
        for li in result.find_elements(By.CSS_SELECTOR, "li.step")
    }


def test_csp_allows_the_listed_nodes(site: Site) -> None:
    csp = site.http.get("/verify").headers["content-security-policy"]
    connect = next(d for d in csp.split("; ") if d.startswith("connect-src"))
    assert connect.split()[1:] == ["'self'", site.node.url, site.dead_node]
    page = site.http.get("/verify").text
    assert f'<option value="{site.node.url}">' in page
    assert "仅作后备" in page


def test_cosigned_bundle_verifies_through_the_visitors_node(
    browser: Any, site: Site, bundle: dict[str, Any], tmp_path: Path
) -> None:
    fingerprint = site.http.get(TRUST_ROOT).headers["x-fingerprint"]
    # Two of the three witnesses cosigned: witnessed (k = 2).
    result = verify_on_page(
        browser, site, tmp_path, cosigned(bundle, site.witnesses[:2]), node=site.node.url
    )
    assert result.get_attribute("data-state") == "verified", result.text
    assert statuses(result) == {
        "format": "ok", "record": "ok", "inclusion": "ok", "trust": "ok", "signature": "ok",
        "witnesses": "ok", "checkpoint": "ok", "transaction": "ok", "contract": "ok",
    }
    assert "verifyInclusion 在链上用同一份包含证明核对，返回 true" in result.text
    assert "检查点由 2 个独立见证方联署（要求 2 个）" in result.text
    assert "witness1.example、witness2.example" in result.text
    assert fingerprint in result.text  # the browser computed the pinned fingerprint
    assert f"{site.node.url}/（您选择的）" in result.text

    # One cosignature: still verified on chain, but the page says it is not yet witnessed.
    result = verify_on_page(
        browser, site, tmp_path, cosigned(bundle, site.witnesses[2:]), node=site.node.url
    )
    assert result.get_attribute("data-state") == "verified", result.text
    assert statuses(result)["witnesses"] == "skipped"
    assert "尚未获得足够见证（1/3，要求 2 个）" in result.text

    # A cosignature altered after the witness made it is refused, as the CLI refuses it.
    good = cosigned(bundle, site.witnesses[:2])
    lines = good["signed_checkpoint"].split("\n")
    last = next(i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith("— witness2"))
    name, sig = lines[last].rsplit(" ", 1)
    raw = bytearray(notes.base64.b64decode(sig))
    raw[-1] ^= 1
    lines[last] = f"{name} {notes.base64.b64encode(bytes(raw)).decode()}"
    tampered = {**good, "signed_checkpoint": "\n".join(lines)}
    result = verify_on_page(browser, site, tmp_path, tampered, node=site.node.url)
    assert result.get_attribute("data-state") == "failed", result.text
    assert statuses(result)["witnesses"] == "fail"
    assert "witness2.example" in result.text and "签名无法验证" in result.text


def test_forged_bundles_fail_naming_what_is_pinned(
    browser: Any, site: Site, bundle: dict[str, Any], tmp_path: Path
) -> None:
    """The attack of issue 14, in the browser: a second copy of the service on a chain
    with the official id records a fake award and hands out its version 2 bundle."""
    root = site.http.get(TRUST_ROOT).json()
    pinned = root["ledger"]["contract_address"]
    second = start_anvil()
    try:
        forger = make_settings(
            tmp_path / "forger", ledger_url=second.url, ledger_key=FORGER_KEY,
            anchor_enabled=False, ledger_public_url=second.url,
            log_origin=root["log"]["origin"],  # it even claims the official log's name
        )
        with TestClient(create_app(forger)) as c:
            ctx = c.app.state.ctx  # type: ignore[attr-defined]
            assert ctx.ledger().chain_id == root["ledger"]["chain_id"]
            [fake] = append_records(ctx, 1, type="merchants.demonstration_awarded")
            Anchorer(ctx).run_once(force=True)
            forged = c.get(f"/api/records/{fake.record_id}/proof?version=2").json()
    finally:
        second.stop()
    assert forged["checkpoint"]["contract_address"] != pinned

    result = verify_on_page(browser, site, tmp_path, forged)
    assert result.get_attribute("data-state") == "failed", result.text
    assert statuses(result)["trust"] == "fail"
    assert f"信任根固定的是合约 {pinned}" in result.text

    # The forger writes the official contract into its bundle: its checkpoint is not
    # signed by the pinned log key.
    same_address = {**forged, "checkpoint": {**forged["checkpoint"], "contract_address": pinned}}
    result = verify_on_page(browser, site, tmp_path, same_address)
    assert result.get_attribute("data-state") == "failed", result.text
    assert statuses(result)["signature"] == "fail"
    assert "没有信任根日志密钥" in result.text and root["log"]["key"].split("+")[1] in result.text

    # Another chain id is named too.
    other_chain = {**bundle, "checkpoint": {**bundle["checkpoint"], "chain_id": 1}}
    result = verify_on_page(browser, site, tmp_path, other_chain)
    assert result.get_attribute("data-state") == "failed", result.text
    assert f"信任根固定的是链 {root['ledger']['chain_id']}" in result.text


def test_a_node_not_allowed_or_down_gives_an_offline_verdict(
    browser: Any, site: Site, bundle: dict[str, Any], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    data = cosigned(bundle, site.witnesses)
    elsewhere = "http://127.0.0.2:8545"
    result = verify_on_page(browser, site, tmp_path, data, node=elsewhere)
    assert result.get_attribute("data-state") == "incomplete", result.text
    assert f"您选择的节点 {elsewhere} 不在本站允许连接的节点之列" in result.text
    assert "HM_VERIFY_RPC_NODES" in result.text
    error = browser.find_element(By.ID, "rpc-node-error")
    assert error.is_displayed() and "不在本站允许连接的节点之列" in error.text
    offline = result.find_element(By.CSS_SELECTOR, "p.offline")
    assert offline.get_attribute("data-offline").split() == [
        "format", "record", "inclusion", "trust", "signature", "witnesses", "witnessed"
    ]
    assert "已在本机离线核对" in offline.text
    assert "检查点由信任根的日志密钥签名" in offline.text
    assert "独立见证方联署 3/3（要求 2 个）" in offline.text
    assert "未核对：区块链锚定" in offline.text

    # An allowed node that is down: said so, and the same offline verdict.
    result = verify_on_page(browser, site, tmp_path, data, node=site.dead_node)
    assert result.get_attribute("data-state") == "incomplete", result.text
    assert f"无法使用您选择的节点 {site.dead_node}/" in result.text
    assert "未核对：区块链锚定" in result.find_element(By.CSS_SELECTOR, "p.offline").text
    # No CSP violation was provoked: the page refused the unlisted node itself.
    logs = browser.get_log("browser")
    assert not [e for e in logs if "Content Security Policy" in e.get("message", "")], logs
