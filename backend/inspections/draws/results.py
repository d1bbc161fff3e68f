"""The spot-check results that name a draw.

Supervision records them and sits above this package: it says how to read them
(:func:`set_results_reader`, wired by ``backend/domains.py``), and asks this module
whether a draw planned a merchant (:func:`draw_for_result`, :func:`draw_facts`,
:func:`selected_pairs`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, tuple_
from sqlmodel import Session, col

from backend.db import in_chunks
from backend.inspections.draws.base import InvalidDraw, load_draw
from backend.inspections.models import Draw, DrawAssignment


@dataclass(frozen=True)
class DrawResult:
    """A current spot-check record that names a draw (supervision owns those records)."""

    record_id: str
    body: Mapping[str, Any]


ResultsReader = Callable[[Session, Sequence[str]], dict[str, dict[str, list[DrawResult]]]]
_results_reader: ResultsReader | None = None


def set_results_reader(reader: ResultsReader) -> None:
    """Supervision, which records the results and sits above this package, says how to
    read them (``backend/domains.py`` wires it)."""
    global _results_reader
    _results_reader = reader


def current_results(
    session: Session, draw_ids: Sequence[str]
) -> dict[str, dict[str, list[DrawResult]]]:
    """draw id -> uscc -> the current spot-check records that name the draw, oldest first."""
    if _results_reader is None:
        raise RuntimeError("no draw results reader: import backend.domains")
    return _results_reader(session, draw_ids)


def draw_for_result(session: Session, *, draw_id: str, uscc: str) -> Draw:
    """For the supervision service: the draw a spot-check result names, if it planned that merchant.

    Raises :class:`DrawNotFound` or :class:`InvalidDraw`.
    """
    row = load_draw(session, draw_id)
    if row.status != "revealed":
        raise InvalidDraw(f"draw no. {row.number} has no plan (status {row.status})")
    if session.get(DrawAssignment, (row.id, uscc)) is None:
        raise InvalidDraw(f"draw no. {row.number} did not select merchant {uscc}")
    return row


def planned(session: Session, draw_id: str) -> list[str]:
    """The merchants a draw's plan selected, in plan order (none before the reveal)."""
    query = (
        select(col(DrawAssignment.uscc))
        .where(col(DrawAssignment.draw_id) == draw_id)
        .order_by(col(DrawAssignment.position))
    )
    return list(session.execute(query).scalars())


def draw_ids_by_number(session: Session, numbers: Iterable[int]) -> dict[int, str]:
    """The ids of the draws with these numbers (those that exist)."""
    out: dict[int, str] = {}
    for nums in in_chunks(numbers):
        query = select(col(Draw.number), col(Draw.id)).where(col(Draw.number).in_(nums))
        out.update((int(n), str(did)) for n, did in session.execute(query))
    return out


def draw_facts(session: Session, draw_ids: Iterable[str]) -> dict[str, tuple[int, str]]:
    """draw id -> (number, status), for the draws that exist."""
    out: dict[str, tuple[int, str]] = {}
    for ids in in_chunks(draw_ids):
        query = select(col(Draw.id), col(Draw.number), col(Draw.status)).where(
            col(Draw.id).in_(ids)
        )
        out.update((str(d), (int(n), str(st))) for d, n, st in session.execute(query))
    return out


def selected_pairs(
    session: Session, pairs: Iterable[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Those (draw id, uscc) pairs whose draw's plan selected the merchant."""
    found: set[tuple[str, str]] = set()
    for chunk in in_chunks(pairs):
        query = select(col(DrawAssignment.draw_id), col(DrawAssignment.uscc)).where(
            tuple_(col(DrawAssignment.draw_id), col(DrawAssignment.uscc)).in_(chunk)
        )
        found.update((str(d), str(u)) for d, u in session.execute(query))
    return found
