"""Reading MeteringLedger checkpoints from any Ethereum JSON-RPC view of the chain.

Shared by the anchoring worker (reconciliation), the audit and the independent
verifier, so all three read the chain the same way. Functions take a web3
``Contract`` and plain values; this module never touches the service database
and never sends a transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hexbytes import HexBytes
from web3 import Web3


@dataclass(frozen=True)
class OnChainCheckpoint:
    """One entry of the contract's checkpoint array."""

    index: int
    tree_size: int
    root: bytes
    timestamp: int
    block_number: int

    @property
    def anchored_at(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp, UTC)


@dataclass(frozen=True)
class AnchoringEvent:
    """The ``CheckpointAnchored`` log that created a checkpoint."""

    index: int
    tree_size: int
    root: bytes
    timestamp: int
    tx_hash: str
    block_number: int
    address: str


def checkpoint_count(contract: Any, *, block: Any = "latest") -> int:
    return int(contract.functions.checkpointCount().call(block_identifier=block))


def checkpoint_at(contract: Any, index: int, *, block: Any = "latest") -> OnChainCheckpoint:
    """Checkpoint ``index``; the contract reverts (UnknownCheckpoint) when it does not exist."""
    tree_size, timestamp, block_number, root = contract.functions.checkpoint(index).call(
        block_identifier=block
    )
    return OnChainCheckpoint(
        index=index,
        tree_size=int(tree_size),
        root=bytes(root),
        timestamp=int(timestamp),
        block_number=int(block_number),
    )


def all_checkpoints(contract: Any, *, block: Any = "latest") -> list[OnChainCheckpoint]:
    """Every checkpoint, read at one block so the list is a consistent snapshot."""
    if block == "latest":
        block = int(contract.w3.eth.block_number)
    count = checkpoint_count(contract, block=block)
    return [checkpoint_at(contract, i, block=block) for i in range(count)]


def event_from_log(contract: Any, log: Any) -> AnchoringEvent:
    """Decode a raw ``CheckpointAnchored`` log (from a receipt or ``eth_getLogs``).

    Already-decoded events (web3's ``get_logs`` on a contract event) pass through.
    """
    ev = log if "args" in log else contract.events.CheckpointAnchored().process_log(log)
    args = ev["args"]
    return AnchoringEvent(
        index=int(args["index"]),
        tree_size=int(args["treeSize"]),
        root=bytes(args["root"]),
        timestamp=int(args["timestamp"]),
        tx_hash=Web3.to_hex(ev["transactionHash"]),
        block_number=int(ev["blockNumber"]),
        address=Web3.to_checksum_address(ev["address"]),
    )


def anchoring_events_in_receipt(contract: Any, receipt_logs: Any) -> list[AnchoringEvent]:
    """The ``CheckpointAnchored`` events the contract itself emitted in a receipt."""
    topic = HexBytes(contract.events.CheckpointAnchored().topic)
    address = Web3.to_checksum_address(contract.address)
    out = []
    for log in receipt_logs:
        topics = log.get("topics") or []
        if not topics or HexBytes(topics[0]) != topic:
            continue
        if Web3.to_checksum_address(log["address"]) != address:
            continue
        out.append(event_from_log(contract, log))
    return out


def find_anchoring_event(contract: Any, cp: OnChainCheckpoint) -> AnchoringEvent | None:
    """The log that anchored ``cp``, looked up in the block the contract recorded for it."""
    logs = contract.events.CheckpointAnchored.get_logs(
        argument_filters={"index": cp.index},
        from_block=cp.block_number,
        to_block=cp.block_number,
    )
    for log in logs:
        ev = event_from_log(contract, log)
        if ev.index == cp.index and ev.tree_size == cp.tree_size and ev.root == cp.root:
            return ev
    return None
