"""The witness's rules (c2sp.org/tlog-witness ``add-checkpoint``) and its own state.

For each log it knows (from a trust root: origin and log key) it keeps the latest
checkpoint it cosigned, in its own SQLite file. A new checkpoint is cosigned
(c2sp.org/tlog-cosignature, Ed25519 with a timestamp) only if it is signed by the log
key and a consistency proof shows it extends the stored one; checking and storing are
one transaction, so two requests can never roll the stored size back. A stale or forked
submission gets 409 with the size the witness knows; a proof that does not hold, 422.

It never opens the log's database or reads the service's settings: a witness is run by
someone else, and trusts nothing but the keys it was given.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from backend.ledger import checkpoint as cps
from backend.ledger import merkle
from backend.ledger import note as notes
from backend.ledger.checkpoint import SIZE_CONTENT_TYPE, parse_request
from backend.privatefiles import private_file


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


class WitnessState:
    """The latest cosigned checkpoint per origin, and every refused conflicting one."""

    def __init__(self, path: Path) -> None:
        private_file(path)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.executescript(
            """
            PRAGMA journal_mode=WAL;
            CREATE TABLE IF NOT EXISTS latest (
                origin TEXT PRIMARY KEY, size INTEGER NOT NULL, root BLOB NOT NULL,
                note TEXT NOT NULL, cosigned_at INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS refused (
                id INTEGER PRIMARY KEY, origin TEXT NOT NULL, old_size INTEGER NOT NULL,
                note TEXT NOT NULL, status INTEGER NOT NULL, reason TEXT NOT NULL,
                at INTEGER NOT NULL);
            """
        )

    def latest(self, origin: str) -> tuple[int, bytes, str] | None:
        row = self._db.execute(
            "SELECT size, root, note FROM latest WHERE origin = ?", (origin,)
        ).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]), str(row[2]))

    def transaction(self, fn: Callable[[], Answer]) -> Answer:
        """Run ``fn`` under the state's write lock, in one SQLite transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                answer = fn()
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return answer

    def store(self, origin: str, head: cps.TreeHead, note: str, at: int) -> None:
        self._db.execute(
            "INSERT INTO latest (origin, size, root, note, cosigned_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (origin) DO UPDATE SET size = excluded.size, root = excluded.root, "
            "note = excluded.note, cosigned_at = excluded.cosigned_at",
            (origin, head.size, head.root, note, at),
        )

    def refuse(self, origin: str, old: int, note: str, answer: Answer, reason: str) -> None:
        self._db.execute(
            "INSERT INTO refused (origin, old_size, note, status, reason, at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (origin, old, note, answer.status, reason, int(time.time())),
        )

    def refused(self) -> list[tuple[str, int, str, int, str]]:
        return [
            (str(r[0]), int(r[1]), str(r[2]), int(r[3]), str(r[4]))
            for r in self._db.execute(
                "SELECT origin, old_size, note, status, reason FROM refused ORDER BY id"
            )
        ]

    def close(self) -> None:
        self._db.close()


def origin_hash(origin: str) -> str:
    return hashlib.sha256(origin.encode()).hexdigest()


@dataclass
class Witness:
    key: notes.Signer  # a cosigner key (type 0x04)
    logs: dict[str, list[notes.Verifier]]  # origin -> log keys
    state: WitnessState
    clock: Callable[[], float] = time.time

    def add_checkpoint(self, body: bytes) -> Answer:
        try:
            old, proof, checkpoint = parse_request(body)
            note = notes.parse_note(checkpoint)
            head = cps.parse_checkpoint_text(note.text)
        except ValueError as exc:  # NoteError is a ValueError
            return Answer(400, f"{exc}\n")
        keys = self.logs.get(head.origin)
        if keys is None:
            return Answer(404, f"unknown log {head.origin!r}\n")
        try:
            signed = notes.verified_by(note, keys)
        except notes.UnverifiedNote as exc:
            return Answer(403, f"{exc}\n")
        if not signed:
            return Answer(403, f"the checkpoint is not signed by the log key of {head.origin}\n")
        if old > head.size:
            return Answer(400, f"old size {old} is larger than the checkpoint's {head.size}\n")
        if head.size == 0 and head.root != merkle.EMPTY_ROOT:
            return Answer(422, "a checkpoint of size 0 must have the empty tree's root\n")
        return self.state.transaction(lambda: self._check_and_cosign(old, proof, head, note))

    def _check_and_cosign(
        self, old: int, proof: list[bytes], head: cps.TreeHead, note: notes.Note
    ) -> Answer:
        stored = self.state.latest(head.origin)
        known_size, known_root = (0, merkle.EMPTY_ROOT) if stored is None else stored[:2]
        if old != known_size:
            answer = Answer(409, f"{known_size}\n", SIZE_CONTENT_TYPE)
            self.state.refuse(head.origin, old, note.format(), answer, "old size is not ours")
            return answer
        problem = None
        if old == 0:
            if proof:
                problem = "a consistency proof from size 0 must be empty"
        elif old == head.size:
            if head.root != known_root:
                problem = (
                    f"same size {old} as the cosigned checkpoint, different root: a fork"
                )
        else:
            try:
                merkle.verify_consistency(old, head.size, known_root, head.root, proof)
            except merkle.MerkleError as exc:
                problem = f"the consistency proof does not hold: {exc}"
        if problem is not None:
            answer = Answer(422, problem + "\n")
            self.state.refuse(head.origin, old, note.format(), answer, problem)
            return answer
        now = int(self.clock())
        sig = self.key.sign(head.text, timestamp=now)
        self.state.store(head.origin, head, note.with_signatures([sig]).format(), now)
        return Answer(200, sig.line)

    def checkpoint_of(self, origin_sha: str) -> Answer:
        for origin in self.logs:
            if origin_hash(origin) == origin_sha:
                stored = self.state.latest(origin)
                if stored is not None:
                    return Answer(200, stored[2])
        return Answer(404, "no checkpoint cosigned for that log\n")
