"""The one write path: append records, project them, run the after-append hooks.

Every service that records something builds :class:`RecordDraft` s and calls
:func:`write` in its own transaction. ``write``

1. lets each hook *prepare* from the sealed records before the log lock is taken
   (the credit hook rates the merchants here, so the lock is held for the writes
   alone);
2. appends the records (``log.append_sealed``: this takes the log lock, held
   until the caller commits);
3. applies each record's projections (``backend.ledger.projection``) to the live
   tables, in the same transaction: the only way a projection table is written;
4. runs each hook's *after* step (the credit hook stores the ratings, rating
   again if another writer appended about the same merchants in between).

It never commits: the caller does, once, so a record, its rows and its ratings
commit together or not at all. Domains register their projections and hooks
on import (``backend/domains.py`` imports them all); :func:`write` refuses to
run before that, so a record can never be appended without its projection.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session

from backend.ledger import log, projection
from backend.ledger.records import RecordDraft


class WritePathNotReady(RuntimeError):
    """``write`` was called before the domains registered their projections."""


Prepare = Callable[[Session, Sequence[log.SealedRecord], datetime], Any]
After = Callable[[Session, Sequence[log.AppendedRecord], Any, datetime], Any]


@dataclass(frozen=True)
class Hook:
    """Work that follows every append (re-rating). ``prepare`` runs before the log
    lock and returns a state that ``after`` receives (or ``None`` when nothing to do)."""

    name: str
    prepare: Prepare
    after: After


_HOOKS: dict[str, Hook] = {}
_ready = False


def register_hook(hook: Hook) -> None:
    _HOOKS[hook.name] = hook


def mark_ready() -> None:
    """Called once every domain has registered (``backend.domains.load``)."""
    global _ready
    _ready = True


@dataclass
class Written:
    """What :func:`write` appended, and what each hook returned (e.g. ``"credit"``:
    the new ratings by credit code)."""

    records: list[log.AppendedRecord]
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def one(self) -> log.AppendedRecord:
        (rec,) = self.records
        return rec


def write(
    session: Session,
    drafts: RecordDraft | Sequence[RecordDraft] | Sequence[log.SealedRecord],
    *,
    now: datetime,
    prepared: Mapping[str, Any] | None = None,
    private: Mapping[str, Mapping[str, Any]] | None = None,
    hooks: bool = True,
) -> Written:
    """Append ``drafts`` (or already sealed records) in the caller's transaction,
    project them and run the hooks. ``prepared``: a hook's state computed by the
    caller already (keyed by hook name). ``private``: private column values by record
    id (``Projection.private``). ``hooks=False`` skips the hooks (bulk seeding
    that rates everything once at the end)."""
    if not _ready:
        raise WritePathNotReady(
            "the record projections are not registered: import backend.domains and call load()"
        )
    items: list[RecordDraft | log.SealedRecord] = (
        [drafts] if isinstance(drafts, RecordDraft) else list(drafts)
    )
    sealed = [d if isinstance(d, log.SealedRecord) else log.seal(d, at=now) for d in items]
    if not sealed:
        return Written([])
    session.flush()  # rows the projections refer to (accounts) are in the database
    states: dict[str, Any] = {}
    if hooks:
        for name, hook in _HOOKS.items():
            if prepared is not None and name in prepared:
                states[name] = prepared[name]
            else:
                states[name] = hook.prepare(session, sealed, now)
    appended = log.append_sealed(session, sealed)  # the log lock is held from here to commit
    project(session, appended, private=private)
    out = Written(appended)
    if hooks:
        for name, hook in _HOOKS.items():
            if states.get(name) is not None:
                out.results[name] = hook.after(session, appended, states[name], now)
    return out


def project(
    session: Session,
    appended: Sequence[log.AppendedRecord],
    *,
    private: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Apply the projections of appended records to the live tables (in the session's
    transaction)."""
    rows = projection.SessionRows(
        session.connection(), {k: dict(v) for k, v in (private or {}).items()}
    )
    projection.apply_records(
        rows, (projection.Rec(a.record_id, a.leaf_index, a.envelope) for a in appended)
    )
    rows.flush()
    # Objects of the projected tables that the session holds may now be stale.
    touched = rows.touched
    for obj in list(session.identity_map.values()):
        table = getattr(type(obj), "__table__", None)
        if table is not None and table.name in touched:
            session.expire(obj)
