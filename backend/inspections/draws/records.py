"""The ``draw.*`` record kinds' projections: the ``draw`` and ``draw_assignment`` tables.

- ``draw.committed`` -> a ``draw`` row (status ``committing``): its id is the record
  id (the on-chain ``drawId``), its ``body`` the record body.
- ``draw.revealed`` -> the draw's chain facts (commit and reveal transactions and
  blocks, the randomness) and its seed, now public.
- ``draw.plan`` -> status ``revealed``, the plan digest, and one ``draw_assignment``
  row per planned check (position, tier and inspectors from the plan; due on the
  committed ``results_due``).
- ``draw.failed`` / ``draw.expired`` -> status ``failed`` (with the failure as the
  selection words it) / ``expired``.

What no record says, the draw service keeps in the same row beside them, and audit
does not vouch for it (``_log_view`` hides it from the comparison):

- ``seed`` until the reveal (private; audit checks it against the committed
  ``seed_hash``) and ``created_block`` (where to look for the commit transaction);
- a draw's progress on the chain before its reveal: status ``committed``,
  ``commit_tx``, ``commit_block``, ``target_block``, ``committed_at``. The contract
  holds these (``honest-metering verify --draw`` reads them there), and the
  ``draw.revealed`` record carries them; a rebuilt row is ``committing`` again until
  ``honest-metering draw reconcile`` adopts the commitment from the chain;
- ``last_error``: why the last ledger step failed, for the operator (never shown).

The committed inputs (``draw_snapshot_entry``, ``draw_inspector``,
``draw_recusal``) are in no record either: the ``draw.committed`` record commits to
them by their Merkle roots, and :mod:`backend.inspections.draws.inputs` audits them
against those roots.

Pure declarations (see ``backend/ledger/projection.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Table

from backend.inspections import selection
from backend.inspections.models import Draw, DrawAssignment
from backend.inspections.records import COMMITTED, EXPIRED, FAILED, PLAN, REVEALED
from backend.ledger.projection import Projection, Rec, Rows, day, register

DRAW_TABLE: Table = Draw.__table__  # type: ignore[attr-defined]
ASSIGNMENT_TABLE: Table = DrawAssignment.__table__  # type: ignore[attr-defined]

CHAIN_PROGRESS = ("commit_tx", "commit_block", "target_block")
"""Set from the chain's answers before the reveal; in the ``draw.revealed`` record after."""
OUTSIDE_RECORDS = ("committed_at", "last_error", "created_block")


def _committed(rec: Rec, rows: Rows) -> None:
    b = rec.body
    rows.insert(
        DRAW_TABLE,
        {
            "id": rec.record_id,
            "number": int(b["number"]),
            "status": "committing",
            "item_id": int(b["item"]["item_id"]),
            "body": dict(b),
            "commit_leaf_index": rec.leaf_index,
            "seed": "",
            "planned_end": day(b["planned_end"]),
            "results_due": day(b["results_due"]),
            "created_at": rec.at,
            "account_id": rec.account_id,
            "chain_id": int(b["chain"]["chain_id"]),
            "contract_address": b["chain"]["contract"],
            "created_block": 0,
            **{c: None for c in (*CHAIN_PROGRESS, "committed_at", "reveal_tx", "reveal_block",
                                 "randomness", "revealed_at", "revealed_record_id",
                                 "outcome_record_id", "plan_digest", "failure", "last_error")},
            **rows.private_of(rec.record_id),
        },
    )


def _revealed(rec: Rec, rows: Rows) -> None:
    b = rec.body
    rows.update(
        DRAW_TABLE,
        (b["draw_id"],),
        {
            "commit_tx": b["commit_tx"],
            "commit_block": int(b["commit_block"]),
            "target_block": int(b["target_block"]),
            "reveal_tx": b["reveal_tx"],
            "reveal_block": int(b["reveal_block"]),
            "randomness": b["randomness"],
            "seed": b["seed"],
            "revealed_at": rec.at,
            "revealed_record_id": rec.record_id,
        },
    )


def _plan(rec: Rec, rows: Rows) -> None:
    draw_id = rec.ref("plans")
    assert draw_id is not None, "a draw.plan record names its draw (ref 'plans')"
    rows.update(
        DRAW_TABLE,
        (draw_id,),
        {
            "status": "revealed",
            "plan_digest": selection.plan_json_digest(rec.body),
            "outcome_record_id": rec.record_id,
        },
    )


def _failed(rec: Rec, rows: Rows) -> None:
    b = rec.body
    why = selection.NotEnoughInspectors(
        b["uscc"], int(b["needed"]), int(b["available"]),
        recused=int(b["recused"]), at_cap=int(b["at_cap"]),
    )
    rows.update(
        DRAW_TABLE,
        (b["draw_id"],),
        {"status": "failed", "failure": str(why), "outcome_record_id": rec.record_id},
    )


def _expired(rec: Rec, rows: Rows) -> None:
    rows.update(
        DRAW_TABLE,
        (rec.body["draw_id"],),
        {"status": "expired", "outcome_record_id": rec.record_id},
    )


_BY_TYPE = {COMMITTED: _committed, REVEALED: _revealed, PLAN: _plan, FAILED: _failed,
            EXPIRED: _expired}


def _draw(rec: Rec, rows: Rows) -> None:
    _BY_TYPE[rec.type](rec, rows)


def _assignments(rec: Rec, rows: Rows) -> None:
    draw_id = rec.ref("plans")
    draw = rows.get(DRAW_TABLE, (draw_id,))
    assert draw is not None, "a draw.plan record follows its draw.committed record"
    tiers = {u: t for t, usccs in rec.body["selected"].items() for u in usccs}
    for pos, a in enumerate(rec.body["assignments"]):
        rows.insert(
            ASSIGNMENT_TABLE,
            {
                "draw_id": draw_id,
                "uscc": a["uscc"],
                "position": pos,
                "tier": tiers[a["uscc"]],
                "inspector_ids": list(a["inspectors"]),
                "due_on": draw["results_due"],
            },
        )


def _log_view(row: Mapping[str, Any]) -> Mapping[str, Any]:
    """A draw row as far as the log decides it (see the module docstring)."""
    view = dict(row)
    if view.get("status") == "committed":
        view["status"] = "committing"
    for c in OUTSIDE_RECORDS:
        view[c] = None
    if view.get("revealed_record_id") is None:
        for c in CHAIN_PROGRESS:
            view[c] = None
    return view


def _check_seed(live: Mapping[str, Any], body: Mapping[str, Any]) -> str | None:
    try:
        digest = selection.seed_hash(bytes.fromhex(str(live.get("seed") or ""))).hex()
    except ValueError:
        return "seed is not 32 bytes of hex (restore it from a backup)"
    if digest != body.get("seed_hash"):
        return "seed does not hash to the record's seed_hash"
    return None


register(
    Projection(
        DRAW_TABLE,
        key=("id",),
        types=frozenset(_BY_TYPE),
        apply=_draw,
        unique=(),
        private=frozenset({"seed", "created_block"}),
        check_private=_check_seed,
        record_column="id",
        view=_log_view,
    ),
    Projection(
        ASSIGNMENT_TABLE,
        key=("draw_id", "uscc"),
        types=frozenset({PLAN}),
        apply=_assignments,
        unique=(),
        record_column=None,
    ),
)
