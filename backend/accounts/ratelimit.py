"""A sliding-window limiter whose memory is the ``login_attempt`` table.

Kept in the database rather than in process memory so that every uvicorn
worker and every host behind a load balancer counts against the same limit.
The client address is ``request.client.host``: behind a reverse proxy run
uvicorn with ``--proxy-headers --forwarded-allow-ips=<proxy>`` so that it is the
real client's address, not the proxy's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select
from sqlmodel import Session, col

from backend.accounts.models import LoginAttempt
from backend.errors import RateLimited


@dataclass(frozen=True)
class Limit:
    max_events: int
    window_s: int


# A person mistyping a password gets five tries per quarter hour; one address
# (an office NAT, say) gets more, so a few colleagues do not lock each other out.
ACCOUNT_LOGIN = Limit(max_events=5, window_s=15 * 60)
ADDRESS_LOGIN = Limit(max_events=20, window_s=15 * 60)
# Self-registration is public and costs an Argon2 hash: cap it per address.
ADDRESS_REGISTRATION = Limit(max_events=20, window_s=60 * 60)
KEEP_S = 24 * 3600


class TooManyAttempts(RateLimited):
    """Too many attempts from this account or address; ``retry_after_s`` says when to retry."""

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail, retry_after_s=retry_after_s)
        self.headers = {"Retry-After": str(retry_after_s)}


def account_key(username: str) -> str:
    return f"account:{username.strip().upper()}"[:200]


def address_key(address: str | None) -> str:
    return f"addr:{address or 'unknown'}"[:200]


def registration_key(address: str | None) -> str:
    return f"register:{address or 'unknown'}"[:200]


def check(
    session: Session,
    *,
    key: str,
    limit: Limit,
    now: datetime,
    what: str,
    reset_on_success: bool = False,
    count_all: bool = False,
) -> None:
    """Raise :class:`TooManyAttempts` if ``key`` has used up ``limit``.

    Failed attempts count (with ``count_all``, every attempt: registrations
    cost the server the same whether they succeed); with ``reset_on_success``
    a successful attempt starts the count afresh, so that a user who got in
    is not locked out later by the typos before it.
    """
    start = now - timedelta(seconds=limit.window_s)
    if reset_on_success:
        last_ok = session.execute(
            select(func.max(col(LoginAttempt.at))).where(
                col(LoginAttempt.key) == key,
                col(LoginAttempt.succeeded).is_(True),
            )
        ).scalar_one_or_none()
        if last_ok is not None and last_ok > start:
            start = last_ok
    conditions = [col(LoginAttempt.key) == key, col(LoginAttempt.at) > start]
    if not count_all:
        conditions.append(col(LoginAttempt.succeeded).is_(False))
    recent = (
        session.execute(
            select(col(LoginAttempt.at))
            .where(*conditions)
            .order_by(col(LoginAttempt.at).desc())
            .limit(limit.max_events)
        )
        .scalars()
        .all()
    )
    if len(recent) >= limit.max_events:
        oldest = min(recent)
        wait = (oldest + timedelta(seconds=limit.window_s) - now).total_seconds()
        retry = max(1, math.ceil(wait))
        raise TooManyAttempts(f"too many {what}; try again in {retry} s", retry_after_s=retry)


def record(session: Session, *, keys: Iterable[str], now: datetime, succeeded: bool) -> None:
    """Count an attempt under each key (in the caller's transaction) and forget
    attempts older than a day."""
    keys = list(keys)
    session.execute(
        insert(LoginAttempt), [{"key": k, "at": now, "succeeded": succeeded} for k in keys]
    )
    session.execute(
        delete(LoginAttempt).where(
            col(LoginAttempt.key).in_(keys),
            col(LoginAttempt.at) < now - timedelta(seconds=KEEP_S),
        )
    )
