"""Finding merchants by what people type: name search that tolerates gaps and a wrong
character, and credit-code search by any fragment, answered from a trigram index.

``merchant_search`` is a projection of ``merchant.registered`` (one row per merchant,
kept by ``backend/merchants/records.py``, rebuilt from the log like every projection).
Its ``keys`` column holds the search keys of the merchant, each surrounded by spaces:

- every character and every pair of neighbouring characters of the name (NFKC,
  case-folded, whitespace removed): a Chinese character is about as selective as an
  English word, so pairs are what a typed name shares with the registered one even
  when the person leaves characters out ("巴山超市" shares 巴山 and 超市 with
  巴中市巴山诚信超市有限公司) or types one wrong;
- the credit code itself, so that any fragment of it is a substring of ``keys``.

The index over ``keys`` is the database's own trigram index: PostgreSQL ``pg_trgm``
(GIN) and SQLite FTS5 with the ``trigram`` tokenizer (an external-content table kept
in step by triggers; migration ``0008``). A key wrapped in its spaces (" 巴山 ") is at
least three characters long, so every lookup is an index lookup; no query scans all
merchants in Python or reads the ``merchant`` table except for the matching rows.

Ranking, best first: a credit code that starts with the typed fragment; one that
contains it; a name that holds every typed character in order; more shared pairs;
a shorter name; then the credit code, so that pages are stable.

Nothing here writes; the keys are computed by :func:`search_keys`, a pure function.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Integer,
    Table,
    case,
    column,
    func,
    literal,
    literal_column,
    or_,
    select,
    table,
)
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement

from backend.merchants.models import Merchant, MerchantSearch
from backend.uscc import ALPHABET, normalize_uscc

SEARCH: Table = MerchantSearch.__table__  # type: ignore[attr-defined]
MERCHANT: Table = Merchant.__table__  # type: ignore[attr-defined]
KEYS = SEARCH.c["keys"]  # (``.c.keys`` is the collection's method)
FTS = table("merchant_search_fts", column("rowid", Integer))
"""SQLite's FTS5 index over ``merchant_search.keys`` (created by migration 0008)."""

CODE_FUZZY_MIN = 6
"""A code fragment at least this long still finds its merchant with one wrong character."""


def fold(text: str) -> str:
    """The form names are compared in: NFKC (full-width letters and digits become
    ASCII), case-folded, without whitespace."""
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


def grams(text: str) -> list[str]:
    """The characters and neighbouring pairs of ``text`` (already folded), in order,
    each once."""
    out = dict.fromkeys([*text, *(text[i : i + 2] for i in range(len(text) - 1))])
    return list(out)


def search_keys(*, uscc: str, name: str) -> str:
    """``merchant_search.keys`` of a merchant: its name's keys and its credit code,
    each between spaces."""
    return " " + " ".join([*grams(fold(name)), uscc]) + " "


@dataclass(frozen=True)
class Plan:
    """How one query is looked up: the index phrases that find candidates, and the
    SQL expressions that filter and rank them."""

    phrases: list[str]
    """Substrings of ``keys``; a candidate holds at least one (the index finds them)."""
    keep: ColumnElement[bool]
    rank: list[Any]


def _has(key: str) -> ColumnElement[bool]:
    return KEYS.contains(key, autoescape=True)


def _flag(condition: ColumnElement[bool]) -> Any:
    return case((condition, 1), else_=0)


def code_of(text: str) -> str | None:
    """``text`` as the start or a fragment of a credit code, or ``None``."""
    code = normalize_uscc(text).replace(" ", "")
    if 2 <= len(code) <= 18 and all(c in ALPHABET for c in code):
        return code
    return None


def plan(text: str, *, fuzzy_code: bool = False) -> Plan | None:
    """The lookup for ``text``; ``None`` if it has nothing to look up. With
    ``fuzzy_code``, a code fragment is matched with one character replaced (the second
    try, when the exact fragment finds nothing)."""
    folded = fold(text)
    if not folded:
        return None
    code = code_of(text)
    if fuzzy_code:
        if code is None or len(code) < CODE_FUZZY_MIN:
            return None
        # One wrong character leaves one half of the fragment intact: the index finds
        # the halves, the LIKE patterns keep codes that differ in one place at most.
        half = len(code) // 2
        variants = [code[:i] + "_" + code[i + 1 :] for i in range(len(code))]
        return Plan(
            phrases=[code[:half], code[half:]],
            keep=or_(*[KEYS.like(f"%{v}%") for v in variants]),
            rank=[func.length(SEARCH.c.folded)],
        )
    pairs = [g for g in grams(folded) if len(g) == 2] or [folded]
    need = max(1, math.ceil(len(pairs) / 2))
    shared = sum((_flag(_has(f" {g} ")) for g in pairs), literal(0))
    phrases = [f" {g} " for g in pairs]
    keeps = [shared >= need]
    rank: list[Any] = []
    if code is not None:
        prefix = _has(" " + code)
        phrases.append(" " + code)
        rank.append(_flag(prefix).desc())
        if len(code) >= 3:
            inside = _has(code)
            phrases.append(code)
            keeps.append(inside)
            rank.append(_flag(inside).desc())
        else:
            keeps.append(prefix)
    in_order = "%" + "%".join(_escape(c) for c in folded) + "%"
    rank += [
        _flag(SEARCH.c.folded.like(in_order, escape="\\")).desc(),
        shared.desc(),
        func.length(SEARCH.c.folded),
    ]
    return Plan(phrases=phrases, keep=or_(*keeps), rank=rank)


def _escape(ch: str) -> str:
    return "\\" + ch if ch in "\\%_" else ch


def _fts_query(phrases: list[str]) -> str:
    """An FTS5 query matching any of ``phrases`` as substrings (trigram tokenizer)."""
    return " OR ".join('"' + p.replace('"', '""') + '"' for p in phrases)


def found_from(plan: Plan, *, sqlite: bool) -> tuple[Any, list[Any]]:
    """What the merchants the index finds for ``plan`` and its filter keeps are selected
    from (``merchant`` joined with ``merchant_search``), and the conditions. On SQLite
    the FTS5 matches are a materialised CTE the rest joins to, so the index is read once
    whatever the planner makes of the other filters; on PostgreSQL the phrases are
    ``LIKE`` conditions that the pg_trgm GIN index answers (a bitmap OR)."""
    on = SEARCH.c.uscc == MERCHANT.c.uscc
    if sqlite:
        match = literal_column("merchant_search_fts").op("MATCH")(_fts_query(plan.phrases))
        hits = (
            select(FTS.c.rowid.label("hit")).where(match).cte("hits").prefix_with("MATERIALIZED")
        )
        return hits.join(SEARCH, SEARCH.c.id == hits.c.hit).join(MERCHANT, on), [plan.keep]
    indexed = or_(*[KEYS.contains(p, autoescape=True) for p in plan.phrases])
    return MERCHANT.join(SEARCH, on), [indexed, plan.keep]


def found(plan: Plan, columns: Sequence[Any], *, sqlite: bool) -> Select[Any]:
    """``SELECT columns`` of the merchants the index finds for ``plan`` and its filter
    keeps (:func:`found_from`)."""
    source, where = found_from(plan, sqlite=sqlite)
    return select(*columns).select_from(source).where(*where)
