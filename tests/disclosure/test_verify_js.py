"""The in-browser verifier (static/verify.js) against the Python reference.

The RFC 9162 inclusion check runs in a real Chromium and must agree with
``backend/ledger/merkle.py`` on every case: valid proofs in trees of many
shapes, and proofs mutated the ways transparency-dev tests mutate them (wrong
leaf, index off by one, truncated, extended, a bit flipped, wrong size) — the
same computed root, or an error in both. The canonical-form check must agree
with ``backend/ledger/records.py`` (NFC + RFC 8785) on awkward inputs. The
hand-encoded ABI constants must match the compiled contract.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from backend.ledger import merkle
from backend.ledger.records import canonical_bytes
from tests.conftest import ROOT
from tests.disclosure.conftest import LiveServer

VERIFY_JS = ROOT / "backend" / "disclosure" / "static" / "verify.js"
SIZES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 16, 17, 31, 32, 33, 64, 100, 257]


def _py_root(index: int, size: int, leaf: bytes, proof: list[bytes]) -> str | None:
    try:
        return merkle.root_from_inclusion_proof(index, size, leaf, proof).hex()
    except merkle.MerkleError:
        return None


def _cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for size in SIZES:
        leaves = [merkle.leaf_hash(f"记录 {size}/{i}".encode()) for i in range(size)]
        subtree = merkle.subtree_from_leaves(leaves)
        indexes = range(size) if size <= 33 else sorted({0, 1, size // 2, size - 2, size - 1})
        for index in indexes:
            proof = merkle.inclusion_proof(index, size, subtree)
            leaf = leaves[index]
            variants: list[tuple[str, int, int, bytes, list[bytes]]] = [
                ("valid", index, size, leaf, proof),
                ("wrong leaf", index, size, merkle.leaf_hash(b"other"), proof),
            ]
            if index + 1 < size:
                variants.append(("index+1", index + 1, size, leaf, proof))
            if index > 0:
                variants.append(("index-1", index - 1, size, leaf, proof))
            if proof:
                variants.append(("truncated", index, size, leaf, proof[:-1]))
                flipped = bytearray(proof[0])
                flipped[0] ^= 1
                variants.append(("bit flipped", index, size, leaf, [bytes(flipped), *proof[1:]]))
            variants.append(("extended", index, size, leaf, [*proof, leaves[0]]))
            variants.append(("size+1", index, size + 1, leaf, proof))
            for name, i, n, lf, pr in variants:
                cases.append(
                    {
                        "name": f"{name} (index {i}, size {n})",
                        "index": i,
                        "size": n,
                        "leaf": lf.hex(),
                        "proof": [p.hex() for p in pr],
                        "expected": _py_root(i, n, lf, pr),
                    }
                )
    return cases


RUN_CASES = """
const [cases, done] = [arguments[0], arguments[arguments.length - 1]];
(async () => {
  const V = window.HMVerify;
  const out = [];
  for (const c of cases) {
    try {
      const r = await V.rootFromInclusionProof(
        c.index, c.size, V.hexToBytes(c.leaf), c.proof.map(p => V.hexToBytes(p)));
      out.push(V.bytesToHex(r));
    } catch (e) {
      out.push(null);
    }
  }
  return out;
})().then(done, e => done('ERROR ' + e));
"""


def _open_verifier(browser: Any, live_server: LiveServer) -> None:
    browser.get(live_server.url + "/verify")
    browser.execute_async_script(
        "const done = arguments[0];"
        "(function wait(){ window.HMVerify ? done(true) : setTimeout(wait, 20); })();"
    )


@pytest.mark.browser
def test_inclusion_matches_python_on_many_trees(browser: Any, live_server: LiveServer) -> None:
    _open_verifier(browser, live_server)
    cases = _cases()
    valid = [c for c in cases if c["name"].startswith("valid")]
    assert len(valid) > 200 and all(c["expected"] is not None for c in valid)
    got = browser.execute_async_script(RUN_CASES, cases)
    assert isinstance(got, list), got
    mismatches = [
        (c["name"], c["expected"], g) for c, g in zip(cases, got, strict=True) if c["expected"] != g
    ]
    assert mismatches == []
    # Every mutated proof is rejected (a different root, or an error), as in Python.
    roots = {}
    for size in SIZES:
        leaves = [merkle.leaf_hash(f"记录 {size}/{i}".encode()) for i in range(size)]
        roots[size] = merkle.root_from_leaf_hashes(leaves).hex()
    for c, g in zip(cases, got, strict=True):
        if c["name"].startswith("valid"):
            assert g == roots[c["size"]]
        elif c["size"] in roots:
            assert g != roots[c["size"]], c["name"]


@pytest.mark.browser
def test_leaf_hash_and_canonical_form_match_python(browser: Any, live_server: LiveServer) -> None:
    _open_verifier(browser, live_server)
    samples = [
        {"b": 1, "a": [True, None, False], "数": -12345678901234},
        {"name": "Cafe\u0301 巴中", "k\u0301ey": "x"},  # NFD in keys and values
        {"ctl": 'tab\there\nnew\u0001\u001f"quote\\', "slash": "a/b"},
        {"\ue000": 1, "\U0001f600": 2, "z": 3, "é": 4, "A": 5},  # UTF-16 key order
        {"nested": {"y": [1, {"b": 2, "a": 1}], "x": ""}, "big": 9007199254740991},
        {"emoji": "计量😀", "zero": 0, "neg": -1},
    ]
    texts = [json.dumps(s, ensure_ascii=False) for s in samples]
    expected = [canonical_bytes(s).decode("utf-8") for s in samples]
    script = """
const [texts, done] = [arguments[0], arguments[arguments.length - 1]];
(async () => {
  const V = window.HMVerify;
  const out = [];
  for (const t of texts) {
    const c = V.canonicalize(JSON.parse(t));
    const h = V.bytesToHex(await V.leafHash(new TextEncoder().encode(c)));
    out.push([c, h]);
  }
  return out;
})().then(done, e => done('ERROR ' + e));
"""
    got = browser.execute_async_script(script, texts)
    assert [g[0] for g in got] == expected
    assert [g[1] for g in got] == [merkle.leaf_hash(e.encode()).hex() for e in expected]


@pytest.mark.browser
def test_page_formats_match_python(browser: Any, live_server: LiveServer) -> None:
    """The money, date, time and yes/no text 验证 re-derives is the page's own, exactly:
    otherwise an honest page would fail its check, or a doctored one could pass."""
    from backend.disclosure.shown import date_text, yes_text, yuan
    from backend.disclosure.web import zh_time

    _open_verifier(browser, live_server)
    amounts: list[Any] = [0, 1, 9, 10, 99, 100, 101, 410000, 100000, 99999999, 123456789012,
                          10**13, -1, -100, -410001, None, "410000", 1.5, True, [], {}]
    dates: list[Any] = ["2026-11-13", "2026-01-01", "1999-12-31", "2026-02-30", "2026-1-1",
                        "2026-11-13T08:00:00Z", "garbage", "", None, False, 5, "20261113"]
    times: list[Any] = ["2026-12-03T15:31:22.123456Z", "2026-12-31T16:00:00.000000Z",
                        "2026-06-30T23:59:59.999999Z", "2026-01-01T00:00:00+08:00", "", None]
    truths: list[Any] = [True, False, None, 0, 1, "", "x", [], [0], {}, {"a": 1}]
    got = browser.execute_script(
        "const V = window.HMVerify, a = arguments;"
        "return [a[0].map(V.formatYuan), a[1].map(V.zhDate), a[2].map(V.zhTime),"
        " a[3].map(v => V.shownText('yes', v))];",
        amounts, dates, times, truths,
    )
    assert got[0] == [yuan(v) for v in amounts]
    assert got[1] == [date_text(v) for v in dates]
    assert got[2] == [zh_time(v) for v in times]
    assert got[3] == [yes_text(v) for v in truths]


def test_abi_constants_match_the_compiled_contract() -> None:
    from web3 import Web3

    source = VERIFY_JS.read_text("utf-8")
    selector = re.search(r"SELECTOR_CHECKPOINT = '(0x[0-9a-f]{8})'", source)
    topic = re.search(r"TOPIC_CHECKPOINT_ANCHORED =\s*'(0x[0-9a-f]{64})'", source)
    assert selector and topic
    artifact = json.loads((ROOT / "contracts" / "build" / "MeteringLedger.json").read_text())
    abi = {(e.get("type"), e.get("name")): e for e in artifact["abi"]}
    fn = abi[("function", "checkpoint")]
    assert [i["type"] for i in fn["inputs"]] == ["uint256"]
    # The verifier decodes four static words: treeSize, timestamp, blockNumber, root.
    assert [c["type"] for c in fn["outputs"][0]["components"]] == [
        "uint64",
        "uint64",
        "uint64",
        "bytes32",
    ]
    assert selector.group(1) == "0x" + Web3.keccak(text="checkpoint(uint256)")[:4].hex()
    ev = abi[("event", "CheckpointAnchored")]
    signature = "CheckpointAnchored(" + ",".join(i["type"] for i in ev["inputs"]) + ")"
    assert [i["indexed"] for i in ev["inputs"]] == [True, False, False, False]
    assert [i["type"] for i in ev["inputs"]][1:3] == ["uint64", "bytes32"]
    assert topic.group(1) == "0x" + Web3.keccak(text=signature).hex()
    verify = re.search(r"SELECTOR_VERIFY_INCLUSION = '(0x[0-9a-f]{8})'", source)
    fn = abi[("function", "verifyInclusion")]
    types = [i["type"] for i in fn["inputs"]]
    assert types == ["bytes32", "uint64", "uint64", "bytes32", "bytes32[]"]
    assert [o["type"] for o in fn["outputs"]] == ["bool"]
    assert verify and verify.group(1) == "0x" + Web3.keccak(
        text="verifyInclusion(" + ",".join(types) + ")"
    )[:4].hex()


def test_verifier_uses_no_outside_code() -> None:
    source = VERIFY_JS.read_text("utf-8")
    assert "crypto.subtle.digest('SHA-256'" in source
    assert "import " not in source and "require(" not in source
    assert "innerHTML" not in source and "eval(" not in source
    # Small enough to read through (it now also opens the trust root, signed notes and
    # cosignatures); served compressed.
    assert Path(VERIFY_JS).stat().st_size < 72_000


@pytest.mark.browser
def test_signed_notes_match_the_published_examples(
    browser: Any, live_server: LiveServer
) -> None:
    """The browser's signed-note code (WebCrypto Ed25519) accepts the C2SP and
    golang.org/x/mod/sumdb/note published examples, refuses them altered, and agrees
    with backend/ledger/note.py on a witness cosignature."""
    import time

    from backend.ledger import note as notes
    from tests.ledger.test_note import GO_SIG_LINE, GO_TEXT, GO_VKEY, SPEC_NOTE, SPEC_VKEY

    witness = notes.Signer.generate("witness.example", notes.SIG_COSIGNATURE_V1)
    text = "example.com/log\n3\n" + "A" * 43 + "=\n"
    cosigned = notes.Note(text, (witness.sign(text, timestamp=int(time.time())),)).format()
    _open_verifier(browser, live_server)
    script = """
const [cases, done] = [arguments[0], arguments[arguments.length - 1]];
(async () => {
  const V = window.HMVerify;
  const out = [];
  for (const [vkey, note] of cases) {
    try {
      const key = await V.parseVkey(vkey);
      const good = await V.verifiedBy(V.parseNote(note), [key]);
      out.push([V.bytesToHex(key.keyId), Object.keys(good)]);
    } catch (e) {
      out.push('ERROR ' + e.message);
    }
  }
  return out;
})().then(done, e => done('ERROR ' + e));
"""
    go_note = GO_TEXT + "\n" + GO_SIG_LINE
    cases = [
        [SPEC_VKEY, SPEC_NOTE],
        [GO_VKEY, go_note],
        [witness.verifier.vkey, cosigned],
        [SPEC_VKEY, SPEC_NOTE.replace("example message", "example massage")],
        [GO_VKEY, go_note.replace("cryptography", "blockchain")],
        [witness.verifier.vkey, cosigned.replace("\n3\n", "\n4\n")],
        [SPEC_VKEY.replace("530d903a", "530d903b"), SPEC_NOTE],
    ]
    got = browser.execute_async_script(script, cases)
    assert got[0] == ["530d903a", ["example.com/foo"]]
    assert got[1] == ["c74f20a3", ["PeterNeumann"]]
    assert got[2] == [witness.verifier.key_id.hex(), ["witness.example"]]
    assert all(g.startswith("ERROR") and "签名无法验证" in g for g in got[3:6]), got
    assert got[6].startswith("ERROR") and "密钥编号与密钥不符" in got[6]
