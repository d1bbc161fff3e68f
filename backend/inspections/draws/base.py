"""What every draw module shares: errors, small pure helpers, loading a draw row.

Imports nothing of the other draw modules.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta

from sqlalchemy import select
from sqlmodel import Session, col

from backend.errors import Conflict, DomainError, NotFound, ValidationFailed
from backend.inspections.models import Draw

COMMITMENT_VERSION = 1
RESULT_WORKING_DAYS = 20


class DrawNotFound(NotFound):
    pass


class InvalidDraw(ValidationFailed):
    pass


class EmptySnapshot(ValidationFailed):
    pass


class NotEnoughInspectors(ValidationFailed):
    pass


class ItemInactive(ValidationFailed):
    pass


class DrawNotDue(Conflict):
    """The target block has not been mined yet and this chain cannot be asked to mine."""


class DrawAlreadyRevealed(Conflict):
    pass


class DrawExpired(Conflict):
    pass


class LedgerDisagreement(DomainError):
    """The contract holds something other than what this service committed or computed."""

    status_code = 502


class LedgerRefused(DomainError):
    """The contract refused a draw transaction for a reason a retry will not cure."""

    status_code = 502


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a draw builds 10^5-10^6 small objects.

    None of them form cycles (reference counting frees them), but every collection
    would walk all of them: with the collector running, building a 10^6-merchant
    snapshot grows faster than linearly.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def add_working_days(start: date, days: int) -> date:
    """``days`` working days (Monday-Friday) after ``start``; public holidays are not known."""
    d = start
    while days > 0:
        d += timedelta(days=1)
        if d.weekday() < 5:
            days -= 1
    return d


def b32(hex_str: str) -> bytes:
    raw = bytes.fromhex(hex_str.removeprefix("0x"))
    if len(raw) != 32:
        raise ValueError(f"expected 32 bytes, got {len(raw)}")
    return raw


def parse_draw_ref(ref: str) -> str | int:
    """A draw is named by its id (64 hex digits, ``0x`` optional) or its number."""
    text = ref.strip().lower().removeprefix("0x")
    if text.isdigit() and len(text) < 19:
        return int(text)
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return text
    raise InvalidDraw(f"a draw is named by its number or its 64-hex-digit id, got {ref!r}")


def load_draw(session: Session, ref: str | int) -> Draw:
    parsed = parse_draw_ref(ref) if isinstance(ref, str) else ref
    if isinstance(parsed, int):
        row = session.execute(select(Draw).where(col(Draw.number) == parsed)).scalars().first()
    else:
        row = session.get(Draw, parsed)
    if row is None:
        raise DrawNotFound(f"no draw {ref}")
    return row


def detached(session: Session, ref: str | int) -> Draw:
    """The draw row, detached so it stays readable after the read session ends."""
    row = load_draw(session, ref)
    session.expunge(row)
    return row
