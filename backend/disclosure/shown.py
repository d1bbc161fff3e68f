"""What a page shows of a record, in a form the browser's 验证 can check.

Pages read the tables, which are projections of the log and can be edited behind
the service's back. So every place a page shows a record's fields also carries,
next to the visible text, the record id and the exact values the text was made
from (``data-record``, ``data-shown``), keyed by their path in the record
envelope (``type``, ``at``, ``refs``, ``body.amount_fen``, ``body.signature.signer``)
with how each is shown (``data-shown-how``: a format and a label). ``static/verify.js``
fetches the record's proof bundle, checks it, and compares the record's own
fields, formatted the same way, with these — and, for the formats it
re-implements (money, dates, yes/no), with the visible text itself.

The formatting functions here are the page's only ones for those formats;
``verify.js`` re-implements them and ``tests/disclosure/test_verify_js.py``
holds the two to the same output. Nothing here reads a table or the log.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from backend.ledger.records import format_time
from backend.timeutil import SHANGHAI, aware

FORMATS = ("text", "date", "time", "yuan", "yes", "count", "json")
"""How a shown value becomes text. ``text`` and ``json`` compare the values themselves
(strings after NFC, anything else in canonical JSON); the others compare what a person
reads: the value formatted."""

_VISIBLE = frozenset({"yuan", "date", "yes"})
"""Formats whose visible text verify.js re-derives and checks (``data-field``)."""
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def yuan(fen: Any) -> str:
    """Fen as yuan: ``410000`` → ``4,100.00 元``; anything but an integer → ``—``."""
    if not isinstance(fen, int) or isinstance(fen, bool):
        return "—"
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d} 元"


def date_text(value: Any) -> str:
    """A date of legal effect as ``2026年11月26日``; ``—`` when absent; any other
    value as it is (a table can hold anything)."""
    if value is None or value == "" or value is False:
        return "—"
    if isinstance(value, datetime):
        value = aware(value).astimezone(SHANGHAI).date()
    if isinstance(value, date):
        return f"{value.year}年{value.month}月{value.day}日"
    if isinstance(value, str):
        try:
            day = date.fromisoformat(value[:10]) if _ISO_DATE.fullmatch(value[:10]) else None
        except ValueError:
            day = None
        return date_text(day) if day is not None else value
    return json.dumps(value, ensure_ascii=False)


def yes_text(value: Any) -> str:
    return "是" if value else "否"


def lookup(envelope: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` in a record envelope, or ``None``."""
    value: Any = envelope
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):

        return format_time(aware(value))
    if isinstance(value, date):
        return value.isoformat()
    return value


@dataclass
class Shown:
    """The fields of one record a page shows, with the values its text comes from."""

    record_id: str
    values: dict[str, Any] = field(default_factory=dict)
    how: dict[str, dict[str, str]] = field(default_factory=dict)
    missing: bool = False
    """No table holds the record: the page cannot show its content (验证 says so)."""
    visible: dict[str, str] = field(default_factory=dict)
    """Label → path of the fields whose visible text verify.js re-derives."""

    def put(self, path: str, value: Any, label: str, fmt: str = "text") -> Any:
        """Note that the page shows ``value`` as the record's ``path``; returns it."""
        assert fmt in FORMATS, fmt
        self.values[path] = _jsonable(value)
        self.how[path] = {"as": fmt, "label": label}
        if fmt in _VISIBLE:
            self.visible.setdefault(label, path)
        return value

    def take(self, envelope: Mapping[str, Any], path: str, label: str, fmt: str = "text") -> Any:
        """The value at ``path`` in ``envelope`` (as a table holds the record), noted."""
        return self.put(path, lookup(envelope, path), label, fmt)

    def common(self, envelope: Mapping[str, Any]) -> None:
        """The envelope fields every record item shows: its type, time and references."""
        self.take(envelope, "type", "记录类型")
        self.take(envelope, "at", "记录时间", "time")
        self.take(envelope, "refs", "关联记录", "json")

    def values_json(self) -> str:
        """``data-shown``: in the order the page shows them (escaped by the template)."""
        return json.dumps(self.values, ensure_ascii=False, separators=(",", ":"))

    def how_json(self) -> str:
        return json.dumps(self.how, ensure_ascii=False, separators=(",", ":"))

    def field_of(self, label: str) -> str | None:
        """The path behind a fact labelled ``label`` whose text verify.js re-derives."""
        return self.visible.get(label)


def plain_text(value: Any) -> str:
    """A text field as shown: ``None`` as nothing."""
    return "" if value is None else str(value)


_AS_TEXT = {"text": plain_text, "date": date_text, "yuan": yuan, "yes": yes_text}


@dataclass
class BodyReader:
    """A record's body as a kind's ``tell`` reads it (:class:`backend.ledger.kinds.Reader`):
    from the record as a table holds it, noting every value in ``shown`` and formatting
    it with this module's functions."""

    shown: Shown
    envelope: Mapping[str, Any]

    def value(self, path: str, label: str, fmt: str = "text") -> Any:
        return self.shown.take(self.envelope, "body." + path, label, fmt)

    def text(self, path: str, label: str, fmt: str = "text") -> str:
        return _AS_TEXT[fmt](self.value(path, label, fmt))
