"""Rate limits kept in the database, one row per key, taken atomically.

Each limit is a GCRA bucket (the generic cell rate algorithm of ATM networks,
as in redis-cell or ``throttled``): a key's row holds one time, its
*theoretical arrival time* (TAT). ``Limit(max_events=5, window_s=900)`` allows a
burst of 5, then one more every ``window_s / max_events`` seconds (3 min): the
same 5 per quarter hour as a sliding window, kept in one number. An event is
taken by one statement, ``INSERT ... ON CONFLICT DO UPDATE ... WHERE fits
RETURNING``, so however many requests, workers or hosts race for the last slot,
the database lets exactly the allowed number through; a request that does not
fit changes nothing. Callers take their slot *before* the expensive work (an
Argon2 hash) and commit it at once, so a burst is refused before it costs
anything; a login that succeeds gives its slot back.

The client address is ``request.client.host``: behind a reverse proxy run
uvicorn with ``--proxy-headers --forwarded-allow-ips=<proxy>`` so that it is
the real client's address, not the proxy's.

Logins (and password changes, which check the current password) are limited
three ways; docs/operations.md states the rule for operators:

- per (account, address): 5 failures / 15 min; someone else's failures from
  elsewhere never lock the owner out;
- per address: 20 failures / 15 min, whatever the accounts (one address
  guessing many accounts);
- per account, across addresses: 20 failures / hour. Past that the account is
  in *back-off*: an address may still try, but only with its whole per-pair
  allowance unused, and one failure then spends all of it. An attacker with many
  addresses gets one guess per address per 15 min instead of five, while the
  owner's correct password from an address with no recent failures still gets in.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from backend.accounts.models import RateLimit
from backend.errors import RateLimited


@dataclass(frozen=True)
class Limit:
    max_events: int
    window_s: int

    @property
    def window_ms(self) -> int:
        return self.window_s * 1000

    @property
    def interval_ms(self) -> int:
        """Time one event occupies: the bucket drains one event per interval."""
        return self.window_ms // self.max_events


# A person mistyping a password gets five tries per quarter hour from where they are.
ACCOUNT_ADDRESS_LOGIN = Limit(max_events=5, window_s=15 * 60)
# One address (an office NAT, say) gets more, across all accounts.
ADDRESS_LOGIN = Limit(max_events=20, window_s=15 * 60)
# All addresses together, per account: slower, and past it only a back-off (see above).
ACCOUNT_LOGIN = Limit(max_events=20, window_s=60 * 60)
# Self-registration is public and costs an Argon2 hash: cap it per address.
ADDRESS_REGISTRATION = Limit(max_events=20, window_s=60 * 60)
# The complaint status page (受理编号 + 查询码): failed lookups per address, and per
# ticket across addresses, so neither numbers nor codes can be guessed in bulk.
ADDRESS_TICKET_LOOKUP = Limit(max_events=10, window_s=15 * 60)
TICKET_LOOKUP = Limit(max_events=20, window_s=60 * 60)
# Rows whose time has passed are swept this often (per process); they mean nothing.
SWEEP_EVERY_S = 600.0


class TooManyAttempts(RateLimited):
    """Too many attempts from this account or address; ``retry_after_s`` says when to retry."""

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail, retry_after_s=retry_after_s)
        self.headers = {"Retry-After": str(retry_after_s)}


def _name(username: str) -> str:
    return username.strip().upper()


def account_key(username: str) -> str:
    return f"login:account:{_name(username)}"[:200]


def address_key(address: str | None) -> str:
    return f"login:addr:{address or 'unknown'}"[:200]


def pair_key(username: str, address: str | None) -> str:
    # The address first: a long user name can never push it out of the key.
    return f"login:pair:{address or 'unknown'}:{_name(username)}"[:200]


def registration_key(address: str | None) -> str:
    return f"register:{address or 'unknown'}"[:200]


def ticket_address_key(address: str | None) -> str:
    return f"ticket:addr:{address or 'unknown'}"[:200]


def ticket_key(ticket: str) -> str:
    return f"ticket:number:{ticket.strip().upper()}"[:200]


def epoch_ms(now: datetime) -> int:
    return int(now.timestamp() * 1000)


_last_sweep = 0.0
_sweep_lock = threading.Lock()


def _sweep(session: Session, now_ms: int) -> None:
    global _last_sweep
    with _sweep_lock:
        if time.monotonic() - _last_sweep < SWEEP_EVERY_S:
            return
        _last_sweep = time.monotonic()
    session.execute(delete(RateLimit).where(col(RateLimit.tat_ms) < now_ms))


def try_take(session: Session, *, key: str, limit: Limit, now: datetime, events: int = 1) -> bool:
    """Take ``events`` slots of ``limit`` under ``key`` in one atomic statement, in the
    caller's transaction: ``True`` if they fitted (and were taken), ``False`` if not
    (and nothing changed). The caller commits (or rolls back) soon: on PostgreSQL the
    key's row stays locked until then."""
    if not 1 <= events <= limit.max_events:
        raise ValueError(f"events must be 1..{limit.max_events}, got {events}")
    now_ms = epoch_ms(now)
    _sweep(session, now_ms)
    cost = events * limit.interval_ms
    table = RateLimit.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    start = case((table.c.tat_ms > now_ms, table.c.tat_ms), else_=now_ms)
    stmt = (
        ins.values(key=key, tat_ms=now_ms + cost)
        .on_conflict_do_update(
            index_elements=["key"],
            set_={"tat_ms": start + cost},
            where=start + cost - now_ms <= limit.window_ms,
        )
        .returning(table.c.tat_ms)
    )
    return session.execute(stmt).first() is not None


def retry_after_s(
    session: Session, *, key: str, limit: Limit, now: datetime, events: int = 1
) -> int:
    """Seconds until ``events`` slots of ``key`` fit again (at least 1)."""
    tat = session.execute(
        select(col(RateLimit.tat_ms)).where(col(RateLimit.key) == key)
    ).scalar_one_or_none()
    if tat is None:
        return 1
    wait_ms = tat + events * limit.interval_ms - limit.window_ms - epoch_ms(now)
    return max(1, math.ceil(wait_ms / 1000))


def refused(
    session: Session, *, key: str, limit: Limit, now: datetime, what: str, events: int = 1
) -> TooManyAttempts:
    """The error for a refused :func:`try_take`; rolls back whatever the caller took
    before it in this transaction (a refused attempt costs nothing)."""
    retry = retry_after_s(session, key=key, limit=limit, now=now, events=events)
    session.rollback()
    return TooManyAttempts(f"too many {what}; try again in {retry} s", retry_after_s=retry)


def take(
    session: Session, *, key: str, limit: Limit, now: datetime, what: str, events: int = 1
) -> None:
    """:func:`try_take`, raising :class:`TooManyAttempts` (with ``Retry-After``) if it
    does not fit. ``what`` names the limit in the message (``"registrations from this
    address"``)."""
    if not try_take(session, key=key, limit=limit, now=now, events=events):
        raise refused(session, key=key, limit=limit, now=now, what=what, events=events)


def give_back(session: Session, *, key: str, limit: Limit, events: int = 1) -> None:
    """Return slots taken under ``key`` (in the caller's transaction)."""
    session.execute(
        update(RateLimit)
        .where(col(RateLimit.key) == key)
        .values(tat_ms=col(RateLimit.tat_ms) - events * limit.interval_ms)
    )


def forget(session: Session, *, key: str) -> None:
    """Start ``key`` afresh (in the caller's transaction)."""
    session.execute(delete(RateLimit).where(col(RateLimit.key) == key))


# --- logins ---------------------------------------------------------------------------


@dataclass
class LoginSlot:
    """The slots one login attempt took; :func:`login_succeeded` gives them back."""

    username: str
    address: str | None
    taken: list[tuple[str, Limit, int]] = field(default_factory=list)


def take_login_slot(
    session: Session, *, username: str, address: str | None, now: datetime
) -> LoginSlot:
    """Take a failed-login slot from the address, the account and the (account, address)
    pair, in the caller's transaction, which the caller commits before checking the
    password; raise :class:`TooManyAttempts` (nothing taken) if the attempt may not be
    made. Slots are always taken in this order (address, account, pair), so two
    attempts never wait on each other's rows in a cycle (no deadlock on PostgreSQL)."""
    slot = LoginSlot(username, address)
    akey, gkey, pkey = address_key(address), account_key(username), pair_key(username, address)
    if not try_take(session, key=akey, limit=ADDRESS_LOGIN, now=now):
        raise refused(
            session, key=akey, limit=ADDRESS_LOGIN, now=now, what="failed logins from this address"
        )
    slot.taken.append((akey, ADDRESS_LOGIN, 1))
    if try_take(session, key=gkey, limit=ACCOUNT_LOGIN, now=now):
        slot.taken.append((gkey, ACCOUNT_LOGIN, 1))
        events = 1
    else:
        # Back-off: the account is being guessed at from many addresses.
        events = ACCOUNT_ADDRESS_LOGIN.max_events
    if not try_take(session, key=pkey, limit=ACCOUNT_ADDRESS_LOGIN, now=now, events=events):
        what = (
            "failed logins for this account from this address"
            if events == 1
            else "failed logins for this account (it is being guessed at from many "
            "addresses, so each address gets one try at a time)"
        )
        raise refused(
            session, key=pkey, limit=ACCOUNT_ADDRESS_LOGIN, now=now, what=what, events=events
        )
    slot.taken.append((pkey, ACCOUNT_ADDRESS_LOGIN, events))
    return slot


def login_succeeded(session: Session, slot: LoginSlot) -> None:
    """The password was right: only failures count, so give the address's and the
    account's slots back, and start the pair afresh (its earlier typos are forgiven)."""
    for key, limit, events in slot.taken:
        if limit is ACCOUNT_ADDRESS_LOGIN:
            forget(session, key=key)
        else:
            give_back(session, key=key, limit=limit, events=events)
