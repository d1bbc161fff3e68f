"""What the log publishes in the C2SP formats: its signed checkpoint, tiles, entry bundles.

The published tree head is the newest checkpoint anchored on chain: the signed
checkpoint, the tiles and the chain anchor always describe the same tree, and tiles
never show a size no checkpoint covers. A tile's hashes are the stored perfect-subtree
hashes (``backend/ledger/log.py``); nothing here hashes the tree or writes anything.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlmodel import Session, col

from backend.db import Database
from backend.errors import Conflict, NotFound
from backend.ledger import checkpoint as cps
from backend.ledger import merkle, tiles
from backend.ledger import note as notes
from backend.ledger.anchoring import last_checkpoint
from backend.ledger.log import LogCorrupted
from backend.ledger.models import LedgerState, LogLeaf, MerkleNode

FULL_TILE_CACHE = "public, max-age=31536000, immutable"
PARTIAL_TILE_CACHE = "public, max-age=60"
CHECKPOINT_CACHE = "public, max-age=2"


class TileNotFound(NotFound):
    pass


class FullTileCache:
    """This process's most recently served full tiles, within a byte budget. A full tile
    never changes once the published tree covers it, so a hit needs no database."""

    def __init__(self, budget_bytes: int = 32 << 20) -> None:
        self.budget = budget_bytes
        self._used = 0
        self._tiles: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str) -> bytes | None:
        with self._lock:
            data = self._tiles.get(path)
            if data is not None:
                self._tiles.move_to_end(path)
            return data

    def put(self, path: str, data: bytes) -> None:
        with self._lock:
            if path in self._tiles or len(data) > self.budget:
                return
            self._tiles[path] = data
            self._used += len(data)
            while self._used > self.budget:
                _, old = self._tiles.popitem(last=False)
                self._used -= len(old)


def serve_tile(db: Database, cache: FullTileCache, tile: tiles.Tile) -> bytes:
    """A tile of the published tree, full ones from ``cache`` when it has them."""
    if tile.full:
        hit = cache.get(tile.path)
        if hit is not None:
            return hit
    with db.read() as session:
        data = tile_bytes(session, tile, published_head(session, "").size)
    if tile.full:
        cache.put(tile.path, data)
    return data


class EntryTooLarge(Conflict):
    """A record in the bundle exceeds the 65,535 bytes a C2SP entry bundle can hold (a
    large draw plan can): the level-0 tile still has its hash; read it by its id."""


def published_head(session: Session, origin: str) -> cps.TreeHead:
    """The newest anchored tree head (the empty tree before the first checkpoint)."""
    cp = last_checkpoint(session)
    if cp is None:
        return cps.TreeHead(origin, 0, merkle.EMPTY_ROOT)
    return cps.TreeHead(origin, cp.tree_size, bytes(cp.root))


def cosignatures(session: Session, size: int) -> list[notes.Signature]:
    """The witnesses' cosignatures kept for the tree head of ``size`` leaves
    (``backend/ledger/witnessing.py`` writes them, checked, as ``cosig:<size>:<name>``)."""
    rows = session.execute(
        select(col(LedgerState.value)).where(col(LedgerState.key).like(f"cosig:{size}:%"))
    ).scalars()
    return [notes.parse_signature_line(v) for v in rows]


def checkpoint_note(session: Session, head: cps.TreeHead, log_key: notes.Signer) -> notes.Note:
    """``head`` signed by the log key (Ed25519 is deterministic: the same bytes each time),
    with the witnesses' cosignatures kept for it."""
    return cps.sign_checkpoint(head, log_key).with_signatures(cosignatures(session, head.size))


def signed_checkpoint(session: Session, log_key: notes.Signer) -> notes.Note:
    return checkpoint_note(session, published_head(session, log_key.name), log_key)


def tile_bytes(session: Session, tile: tiles.Tile, size: int) -> bytes:
    """The content of ``tile`` of the published tree of ``size`` leaves."""
    if not tiles.servable(tile, size):
        raise TileNotFound(
            f"{tile.path} is not a tile of the published tree (size {size}): a full tile "
            "or a partial one exists once a checkpoint covers all its hashes"
        )
    lo, hi = tile.first, tile.first + tile.width
    if tile.level == tiles.ENTRIES:
        rows = session.execute(
            select(col(LogLeaf.canonical))
            .where(col(LogLeaf.leaf_index) >= lo, col(LogLeaf.leaf_index) < hi)
            .order_by(col(LogLeaf.leaf_index))
        ).scalars().all()
        found = [bytes(r) for r in rows]
    else:
        rows = session.execute(
            select(col(MerkleNode.hash))
            .where(
                col(MerkleNode.level) == tile.merkle_level,
                col(MerkleNode.idx) >= lo,
                col(MerkleNode.idx) < hi,
            )
            .order_by(col(MerkleNode.idx))
        ).scalars().all()
        found = [bytes(r) for r in rows]
    if len(found) != tile.width:
        raise LogCorrupted(f"{tile.path}: {len(found)} of {tile.width} stored rows are present")
    if tile.level == tiles.ENTRIES:
        for i, entry in enumerate(found):
            if len(entry) > tiles.MAX_ENTRY_BYTES:
                raise EntryTooLarge(
                    f"entry {lo + i} is {len(entry):,} bytes; a C2SP entry bundle holds "
                    f"entries of at most {tiles.MAX_ENTRY_BYTES:,}: read it at "
                    f"/api/records/{merkle.leaf_hash(entry).hex()} (tile/0 has its hash)"
                )
        return tiles.encode_entry_bundle(found)
    return b"".join(found)


def export_tiles(
    session: Session,
    directory: Path,
    log_key: notes.Signer,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[notes.Note, int, list[str]]:
    """Write the signed checkpoint and every tile of the published tree under
    ``directory`` (paths as served). Full tiles already there are left alone (they never
    change); returns the checkpoint, the number of files written and the entry bundles
    left out because a record in them is too large for the format."""
    note = signed_checkpoint(session, log_key)
    size = cps.parse_checkpoint_text(note.text).size
    wanted = list(tiles.tiles_for_size(size))
    written, skipped = 0, []
    for i, tile in enumerate(wanted):
        target = directory / tile.path
        if not (tile.full and target.exists()):
            try:
                data = tile_bytes(session, tile, size)
            except EntryTooLarge as exc:
                skipped.append(f"{tile.path}: {exc.detail}")
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(target, data)
            written += 1
        if progress is not None:
            progress(i + 1, len(wanted))
    # The checkpoint last: a reader who sees it finds every tile it names.
    _write_atomic(directory / "checkpoint", note.format().encode())
    return note, written + 1, skipped


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
