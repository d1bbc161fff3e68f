"""GET /checkpoint and the tiles: a client that knows only the C2SP formats and hashlib
rebuilds the root of every published checkpoint, and our record ids, from the tiles."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.config import Settings
from backend.context import AppContext
from backend.ledger import checkpoint as cps
from backend.ledger import log as ledger_log
from backend.ledger import published
from backend.ledger.anchoring import Anchorer
from backend.ledger.logkey import load_log_key
from backend.ledger.note import Verifier
from backend.ledger.records import SYSTEM, RecordDraft
from backend.ledger.tiles import Tile
from tests.ledger.conftest import append_records, run_cli, settings_env


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"anchor_enabled": False}))
    with TestClient(app) as c:
        yield c


def ctx_of(client: TestClient) -> AppContext:
    return client.app.state.ctx  # type: ignore[attr-defined,no-any-return]


def grow_to(ctx: AppContext, size: int) -> None:
    """Records up to ``size - 1`` leaves, then a checkpoint: its subject index record is
    leaf ``size - 1``, so the checkpoint's tree size is ``size``."""
    with ctx.db.session() as s:
        have = ledger_log.tree_size(s)
    assert have < size - 1, "a checkpoint adds at least one record and its index record"
    while have < size - 1:
        n = min(size - 1 - have, 20_000)
        append_records(ctx, n, start=have)
        have += n
    Anchorer(ctx).run_once(force=True)


# --- a tiles client made of hashlib only -------------------------------------------------


def _index_path(n: int) -> str:
    groups = []
    while True:
        groups.append(f"{n % 1000:03d}")
        n //= 1000
        if not n:
            break
    groups.reverse()
    return "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])


class TilesClient:
    def __init__(self, client: TestClient, size: int) -> None:
        self.client, self.size, self.cache = client, size, {}  # type: ignore[var-annotated]
        self.fetched = 0

    def tile(self, level: str | int, n: int) -> bytes:
        lv = 0 if level == "entries" else int(level)
        count = self.size // 256**lv
        width = 256 if (n + 1) * 256 <= count else count % 256
        path = f"/tile/{level}/{_index_path(n)}" + ("" if width == 256 else f".p/{width}")
        if path not in self.cache:
            r = self.client.get(path)
            assert r.status_code == 200, (path, r.text)
            assert r.headers["content-type"] == "application/octet-stream"
            immutable = "immutable" in r.headers["cache-control"]
            assert immutable == (width == 256), (path, r.headers["cache-control"])
            self.cache[path] = r.content
            self.fetched += 1
        data: bytes = self.cache[path]
        if level != "entries":
            assert len(data) == 32 * width
        return data

    def subtree(self, height: int, idx: int) -> bytes:
        """MTH of the perfect subtree of 2**height leaves at position idx, from tiles."""
        lv, rest = divmod(height, 8)
        k = 1 << rest
        first = idx * k
        tile = self.tile(lv, first // 256)
        hashes = [tile[32 * j : 32 * j + 32] for j in range(first % 256, first % 256 + k)]
        while len(hashes) > 1:
            hashes = [
                hashlib.sha256(b"\x01" + hashes[j] + hashes[j + 1]).digest()
                for j in range(0, len(hashes), 2)
            ]
        return hashes[0]

    def root(self) -> bytes:
        parts, start = [], 0
        for height in reversed(range(self.size.bit_length())):
            if self.size >> height & 1:
                parts.append(self.subtree(height, start >> height))
                start += 1 << height
        acc = parts[-1]
        for h in reversed(parts[:-1]):
            acc = hashlib.sha256(b"\x01" + h + acc).digest()
        return acc

    def check_entries(self) -> int:
        """Every entry bundle hashes (RFC 9162 leaves) to the level-0 tile beside it."""
        checked = 0
        for n in range((self.size + 255) // 256):
            bundle, leaves = self.tile("entries", n), self.tile(0, n)
            pos, i = 0, 0
            while pos < len(bundle):
                length = int.from_bytes(bundle[pos : pos + 2], "big")
                entry = bundle[pos + 2 : pos + 2 + length]
                assert hashlib.sha256(b"\x00" + entry).digest() == leaves[32 * i : 32 * i + 32]
                pos, i, checked = pos + 2 + length, i + 1, checked + 1
            assert i * 32 == len(leaves)
        return checked


def read_checkpoint(client: TestClient, log_key: Verifier) -> cps.TreeHead:
    r = client.get("/checkpoint")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert "max-age=2" in r.headers["cache-control"]
    opened = cps.open_checkpoint(r.text, origin=log_key.name, log_keys=[log_key])
    return opened.head


def test_roots_rebuilt_from_tiles_across_tile_boundaries(client: TestClient) -> None:
    ctx = ctx_of(client)
    log_key = load_log_key(ctx.settings).verifier
    assert read_checkpoint(client, log_key).size == 0  # before the first checkpoint
    seen: list[tuple[int, bytes]] = []
    # (256 after 255 cannot be: each checkpoint adds an index record: see the next test)
    for size in (255, 257, 65_537):
        grow_to(ctx, size)
        head = read_checkpoint(client, log_key)
        assert head.size == size
        # The signed tree head is the one anchored on chain.
        latest = client.get("/api/log/checkpoints/latest").json()
        assert (latest["tree_size"], latest["root"]) == (size, "0x" + head.root.hex())
        tc = TilesClient(client, size)
        assert tc.root() == head.root
        if size < 1000:
            assert tc.check_entries() == size
        seen.append((size, head.root))
    # Older checkpoints' partial tiles are still served; their roots still rebuild.
    for size, root in seen:
        assert TilesClient(client, size).root() == root
    # Our record ids are the entries' leaf hashes.
    with ctx.db.read() as s:
        [(index, record_id, canonical)] = list(ledger_log.iter_leaves(s, 300, 301))
    bundle = TilesClient(client, 65_537).tile("entries", index // 256)
    assert canonical in bundle
    assert hashlib.sha256(b"\x00" + canonical).hexdigest() == record_id


def test_a_checkpoint_of_exactly_one_full_tile(client: TestClient) -> None:
    ctx = ctx_of(client)
    log_key = load_log_key(ctx.settings).verifier
    grow_to(ctx, 256)
    head = read_checkpoint(client, log_key)
    assert head.size == 256
    tc = TilesClient(client, 256)
    assert tc.root() == head.root and tc.check_entries() == 256


def test_tiles_beyond_the_published_tree_are_404(client: TestClient) -> None:
    ctx = ctx_of(client)
    grow_to(ctx, 10)
    append_records(ctx, 5, start=10)  # pending: not published yet
    assert client.get("/tile/0/000.p/10").status_code == 200
    for path in ("/tile/0/000.p/11", "/tile/0/000", "/tile/1/000.p/1", "/tile/entries/000.p/15"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.json()["error"] == "TileNotFound"
    for path in ("/tile/0/0", "/tile/64/000", "/tile/0/000.p/0", "/tile/entries/000.p/256"):
        r = client.get(path)
        assert r.status_code == 422, path
        assert r.json()["error"] == "ValidationFailed"


def test_export_tiles_writes_what_is_served(client: TestClient, tmp_path: Path) -> None:
    ctx = ctx_of(client)
    grow_to(ctx, 300)
    out = tmp_path / "static"
    r = run_cli(["export-tiles", str(out)], env=settings_env(ctx.settings))
    assert r.returncode == 0, r.stderr
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == [
        "checkpoint", "tile/0/000", "tile/0/001.p/44", "tile/1/000.p/1",
        "tile/entries/000", "tile/entries/001.p/44",
    ]
    for f in files[1:]:
        assert (out / f).read_bytes() == client.get("/" + f).content
    log_key = load_log_key(ctx.settings).verifier
    head = cps.open_checkpoint(
        (out / "checkpoint").read_text(), origin=log_key.name, log_keys=[log_key]
    ).head
    assert head.size == 300
    assert base64.b64encode(head.root).decode() in client.get("/checkpoint").text


def test_a_record_too_large_for_an_entry_bundle(client: TestClient, tmp_path: Path) -> None:
    """tlog-tiles entries carry a 16-bit length; a larger record (a big draw plan) is
    named, its hash stays in tile/0, and export-tiles leaves only that bundle out."""
    ctx = ctx_of(client)
    with ctx.db.session() as s:
        [big] = ledger_log.append(
            s, RecordDraft(type="test.note", subject=None, actor=SYSTEM, body={"x": "a" * 70_000})
        )
        s.commit()
    grow_to(ctx, 4)
    size = read_checkpoint(client, load_log_key(ctx.settings).verifier).size
    r = client.get(f"/tile/entries/000.p/{size}")
    assert r.status_code == 409 and r.json()["error"] == "EntryTooLarge"
    assert f"/api/records/{big.record_id}" in r.json()["detail"]
    assert client.get(f"/tile/0/000.p/{size}").status_code == 200
    proc = run_cli(["export-tiles", str(tmp_path / "out")], env=settings_env(ctx.settings))
    assert proc.returncode == 0, proc.stderr
    assert f"left out tile/entries/000.p/{size}" in proc.stderr
    assert (tmp_path / "out" / f"tile/0/000.p/{size}").exists()


def test_full_tiles_are_kept_partial_ones_are_not(client: TestClient) -> None:
    ctx = ctx_of(client)
    grow_to(ctx, 300)
    full = client.get("/tile/0/000").content
    cache = ctx.local("full_tiles", published.FullTileCache)
    assert cache.get("tile/0/000") == full

    class NoDatabase:
        def read(self) -> None:
            raise AssertionError("a cached full tile must not need the database")

    assert published.serve_tile(NoDatabase(), cache, Tile(0, 0)) == full  # type: ignore[arg-type]
    client.get("/tile/0/001.p/44")
    assert cache.get("tile/0/001.p/44") is None
    small = published.FullTileCache(budget_bytes=3)
    small.put("a", b"12")
    small.put("b", b"34")
    assert small.get("a") is None and small.get("b") == b"34"
    small.put("c", b"toolarge")
    assert small.get("c") is None
