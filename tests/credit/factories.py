"""Record envelopes for credit tests, shaped exactly as ``docs/records.md`` defines them.

Every factory takes keyword-only arguments and returns a plain dict with the
envelope fields plus ``record_id``. The id is a SHA-256 over a sorted-key JSON
dump with a fresh salt: unique and content-derived like the real one, but not
the canonical (JCS) leaf hash — these helpers must never be used to build
records for the real log.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from datetime import date
from typing import Any

from backend.credit.policy import add_months

SUBJECT = "91511902MA62Q3T556"
OTHER_SUBJECT = "92511923MA6A1B2C3M"
AUTHORITY = "巴中市市场监督管理局"

_salts = itertools.count(1)

Record = dict[str, Any]


def at_for(d: date) -> str:
    """An ``at`` on the Asia/Shanghai date ``d`` (10:00 there, 02:00 UTC)."""
    return f"{d.isoformat()}T02:00:00.000000Z"


def ref(rel: str, target: Record | str) -> dict[str, str]:
    return {"rel": rel, "record": target if isinstance(target, str) else target["record_id"]}


def record(
    *,
    type: str,
    body: dict[str, Any],
    effective: date,
    refs: list[dict[str, str]] | None = None,
    subject: str | None = SUBJECT,
    at: str | None = None,
    role: str = "regulator",
) -> Record:
    envelope: Record = {
        "v": 1,
        "type": type,
        "subject": subject,
        "at": at or at_for(effective),
        "actor": {"role": role, "account": "1"},
        "body": body,
        "refs": refs or [],
        "salt": f"{next(_salts):032x}",
    }
    dumped = json.dumps(envelope, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    envelope["record_id"] = hashlib.sha256(b"\x00" + dumped.encode()).hexdigest()
    return envelope


def _supersedes(old: Record | None) -> list[dict[str, str]]:
    return [ref("supersedes", old)] if old is not None else []


def spot_check(
    *,
    checked_on: date,
    result: str = "未发现问题",
    supersedes: Record | None = None,
    subject: str | None = SUBJECT,
    at: str | None = None,
) -> Record:
    return record(
        type="supervision.spot_check",
        body={
            "result": result,
            "checked_on": checked_on.isoformat(),
            "authority": AUTHORITY,
            "draw_id": None,
            "evidence_sha256": None,
        },
        effective=checked_on,
        refs=_supersedes(supersedes),
        subject=subject,
        at=at,
    )


def penalty(
    *,
    decided_on: date,
    decision_no: str = "巴市监罚〔2026〕1号",
    amount_fen: int = 5_000_000,
    lower_amount: bool = False,
    circulated_criticism: bool = False,
    special_sector: bool = False,
    performed: bool = True,
    supersedes: Record | None = None,
    at: str | None = None,
) -> Record:
    return record(
        type="supervision.penalty",
        body={
            "decision_no": decision_no,
            "decided_on": decided_on.isoformat(),
            "authority": AUTHORITY,
            "amount_fen": amount_fen,
            "lower_amount": lower_amount,
            "circulated_criticism": circulated_criticism,
            "special_sector": special_sector,
            "performed": performed,
            "evidence_sha256": "00" * 32,
        },
        effective=decided_on,
        refs=_supersedes(supersedes),
        at=at,
    )


def complaint(*, verified_on: date, complaint_id: str = "TS-1") -> Record:
    return record(
        type="supervision.complaint_verified",
        body={
            "complaint_id": complaint_id,
            "verified_on": verified_on.isoformat(),
            "summary": "短斤缺两",
        },
        effective=verified_on,
    )


def instrument(
    *,
    verified_on: date,
    valid_until: date,
    instrument_type: str = "电子计价秤",
    serial: str = "S1",
    certificate_no: str = "JD-2026-0001",
    supersedes: Record | None = None,
) -> Record:
    return record(
        type="supervision.instrument",
        body={
            "instrument_type": instrument_type,
            "serial": serial,
            "certificate_no": certificate_no,
            "verified_on": verified_on.isoformat(),
            "valid_until": valid_until.isoformat(),
        },
        effective=verified_on,
        refs=_supersedes(supersedes),
    )


def _listing(
    type_: str, action: str, on: date, reason: str, closes: Record | None, rel: str
) -> Record:
    return record(
        type=type_,
        body={"action": action, "on": on.isoformat(), "reason": reason},
        effective=on,
        refs=[ref(rel, closes)] if closes is not None else [],
    )


def abnormal_list(
    *,
    action: str,
    on: date,
    reason: str = "未按规定报送年度报告",
    closes: Record | None = None,
    rel: str = "closes",
) -> Record:
    """An ``in`` (``closes`` unused) or an ``out`` that refs the ``in`` it ends."""
    return _listing("supervision.abnormal_list", action, on, reason, closes, rel)


def serious_list(
    *,
    action: str,
    on: date,
    reason: str = "受到较重行政处罚",
    closes: Record | None = None,
    rel: str = "closes",
) -> Record:
    return _listing("supervision.serious_list", action, on, reason, closes, rel)


def pledge(
    *,
    valid_from: date,
    valid_until: date | None = None,
    renews: Record | None = None,
    pledge_id: str = "P-1",
) -> Record:
    until = valid_until or add_months(valid_from, 12)
    return record(
        type="pledge.made",
        body={
            "pledge_id": pledge_id,
            "template": {"sector": "market", "version": 1, "digest": "11" * 32},
            "items": ["G1", "G2", "G3", "G4", "G5", "G6"],
            "extra_commitments": [],
            "valid_from": valid_from.isoformat(),
            "valid_until": until.isoformat(),
            "signature": None,
        },
        effective=valid_from,
        refs=[ref("renews", renews)] if renews is not None else [],
        role="merchant",
    )


def pledge_withdrawn(*, pledge: Record, withdrawn_on: date) -> Record:
    return record(
        type="pledge.withdrawn",
        body={
            "pledge_id": pledge["body"]["pledge_id"],
            "withdrawn_on": withdrawn_on.isoformat(),
            "reason": "停业",
        },
        effective=withdrawn_on,
        refs=[ref("revokes", pledge)],
        role="merchant",
    )


def demonstration_award(*, on: date, valid_until: date | None = None) -> Record:
    until = valid_until or add_months(on, 36)
    return record(
        type="supervision.demonstration",
        body={"action": "award", "on": on.isoformat(), "valid_until": until.isoformat()},
        effective=on,
    )


def demonstration_withdraw(*, on: date, award: Record | None, rel: str = "withdraws") -> Record:
    return record(
        type="supervision.demonstration",
        body={"action": "withdraw", "on": on.isoformat(), "reason": "不再符合示范条件"},
        effective=on,
        refs=[ref(rel, award)] if award is not None else [],
    )


def revocation(*, target: Record, on: date, reason: str = "原决定被撤销") -> Record:
    """A ``supervision.revocation`` accepted on the Asia/Shanghai date ``on``."""
    return record(
        type="supervision.revocation",
        body={"reason": reason},
        effective=on,
        refs=[ref("revokes", target)],
    )


def repair_applied(*, penalty: Record, applied_on: date, repair_id: str = "R-1") -> Record:
    return record(
        type="credit.repair_applied",
        body={
            "repair_id": repair_id,
            "penalty_record": penalty["record_id"],
            "applied_on": applied_on.isoformat(),
            "statement": "已履行处罚并完成整改",
        },
        effective=applied_on,
        refs=[ref("repairs", penalty)],
        role="merchant",
    )


def repair_decided(*, application: Record, decided_on: date, decision: str = "approved") -> Record:
    return record(
        type="credit.repair_decided",
        body={
            "repair_id": application["body"]["repair_id"],
            "decision": decision,
            "decided_on": decided_on.isoformat(),
            "reason": "符合信用修复条件",
        },
        effective=decided_on,
        refs=[ref("decides", application)],
    )
