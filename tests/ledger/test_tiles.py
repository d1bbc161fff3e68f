"""Tile paths and tile sets (c2sp.org/tlog-tiles)."""

from __future__ import annotations

import pytest

from backend.ledger import tiles
from backend.ledger.tiles import ENTRIES, Tile


@pytest.mark.parametrize(
    ("n", "encoded"),
    [(0, "000"), (7, "007"), (999, "999"), (1000, "x001/000"), (1234067, "x001/x234/067")],
)
def test_index_encoding(n: int, encoded: str) -> None:
    assert tiles.encode_index(n) == encoded
    assert tiles.parse_tile_path("0", encoded) == Tile(0, n)


def test_paths_and_parsing() -> None:
    assert Tile(1, 1234067, 17).path == "tile/1/x001/x234/067.p/17"
    assert Tile(ENTRIES, 3).path == "tile/entries/003"
    assert tiles.parse_tile_path("entries", "003.p/5") == Tile(ENTRIES, 3, 5)
    for level, rest in [
        ("64", "000"), ("01", "000"), ("0", "0"), ("0", "x000/001"), ("0", "001.p/0"),
        ("0", "001.p/256"), ("0", "001.p/07"), ("0", "1/000"), ("x", "000"), ("0", "00a"),
    ]:
        with pytest.raises(tiles.TileError):
            tiles.parse_tile_path(level, rest)


def test_spec_example_sizes() -> None:
    """tlog-tiles: a tree of 70,000 has 273 full level-0 tiles, a partial level-0 tile of
    width 112, one full level-1 tile, a partial level-1 tile of width 17 and a partial
    level-2 tile of width 1; a tree of 256 a full level-0 tile and a level-1 tile of 1."""
    got = [t for t in tiles.tiles_for_size(70_000) if t.level != ENTRIES]
    assert sum(1 for t in got if t.level == 0 and t.full) == 273
    assert [t for t in got if not t.full] == [Tile(0, 273, 112), Tile(1, 1, 17), Tile(2, 0, 1)]
    assert sum(1 for t in got if t.level == 1 and t.full) == 1
    assert [t for t in tiles.tiles_for_size(256) if t.level != ENTRIES] == [
        Tile(0, 0), Tile(1, 0, 1)
    ]
    assert list(tiles.tiles_for_size(0)) == []
    for t in tiles.tiles_for_size(70_000):
        assert tiles.servable(t, 70_000)
    assert tiles.servable(Tile(0, 273, 111), 70_000)  # an earlier checkpoint's partial tile
    assert not tiles.servable(Tile(0, 273, 113), 70_000)
    assert not tiles.servable(Tile(0, 273), 70_000)
    assert tiles.servable(Tile(0, 272), 70_000)
    assert not tiles.servable(Tile(2, 0, 2), 70_000)
    assert not tiles.servable(Tile(ENTRIES, 274, 1), 70_000)


def test_entry_bundles_round_trip_and_limits() -> None:
    entries = [b"", b"a", b"x" * 65535]
    data = tiles.encode_entry_bundle(entries)
    assert data[:5] == b"\x00\x00\x00\x01a"
    assert tiles.decode_entry_bundle(data) == entries
    with pytest.raises(tiles.TileError):
        tiles.decode_entry_bundle(data[:-1])
    with pytest.raises(tiles.TileError):
        tiles.encode_entry_bundle([b"x" * 65536])

