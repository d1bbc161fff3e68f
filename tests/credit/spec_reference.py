"""A second implementation of the rating, written from ``docs/credit-rating.md`` alone.

It imports nothing from ``backend``: records are plain envelopes and the policy a plain
JSON document. ``tests/credit/test_rating_spec.py`` runs it against the reference
implementation on random histories; where they differ, the specification is wrong
or incomplete. Simple over fast: it follows the text section by section.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta, timezone
from typing import Any

Rec = dict[str, Any]
TIERS = "ABCD"
EFFECTIVE = {  # §4.1
    "pledge.made": "valid_from",
    "pledge.withdrawn": "withdrawn_on",
    "supervision.spot_check": "checked_on",
    "supervision.penalty": "decided_on",
    "supervision.complaint_verified": "verified_on",
    "supervision.abnormal_list": "on",
    "supervision.serious_list": "on",
    "supervision.instrument": "verified_on",
    "supervision.demonstration": "on",
    "supervision.revocation": None,
    "credit.repair_applied": "applied_on",
    "credit.repair_decided": "decided_on",
}
RANK = {  # §7
    "pledge": 0, "demonstration": 1, "spot_check_pass": 2, "spot_check_problem": 3,
    "penalty_lower": 4, "penalty_other": 4, "complaint": 5, "instrument_overdue": 6,
    "abnormal_list": 7, "serious_list": 8,
}


def add_months(d: date, n: int) -> date:  # §1
    y, m = divmod(d.year * 12 + d.month - 1 + n, 12)
    return date(y, m + 1, min(d.day, calendar.monthrange(y, m + 1)[1]))


def eff(r: Rec) -> date:
    field = EFFECTIVE[r["type"]]
    if field is None:
        at = datetime.fromisoformat(r["at"].replace("Z", "+00:00"))
        return (at.astimezone(timezone(timedelta(hours=8)))).date()
    return date.fromisoformat(r["body"][field])


def key(r: Rec) -> tuple[date, str, str]:
    return (eff(r), r["at"], r["record_id"])


def D(d: date) -> str:  # noqa: N802 (the names of §9)
    return f"{d.year}年{d.month}月{d.day}日"


def M(n: int) -> str:  # noqa: N802
    return f"{n // 12}年" if n % 12 == 0 else f"{n}个月"


def P(p: int) -> str:  # noqa: N802
    return f"加{p}分" if p > 0 else f"扣{-p}分" if p < 0 else "不计分"


def CAP(p: int, rule: dict[str, int], what: str) -> str:  # noqa: N802
    if p == rule["points"]:
        return P(p)
    if p == 0:
        return f"{what}已达{abs(rule['cap'])}分上限，本次不再计分"
    return f"{what}已达{abs(rule['cap'])}分上限，本次{P(p)}"


class View:
    """§4.2–4.3 over the records read."""

    def __init__(self, read: list[Rec]) -> None:
        self.by_id = {r["record_id"]: r for r in read}
        self.parent: dict[str, str] = {}
        self.superseded: set[str] = set()
        linked = False
        for r in read:
            for ref in r["refs"]:
                x = self.by_id.get(ref["record"])
                if ref["rel"] in ("supersedes", "renews") and x is not None \
                        and x["type"] == r["type"] and x is not r:
                    self.superseded.add(x["record_id"])
                    self.union(r["record_id"], x["record_id"])
                    linked = True
        self.void = {
            self.find(ref["record"])
            for r in read
            if r["type"] in ("supervision.revocation", "pledge.withdrawn")
            for ref in r["refs"]
            if ref["rel"] == "revokes" and ref["record"] in self.by_id
        }
        alive = [r for r in read if not self.dead(r["record_id"])]
        if linked:
            best: dict[str, Rec] = {}
            for r in alive:
                c = self.find(r["record_id"])
                b = best.get(c)
                if b is None or (r["at"], r["record_id"]) > (b["at"], b["record_id"]):
                    best[c] = r
            alive = list(best.values())
        self.current = alive

    def find(self, x: str) -> str:
        while x in self.parent:
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def dead(self, rid: str) -> bool:
        return rid in self.superseded or self.find(rid) in self.void


def open_openers(records: list[Rec], opening: str, closing: str) -> list[Rec]:  # §4.4
    openers = [r for r in records if r["body"]["action"] == opening]
    closers = [r for r in records if r["body"]["action"] == closing]
    assert len(openers) + len(closers) == len(records), "action"
    ids = {o["record_id"] for o in openers}
    closed: set[str] = set()
    for c in closers:
        named = [ref["record"] for ref in c["refs"] if ref["record"] in ids]
        if named:
            closed.update(named)
        else:
            closed.update(o["record_id"] for o in openers if key(o) <= key(c))
    return [o for o in openers if o["record_id"] not in closed]


def allocate(points: int, cap: int, n: int) -> list[int]:  # §5 capped allocation
    out, remaining = [], cap
    for _ in range(n):
        p = min(points, remaining) if points >= 0 else max(points, remaining)
        remaining -= p
        out.append(p)
    return out


def rate(records: list[Rec], policy: dict[str, Any], as_of: date) -> dict[str, Any]:
    read = {r["record_id"]: r for r in records if r["type"] in EFFECTIVE and eff(r) <= as_of}
    view = View(list(read.values()))
    cur: dict[str, list[Rec]] = {}
    for r in view.current:
        cur.setdefault(r["type"], []).append(r)
    factors: list[tuple[tuple[date, int, str], dict[str, Any]]] = []

    def factor(r: Rec, kind: str, points: int, reason: str, until: date | None,
               start: date) -> None:
        factors.append(((start, RANK[kind], r["record_id"]),
                        {"record_id": r["record_id"], "kind": kind, "points": points,
                         "reason_zh": reason, "applies_until": until}))

    # §5.1
    pledges = [r for r in cur.get("pledge.made", [])
               if as_of < date.fromisoformat(r["body"]["valid_until"])]
    if pledges:
        r = max(pledges, key=lambda x: (x["body"]["valid_until"], x["record_id"]))
        u = date.fromisoformat(r["body"]["valid_until"])
        p = policy["pledge"]["points"]
        factor(r, "pledge", p, f"{D(eff(r))}起诚信计量自我承诺有效，{P(p)}（{D(u)}起不再计入）",
               u, eff(r))
    # §5.2
    awards = [r for r in open_openers(cur.get("supervision.demonstration", []), "award",
                                      "withdraw")
              if as_of < date.fromisoformat(r["body"]["valid_until"])]
    if awards:
        r = max(awards, key=lambda x: (x["body"]["valid_until"], x["record_id"]))
        u = date.fromisoformat(r["body"]["valid_until"])
        p = policy["demonstration"]["points"]
        factor(r, "demonstration", p,
               f"{D(eff(r))}获评诚信计量自我承诺示范单位，{P(p)}（{D(u)}起不再计入）", u, eff(r))
    # §5.3
    passes = []
    for r in cur.get("supervision.spot_check", []):
        result = r["body"]["result"]
        outcome = policy["spot_check_results"][result]
        if outcome in ("pass", "problem"):
            rule = policy["spot_check_" + outcome]
            end = add_months(eff(r), rule["window_months"])
            if as_of >= end:
                continue
            if outcome == "pass":
                passes.append((eff(r), r["record_id"], r, end))
            else:
                factor(r, "spot_check_problem", rule["points"],
                       f"{D(eff(r))}抽查结果为“{result}”，{P(rule['points'])}"
                       f"（{M(rule['window_months'])}内有效，{D(end)}起不再计入）", end, eff(r))
    rule = policy["spot_check_pass"]
    for (_, _, r, end), p in zip(sorted(passes, key=lambda x: x[:2]),
                                 allocate(rule["points"], rule["cap"], len(passes)), strict=True):
        factor(r, "spot_check_pass", p,
               f"{D(eff(r))}抽查结果为“{r['body']['result']}”，{CAP(p, rule, '抽查加分')}"
               f"（{M(rule['window_months'])}内有效，{D(end)}起不再计入）", end, eff(r))
    # §5.6, then §5.4
    repaired: set[str] = set()
    for d in cur.get("credit.repair_decided", []):
        if d["body"]["decision"] != "approved":
            continue
        for ref in d["refs"]:
            app = view.by_id.get(ref["record"])
            if app is None or app["type"] != "credit.repair_applied" \
                    or view.find(app["record_id"]) in view.void:
                continue
            named = [x["record"] for x in app["refs"] if x["rel"] == "repairs"]
            named.append(app["body"].get("penalty_record"))
            for t in named:
                pen = view.by_id.get(t) if isinstance(t, str) else None
                if pen is not None and pen["type"] == "supervision.penalty":
                    repaired.add(view.find(t))
    for r in cur.get("supervision.penalty", []):
        if view.find(r["record_id"]) in repaired:
            continue
        b = r["body"]
        short = bool(b["lower_amount"]) or bool(b["circulated_criticism"])
        kind = "penalty_lower" if short else "penalty_other"
        rule = policy[kind]
        end = add_months(eff(r), rule["window_months"])
        if as_of >= end:
            continue
        if short:
            what = "通报批评" if b["circulated_criticism"] else "较低数额罚款"
            reason = (f"{D(eff(r))}受到行政处罚（{b['decision_no']}，{what}），{P(rule['points'])}"
                      f"（公示{M(rule['window_months'])}，{D(end)}起不再计入）")
        else:
            reason = (f"{D(eff(r))}受到行政处罚（{b['decision_no']}），{P(rule['points'])}"
                      f"（公示{M(rule['window_months'])}，{D(end)}起不再计入；信用修复后即不再计入）")
        factor(r, kind, rule["points"], reason, end, eff(r))
    # §5.5
    rule = policy["complaint"]
    complaints = sorted(
        ((eff(r), r["record_id"], r, add_months(eff(r), rule["window_months"]))
         for r in cur.get("supervision.complaint_verified", [])),
        key=lambda x: x[:2],
    )
    complaints = [c for c in complaints if as_of < c[3]]
    for (_, _, r, end), p in zip(complaints, allocate(rule["points"], rule["cap"],
                                                      len(complaints)), strict=True):
        factor(r, "complaint", p, f"{D(eff(r))}投诉经核实，{CAP(p, rule, '投诉扣分')}"
               f"（{M(rule['window_months'])}内有效，{D(end)}起不再计入）", end, eff(r))
    # §5.7
    latest: dict[tuple[str, str], Rec] = {}
    for r in cur.get("supervision.instrument", []):
        k = (r["body"]["instrument_type"], r["body"]["serial"])
        if k not in latest or key(r) > key(latest[k]):
            latest[k] = r
    overdue = sorted((date.fromisoformat(r["body"]["valid_until"]), r["record_id"], r)
                     for r in latest.values()
                     if date.fromisoformat(r["body"]["valid_until"]) < as_of)
    rule = policy["instrument_overdue"]
    for (vu, _, r), p in zip(overdue, allocate(rule["points"], rule["cap"], len(overdue)),
                             strict=True):
        nxt = vu + timedelta(days=1)
        factor(r, "instrument_overdue", p,
               f"计量器具“{r['body']['instrument_type']}”（编号{r['body']['serial']}）检定有效期至"
               f"{D(vu)}，{D(nxt)}起超期未检定，{CAP(p, rule, '超期器具扣分')}"
               "（重新检定后不再计入）",
               None, nxt)
    # §5.8
    listed = {}
    for name in ("abnormal_list", "serious_list"):
        opened = open_openers(cur.get("supervision." + name, []), "in", "out")
        listed[name] = opened
        if opened:
            first = min(opened, key=key)
            if name == "abnormal_list":
                rule = policy[name]
                reason = (f"{D(eff(first))}起被列入经营异常名录，{P(rule['points'])}，"
                          f"信用等级最高为{rule['tier_cap']}级（移出名录后不再计入）")
                factor(first, name, rule["points"], reason, None, eff(first))
            else:
                reason = (f"{D(eff(first))}起被列入严重违法失信名单，"
                          f"信用等级为{policy[name]['tier']}级（移出名单后不再计入）")
                factor(first, name, 0, reason, None, eff(first))
    # §6, §7
    factors.sort(key=lambda x: x[0])
    raw = policy["base_score"] + sum(f["points"] for _, f in factors)
    score = max(0, min(100, raw))
    t = policy["tier_thresholds"]
    score_tier = "A" if score >= t["A"] else "B" if score >= t["B"] else (
        "C" if score >= t["C"] else "D")
    tier = score_tier
    if listed["abnormal_list"]:
        tier = max(tier, policy["abnormal_list"]["tier_cap"], key=TIERS.index)
    if listed["serious_list"]:
        tier = max(tier, policy["serious_list"]["tier"], key=TIERS.index)
    ab = min(listed["abnormal_list"], key=key) if listed["abnormal_list"] else None
    se = min(listed["serious_list"], key=key) if listed["serious_list"] else None
    return {
        "score": score,
        "score_tier": score_tier,
        "tier": tier,
        "on_abnormal_list": ab is not None,
        "on_serious_list": se is not None,
        "abnormal_listed_on": eff(ab) if ab else None,
        "serious_listed_on": eff(se) if se else None,
        "due_for_serious_list": ab is not None and as_of >= add_months(
            eff(ab), policy["abnormal_list"]["serious_after_months"]),
        "due_for_serious_list_removal": se is not None and all(
            as_of >= add_months(eff(r), policy["serious_list"]["removal_after_months"])
            for r in listed["serious_list"]),
        "factors": [f for _, f in factors],
    }


def change_dates(records: list[Rec], policy: dict[str, Any], as_of: date) -> list[date]:  # §8
    read = [r for r in records if r["type"] in EFFECTIVE]
    view = View([r for r in read if eff(r) <= as_of])
    out: set[date] = set()
    for r in read:
        if eff(r) > as_of:
            out.add(eff(r))
        elif view.dead(r["record_id"]):
            continue
        out.update(d for d in end_dates(r, policy) if d > as_of)
    return sorted(out)


def end_dates(r: Rec, policy: dict[str, Any]) -> list[date]:
    b, t = r["body"], r["type"]
    if t == "supervision.spot_check":
        outcome = policy["spot_check_results"][b["result"]]
        if outcome in ("pass", "problem"):
            return [add_months(eff(r), policy["spot_check_" + outcome]["window_months"])]
        return []
    if t == "supervision.penalty":
        short = bool(b["lower_amount"]) or bool(b["circulated_criticism"])
        return [add_months(eff(r), policy["penalty_lower" if short else "penalty_other"]
                           ["window_months"])]
    if t == "supervision.complaint_verified":
        return [add_months(eff(r), policy["complaint"]["window_months"])]
    if t == "pledge.made" or (t == "supervision.demonstration" and b["action"] == "award"):
        return [date.fromisoformat(b["valid_until"])]
    if t == "supervision.instrument":
        return [date.fromisoformat(b["valid_until"]) + timedelta(days=1)]
    if t == "supervision.abnormal_list" and b["action"] == "in":
        return [add_months(eff(r), policy["abnormal_list"]["serious_after_months"])]
    if t == "supervision.serious_list" and b["action"] == "in":
        return [add_months(eff(r), policy["serious_list"]["removal_after_months"])]
    return []
