"""Three real witness processes (k = 2): checkpoints collect cosignatures; with one down
they are still witnessed, with two down they are "not yet witnessed" and verifiers say
so; a witness that comes back is caught up; a forked log with the same keys is refused
by every witness."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.config import Settings, WitnessConfig
from backend.context import AppContext
from backend.ledger import checkpoint as cps
from backend.ledger import log as ledger_log
from backend.ledger import note as notes
from backend.ledger.anchoring import Anchorer
from backend.ledger.logkey import load_log_key
from backend.ledger.trustroot import parse_trust_root
from backend.ledger.witnessing import Witnessing, WitnessWorker
from backend.verification.bundle import verify_bundle
from backend.witness.app import create_witness_app
from backend.witness.core import Witness, WitnessState
from tests.conftest import ROOT, free_port, make_settings, wait_for_port
from tests.ledger.conftest import append_records, run_cli, serve, wait_until

TRUST_ROOT = "/.well-known/honest-metering/trust-root.json"


@dataclass
class WitnessProcess:
    name: str
    key: notes.Signer
    port: int
    db: Path
    trust_root: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        key_file = self.db.with_suffix(".key")
        if not key_file.exists():
            key_file.write_text(self.key.skey + "\n")
            key_file.chmod(0o600)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HM_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "backend.cli", "witness", "serve", "--key", str(key_file),
             "--trust-root", str(self.trust_root), "--db", str(self.db),
             "--port", str(self.port)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, timeout=60)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)
        self.process = None


@pytest.fixture
def keys() -> list[notes.Signer]:
    return [
        notes.Signer.generate(f"witness{i}.example", notes.SIG_COSIGNATURE_V1) for i in (1, 2, 3)
    ]


@pytest.fixture
def ports() -> list[int]:
    return [free_port() for _ in range(3)]


@pytest.fixture
def service_settings(tmp_path: Path, keys: list[notes.Signer], ports: list[int]) -> Settings:
    return make_settings(
        tmp_path / "data",
        anchor_enabled=False,
        witnesses=[
            WitnessConfig(name=k.name, key=k.verifier.vkey, url=f"http://127.0.0.1:{p}")
            for k, p in zip(keys, ports, strict=True)
        ],
        witness_quorum=2,
    )


@pytest.fixture
def client(service_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(service_settings)) as c:
        yield c


@pytest.fixture
def witnesses(
    client: TestClient, keys: list[notes.Signer], ports: list[int], tmp_path: Path
) -> Iterator[list[WitnessProcess]]:
    root_file = tmp_path / "trust-root.json"
    root_file.write_text(json.dumps(client.get(TRUST_ROOT).json()))
    procs = [
        WitnessProcess(k.name, k, p, tmp_path / f"w{i}.sqlite3", root_file)
        for i, (k, p) in enumerate(zip(keys, ports, strict=True), start=1)
    ]
    try:
        for w in procs:
            w.start()
        yield procs
    finally:
        for w in procs:
            w.stop()


def ctx_of(client: TestClient) -> AppContext:
    return client.app.state.ctx  # type: ignore[attr-defined,no-any-return]


def publish(ctx: AppContext, n: int, start: int) -> dict[str, str]:
    append_records(ctx, n, start=start)
    Anchorer(ctx).run_once(force=True)
    w = Witnessing(ctx)
    try:
        return w.run_once()
    finally:
        w.close()


def cosigners(client: TestClient) -> tuple[set[str], str]:
    r = client.get("/checkpoint")
    note = notes.parse_note(r.text)
    return {s.name for s in note.signatures[1:]}, r.headers["x-witnesses"]


def test_three_witnesses_quorum_two(
    client: TestClient, witnesses: list[WitnessProcess], keys: list[notes.Signer], tmp_path: Path
) -> None:
    ctx = ctx_of(client)
    root = parse_trust_root(client.get(TRUST_ROOT).json())
    assert root.body.witness_quorum == 2 and len(root.body.witnesses) == 3
    names = {k.name for k in keys}

    # All up: every witness cosigns.
    assert publish(ctx, 5, 0) == dict.fromkeys(names, "cosigned")
    got, header = cosigners(client)
    assert got == names and header.startswith("witnessed: cosigned by 3 of 3")
    recs = append_records(ctx, 1, start=100)
    Anchorer(ctx).run_once(force=True)
    Witnessing(ctx).run_once()
    bundle = client.get(f"/api/records/{recs[0].record_id}/proof?version=2").json()
    v = verify_bundle(bundle, trust_root=root, w3=ctx.ledger().w3)
    assert v.ok and v.witnessed and v.witnessed.startswith("Witnessed: cosigned by 3 of 3"), (
        v.render()
    )
    opened = cps.open_checkpoint(
        bundle["signed_checkpoint"], origin=root.body.log.origin,
        log_keys=[root.body.log_verifier()], witnesses=root.body.witness_verifiers(),
    )
    assert len(opened.cosigners) == 3

    # One down: still 2 of 3; the service keeps anchoring; /readyz and /metrics show the lag.
    witnesses[2].stop()
    outcome = publish(ctx, 3, 10)
    assert outcome[keys[2].name].startswith("ConnectError"), outcome
    got, header = cosigners(client)
    assert got == {keys[0].name, keys[1].name}
    assert header.startswith("witnessed: cosigned by 2 of 3")
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    lag = {w["name"]: w for w in ready["witnessing"]["witnesses"]}
    # 3 records and the checkpoint's subject index record
    assert lag[keys[2].name]["lag_leaves"] == 4 and lag[keys[2].name]["last_error"]
    assert lag[keys[0].name]["lag_leaves"] == 0
    metrics = client.get("/metrics").text
    assert f'hm_witness_lag_leaves{{witness="{keys[2].name}"}} 4.0' in metrics
    assert f'hm_witness_up{{witness="{keys[2].name}"}} 0.0' in metrics

    # Two down: published, but not yet witnessed; verifiers refuse to call it witnessed.
    witnesses[1].stop()
    recs = append_records(ctx, 2, start=20)
    Anchorer(ctx).run_once(force=True)
    Witnessing(ctx).run_once()
    got, header = cosigners(client)
    assert got == {keys[0].name}
    assert header.startswith("not yet witnessed: cosigned by 1 of 3")
    bundle = client.get(f"/api/records/{recs[0].record_id}/proof?version=2").json()
    v = verify_bundle(bundle, trust_root=root, w3=ctx.ledger().w3)
    assert v.ok, v.render()
    assert v.witnessed and v.witnessed.startswith("NOT yet witnessed"), v.render()
    assert "NOT yet witnessed" in v.summary()

    # They come back and are caught up from the size each knows, in one request each.
    witnesses[1].start()
    witnesses[2].start()
    outcome = Witnessing(ctx).run_once()
    assert outcome == {
        keys[0].name: "up to date", keys[1].name: "cosigned", keys[2].name: "cosigned"
    }
    got, header = cosigners(client)
    assert got == names and header.startswith("witnessed")
    size = cps.parse_checkpoint_text(notes.parse_note(client.get("/checkpoint").text).text).size

    # A fork: a second service with the same log key and origin, other records, same size.
    fork_dir = tmp_path / "fork"
    fork_dir.mkdir()
    shutil.copy(ctx.settings.log_key_path, fork_dir / "log-signing.key")
    fork_settings = make_settings(
        fork_dir, anchor_enabled=False, witnesses=ctx.settings.witnesses, witness_quorum=2
    )
    assert fork_settings.origin == ctx.settings.origin
    with TestClient(create_app(fork_settings)) as fork:
        fctx = ctx_of(fork)
        with fctx.db.read() as s:
            have = ledger_log.tree_size(s)  # the service's first records
        outcome = publish(fctx, size - have - 1, 1000)  # and the subject index record
        forked_note = fork.get("/checkpoint").text
        assert forked_note.split("\n")[1] == str(size)
        assert len(outcome) == 3
        for name, result in outcome.items():
            assert "HTTP 422" in result and "fork" in result, (name, result)
    # A client that was shown both histories holds the evidence: the genuine checkpoint,
    # cosigned, and the fork of the same size, signed by the same log key. `verify`
    # prints them as proof of misbehaviour (the split view the witnesses refused).
    seen = [tmp_path / "seen-genuine.txt", tmp_path / "seen-fork.txt"]
    seen[0].write_text(client.get("/checkpoint").text)
    seen[1].write_text(forked_note)
    proc = run_cli(
        ["verify", "--trust-root", str(witnesses[0].trust_root), "--checkpoints", *map(str, seen)]
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "PROOF OF MISBEHAVIOUR" in proc.stdout and f"size {size}" in proc.stdout
    assert all(name in proc.stdout for name in names), proc.stdout  # its cosigners named
    # Each witness refused the fork first with 409 (the size it knows), then with 422
    # (same size, other root), and kept the fork's signed checkpoint as evidence.
    for w in witnesses:
        state = WitnessState(w.db)
        refused = state.refused()
        state.close()
        assert [(r[1], r[3]) for r in refused] == [(0, 409), (size, 422)], refused
        assert refused[1][2].split("\n")[1] == str(size)
        assert httpx.get(f"{w.url}/healthz").json()["key"] == w.key.verifier.vkey
    got, _ = cosigners(client)
    assert got == names  # the genuine log is unaffected


def test_the_service_sends_checkpoints_by_itself(tmp_path: Path) -> None:
    """serve: the witnessing worker runs beside the anchoring worker; an append ends up
    in a checkpoint the witnesses cosigned without anyone asking."""
    log_settings = make_settings(tmp_path / "data")
    key = notes.Signer.generate("inproc.example/w", notes.SIG_COSIGNATURE_V1)
    witness = Witness(
        key=key, logs={log_settings.origin: [load_log_key(log_settings).verifier]},
        state=WitnessState(tmp_path / "w.sqlite3"),
    )
    with serve(create_witness_app(witness)) as url:
        settings = log_settings.model_copy(
            update={"witnesses": [WitnessConfig(name=key.name, key=key.verifier.vkey, url=url)]}
        )
        app = create_app(settings)
        with TestClient(app) as c:
            assert app.state.witness_worker is not None
            append_records(ctx_of(c), 2)
            wait_until(
                lambda: key.name in cosigners(c)[0], timeout=60, what="a cosigned checkpoint"
            )
            assert cosigners(c)[1].startswith("witnessed: cosigned by 1 of 1")
        assert app.state.witness_worker is None  # stopped with the app
    off = create_app(settings.model_copy(update={"anchor_enabled": False}))
    with TestClient(off):
        assert off.state.witness_worker is None
    # A process that is not the anchorer (another worker holds the lock) sends nothing.
    standby = create_app(settings.model_copy(update={"anchor_enabled": False}))
    with TestClient(standby) as c:
        ctx = ctx_of(c)
        sent: list[str] = []

        def record(request: httpx.Request) -> httpx.Response:
            sent.append(str(request.url))
            return httpx.Response(503, text="down")

        anchorer = [False]
        worker = WitnessWorker(ctx, is_anchorer=lambda: anchorer[0])
        worker.witnessing.http.close()
        worker.witnessing.http = httpx.Client(transport=httpx.MockTransport(record))
        append_records(ctx, 1, start=50)
        Anchorer(ctx).run_once(force=True)
        worker.step()
        assert sent == [] and worker.last == {}
        anchorer[0] = True  # the same worker once its process holds the anchoring lock
        worker.step()
        assert sent == [url + "/add-checkpoint"]
        assert "HTTP 503" in worker.last[key.name]
        worker.witnessing.close()
