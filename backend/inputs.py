"""Rules every domain applies to what clients send: whole numbers and dates ahead.

- :data:`WholeNumber` is an ``int`` field that takes a JSON integer or, for CSV
  cells and HTML forms, a string of digits, and nothing else: ``true`` is not 1,
  ``2.0`` is not 2 (pydantic's lax ``int`` takes both).
- :func:`validate_horizon` is the one check of a date that may lie in the future
  (an instrument's ``valid_until``, the end of a demonstration award): at most
  :data:`HORIZON_YEARS` ahead. ``9999-12-31`` as "forever" is refused with
  :class:`DateBeyondHorizon` before anything is written (dates that far out also
  overflow the date arithmetic of the rating, which adds a day to them).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

from pydantic import BeforeValidator

from backend.errors import ValidationFailed

HORIZON_YEARS = 50
"""No date lies more than this many years after today: certificates, awards and
pledges run for months or years, never decades; a later date is a typo or "forever"."""

_DIGITS = re.compile(r"\s*[+-]?\d{1,30}\s*")


class DateBeyondHorizon(ValidationFailed):
    """A date more than :data:`HORIZON_YEARS` years after today."""

    def __init__(self, detail: str, *, field: str) -> None:
        super().__init__(detail, field=field)
        self.field = field


def horizon(today: date) -> date:
    """The latest date an input may name: :data:`HORIZON_YEARS` years after ``today``
    (29 February becomes 28 February)."""
    try:
        return today.replace(year=today.year + HORIZON_YEARS)
    except ValueError:
        return today.replace(year=today.year + HORIZON_YEARS, day=28)


def validate_horizon(d: date, *, field: str, today: date) -> date:
    """``d`` if it lies at most :data:`HORIZON_YEARS` years after ``today``; else
    :class:`DateBeyondHorizon` naming ``field`` and both dates."""
    latest = horizon(today)
    if d > latest:
        raise DateBeyondHorizon(
            f"{field} {d} is more than {HORIZON_YEARS} years ahead (the latest date is "
            f"{latest}); check the year",
            field=field,
        )
    return d


def _whole_number(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"must be a whole number, got the boolean {str(value).lower()}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    raise ValueError(f"must be a whole number, got {value!r}")


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]
"""An ``int`` input: a JSON integer, or digits in a string (CSV cells, form fields)."""
