"""The forged-bundle attack of issue 14: a second copy of the service, on a node with the
official chain id, records a fake award for a real merchant and hands out its bundle.
Every check against the bundle's own chain passes; the pinned trust root stops it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.ledger.anchoring import Anchorer
from backend.ledger.trustroot import parse_trust_root
from backend.verification.bundle import verify_bundle
from tests.conftest import AnvilNode, make_settings, start_anvil
from tests.ledger.conftest import append_records, run_cli

# anvil's second well-known development account: the forger does not hold the official
# deployer key, so its contract lands at another address.
FORGER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


@pytest.fixture
def second_anvil(anvil: AnvilNode) -> Iterator[AnvilNode]:
    node = start_anvil()
    try:
        yield node
    finally:
        node.stop()


def test_forged_bundle_fails_against_the_pinned_trust_root(
    anvil: AnvilNode, second_anvil: AnvilNode, tmp_path: Path
) -> None:
    official = make_settings(
        tmp_path / "official", ledger_url=anvil.url, ledger_key=anvil.key, anchor_enabled=False
    )
    with TestClient(create_app(official)) as c:
        append_records(c.app.state.ctx, 3)  # type: ignore[attr-defined]
        Anchorer(c.app.state.ctx).run_once(force=True)  # type: ignore[attr-defined]
        trust_root = c.get("/.well-known/honest-metering/trust-root.json").json()
    root = parse_trust_root(trust_root)

    forger = make_settings(
        tmp_path / "forger", ledger_url=second_anvil.url, ledger_key=FORGER_KEY,
        anchor_enabled=False, ledger_public_url=second_anvil.url,
    )
    with TestClient(create_app(forger)) as c:
        ctx = c.app.state.ctx  # type: ignore[attr-defined]
        assert ctx.ledger().chain_id == root.body.ledger.chain_id  # the official chain id
        [fake] = append_records(ctx, 1, type="merchants.demonstration_awarded")
        Anchorer(ctx).run_once(force=True)
        forged = c.get(f"/api/records/{fake.record_id}/proof").json()
        forged_v2 = c.get(f"/api/records/{fake.record_id}/proof?version=2").json()

    # What the CLI did before: trusting the bundle's chain, everything holds.
    unpinned = verify_bundle(forged)
    assert all(c.status == "ok" for c in unpinned.checks[:-1]), unpinned.render()
    assert not unpinned.ok and "no trust root pinned" in (unpinned.reason or "")

    v = verify_bundle(forged, trust_root=root)
    assert not v.ok and not v.incomplete
    assert f"(pinned: contract {root.body.ledger.contract_address})" in (v.reason or "")
    assert forged["checkpoint"]["contract_address"] in (v.reason or "")

    # Even a forger who got the contract address right is stopped by the log key.
    same_address = {
        **forged_v2,
        "checkpoint": {
            **forged_v2["checkpoint"],
            "contract_address": root.body.ledger.contract_address,
        },
    }
    v = verify_bundle(same_address, trust_root=root)
    assert not v.ok and "not signed by the log key" in (v.reason or ""), v.render()

    # The command line says the same and exits 1.
    bundle_path, root_path = tmp_path / "forged.json", tmp_path / "trust-root.json"
    bundle_path.write_text(json.dumps(forged))
    root_path.write_text(json.dumps(trust_root))
    proc = run_cli(["verify", str(bundle_path), "--trust-root", str(root_path)])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"pinned: contract {root.body.ledger.contract_address}" in proc.stdout
    assert "NOT VERIFIED" in proc.stdout
