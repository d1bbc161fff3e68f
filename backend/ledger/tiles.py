"""C2SP tiled logs (c2sp.org/tlog-tiles): tile paths, which tiles a tree has, entry bundles.

A level-``L`` tile ``N`` holds the hashes MTH(D[(N*256+i)*256^L : (N*256+i+1)*256^L])
for i in 0..W-1: exactly the perfect-subtree hashes the log stores at Merkle level 8·L
(``backend/ledger/log.py``), so serving a tile reads stored rows and hashes nothing.
Entry bundles hold the records' canonical bytes, each with a big-endian uint16 length:
a tiles client hashes them as RFC 9162 leaves and gets our record ids.

Pure: no I/O, no settings.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_ENTRY_BYTES = 0xFFFF
ENTRIES = -1  # the "level" of entry bundles in :class:`Tile`

_WIDTH_RE = re.compile(r"^[1-9][0-9]{0,2}$")
_LEVEL_RE = re.compile(r"^(0|[1-9][0-9]?)$")


class TileError(ValueError):
    """A tile path or entry bundle is malformed."""


@dataclass(frozen=True)
class Tile:
    """Tile ``index`` at ``level`` (``ENTRIES`` for an entry bundle), ``width`` hashes
    or entries wide (256: full)."""

    level: int
    index: int
    width: int = TILE_WIDTH

    @property
    def full(self) -> bool:
        return self.width == TILE_WIDTH

    @property
    def path(self) -> str:
        """``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]``."""
        level = "entries" if self.level == ENTRIES else str(self.level)
        tail = "" if self.full else f".p/{self.width}"
        return f"tile/{level}/{encode_index(self.index)}{tail}"

    @property
    def merkle_level(self) -> int:
        """The Merkle level (leaves: 0) of this tile's hashes."""
        return 0 if self.level == ENTRIES else self.level * TILE_HEIGHT

    @property
    def first(self) -> int:
        """The index, at :attr:`merkle_level`, of the tile's first hash."""
        return self.index * TILE_WIDTH


def encode_index(n: int) -> str:
    """1234067 -> ``x001/x234/067``: three-digit groups, all but the last with ``x``."""
    if n < 0:
        raise TileError(f"tile index must be >= 0, got {n}")
    groups = []
    while True:
        groups.append(f"{n % 1000:03d}")
        n //= 1000
        if n == 0:
            break
    groups.reverse()
    return "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])


def parse_tile_path(level: str, rest: str) -> Tile:
    """The tile named by ``<L>`` (or ``entries``) and ``<N>[.p/<W>]``."""
    if level == "entries":
        lv = ENTRIES
    elif _LEVEL_RE.match(level) and int(level) <= 63:
        lv = int(level)
    else:
        raise TileError(f"tile level must be 0..63 or 'entries', got {level!r}")
    width = TILE_WIDTH
    index_part = rest
    if ".p/" in rest:
        index_part, _, w = rest.partition(".p/")
        if not _WIDTH_RE.match(w) or not 1 <= int(w) <= 255:
            raise TileError(f"partial tile width must be 1..255, got {w!r}")
        width = int(w)
    groups = index_part.split("/")
    if not all(re.fullmatch(r"x[0-9]{3}", g) for g in groups[:-1]) or not re.fullmatch(
        r"[0-9]{3}", groups[-1]
    ):
        raise TileError(
            f"tile index must be three-digit groups like x001/x234/067, got {index_part!r}"
        )
    digits = "".join(g.removeprefix("x") for g in groups)
    if len(groups) > 1 and groups[0] == "x000":
        raise TileError(f"tile index {index_part!r} has a leading zero group")
    return Tile(lv, int(digits), width)


def tiles_for_size(size: int) -> Iterator[Tile]:
    """Every tile (entry bundles included) of a tree of ``size`` leaves: the full ones
    and, at each level, the partial one if any."""
    if size < 0:
        raise TileError(f"tree size must be >= 0, got {size}")
    level, count = 0, size  # count: hashes at this tile level
    while count > 0:
        full, partial = divmod(count, TILE_WIDTH)
        for n in range(full):
            yield Tile(level, n)
            if level == 0:
                yield Tile(ENTRIES, n)
        if partial:
            yield Tile(level, full, partial)
            if level == 0:
                yield Tile(ENTRIES, full, partial)
        level, count = level + 1, full


def servable(tile: Tile, size: int) -> bool:
    """Whether a tree of ``size`` leaves covers every hash of ``tile``. A partial tile of
    an earlier, smaller checkpoint stays servable (its hashes never change) until the
    log chooses otherwise; the spec requires it while the full tile is not there."""
    per_hash = TILE_WIDTH ** (0 if tile.level == ENTRIES else tile.level)
    return tile.first + tile.width <= size // per_hash


def encode_entry_bundle(entries: Sequence[bytes]) -> bytes:
    out = bytearray()
    for i, e in enumerate(entries):
        if len(e) > MAX_ENTRY_BYTES:
            raise TileError(
                f"entry {i} is {len(e)} bytes; an entry bundle holds at most {MAX_ENTRY_BYTES}"
            )
        out += struct.pack(">H", len(e)) + e
    return bytes(out)


def decode_entry_bundle(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise TileError("entry bundle ends inside a length prefix")
        (n,) = struct.unpack(">H", data[pos : pos + 2])
        if pos + 2 + n > len(data):
            raise TileError("entry bundle ends inside an entry")
        out.append(data[pos + 2 : pos + 2 + n])
        pos += 2 + n
    return out
