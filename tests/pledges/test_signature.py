"""EIP-712 merchant signatures on pledges: the service checks them, keeps them
in the record, and anyone can re-check them from the record alone."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from fastapi.testclient import TestClient

from backend.ledger import log
from backend.pledges import eip712
from tests import factories

KEY = "0x" + "4c" * 32
OTHER_KEY = "0x" + "5d" * 32


def sign(typed: dict[str, Any], key: str = KEY) -> str:
    return "0x" + Account.sign_message(
        encode_typed_data(full_message=typed), key
    ).signature.hex().removeprefix("0x")


@pytest.fixture
def signer_merchant(client: TestClient) -> tuple[dict[str, Any], dict[str, str]]:
    return factories.merchant_with_login(client, wallet_address=Account.from_key(KEY).address)


def typed_data(client: TestClient, headers: dict[str, str], **draft: Any) -> dict[str, Any]:
    body = factories.pledge_body(**draft)
    body.pop("uscc", None)
    resp = client.post("/api/pledges/typed-data", json=body, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


class TestTypedData:
    def test_shape(self, client: TestClient, signer_merchant: Any) -> None:
        m, headers = signer_merchant
        out = typed_data(client, headers, extra_commitments="秤准")
        td = out["typed_data"]
        assert out["signer_must_be"] == Account.from_key(KEY).address
        assert td["domain"] == {"name": "HonestMetering", "version": "1"}
        assert td["primaryType"] == "Pledge"
        assert td["types"] == eip712.TYPES
        assert td["message"]["uscc"] == m["uscc"]
        assert td["message"]["extraCommitments"] == "秤准"
        assert td["message"]["templateDigest"].startswith("0x")
        assert len(td["message"]["templateDigest"]) == 66

    def test_needs_a_merchant(self, client: TestClient, regulator: dict[str, str]) -> None:
        resp = client.post(
            "/api/pledges/typed-data", json=factories.pledge_body(), headers=regulator
        )
        assert resp.status_code == 403


class TestSignedPledge:
    def test_signed_pledge_recorded_and_reverifiable(
        self, client: TestClient, signer_merchant: Any
    ) -> None:
        m, headers = signer_merchant
        td = typed_data(client, headers)["typed_data"]
        sig = sign(td)
        p = factories.make_pledge(client, headers=headers, signature=sig)
        address = Account.from_key(KEY).address
        assert p["signature"] == {"scheme": "eip712", "signer": address, "signature": sig.lower()}
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        with ctx.db.read() as s:
            env = log.get_envelope(s, p["record_id"])
        assert env["body"]["signature"] == {
            "scheme": "eip712",
            "signer": address,
            "signature": sig.lower(),
        }
        # A verifier needs only the record.
        assert eip712.verify_record_signature(env) == address
        assert eip712.typed_data_from_record(env) == td

    def test_tampered_record_fails_reverification(
        self, client: TestClient, signer_merchant: Any
    ) -> None:
        _, headers = signer_merchant
        sig = sign(typed_data(client, headers)["typed_data"])
        p = factories.make_pledge(client, headers=headers, signature=sig)
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        with ctx.db.read() as s:
            env = log.get_envelope(s, p["record_id"])
        env["body"]["items"] = env["body"]["items"][:-1]
        with pytest.raises(eip712.InvalidSignature):
            eip712.verify_record_signature(env)

    def test_signature_by_another_key(self, client: TestClient, signer_merchant: Any) -> None:
        _, headers = signer_merchant
        sig = sign(typed_data(client, headers)["typed_data"], OTHER_KEY)
        resp = client.post(
            "/api/pledges", json=factories.pledge_body(signature=sig), headers=headers
        )
        assert resp.status_code == 422
        assert resp.json()["error"] == "SignerMismatch"
        assert resp.json()["recovered"] == Account.from_key(OTHER_KEY).address
        assert resp.json()["expected"] == Account.from_key(KEY).address

    def test_signature_over_a_different_pledge(
        self, client: TestClient, signer_merchant: Any
    ) -> None:
        _, headers = signer_merchant
        sig = sign(typed_data(client, headers, extra_commitments="甲")["typed_data"])
        resp = client.post(
            "/api/pledges",
            json=factories.pledge_body(signature=sig, extra_commitments="乙"),
            headers=headers,
        )
        assert resp.status_code == 422
        assert resp.json()["error"] == "SignerMismatch"

    def test_no_wallet_bound(self, client: TestClient) -> None:
        _, headers = factories.merchant_with_login(client)
        sig = sign(typed_data(client, headers)["typed_data"])
        resp = client.post(
            "/api/pledges", json=factories.pledge_body(signature=sig), headers=headers
        )
        assert resp.status_code == 422
        assert resp.json()["error"] == "NoWalletBound"

    def test_wallet_bound_later(self, client: TestClient) -> None:
        m, headers = factories.merchant_with_login(client)
        client.put(
            f"/api/merchants/{m['uscc']}/wallet",
            json={"address": Account.from_key(KEY).address},
            headers=headers,
        )
        sig = sign(typed_data(client, headers)["typed_data"])
        assert factories.make_pledge(client, headers=headers, signature=sig)["signature"]

    @pytest.mark.parametrize("bad", ["0x1234", "nothex", "0x" + "00" * 65])
    def test_malformed(self, client: TestClient, signer_merchant: Any, bad: str) -> None:
        _, headers = signer_merchant
        resp = client.post(
            "/api/pledges", json=factories.pledge_body(signature=bad), headers=headers
        )
        assert resp.status_code == 422
        assert resp.json()["error"] == "InvalidPledgeSignature"

    def test_signature_cannot_be_replayed(self, client: TestClient, signer_merchant: Any) -> None:
        _, headers = signer_merchant
        sig = sign(typed_data(client, headers)["typed_data"])
        factories.make_pledge(client, headers=headers, signature=sig)
        resp = client.post(
            "/api/pledges", json=factories.pledge_body(signature=sig), headers=headers
        )
        assert resp.status_code == 409
        assert resp.json()["error"] == "SignatureAlreadyUsed"


def test_domain_has_no_chain() -> None:
    """A pledge signature must not depend on which ledger anchors the log."""
    assert set(eip712.DOMAIN) == {"name", "version"}
    assert [f["name"] for f in eip712.TYPES["EIP712Domain"]] == ["name", "version"]


def test_encoding_matches_the_documented_type_string() -> None:
    """Recompute the EIP-712 digest by hand from docs/eip712-pledge.md's type
    string, so a change to the types (which would break wallets and old
    signatures' verification) cannot slip through."""
    from eth_abi import encode
    from eth_utils import keccak

    td = eip712.pledge_typed_data(
        uscc="91511902MA62Q3T556",
        template_sector="retail",
        template_version=1,
        template_digest="ab" * 32,
        items=["G1", "G2"],
        extra_commitments=None,
        valid_from="2026-01-01",
        valid_until="2027-01-01",
    )
    type_string = (
        "Pledge(string uscc,string templateSector,uint32 templateVersion,"
        "bytes32 templateDigest,string[] items,string extraCommitments,"
        "string validFrom,string validUntil)"
    )
    items_hash = keccak(b"".join(keccak(text=i) for i in ["G1", "G2"]))
    struct_hash = keccak(
        encode(
            ["bytes32"] * 9,
            [
                keccak(text=type_string),
                keccak(text="91511902MA62Q3T556"),
                keccak(text="retail"),
                (1).to_bytes(32, "big"),
                bytes.fromhex("ab" * 32),
                items_hash,
                keccak(text=""),
                keccak(text="2026-01-01"),
                keccak(text="2027-01-01"),
            ],
        )
    )
    domain_separator = keccak(
        encode(
            ["bytes32"] * 3,
            [
                keccak(text="EIP712Domain(string name,string version)"),
                keccak(text="HonestMetering"),
                keccak(text="1"),
            ],
        )
    )
    msg = encode_typed_data(full_message=td)
    assert msg.header == domain_separator
    assert msg.body == struct_hash
    signed = Account.sign_message(msg, KEY)
    assert eip712.recover_signer(td, signed.signature.hex()) == Account.from_key(KEY).address
