"""Projections: the tables that are functions of the log.

Records are the truth; a domain table that a page, an API answer, a rating or a
draw reads is a *projection* of them. A :class:`Projection` owns one table and
declares the record types it reads; its ``apply`` derives the table's rows from
one record (and from the rows that earlier records projected), never from
anything else: no clock, no settings, no request. The same ``apply`` runs

- on the live database, in the writer's transaction, right after the append
  (:func:`backend.ledger.write.write`, the one write path), and
- in memory, replaying the log from leaf 0 (:func:`replay`), which is how
  ``honest-metering audit`` rebuilds every projection to compare it with the
  live tables and how ``honest-metering rebuild --from-log`` repairs them.

So a table can only hold what its records say; a value that is in no record
(password hashes, contacts, sessions) lives in a private table that no public
page reads, and that table's docstring says so.

This module imports nothing of the domains: they register their projections
(``register``) when their ``records`` module is imported
(``backend/domains.py`` imports them all).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Integer, Table, and_, insert, select, update
from sqlalchemy.engine import Connection

from backend.ledger.models import LogHead, LogLeaf

Row = dict[str, Any]
Key = tuple[Any, ...]


class ProjectionConflict(RuntimeError):
    """A record would project a row whose key is already taken (a broken invariant)."""


@dataclass(frozen=True)
class Rec:
    """What a projection sees of one record: its envelope, id and leaf index."""

    record_id: str
    leaf_index: int
    envelope: Mapping[str, Any]

    @property
    def type(self) -> str:
        return str(self.envelope["type"])

    @property
    def subject(self) -> str | None:
        return self.envelope.get("subject")

    @property
    def body(self) -> Mapping[str, Any]:
        return self.envelope["body"]  # type: ignore[no-any-return]

    @property
    def refs(self) -> list[dict[str, str]]:
        return list(self.envelope.get("refs") or [])

    @property
    def at(self) -> datetime:
        return parse_time(str(self.envelope["at"]))

    @property
    def account_id(self) -> int | None:
        """The acting account (``actor.account``), as the tables keep it."""
        acct = (self.envelope.get("actor") or {}).get("account")
        return int(acct) if acct is not None else None

    def provenance(self) -> dict[str, Any]:
        """The columns most projected rows carry: when, by whom, which record, where."""
        return {
            "at": self.at,
            "account_id": self.account_id,
            "record_id": self.record_id,
            "leaf_index": self.leaf_index,
        }

    def ref(self, rel: str) -> str | None:
        """The record id of the first ref with this relation, or ``None``."""
        for r in self.refs:
            if r.get("rel") == rel:
                return r.get("record")
        return None


def parse_time(text: str) -> datetime:
    """An envelope's ``at`` (``2026-11-26T09:30:00.123456Z``) as an aware UTC datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def day(text: Any) -> date:
    """A body's ``YYYY-MM-DD`` date."""
    return date.fromisoformat(str(text))


def optional_day(text: Any) -> date | None:
    return None if text is None else day(text)


class Rows:
    """The rows of the projection tables, as ``apply`` reads and writes them."""

    private: Mapping[str, Row] = {}
    """Private column values by record id (the write path's; empty in a replay)."""

    def private_of(self, record_id: str) -> Row:
        return dict(self.private.get(record_id, {}))

    def get(self, table: Table, key: Key) -> Row | None:  # pragma: no cover - interface
        raise NotImplementedError

    def get_by(self, table: Table, column: str, value: Any) -> Row | None:  # pragma: no cover
        """The row whose unique ``column`` (declared in ``Projection.unique``) equals ``value``."""
        raise NotImplementedError

    def insert(self, table: Table, row: Row) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def update(self, table: Table, key: Key, changes: Row) -> None:  # pragma: no cover
        raise NotImplementedError


Apply = Callable[[Rec, Rows], None]


@dataclass(frozen=True)
class Projection:
    """One table and how records make its rows.

    ``key``: the columns that identify a row (the primary key, or a natural key when
    the primary key is a surrogate the database assigns). ``unique``: further unique
    columns that ``Rows.get_by`` may look up (usually ``record_id``).

    ``private``: columns that hold what no record may carry in clear (a contact, an
    inspector's name), given by the writing service beside the record
    (``write(..., private={record_id: {...}})``) and never shown to the public. Audit
    cannot rebuild them from the log; ``check_private`` (live row, the record's body)
    checks them against the salted digest the record commits to, and returns what is
    wrong or ``None``. ``surrogate``: database-assigned columns (autoincrement ids),
    never compared.
    """

    table: Table
    key: tuple[str, ...]
    types: frozenset[str]
    apply: Apply
    unique: tuple[str, ...] = ("record_id",)
    private: frozenset[str] = frozenset()
    surrogate: frozenset[str] = frozenset()
    check_private: Callable[[Mapping[str, Any], Mapping[str, Any]], str | None] | None = None
    record_column: str | None = "record_id"
    """The column that holds the id of the record a row comes from (``None``: none does)."""
    view: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None
    """What of a row the log decides, when the owner also keeps in it what no record
    says (a draw's progress on the chain): compare and repair see rows through it."""

    @property
    def name(self) -> str:
        return self.table.name

    def key_of(self, row: Mapping[str, Any]) -> Key:
        return tuple(row[k] for k in self.key)

    def record_of(self, row: Mapping[str, Any]) -> str | None:
        return None if self.record_column is None else row.get(self.record_column)

    def compared_columns(self) -> list[str]:
        skip = self.private | self.surrogate
        return [c.name for c in self.table.columns if c.name not in skip]


_REGISTRY: dict[str, Projection] = {}
_BY_TYPE: dict[str, list[Projection]] = {}


def register(*projections: Projection) -> None:
    """Declare projections (idempotent per table: a re-import replaces the entry)."""
    for p in projections:
        _REGISTRY[p.name] = p
    _BY_TYPE.clear()
    for p in _REGISTRY.values():
        for t in p.types:
            _BY_TYPE.setdefault(t, []).append(p)


def all_projections() -> list[Projection]:
    """Every declared projection, parents before children (foreign-key order)."""
    found = list(_REGISTRY.values())
    if not found:
        return found
    order = {t.name: i for i, t in enumerate(found[0].table.metadata.sorted_tables)}
    return sorted(found, key=lambda p: order.get(p.name, 0))


def projection(table_name: str) -> Projection:
    return _REGISTRY[table_name]


def for_type(record_type: str) -> Sequence[Projection]:
    return _BY_TYPE.get(record_type, ())


def apply_records(rows: Rows, records: Iterable[Rec]) -> None:
    """Apply every registered projection of each record, in order."""
    for rec in records:
        for p in _BY_TYPE.get(rec.type, ()):
            p.apply(rec, rows)


# --- in memory (audit, rebuild) ------------------------------------------------------------


class MemoryRows(Rows):
    """Projection tables held in dicts: what the log alone says they must contain."""

    def __init__(self, projections: Iterable[Projection]) -> None:
        self.projections = {p.name: p for p in projections}
        self.tables: dict[str, dict[Key, Row]] = {n: {} for n in self.projections}
        self._index: dict[tuple[str, str], dict[Any, Key]] = {
            (p.name, c): {} for p in self.projections.values() for c in p.unique
        }

    def _p(self, table: Table) -> Projection:
        return self.projections[table.name]

    def get(self, table: Table, key: Key) -> Row | None:
        row = self.tables[table.name].get(tuple(key))
        return dict(row) if row is not None else None

    def get_by(self, table: Table, column: str, value: Any) -> Row | None:
        key = self._index[(table.name, column)].get(value)
        return None if key is None else self.get(table, key)

    def insert(self, table: Table, row: Row) -> None:
        p = self._p(table)
        key = p.key_of(row)
        rows = self.tables[table.name]
        if key in rows:
            raise ProjectionConflict(f"{table.name}: a row with key {key} exists already")
        full = {c.name: row.get(c.name) for c in table.columns if c.name not in p.surrogate}
        rows[key] = full
        for c in p.unique:
            if full.get(c) is not None:
                self._index[(table.name, c)][full[c]] = key

    def update(self, table: Table, key: Key, changes: Row) -> None:
        p = self._p(table)
        row = self.tables[table.name][tuple(key)]
        row.update(changes)
        for c in p.unique:
            if c in changes and changes[c] is not None:
                self._index[(table.name, c)][changes[c]] = tuple(key)


# --- on the live database (the write path) -------------------------------------------------


class SessionRows(Rows):
    """Projection tables in the database, inside the caller's transaction.

    Inserts are buffered per table and written in bulk (a batch of outcomes is
    one multi-row INSERT); any read or update of a table writes its buffer first.
    """

    def __init__(self, conn: Connection, private: Mapping[str, Row] | None = None) -> None:
        self.conn = conn
        self.private = private or {}
        self._pending: dict[str, tuple[Table, list[Row]]] = {}
        self.touched: set[str] = set()

    def _flush_table(self, table: Table) -> None:
        entry = self._pending.pop(table.name, None)
        if entry is not None and entry[1]:
            for i in range(0, len(entry[1]), 2000):
                self.conn.execute(insert(table), entry[1][i : i + 2000])

    def flush(self) -> None:
        for _table, _rows in list(self._pending.values()):
            self._flush_table(_table)

    def get(self, table: Table, key: Key) -> Row | None:
        self._flush_table(table)
        p = _REGISTRY[table.name]
        cond = and_(*(table.c[k] == v for k, v in zip(p.key, key, strict=True)))
        found = self.conn.execute(select(table).where(cond)).mappings().first()
        return dict(found) if found is not None else None

    def get_by(self, table: Table, column: str, value: Any) -> Row | None:
        self._flush_table(table)
        found = self.conn.execute(select(table).where(table.c[column] == value)).mappings().first()
        return dict(found) if found is not None else None

    def insert(self, table: Table, row: Row) -> None:
        self.touched.add(table.name)
        self._pending.setdefault(table.name, (table, []))[1].append(
            {c.name: row[c.name] for c in table.columns if c.name in row}
        )

    def update(self, table: Table, key: Key, changes: Row) -> None:
        self._flush_table(table)
        self.touched.add(table.name)
        p = _REGISTRY[table.name]
        cond = and_(*(table.c[k] == v for k, v in zip(p.key, key, strict=True)))
        self.conn.execute(update(table).where(cond).values(**changes))


# --- comparing -----------------------------------------------------------------------------


def normal(value: Any) -> Any:
    """A column value in a form that compares equal across databases and drivers:
    datetimes in UTC (naive ones are UTC), dates as ISO text, JSON as canonical text."""
    if isinstance(value, datetime):
        v = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return v.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return value


@dataclass(frozen=True)
class Difference:
    """One row where a live table and the log disagree."""

    table: str
    key: Key
    kind: str
    """``altered``; ``deleted`` (the log has it, the table not); ``inserted`` (in no
    record); ``private`` (private columns disagree with the record's digest); or a
    check's own kind (e.g. ``stale`` for a cache)."""
    record_id: str | None
    columns: tuple[str, ...] = ()
    live: Mapping[str, Any] = field(default_factory=dict)
    expected: Mapping[str, Any] = field(default_factory=dict)
    detail: str = ""

    def line(self) -> str:
        key = ",".join(str(k) for k in self.key)
        if self.record_id:
            rid = f" record {self.record_id}"
        else:  # an inserted row names no record; a table without a record column neither
            rid = " (no record)" if self.kind == "inserted" else ""
        if self.kind == "altered":
            cols = "; ".join(
                _column_change(c, self.live.get(c), self.expected.get(c)) for c in self.columns
            )
            return f"{self.table} [{key}]{rid}: altered: {self.detail or cols}"
        if self.kind == "deleted":
            return f"{self.table} [{key}]{rid}: row missing (the log has it)"
        if self.kind == "inserted":
            return f"{self.table} [{key}]{rid}: row in no record (inserted)"
        return f"{self.table} [{key}]{rid}: {self.kind}: {self.detail}"


def _column_change(column: str, live: Any, want: Any) -> str:
    """``column: live should be want``; for JSON objects, only the keys that differ."""
    if isinstance(live, Mapping) and isinstance(want, Mapping):
        keys = sorted(
            k for k in set(live) | set(want) if normal(live.get(k)) != normal(want.get(k))
        )
        return "; ".join(
            f"{column}.{k}: {_short(live.get(k))} should be {_short(want.get(k))}" for k in keys
        )
    return f"{column}: {_short(live)} should be {_short(want)}"


def _short(v: Any, n: int = 80) -> str:
    s = repr(v)
    return s if len(s) <= n else s[: n - 1] + "…"


def live_rows(conn: Connection, p: Projection, batch: int = 5000) -> Iterator[Row]:
    """Every row of a projection's table, streamed."""
    # Per statement: Connection.execution_options() would change the connection itself.
    result = conn.execute(
        select(p.table)
        .order_by(*(p.table.c[k] for k in p.key))
        .execution_options(yield_per=batch)
    )
    for m in result.mappings():
        yield dict(m)


def same(a: Any, b: Any) -> bool:
    """Equal as stored values (the fast path), or equal once normalised (:func:`normal`)."""
    return bool(a == b) or normal(a) == normal(b)


def compare(
    p: Projection, expected: Mapping[Key, Row], live: Iterable[Row]
) -> Iterator[Difference]:
    """The differences between what the log says a table holds and what it holds."""
    cols = p.compared_columns()
    seen: set[Key] = set()
    norm_key: dict[Key, Key] | None = None
    for row in live:
        key: Key | None = p.key_of(row)
        if key not in expected:
            if norm_key is None:  # keys of another type (a date, a naive time): normalise
                norm_key = {tuple(normal(k) for k in k2): k2 for k2 in expected}
            key = norm_key.get(tuple(normal(k) for k in p.key_of(row)))
        if key is None:
            yield Difference(p.name, p.key_of(row), "inserted", p.record_of(row))
            continue
        seen.add(key)
        want = expected[key]
        if p.view is not None:
            row, want = dict(p.view(row)), dict(p.view(want))
        diff = tuple(c for c in cols if not same(row.get(c), want.get(c)))
        if diff:
            yield Difference(
                p.name, key, "altered", p.record_of(want), diff,
                {c: row.get(c) for c in diff}, {c: want.get(c) for c in diff},
            )
    for key, want in expected.items():
        if key not in seen:
            yield Difference(p.name, key, "deleted", p.record_of(want))


# --- audit and rebuild ---------------------------------------------------------------------

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called now and then on long runs."""


@dataclass
class Replayed:
    """The projection tables as the log alone makes them, and the bodies that private
    columns are checked against."""

    rows: MemoryRows
    bodies: dict[str, Mapping[str, Any]]
    records: int


def replay(
    conn: Connection,
    projections: Sequence[Projection],
    *,
    progress: Progress | None = None,
    batch: int = 5000,
) -> Replayed:
    """Apply every record of the log, from leaf 0 in order, to empty in-memory tables."""
    leaf = LogLeaf.__table__  # type: ignore[attr-defined]
    head = LogHead.__table__  # type: ignore[attr-defined]
    total = int(conn.execute(select(head.c.size)).scalar() or 0)
    rows = MemoryRows(projections)
    wanted = {t for p in projections for t in p.types}
    by_type: dict[str, list[Projection]] = {}
    for p in projections:
        for t in p.types:
            by_type.setdefault(t, []).append(p)
    keep_bodies = {t for p in projections if p.check_private is not None for t in p.types}
    bodies: dict[str, Mapping[str, Any]] = {}
    done = pos = 0
    while True:
        chunk = conn.execute(
            select(leaf.c.leaf_index, leaf.c.record_id, leaf.c.record_type, leaf.c.canonical)
            .where(leaf.c.leaf_index >= pos)
            .order_by(leaf.c.leaf_index)
            .limit(batch)
        ).all()
        for idx, rid, typ, canonical in chunk:
            if typ in wanted:
                env = json.loads(bytes(canonical))
                rec = Rec(rid, int(idx), env)
                for p in by_type[env["type"]]:
                    p.apply(rec, rows)
                if typ in keep_bodies:
                    bodies[rid] = env["body"]
        done += len(chunk)
        if progress is not None:
            progress("replaying the log", done, total)
        if len(chunk) < batch:
            break
        pos = int(chunk[-1][0]) + 1
    return Replayed(rows, bodies, done)


def differences(
    conn: Connection,
    projections: Sequence[Projection],
    replayed: Replayed,
    *,
    progress: Progress | None = None,
) -> list[Difference]:
    """Compare every projection table with its replay; check private columns."""
    found: list[Difference] = []
    for i, p in enumerate(projections):
        expected = replayed.rows.tables[p.name]
        live = list(live_rows(conn, p))
        found.extend(compare(p, expected, live))
        if p.check_private is not None:
            for row in live:
                body = replayed.bodies.get(str(p.record_of(row)))
                if body is None:
                    continue
                problem = p.check_private(row, body)
                if problem:
                    found.append(
                        Difference(p.name, p.key_of(row), "private", p.record_of(row),
                                   detail=problem)
                    )
        if progress is not None:
            progress("comparing tables", i + 1, len(projections))
    return found


def repair(
    conn: Connection, projections: Sequence[Projection], found: Sequence[Difference],
    replayed: Replayed,
) -> int:
    """Make the tables what the log says: delete rows in no record (children first),
    insert missing rows and restore altered columns (parents first). Private columns
    of a missing row cannot come from the log: they are left empty (audit keeps
    reporting them until restored from a backup). Returns the rows changed."""
    changed = 0
    for p in reversed(projections):
        for d in found:
            if d.table == p.name and d.kind == "inserted":
                conn.execute(p.table.delete().where(_key_clause(p, d.key)))
                changed += 1
    for p in projections:
        expected = replayed.rows.tables[p.name]
        for d in found:
            if d.table != p.name or d.kind not in ("deleted", "altered"):
                continue
            want = expected[d.key]
            if d.kind == "deleted":
                row = {k: v for k, v in want.items() if k not in p.surrogate}
                for c in p.private:
                    if row.get(c) is None and not p.table.c[c].nullable:
                        row[c] = 0 if isinstance(p.table.c[c].type, Integer) else ""
                conn.execute(insert(p.table).values(**row))
            else:
                conn.execute(
                    update(p.table).where(_key_clause(p, d.key)).values(
                        **{c: want[c] for c in d.columns}
                    )
                )
            changed += 1
    return changed


def _key_clause(p: Projection, key: Key) -> Any:
    return and_(*(p.table.c[k] == v for k, v in zip(p.key, key, strict=True)))


@dataclass(frozen=True)
class Check:
    """A derived table that is not a per-record projection (the rating cache, the kept
    merchant views): its owner says how to audit it against the log-backed tables and
    how to rebuild it. ``audit(session, context)`` -> differences;
    ``rebuild(session, context)`` -> rows changed. ``context``: the app's settings and
    today's date (:class:`CheckContext`)."""

    name: str
    audit: Callable[[Any, CheckContext], list[Difference]]
    rebuild: Callable[[Any, CheckContext], int]
    repairs: bool = True
    """False when ``rebuild`` cannot restore the table from the log (it only reports)."""


def repairable(d: Difference) -> bool:
    """Whether ``rebuild --from-log`` can repair what this difference reports."""
    check = _CHECKS.get(d.table)
    if check is not None:
        return check.repairs and d.kind in ("altered", "deleted", "inserted")
    return d.kind in ("altered", "deleted", "inserted")


@dataclass(frozen=True)
class CheckContext:
    settings: Any
    today: date
    progress: Progress | None = None


_CHECKS: dict[str, Check] = {}


def register_check(check: Check) -> None:
    _CHECKS[check.name] = check


def all_checks() -> list[Check]:
    return list(_CHECKS.values())


def audit_all(session: Any, ctx: CheckContext) -> tuple[Replayed, list[Difference]]:
    """Replay the log into every projection and compare; then run every check."""
    projections = all_projections()
    conn = session.connection()
    replayed = replay(conn, projections, progress=ctx.progress)
    found = differences(conn, projections, replayed, progress=ctx.progress)
    for check in all_checks():
        found.extend(check.audit(session, ctx))
    return replayed, found


def rebuild_all(session: Any, ctx: CheckContext, *, dry_run: bool) -> list[Difference]:
    """What :func:`audit_all` finds, repaired from the log unless ``dry_run`` (in the
    session's transaction: the caller commits). Checks are rebuilt after the
    projections they read."""
    replayed, found = audit_all(session, ctx)
    if dry_run:
        return found
    repair(session.connection(), all_projections(), found, replayed)
    for check in all_checks():
        check.rebuild(session, ctx)
    return found
