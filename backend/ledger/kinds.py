"""What every record kind declares about how it is shown to a person.

A record kind is declared once, by the package that owns it (``kinds.py`` beside
its ``records.py``): its record type, its Chinese name, the page section it is
listed under, and :attr:`RecordKind.tell`, which turns the record into a title
and labelled facts. Kinds that people enter through a form (supervision
outcomes) add their form fields (:class:`FormField`). Pages
(``backend/disclosure``) read these declarations and never spell a kind's labels
themselves.

``tell`` reads the record only through a :class:`Reader`, which the page
supplies: the reader notes every field the text is made from (so that the
browser's 验证 can compare it with the record in the log) and owns the
formatting (money, dates, yes/no). So this module, and every declaration, stays
free of pages, tables and formatting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class Reader(Protocol):
    """A record's body as a page reads it; every read is noted as shown."""

    def value(self, path: str, label: str, fmt: str = "text") -> Any:
        """The value at ``body.<path>`` (``None`` if absent), shown as ``fmt``."""

    def text(self, path: str, label: str, fmt: str = "text") -> str:
        """The value at ``body.<path>``, formatted for a person as ``fmt`` (``text``,
        ``date``, ``yuan`` from fen, ``yes``)."""


@dataclass
class Telling:
    """A record in plain language: a title, labelled facts and a tone
    (``ok``, ``bad``, ``warn`` or ``""``)."""

    title: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    tone: str = ""


@dataclass(frozen=True)
class Option:
    value: str
    label: str


@dataclass(frozen=True)
class FormField:
    """One field of a form that enters a record kind."""

    name: str
    label: str
    type: str = "text"  # text, date, select, checkbox, textarea, file
    required: bool = False
    options: tuple[Option, ...] = ()
    hint: str = ""
    default: str = ""
    into: str = ""
    """The input field this one fills when the form converts what is typed (元 into
    ``amount_fen``, a file into its ``evidence_sha256``); empty: the field of the
    same name."""
    example: str = ""
    """What the example row of a bulk-import template holds in this column (empty: the
    default, or the first option's label)."""


@dataclass(frozen=True, kw_only=True)
class RecordKind:
    """How one record type is shown: its name, its page section, its telling."""

    type: str
    """The record type, e.g. ``supervision.penalty``."""
    label: str
    """Its name in Chinese, e.g. 行政处罚 (shown when the record cannot be)."""
    section: str
    """The section of a shop's page that lists it."""
    tell: Callable[[Reader], Telling]


def by_type(*groups: tuple[RecordKind, ...]) -> dict[str, RecordKind]:
    """The declarations of several packages, by record type; a type declared twice
    is a mistake."""
    out: dict[str, RecordKind] = {}
    for group in groups:
        for kind in group:
            assert kind.type not in out, f"record kind {kind.type} declared twice"
            out[kind.type] = kind
    return out
