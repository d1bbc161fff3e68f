"""MeteringLedger on a real EVM: roles, anchoring, views, inclusion, draws, gas.

Merkle expectations come from ``backend.ledger.merkle`` (the project's one RFC 9162
implementation); events are asserted with all their arguments, reverts by custom error
name and arguments.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import pytest
from eth_utils import event_abi_to_log_topic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.contract import Contract
from web3.types import TxReceipt

from backend.ledger import merkle
from backend.ledger.contract import (
    ABI,
    BYTECODE,
    LedgerRevert,
    call_or_raise,
    decode_error,
    deploy,
    ledger_contract,
    transact_or_raise,
)
from tests.contracts.conftest import Chain, mine

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
ZERO32 = b"\x00" * 32
REVEAL_DELAY = 2
MAX_LEAVES = 300
LEAVES = [merkle.leaf_hash(f"record {i}".encode()) for i in range(MAX_LEAVES)]
OTHER_LEAVES = [merkle.leaf_hash(f"forged record {i}".encode()) for i in range(MAX_LEAVES)]

HYPOTHESIS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# For tests whose every example deploys a contract and anchors (about 0.15 s each).
HYPOTHESIS_DEPLOYING = settings(HYPOTHESIS, max_examples=30)


# ----------------------------------------------------------------------------- helpers


def root(leaves: Sequence[bytes], size: int) -> bytes:
    return merkle.root_from_leaf_hashes(leaves[:size])


def consistency(leaves: Sequence[bytes], old: int, new: int) -> list[bytes]:
    return merkle.consistency_proof(old, new, merkle.subtree_from_leaves(leaves[:new]))


def inclusion(leaves: Sequence[bytes], index: int, size: int) -> list[bytes]:
    return merkle.inclusion_proof(index, size, merkle.subtree_from_leaves(leaves[:size]))


def flip_bit(value: bytes, bit: int = 0) -> bytes:
    out = bytearray(value)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


_EVENT_BY_TOPIC = {
    event_abi_to_log_topic(item): item["name"]  # type: ignore[arg-type]
    for item in ABI
    if item["type"] == "event"
}


def emitted(ledger: Contract, receipt: TxReceipt) -> list[tuple[str, dict[str, Any]]]:
    """Every event the ledger emitted in ``receipt``, in order, as (name, args)."""
    out = []
    for log in receipt["logs"]:
        if log["address"] != ledger.address:
            continue
        name = _EVENT_BY_TOPIC[bytes(log["topics"][0])]
        event = ledger.events[name]().process_log(log)
        out.append((name, dict(event["args"])))
    return out


def reverts(fn: Any, *, sender: str) -> LedgerRevert:
    """Send ``fn`` expecting a revert; return the decoded error."""
    with pytest.raises(LedgerRevert) as info:
        transact_or_raise(fn, sender=sender)
    return info.value


def call_reverts(fn: Any) -> LedgerRevert:
    with pytest.raises(LedgerRevert) as info:
        call_or_raise(fn)
    return info.value


def anchor_tree(
    ledger: Contract,
    sender: str,
    sizes: Sequence[int],
    leaves: Sequence[bytes] = LEAVES,
) -> list[TxReceipt]:
    """Anchor the heads of ``leaves`` at the increasing ``sizes``, with real proofs."""
    receipts = []
    previous = 0
    for size in sizes:
        proof = consistency(leaves, previous, size) if previous else []
        fn = ledger.functions.anchor(size, root(leaves, size), proof)
        receipts.append(transact_or_raise(fn, sender=sender))
        previous = size
    return receipts


def expected_anchor_error(
    previous: int, previous_root: bytes, new: int, new_root: bytes, proof: Sequence[bytes]
) -> tuple[str, dict[str, Any]] | None:
    """What the contract must answer for this anchor attempt, according to merkle.py."""
    try:
        fr, sr = merkle.roots_from_consistency_proof(previous, new, previous_root, proof)
    except merkle.InvalidProof:
        return (
            "MeteringLedgerMalformedConsistencyProof",
            {"previousSize": previous, "newSize": new, "proofLength": len(proof)},
        )
    if fr == previous_root and sr == new_root:
        return None
    return (
        "MeteringLedgerInconsistentCheckpoint",
        {
            "previousSize": previous,
            "previousRoot": previous_root,
            "computedPreviousRoot": fr,
            "newSize": new,
            "newRoot": new_root,
            "computedNewRoot": sr,
        },
    )


def fresh_ledger(chain: Chain, *, reveal_delay_blocks: int = REVEAL_DELAY) -> Contract:
    address = deploy(chain.w3, sender=chain.accounts[0], reveal_delay_blocks=reveal_delay_blocks)
    return ledger_contract(chain.w3, address)


@pytest.fixture
def ledger(chain: Chain) -> Contract:
    return fresh_ledger(chain)


@pytest.fixture
def admin(chain: Chain) -> str:
    return chain.accounts[0]


@pytest.fixture
def stranger(chain: Chain) -> str:
    return chain.accounts[1]


# -------------------------------------------------------------------------- deployment


class TestDeployment:
    def test_initial_state_and_events(self, chain: Chain, admin: str) -> None:
        factory = chain.w3.eth.contract(abi=ABI, bytecode=BYTECODE)
        receipt = transact_or_raise(factory.constructor(7), sender=admin)
        assert receipt["contractAddress"] is not None
        ledger = ledger_contract(chain.w3, receipt["contractAddress"])

        assert emitted(ledger, receipt) == [
            ("AdminTransferred", {"previousAdmin": ZERO_ADDRESS, "newAdmin": admin}),
            ("AnchorerAdded", {"account": admin, "sender": admin}),
            ("RevealDelayChanged", {"previousDelay": 0, "newDelay": 7}),
        ]
        assert ledger.functions.admin().call() == admin
        assert ledger.functions.pendingAdmin().call() == ZERO_ADDRESS
        assert ledger.functions.isAnchorer(admin).call() is True
        assert ledger.functions.revealDelayBlocks().call() == 7
        assert ledger.functions.checkpointCount().call() == 0

    def test_zero_reveal_delay_rejected(self, chain: Chain, admin: str) -> None:
        factory = chain.w3.eth.contract(abi=ABI, bytecode=BYTECODE)
        err = reverts(factory.constructor(0), sender=admin)
        assert (err.name, err.arguments) == ("MeteringLedgerInvalidRevealDelay", {"delay": 0})


# ------------------------------------------------------------------------------ anchor


class TestAnchor:
    def test_first_anchor_without_proof(self, chain: Chain, ledger: Contract, admin: str) -> None:
        r5 = root(LEAVES, 5)
        receipt = transact_or_raise(ledger.functions.anchor(5, r5, []), sender=admin)
        block = chain.w3.eth.get_block(receipt["blockNumber"])

        assert emitted(ledger, receipt) == [
            (
                "CheckpointAnchored",
                {"index": 0, "treeSize": 5, "root": r5, "timestamp": block["timestamp"]},
            )
        ]
        assert ledger.functions.checkpointCount().call() == 1
        assert ledger.functions.checkpoint(0).call() == (
            5,
            block["timestamp"],
            receipt["blockNumber"],
            r5,
        )

    def test_first_anchor_with_proof_rejected(self, ledger: Contract, admin: str) -> None:
        fn = ledger.functions.anchor(5, root(LEAVES, 5), [LEAVES[0]])
        err = reverts(fn, sender=admin)
        assert (err.name, err.arguments) == (
            "MeteringLedgerMalformedConsistencyProof",
            {"previousSize": 0, "newSize": 5, "proofLength": 1},
        )

    def test_first_anchor_of_empty_tree_rejected(self, ledger: Contract, admin: str) -> None:
        err = reverts(ledger.functions.anchor(0, merkle.EMPTY_ROOT, []), sender=admin)
        assert (err.name, err.arguments) == (
            "MeteringLedgerTreeNotGrown",
            {"previousSize": 0, "newSize": 0},
        )

    def test_growing_sequence_with_proofs(self, chain: Chain, ledger: Contract, admin: str) -> None:
        # Powers of two (proof omits the old root), their neighbours, and big jumps.
        sizes = [1, 2, 3, 4, 7, 8, 9, 16, 17, 100, 255, 256, 257, 300]
        receipts = anchor_tree(ledger, admin, sizes)

        for index, (size, receipt) in enumerate(zip(sizes, receipts, strict=True)):
            timestamp = chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
            assert emitted(ledger, receipt) == [
                (
                    "CheckpointAnchored",
                    {
                        "index": index,
                        "treeSize": size,
                        "root": root(LEAVES, size),
                        "timestamp": timestamp,
                    },
                )
            ]
            assert ledger.functions.checkpoint(index).call() == (
                size,
                timestamp,
                receipt["blockNumber"],
                root(LEAVES, size),
            )
        assert ledger.functions.checkpointCount().call() == len(sizes)

    @pytest.mark.parametrize("new_size", [10, 9, 1])
    def test_tree_not_grown_rejected(self, ledger: Contract, admin: str, new_size: int) -> None:
        anchor_tree(ledger, admin, [10])
        fn = ledger.functions.anchor(new_size, root(LEAVES, new_size), [])
        err = reverts(fn, sender=admin)
        assert (err.name, err.arguments) == (
            "MeteringLedgerTreeNotGrown",
            {"previousSize": 10, "newSize": new_size},
        )
        assert ledger.functions.checkpointCount().call() == 1

    @pytest.mark.parametrize(("old", "new"), [(10, 27), (8, 13)])
    def test_head_of_a_different_tree_rejected(
        self, ledger: Contract, admin: str, old: int, new: int
    ) -> None:
        anchor_tree(ledger, admin, [old])
        forged_root = root(OTHER_LEAVES, new)
        forged_proof = consistency(OTHER_LEAVES, old, new)
        err = reverts(ledger.functions.anchor(new, forged_root, forged_proof), sender=admin)

        expected = expected_anchor_error(old, root(LEAVES, old), new, forged_root, forged_proof)
        assert expected is not None
        assert expected[0] == "MeteringLedgerInconsistentCheckpoint"
        assert (err.name, err.arguments) == expected
        assert ledger.functions.checkpointCount().call() == 1

    def test_valid_proof_with_forged_new_root_rejected(self, ledger: Contract, admin: str) -> None:
        anchor_tree(ledger, admin, [10])
        proof = consistency(LEAVES, 10, 20)
        forged_root = root(OTHER_LEAVES, 20)
        err = reverts(ledger.functions.anchor(20, forged_root, proof), sender=admin)
        assert (err.name, err.arguments) == (
            "MeteringLedgerInconsistentCheckpoint",
            {
                "previousSize": 10,
                "previousRoot": root(LEAVES, 10),
                "computedPreviousRoot": root(LEAVES, 10),
                "newSize": 20,
                "newRoot": forged_root,
                "computedNewRoot": root(LEAVES, 20),
            },
        )

    @pytest.mark.parametrize(("old", "new"), [(10, 27), (8, 29), (1, 300), (255, 256)])
    @pytest.mark.parametrize(
        "mutation", ["flip_first", "flip_last", "truncate", "append", "empty", "reverse"]
    )
    def test_mutated_proof_rejected(
        self, ledger: Contract, admin: str, old: int, new: int, mutation: str
    ) -> None:
        anchor_tree(ledger, admin, [old])
        proof = consistency(LEAVES, old, new)
        mutated = {
            "flip_first": lambda p: [flip_bit(p[0], 7)] + p[1:],
            "flip_last": lambda p: p[:-1] + [flip_bit(p[-1], 255)],
            "truncate": lambda p: p[:-1],
            "append": lambda p: p + [LEAVES[0]],
            "empty": lambda p: [],
            "reverse": lambda p: p[::-1],
        }[mutation](list(proof))
        new_root = root(LEAVES, new)
        expected = expected_anchor_error(old, root(LEAVES, old), new, new_root, mutated)
        assert expected is not None, f"{mutation} left the proof valid: pick other sizes"

        err = reverts(ledger.functions.anchor(new, new_root, mutated), sender=admin)
        assert (err.name, err.arguments) == expected
        assert ledger.functions.checkpointCount().call() == 1

    @HYPOTHESIS_DEPLOYING
    @given(data=st.data())
    def test_agrees_with_merkle_py(self, chain: Chain, data: st.DataObject) -> None:
        old = data.draw(st.integers(1, MAX_LEAVES - 1), label="old")
        new = data.draw(st.integers(old + 1, MAX_LEAVES), label="new")
        proof = consistency(LEAVES, old, new)
        new_root = root(LEAVES, new)
        mutation = data.draw(
            st.sampled_from(["none", "flip", "drop", "insert", "forged_root"]), label="mutation"
        )
        if mutation == "flip" and proof:
            i = data.draw(st.integers(0, len(proof) - 1), label="element")
            proof[i] = flip_bit(proof[i], data.draw(st.integers(0, 255), label="bit"))
        elif mutation == "drop" and proof:
            del proof[data.draw(st.integers(0, len(proof) - 1), label="element")]
        elif mutation == "insert":
            proof.insert(data.draw(st.integers(0, len(proof)), label="at"), LEAVES[-1])
        elif mutation == "forged_root":
            new_root = flip_bit(new_root)
        ledger = fresh_ledger(chain)
        admin = chain.accounts[0]
        anchor_tree(ledger, admin, [old])

        expected = expected_anchor_error(old, root(LEAVES, old), new, new_root, proof)
        fn = ledger.functions.anchor(new, new_root, proof)
        if expected is None:
            transact_or_raise(fn, sender=admin)
            assert ledger.functions.latestCheckpoint().call()[:3] == [1, new, new_root]
        else:
            err = reverts(fn, sender=admin)
            assert (err.name, err.arguments) == expected

    def test_revert_mined_with_status_0_is_decoded(
        self, chain: Chain, ledger: Contract, stranger: str
    ) -> None:
        # With an explicit gas limit nothing is estimated: the node mines the failing
        # transaction, and transact_or_raise replays it to name the error.
        head = chain.w3.eth.block_number
        with pytest.raises(LedgerRevert) as info:
            transact_or_raise(
                ledger.functions.anchor(1, LEAVES[0], []), sender=stranger, gas=200_000
            )
        assert (info.value.name, info.value.arguments) == (
            "MeteringLedgerUnauthorizedAnchorer",
            {"caller": stranger},
        )
        assert chain.w3.eth.block_number == head + 1
        assert ledger.functions.checkpointCount().call() == 0

    def test_non_anchorer_rejected(self, ledger: Contract, stranger: str) -> None:
        err = reverts(ledger.functions.anchor(1, LEAVES[0], []), sender=stranger)
        assert (err.name, err.arguments) == (
            "MeteringLedgerUnauthorizedAnchorer",
            {"caller": stranger},
        )


# ------------------------------------------------------------------------------- roles


class TestAnchorers:
    def test_admin_adds_anchorer(self, chain: Chain, ledger: Contract, admin: str) -> None:
        new = chain.accounts[2]
        receipt = transact_or_raise(ledger.functions.addAnchorer(new), sender=admin)
        assert emitted(ledger, receipt) == [("AnchorerAdded", {"account": new, "sender": admin})]
        assert ledger.functions.isAnchorer(new).call() is True
        anchor_tree(ledger, new, [3])
        assert ledger.functions.checkpointCount().call() == 1

    def test_adding_an_anchorer_twice_is_a_silent_no_op(
        self, chain: Chain, ledger: Contract, admin: str
    ) -> None:
        receipt = transact_or_raise(ledger.functions.addAnchorer(admin), sender=admin)
        assert emitted(ledger, receipt) == []
        assert ledger.functions.isAnchorer(admin).call() is True

    def test_admin_removes_anchorer(self, chain: Chain, ledger: Contract, admin: str) -> None:
        other = chain.accounts[2]
        transact_or_raise(ledger.functions.addAnchorer(other), sender=admin)
        receipt = transact_or_raise(ledger.functions.removeAnchorer(other), sender=admin)
        assert emitted(ledger, receipt) == [
            ("AnchorerRemoved", {"account": other, "sender": admin})
        ]
        assert ledger.functions.isAnchorer(other).call() is False
        err = reverts(ledger.functions.anchor(1, LEAVES[0], []), sender=other)
        assert (err.name, err.arguments) == (
            "MeteringLedgerUnauthorizedAnchorer",
            {"caller": other},
        )

    def test_removing_a_non_anchorer_is_a_silent_no_op(
        self, ledger: Contract, admin: str, stranger: str
    ) -> None:
        receipt = transact_or_raise(ledger.functions.removeAnchorer(stranger), sender=admin)
        assert emitted(ledger, receipt) == []

    def test_zero_address_cannot_be_anchorer(self, ledger: Contract, admin: str) -> None:
        err = reverts(ledger.functions.addAnchorer(ZERO_ADDRESS), sender=admin)
        assert (err.name, err.arguments) == (
            "MeteringLedgerInvalidAnchorer",
            {"account": ZERO_ADDRESS},
        )

    @pytest.mark.parametrize("function", ["addAnchorer", "removeAnchorer"])
    def test_non_admin_rejected(self, ledger: Contract, stranger: str, function: str) -> None:
        err = reverts(ledger.functions[function](stranger), sender=stranger)
        assert (err.name, err.arguments) == (
            "MeteringLedgerUnauthorizedAdmin",
            {"caller": stranger},
        )


class TestAdminTransfer:
    def test_two_step_transfer(self, chain: Chain, ledger: Contract, admin: str) -> None:
        new_admin, intruder = chain.accounts[1], chain.accounts[2]
        receipt = transact_or_raise(ledger.functions.transferAdmin(new_admin), sender=admin)
        assert emitted(ledger, receipt) == [
            ("AdminTransferStarted", {"currentAdmin": admin, "newAdmin": new_admin})
        ]
        assert ledger.functions.pendingAdmin().call() == new_admin
        assert ledger.functions.admin().call() == admin

        err = reverts(ledger.functions.acceptAdmin(), sender=intruder)
        assert (err.name, err.arguments) == (
            "MeteringLedgerUnauthorizedPendingAdmin",
            {"caller": intruder, "pendingAdmin": new_admin},
        )

        receipt = transact_or_raise(ledger.functions.acceptAdmin(), sender=new_admin)
        assert emitted(ledger, receipt) == [
            ("AdminTransferred", {"previousAdmin": admin, "newAdmin": new_admin})
        ]
        assert ledger.functions.admin().call() == new_admin
        assert ledger.functions.pendingAdmin().call() == ZERO_ADDRESS

        err = reverts(ledger.functions.addAnchorer(intruder), sender=admin)
        assert (err.name, err.arguments) == ("MeteringLedgerUnauthorizedAdmin", {"caller": admin})
        transact_or_raise(ledger.functions.addAnchorer(intruder), sender=new_admin)
        assert ledger.functions.isAnchorer(intruder).call() is True

    def test_accept_without_offer_rejected(self, ledger: Contract, stranger: str) -> None:
        err = reverts(ledger.functions.acceptAdmin(), sender=stranger)
        assert (err.name, err.arguments) == (
            "MeteringLedgerUnauthorizedPendingAdmin",
            {"caller": stranger, "pendingAdmin": ZERO_ADDRESS},
        )

    def test_offer_can_be_withdrawn(self, ledger: Contract, admin: str, stranger: str) -> None:
        transact_or_raise(ledger.functions.transferAdmin(stranger), sender=admin)
        receipt = transact_or_raise(ledger.functions.transferAdmin(ZERO_ADDRESS), sender=admin)
        assert emitted(ledger, receipt) == [
            ("AdminTransferStarted", {"currentAdmin": admin, "newAdmin": ZERO_ADDRESS})
        ]
        err = reverts(ledger.functions.acceptAdmin(), sender=stranger)
        assert err.name == "MeteringLedgerUnauthorizedPendingAdmin"

    def test_non_admin_cannot_start_transfer(self, ledger: Contract, stranger: str) -> None:
        err = reverts(ledger.functions.transferAdmin(stranger), sender=stranger)
        assert (err.name, err.arguments) == (
            "MeteringLedgerUnauthorizedAdmin",
            {"caller": stranger},
        )


class TestSetRevealDelay:
    def test_admin_changes_delay(self, ledger: Contract, admin: str) -> None:
        receipt = transact_or_raise(ledger.functions.setRevealDelay(5), sender=admin)
        assert emitted(ledger, receipt) == [
            ("RevealDelayChanged", {"previousDelay": REVEAL_DELAY, "newDelay": 5})
        ]
        assert ledger.functions.revealDelayBlocks().call() == 5
        receipt = transact_or_raise(
            ledger.functions.commitDraw(b"d" * 32, ZERO32, ZERO32), sender=admin
        )
        assert emitted(ledger, receipt)[0][1]["targetBlock"] == receipt["blockNumber"] + 5

    def test_zero_rejected(self, ledger: Contract, admin: str) -> None:
        err = reverts(ledger.functions.setRevealDelay(0), sender=admin)
        assert (err.name, err.arguments) == ("MeteringLedgerInvalidRevealDelay", {"delay": 0})

    def test_non_admin_rejected(self, ledger: Contract, stranger: str) -> None:
        err = reverts(ledger.functions.setRevealDelay(3), sender=stranger)
        assert (err.name, err.arguments) == (
            "MeteringLedgerUnauthorizedAdmin",
            {"caller": stranger},
        )


# ------------------------------------------------------------------------------- views


class TestViews:
    def test_latest_checkpoint_without_any(self, ledger: Contract) -> None:
        err = call_reverts(ledger.functions.latestCheckpoint())
        assert (err.name, err.arguments) == ("MeteringLedgerNoCheckpoint", {})

    def test_latest_checkpoint(self, chain: Chain, ledger: Contract, admin: str) -> None:
        receipts = anchor_tree(ledger, admin, [3, 10])
        block = chain.w3.eth.get_block(receipts[-1]["blockNumber"])
        assert ledger.functions.latestCheckpoint().call() == [
            1,
            10,
            root(LEAVES, 10),
            block["timestamp"],
            block["number"],
        ]

    def test_unknown_checkpoint(self, ledger: Contract, admin: str) -> None:
        anchor_tree(ledger, admin, [3, 10])
        err = call_reverts(ledger.functions.checkpoint(2))
        assert (err.name, err.arguments) == (
            "MeteringLedgerUnknownCheckpoint",
            {"index": 2, "count": 2},
        )

    def test_find_checkpoint(self, ledger: Contract, admin: str) -> None:
        sizes = [3, 10, 50, 51, 200]
        anchor_tree(ledger, admin, sizes)
        for index, size in enumerate(sizes):
            found = ledger.functions.findCheckpoint(size).call()
            assert found == [True, index, root(LEAVES, size)]
        for size in [0, 1, 2, 4, 49, 52, 199, 201, 2**64 - 1]:
            assert ledger.functions.findCheckpoint(size).call() == [False, 0, ZERO32]

    def test_find_checkpoint_without_any(self, ledger: Contract) -> None:
        assert ledger.functions.findCheckpoint(1).call() == [False, 0, ZERO32]


# Every size up to 17, powers of two and their neighbours, a few others: one ledger per
# chain, so each hypothesis example costs only eth_calls.
ANCHORED_SIZES = [*range(1, 18), *(31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 200)]
ANCHORED_SIZES += [255, 256, 257, 299, 300]


@pytest.fixture(scope="module")
def anchored_ledger(chain: Chain) -> Contract:
    ledger = fresh_ledger(chain)
    anchor_tree(ledger, chain.accounts[0], ANCHORED_SIZES)
    return ledger


def verifies_in_python(
    leaf: bytes, index: int, size: int, root_: bytes, proof: list[bytes]
) -> bool:
    try:
        merkle.verify_inclusion(index, size, leaf, proof, root_)
    except merkle.MerkleError:
        return False
    return True


class TestVerifyInclusion:
    @HYPOTHESIS
    @given(data=st.data())
    def test_agrees_with_merkle_py(self, anchored_ledger: Contract, data: st.DataObject) -> None:
        size = data.draw(
            st.one_of(st.sampled_from(ANCHORED_SIZES), st.integers(1, MAX_LEAVES)), label="size"
        )
        index = data.draw(st.integers(0, size - 1), label="leaf index")
        tree_root = root(LEAVES, size)
        leaf = LEAVES[index]
        proof = inclusion(LEAVES, index, size)

        def on_chain(leaf: bytes, index: int, size: int, root_: bytes, proof: list[bytes]) -> bool:
            fn = anchored_ledger.functions.verifyInclusion(leaf, index, size, root_, proof)
            return bool(fn.call())

        assert verifies_in_python(leaf, index, size, tree_root, proof) is True
        if size not in ANCHORED_SIZES:
            # A valid proof for a head that was never anchored is not enough.
            assert on_chain(leaf, index, size, tree_root, proof) is False
            return
        assert on_chain(leaf, index, size, tree_root, proof) is True
        # Nor is a valid proof for an anchored size but another tree's root.
        assert on_chain(leaf, index, size, root(OTHER_LEAVES, size), proof) is False

        variants: list[tuple[bytes, int, int, bytes, list[bytes]]] = [
            (
                flip_bit(leaf, data.draw(st.integers(0, 255), label="leaf bit")),
                index,
                size,
                tree_root,
                proof,
            ),
            (leaf, index, size, tree_root, proof + [LEAVES[0]]),
            (leaf, index + 1, size, tree_root, proof),
            (leaf, size, size, tree_root, proof),
        ]
        if index > 0:
            variants.append((leaf, index - 1, size, tree_root, proof))
        if proof:
            i = data.draw(st.integers(0, len(proof) - 1), label="proof element")
            bit = data.draw(st.integers(0, 255), label="proof bit")
            flipped = proof[:i] + [flip_bit(proof[i], bit)] + proof[i + 1 :]
            variants.append((leaf, index, size, tree_root, flipped))
            variants.append((leaf, index, size, tree_root, proof[:-1]))
        for variant in variants:
            assert on_chain(*variant) is False, variant
            assert verifies_in_python(*variant) is False, variant

    def test_nothing_anchored(self, ledger: Contract) -> None:
        assert ledger.functions.verifyInclusion(LEAVES[0], 0, 1, LEAVES[0], []).call() is False


# ------------------------------------------------------------------------------- draws

DRAW_ID = hashlib.sha256(b"draw 2025-Q3 fuel stations").digest()
SNAPSHOT_ROOT = root(LEAVES, 42)
SEED = hashlib.sha256(b"a secret seed").digest()
SEED_HASH = hashlib.sha256(SEED).digest()


def commit(ledger: Contract, sender: str, draw_id: bytes = DRAW_ID) -> TxReceipt:
    fn = ledger.functions.commitDraw(draw_id, SNAPSHOT_ROOT, SEED_HASH)
    return transact_or_raise(fn, sender=sender)


class TestCommitDraw:
    def test_commit(self, ledger: Contract, admin: str) -> None:
        receipt = commit(ledger, admin)
        block = receipt["blockNumber"]
        assert emitted(ledger, receipt) == [
            (
                "DrawCommitted",
                {
                    "drawId": DRAW_ID,
                    "snapshotRoot": SNAPSHOT_ROOT,
                    "seedHash": SEED_HASH,
                    "commitBlock": block,
                    "targetBlock": block + REVEAL_DELAY,
                },
            )
        ]
        assert ledger.functions.draw(DRAW_ID).call() == (
            SNAPSHOT_ROOT,
            SEED_HASH,
            ZERO32,
            ZERO32,
            block,
            block + REVEAL_DELAY,
            0,
            False,
        )

    def test_double_commit_rejected(self, ledger: Contract, admin: str) -> None:
        first = commit(ledger, admin)
        err = reverts(ledger.functions.commitDraw(DRAW_ID, ZERO32, ZERO32), sender=admin)
        assert (err.name, err.arguments) == (
            "MeteringLedgerDrawAlreadyCommitted",
            {"drawId": DRAW_ID, "commitBlock": first["blockNumber"]},
        )

    def test_non_anchorer_rejected(self, ledger: Contract, stranger: str) -> None:
        err = reverts(ledger.functions.commitDraw(DRAW_ID, ZERO32, ZERO32), sender=stranger)
        assert (err.name, err.arguments) == (
            "MeteringLedgerUnauthorizedAnchorer",
            {"caller": stranger},
        )

    def test_unknown_draw_view_is_empty(self, ledger: Contract) -> None:
        assert ledger.functions.draw(DRAW_ID).call() == (
            ZERO32,
            ZERO32,
            ZERO32,
            ZERO32,
            0,
            0,
            0,
            False,
        )


class TestRevealDraw:
    def test_reveal(self, chain: Chain, ledger: Contract, admin: str, stranger: str) -> None:
        target = commit(ledger, admin)["blockNumber"] + REVEAL_DELAY
        # Some nodes estimate gas on the head block, others on the pending one: get the
        # head past the target so the reveal is valid in both.
        mine(chain.w3, REVEAL_DELAY + 1)
        receipt = transact_or_raise(ledger.functions.revealDraw(DRAW_ID, SEED), sender=stranger)

        target_hash = bytes(chain.w3.eth.get_block(target)["hash"])
        randomness = hashlib.sha256(SEED + target_hash).digest()
        assert emitted(ledger, receipt) == [
            (
                "DrawRevealed",
                {"drawId": DRAW_ID, "seed": SEED, "randomness": randomness, "targetBlock": target},
            )
        ]
        commit_block = target - REVEAL_DELAY
        assert ledger.functions.draw(DRAW_ID).call() == (
            SNAPSHOT_ROOT,
            SEED_HASH,
            SEED,
            randomness,
            commit_block,
            target,
            receipt["blockNumber"],
            True,
        )

    def test_too_early_rejected(self, chain: Chain, ledger: Contract, admin: str) -> None:
        target = commit(ledger, admin)["blockNumber"] + REVEAL_DELAY
        err = reverts(ledger.functions.revealDraw(DRAW_ID, SEED), sender=admin)
        assert err.name == "MeteringLedgerRevealTooEarly"
        assert err.arguments["drawId"] == DRAW_ID
        assert err.arguments["targetBlock"] == target
        # eth_estimateGas runs on the head or the pending block depending on the node.
        head = chain.w3.eth.block_number
        assert err.arguments["currentBlock"] in (head, head + 1)

        mine(chain.w3, target - chain.w3.eth.block_number)
        assert chain.w3.eth.block_number == target
        # eth_call runs on the head block everywhere: at the target it is still too early.
        err = call_reverts(ledger.functions.revealDraw(DRAW_ID, SEED))
        assert (err.name, err.arguments) == (
            "MeteringLedgerRevealTooEarly",
            {"drawId": DRAW_ID, "targetBlock": target, "currentBlock": target},
        )

    def test_wrong_seed_rejected(self, chain: Chain, ledger: Contract, admin: str) -> None:
        commit(ledger, admin)
        mine(chain.w3, REVEAL_DELAY + 1)
        wrong = flip_bit(SEED)
        err = reverts(ledger.functions.revealDraw(DRAW_ID, wrong), sender=admin)
        assert (err.name, err.arguments) == (
            "MeteringLedgerSeedMismatch",
            {
                "drawId": DRAW_ID,
                "expectedSeedHash": SEED_HASH,
                "computedHash": hashlib.sha256(wrong).digest(),
            },
        )

    def test_unknown_draw_rejected(self, ledger: Contract, admin: str) -> None:
        err = reverts(ledger.functions.revealDraw(DRAW_ID, SEED), sender=admin)
        assert (err.name, err.arguments) == ("MeteringLedgerUnknownDraw", {"drawId": DRAW_ID})

    def test_double_reveal_rejected(self, chain: Chain, ledger: Contract, admin: str) -> None:
        commit(ledger, admin)
        mine(chain.w3, REVEAL_DELAY + 1)
        first = transact_or_raise(ledger.functions.revealDraw(DRAW_ID, SEED), sender=admin)
        err = reverts(ledger.functions.revealDraw(DRAW_ID, SEED), sender=admin)
        assert (err.name, err.arguments) == (
            "MeteringLedgerDrawAlreadyRevealed",
            {"drawId": DRAW_ID, "revealBlock": first["blockNumber"]},
        )

    @pytest.mark.slow
    def test_window_expires_after_256_blocks(self, chain: Chain, admin: str) -> None:
        ledger = fresh_ledger(chain, reveal_delay_blocks=1)
        target = commit(ledger, admin)["blockNumber"] + 1
        mine(chain.w3, target + 256 - chain.w3.eth.block_number)
        # At the head target + 256 the hash is still available (eth_call runs on the head).
        call_or_raise(ledger.functions.revealDraw(DRAW_ID, SEED))
        mine(chain.w3, 1)
        err = call_reverts(ledger.functions.revealDraw(DRAW_ID, SEED))
        assert (err.name, err.arguments) == (
            "MeteringLedgerRevealWindowExpired",
            {"drawId": DRAW_ID, "targetBlock": target, "currentBlock": target + 257},
        )
        err = reverts(ledger.functions.revealDraw(DRAW_ID, SEED), sender=admin)
        assert err.name == "MeteringLedgerRevealWindowExpired"


# -------------------------------------------------------------------------------- gas

RECORDS_PER_CHECKPOINT = 1000
GAS_LIMIT_PER_ANCHOR = 100_000  # = 100 gas per record at 1000 records per checkpoint


class TestAnchorGas:
    def test_anchor_gas_at_1000_record_increments(self, chain: Chain, admin: str) -> None:
        leaves = [merkle.leaf_hash(f"gas record {i}".encode()) for i in range(66_000)]
        subtree = merkle.subtree_from_leaves(leaves)
        ledger = fresh_ledger(chain)
        # 1000-record checkpoints on small trees and on trees near 2^15 and 2^16 leaves:
        # consistency proofs of 9 to 15 elements.
        sizes = [k * 1000 for k in (1, 2, 3, 4, 30, 31, 32, 64, 65, 66)]
        measured: list[tuple[int, int, int, int]] = []
        previous = 0
        for size in sizes:
            proof = merkle.consistency_proof(previous, size, subtree) if previous else []
            fn = ledger.functions.anchor(size, merkle.root_from_leaf_hashes(leaves[:size]), proof)
            receipt = transact_or_raise(fn, sender=admin)
            if previous and size - previous == RECORDS_PER_CHECKPOINT:
                measured.append((previous, size, len(proof), int(receipt["gasUsed"])))
            previous = size

        print(f"\nanchor gas on {chain.name} (1000 new records per checkpoint):")
        for old, new, proof_len, gas in measured:
            print(
                f"  {old:>6} -> {new:>6}  proof {proof_len:>2}  gas {gas:>6}  "
                f"{gas / RECORDS_PER_CHECKPOINT:.1f}/record"
            )
        assert max(p for _, _, p, _ in measured) >= 15
        for old, new, proof_len, gas in measured:
            assert gas < GAS_LIMIT_PER_ANCHOR, (old, new, proof_len, gas)


# --------------------------------------------------------------------- decode_error


class TestDecodeError:
    def test_round_trip_of_a_custom_error(self) -> None:
        from eth_abi import encode
        from eth_utils import function_signature_to_4byte_selector

        selector = function_signature_to_4byte_selector(
            "MeteringLedgerSeedMismatch(bytes32,bytes32,bytes32)"
        )
        data = selector + encode(["bytes32"] * 3, [DRAW_ID, SEED_HASH, SEED])
        expected = (
            "MeteringLedgerSeedMismatch",
            {"drawId": DRAW_ID, "expectedSeedHash": SEED_HASH, "computedHash": SEED},
        )
        assert decode_error(data) == expected
        assert decode_error("0x" + data.hex()) == expected

    def test_builtin_errors(self) -> None:
        from eth_abi import encode

        assert decode_error(bytes.fromhex("08c379a0") + encode(["string"], ["nope"])) == (
            "Error",
            {"message": "nope"},
        )
        assert decode_error(bytes.fromhex("4e487b71") + encode(["uint256"], [0x11])) == (
            "Panic",
            {"code": 0x11},
        )

    @pytest.mark.parametrize("data", ["0x", "0x1234", "0xdeadbeef", "not hex"])
    def test_undecodable_data(self, data: str) -> None:
        with pytest.raises(ValueError):
            decode_error(data)
