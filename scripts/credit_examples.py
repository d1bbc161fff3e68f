"""Write ``docs/credit-rating-examples.json``: the worked examples of ``docs/credit-rating.md``.

Each example is a merchant's records (real envelopes: canonical JCS bytes, record id =
``SHA-256(0x00 || bytes)``, fixed salts so the file is reproducible), the policy
versions known, a rating date, and what the rating gives. The expected values come
from the reference implementation; they were checked by hand against the
specification when written, and ``tests/credit/test_rating_spec.py`` keeps the file,
the implementation and the tables in the specification in agreement.

    python scripts/credit_examples.py           # rewrite the file
    python scripts/credit_examples.py --check   # exit 1 if the file is not what this writes
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from backend.credit import rating
from backend.credit.policy import DEFAULT_POLICY, CreditPolicy, select_policy
from backend.credit.service import PolicyVersion, compute, factor_json
from backend.ledger.records import (
    Actor,
    RecordDraft,
    Ref,
    build_envelope,
    canonical_bytes,
    record_id_of,
)

OUT = Path(__file__).resolve().parent.parent / "docs" / "credit-rating-examples.json"
SUBJECT = "91511902MA62Q3T556"
AUTHORITY = "巴中市市场监督管理局"
D = date

Record = dict[str, Any]


def policy_doc(**changes: Any) -> dict[str, Any]:
    """The default policy document (without ``spec_sha256``: these examples *are* the
    specification's) with some top-level fields replaced."""
    doc = DEFAULT_POLICY.model_dump(mode="json")
    doc.pop("spec_sha256")
    doc.update(changes)
    CreditPolicy.model_validate(doc)
    return doc


POLICIES: dict[str, dict[str, Any]] = {
    "v1": policy_doc(),
    "v1-base-100": policy_doc(base_score=100),
    "v2-2026-07-01": policy_doc(version=2, effective_from="2026-07-01", base_score=70),
}


class Example:
    """Records of one merchant, built in the order given (later ones may ref earlier)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.records: list[Record] = []

    def add(
        self,
        type_: str,
        body: dict[str, Any],
        *,
        on: date,
        refs: tuple[tuple[str, Record], ...] = (),
        at: str | None = None,
        role: str = "regulator",
        subject: str = SUBJECT,
    ) -> Record:
        moment = (
            datetime.fromisoformat(at.replace("Z", "+00:00"))
            if at
            else datetime(on.year, on.month, on.day, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
        )
        salt = hashlib.sha256(f"{self.name}/{len(self.records)}".encode()).hexdigest()[:32]
        env = build_envelope(
            RecordDraft(
                type=type_,
                subject=subject,
                actor=Actor(role, "1"),
                body=body,
                refs=tuple(Ref(rel, r["record_id"]) for rel, r in refs),
            ),
            at=moment,
            salt=salt,
        )
        env["record_id"] = record_id_of(canonical_bytes(env))
        self.records.append(env)
        return env

    # One builder per record type, bodies exactly as docs/records.md defines them.

    def pledge(self, valid_from: date, valid_until: date, renews: Record | None = None) -> Record:
        return self.add(
            "pledge.made",
            {
                "pledge_id": f"P-{len(self.records) + 1}",
                "template": {"sector": "retail", "version": 1, "digest": "11" * 32},
                "items": ["G1", "G2", "G3", "G4", "G5", "G6"],
                "extra_commitments": None,
                "valid_from": valid_from.isoformat(),
                "valid_until": valid_until.isoformat(),
                "signature": None,
            },
            on=valid_from,
            refs=(("renews", renews),) if renews else (),
            role="merchant",
        )

    def pledge_withdrawn(self, pledge: Record, on: date) -> Record:
        return self.add(
            "pledge.withdrawn",
            {"pledge_id": pledge["body"]["pledge_id"], "withdrawn_on": on.isoformat(),
             "reason": "停业"},
            on=on,
            refs=(("revokes", pledge),),
            role="merchant",
        )

    def spot_check(
        self, on: date, result: str = "未发现问题", supersedes: Record | None = None,
        at: str | None = None,
    ) -> Record:
        body: dict[str, Any] = {
            "result": result,
            "checked_on": on.isoformat(),
            "authority": AUTHORITY,
            "draw_id": None,
            "evidence_sha256": None,
        }
        if supersedes:
            body["correction_reason"] = "录入错误"
        return self.add(
            "supervision.spot_check", body, on=on,
            refs=(("supersedes", supersedes),) if supersedes else (), at=at,
        )

    def penalty(
        self, on: date, no: str, *, amount_fen: int = 5_000_000, lower: bool = False,
        criticism: bool = False, special: bool = False, performed: bool = True,
    ) -> Record:
        return self.add(
            "supervision.penalty",
            {
                "decision_no": no,
                "decided_on": on.isoformat(),
                "authority": AUTHORITY,
                "amount_fen": amount_fen,
                "lower_amount": lower,
                "circulated_criticism": criticism,
                "special_sector": special,
                "performed": performed,
                "evidence_sha256": "22" * 32,
            },
            on=on,
        )

    def complaint(self, on: date) -> Record:
        return self.add(
            "supervision.complaint_verified",
            {"complaint_id": f"TS-{len(self.records) + 1}", "verified_on": on.isoformat(),
             "summary": "短斤缺两"},
            on=on,
        )

    def instrument(self, on: date, valid_until: date, serial: str,
                   kind: str = "电子计价秤") -> Record:
        return self.add(
            "supervision.instrument",
            {
                "instrument_type": kind,
                "serial": serial,
                "certificate_no": f"JD-{on.year}-{len(self.records) + 1:04d}",
                "verified_on": on.isoformat(),
                "valid_until": valid_until.isoformat(),
            },
            on=on,
        )

    def listing(self, type_: str, action: str, on: date, reason: str,
                closes: Record | None = None, at: str | None = None) -> Record:
        return self.add(
            type_,
            {"action": action, "on": on.isoformat(), "reason": reason},
            on=on,
            refs=(("closes", closes),) if closes else (),
            at=at,
        )

    def abnormal(self, action: str, on: date, closes: Record | None = None,
                 reason: str = "annual_report_not_filed", at: str | None = None) -> Record:
        return self.listing("supervision.abnormal_list", action, on, reason, closes, at)

    def serious(self, action: str, on: date, closes: Record | None = None) -> Record:
        return self.listing("supervision.serious_list", action, on, "受到较重行政处罚", closes)

    def award(self, on: date, valid_until: date) -> Record:
        return self.add(
            "supervision.demonstration",
            {"action": "award", "on": on.isoformat(), "valid_until": valid_until.isoformat()},
            on=on,
        )

    def withdraw_award(self, award: Record, on: date) -> Record:
        return self.add(
            "supervision.demonstration",
            {"action": "withdraw", "on": on.isoformat(), "reason": "不再符合示范条件"},
            on=on,
            refs=(("revokes", award),),
        )

    def revocation(self, target: Record, at: str) -> Record:
        return self.add(
            "supervision.revocation", {"reason": "原处理决定被依法撤销"},
            on=D(2000, 1, 1), refs=(("revokes", target),), at=at,
        )

    def repair(self, penalty: Record, applied: date, decided: date, decision: str) -> None:
        app = self.add(
            "credit.repair_applied",
            {"repair_id": f"R-{len(self.records) + 1}", "penalty_record": penalty["record_id"],
             "applied_on": applied.isoformat(), "statement": "已履行处罚并完成整改"},
            on=applied,
            refs=(("repairs", penalty),),
            role="merchant",
        )
        self.add(
            "credit.repair_decided",
            {"repair_id": app["body"]["repair_id"], "decision": decision,
             "decided_on": decided.isoformat(), "reason": "审核意见"},
            on=decided,
            refs=(("decides", app),),
        )


# --- the examples ---------------------------------------------------------------------------
# (name, covers, what it shows, policy versions known, rating dates, builder)

Spec = tuple[str, list[str], str, list[str], list[date], Callable[[Example], None]]


def _no_records(e: Example) -> None:
    pass


def _pledge(e: Example) -> None:
    e.pledge(D(2026, 3, 1), D(2027, 3, 1))


def _pledge_renewed_and_withdrawn(e: Example) -> None:
    first = e.pledge(D(2026, 1, 10), D(2027, 1, 10))
    e.pledge(D(2026, 12, 1), D(2027, 12, 1), renews=first)
    e.pledge(D(2026, 2, 1), D(2026, 8, 1))  # a second, separate pledge: still one bonus
    later = e.records[-1]
    e.pledge_withdrawn(later, D(2026, 5, 20))


def _demonstration(e: Example) -> None:
    e.pledge(D(2026, 1, 5), D(2027, 1, 5))
    a1 = e.award(D(2026, 2, 1), D(2029, 2, 1))
    e.award(D(2026, 3, 1), D(2027, 3, 1))  # a second award: one bonus, the longest shown
    e.withdraw_award(a1, D(2026, 9, 1))


def _spot_check_cap_and_ties(e: Example) -> None:
    e.spot_check(D(2026, 2, 3))
    e.spot_check(D(2026, 4, 8))
    e.spot_check(D(2026, 4, 8))  # the same date: the lower record id takes its points first
    e.spot_check(D(2026, 1, 20))


def _spot_check_outcomes(e: Example) -> None:
    e.spot_check(D(2026, 1, 15), "发现问题已责令改正")
    e.spot_check(D(2026, 2, 10), "未按规定公示信息")
    e.spot_check(D(2026, 3, 5), "未发现开展本次抽查涉及的经营活动")
    pending = e.spot_check(D(2026, 4, 1), "发现问题待后续处理")
    # Recorded on 20 April, effective from its checked_on (1 April) like the original.
    e.spot_check(D(2026, 4, 1), "未发现问题", supersedes=pending,
                 at="2026-04-20T03:00:00.000000Z")
    e.spot_check(D(2026, 4, 5), "发现问题待后续处理")  # still pending: counts nothing


def _month_end(e: Example) -> None:
    e.penalty(D(2025, 11, 30), "巴市监罚〔2025〕30号", amount_fen=300_000, lower=True)
    e.spot_check(D(2024, 2, 29))


def _penalties(e: Example) -> None:
    e.penalty(D(2026, 3, 2), "巴市监罚〔2026〕5号", amount_fen=800_000, lower=True)
    e.penalty(D(2026, 4, 9), "巴市监罚〔2026〕9号", amount_fen=0, criticism=True)
    e.penalty(D(2026, 4, 30), "巴市监罚〔2026〕12号", amount_fen=20_000_000)


def _repair(e: Example) -> None:
    approved = e.penalty(D(2025, 6, 10), "巴市监罚〔2025〕7号")
    rejected = e.penalty(D(2025, 7, 1), "巴市监罚〔2025〕8号")
    e.repair(approved, D(2026, 1, 5), D(2026, 1, 12), "approved")
    e.repair(rejected, D(2026, 1, 6), D(2026, 1, 13), "rejected")


def _revocation_and_correction(e: Example) -> None:
    wrong = e.spot_check(D(2026, 3, 3), "发现问题已责令改正")
    e.spot_check(D(2026, 3, 3), "未发现问题", supersedes=wrong,
                 at="2026-03-20T02:00:00.000000Z")
    p = e.penalty(D(2026, 4, 1), "巴市监罚〔2026〕3号")
    # 17:30 UTC on 31 May is 01:30 on 1 June in Asia/Shanghai.
    e.revocation(p, at="2026-05-31T17:30:00.000000Z")


def _complaints(e: Example) -> None:
    for d in (D(2026, 5, 1), D(2026, 2, 1), D(2026, 3, 1), D(2026, 3, 1)):
        e.complaint(d)


def _instruments(e: Example) -> None:
    e.instrument(D(2025, 3, 1), D(2026, 2, 28), "S-1")
    e.instrument(D(2025, 1, 15), D(2026, 1, 14), "S-2")
    e.instrument(D(2025, 5, 1), D(2026, 4, 30), "S-3")
    e.instrument(D(2025, 6, 1), D(2026, 5, 31), "S-4")  # valid through the rating date
    e.instrument(D(2025, 2, 1), D(2026, 3, 31), "S-1", kind="燃油加油机")  # same serial, other type


def _reverification(e: Example) -> None:
    e.instrument(D(2025, 3, 1), D(2026, 2, 28), "S-1")
    e.instrument(D(2026, 5, 20), D(2027, 5, 19), "S-1")


def _abnormal_list(e: Example) -> None:
    e.pledge(D(2026, 1, 5), D(2027, 1, 5))
    e.award(D(2026, 1, 5), D(2029, 1, 5))
    for d in (D(2026, 1, 10), D(2026, 1, 20), D(2026, 2, 1)):
        e.spot_check(d)
    first = e.abnormal("in", D(2026, 2, 15))
    e.abnormal("in", D(2026, 3, 10), reason="unreachable_at_address")
    e.abnormal("out", D(2026, 4, 1), closes=first, reason="已补报年度报告")


def _abnormal_blanket_and_due(e: Example) -> None:
    e.abnormal("in", D(2023, 3, 1))
    e.abnormal("in", D(2023, 5, 1), reason="unreachable_at_address")
    e.abnormal("out", D(2023, 6, 1), reason="已补报年度报告并恢复联系")  # refs none: closes both
    # The same day, accepted later (06:00 UTC): after the out in (date, at, id) order.
    e.abnormal("in", D(2023, 6, 1), reason="ordered_info_not_published",
               at="2023-06-01T06:00:00.000000Z")


def _serious_list(e: Example) -> None:
    e.pledge(D(2026, 1, 5), D(2027, 1, 5))
    listed = e.serious("in", D(2023, 2, 1))
    e.serious("in", D(2026, 2, 1))
    e.serious("out", D(2026, 5, 1), closes=listed)


def _clamping(e: Example) -> None:
    for i, d in enumerate((D(2026, 1, 5), D(2026, 2, 5), D(2026, 3, 5))):
        e.penalty(d, f"巴市监罚〔2026〕{20 + i}号")
    e.abnormal("in", D(2026, 3, 10))


def _clamp_high(e: Example) -> None:
    e.pledge(D(2026, 1, 5), D(2027, 1, 5))
    e.spot_check(D(2026, 2, 5))


def _policy_change(e: Example) -> None:
    e.spot_check(D(2026, 2, 5))
    e.penalty(D(2026, 9, 1), "巴市监罚〔2026〕40号")  # after the rating date: ignored


SPECS: list[Spec] = [
    ("no-records", ["base"], "No records: the base score.", ["v1"], [D(2026, 6, 1)],
     _no_records),
    ("pledge", ["pledge", "exclusive-end"],
     "A pledge counts from valid_from up to the day before valid_until.", ["v1"],
     [D(2026, 2, 28), D(2026, 6, 1), D(2027, 2, 28), D(2027, 3, 1)], _pledge),
    ("pledge-renewal-withdrawal", ["pledge", "one-bonus", "supersession", "revocation"],
     "One pledge bonus at a time; a renewal supersedes; a withdrawal voids from its date.",
     ["v1"], [D(2026, 5, 19), D(2026, 5, 20), D(2026, 12, 1), D(2027, 12, 1)],
     _pledge_renewed_and_withdrawn),
    ("demonstration", ["demonstration", "one-bonus", "list-out"],
     "One demonstration bonus; a withdrawal closes the award it references.", ["v1"],
     [D(2026, 4, 1), D(2026, 9, 1), D(2027, 3, 1)], _demonstration),
    ("spot-check-cap-ties", ["spot_check_pass", "cap", "cap-tie"],
     "Passes are capped; earliest first, a same-date tie to the lower record id.", ["v1"],
     [D(2026, 6, 1), D(2029, 1, 20)], _spot_check_cap_and_ties),
    ("spot-check-outcomes", ["spot_check_problem", "neutral", "pending", "supersession"],
     "Problems deduct; neutral and pending count nothing; a final result supersedes pending.",
     ["v1"], [D(2026, 3, 10), D(2026, 4, 10)], _spot_check_outcomes),
    ("month-end", ["month-end", "exclusive-end", "penalty_lower"],
     "Windows end on the same day n months later, clamped to the month's last day.", ["v1"],
     [D(2026, 2, 27), D(2026, 2, 28), D(2027, 2, 27), D(2027, 2, 28)], _month_end),
    ("penalties", ["penalty_lower", "circulated_criticism", "penalty_other"],
     "Lower amounts and circulated criticism: the short window; other penalties: the long one.",
     ["v1"], [D(2026, 5, 1), D(2026, 7, 9)], _penalties),
    ("repair", ["repair", "penalty_other"],
     "An approved repair ends a penalty from the decision's date; a rejected one does nothing.",
     ["v1"], [D(2026, 1, 11), D(2026, 1, 12)], _repair),
    ("revocation-correction", ["revocation", "supersession", "shanghai-date"],
     "A correction replaces; a revocation voids from the Asia/Shanghai date of its at.",
     ["v1"], [D(2026, 3, 10), D(2026, 5, 31), D(2026, 6, 1)],
     _revocation_and_correction),
    ("complaints-cap", ["complaint", "cap", "cap-tie"],
     "Complaints are capped; earliest first, ties to the lower record id.", ["v1"],
     [D(2026, 6, 1), D(2027, 2, 1)], _complaints),
    ("instruments", ["instrument_overdue", "cap", "serial", "inclusive-valid-until"],
     "Overdue from the day after valid_until, per (type, serial); capped, earliest due first.",
     ["v1"], [D(2026, 5, 31), D(2026, 6, 1)], _instruments),
    ("re-verification", ["instrument_overdue", "re-verification"],
     "A newer verification of the same instrument clears it.", ["v1"],
     [D(2026, 5, 19), D(2026, 5, 20)], _reverification),
    ("abnormal-list", ["abnormal_list", "list-in", "list-out", "tier-cap"],
     "Listed: points and a tier ceiling; curing one reason leaves a second listing open.",
     ["v1"], [D(2026, 2, 14), D(2026, 3, 1), D(2026, 4, 1)], _abnormal_list),
    ("abnormal-blanket-due", ["abnormal_list", "list-out", "blanket-out", "due-flag"],
     "An out naming no listing closes every earlier one; three years listed → due flag.",
     ["v1"], [D(2026, 5, 31), D(2026, 6, 1)], _abnormal_blanket_and_due),
    ("serious-list", ["serious_list", "list-in", "list-out", "due-flag", "forced-tier"],
     "Listed: tier D whatever the score; due for removal when every open listing is old.",
     ["v1"], [D(2026, 4, 1), D(2026, 5, 1), D(2029, 2, 1)], _serious_list),
    ("clamp-low", ["clamp", "penalty_other", "abnormal_list"],
     "A raw score below 0 is shown as 0.", ["v1"], [D(2026, 4, 1)], _clamping),
    ("clamp-high", ["clamp", "pledge", "spot_check_pass"],
     "A raw score above 100 is shown as 100 (a policy with base 100).", ["v1-base-100"],
     [D(2026, 3, 1)], _clamp_high),
    ("policy-change", ["policy-selection", "next-change", "future-record"],
     "The highest version in force applies; its effective_from is a change date.",
     ["v1", "v2-2026-07-01"], [D(2026, 6, 1), D(2026, 7, 1)], _policy_change),
]


def expected(records: list[Record], versions: list[PolicyVersion], as_of: date) -> dict[str, Any]:
    """What the reference implementation gives (the service's own ``compute``)."""
    result, nxt = compute(records, versions, as_of)
    policy = select_policy([v.policy for v in versions], as_of)
    later = {v.policy.effective_from for v in versions if v.policy.effective_from > as_of}
    changes = sorted({*rating.change_dates(records, policy, as_of), *later})
    return {
        "as_of": as_of.isoformat(),
        "policy_version": result.policy_version,
        "score": result.score,
        "score_tier": result.score_tier,
        "tier": result.tier,
        "on_abnormal_list": result.on_abnormal_list,
        "on_serious_list": result.on_serious_list,
        "abnormal_listed_on": _iso(result.abnormal_listed_on),
        "serious_listed_on": _iso(result.serious_listed_on),
        "due_for_serious_list": result.due_for_serious_list,
        "due_for_serious_list_removal": result.due_for_serious_list_removal,
        "factors": [factor_json(f) for f in result.factors],
        "change_dates": [d.isoformat() for d in changes],
        "next_change_on": _iso(nxt),
    }


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None


def versions_of(names: list[str]) -> list[PolicyVersion]:
    """The named policy documents as the service holds them (record ids made up)."""
    out = []
    for i, name in enumerate(names):
        policy = CreditPolicy.model_validate(POLICIES[name])
        out.append(PolicyVersion(policy.version, f"{i:064x}", i, policy))
    return out


# Records an implementation must refuse (docs/credit-rating.md §12): (name, error, builder).


def _unknown_result(e: Example) -> None:
    e.spot_check(D(2026, 2, 1), "合格")


def _bad_action(e: Example) -> None:
    e.abnormal("remove", D(2026, 2, 1))


def _mixed_subjects(e: Example) -> None:
    e.spot_check(D(2026, 2, 1))
    e.add("supervision.complaint_verified",
          {"complaint_id": "TS-9", "verified_on": "2026-02-02", "summary": "短斤缺两"},
          on=D(2026, 2, 2), subject="92511923MA6A1B2C3M")


def _missing_field(e: Example) -> None:
    p = e.penalty(D(2026, 2, 1), "巴市监罚〔2026〕2号")
    del p["body"]["lower_amount"]  # the id no longer matches: the rating reads it anyway


def _one_id_two_records(e: Example) -> None:
    first = e.spot_check(D(2026, 2, 1))
    twin = json.loads(json.dumps(first))
    twin["body"]["result"] = "发现问题已责令改正"
    e.records.append(twin)


REFUSALS: list[tuple[str, str, Callable[[Example], None]]] = [
    ("unknown-spot-check-result", "UnknownSpotCheckResult", _unknown_result),
    ("list-action-not-in-or-out", "InvalidRecord", _bad_action),
    ("two-subjects", "MixedSubjects", _mixed_subjects),
    ("penalty-without-lower-amount", "InvalidRecord", _missing_field),
    ("one-id-two-records", "InvalidRecord", _one_id_two_records),
]


def refused(records: list[Record], versions: list[PolicyVersion], as_of: date) -> str:
    try:
        compute(records, versions, as_of)
    except rating.RatingError as exc:
        return type(exc).__name__
    raise AssertionError("the rating accepted records it must refuse")


def build() -> dict[str, Any]:
    examples = []
    for name, covers, summary, policy_names, dates, make in SPECS:
        e = Example(name)
        make(e)
        versions = versions_of(policy_names)
        examples.append(
            {
                "name": name,
                "covers": covers,
                "summary": summary,
                "policies": policy_names,
                "records": e.records,
                "ratings": [expected(e.records, versions, d) for d in dates],
            }
        )
    refusals = []
    for name, error, make in REFUSALS:
        e = Example(name)
        make(e)
        as_of = D(2026, 6, 1)
        assert refused(e.records, versions_of(["v1"]), as_of) == error, name
        refusals.append(
            {"name": name, "policies": ["v1"], "as_of": as_of.isoformat(), "records": e.records,
             "error": error}
        )
    return {
        "about": (
            "Worked examples of docs/credit-rating.md. Each example: the policy versions "
            "known (keys of 'policies'), one merchant's records as envelopes (docs/records.md; "
            "record_id = SHA-256(0x00 || JCS bytes)), and for each rating date what the "
            "rating gives; 'refusals': records the rating must refuse, with the error. Written by "
            "scripts/credit_examples.py; checked by "
            "tests/credit/test_rating_spec.py."
        ),
        "subject": SUBJECT,
        "policies": POLICIES,
        "examples": examples,
        "refusals": refusals,
    }


def render() -> str:
    return json.dumps(build(), ensure_ascii=False, indent=1) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is out of date: run python scripts/credit_examples.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({len(text)} characters)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

