"""How the pledge record kinds are shown to a person (``backend/ledger/kinds.py``).

Their body schemas and projections are in ``models.py`` and ``records.py``. The
demonstration award, which this package projects, is an outcome the regulators
enter: it is declared with the other outcomes, in ``backend/supervision/kinds.py``.
"""

from __future__ import annotations

from backend.ledger.kinds import Reader, RecordKind, Telling
from backend.pledges.records import PLEDGE_MADE, PLEDGE_WITHDRAWN


def _tell_made(r: Reader) -> Telling:
    valid_from = r.text("valid_from", "有效期起", "date")
    valid_until = r.text("valid_until", "有效期至", "date")
    items = r.value("items", "承诺事项", "count")
    facts = [
        ("有效期", f"{valid_from} 起，至 {valid_until} 前"),
        ("承诺事项", f"{len(items)} 项" if isinstance(items, list) else "—"),
    ]
    signer = r.value("signature.signer", "签名地址")
    if signer:
        facts.append(("电子签名", "EIP-712，签名地址 " + str(signer)))
    return Telling("作出诚信计量承诺", facts, "ok")


def _tell_withdrawn(r: Reader) -> Telling:
    return Telling(
        "撤回诚信计量承诺",
        [
            ("撤回日期", r.text("withdrawn_on", "撤回日期", "date")),
            ("原因", r.text("reason", "原因")),
        ],
        "warn",
    )


KINDS: tuple[RecordKind, ...] = (
    RecordKind(
        type=PLEDGE_MADE, label="诚信计量承诺", section="pledge-records", tell=_tell_made
    ),
    RecordKind(
        type=PLEDGE_WITHDRAWN,
        label="撤回诚信计量承诺",
        section="pledge-records",
        tell=_tell_withdrawn,
    ),
)
