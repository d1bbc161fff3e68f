"""End to end: a signed pledge made through the API is anchored, its proof
bundle verifies with ``honest-metering verify`` against a real node (anvil),
and the bundle alone shows who pledged (the EIP-712 signature inside it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.ledger.records import parse_canonical
from backend.pledges import eip712
from tests import factories
from tests.conftest import AnvilNode, make_settings

pytestmark = pytest.mark.anvil

KEY = "0x" + "6e" * 32


def test_pledge_bundle_verifies_and_names_the_signer(
    anvil: AnvilNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from backend import cli
    from backend.ledger.anchoring import Anchorer

    settings = make_settings(
        tmp_path / "data", ledger_url=anvil.url, ledger_key=anvil.key, anchor_enabled=False
    )
    with TestClient(create_app(settings)) as client:
        wallet = Account.from_key(KEY).address
        m, headers = factories.merchant_with_login(client, wallet_address=wallet)
        draft = factories.pledge_body()
        typed = client.post("/api/pledges/typed-data", json=draft, headers=headers).json()
        sig = Account.sign_message(
            encode_typed_data(full_message=typed["typed_data"]), KEY
        ).signature.hex()
        pledge = factories.make_pledge(client, headers=headers, signature=sig)
        assert pledge["anchor_status"]["status"] == "pending"

        Anchorer(client.app.state.ctx).run_once(force=True)  # type: ignore[attr-defined]

        listed = client.get(f"/api/merchants/{m['uscc']}/pledges").json()["items"][0]
        assert listed["made_record"]["anchor_status"]["status"] == "anchored"
        resp = client.get(f"/api/records/{pledge['record_id']}/proof")
        assert resp.status_code == 200, resp.text
        bundle = resp.json()
        trust_root = client.get("/.well-known/honest-metering/trust-root.json").json()

    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    root_path = tmp_path / "trust-root.json"
    root_path.write_text(json.dumps(trust_root))
    with pytest.raises(SystemExit) as exit_:
        cli.main(["verify", str(path), "--trust-root", str(root_path), "--ledger", anvil.url])
    assert exit_.value.code == 0, capsys.readouterr()

    # Who pledged, from the bundle alone.
    envelope = parse_canonical(bundle["record"].encode())
    assert envelope["type"] == "pledge.made"
    assert envelope["subject"] == m["uscc"]
    assert eip712.verify_record_signature(envelope) == wallet
