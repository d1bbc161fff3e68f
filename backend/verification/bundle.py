"""The independent verifier: check a proof bundle using only the bundle and the ledger.

Used by ``honest-metering verify BUNDLE.json``. It recomputes the leaf hash from
the record's bytes, checks the inclusion proof against the bundle's checkpoint,
then reads that checkpoint from the MeteringLedger contract through any
Ethereum JSON-RPC endpoint, checks the anchoring transaction, and asks the
contract's ``verifyInclusion`` as well.

This module must never import the service's database layer (``backend.db``,
SQLAlchemy, SQLModel) or its settings: a verifier that trusted the operator's
files would prove nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from web3 import Web3

from backend.ledger import merkle, onchain
from backend.ledger.bundle import BundleFormatError, ProofBundle, parse_bundle, unhex
from backend.ledger.contract import ABI
from backend.ledger.records import InvalidRecord, parse_canonical

Status = Literal["ok", "FAIL", "skipped"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str


@dataclass
class Verdict:
    """The outcome: every check, in order, and whether the whole bundle holds."""

    checks: list[Check] = field(default_factory=list)
    bundle: ProofBundle | None = None
    ledger_url: str | None = None
    # True when a check could not be completed (unreadable bundle, ledger unreachable),
    # as opposed to a check that ran and found the bundle false.
    incomplete: bool = False

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.status == "ok" for c in self.checks)

    @property
    def reason(self) -> str | None:
        for c in self.checks:
            if c.status == "FAIL":
                return c.detail
        return None

    def add(self, name: str, status: Status, detail: str) -> bool:
        self.checks.append(Check(name, status, detail))
        return status == "ok"

    def summary(self) -> str:
        if self.ok and self.bundle is not None:
            b = self.bundle
            cp = b.checkpoint
            about = _describe_record(b.record)
            return (
                f"VERIFIED: record {b.record_id}{about} is entry {b.leaf_index} of the log "
                f"whose tree head (size {cp.tree_size}, root {cp.root}) was anchored as "
                f"checkpoint {cp.index} in contract {cp.contract_address} on chain "
                f"{cp.chain_id}, block {cp.block_number}, at {cp.anchored_at}. The record "
                "cannot have been altered, back-dated or removed since."
            )
        if self.incomplete:
            return f"NOT VERIFIED (could not complete the check): {self.reason}"
        return f"NOT VERIFIED: {self.reason}"

    def render(self) -> str:
        width = max((len(c.name) for c in self.checks), default=0)
        lines = [f"  [{c.status}]{' ' * (8 - len(c.status))}{c.name:<{width}}  {c.detail}"
                 for c in self.checks]
        return "\n".join([*lines, "", self.summary()])

    def to_dict(self) -> dict[str, Any]:
        return {
            "verified": self.ok,
            "incomplete": self.incomplete,
            "reason": self.reason,
            "ledger_url": self.ledger_url,
            "checks": [c.__dict__ for c in self.checks],
            "summary": self.summary(),
        }


def _describe_record(record: str) -> str:
    try:
        env = json.loads(record)
        return f" ({env['type']}, subject {env['subject']}, accepted {env['at']})"
    except Exception:
        return ""


# --- loading -------------------------------------------------------------------------


def load_bundle_file(path: Path) -> Any:
    """The decoded JSON of a bundle file; raises BundleFormatError when unreadable."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise BundleFormatError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise BundleFormatError(f"{path} is not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleFormatError(f"{path} is not JSON: {exc}") from None


def connect(url: str, *, timeout_s: float = 15.0) -> Web3:
    return Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout_s}))


# --- the checks ------------------------------------------------------------------------


def check_offline(b: ProofBundle, v: Verdict) -> bool:
    """Record → leaf hash → inclusion proof → the bundle's root. No network."""
    data = b.record.encode("utf-8")
    leaf = merkle.leaf_hash(data)
    try:
        parse_canonical(data)
        canonical = True
    except InvalidRecord as exc:
        canonical = False
        why = str(exc)
    if leaf.hex() != b.record_id:
        v.add(
            "record",
            "FAIL",
            f"the record's bytes hash to leaf hash 0x{leaf.hex()}, not to its record id "
            f"{b.record_id}: the record was changed",
        )
        return False
    if "0x" + leaf.hex() != b.leaf_hash:
        v.add(
            "record",
            "FAIL",
            f"the bundle's leaf_hash {b.leaf_hash} is not the hash of the record "
            f"(0x{leaf.hex()})",
        )
        return False
    if not canonical:
        v.add("record", "FAIL", f"the record is not in canonical form: {why}")
        return False
    v.add(
        "record",
        "ok",
        f"the record's {len(data)} bytes hash to leaf hash 0x{leaf.hex()}, which is its id",
    )
    cp = b.checkpoint
    try:
        computed = merkle.root_from_inclusion_proof(
            b.leaf_index, cp.tree_size, leaf, [unhex(p) for p in b.inclusion_proof]
        )
    except merkle.MerkleError as exc:
        v.add("inclusion", "FAIL", f"the inclusion proof is malformed: {exc}")
        return False
    if computed.hex() != cp.root.removeprefix("0x"):
        v.add(
            "inclusion",
            "FAIL",
            f"the inclusion proof for leaf {b.leaf_index} in a tree of {cp.tree_size} leads "
            f"to root 0x{computed.hex()}, not to the checkpoint's root {cp.root}",
        )
        return False
    v.add(
        "inclusion",
        "ok",
        f"the inclusion proof ({len(b.inclusion_proof)} hashes) places the leaf at index "
        f"{b.leaf_index} of the tree of size {cp.tree_size} with root {cp.root}",
    )
    return True


def _unreachable(v: Verdict, name: str, url: str, exc: Exception) -> None:
    v.incomplete = True
    v.add(name, "FAIL", f"cannot read the ledger at {url}: {type(exc).__name__}: {exc}")


def check_on_chain(b: ProofBundle, w3: Web3, v: Verdict, *, url: str) -> bool:
    """The checkpoint as the contract holds it, its transaction, and ``verifyInclusion``."""

    cp = b.checkpoint
    try:
        chain_id = int(w3.eth.chain_id)
        code = w3.eth.get_code(Web3.to_checksum_address(cp.contract_address))
    except Exception as exc:
        _unreachable(v, "ledger", url, exc)
        return False
    if chain_id != cp.chain_id:
        v.add(
            "ledger",
            "FAIL",
            f"the ledger at {url} is chain {chain_id}, but the bundle's checkpoint is on chain "
            f"{cp.chain_id}",
        )
        return False
    if len(code) == 0:
        v.add(
            "ledger", "FAIL", f"there is no contract at {cp.contract_address} on chain {chain_id}"
        )
        return False
    v.add("ledger", "ok", f"{url} serves chain {chain_id}; contract {cp.contract_address} exists")

    contract = w3.eth.contract(address=Web3.to_checksum_address(cp.contract_address), abi=ABI)
    root = unhex(cp.root)
    try:
        head = int(w3.eth.block_number)
        count = onchain.checkpoint_count(contract, block=head)
        on_chain = (
            onchain.checkpoint_at(contract, cp.index, block=head) if cp.index < count else None
        )
    except Exception as exc:
        _unreachable(v, "checkpoint", url, exc)
        return False
    if on_chain is None:
        v.add(
            "checkpoint",
            "FAIL",
            f"the contract has {count} checkpoints; there is no checkpoint {cp.index}",
        )
        return False
    diffs = []
    if on_chain.tree_size != cp.tree_size:
        diffs.append(f"tree size {on_chain.tree_size} (bundle: {cp.tree_size})")
    if on_chain.root != root:
        diffs.append(f"root 0x{on_chain.root.hex()} (bundle: {cp.root})")
    if on_chain.block_number != cp.block_number:
        diffs.append(f"block {on_chain.block_number} (bundle: {cp.block_number})")
    if diffs:
        v.add(
            "checkpoint",
            "FAIL",
            f"the contract's checkpoint {cp.index} has " + ", ".join(diffs),
        )
        return False
    v.add(
        "checkpoint",
        "ok",
        f"the contract holds checkpoint {cp.index}: tree size {cp.tree_size}, root {cp.root}, "
        f"block {cp.block_number} (chain head: block {head})",
    )

    ok = _check_transaction(b, w3, contract, v, url=url)
    leaf = merkle.leaf_hash(b.record.encode("utf-8"))
    try:
        held = bool(
            contract.functions.verifyInclusion(
                leaf,
                b.leaf_index,
                cp.tree_size,
                root,
                [unhex(p) for p in b.inclusion_proof],
            ).call(block_identifier=head)
        )
    except Exception as exc:
        _unreachable(v, "contract", url, exc)
        return False
    if not held:
        v.add("contract", "FAIL", "the contract's verifyInclusion returned false")
        return False
    v.add("contract", "ok", "the contract's own verifyInclusion(leaf, index, size, root, proof) "
          "returned true")
    return ok


def _check_transaction(b: ProofBundle, w3: Web3, contract: Any, v: Verdict, *, url: str) -> bool:
    cp = b.checkpoint
    try:
        receipt = w3.eth.get_transaction_receipt(cp.transaction_hash)  # type: ignore[arg-type]
    except Exception as exc:
        if type(exc).__name__ == "TransactionNotFound":
            v.add(
                "transaction",
                "FAIL",
                f"transaction {cp.transaction_hash} is not on chain {cp.chain_id}",
            )
            return False
        _unreachable(v, "transaction", url, exc)
        return False
    if int(receipt["status"]) != 1:
        v.add("transaction", "FAIL", f"transaction {cp.transaction_hash} failed on chain")
        return False
    if int(receipt["blockNumber"]) != cp.block_number:
        v.add(
            "transaction",
            "FAIL",
            f"transaction {cp.transaction_hash} is in block {receipt['blockNumber']}, "
            f"not in block {cp.block_number}",
        )
        return False
    events = onchain.anchoring_events_in_receipt(contract, receipt["logs"])
    match = [
        e for e in events
        if e.index == cp.index and e.tree_size == cp.tree_size and e.root == unhex(cp.root)
    ]
    if not match:
        v.add(
            "transaction",
            "FAIL",
            f"transaction {cp.transaction_hash} did not anchor checkpoint {cp.index} "
            f"(tree size {cp.tree_size}, root {cp.root}) in contract {cp.contract_address}",
        )
        return False
    v.add(
        "transaction",
        "ok",
        f"transaction {cp.transaction_hash} (block {cp.block_number}) emitted "
        f"CheckpointAnchored({cp.index}, {cp.tree_size}, {cp.root})",
    )
    return True


def verify_bundle(data: Any, *, ledger_url: str | None = None, w3: Web3 | None = None) -> Verdict:
    """Verify a decoded bundle. ``ledger_url`` defaults to the one the bundle names."""
    v = Verdict()
    try:
        b = parse_bundle(data)
    except BundleFormatError as exc:
        v.incomplete = True
        v.add("format", "FAIL", str(exc))
        return v
    v.bundle = b
    v.add("format", "ok", f"proof bundle version {b.version} for record {b.record_id}")
    if not check_offline(b, v):
        return v
    url = ledger_url or b.ledger_url
    v.ledger_url = url
    if w3 is None:
        if not url:
            v.incomplete = True
            v.add(
                "ledger",
                "FAIL",
                "the bundle names no ledger URL: pass --ledger with a JSON-RPC URL of chain "
                f"{b.checkpoint.chain_id}",
            )
            return v
        w3 = connect(url)
    check_on_chain(b, w3, v, url=url or "the given ledger")
    return v
