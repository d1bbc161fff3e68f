"""Chains the contract tests run on: the service's persisted embedded chain and a real anvil node.

Tests use only ``chain.w3`` and ``chain.accounts`` (node-managed, funded, usable with
``transact({"from": a})``) and standard JSON-RPC behaviour, so the same test runs on any
backend. Each test deploys its own contract; the chain itself is shared per session.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from web3 import Web3
from web3.types import Wei

from backend.ledger.chain import load_or_create_dev_key, make_tester_provider, open_embedded_chain
from tests.conftest import anvil_command, require, start_anvil


@dataclass(frozen=True)
class Chain:
    name: str
    w3: Web3
    accounts: Sequence[str]


def _embedded_chain(data_dir: Path) -> Iterator[Chain]:
    """The service's own embedded chain: py-evm persisted on disk, reverts as nodes report them."""
    key = load_or_create_dev_key(data_dir)
    tester, kv = open_embedded_chain(data_dir, key)
    w3 = Web3(make_tester_provider(tester))
    try:
        yield Chain(name="embedded", w3=w3, accounts=tuple(w3.eth.accounts))
    finally:
        kv.close()


def _anvil_chain() -> Iterator[Chain]:
    if anvil_command() is None:
        require(False, "anvil not available (node_modules/@foundry-rs/anvil; run `npm ci`)")
    node = start_anvil()
    try:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 30}))
        yield Chain(name="anvil", w3=w3, accounts=tuple(w3.eth.accounts))
    finally:
        node.stop()


@pytest.fixture(scope="session", params=["embedded", "anvil"])
def chain(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Chain]:
    """A running chain with at least three funded, node-managed accounts."""
    if request.param == "embedded":
        yield from _embedded_chain(tmp_path_factory.mktemp("embedded-chain"))
    else:
        yield from _anvil_chain()


def mine(w3: Web3, n: int) -> int:
    """Mine ``n`` blocks with cheap self-transfers (works on any auto-mining node).

    Returns the new head block number.
    """
    sender = w3.eth.accounts[0]
    for _ in range(n):
        tx_hash = w3.eth.send_transaction({"from": sender, "to": sender, "value": Wei(0)})
        w3.eth.wait_for_transaction_receipt(tx_hash, poll_latency=0.01)
    return int(w3.eth.block_number)
