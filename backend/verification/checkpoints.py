"""Proof of a split view: two checkpoints the log signed that cannot both be true.

A client that was shown two histories holds two signed checkpoints of the same size
with different roots. Both signed by the pinned log key (and cosigned, if the
witnesses were fooled too), they prove the log misbehaved: an append-only log has one
tree head per size. Pure: the checkpoints' text and the trust root, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from backend.ledger import checkpoint as cps
from backend.ledger import note as notes
from backend.ledger.trustroot import TrustRoot


@dataclass(frozen=True)
class Comparison:
    misbehaviour: bool
    lines: list[str]


def _describe(i: int, c: cps.OpenedCheckpoint) -> str:
    names = sorted(k.name for k in c.cosigners)
    cosigned = f"cosigned by {', '.join(names)}" if names else "cosigned by no pinned witness"
    return (
        f"checkpoint {i}: tree size {c.head.size}, root {c.head.root.hex()}, signed by the "
        f"log key, {cosigned}"
    )


def compare(texts: list[str], root: TrustRoot) -> Comparison:
    """Open each checkpoint against the pinned keys; raise :class:`notes.NoteError` if one
    is not the log's (it proves nothing then)."""
    body = root.body
    opened = []
    for i, text in enumerate(texts, start=1):
        try:
            opened.append(
                cps.open_checkpoint(
                    text, origin=body.log.origin, log_keys=[body.log_verifier()],
                    witnesses=body.witness_verifiers(),
                )
            )
        except notes.NoteError as exc:
            raise notes.NoteError(f"checkpoint {i}: {exc}") from None
    lines = [_describe(i, c) for i, c in enumerate(opened, start=1)]
    by_size: dict[int, list[int]] = {}
    for i, c in enumerate(opened, start=1):
        by_size.setdefault(c.head.size, []).append(i)
    conflicts = []
    for size, idx in sorted(by_size.items()):
        roots = {opened[i - 1].head.root for i in idx}
        if len(roots) > 1:
            conflicts.append(
                f"PROOF OF MISBEHAVIOUR: the log {body.log.origin} signed {len(roots)} different "
                f"tree heads of size {size} (checkpoints {', '.join(map(str, idx))}): it has "
                "shown different histories to different people. Keep these files: anyone "
                "can check them against the trust root."
            )
    if not conflicts:
        lines.append(
            "no conflict: no two checkpoints of the same size differ (checkpoints of "
            "different sizes are consistent only if a consistency proof says so: "
            "GET /api/log/consistency?first=…&second=…, or the tiles)"
        )
    return Comparison(bool(conflicts), lines + conflicts)
