"""How the merchant record kinds are shown to a person (``backend/ledger/kinds.py``).

Their body schemas and projections are in ``models.py`` and ``records.py``.
"""

from __future__ import annotations

from backend.ledger.kinds import Reader, RecordKind, Telling
from backend.merchants.records import REGISTERED, VERIFIED
from backend.merchants.reference import DIVISIONS, SECTORS


def _tell_registered(r: Reader) -> Telling:
    sector = r.text("sector", "行业")
    region = r.text("region_code", "地区")
    return Telling(
        "登记注册",
        [
            ("名称", r.text("name", "名称")),
            ("行业", SECTORS.get(sector, sector)),
            ("地区", DIVISIONS.get(region, region)),
            ("地址", r.text("address", "地址")),
        ],
    )


def _tell_verified(r: Reader) -> Telling:
    facts = [("核验日期", r.text("verified_on", "核验日期", "date"))]
    return Telling("市场监管部门已核验登记信息", facts, "ok")


KINDS: tuple[RecordKind, ...] = (
    RecordKind(
        type=REGISTERED, label="登记注册", section="registration", tell=_tell_registered
    ),
    RecordKind(
        type=VERIFIED, label="登记信息核验", section="registration", tell=_tell_verified
    ),
)
