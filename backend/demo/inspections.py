"""Demo data for random inspections (双随机、一公开): the directories, and one draw.

- :func:`directory_actions`: the inspector directory (three dozen made-up
  inspectors of the city and county bureaus; their names stay private), the
  inspection items with their legal basis, and a few declared conflicts of
  interest (one later withdrawn), all through :mod:`backend.inspections.directory`
  as dated calls for the demo seeder (no ledger needed: records only).
- :func:`run_demo_draw`: one draw on the shops-and-restaurants weighing item,
  committed and revealed on the ledger, with the first half of the results
  recorded. It needs chain transactions, so it is never part of seeding:
  ``honest-metering demo`` runs it after seeding, and the first start of the
  service runs it in the background (:class:`DemoDrawWorker`), so a slow or
  absent ledger never holds up the start. It is resumable: run again, it reveals
  or completes the demo draw it finds instead of starting another.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta

from sqlmodel import Session

from backend.accounts import service as accounts
from backend.accounts.service import Principal
from backend.background import BackgroundThread
from backend.context import AppContext
from backend.demo.supervision import AUTHORITY
from backend.errors import DomainError, LedgerUnavailable
from backend.inspections import directory
from backend.inspections.draws import base as draw_base
from backend.inspections.draws import commit as draw_commit
from backend.inspections.draws import reading, results
from backend.inspections.draws import reveal as draw_reveal
from backend.inspections.models import (
    ConflictCreate,
    Draw,
    DrawCreate,
    InspectorCreate,
    InspectorUpdate,
    ItemCreate,
)
from backend.merchants import queries as merchant_queries
from backend.supervision import bulk, kinds
from backend.timeutil import today_shanghai, utcnow

log = logging.getLogger(__name__)

# (unit, region code, inspectors)
UNITS: tuple[tuple[str, str, int], ...] = (
    ("巴中市市场监督管理局", "511900", 8),
    ("巴中市巴州区市场监督管理局", "511902", 7),
    ("巴中市恩阳区市场监督管理局", "511903", 5),
    ("通江县市场监督管理局", "511921", 6),
    ("南江县市场监督管理局", "511922", 5),
    ("平昌县市场监督管理局", "511923", 5),
)
SURNAMES = "王李张刘陈杨赵黄周吴徐孙马朱胡郭何罗岳苟"
GIVEN = (
    "建华",
    "晓燕",
    "志强",
    "丽",
    "明",
    "海涛",
    "秀兰",
    "军",
    "静",
    "磊",
    "婷",
    "勇",
    "芳",
    "杰",
    "敏",
    "小龙",
    "红梅",
    "国庆",
    "春花",
    "德明",
    "雪",
    "文斌",
    "玉兰",
    "成刚",
)
LAW = "《中华人民共和国计量法》"
RULES = "《中华人民共和国计量法实施细则》"
QUANTITY = "《商品量计量违法行为处罚规定》"
# (title, legal basis, sectors, method)
ITEMS: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    (
        "加油站计量监督检查",
        f"{LAW}第九条、第二十六条；{RULES}；《加油站计量监督管理办法》",
        ("fuel",),
        "现场检查：核查燃油加油机强制检定证书、检定合格标志和铅封，使用标准金属量器抽检付油量",
    ),
    (
        "集贸市场计量监督检查",
        f"{LAW}；《集贸市场计量监督管理办法》；{QUANTITY}",
        ("market",),
        "现场检查：核查在用电子计价秤检定状态、公平秤设置和计量器具台账，抽检商品量",
    ),
    (
        "眼镜制配计量监督检查",
        f"{LAW}；《眼镜制配计量监督管理办法》",
        ("optical",),
        "现场检查：核查焦度计、验光仪、验光镜片箱的检定证书，抽检配镜顶焦度",
    ),
    (
        "定量包装商品净含量计量监督抽查",
        f"{LAW}；《定量包装商品计量监督管理办法》；{QUANTITY}",
        ("prepackaged", "retail"),
        "抽样检验：按JJF 1070抽取样品检验净含量，核查净含量标注",
    ),
    (
        "出租汽车计价器计量监督检查",
        f"{LAW}；{RULES}",
        ("taxi",),
        "现场检查：核查出租汽车计价器检定合格标志和铅封，路试抽检计费",
    ),
    (
        "商店、餐饮服务业称重计量监督检查",
        f"{LAW}；《零售商品称重计量监督管理办法》；{QUANTITY}",
        ("catering", "retail"),
        "现场检查：核查电子计价秤检定状态，复核称重商品量和去皮",
    ),
)
DRAW_ITEM = ITEMS[-1][0]  # shops and restaurants: the widest scope
CONFLICT_REASONS = ("配偶经营该店", "近亲属为该企业股东", "曾在该企业任职未满两年")
DRAW_RESULT_WEIGHTS = (("未发现问题", 85), ("发现问题已责令改正", 10), ("发现问题待后续处理", 5))

Action = Callable[[Session, datetime], None]


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + rng.choice(GIVEN)


def directory_actions(
    *,
    seed: int,
    regulator: Principal,
    set_up_on: date,
    today: date,
    merchants: list[tuple[str, str, date]],
) -> tuple[list[tuple[date, int, Action]], dict[str, int]]:
    """The directory calls, dated, and what they create.

    ``merchants``: (uscc, region, registration day) of the demo merchants.
    """
    rng = random.Random(seed)
    counts = {"inspectors": 0, "items": 0, "conflicts": 0}
    inspectors: list[tuple[str, str]] = []
    for _unit, region, n in UNITS:
        for k in range(1, n + 1):
            inspectors.append((f"bz{region}-{k:02d}", region))
    counts["inspectors"] = len(inspectors)
    counts["items"] = len(ITEMS)
    names = [_name(rng) for _ in inspectors]
    units = {region: unit for unit, region, _ in UNITS}

    def set_up(s: Session, at: datetime) -> None:
        for (iid, region), name in zip(inspectors, names, strict=True):
            directory.create_inspector(
                s,
                principal=regulator,
                data=InspectorCreate(id=iid, name=name, unit=units[region], region_code=region),
                now=at,
            )
        for title, basis, sectors, method in ITEMS:
            directory.create_item(
                s,
                principal=regulator,
                data=ItemCreate(
                    title=title, legal_basis=basis, sectors=list(sectors), method=method
                ),
                now=at,
            )

    out: list[tuple[date, int, Action]] = [(set_up_on, -10, set_up)]
    span = max(0, (today - set_up_on).days)

    # One inspector leaves the county bureau: a new version of the entry, inactive.
    if span > 30:
        leaving = inspectors[-1][0]

        def leave(s: Session, at: datetime) -> None:
            directory.update_inspector(
                s,
                principal=regulator,
                inspector_id=leaving,
                data=InspectorUpdate(active=False),
                now=at,
            )

        out.append((set_up_on + timedelta(days=rng.randint(10, span - 10)), -5, leave))

    # A few declared conflicts of interest with merchants of their own region.
    declared: list[tuple[str, str, date]] = []
    for iid, region in rng.sample(inspectors[:-1], k=5):
        on = set_up_on if not declared else set_up_on + timedelta(days=rng.randint(0, span))
        pool = [u for u, r, registered in merchants if r == region and registered <= on]
        if pool:
            declared.append((iid, rng.choice(pool), on))
    for iid, uscc, on in declared:
        reason = rng.choice(CONFLICT_REASONS)

        def declare(
            s: Session,
            at: datetime,
            iid: str = iid,
            uscc: str = uscc,
            on: date = on,
            reason: str = reason,
        ) -> None:
            directory.declare_conflict(
                s,
                principal=regulator,
                inspector_id=iid,
                data=ConflictCreate(uscc=uscc, declared_on=on, reason=reason),
                now=at,
            )

        out.append((on, -4, declare))
    counts["conflicts"] = len(declared)
    if declared and (today - declared[0][2]).days > 60:
        # The first one ends when the relative sells the shop.
        iid, uscc, on = declared[0]
        ends = on + timedelta(days=rng.randint(30, (today - on).days - 1))

        def withdraw(s: Session, at: datetime, iid: str = iid) -> None:
            (conflict,) = [c for c in directory.list_conflicts(s, inspector_id=iid) if c.active]
            directory.withdraw_conflict(
                s, principal=regulator, inspector_id=iid, conflict_id=conflict.id, now=at
            )

        out.append((ends, -3, withdraw))
    return out, counts


# --- the demo draw ------------------------------------------------------------------------


def _regulator(session: Session) -> Principal | None:
    acc = accounts.get_account_by_username(session, "regulator")
    if acc is None or acc.id is None or acc.role != "regulator":
        return None
    return Principal(account_id=acc.id, username=acc.username, role="regulator", merchant_uscc=None)


def run_demo_draw(ctx: AppContext, *, now: datetime | None = None) -> Draw | None:
    """Commit, reveal and partly complete the demo draw; ``None`` if there is nothing
    to do (no demo directory or regulator, or another draw exists).

    Raises :class:`LedgerUnavailable` / :class:`DomainError` (e.g. ``DrawNotDue`` on a
    network that cannot be told to mine) for the caller to retry later.
    """
    now = now or utcnow()
    today = today_shanghai(now)
    with ctx.db.read() as s:
        principal = _regulator(s)
        item_id = next(
            (i.id for i in directory.list_items(s).items if i.title == DRAW_ITEM), None
        )
        existing_draws = [
            (d.id, d.item_id)
            for d in sorted(
                reading.list_draws(s, limit=10, today=today).items, key=lambda d: d.number
            )
        ]
    if principal is None or item_id is None:
        return None
    if len(existing_draws) > 1 or (existing_draws and existing_draws[0][1] != item_id):
        return None
    if not existing_draws:
        written = draw_commit.create_draw(
            ctx,
            principal=principal,
            data=DrawCreate(
                item_id=item_id, planned_start=today, planned_end=today + timedelta(days=30)
            ),
            now=now,
        )
        draw_id = written.id
    else:
        draw_id = existing_draws[0][0]
    with ctx.db.read() as s:
        status = draw_base.load_draw(s, draw_id).status
    if status in ("committing", "committed"):
        draw_reveal.reveal_draw(ctx, principal=principal, ref=draw_id, now=now)
    with ctx.db.read() as s:
        row = draw_base.load_draw(s, draw_id)
        s.expunge(row)  # returned: readable after the session
        if row.status != "revealed":
            return row
        assignments = results.planned(s, draw_id)
        recorded = len(results.current_results(s, [draw_id])[draw_id])
        regions = {
            u: m.region_code for u, m in merchant_queries.merchants_by_uscc(s, assignments).items()
        }
    if recorded or not assignments:
        return row
    # The first checks are done: about half of the results are in.
    rng = random.Random(draw_id)
    done = assignments[: max(1, len(assignments) // 2)]
    lines = [
        json.dumps(
            {
                "kind": kinds.SPOT_CHECK.name,
                "uscc": uscc,
                "result": rng.choices(
                    [r for r, _ in DRAW_RESULT_WEIGHTS], [w for _, w in DRAW_RESULT_WEIGHTS]
                )[0],
                "checked_on": today.isoformat(),
                "authority": AUTHORITY[regions[uscc]],
                "draw_id": draw_id,
            },
            ensure_ascii=False,
        )
        for uscc in done
    ]
    with ctx.db.session() as s:
        bulk.record_bulk(
            s,
            principal=principal,
            content_type="application/x-ndjson",
            data="\n".join(lines).encode("utf-8"),
            now=now,
        )
    return row


class DemoDrawWorker(BackgroundThread):
    """Runs :func:`run_demo_draw` in the background after the first start, retrying
    while the ledger is unavailable or the reveal not yet due (up to ``patience_s``)."""

    thread_name = "demo-draw"

    def __init__(self, ctx: AppContext, *, patience_s: float = 600.0, retry_s: float = 5.0):
        super().__init__()
        self.ctx = ctx
        self.patience_s = patience_s
        self.retry_s = retry_s
        self.done = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        deadline = time.monotonic() + self.patience_s
        try:
            while not self.stopping:
                try:
                    row = run_demo_draw(self.ctx)
                    if row is not None:
                        log.info("demo draw no. %d is %s", row.number, row.status)
                    return
                except (LedgerUnavailable, draw_base.DrawNotDue) as exc:
                    self.error = str(exc)
                    if time.monotonic() > deadline:
                        log.warning("demo draw not completed: %s", exc)
                        return
                except DomainError as exc:
                    self.error = str(exc)
                    log.warning("demo draw not completed: %s", exc)
                    return
                self.pause(self.retry_s)
        except Exception as exc:  # a background nicety: never take the service down
            self.error = f"{type(exc).__name__}: {exc}"
            if not self.stopping:
                log.exception("demo draw failed")
        finally:
            self.done.set()
