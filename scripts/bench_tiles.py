"""``python scripts/bench.py tiles``: tile serving requests/s next to ``/healthz``, and
the time from an append to a checkpoint with k witness cosignatures.

The service runs under uvicorn in a thread of this process, on the embedded chain in a
temporary directory; the load comes from client threads with keep-alive connections.
Both the baseline (``/healthz``) and the tiles share that setup: compare the ratios.
The witnesses are three in-process witness apps (k = 2) on loopback.
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from backend.app import create_app
from backend.config import Settings, WitnessConfig
from backend.ledger import log
from backend.ledger import note as notes
from backend.ledger.anchoring import Anchorer
from backend.ledger.logkey import load_log_key
from backend.ledger.records import SYSTEM, RecordDraft
from backend.ledger.tiles import encode_index
from backend.witness.app import create_witness_app
from backend.witness.core import Witness, WitnessState


def _serve(app: Any, port: int) -> Any:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _load(base: str, paths: list[str], seconds: float, threads: int) -> float:
    done = [0] * threads
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        rng = random.Random(i)
        with httpx.Client(base_url=base) as c:
            while time.monotonic() < stop:
                r = c.get(rng.choice(paths))
                assert r.status_code == 200, (r.status_code, r.text[:200])
                done[i] += 1

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(done) / (time.monotonic() - t0)


def _settings(data: Path, port: int, **kw: Any) -> Settings:
    return Settings(
        env="test", data_dir=data, demo_on_first_start=False, rerate_enabled=False,
        secret_key="b" * 40, port=port, **kw,
    )


def bench_tiles(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        settings = _settings(Path(tmp) / "data", port, anchor_enabled=False)
        app = create_app(settings)
        server = _serve(app, port)
        ctx = app.state.ctx
        size = 0
        while size < args.leaves:
            k = min(5000, args.leaves - size)
            with ctx.db.session() as s:
                log.append(s, [RecordDraft("bench.entry", None, SYSTEM, {"n": size + i})
                               for i in range(k)])
                s.commit()
            size += k
        Anchorer(ctx).run_once(force=True)
        base = f"http://127.0.0.1:{port}"
        full = size // 256
        level0 = [f"/tile/0/{encode_index(n)}" for n in range(full)]
        entries = [f"/tile/entries/{encode_index(n)}" for n in range(full)]
        rows = [
            ("/healthz", ["/healthz"]),
            ("GET /checkpoint", ["/checkpoint"]),
            ("level-0 tiles (8 KiB)", level0),
            ("entry bundles", entries),
        ]
        print(f"log of {size:,} leaves; {args.threads} client threads, {args.seconds}s each")
        baseline = None
        for name, paths in rows:
            rate = _load(base, paths, args.seconds, args.threads)
            baseline = baseline or rate
            print(f"  {name:<24} {rate:>8.0f} req/s   {rate / baseline:>5.2f} × /healthz")
        server.should_exit = True
        time.sleep(0.5)

        # Append -> a checkpoint with k cosignatures, with the workers running.
        wdir = Path(tmp) / "w"
        keys = [notes.Signer.generate(f"w{i}.bench", notes.SIG_COSIGNATURE_V1) for i in range(3)]
        origin_settings = _settings(Path(tmp) / "data2", _free_port())
        log_key = load_log_key(origin_settings)
        wports, wservers = [], []
        for i, key in enumerate(keys):
            wdir.mkdir(exist_ok=True)
            w = Witness(key=key, logs={origin_settings.origin: [log_key.verifier]},
                        state=WitnessState(wdir / f"w{i}.sqlite3"))
            p = _free_port()
            wservers.append(_serve(create_witness_app(w), p))
            wports.append(p)
        live = origin_settings.model_copy(update={
            "anchor_interval_s": 0.2,
            "witnesses": [WitnessConfig(name=k.name, key=k.verifier.vkey,
                                        url=f"http://127.0.0.1:{p}")
                          for k, p in zip(keys, wports, strict=True)],
            "witness_quorum": 2,
        })
        app2 = create_app(live)
        server2 = _serve(app2, live.port)
        base2 = f"http://127.0.0.1:{live.port}"
        times = []
        with httpx.Client(base_url=base2) as c:
            for i in range(args.rounds):
                with app2.state.ctx.db.session() as s:
                    [rec] = log.append(s, RecordDraft("bench.entry", None, SYSTEM, {"i": i}))
                    s.commit()
                t0 = time.monotonic()
                while True:
                    text = c.get("/checkpoint").text
                    lines = text.split("\n")
                    if int(lines[1]) > rec.leaf_index and text.count("\u2014 ") >= 1 + 2:
                        break
                    time.sleep(0.01)
                times.append(time.monotonic() - t0)
        times.sort()
        print(
            f"append -> checkpoint with 2 of 3 cosignatures (HM_ANCHOR_INTERVAL_S=0.2): "
            f"median {statistics.median(times):.2f}s, max {times[-1]:.2f}s over {len(times)}"
        )
        server2.should_exit = True
        for s in wservers:
            s.should_exit = True
        time.sleep(0.5)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("tiles", help="tile serving req/s vs /healthz; append -> k cosignatures")
    p.add_argument("--leaves", type=int, default=70_000)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--rounds", type=int, default=10)
    p.set_defaults(func=bench_tiles)
