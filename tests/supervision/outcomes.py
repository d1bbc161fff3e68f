"""Request bodies for supervision outcomes, and helpers to post them.

Keyword-only arguments; dates default to a few days ago (Asia/Shanghai), so a
test says only what it varies.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi.testclient import TestClient

from backend.timeutil import today_shanghai

AUTHORITY = "巴中市市场监督管理局"
EVIDENCE = "ab" * 32


def days_ago(n: int) -> date:
    return today_shanghai() - timedelta(days=n)


def spot_check(*, uscc: str, result: str = "未发现问题", checked_on: date | None = None,
               **extra: Any) -> dict[str, Any]:
    return {
        "kind": "spot_check",
        "uscc": uscc,
        "result": result,
        "checked_on": (checked_on or days_ago(3)).isoformat(),
        "authority": AUTHORITY,
        **extra,
    }


def penalty(*, uscc: str, decision_no: str = "巴市监罚〔2026〕1号", decided_on: date | None = None,
            amount_fen: int = 20_000_000, performed: bool = False, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "penalty",
        "uscc": uscc,
        "decision_no": decision_no,
        "decided_on": (decided_on or days_ago(3)).isoformat(),
        "authority": AUTHORITY,
        "amount_fen": amount_fen,
        "performed": performed,
        "evidence_sha256": EVIDENCE,
        **extra,
    }


def listing(*, kind: str = "abnormal_list", uscc: str, action: str = "in",
            on: date | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": kind,
        "uscc": uscc,
        "action": action,
        "on": (on or days_ago(3)).isoformat(),
        **extra,
    }
    if action == "in" and "reason" not in extra:
        body["reason"] = (
            "annual_report_not_filed" if kind == "abnormal_list" else "受到较重行政处罚"
        )
    return body


def instrument(*, uscc: str, serial: str = "S-001", verified_on: date | None = None,
               valid_until: date | None = None, **extra: Any) -> dict[str, Any]:
    on = verified_on or days_ago(400)
    return {
        "kind": "instrument",
        "uscc": uscc,
        "instrument_type": "电子计价秤",
        "serial": serial,
        "certificate_no": "JD-2025-0001",
        "verified_on": on.isoformat(),
        "valid_until": (valid_until or on + timedelta(days=364)).isoformat(),
        **extra,
    }


def complaint_verified(*, uscc: str, complaint_id: str = "12315-0001",
                       verified_on: date | None = None) -> dict[str, Any]:
    return {
        "kind": "complaint_verified",
        "uscc": uscc,
        "complaint_id": complaint_id,
        "verified_on": (verified_on or days_ago(2)).isoformat(),
        "summary": "消费者反映短斤缺两，经核实属实",
    }


def post(client: TestClient, body: dict[str, Any], *, headers: dict[str, str],
         status: int = 201) -> dict[str, Any]:
    resp = client.post("/api/supervision/records", json=body, headers=headers)
    assert resp.status_code == status, resp.text
    return resp.json()  # type: ignore[no-any-return]


def credit(client: TestClient, uscc: str, **params: Any) -> dict[str, Any]:
    resp = client.get(f"/api/merchants/{uscc}/credit", params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]
