"""How the credit-repair record kinds are shown to a person (``backend/ledger/kinds.py``).

Their body schemas and projections are in ``models.py`` and ``records.py``. A
repair is listed with the penalty it repairs.
"""

from __future__ import annotations

from backend.credit.records import REPAIR_APPLIED, REPAIR_DECIDED
from backend.ledger.kinds import Reader, RecordKind, Telling


def _tell_applied(r: Reader) -> Telling:
    return Telling(
        "申请信用修复",
        [
            ("申请日期", r.text("applied_on", "申请日期", "date")),
            ("说明", r.text("statement", "说明")),
        ],
    )


def _tell_decided(r: Reader) -> Telling:
    ok = r.value("decision", "修复决定") == "approved"
    return Telling(
        "信用修复：" + ("准予修复" if ok else "不予修复"),
        [
            ("决定日期", r.text("decided_on", "决定日期", "date")),
            ("理由", r.text("reason", "理由")),
        ],
        "ok" if ok else "warn",
    )


KINDS: tuple[RecordKind, ...] = (
    RecordKind(
        type=REPAIR_APPLIED, label="申请信用修复", section="penalty", tell=_tell_applied
    ),
    RecordKind(
        type=REPAIR_DECIDED, label="信用修复决定", section="penalty", tell=_tell_decided
    ),
)
