"""Demo data: two years of a city regulator's honest-metering supervision.

Plans, for the demo merchants of :mod:`backend.demo.seed`, what the
Bazhong regulator would have recorded — spot checks (all seven published
result values, most of them 未发现问题), penalties (lower-amount and heavier;
performed, some later, a few repaired through credit repair), verified
complaints (from 12315 and from this service's own form, a few still pending),
abnormal-operations and serious-violation list entries and removals, and the
compulsory verification of fuel dispensers, scales, taximeters and lensmeters
(a few overdue) — and records it through the real services, so every outcome
is a record in the log, validated and rated like any other:

- outcomes go through the bulk ingest (:func:`backend.supervision.bulk.record_bulk`),
  one file per recording day (a later file when a row corrects an earlier one);
- complaints through :func:`submit_complaint` / :func:`review_complaint`, credit
  repairs through :func:`backend.credit.repair.apply_for_repair` / :func:`decide_repair`.

The credit policy, and with it the rating, starts on its first version's
``effective_from`` (the *go-live* day). What happened before is imported on
that day in one file, as a regulator taking the service into use would; from
then on outcomes are entered twice a month, on the 15th and on the month's
last day (their dates of legal effect never after the day they are recorded).
Only the planning is random, from its own seeded generator: the same seed and
day give the same history.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlmodel import Session

from backend.accounts.service import Principal
from backend.credit import repair
from backend.credit.models import RepairCreate, RepairDecisionCreate
from backend.pledges.queries import add_months
from backend.supervision import bulk, complaints, kinds
from backend.supervision.models import ComplaintCreate, ComplaintReviewCreate
from backend.timeutil import SHANGHAI

HISTORY_YEARS = 2

PASS = "未发现问题"
CORRECTED = "发现问题已责令改正"
NOT_PUBLISHED = "未按规定公示信息"
UNREACHABLE = "通过登记的住所(经营场所)无法联系"
OBSTRUCTED = "不配合检查情节严重"
NO_ACTIVITY = "未发现开展本次抽查涉及的经营活动"
PENDING = "发现问题待后续处理"
PROBLEMS = (CORRECTED, NOT_PUBLISHED, UNREACHABLE, OBSTRUCTED)

# How the merchant behaves: decides the odds of everything below.
RESULT_WEIGHTS: dict[str, tuple[tuple[str, int], ...]] = {
    "good": (
        (PASS, 900),
        (CORRECTED, 35),
        (NOT_PUBLISHED, 8),
        (UNREACHABLE, 2),
        (OBSTRUCTED, 1),
        (NO_ACTIVITY, 40),
        (PENDING, 14),
    ),
    "sloppy": (
        (PASS, 380),
        (CORRECTED, 350),
        (NOT_PUBLISHED, 80),
        (UNREACHABLE, 30),
        (OBSTRUCTED, 15),
        (NO_ACTIVITY, 35),
        (PENDING, 80),
    ),
    "bad": (
        (PASS, 300),
        (CORRECTED, 330),
        (NOT_PUBLISHED, 80),
        (UNREACHABLE, 70),
        (OBSTRUCTED, 60),
        (NO_ACTIVITY, 30),
        (PENDING, 130),
    ),
}
# Graded supervision: the riskier the shop, the more often it is checked.
RISK_CHECK_FACTOR = {"good": 1.0, "sloppy": 2.0, "bad": 2.5}
# Spot checks per merchant and year: fuel stations and markets are checked most.
SPOT_CHECKS_PER_YEAR = {
    "fuel": 3.5,
    "market": 2.5,
    "optical": 2.5,
    "prepackaged": 2.5,
    "taxi": 2.5,
    "ev_charging": 2.0,
    "utility": 2.0,
    "retail": 0.6,
    "catering": 0.5,
    "medical": 0.3,
    "other": 0.2,
}
# Follow-up checks of pledged shops (承诺践诺核查) where routine checks are rare.
PLEDGE_CHECKS_PER_YEAR = {"retail": 0.7, "catering": 0.7, "medical": 0.5, "other": 0.5}
COMPLAINTS_PER_YEAR = {"good": 0.02, "sloppy": 0.35, "bad": 0.6}
COMPLAINT_SECTOR_FACTOR = {
    "market": 1.6,
    "fuel": 1.3,
    "taxi": 1.3,
    "optical": 1.0,
    "catering": 1.0,
    "retail": 1.0,
    "ev_charging": 0.8,
    "utility": 0.8,
    "prepackaged": 0.5,
    "medical": 0.3,
    "other": 0.5,
}
# Compulsorily verified instruments: (type, verification cycle in months, how many).
INSTRUMENTS: dict[str, tuple[tuple[str, int, tuple[int, int]], ...]] = {
    "fuel": (("燃油加油机", 6, (2, 2)),),
    "market": (("电子计价秤", 12, (1, 1)),),
    "taxi": (("出租汽车计价器", 12, (1, 1)),),
    "optical": (("焦度计", 12, (1, 1)), ("电脑验光仪", 12, (1, 1))),
    "retail": (("电子计价秤", 12, (1, 1)),),
    "catering": (("电子计价秤", 12, (1, 1)),),
}
INSTRUMENT_SHARE = {"retail": 0.2, "catering": 0.15}
SERIAL_PREFIX = {
    "燃油加油机": "JYJ",
    "电子计价秤": "ACS",
    "出租汽车计价器": "JJQ",
    "焦度计": "JDJ",
    "电脑验光仪": "YGY",
}
LAPSE = {"good": 0.01, "sloppy": 0.3, "bad": 0.4}

AUTHORITY = {
    "511900": "巴中市市场监督管理局",
    "511902": "巴中市巴州区市场监督管理局",
    "511903": "巴中市恩阳区市场监督管理局",
    "511921": "通江县市场监督管理局",
    "511922": "南江县市场监督管理局",
    "511923": "平昌县市场监督管理局",
}
CITY = "511900"
DECISION_PREFIX = {
    "511900": "巴市监罚",
    "511902": "巴州市监罚",
    "511903": "恩阳市监罚",
    "511921": "通市监罚",
    "511922": "南江市监罚",
    "511923": "平昌市监罚",
}
# (the complainant's private text, the regulator's public summary) by sector.
COMPLAINTS: dict[str, tuple[tuple[str, str], ...]] = {
    "market": (
        (
            "在该摊位买了两斤猪肉，回家用自家的秤一称只有一斤七两。",
            "经核实，该经营户使用的电子秤计量不准确，短秤属实，已责令改正并退还差价。",
        ),
        (
            "买的活鱼称重明显偏重，用市场公平秤复称少了三两多。",
            "经核实，称重时未去除盛水容器重量，短秤属实，已责令改正。",
        ),
    ),
    "fuel": (
        (
            "加油机显示加了45升，可油箱标称容量只有50升，加之前还剩不少油，怀疑少加。",
            "经现场用标准金属量器检测，该加油机示值误差超出最大允许误差，投诉属实，已责令停用并重新检定。",
        ),
    ),
    "taxi": (
        (
            "同样的路程平时二十元左右，这次计价器显示三十多元，怀疑跳表过快。",
            "经核实，该车计价器未按期检定，计费偏差属实，已责令停止使用并重新检定。",
        ),
    ),
    "optical": (
        (
            "在这家店配的眼镜戴着头晕，到医院复查度数与验光单不符。",
            "经核实，该店焦度计超期未检定，所配眼镜顶焦度偏差超出国家标准，投诉属实，已责令免费重新配制。",
        ),
    ),
    "catering": (
        (
            "点的按斤计价的鱼，称重结果比实际明显偏多，多收了钱。",
            "经核实，称重计价使用的电子秤未经检定且称量偏多，投诉属实，已责令改正并退还多收款项。",
        ),
    ),
    "retail": (
        (
            "超市散装食品称重时连盒子一起称，没有去皮。",
            "经核实，存在称重未去皮的问题，投诉属实，已责令改正。",
        ),
        (
            "买的散装大米标签重量和实际重量差了不少。",
            "经核实，商品量短缺超出允许误差，投诉属实，已责令改正。",
        ),
    ),
    "ev_charging": (
        (
            "充电桩显示的充电电量比车上显示的多了一成多。",
            "经核实，该充电桩电能示值误差超差，投诉属实，已责令停用整改并重新检定。",
        ),
    ),
}
DEFAULT_COMPLAINT = (
    "商品实际分量与标示不符，怀疑缺斤少两。",
    "经核实，商品量短缺属实，已责令改正。",
)
REJECTED_SUMMARY = "经现场核查，该经营者计量器具检定合格、称重无误，投诉反映的问题不属实。"
PENDING_COMPLAINTS = (
    "今天买的水果回家复称少了二两，希望核查一下这家的秤。",
    "加油站加油时发现加油机计数器跳得很快，请帮忙检查。",
    "店里的电子秤没有检定合格标志，不知道准不准。",
    "买的熟食称重时没有去掉包装盒的重量。",
    "出租车计价器好像被改过，同一段路比平常贵。",
)
PERFORMED_REASON = "当事人已履行行政处罚决定，更新履行状态"
FINAL_RESULT_REASON = "后续处理完毕，更新抽查结果"
REPAIR_STATEMENT = (
    "已按期足额缴纳罚款，违法行为已整改到位，涉事计量器具已全部送检并检定合格；"
    "承诺今后守法经营、诚信计量。"
)
REPAIR_APPROVED = "经审核，当事人已履行行政处罚决定并消除不良影响，符合信用修复条件，同意修复。"


@dataclass(frozen=True)
class DemoMerchant:
    """What the merchant seeder knows about one merchant's story."""

    uscc: str
    sector: str
    region_code: str
    registered: date
    verified_on: date | None
    account_id: int
    pledged: tuple[tuple[date, date], ...]
    story: str | None = None


@dataclass
class _Row:
    handle: int
    data: dict[str, Any]
    effective: date
    recorded_on: date
    supersedes: int | None = None  # handle of the row it corrects
    wave: int = 0


@dataclass
class HistorySummary:
    outcomes: Counter[str] = field(default_factory=Counter)
    """Records by kind, corrections included."""
    corrections: Counter[str] = field(default_factory=Counter)
    spot_check_results: Counter[str] = field(default_factory=Counter)
    complaints_pending: int = 0
    complaints_rejected: int = 0
    repairs_approved: int = 0
    repairs_pending: int = 0


Action = Callable[[Session, datetime], None]


def go_live_day(first_effective: date, today: date) -> date | None:
    """The day the rating starts: the first policy's effective day, or the start of the
    demo history if that is later; ``None`` if no policy is in force yet."""
    start = today - timedelta(days=365 * HISTORY_YEARS)
    day = max(first_effective, start)
    return day if day <= today else None


def _poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _pick(rng: random.Random, weighted: Iterable[tuple[str, int]]) -> str:
    items = list(weighted)
    return rng.choices([v for v, _ in items], weights=[w for _, w in items])[0]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class SupervisionHistory:
    """Plans the history (:meth:`plan`), then yields it as dated service calls
    (:meth:`actions`) for the seeder to run in date order."""

    def __init__(
        self,
        merchants: list[DemoMerchant],
        *,
        seed: int,
        today: date,
        go_live: date,
        regulator: Principal,
    ) -> None:
        self.merchants = merchants
        self.rng = random.Random(seed)
        self.today = today
        self.go_live = go_live
        self.start = today - timedelta(days=365 * HISTORY_YEARS)
        self.regulator = regulator
        self.rows: list[_Row] = []
        self.calls: list[tuple[date, int, Action]] = []
        self.record_ids: dict[int, str] = {}
        self.summary = HistorySummary()
        self._decision_no: Counter[tuple[str, int]] = Counter()
        self._certificate_no: Counter[int] = Counter()
        self._complaint_no: Counter[int] = Counter()
        # Per merchant: penalties (decided_on, handle, heavier), listings (kind, in, out).
        self._penalties: dict[str, list[tuple[date, int, bool]]] = defaultdict(list)
        self._listings: dict[str, list[tuple[str, date, date | None]]] = defaultdict(list)
        self._performed: dict[int, tuple[int, date]] = {}  # penalty -> (newest handle, day)
        self._registered = {m.uscc: m.registered for m in merchants}

    # --- dates -------------------------------------------------------------------------

    def record_day(self, effective: date) -> date:
        """When an outcome of that date is recorded: imported on go-live day if earlier,
        else in the next twice-monthly entry (the 15th, the month's last day; a weekend
        moves it to the Monday), today at the latest."""
        if effective < self.go_live:
            return self.go_live
        if effective.day <= 15:
            due = effective.replace(day=15)
        else:
            due = add_months(effective.replace(day=1), 1) - timedelta(days=1)
        if due.weekday() >= 5:
            due += timedelta(days=7 - due.weekday())
        return min(due, self.today)

    def _between(self, a: date, b: date) -> date:
        return a + timedelta(days=self.rng.randint(0, max(0, (b - a).days)))

    def _workday(self, d: date, lo: date) -> date:
        """A weekday near ``d`` within [lo, today] (inspections happen on working days)."""
        if d.weekday() < 5:
            return d
        back = d - timedelta(days=d.weekday() - 4)
        if back >= lo:
            return back
        ahead = d + timedelta(days=7 - d.weekday())
        return ahead if ahead <= self.today else d

    def _window(self, m: DemoMerchant) -> date:
        """The first day of the merchant's outcomes. A shop is older than its entry in
        this registry: for merchants registered before go-live, the import brings the
        year before registration too; later registrants start with their registration."""
        if m.registered < self.go_live:
            return max(self.start, m.registered - timedelta(days=365))
        return m.registered + timedelta(days=5)

    # --- rows ----------------------------------------------------------------------------

    def _row(
        self,
        data: dict[str, Any],
        effective: date,
        *,
        supersedes: int | None = None,
        not_before: date | None = None,
    ) -> int:
        assert self.start - timedelta(days=400) <= effective <= self.today, (data, effective)
        # Never before the merchant is registered (an instrument's certificate may be older).
        recorded = max(self.record_day(effective), self._registered[data["uscc"]])
        if not_before is not None:
            recorded = max(recorded, not_before)
        assert recorded <= self.today
        handle = len(self.rows)
        self.rows.append(_Row(handle, data, effective, recorded, supersedes))
        return handle

    def _correct(self, handle: int, changes: dict[str, Any], on: date, reason: str) -> int:
        target = self.rows[handle]
        data = {**target.data, **changes, "correction_reason": reason}
        return self._row(data, on, supersedes=handle, not_before=target.recorded_on)

    # --- planning ---------------------------------------------------------------------------

    def plan(self) -> SupervisionHistory:
        for m in self.merchants:
            risk = self._risk(m)
            if m.story is not None:
                self._showcase(m)
                continue
            if self._window(m) > self.today:
                continue  # registered in the last days: nothing has happened yet
            closed = self._closed_on(m)
            self._spot_checks(m, risk, closed)
            self._complaints(m, risk, closed)
            if closed is None:
                self._instruments(m, risk)
            else:
                self._closed(m, closed)
            self._annual_reports(m, risk)
            heavier = {"bad": 0.4, "sloppy": 0.01, "good": 0.004}[risk]
            if self.rng.random() < heavier:
                self._penalty(m, self._between(self._window(m), self.today), heavier=True)
        self._serious_list()
        self._repairs()
        self._pending_complaints()
        return self

    def _risk(self, m: DemoMerchant) -> str:
        if m.story == "unverified":
            return "sloppy"
        if m.story is not None:
            return "good"
        unpledged = not m.pledged or m.pledged[-1][1] <= self.today
        r = self.rng.random()
        bad = 0.015 + (0.015 if unpledged else 0.0)
        sloppy = 0.3 + (0.45 if unpledged else 0.0)
        return "bad" if r < bad else "sloppy" if r < bad + sloppy else "good"

    def _authority(self, m: DemoMerchant) -> str:
        if m.sector in ("fuel", "taxi") and self.rng.random() < 0.3:
            return AUTHORITY[CITY]
        return AUTHORITY[m.region_code]

    def _spot_check(self, m: DemoMerchant, on: date, result: str) -> int:
        self.summary.spot_check_results[result] += 1
        return self._row(
            {
                "kind": kinds.SPOT_CHECK.name,
                "uscc": m.uscc,
                "result": result,
                "checked_on": on.isoformat(),
                "authority": self._authority(m),
            },
            on,
        )

    def _spot_checks(self, m: DemoMerchant, risk: str, closed: date | None) -> None:
        lo = self._window(m)
        years = (self.today - lo).days / 365
        lam = SPOT_CHECKS_PER_YEAR[m.sector] * years * RISK_CHECK_FACTOR[risk]
        days = [self._between(lo, self.today) for _ in range(_poisson(self.rng, lam))]
        if closed is not None:
            # Word gets round that the shop is gone: someone goes and looks.
            looked = closed + timedelta(days=self.rng.randint(20, 200))
            if looked <= self.today:
                days.append(looked)
        for a, b in m.pledged:
            a, b = max(a, lo), min(b - timedelta(days=1), self.today)
            if a <= b and m.sector in PLEDGE_CHECKS_PER_YEAR:
                n = _poisson(self.rng, PLEDGE_CHECKS_PER_YEAR[m.sector] * (b - a).days / 365)
                days.extend(self._between(a, b) for _ in range(n))
        # A shop caught out mends its ways for a while: the year after a problem was
        # found, its checks go as a good shop's do.
        wary_until = date.min
        for on in sorted(self._workday(d, lo) for d in days):
            result = _pick(self.rng, RESULT_WEIGHTS["good" if on < wary_until else risk])
            if closed is not None and on >= closed:
                result = UNREACHABLE  # the shop had closed: nobody at the address
            if result in PROBLEMS or result == PENDING:
                wary_until = on + timedelta(days=365)
            handle = self._spot_check(m, on, result)
            if result == PENDING and on <= self.today - timedelta(days=40):
                final = CORRECTED if self.rng.random() < 0.75 else PASS
                later = on + timedelta(days=self.rng.randint(14, 35))
                self._correct(handle, {"result": final}, later, FINAL_RESULT_REASON)
                result = final
            if result in PROBLEMS or result == PENDING:
                odds = {"good": 0.04, "sloppy": 0.22, "bad": 0.35}[risk]
                if result == OBSTRUCTED:
                    odds = 0.6
                if self.rng.random() < odds:
                    decided = on + timedelta(days=self.rng.randint(10, 45))
                    if decided <= self.today:
                        self._penalty(m, decided, heavier=False)
            if result == UNREACHABLE and self.rng.random() < 0.05:
                listed = on + timedelta(days=self.rng.randint(5, 20))
                if listed <= self.today:
                    self._abnormal(m, "unreachable_at_address", listed, cure_odds=0.35)

    def _penalty(self, m: DemoMerchant, decided: date, *, heavier: bool) -> None:
        rng = self.rng
        region = m.region_code
        self._decision_no[(region, decided.year)] += 1
        decision_no = (
            f"{DECISION_PREFIX[region]}〔{decided.year}〕"
            f"{self._decision_no[(region, decided.year)] * 3 + rng.randint(0, 2)}号"
        )
        person = m.uscc[1] == "2"
        criticism = not heavier and rng.random() < 0.1
        if criticism:
            amount = 0
        elif heavier:
            amount = rng.randint(10, 30) * 1000 if person else rng.randint(100, 220) * 1000
        else:
            amount = rng.randint(5, 80) * 100 if person else rng.randint(4, 60) * 500
        recent = decided > self.today - timedelta(days=30)
        performed_now = not heavier and not recent and rng.random() < 0.65
        handle = self._row(
            {
                "kind": kinds.PENALTY.name,
                "uscc": m.uscc,
                "decision_no": decision_no,
                "decided_on": decided.isoformat(),
                "authority": AUTHORITY[region],
                "amount_fen": amount * 100,
                "circulated_criticism": criticism,
                "special_sector": m.sector in ("prepackaged", "medical"),
                "performed": performed_now,
                "evidence_sha256": _digest(f"demo penalty decision {decision_no}"),
            },
            decided,
        )
        self._penalties[m.uscc].append((decided, handle, heavier))
        newest = handle
        if performed_now:
            self._performed[handle] = (handle, self.rows[handle].recorded_on)
        elif rng.random() < (0.8 if heavier else 0.75):
            paid = decided + timedelta(days=rng.randint(15, 60))
            if paid <= self.today:
                newest = self._correct(handle, {"performed": True}, paid, PERFORMED_REASON)
                self._performed[handle] = (newest, self.rows[newest].recorded_on)

    def _abnormal(self, m: DemoMerchant, reason: str, on: date, *, cure_odds: float) -> None:
        if not self._abnormal_free_from(m, on):
            return
        self._row(
            {
                "kind": kinds.ABNORMAL_LIST.name,
                "uscc": m.uscc,
                "action": "in",
                "on": on.isoformat(),
                "reason": reason,
            },
            on,
        )
        out: date | None = None
        if self.rng.random() < cure_odds:
            cured = on + timedelta(days=self.rng.randint(30, 240))
            if cured <= self.today:
                out = cured
                # Without ``closes`` an ``out`` ends every open listing; the plan keeps at
                # most one open at a time, so it ends exactly this one.
                self._row(
                    {
                        "kind": kinds.ABNORMAL_LIST.name,
                        "uscc": m.uscc,
                        "action": "out",
                        "on": cured.isoformat(),
                    },
                    cured,
                )
        self._listings[m.uscc].append((f"abnormal:{reason}", on, out))

    def _abnormal_free_from(self, m: DemoMerchant, on: date) -> bool:
        """Whether every abnormal listing planned so far ended before ``on``: listings
        never overlap, so an ``out`` (which ends every open listing) ends just one."""
        return all(
            b is not None and b <= on
            for k, _, b in self._listings[m.uscc]
            if k.startswith("abnormal:")
        )

    def _open_abnormal(self, m: DemoMerchant, on: date) -> bool:
        return any(
            k.startswith("abnormal:") and a <= on and (b is None or on < b)
            for k, a, b in self._listings[m.uscc]
        )

    def _annual_reports(self, m: DemoMerchant, risk: str) -> None:
        """Annual reports are due by 30 June; those not filed are listed in July."""
        odds = {"good": 0.0, "sloppy": 0.004, "bad": 0.05}[risk]
        for year in range(self.start.year, self.today.year + 1):
            on = date(year, 7, 10) + timedelta(days=self.rng.randint(0, 20))
            if not (self._window(m) + timedelta(days=180) <= on <= self.today):
                continue
            if self.rng.random() < odds:
                self._abnormal(m, "annual_report_not_filed", on, cure_odds=0.6)

    def _closed_on(self, m: DemoMerchant) -> date | None:
        """Some shops that let their pledge lapse had in fact stopped trading then."""
        if not m.pledged:
            return None
        ended = m.pledged[-1][1]
        if ended > self.today - timedelta(days=30) or self.rng.random() >= 0.4:
            return None
        return ended

    def _closed(self, m: DemoMerchant, closed: date) -> None:
        """A closed shop files no annual report: a few are listed in July, and rarely
        taken off again."""
        year = closed.year if closed < date(closed.year, 6, 1) else closed.year + 1
        on = date(year, 7, 10) + timedelta(days=self.rng.randint(0, 20))
        if on <= self.today and self.rng.random() < 0.05:
            self._abnormal(m, "annual_report_not_filed", on, cure_odds=0.15)

    def _complaints(self, m: DemoMerchant, risk: str, closed: date | None) -> None:
        lo, hi = self._window(m), min(self.today, closed or self.today)
        if hi < lo:
            return
        years = (hi - lo).days / 365
        lam = COMPLAINTS_PER_YEAR[risk] * COMPLAINT_SECTOR_FACTOR[m.sector] * years
        for _ in range(_poisson(self.rng, lam)):
            self._complaint(m, self._between(lo, hi))

    def _complaint(self, m: DemoMerchant, verified: date) -> None:
        rng = self.rng
        content, summary = rng.choice(COMPLAINTS.get(m.sector, (DEFAULT_COMPLAINT,)))
        submitted = verified - timedelta(days=rng.randint(3, 15))
        if submitted >= self.go_live and submitted >= m.registered and rng.random() < 0.15:
            self._platform_complaint(m, submitted, verified, content, summary, verify=True)
            return
        self._complaint_no[verified.year] += 1
        self._row(
            {
                "kind": kinds.COMPLAINT_VERIFIED.name,
                "uscc": m.uscc,
                "complaint_id": f"12315-{verified.year}-{self._complaint_no[verified.year]:06d}",
                "verified_on": verified.isoformat(),
                "summary": summary,
            },
            verified,
        )
        if rng.random() < 0.08 and submitted >= self.go_live:
            # Not every complaint holds up: one that did not, through the form.
            later = min(self.today, verified + timedelta(days=rng.randint(20, 90)))
            self._platform_complaint(
                m,
                later,
                min(self.today, later + timedelta(days=5)),
                content,
                REJECTED_SUMMARY,
                verify=False,
            )

    def _platform_complaint(
        self,
        m: DemoMerchant,
        submitted: date,
        decided: date,
        content: str,
        summary: str,
        *,
        verify: bool,
    ) -> None:
        rng = self.rng
        contact = f"1380000{rng.randint(0, 9999):04d}" if rng.random() < 0.6 else None
        address = f"203.0.113.{rng.randint(1, 254)}"
        hour, minute = rng.randint(8, 21), rng.randint(0, 59)
        state: dict[str, str] = {}

        def submit(s: Session, at: datetime) -> None:
            when = datetime.combine(submitted, time(hour, minute), SHANGHAI).astimezone(UTC)
            received = complaints.submit_complaint(
                s,
                principal=None,
                data=ComplaintCreate(uscc=m.uscc, content=content, contact=contact),
                address=address,
                now=min(when, at),
            )
            state["id"] = received.complaint_id

        def review(s: Session, at: datetime) -> None:
            complaints.review_complaint(
                s,
                principal=self.regulator,
                complaint_id=state["id"],
                data=ComplaintReviewCreate(
                    outcome="verified" if verify else "rejected",
                    summary=summary,
                    decided_on=decided,
                ),
                now=at,
            )

        self.calls.append((submitted, 50, submit))
        self.calls.append((decided, 60, review))
        if verify:
            self.summary.outcomes[kinds.COMPLAINT_VERIFIED.name] += 1
        else:
            self.summary.complaints_rejected += 1

    def _pending_complaints(self) -> None:
        """A few anonymous complaints from the last days, not yet looked at."""
        pool = [
            m
            for m in self.merchants
            if m.sector in ("market", "fuel", "retail", "catering", "taxi")
        ]
        if not pool:
            return
        for content in PENDING_COMPLAINTS:
            m = self.rng.choice(pool)
            submitted = self.today - timedelta(days=self.rng.randint(0, 10))
            if submitted < m.registered:
                continue
            hour, minute = self.rng.randint(7, 22), self.rng.randint(0, 59)
            address = f"198.51.100.{self.rng.randint(1, 254)}"

            def submit(
                s: Session,
                at: datetime,
                m: DemoMerchant = m,
                content: str = content,
                day: date = submitted,
                hour: int = hour,
                minute: int = minute,
                address: str = address,
            ) -> None:
                when = datetime.combine(day, time(hour, minute), SHANGHAI).astimezone(UTC)
                complaints.submit_complaint(
                    s,
                    principal=None,
                    data=ComplaintCreate(uscc=m.uscc, content=content),
                    address=address,
                    now=min(when, at),
                )

            self.calls.append((submitted, 50, submit))
            self.summary.complaints_pending += 1

    def _instruments(self, m: DemoMerchant, risk: str) -> None:
        kinds = INSTRUMENTS.get(m.sector)
        if not kinds:
            return
        if m.sector in INSTRUMENT_SHARE and self.rng.random() >= INSTRUMENT_SHARE[m.sector]:
            return
        for kind, cycle, (lo, hi) in kinds:
            for _ in range(self.rng.randint(lo, hi)):
                self._instrument(m, kind, cycle, lapse=self.rng.random() < LAPSE[risk])

    def _instrument(self, m: DemoMerchant, kind: str, cycle: int, *, lapse: bool) -> None:
        rng = self.rng
        made = rng.randint(2015, self.today.year - 1)
        serial = f"{SERIAL_PREFIX[kind]}{made}-{rng.randint(0, 99999):05d}"
        # Instruments are on record from go-live (the certificates then in force were
        # imported) or from the merchant's registration, if later.
        anchor = max(self.go_live, m.registered)
        first = max(self.start, anchor - timedelta(days=rng.randint(0, cycle * 30 - 1)))
        series: list[tuple[date, date]] = []
        on = first
        while on <= self.today:
            until = add_months(on, cycle) - timedelta(days=1)
            series.append((on, until))
            on = until + timedelta(days=1) - timedelta(days=rng.randint(1, 20))
        if lapse:
            expired = [i for i, (_, until) in enumerate(series) if until < self.today]
            if expired:
                series = series[
                    : expired[-1] + 1 - (1 if len(expired) > 1 and rng.random() < 0.3 else 0)
                ]
        for verified, until in series:
            self._certificate_no[verified.year] += 1
            self._row(
                {
                    "kind": kinds.INSTRUMENT.name,
                    "uscc": m.uscc,
                    "instrument_type": kind,
                    "serial": serial,
                    "certificate_no": f"巴计检字〔{verified.year}〕第"
                    f"{self._certificate_no[verified.year]:05d}号",
                    "verified_on": verified.isoformat(),
                    "valid_until": until.isoformat(),
                },
                verified,
            )

    def _showcase(self, m: DemoMerchant) -> None:
        """The three merchants of the README, with fixed stories."""
        t = self.today
        lo = self._window(m)

        def day(days_ago: int) -> date:
            return self._workday(max(lo, t - timedelta(days=days_ago)), lo)

        if m.story == "demonstration":  # tier A: pledge, award, three clean checks
            for ago in (600, 330, 75):
                self._spot_check(m, day(ago), PASS)
            for _ in range(2):
                self._instrument(m, "电子计价秤", 12, lapse=False)
        elif m.story == "unverified":  # tier C: a problem found, a complaint, an old fine
            self._spot_check(m, day(420), PASS)
            self._penalty(m, day(400), heavier=False)
            self._spot_check(m, day(150), CORRECTED)
            self._complaint(m, day(95))
            self._instrument(m, "电子计价秤", 12, lapse=False)
        else:  # tier B: net content checked twice
            for ago in (380, 120):
                self._spot_check(m, day(ago), PASS)

    def _serious_list(self) -> None:
        """One or two merchants with a heavier penalty go on the serious-violation list;
        one that has been on it for over a year is taken off early."""
        heavy = [
            (decided, uscc)
            for uscc, items in self._penalties.items()
            for decided, _, heavier in items
            if heavier and decided <= self.today - timedelta(days=60)
        ]
        heavy.sort()
        chosen = [heavy[0], heavy[-1]] if len(heavy) >= 2 else heavy[:1]
        for i, (decided, uscc) in enumerate(chosen):
            on = decided + timedelta(days=self.rng.randint(15, 40))
            if on > self.today:
                continue
            self._row(
                {
                    "kind": kinds.SERIOUS_LIST.name,
                    "uscc": uscc,
                    "action": "in",
                    "on": on.isoformat(),
                    "reason": "因计量违法行为受到较重行政处罚，列入严重违法失信名单",
                },
                on,
            )
            out: date | None = None
            early = on + timedelta(days=366 + self.rng.randint(0, 30))
            if i == 0 and early <= self.today:
                out = early
                self._row(
                    {
                        "kind": kinds.SERIOUS_LIST.name,
                        "uscc": uscc,
                        "action": "out",
                        "on": early.isoformat(),
                        "reason": "列入满一年，已履行行政处罚且未再受到较重行政处罚，提前移出",
                    },
                    early,
                )
            self._listings[uscc].append(("serious", on, out))

    def _repairs(self) -> None:
        """A couple of heavier penalties repaired through credit repair, one still pending."""
        by_uscc = {m.uscc: m for m in self.merchants}
        approved = pending = 0
        for uscc, items in sorted(self._penalties.items()):
            m = by_uscc[uscc]
            for decided, handle, heavier in items:
                if not heavier or handle not in self._performed:
                    continue
                if any(d > decided for d, _, _ in items):
                    continue  # a later penalty: not eligible
                newest, performed_day = self._performed[handle]
                months = 12 if m.sector in ("prepackaged", "medical") else 6
                apply_on = max(
                    add_months(decided, months), performed_day + timedelta(days=3), self.go_live
                )
                apply_on += timedelta(days=self.rng.randint(0, 40))
                if apply_on > self.today - timedelta(days=3):
                    continue
                if self._open_abnormal(m, apply_on) or any(
                    k == "serious" and (b is None or apply_on < b)
                    for k, _, b in self._listings[uscc]
                ):
                    continue
                if approved < 3:
                    decide_on = min(self.today, apply_on + timedelta(days=self.rng.randint(5, 15)))
                    self._repair(m, newest, apply_on, decide_on)
                    approved += 1
                elif pending < 1:
                    self._repair(m, newest, apply_on, None)
                    pending += 1

    def _repair(
        self, m: DemoMerchant, penalty: int, apply_on: date, decide_on: date | None
    ) -> None:
        merchant = Principal(
            account_id=m.account_id, username=m.uscc, role="merchant", merchant_uscc=m.uscc
        )
        state: dict[str, str] = {}

        def apply(s: Session, at: datetime) -> None:
            written = repair.apply_for_repair(
                s,
                principal=merchant,
                data=RepairCreate(
                    penalty_record_id=self.record_ids[penalty], statement=REPAIR_STATEMENT
                ),
                now=at,
            )
            state["id"] = written.repair_id

        def decide(s: Session, at: datetime) -> None:
            repair.decide_repair(
                s,
                principal=self.regulator,
                repair_id=state["id"],
                data=RepairDecisionCreate(decision="approved", reason=REPAIR_APPROVED),
                now=at,
            )

        self.calls.append((apply_on, 70, apply))
        if decide_on is not None:
            self.calls.append((decide_on, 80, decide))
            self.summary.repairs_approved += 1
        else:
            self.summary.repairs_pending += 1

    # --- recording ------------------------------------------------------------------------

    def actions(self) -> list[tuple[date, int, Action]]:
        """(day, order within the day, call): the bulk files first, in waves, then the
        single calls (complaints, repairs)."""
        by_day: dict[date, list[_Row]] = defaultdict(list)
        for row in self.rows:
            if row.supersedes is not None:
                target = self.rows[row.supersedes]
                assert target.recorded_on <= row.recorded_on
                if target.recorded_on == row.recorded_on:
                    row.wave = target.wave + 1
            by_day[row.recorded_on].append(row)
            self.summary.outcomes[row.data["kind"]] += 1
            if row.supersedes is not None:
                self.summary.corrections[row.data["kind"]] += 1
        out: list[tuple[date, int, Action]] = []
        for day, rows in by_day.items():
            waves: dict[int, list[_Row]] = defaultdict(list)
            for row in sorted(rows, key=lambda r: (r.effective, r.handle)):
                waves[row.wave].append(row)
            for wave, batch in sorted(waves.items()):
                out.append((day, wave, self._bulk(batch)))
        out.extend(self.calls)
        return out

    def _bulk(self, batch: list[_Row]) -> Action:
        def run(s: Session, at: datetime) -> None:
            lines = []
            for row in batch:
                data = dict(row.data)
                if row.supersedes is not None:
                    data["supersedes"] = self.record_ids[row.supersedes]
                lines.append(json.dumps(data, ensure_ascii=False))
            written = bulk.record_bulk(
                s,
                principal=self.regulator,
                content_type="application/x-ndjson",
                data="\n".join(lines).encode("utf-8"),
                now=at,
            )
            for row, rec in zip(batch, written.records, strict=True):
                self.record_ids[row.handle] = rec.record_id

        return run


__all__ = ["DemoMerchant", "HistorySummary", "SupervisionHistory", "go_live_day"]
