"""``python scripts/bench.py anchor``: records/s through append + anchoring, and gas per
record at 1, 100 and 1,000 records per checkpoint (each checkpoint also carries its
subject index record, docs/proof-bundle.md; gas is divided by the records only), next
to the one-transaction-per-record baseline measured in the same run on the same chain.

The baseline stores each record's leaf hash on chain in its own transaction (one fresh
storage slot: the cheapest way to put a record on chain one by one). Its 7-byte
contract is assembled by hand below, so the benchmark needs no compiler:

    runtime  60 01 60 00 35 55 00    PUSH1 1, PUSH1 0, CALLDATALOAD, SSTORE, STOP
             (stores 1 under the 32-byte key given as calldata)

Default: the embedded chain in a temporary directory; ``--ledger URL --ledger-key KEY``
runs it against a JSON-RPC node (e.g. anvil) instead.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.config import Settings  # noqa: E402
from backend.context import AppContext  # noqa: E402
from backend.ledger import log  # noqa: E402
from backend.ledger.anchoring import (  # noqa: E402
    Anchorer,
    AnchorWorker,
    FileAnchorLock,
    last_checkpoint,
)
from backend.ledger.chain import LedgerClient  # noqa: E402
from backend.ledger.records import Actor, RecordDraft  # noqa: E402

BASELINE_RUNTIME = "60016000355500"
BASELINE_INIT = "6007600c60003960076000f3" + BASELINE_RUNTIME
REGULATOR = Actor("regulator", "1")
PER_CHECKPOINT = (1, 100, 1000)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "anchor",
        help="records/s through append + anchoring; gas per record vs one tx per record",
    )
    p.add_argument("--records", type=int, default=5000, help="records through the pipeline")
    p.add_argument(
        "--baseline-records", type=int, default=200, help="records sent one tx each (baseline)"
    )
    p.add_argument("--append-batch", type=int, default=100, help="records per DB transaction")
    p.add_argument(
        "--checkpoint-every", type=int, default=1000, help="records per checkpoint in the pipeline"
    )
    p.add_argument("--ledger", default=None, help="JSON-RPC URL (default: embedded chain)")
    p.add_argument("--ledger-key", default=None, help="signing key for --ledger")
    p.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    p.set_defaults(func=bench_anchor)


def _drafts(start: int, k: int) -> list[RecordDraft]:
    return [
        RecordDraft(
            "supervision.spot_check",
            "91511902MA62Q3T556",
            REGULATOR,
            {
                "result": "未发现问题",
                "checked_on": "2026-11-20",
                "authority": "巴中市市场监督管理局",
                "n": start + i,
            },
        )
        for i in range(k)
    ]


def _append(ctx: AppContext, start: int, k: int) -> list[bytes]:
    with ctx.db.session() as s:
        out = log.append(s, _drafts(start, k))
        s.commit()
    return [bytes.fromhex(r.record_id) for r in out]


def _anchored_size(ctx: AppContext) -> int:
    with ctx.db.read() as s:
        cp = last_checkpoint(s)
    return cp.tree_size if cp is not None else 0


def _checkpoint_count(s: Any) -> int:
    cp = last_checkpoint(s)
    return cp.seq + 1 if cp is not None else 0


def _send_raw(ledger: LedgerClient, *, to: str | None, data: str, gas: int) -> Any:
    """Sign and send a plain transaction; wait for its receipt."""
    w3 = ledger.w3
    sender = w3.to_checksum_address(ledger.key.address)
    with ledger.lock:
        block = w3.eth.get_block("latest")
        base = int(block.get("baseFeePerGas", 0) or 0)
        tx: dict[str, Any] = {
            "from": sender,
            "nonce": w3.eth.get_transaction_count(sender, "pending"),
            "gas": gas,
            "chainId": ledger.chain_id,
            "maxFeePerGas": base * 2 + 10**9,
            "maxPriorityFeePerGas": 10**9,
            "data": "0x" + data.removeprefix("0x"),
            "value": 0,
        }
        if to is not None:
            tx["to"] = to
        tx_hash = w3.eth.send_raw_transaction(ledger.key.sign_transaction(tx))
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.01)
    if receipt["status"] != 1:
        raise RuntimeError(f"baseline transaction {tx_hash.hex()} failed")
    return receipt


def bench_anchor(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        overrides: dict[str, Any] = {
            "env": "test",
            "data_dir": Path(tmp) / "data",
            "anchor_enabled": False,
            "demo_on_first_start": False,
            # The worker of the concurrent pipeline anchors by count only.
            "anchor_max_pending": args.checkpoint_every,
            "anchor_interval_s": 3600.0,
        }
        if args.database_url:
            overrides["database_url"] = args.database_url
        if args.ledger:
            overrides["ledger_url"] = args.ledger
            overrides["ledger_key"] = args.ledger_key
        ctx = AppContext.create(Settings(**overrides))
        try:
            _run(ctx, args)
        finally:
            ctx.close()


def _run(ctx: AppContext, args: argparse.Namespace) -> None:
    ledger = ctx.ledger()
    anchorer = Anchorer(ctx)
    kind = "embedded chain" if ledger.embedded else args.ledger
    print(f"ledger: {kind} (chain id {ledger.chain_id}); contract {ledger.contract_address}")

    # --- gas per record at 1, 100 and 1,000 records per checkpoint ---------------------
    # A first checkpoint so the measured ones carry consistency proofs, as in steady state.
    size = 0
    _append(ctx, size, 1000)
    size += 1000
    anchorer.run_once(force=True)
    gas: dict[int, int] = {}
    for k in PER_CHECKPOINT:
        _append(ctx, size, k)
        size += k
        out = anchorer.run_once(force=True)
        # k records and the subject index record that ends every checkpoint
        assert out.action == "anchored" and out.pending == k + 1 and out.gas_used is not None
        gas[k] = out.gas_used

    # --- baseline: one transaction per record ------------------------------------------
    deploy = _send_raw(ledger, to=None, data=BASELINE_INIT, gas=100_000)
    store_at = deploy["contractAddress"]
    base_gas: list[int] = []
    n_base = args.baseline_records
    t0 = time.perf_counter()
    done = 0
    while done < n_base:
        k = min(args.append_batch, n_base - done)
        for leaf in _append(ctx, size, k):
            receipt = _send_raw(ledger, to=store_at, data=leaf.hex(), gas=60_000)
            base_gas.append(int(receipt["gasUsed"]))
        size += k
        done += k
    base_rate = n_base / (time.perf_counter() - t0)
    anchorer.run_once(force=True)  # keep the log fully anchored before the next phase
    per_tx = statistics.median(base_gas)

    # --- the pipeline, sequentially: append, then anchor every --checkpoint-every --------
    n = args.records
    every = args.checkpoint_every
    t0 = time.perf_counter()
    done = since = 0
    while done < n:
        k = min(args.append_batch, n - done)
        _append(ctx, size, k)
        size += k
        done += k
        since += k
        if since >= every or done == n:
            out = anchorer.run_once(force=True)
            assert out.action == "anchored"
            since = 0
    seq_rate = n / (time.perf_counter() - t0)

    # --- the pipeline as `serve` runs it: the worker thread anchors while writes go on ----
    worker = AnchorWorker(
        ctx,
        lock=FileAnchorLock(ctx.settings.data_dir / "bench-anchor.lock"),
        poll_interval_s=0.02,
    )
    with ctx.db.read() as s:
        first_cp = _checkpoint_count(s)
    worker.start()
    t0 = time.perf_counter()
    done = 0
    while done < n:
        k = min(args.append_batch, n - done)
        _append(ctx, size, k)
        size += k
        done += k
    with ctx.db.read() as s:
        target = log.tree_size(s)  # with the index records anchored so far
    deadline = time.monotonic() + 120
    # The worker anchors whenever `every` records are pending; the rest is forced below.
    while target - _anchored_size(ctx) >= every:
        if time.monotonic() > deadline:
            raise RuntimeError(f"worker did not anchor in time: {worker.status}")
        time.sleep(0.002)
    worker.stop()
    if _anchored_size(ctx) < target:
        anchorer.run_once(force=True)
    conc_rate = n / (time.perf_counter() - t0)
    with ctx.db.read() as s:
        conc_checkpoints = _checkpoint_count(s) - first_cp
    rate = max(seq_rate, conc_rate)

    print()
    print("gas per record")
    print(f"  {'records/checkpoint':>18} {'gas/checkpoint':>15} {'gas/record':>11} "
          f"{'vs 1 tx/record':>15}")
    for k in PER_CHECKPOINT:
        ratio = per_tx / (gas[k] / k)
        shown = f"{ratio:,.1f}" if ratio < 10 else f"{ratio:,.0f}"
        print(f"  {k:>18,} {gas[k]:>15,} {gas[k] / k:>11,.1f} {shown:>14}x")
    print(f"  {'baseline: 1 tx/rec':>18} {per_tx:>15,.0f} {per_tx:>11,.1f} {1:>14}x")
    print()
    print(f"throughput (append in DB transactions of {args.append_batch} + anchoring, same run)")
    print(f"  {'':<52} {'records/s':>10} {'vs baseline':>12}")
    print(f"  {'baseline: append, then one tx per record':<52} {base_rate:>10,.1f} {1:>11}x")
    print(f"  {f'sequential: append, anchor every {every:,}':<52} {seq_rate:>10,.0f} "
          f"{seq_rate / base_rate:>11,.0f}x")
    label = f"as in serve: worker thread, {conc_checkpoints} checkpoint(s)"
    print(f"  {label:<52} {conc_rate:>10,.0f} {conc_rate / base_rate:>11,.0f}x")
    target_gas = gas[1000] / 1000 <= 100
    target_rate = rate / base_rate >= 100
    print()
    print(f"targets: <= 100 gas/record at 1,000/checkpoint: "
          f"{'met' if target_gas else 'NOT met'} ({gas[1000] / 1000:.1f}); "
          f">= 100x throughput: {'met' if target_rate else 'NOT met'} ({rate / base_rate:,.0f}x, "
          "best of the two pipelines)")
