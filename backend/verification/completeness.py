"""Check a completeness proof (``GET /api/merchants/{uscc}/completeness``).

The proof says "as of checkpoint N, exactly these n records name this code" (or none
does). It holds when

1. the index record's proof bundle verifies against the pinned trust root (the
   record is in the log under the anchored, cosigned root: docs/proof-bundle.md);
2. that record is the checkpoint's last leaf, a ``ledger.subject_index`` record
   covering every leaf before it;
3. the listed record ids give the count and ids digest of the proof's leaf, and the
   sparse Merkle proof leads from that leaf (or from the absence it shows) to the
   root the index record commits to.

The records themselves are then fetched and verified by the caller
(:mod:`backend.verification.credit`). Must never import the service's database layer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from web3 import Web3

from backend.ledger import subject_index as si
from backend.ledger.trustroot import TrustRoot
from backend.verification.bundle import verify_bundle

INDEX_TYPE = "ledger.subject_index"
FORMAT = "honest-metering/completeness"


@dataclass
class Completeness:
    """What a verified proof says (``problem`` set when it does not hold)."""

    subject: str
    problem: str | None = None
    incomplete: bool = False
    checkpoint: int | None = None
    tree_size: int | None = None
    covers: int | None = None
    record_ids: list[str] = field(default_factory=list)
    leaf_indexes: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def count(self) -> int:
        return len(self.record_ids)

    def fail(self, problem: str, *, incomplete: bool = False) -> Completeness:
        self.problem = problem
        self.incomplete = incomplete
        return self


def verify_completeness(
    data: Any,
    uscc: str,
    *,
    trust_root: TrustRoot | None,
    ledger_url: str | None = None,
    w3: Web3 | None = None,
) -> Completeness:
    c = Completeness(subject=uscc)
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != 1:
        return c.fail("the answer is not a completeness proof (format 1)", incomplete=True)
    try:
        key = si.subject_key(uscc)
        if data["subject"] != uscc or data["key"] != key.hex():
            return c.fail(f"the proof is about {data['subject']!r}, not {uscc}")
        bundle = data["index_record"]
        ids = [str(r) for r in data["record_ids"]]
        leaves = [int(i) for i in data["leaf_indexes"]]
        proof = si.IndexProof.from_json(data["proof"])
        proves = data["proves"]
    except (KeyError, TypeError, ValueError) as exc:
        return c.fail(f"the completeness proof is malformed: {exc}", incomplete=True)

    verdict = verify_bundle(bundle, trust_root=trust_root, ledger_url=ledger_url, w3=w3)
    if not verdict.ok or verdict.bundle is None:
        return c.fail(f"the index record: {verdict.reason}", incomplete=verdict.incomplete)
    b = verdict.bundle
    size, index = b.checkpoint.tree_size, b.checkpoint.index
    record = json.loads(b.record)
    body = record.get("body") or {}
    if record.get("type") != INDEX_TYPE or record.get("subject") is not None:
        return c.fail(f"record {b.record_id} is a {record.get('type')}, not a subject index")
    if b.leaf_index != size - 1 or body.get("covers") != b.leaf_index:
        return c.fail(
            f"the index record sits at leaf {b.leaf_index} and covers {body.get('covers')} "
            f"leaves: it is not the last leaf of checkpoint {index} (tree size {size}) "
            "covering every leaf before it"
        )
    if (data.get("checkpoint"), data.get("tree_size"), data.get("covers")) != (
        index, size, b.leaf_index
    ):
        return c.fail("the proof names another checkpoint than its index record's bundle")
    try:
        root = bytes.fromhex(str(body.get("root")))
    except ValueError:
        return c.fail("the index record's root is not hex")
    if len(ids) != len(leaves) or any(
        not 0 <= a < b2 for a, b2 in zip(leaves, [*leaves[1:], b.leaf_index], strict=True)
    ):
        return c.fail("the record list is not in log order below the index record")
    try:
        if proves == "membership":
            count, digest = si.ids_digest(ids)
            if count == 0 or data.get("count") != count:
                return c.fail(
                    f"the proof claims {data.get('count')} record(s) and lists {count}"
                )
            si.verify_membership(root, key, count, digest, proof)
        elif proves == "absence":
            if ids:
                return c.fail("an absence proof lists records")
            si.verify_absence(root, key, proof)
        else:
            return c.fail(f"the proof proves {proves!r}, neither membership nor absence")
    except si.SubjectIndexError as exc:
        leaf = proof.leaf
        if proves == "membership" and leaf is not None and leaf.key == key:
            return c.fail(
                f"the index at checkpoint {index} holds {leaf.count} record(s) about {uscc}, "
                f"but the service lists {len(ids)}: {exc}"
            )
        return c.fail(f"the index proof does not hold: {exc}")
    c.checkpoint, c.tree_size, c.covers = index, size, b.leaf_index
    c.record_ids, c.leaf_indexes = ids, leaves
    return c
