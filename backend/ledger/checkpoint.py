"""C2SP checkpoints (c2sp.org/tlog-checkpoint): the signed note text of a tree head.

``origin\\nsize\\nbase64(root)\\n``. The log signs it with its Ed25519 key (a signed
note); witnesses add their cosignatures. Pure: no I/O, no settings.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from backend.ledger import note as notes
from backend.ledger.merkle import HASH_SIZE

_SIZE_RE = re.compile(r"^(0|[1-9][0-9]*)$")
MAX_PROOF_LINES = 63
SIZE_CONTENT_TYPE = "text/x.tlog.size"  # a witness's 409 answer: the size it knows


class CheckpointError(notes.NoteError):
    """The note text is not a checkpoint."""


@dataclass(frozen=True)
class TreeHead:
    origin: str
    size: int
    root: bytes

    @property
    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def parse_checkpoint_text(text: str) -> TreeHead:
    """The tree head of a checkpoint's note text (extension lines are refused: this log
    writes none, and a verifier must not be shown text it cannot check)."""
    lines = text.split("\n")
    if len(lines) != 4 or lines[3] != "":
        raise CheckpointError(
            "a checkpoint's text is three lines (origin, tree size, base64 root)"
        )
    origin, size, root_b64 = lines[:3]
    if not origin:
        raise CheckpointError("a checkpoint's origin line is empty")
    if not _SIZE_RE.match(size):
        raise CheckpointError(f"tree size {size!r} is not a decimal number without leading zeros")
    try:
        root = base64.b64decode(root_b64, validate=True)
    except (binascii.Error, ValueError):
        raise CheckpointError(f"root {root_b64!r} is not base64") from None
    if len(root) != HASH_SIZE:
        raise CheckpointError(f"root must be {HASH_SIZE} bytes, got {len(root)}")
    return TreeHead(origin, int(size), root)


def sign_checkpoint(head: TreeHead, log_key: notes.Signer) -> notes.Note:
    return notes.Note(head.text, (log_key.sign(head.text),))


@dataclass(frozen=True)
class OpenedCheckpoint:
    head: TreeHead
    note: notes.Note
    cosigners: dict[notes.Verifier, int]  # witness key -> cosignature timestamp


def open_checkpoint(
    data: str | bytes,
    *,
    origin: str,
    log_keys: list[notes.Verifier],
    witnesses: list[notes.Verifier] = (),  # type: ignore[assignment]
) -> OpenedCheckpoint:
    """Verify a signed checkpoint of the log ``origin``: signed by one of ``log_keys``;
    returns which of ``witnesses`` cosigned it (their signatures are checked too)."""
    note = notes.parse_note(data)
    head = parse_checkpoint_text(note.text)
    if head.origin != origin:
        raise CheckpointError(f"checkpoint of log {head.origin!r}, expected {origin!r}")
    signed = notes.verified_by(note, list(log_keys))
    if not signed:
        raise notes.UnverifiedNote(
            f"the checkpoint is not signed by the log key of {origin} "
            f"({', '.join(k.vkey for k in log_keys)})"
        )
    cosigners = notes.verified_by(note, [w for w in witnesses])
    return OpenedCheckpoint(head, note, cosigners)


# --- c2sp.org/tlog-witness add-checkpoint requests -----------------------------------


def parse_request(body: bytes) -> tuple[int, list[bytes], str]:
    """``old N``, proof lines, a blank line, the checkpoint; raises ValueError."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the request is not UTF-8") from None
    head, sep, checkpoint = text.partition("\n\n")
    if not sep:
        raise ValueError("the request has no blank line before the checkpoint")
    lines = head.split("\n")
    first = lines[0]
    if not first.startswith("old ") or not first[4:].isdigit() or (
        first[4:] != "0" and first[4] == "0"
    ):
        raise ValueError(f"the first line is 'old <size>', got {first!r}")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise ValueError(f"at most {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for line in lines[1:]:
        try:
            h = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"proof line {line!r} is not base64") from None
        if len(h) != HASH_SIZE:
            raise ValueError(f"proof line {line!r} is not a 32-byte hash")
        proof.append(h)
    return int(first[4:]), proof, checkpoint


def format_request(old: int, proof: list[bytes], checkpoint: str) -> bytes:
    lines = [f"old {old}"] + [base64.b64encode(p).decode() for p in proof]
    return ("\n".join(lines) + "\n\n" + checkpoint).encode()


