"""Demo data: about 2,000 made-up Bazhong merchants with two years of history.

Seeds, in one transaction and in date order, what the services would have
written over that time: registrations, verifications, pledges (renewed,
expired and a few withdrawn), demonstration-unit awards, plus the demo staff
accounts and a merchant account for every merchant (all with one demo
password, hashed once). Record bodies come from the same builders the
services use. Records carry the (back-dated) time of each simulated event,
so the log stays in time order; this is demo data only and must never be
seeded into a production database: both the command and the startup hook
refuse when ``HM_ENV=production``.

The regulator's side — supervision outcomes, complaints, credit repairs
(:mod:`backend.demo.supervision`) and the inspection directories
(:mod:`backend.demo.inspections`) — is recorded by calling the services
themselves on the simulated days, each with that day as its clock, so their
validation, records and ratings are the real ones. Their commits join the
seeding transaction (``join_transaction_mode``): seeding stays all or
nothing. Every merchant is rated at the end. A random inspection draw needs
the ledger, so it is no part of seeding: ``honest-metering demo`` runs one
afterwards, and a first start of the service in the background
(:mod:`backend.demo.inspections`).

Appends are batched per simulated day, outcomes per recording day, so seeding
takes seconds.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy import func, select, text
from sqlmodel import Session

from backend.accounts import security
from backend.accounts import service as accounts
from backend.accounts.models import Account
from backend.accounts.service import Principal
from backend.config import Settings
from backend.context import AppContext
from backend.credit import service as credit
from backend.credit.policy import DEFAULT_POLICY
from backend.db import Database
from backend.demo import inspections as inspections_demo
from backend.demo import supervision as supervision_demo
from backend.demo.data import DEFAULT_SEED, generate_merchants, random_uscc
from backend.demo.supervision import DemoMerchant, HistorySummary
from backend.inspections.models import InspectionItem, Inspector
from backend.ledger import log as ledger_log
from backend.ledger import write as ledger_write
from backend.ledger.records import Actor, RecordDraft, Ref
from backend.merchants import queries as merchant_queries
from backend.merchants import service as merchants
from backend.merchants.models import Merchant
from backend.pledges import service as pledges
from backend.pledges.queries import add_months
from backend.pledges.templates import current_template, template_digest
from backend.supervision import kinds
from backend.timeutil import SHANGHAI, shanghai_date, utcnow

log = logging.getLogger(__name__)

DEMO_MERCHANTS = 2000
# Serialises seeders (two workers starting together on PostgreSQL). Not 7340002:
# that key is the anchoring lock (backend/ledger/anchoring.py), which a running
# service's worker holds for good, so seeding would wait for it forever.
PG_DEMO_LOCK = 7340003
DEMO_MERCHANT_PASSWORD = "demo-merchant-2025"
DEMO_STAFF = (
    ("admin", "admin", "demo-admin-2025"),
    ("regulator", "regulator", "demo-regulator-2025"),
)
# The three made-up codes of domain.md, with fixed stories for demonstrations.
SHOWCASE = (
    {
        "uscc": "91511902MA62Q3T556",
        "name": "巴中市巴山诚信超市有限公司",
        "sector": "retail",
        "region_code": "511902",
        "sub_area": None,
        "address": "巴中市巴州区江北大道168号",
        "contact_name": "王建国",
        "contact_phone": "13800000001",
    },
    {
        "uscc": "92511923MA6A1B2C3M",
        "name": "平昌县江口镇王记粮油店",
        "sector": "retail",
        "region_code": "511923",
        "sub_area": None,
        "address": "巴中市平昌县江口镇老街26号",
        "contact_name": "王秀英",
        "contact_phone": "13800000002",
    },
    {
        "uscc": "93511903MA62R7U15L",
        "name": "巴中市恩阳区柳林银耳专业合作社",
        "sector": "prepackaged",
        "region_code": "511903",
        "sub_area": None,
        "address": "巴中市恩阳区柳林镇兴业路8号",
        "contact_name": "岳志强",
        "contact_phone": "13800000003",
    },
)
HISTORY_DAYS = 760
EXTRA_COMMITMENTS = (
    "每月对店内计量器具开展一次自查，并在店内公示自查结果。",
    "设立计量投诉联系点，接到投诉后24小时内答复。",
    "缺斤少两，假一赔十。",
    "配备复核秤，欢迎顾客随时复核。",
)
WITHDRAW_REASONS = ("停业整顿", "经营场所变更，重新承诺", "经营者变更")


@dataclass
class DemoSummary:
    merchants: int = 0
    verified: int = 0
    pledges: int = 0
    withdrawn: int = 0
    awards: int = 0
    records: int = 0
    staff: list[str] = field(default_factory=list)
    go_live: date | None = None
    """The day the credit policy (and the recording of outcomes) started."""
    supervision: HistorySummary = field(default_factory=HistorySummary)
    directory: dict[str, int] = field(default_factory=dict)
    tiers: dict[str, int] = field(default_factory=dict)

    def describe_supervision(self) -> str:
        o = self.supervision.outcomes - self.supervision.corrections
        if not o:
            return "no supervision outcomes (no credit policy in force yet)"
        return (
            f"{o[kinds.SPOT_CHECK.name]} spot checks, {o[kinds.PENALTY.name]} penalties, "
            f"{o[kinds.COMPLAINT_VERIFIED.name]} verified complaints "
            f"({self.supervision.complaints_pending} pending), "
            f"{o[kinds.ABNORMAL_LIST.name] + o[kinds.SERIOUS_LIST.name]} list entries/removals, "
            f"{o[kinds.INSTRUMENT.name]} instrument verifications, "
            f"{self.supervision.corrections.total()} corrections (final results, fines paid), "
            f"{self.supervision.repairs_approved} credit repairs; "
            f"{self.directory.get('inspectors', 0)} inspectors, "
            f"{self.directory.get('items', 0)} inspection items; tiers "
            + " ".join(f"{t} {n}" for t, n in sorted(self.tiers.items()))
        )


@dataclass
class _Event:
    day: date
    order: int  # registration < verification < pledge < withdrawal < award on the same day
    seq: int
    build: Callable[[datetime], tuple[RecordDraft, Callable[[str, int], None]]]


@dataclass
class _Action:
    """A service call on a simulated day, after that day's records, with that clock."""

    day: date
    order: int
    seq: int
    run: Callable[[Session, datetime], None]


def _at(day: date, seq: int, now: datetime) -> datetime:
    """10:00 in Bazhong on ``day`` (later for later chunks), never after ``now``:
    a record's acceptance time is never in the future."""
    base = datetime.combine(day, time(10, 0), SHANGHAI).astimezone(UTC)
    return min(base + timedelta(seconds=seq % 25_000), now)


class _Seeder:
    def __init__(self, session: Session, *, settings: Settings, now: datetime, seed: int) -> None:
        self.s = session
        self.settings = settings
        self.now = now
        self.today = shanghai_date(now)
        self.rng = random.Random(seed)
        self.events: list[_Event] = []
        self.rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.private: dict[str, dict[str, Any]] = {}
        """Merchants' private contact columns by registration record id."""
        self.summary = DemoSummary()
        self.next_account = (
            accounts.max_account_id(session) + 1
        )
        self.regulator_id: int | None = None
        self.record_ids: dict[tuple[str, str], str] = {}
        self.merchant_hash = security.hash_password(DEMO_MERCHANT_PASSWORD, env=settings.env)
        self.actions: list[_Action] = []
        self.facts: list[DemoMerchant] = []
        self.last_at = datetime.min.replace(tzinfo=UTC)

    def _account_id(self) -> int:
        self.next_account += 1
        return self.next_account - 1

    def _event(
        self,
        day: date,
        order: int,
        build: Callable[[datetime], tuple[RecordDraft, Callable[[str, int], None]]],
    ) -> None:
        self.events.append(_Event(day, order, len(self.events), build))

    def action(self, day: date, order: int, run: Callable[[Session, datetime], None]) -> None:
        assert day <= self.today, day
        self.actions.append(_Action(day, order, len(self.actions), run))

    # --- staff ------------------------------------------------------------------

    def staff(self, now: datetime) -> None:
        for username, role, password in DEMO_STAFF:
            existing = accounts.get_account_by_username(self.s, username)
            if existing is None:
                existing = Account(
                    id=self._account_id(),
                    username=username,
                    role=role,
                    password_hash=security.hash_password(password, env=self.settings.env),
                    created_at=now,
                )
                self.s.add(existing)
                self.summary.staff.append(username)
            if role == "regulator" and self.regulator_id is None:
                self.regulator_id = existing.id
        self.s.flush()

    # --- one merchant's story -----------------------------------------------------

    def merchant(self, m: dict[str, Any], *, story: str | None = None) -> None:
        rng = self.rng
        today = self.today
        if story is None:
            registered = today - timedelta(days=rng.randint(3, HISTORY_DAYS))
        else:
            registered = today - timedelta(days=430)
        account_id = self._account_id()
        row = Merchant(
            uscc=m["uscc"],
            name=m["name"],
            sector=m["sector"],
            region_code=m["region_code"],
            sub_area=m["sub_area"],
            address=m["address"],
            contact_person=m["contact_name"],
            contact_phone=m["contact_phone"],
            contact_salt=uuid.uuid4().hex,
            registered_at=datetime.now(UTC),
            record_id="",
            leaf_index=-1,
        )

        def register(at: datetime) -> tuple[RecordDraft, Callable[[str, int], None]]:
            draft = RecordDraft(
                type=merchants.REGISTERED,
                subject=row.uscc,
                actor=Actor("public", None),
                body=merchants.registration_body(row),
            )

            def done(rid: str, idx: int) -> None:
                # Verifications, always on a later day, refer to this record.
                self.record_ids[("merchant", row.uscc)] = rid
                self.private[rid] = {
                    "contact_person": row.contact_person,
                    "contact_phone": row.contact_phone,
                    "contact_salt": row.contact_salt,
                }
                self.rows["account"].append(
                    {
                        "id": account_id,
                        "username": row.uscc,
                        "role": "merchant",
                        "merchant_uscc": row.uscc,
                        "password_hash": self.merchant_hash,
                        "created_at": at,
                        "disabled": False,
                    }
                )

            return draft, done

        self._event(registered, 0, register)
        self.summary.merchants += 1

        verified_on: date | None = None
        if story in ("verified", "demonstration") or (story is None and rng.random() < 0.7):
            verified_on = min(today, registered + timedelta(days=rng.randint(1, 30)))
            self._verify(row, verified_on)

        active: list[tuple[date, date]] = []
        if story is not None or rng.random() < 0.85:
            pledged = registered + timedelta(days=0 if story else rng.randint(0, 14))
            active = self._pledges(row, account_id, pledged, keep_active=story is not None)
            if story == "demonstration" or (
                story is None and verified_on is not None and active and rng.random() < 0.06
            ):
                self._award(row, active, verified_on, force=story == "demonstration")
        self.facts.append(
            DemoMerchant(
                uscc=row.uscc,
                sector=row.sector,
                region_code=row.region_code,
                registered=registered,
                verified_on=verified_on,
                account_id=account_id,
                pledged=tuple(active),
                story=story,
            )
        )

    def _verify(self, row: Merchant, on: date) -> None:
        def build(at: datetime) -> tuple[RecordDraft, Callable[[str, int], None]]:
            draft = RecordDraft(
                type=merchants.VERIFIED,
                subject=row.uscc,
                actor=Actor("regulator", str(self.regulator_id)),
                body=merchants.verification_body(on),
                refs=(Ref("verifies", self._record_of(row.uscc, "merchant")),),
            )

            def done(rid: str, idx: int) -> None:
                pass  # the merchant_verification row is the record's projection

            return draft, done

        self._event(on, 1, build)
        self.summary.verified += 1

    def _record_of(self, key: str, kind: str) -> str:
        return self.record_ids[(kind, key)]

    def _pledges(
        self, row: Merchant, account_id: int, start: date, *, keep_active: bool
    ) -> list[tuple[date, date]]:
        """Simulate a merchant's chain of pledges; returns the intervals during
        which a pledge was active and never withdrawn."""
        rng, today = self.rng, self.today
        template = current_template(row.sector)
        digest = template_digest(template)
        optional = [i.code for i in template.items if not i.required]
        previous: str | None = None
        day = start
        active: list[tuple[date, date]] = []
        while day <= today:
            pledge_id = uuid.uuid4().hex
            items = [c for c in template.codes if c not in optional or rng.random() < 0.5]
            extra = rng.choice(EXTRA_COMMITMENTS) if rng.random() < 0.2 else None
            until = add_months(day, pledges.PLEDGE_VALIDITY_MONTHS)
            prepared = pledges.PreparedPledge(
                uscc=row.uscc,
                template=template,
                digest=digest,
                items=items,
                extra_commitments=extra,
                valid_from=day,
                valid_until=until,
            )
            self._pledge(row, account_id, pledge_id, prepared, previous)
            withdraw_on = None
            if not keep_active and rng.random() < 0.03:
                withdraw_on = day + timedelta(days=rng.randint(20, 300))
                if withdraw_on < min(until, today + timedelta(days=1)):
                    self._withdraw(row, account_id, pledge_id, withdraw_on)
                    active.append((day, withdraw_on))
                    return active
            active.append((day, until))
            # Most renew shortly before expiry; some lapse and come back; some stop.
            roll = rng.random()
            if keep_active or roll < 0.7:
                day = until - timedelta(days=rng.randint(1, 20))
            elif roll < 0.85:
                day = until + timedelta(days=rng.randint(10, 90))
            else:
                break
            previous = pledge_id
        return active

    def _pledge(
        self,
        row: Merchant,
        account_id: int,
        pledge_id: str,
        prepared: pledges.PreparedPledge,
        previous: str | None,
    ) -> None:
        def build(at: datetime) -> tuple[RecordDraft, Callable[[str, int], None]]:
            refs = (Ref("renews", self._record_of(previous, "pledge")),) if previous else ()
            draft = RecordDraft(
                type=pledges.PLEDGE_MADE,
                subject=row.uscc,
                actor=Actor("merchant", str(account_id)),
                body=pledges.pledge_made_body(
                    pledge_id=pledge_id, prepared=prepared, signer=None, signature=None
                ),
                refs=refs,
            )

            def done(rid: str, idx: int) -> None:
                self.record_ids[("pledge", pledge_id)] = rid

            return draft, done

        self._event(prepared.valid_from, 2, build)
        self.summary.pledges += 1

    def _withdraw(self, row: Merchant, account_id: int, pledge_id: str, on: date) -> None:
        reason = self.rng.choice(WITHDRAW_REASONS)

        def build(at: datetime) -> tuple[RecordDraft, Callable[[str, int], None]]:
            draft = RecordDraft(
                type=pledges.PLEDGE_WITHDRAWN,
                subject=row.uscc,
                actor=Actor("merchant", str(account_id)),
                body=pledges.withdrawal_body(pledge_id=pledge_id, withdrawn_on=on, reason=reason),
                refs=(Ref("revokes", self._record_of(pledge_id, "pledge")),),
            )

            def done(rid: str, idx: int) -> None:
                pass  # the pledge_withdrawal row is the record's projection

            return draft, done

        self._event(on, 3, build)
        self.summary.withdrawn += 1

    def _award(
        self,
        row: Merchant,
        active: list[tuple[date, date]],
        verified_on: date | None,
        *,
        force: bool,
    ) -> None:
        assert verified_on is not None
        # An award day on which the merchant was verified and had an active pledge.
        candidates = [
            (max(a, verified_on + timedelta(days=1)), min(b, self.today + timedelta(days=1)))
            for a, b in active
        ]
        candidates = [(a, b) for a, b in candidates if a < b]
        if not candidates:
            return
        a, b = candidates[-1] if force else self.rng.choice(candidates)
        on = a + timedelta(days=self.rng.randint(0, (b - a).days - 1))
        until = add_months(on, pledges.DEMONSTRATION_VALIDITY_MONTHS)
        award_id = uuid.uuid4().hex
        withdraw = not force and self.rng.random() < 0.08
        withdraw_on = on + timedelta(days=self.rng.randint(30, 200))

        def build(at: datetime) -> tuple[RecordDraft, Callable[[str, int], None]]:
            draft = RecordDraft(
                type=pledges.DEMONSTRATION,
                subject=row.uscc,
                actor=Actor("regulator", str(self.regulator_id)),
                body=pledges.award_body(on=on, valid_until=until),
            )

            def done(rid: str, idx: int) -> None:
                self.record_ids[("award", award_id)] = rid

            return draft, done

        self._event(on, 4, build)
        self.summary.awards += 1
        if not withdraw or withdraw_on > self.today:
            return
        reason = "复查发现计量器具超期未检，撤销示范单位称号"

        def build_withdrawal(at: datetime) -> tuple[RecordDraft, Callable[[str, int], None]]:
            draft = RecordDraft(
                type=pledges.DEMONSTRATION,
                subject=row.uscc,
                actor=Actor("regulator", str(self.regulator_id)),
                body=pledges.award_withdrawal_body(on=withdraw_on, reason=reason),
                refs=(Ref("revokes", self._record_of(award_id, "award")),),
            )

            def done(rid: str, idx: int) -> None:
                pass  # the demonstration_withdrawal row is the record's projection

            return draft, done

        self._event(withdraw_on, 5, build_withdrawal)

    # --- the regulator's side ------------------------------------------------------------

    def regulator_side(self, seed: int) -> None:
        """Plan the inspection directories and two years of supervision as service calls."""
        assert self.regulator_id is not None
        regulator = Principal(
            account_id=self.regulator_id,
            username="regulator",
            role="regulator",
            merchant_uscc=None,
        )
        versions = credit.policy_versions(self.s)
        first = min(
            (v.policy.effective_from for v in versions), default=DEFAULT_POLICY.effective_from
        )
        go_live = supervision_demo.go_live_day(first, self.today)
        empty = all(
            self.s.execute(select(func.count()).select_from(t)).scalar_one() == 0
            for t in (Inspector, InspectionItem)
        )
        if empty:
            actions, counts = inspections_demo.directory_actions(
                seed=seed + 2,
                regulator=regulator,
                set_up_on=go_live or self.today,
                today=self.today,
                merchants=[(f.uscc, f.region_code, f.registered) for f in self.facts],
            )
            for day, order, run in actions:
                self.action(day, order, run)
            self.summary.directory = counts
        if go_live is None:
            log.warning("no credit policy is in force yet: the demo has no supervision outcomes")
            return
        self.summary.go_live = go_live

        # The rating starts with the first policy version, published on its first day.
        def publish_policy(s: Session, at: datetime) -> None:
            credit.ensure_policy(s, now=at)

        self.action(go_live, -20, publish_policy)
        history = supervision_demo.SupervisionHistory(
            self.facts, seed=seed + 1, today=self.today, go_live=go_live, regulator=regulator
        ).plan()
        for day, order, run in history.actions():
            self.action(day, order, run)
        self.summary.supervision = history.summary

    def rate_all(self) -> None:
        """Rate every merchant as of today (pledges seeded here did not re-rate as the
        pledges service would), naming each one's newest record as the cause."""
        if self.summary.go_live is None:
            return
        newest = ledger_log.newest_record_by_subject(self.s)
        usccs = [f.uscc for f in self.facts]
        ratings = credit.rerate_merchants(
            self.s,
            usccs,
            as_of=self.today,
            cause_record_ids={u: newest[u] for u in usccs if u in newest},
            now=self.now,
        )
        self.summary.tiers = dict(sorted(Counter(r.tier for r in ratings.values()).items()))

    # --- writing -----------------------------------------------------------------------

    TABLE_ORDER = (("account", accounts.insert_accounts),)
    """The rows the demo writes itself, and the owner's function that inserts them:
    accounts (no record); every other row is a record's projection."""

    def write(self) -> None:
        """Day by day: append the records and insert their rows, then run the day's
        service calls (from 16:00 in Bazhong, never before the last record's time)."""
        by_day: dict[date, list[_Event]] = defaultdict(list)
        for e in sorted(self.events, key=lambda e: (e.day, e.order, e.seq)):
            by_day[e.day].append(e)
        calls: dict[date, list[_Action]] = defaultdict(list)
        for a in sorted(self.actions, key=lambda a: (a.day, a.order, a.seq)):
            calls[a.day].append(a)
        days = sorted(by_day.keys() | calls.keys())
        # Seeding takes tens of seconds, with the port still closed: say how far it is.
        step = max(1, len(days) // 10)
        for n, day in enumerate(days, 1):
            if n % step == 0 or n == len(days):
                log.info(
                    "demo data: %d%% written (simulated day %s, %d records so far)",
                    n * 100 // len(days),
                    day.isoformat(),
                    self.summary.records,
                )
            events = by_day.get(day, [])
            for start in range(0, len(events), 500):
                chunk = events[start : start + 500]
                at = max(_at(day, start, self.now), self.last_at)
                built = [e.build(at) for e in chunk]
                appended = ledger_log.append(self.s, [d for d, _ in built], now=at)
                for (_, done), rec in zip(built, appended, strict=True):
                    done(rec.record_id, rec.leaf_index)
                # Merchants first (accounts refer to them), then the accounts, then the
                # records that name an account; each row is its record's projection.
                first = [r for r in appended if r.envelope["type"] == merchants.REGISTERED]
                ledger_write.project(self.s, first, private=self.private)
                self._flush_rows()
                ledger_write.project(
                    self.s, [r for r in appended if r.envelope["type"] != merchants.REGISTERED]
                )
                self.private.clear()
                self.summary.records += len(appended)
                self.last_at = max(self.last_at, at)
            afternoon = datetime.combine(day, time(16, 0), SHANGHAI).astimezone(UTC)
            for i, a in enumerate(calls.get(day, [])):
                at = min(max(afternoon + timedelta(seconds=7 * i), self.last_at), self.now)
                a.run(self.s, at)
                self.last_at = at

    def _flush_rows(self) -> None:
        for name, insert_rows in self.TABLE_ORDER:
            rows = self.rows.pop(name, None)
            if rows:
                insert_rows(self.s, rows)


def merchant_count(session: Session) -> int:
    return merchant_queries.count_registered(session)


def seed_demo(
    db: Database,
    *,
    settings: Settings,
    merchants_n: int = DEMO_MERCHANTS,
    seed: int = DEFAULT_SEED,
    now: datetime | None = None,
) -> DemoSummary | None:
    """Seed the demo data into an empty registry; ``None`` if it has merchants."""
    if settings.env == "production":
        raise RuntimeError("demo data is made up and is never seeded with HM_ENV=production")
    now = now or utcnow()
    # One transaction for all of it. The services called on the simulated days commit
    # their own work; joined to this transaction ("rollback_only"), their commits do not
    # end it and only a rollback reaches it, so a failure anywhere leaves nothing behind.
    with (
        db.engine.connect() as conn,
        conn.begin(),
        Session(conn, join_transaction_mode="rollback_only", expire_on_commit=False) as s,
    ):
        if not db.is_sqlite:
            s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_DEMO_LOCK})
        if merchant_count(s) > 0:
            return None
        log.info(
            "demo data: seeding %d made-up merchants with two years of history "
            "(about half a minute; progress follows)",
            merchants_n,
        )
        seeder = _Seeder(s, settings=settings, now=now, seed=seed)
        seeder.staff(now)
        seeder.merchant(SHOWCASE[0], story="demonstration")
        seeder.merchant(SHOWCASE[1], story="unverified")
        seeder.merchant(SHOWCASE[2], story="verified")
        showcase = {m["uscc"] for m in SHOWCASE}
        for m in generate_merchants(max(0, merchants_n - len(SHOWCASE)), seed=seed):
            if m["uscc"] not in showcase:
                seeder.merchant(m)
        size = ledger_log.tree_size(s)
        log.info("demo data: planning the supervision history")
        seeder.regulator_side(seed)
        seeder.write()
        log.info("demo data: rating every merchant")
        seeder.rate_all()
        seeder.summary.records = ledger_log.tree_size(s) - size
        if not db.is_sqlite:
            s.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('account', 'id'), "
                    "(SELECT max(id) FROM account))"
                )
            )
        return seeder.summary


def unused_uscc(session: Session | None, *, rng: random.Random | None = None) -> str:
    """A well-formed credit code that no merchant in the registry holds, to try
    registration with (``honest-metering demo --new-uscc``); ``session`` is ``None``
    for a registry whose tables do not exist yet."""
    rng = rng or random.SystemRandom()
    for _ in range(1000):
        code = random_uscc(rng)
        if session is None or not merchant_queries.merchants_by_uscc(session, [code]):
            return code
    raise RuntimeError("no unused credit code found in 1000 tries")  # pragma: no cover


def credentials_text() -> str:
    staff = ", ".join(f"{u} / {p} ({r})" for u, r, p in DEMO_STAFF)
    return (
        f"demo accounts: {staff}; every demo merchant logs in with its credit code and "
        f"{DEMO_MERCHANT_PASSWORD} (e.g. {SHOWCASE[0]['uscc']})"
    )


def seed_on_first_start(ctx: AppContext) -> DemoSummary | None:
    """Seed the demo data when the registry is empty (the first start of the service)."""
    if ctx.settings.env == "production" or not ctx.settings.demo_on_first_start:
        return None
    with ctx.db.read() as s:
        if merchant_count(s) > 0:
            return None
    log.info(
        "first start with an empty registry: seeding demo data before the service listens "
        "(set HM_DEMO_ON_FIRST_START=false to start empty)"
    )
    summary = seed_demo(ctx.db, settings=ctx.settings)
    if summary is not None:
        log.info(
            "seeded demo data: %d merchants, %d pledges, %d demonstration units, %d records; "
            "%s; %s",
            summary.merchants,
            summary.pledges,
            summary.awards,
            summary.records,
            summary.describe_supervision(),
            credentials_text(),
        )
    return summary


def install(app: FastAPI) -> None:
    """Seed on first start; then, in the background, run the demo draw (it needs the
    ledger, which must never hold up the start)."""
    settings: Settings = app.state.settings
    if not settings.demo_on_first_start or settings.env == "production":
        return
    app.state.demo_draw = None

    def first_start(ctx: AppContext) -> None:
        if seed_on_first_start(ctx) is not None:
            app.state.demo_draw = inspections_demo.DemoDrawWorker(ctx).start()

    def stop(ctx: AppContext) -> None:
        worker = app.state.demo_draw
        if worker is not None:
            worker.stop()
            app.state.demo_draw = None

    app.state.startup_hooks.append(first_start)
    app.state.shutdown_hooks.append(stop)
