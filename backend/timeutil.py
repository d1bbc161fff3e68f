"""Clock helpers: times are UTC and timezone-aware; dates of legal effect are
Asia/Shanghai dates.

The one place that turns "now" into "today". Asia/Shanghai has kept UTC+8
without daylight saving since 1991, so a fixed offset is exact and keeps the
service independent of the host's tz database.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")


def utcnow() -> datetime:
    return datetime.now(UTC)


def shanghai_date(moment: datetime) -> date:
    """The Asia/Shanghai calendar date of an aware moment."""
    if moment.tzinfo is None:
        raise ValueError("shanghai_date needs a timezone-aware datetime")
    return moment.astimezone(SHANGHAI).date()


def today_shanghai(now: datetime | None = None) -> date:
    """Today in Asia/Shanghai (of ``now`` when given)."""
    return shanghai_date(now or utcnow())


def aware(moment: datetime) -> datetime:
    """``moment`` with its timezone; a naive value (SQLite drops the zone) is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
