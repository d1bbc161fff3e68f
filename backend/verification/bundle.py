"""The independent verifier: check a proof bundle using only the bundle, a pinned trust
root and the ledger.

Used by ``honest-metering verify --trust-root FILE|URL BUNDLE.json``. It recomputes the
leaf hash from the record's bytes, checks the inclusion proof against the bundle's
checkpoint, checks that the checkpoint is on the chain and in the contract the trust
root names (never the ones the bundle names), for a version 2 bundle checks the signed
checkpoint against the pinned log key and counts the pinned witnesses' cosignatures,
then reads that checkpoint from the MeteringLedger contract through any Ethereum
JSON-RPC endpoint, checks the anchoring transaction, and asks the contract's
``verifyInclusion`` as well. Without a trust root it never says VERIFIED: anyone can
write a bundle naming a chain and contract of their own.

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

from backend.ledger import checkpoint as cps
from backend.ledger import merkle, onchain
from backend.ledger import note as notes
from backend.ledger.bundle import BundleFormatError, ProofBundle, parse_bundle, unhex
from backend.ledger.contract import ABI
from backend.ledger.records import InvalidRecord, parse_canonical
from backend.ledger.trustroot import TrustRoot

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
    trust_root: TrustRoot | None = None
    # What the pinned witnesses said of a version 2 bundle's checkpoint (None: not known).
    witnessed: str | None = None

    @property
    def ok(self) -> bool:
        # "skipped" checks say what could not be checked; they do not fail the bundle.
        return any(c.status == "ok" for c in self.checks) and all(
            c.status != "FAIL" for c in self.checks
        )

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
            pinned = (
                f" (both pinned by trust root {self.trust_root.fingerprint})"
                if self.trust_root is not None
                else ""
            )
            witnessed = f" {self.witnessed}" if self.witnessed else ""
            return (
                f"VERIFIED: record {b.record_id}{about} is entry {b.leaf_index} of the log "
                f"whose tree head (size {cp.tree_size}, root {cp.root}) was anchored as "
                f"checkpoint {cp.index} in contract {cp.contract_address} on chain "
                f"{cp.chain_id}{pinned}, block {cp.block_number}, at {cp.anchored_at}. The "
                f"record cannot have been altered, back-dated or removed since.{witnessed}"
            )
        if self.incomplete:
            return f"NOT VERIFIED (could not complete the check): {self.reason}" + self._offline()
        return f"NOT VERIFIED: {self.reason}"

    def _offline(self) -> str:
        """When the chain could not be read: what held without it, and that the anchor
        was not checked (the browser verifier says the same)."""
        failed = next((c for c in self.checks if c.status == "FAIL"), None)
        if failed is None or failed.name not in _CHAIN_CHECKS:
            return ""
        held = [c.name for c in self.checks if c.status == "ok" and c.name in _OFFLINE_CHECKS]
        if not held:
            return ""
        witnessed = f" {self.witnessed}" if self.witnessed else ""
        return (
            f" Checked offline: {', '.join(held)}.{witnessed} Not checked: the anchor on "
            "chain (checkpoint, transaction, contract); run again with a reachable --ledger."
        )

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
            "trust_root": None if self.trust_root is None else self.trust_root.fingerprint,
            "witnessed": self.witnessed,
            "checks": [c.__dict__ for c in self.checks],
            "summary": self.summary(),
        }


# Checks that need only the bundle and the trust root, and those that need the chain.
_OFFLINE_CHECKS = ("record", "inclusion", "trust root", "signed checkpoint", "witnesses")
_CHAIN_CHECKS = ("ledger", "checkpoint", "transaction", "contract")


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


def check_pinned(b: ProofBundle, root: TrustRoot, v: Verdict) -> bool:
    """The bundle's chain and contract must be the ones the trust root names."""
    cp, pinned = b.checkpoint, root.body.ledger
    wrong = []
    if cp.chain_id != pinned.chain_id:
        wrong.append(f"chain {cp.chain_id} (pinned: chain {pinned.chain_id})")
    if cp.contract_address.lower() != pinned.contract_address.lower():
        wrong.append(
            f"contract {cp.contract_address} (pinned: contract {pinned.contract_address})"
        )
    if wrong:
        v.add(
            "trust root",
            "FAIL",
            "the bundle's checkpoint names " + " and ".join(wrong) + f", not what trust root "
            f"{root.fingerprint} pins: this bundle is not from the log it claims",
        )
        return False
    v.add(
        "trust root",
        "ok",
        f"chain {pinned.chain_id} and contract {pinned.contract_address} are the ones trust "
        f"root version {root.body.version} ({root.fingerprint}) pins",
    )
    return True


def check_signed_checkpoint(b: ProofBundle, root: TrustRoot, v: Verdict) -> bool:
    """A version 2 bundle's signed note: the pinned log key signed exactly this tree
    head; count the pinned witnesses' cosignatures against the quorum."""
    if b.signed_checkpoint is None:
        v.add(
            "signed checkpoint",
            "skipped",
            "a version 1 bundle carries no signed checkpoint (ask for ?version=2 to check "
            "the log key and the witnesses' cosignatures)",
        )
        return True
    body = root.body
    try:
        opened = cps.open_checkpoint(
            b.signed_checkpoint,
            origin=body.log.origin,
            log_keys=[body.log_verifier()],
            witnesses=body.witness_verifiers(),
        )
    except notes.NoteError as exc:
        v.add("signed checkpoint", "FAIL", f"the signed checkpoint does not hold: {exc}")
        return False
    cp = b.checkpoint
    if (opened.head.size, opened.head.root) != (cp.tree_size, unhex(cp.root)):
        v.add(
            "signed checkpoint",
            "FAIL",
            f"the signed checkpoint is for tree size {opened.head.size}, root "
            f"0x{opened.head.root.hex()}, not the bundle's (size {cp.tree_size}, root {cp.root})",
        )
        return False
    v.add(
        "signed checkpoint",
        "ok",
        f"the log key {body.log.key.split('+')[0]}+{body.log.key.split('+')[1]} signed this "
        "tree head",
    )
    names = sorted(k.name for k in opened.cosigners)
    n, k = len(body.witnesses), body.witness_quorum
    if k == 0:
        v.add("witnesses", "skipped", "the trust root names no witness quorum")
    elif len(names) >= k:
        v.witnessed = (
            f"Witnessed: cosigned by {len(names)} of {n} witnesses ({', '.join(names)}; "
            f"{k} required)."
        )
        v.add(
            "witnesses",
            "ok",
            f"cosigned by {len(names)} of {n} pinned witnesses ({', '.join(names)}); the "
            f"trust root requires {k}",
        )
    else:
        v.witnessed = (
            f"NOT yet witnessed: {len(names)} of the {k} cosignatures required "
            "(the log could still be showing others a different history)."
        )
        v.add("witnesses", "skipped", f"not yet witnessed: cosigned by {len(names)} of {n} "
              f"pinned witnesses, {k} required")
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


NO_TRUST_ROOT = (
    "no trust root pinned: the chain, contract and keys would come from the bundle itself, "
    "which anyone can write (a copy of this software on a chain of its own makes bundles "
    "that pass every other check); pass --trust-root FILE|URL with the official trust "
    "root (/.well-known/honest-metering/trust-root.json, its fingerprint checked against "
    "the one the regulator publishes)"
)


def verify_bundle(
    data: Any,
    *,
    trust_root: TrustRoot | None = None,
    ledger_url: str | None = None,
    w3: Web3 | None = None,
) -> Verdict:
    """Verify a decoded bundle against a pinned trust root. ``ledger_url`` defaults to the
    one the bundle names (a hint: the chain id and contract are checked against the trust
    root). Without a trust root the verdict is never VERIFIED."""
    v = Verdict(trust_root=trust_root)
    if not _verify(data, v, trust_root=trust_root, ledger_url=ledger_url, w3=w3):
        return v
    if trust_root is None:
        v.incomplete = True
        v.add("trust root", "FAIL", NO_TRUST_ROOT)
    return v


def _verify(
    data: Any, v: Verdict, *, trust_root: TrustRoot | None, ledger_url: str | None,
    w3: Web3 | None,
) -> bool:
    try:
        b = parse_bundle(data)
    except BundleFormatError as exc:
        v.incomplete = True
        v.add("format", "FAIL", str(exc))
        return False
    v.bundle = b
    v.add("format", "ok", f"proof bundle version {b.version} for record {b.record_id}")
    if not check_offline(b, v):
        return False
    if trust_root is not None and not (
        check_pinned(b, trust_root, v) and check_signed_checkpoint(b, trust_root, v)
    ):
        return False
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
            return False
        w3 = connect(url)
    return check_on_chain(b, w3, v, url=url or "the given ledger")
