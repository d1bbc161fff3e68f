"""The canonical form of a record (see docs/records.md).

Canonical bytes are RFC 8785 (JCS) of the envelope after Unicode NFC
normalisation of every string; the record id is the hex RFC 9162 leaf hash of
those bytes. This module is pure: it never touches the database or a clock
(callers pass the time in).
"""

from __future__ import annotations

import json
import os
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import rfc8785

from backend.ledger import merkle

ENVELOPE_VERSION = 1
ROLES = frozenset({"merchant", "regulator", "admin", "public", "system"})
MAX_SAFE_INT = 2**53 - 1


class InvalidRecord(ValueError):
    """A record that cannot be put in canonical form."""


@dataclass(frozen=True)
class Actor:
    """Who caused a record: a role and an account id, never personal data."""

    role: str
    account: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "account": self.account}


SYSTEM = Actor("system", None)


@dataclass(frozen=True)
class Ref:
    rel: str
    record: str

    def to_json(self) -> dict[str, str]:
        return {"rel": self.rel, "record": self.record}


@dataclass(frozen=True)
class RecordDraft:
    """What a service wants to append; the log adds ``at`` and ``salt``."""

    type: str
    subject: str | None
    actor: Actor
    body: Mapping[str, Any]
    refs: Sequence[Ref] = field(default_factory=tuple)


def nfc(value: Any) -> Any:
    """NFC-normalise every string (keys and values) at any depth; reject floats."""
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INT:
            raise InvalidRecord(f"integer {value} is outside the JSON-safe range")
        return value
    if isinstance(value, float):
        # Money is integer fen and rates are basis points: a float is a bug.
        raise InvalidRecord(f"floats are not allowed in records, got {value!r}")
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidRecord(f"record keys must be strings, got {k!r}")
            out[unicodedata.normalize("NFC", k)] = nfc(v)
        return out
    if isinstance(value, list | tuple):
        return [nfc(v) for v in value]
    raise InvalidRecord(f"value of type {type(value).__name__} cannot go into a record")


def format_time(at: datetime) -> str:
    if at.tzinfo is None:
        raise InvalidRecord("record times must be timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


SALT_BYTES = 16


class _SaltPool:
    """Record salts cut from one ``os.urandom`` read of many at a time.

    Every record needs a fresh unpredictable salt, and ``os.urandom`` releases the
    GIL: read per record, the group commit's writer thread would hand the GIL to
    the event loop and wait to get it back, with the log lock held, once per
    record. The bytes are the kernel's CSPRNG output all the same; each is used
    once, and a forked child starts with an empty pool (never its parent's).
    """

    def __init__(self, salts_per_read: int = 256) -> None:
        self._lock = threading.Lock()
        self._read = SALT_BYTES * salts_per_read
        self._buf = b""
        self._pos = 0
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._buf, self._pos = b"", 0

    def take(self) -> bytes:
        with self._lock:
            if self._pos + SALT_BYTES > len(self._buf):
                self._buf, self._pos = os.urandom(self._read), 0
            start = self._pos
            self._pos += SALT_BYTES
            return self._buf[start : self._pos]


_salts = _SaltPool()


def new_salt() -> str:
    """32 hex digits from the kernel's CSPRNG (pooled: see :class:`_SaltPool`)."""
    return _salts.take().hex()


def build_envelope(draft: RecordDraft, *, at: datetime, salt: str | None = None) -> dict[str, Any]:
    if draft.actor.role not in ROLES:
        raise InvalidRecord(f"unknown actor role {draft.actor.role!r}")
    return {
        "v": ENVELOPE_VERSION,
        "type": draft.type,
        "subject": draft.subject,
        "at": format_time(at),
        "actor": draft.actor.to_json(),
        "body": dict(draft.body),
        "refs": [r.to_json() for r in draft.refs],
        "salt": salt if salt is not None else new_salt(),
    }


def canonical_bytes(envelope: Mapping[str, Any]) -> bytes:
    """RFC 8785 bytes of the NFC-normalised envelope."""
    return rfc8785.dumps(nfc(envelope))


def record_id_of(canonical: bytes) -> str:
    return merkle.leaf_hash(canonical).hex()


def parse_canonical(canonical: bytes) -> dict[str, Any]:
    """The envelope back from its canonical bytes (checks they really are canonical)."""
    try:
        envelope = json.loads(canonical.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRecord(f"record bytes are not JSON: {exc}") from exc
    if canonical_bytes(envelope) != canonical:
        raise InvalidRecord("record bytes are not in canonical (NFC + RFC 8785) form")
    return envelope
