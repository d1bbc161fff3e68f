"""``Idempotency-Key``: a retried write returns the first result, not a second one.

A key is scoped to the account and the operation. The first request stores
the identifiers of what it created in the same transaction as the write, so
a key is remembered if and only if the write committed. A retry with the
same key and the same request gets the first result rebuilt from those
identifiers; the same key with a different request is refused (422), since
silently returning a result for a request the client did not make would be
worse. Keys are kept; a client should use a fresh random key (a UUID) per
logical operation.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import rfc8785
from sqlmodel import Session

from backend.accounts.models import IdempotencyRecord
from backend.errors import ValidationFailed

HEADER = "Idempotency-Key"
_KEY = re.compile(r"[\x21-\x7e]{1,200}")


class InvalidIdempotencyKey(ValidationFailed):
    pass


class IdempotencyKeyReused(ValidationFailed):
    """The key was already used for a different request."""


def validate_key(key: str | None) -> str | None:
    if key is None:
        return None
    key = key.strip()
    if not _KEY.fullmatch(key):
        raise InvalidIdempotencyKey(
            f"{HEADER} must be 1-200 printable ASCII characters without spaces (a UUID, say)"
        )
    return key


def request_sha256(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(rfc8785.dumps(dict(payload))).hexdigest()


def lookup(
    session: Session, *, account_id: int, scope: str, key: str, digest: str
) -> dict[str, Any] | None:
    """The stored result for this key, ``None`` if the key is new."""
    row = session.get(IdempotencyRecord, (account_id, scope, key))
    if row is None:
        return None
    if row.request_sha256 != digest:
        raise IdempotencyKeyReused(
            f"{HEADER} {key!r} was already used for a different request; "
            "use a new key for a new request"
        )
    return dict(row.result)


def remember(
    session: Session,
    *,
    account_id: int,
    scope: str,
    key: str,
    digest: str,
    result: Mapping[str, Any],
    now: datetime,
) -> None:
    """Store the result in the caller's transaction."""
    session.add(
        IdempotencyRecord(
            account_id=account_id,
            scope=scope,
            key=key,
            request_sha256=digest,
            result=dict(result),
            created_at=now,
        )
    )
