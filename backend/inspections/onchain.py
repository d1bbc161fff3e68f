"""Reading draws from the MeteringLedger contract through any JSON-RPC view of the chain.

Shared by the draw service and the independent verifier (``verify --draw``), so
both read a draw the same way. Functions take a web3 ``Contract`` and plain
values; this module never touches the service database and never sends a
transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REVEAL_WINDOW_BLOCKS = 256  # BLOCKHASH covers the 256 most recent blocks


@dataclass(frozen=True)
class OnChainDraw:
    """The contract's ``draw(drawId)`` view (all zero when never committed)."""

    snapshot_root: bytes
    seed_hash: bytes
    seed: bytes
    randomness: bytes
    commit_block: int
    target_block: int
    reveal_block: int
    revealed: bool

    @property
    def committed(self) -> bool:
        return self.commit_block != 0

    @classmethod
    def from_view(cls, raw: Any) -> OnChainDraw:
        snapshot_root, seed_hash, seed, randomness, commit, target, reveal, revealed = raw
        return cls(
            snapshot_root=bytes(snapshot_root),
            seed_hash=bytes(seed_hash),
            seed=bytes(seed),
            randomness=bytes(randomness),
            commit_block=int(commit),
            target_block=int(target),
            reveal_block=int(reveal),
            revealed=bool(revealed),
        )

    def expired_at(self, head: int) -> bool:
        """Whether a reveal mined after ``head`` would fall outside the window."""
        return not self.revealed and head + 1 - self.target_block > REVEAL_WINDOW_BLOCKS


def read_draw(contract: Any, draw_id: bytes, *, block: Any = "latest") -> OnChainDraw:
    return OnChainDraw.from_view(contract.functions.draw(draw_id).call(block_identifier=block))


LOG_BLOCK_RANGE = 1_000
"""Blocks per ``eth_getLogs`` call: nodes refuse wider ranges (Besu's default limit is
1,000 blocks, this service's own ``/rpc`` 5,000)."""


def find_event_tx(
    contract: Any,
    event: str,
    draw_id: bytes,
    *,
    from_block: int,
    to_block: int | None = None,
    step: int = LOG_BLOCK_RANGE,
) -> tuple[str, int] | None:
    """(transaction hash, block) of the first ``DrawCommitted``/``DrawRevealed`` log of a
    draw from ``from_block`` on (to ``to_block``, default the head), asked for ``step``
    blocks at a time, nearest first."""
    end = int(contract.w3.eth.block_number) if to_block is None else to_block
    start = max(0, from_block)
    while start <= end:
        stop = min(end, start + step - 1)
        logs = getattr(contract.events, event)().get_logs(
            from_block=start, to_block=stop, argument_filters={"drawId": draw_id}
        )
        for entry in logs:
            tx = entry["transactionHash"]
            tx_hex = tx.hex() if isinstance(tx, bytes | bytearray) else str(tx)
            if not tx_hex.startswith("0x"):
                tx_hex = "0x" + tx_hex
            return tx_hex, int(entry["blockNumber"])
        start = stop + 1
    return None


def block_hash(w3: Any, number: int) -> bytes:
    return bytes(w3.eth.get_block(number)["hash"])
