"""The trust root: signed, versioned, served, printed; successors checked."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.config import Settings, WitnessConfig
from backend.context import AppContext
from backend.ledger import logkey, trustroot_store
from backend.ledger import note as notes
from backend.ledger import trustroot as tr
from tests.conftest import free_port
from tests.ledger.conftest import run_cli, settings_env

PATH = "/.well-known/honest-metering/trust-root.json"


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"anchor_enabled": False}))
    with TestClient(app) as c:
        yield c


def ctx_of(client: TestClient) -> AppContext:
    return client.app.state.ctx  # type: ignore[attr-defined,no-any-return]


def test_served_document_names_the_log_the_chain_and_the_contract(client: TestClient) -> None:
    ctx = ctx_of(client)
    r = client.get(PATH)
    assert r.status_code == 200, r.text
    root = tr.parse_trust_root(r.json())
    ledger = ctx.ledger()
    body = root.body
    assert body.version == 1 and body.previous is None
    assert body.log.origin == ctx.settings.origin
    assert body.log.key == logkey.load_log_key(ctx.settings).verifier.vkey
    assert body.ledger.chain_id == ledger.chain_id
    assert body.ledger.contract_address == ledger.contract_address
    code_at = ledger.w3.eth.get_code
    assert len(code_at(ledger.contract_address, block_identifier=body.ledger.deployment_block))
    if body.ledger.deployment_block > 0:
        assert not code_at(
            ledger.contract_address, block_identifier=body.ledger.deployment_block - 1
        )
    assert body.witnesses == () and body.witness_quorum == 0
    assert r.headers["x-fingerprint"] == root.fingerprint
    # Asking again gives the same version (nothing changed).
    assert client.get(PATH).json() == r.json()


def test_tampered_or_unsigned_documents_are_refused(client: TestClient) -> None:
    doc = client.get(PATH).json()
    forged = {**doc, "ledger": {**doc["ledger"], "chain_id": 1}}
    with pytest.raises(tr.TrustRootError, match="not signed by the log key"):
        tr.parse_trust_root(forged)
    with pytest.raises(tr.TrustRootError, match="not signed"):
        tr.parse_trust_root({**doc, "signatures": []})
    with pytest.raises(tr.TrustRootError, match="malformed trust root: ledger.contract_address"):
        tr.parse_trust_root({**doc, "ledger": {**doc["ledger"], "contract_address": "0x12"}})
    with pytest.raises(tr.TrustRootError, match="not a trust root"):
        tr.parse_trust_root({"format": "x"})
    w = notes.Signer.generate("w1.example", notes.SIG_COSIGNATURE_V1)
    with pytest.raises(tr.TrustRootError, match="quorum 2 exceeds the 1 witnesses"):
        tr.parse_trust_root(
            {**doc, "witnesses": [{"name": "w1.example", "key": w.verifier.vkey}],
             "witness_quorum": 2}
        )


def test_rotation_and_new_witnesses_make_linked_versions(client: TestClient) -> None:
    ctx = ctx_of(client)
    settings = ctx.settings
    v1 = trustroot_store.current(ctx)
    ledger = v1.body.ledger
    logkey.rotate_log_key(settings)
    v2 = trustroot_store.ensure_current(settings, ledger)
    assert v2.body.version == 2 and v2.body.previous == v1.fingerprint
    assert v2.body.log.key != v1.body.log.key
    assert {s.key for s in v2.signatures} == {v1.body.log.key, v2.body.log.key}
    tr.check_successor(v1, v2)
    w = notes.Signer.generate("notary.example/w", notes.SIG_COSIGNATURE_V1)
    more = settings.model_copy(
        update={"witnesses": [WitnessConfig(name=w.name, key=w.verifier.vkey, url="http://w")]}
    )
    v3 = trustroot_store.ensure_current(more, ledger)
    assert v3.body.version == 3 and v3.body.witness_quorum == 1
    tr.check_successor(v2, v3)
    with pytest.raises(tr.TrustRootError, match="does not follow"):
        tr.check_successor(v1, v3)
    # A key change signed only by the new key is no handover.
    unsigned = tr.sign(v2.body, [logkey.load_log_key(settings)])
    with pytest.raises(tr.TrustRootError, match="not signed by the previous key"):
        tr.check_successor(v1, unsigned)
    assert [v.body.version for v in trustroot_store.versions(settings)] == [1, 2, 3]


def test_trust_root_command_prints_the_served_document(client: TestClient) -> None:
    ctx = ctx_of(client)
    served = client.get(PATH).json()
    client.__exit__(None, None, None)  # the CLI opens the embedded chain itself
    r = run_cli(["trust-root"], env=settings_env(ctx.settings))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == served
    fp = tr.parse_trust_root(served).fingerprint
    assert fp in r.stderr
    r = run_cli(["trust-root", "--fingerprint"], env=settings_env(ctx.settings))
    assert r.stdout.strip() == fp
    path = ctx.settings.data_dir.parent / "someone-elses.json"
    path.write_text(json.dumps(served))
    r = run_cli(["trust-root", "--show", str(path)])
    assert r.returncode == 0 and f"fingerprint {fp}" in r.stdout
    path.write_text(json.dumps({**served, "witness_quorum": 0, "version": 7}))
    r = run_cli(["trust-root", "--show", str(path)])
    assert r.returncode == 1 and "not signed by the log key" in r.stderr


def test_verify_page_shows_the_fingerprint(client: TestClient) -> None:
    ctx_of(client).ledger()
    fp = client.get(PATH).headers["x-fingerprint"]
    page = client.get("/verify", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert f'data-fingerprint="{fp}"' in page.text
    assert PATH in page.text


def test_served_from_the_issued_versions_while_the_ledger_is_down(
    client: TestClient, settings: Settings
) -> None:
    served = client.get(PATH).json()
    client.__exit__(None, None, None)
    down = settings.model_copy(
        update={"ledger_url": f"http://127.0.0.1:{free_port()}", "anchor_enabled": False}
    )
    with TestClient(create_app(down)) as c:
        r = c.get(PATH)
        assert r.status_code == 200 and r.json() == served
        page = c.get("/verify", headers={"Accept": "text/html"})
        assert tr.parse_trust_root(served).fingerprint in page.text
    empty = settings.model_copy(
        update={
            "ledger_url": f"http://127.0.0.1:{free_port()}",
            "anchor_enabled": False,
            "data_dir": settings.data_dir.parent / "other",
        }
    )
    with TestClient(create_app(empty)) as c:
        r = c.get(PATH)
        assert r.status_code == 503 and r.json()["error"] == "LedgerUnavailable"
        assert "暂时无法取得" in c.get("/verify", headers={"Accept": "text/html"}).text


def test_witness_settings_are_checked_when_read() -> None:
    w = notes.Signer.generate("notary.example/w", notes.SIG_COSIGNATURE_V1)
    WitnessConfig(name=w.name, key=w.verifier.vkey, url="https://notary.example/w")
    log_key = notes.Signer.generate("notary.example/w")  # type 0x01: not a cosigner key
    for bad, why in [
        ({"key": "k"}, "should match pattern"),
        ({"key": log_key.verifier.vkey}, "should match pattern"),
        ({"name": "other.example"}, "its key is for 'notary.example/w'"),
        ({"url": "notary.example/w"}, "should match pattern"),
    ]:
        fields = {"name": w.name, "key": w.verifier.vkey, "url": "https://n.example", **bad}
        with pytest.raises(ValueError, match=why):
            WitnessConfig(**fields)
    long = notes.Signer.generate("w" * 65, notes.SIG_COSIGNATURE_V1)
    with pytest.raises(ValueError, match="at most 64 characters"):
        WitnessConfig(name=long.name, key=long.verifier.vkey, url="https://n.example")


def test_deployment_block_remembered_by_two_workers_at_once(settings: Settings) -> None:
    """Two workers rendering their first pages at once both look up the deployment block
    and both remember it: the second must not fail on the first's row (a 500 on the
    shop page under load, scripts/loadtest.py)."""
    from types import SimpleNamespace

    from sqlmodel import Session

    from backend.db import Database
    from backend.ledger.models import LedgerState

    db = Database(settings.db_url)
    db.migrate()
    eth = SimpleNamespace(block_number=8, get_code=lambda a, block_identifier: (
        b"\x01" if block_identifier >= 5 else b""))
    client = SimpleNamespace(chain_id=31337, w3=SimpleNamespace(
        eth=eth, to_checksum_address=lambda a: a))
    address = "0x" + "ab" * 20
    with db.session() as first, db.session() as second:
        get = Session.get
        try:
            # Both find it "not remembered yet" before either commits.
            Session.get = lambda self, *a, **k: None  # type: ignore[method-assign]
            assert trustroot_store.deployment_block(first, client, address) == 5  # type: ignore[arg-type]
            assert trustroot_store.deployment_block(second, client, address) == 5  # type: ignore[arg-type]
        finally:
            Session.get = get  # type: ignore[method-assign]
    with db.session() as s:
        assert s.get(LedgerState, f"deployed:31337:{address}").value == "5"  # type: ignore[union-attr]
    db.dispose()
