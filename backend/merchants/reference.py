"""Fixed reference data for Bazhong merchants: divisions, sub-areas, sectors,
published spot-check result values and abnormal-operations list reasons.

These are the closed vocabularies the API accepts and the ledger records
carry; a value outside them is refused here, with the allowed values named,
rather than stored. The data is frozen at import: editing a value that has
already been written to the ledger would silently change old records' meaning,
so values are only ever added. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

CITY_CODE: Final = "511900"

DIVISIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "511900": "巴中市",
        "511902": "巴州区",
        "511903": "恩阳区",
        "511921": "通江县",
        "511922": "南江县",
        "511923": "平昌县",
    }
)
"""GB/T 2260 codes → names. 511900 is for merchants registered at city level."""


@dataclass(frozen=True, slots=True)
class SubArea:
    """A management area inside the city; *not* a GB/T 2260 division, so never
    a value for code positions 3-8 or for ``region_code``."""

    code: str
    name: str
    stats_code: str | None


SUB_AREAS: Final[Mapping[str, SubArea]] = MappingProxyType(
    {
        "jingkai": SubArea("jingkai", "巴中经开区", "511971"),
        "wenlv": SubArea("wenlv", "文旅新区", None),
    }
)

SECTORS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "market": "集贸市场",
        "fuel": "加油站",
        "optical": "眼镜店",
        "catering": "餐饮",
        "retail": "商店/超市",
        "taxi": "出租车",
        "ev_charging": "电动汽车充电桩",
        "prepackaged": "定量包装商品生产",
        "medical": "医疗机构",
        "utility": "水电气供应",
        "other": "其他",
    }
)

SPOT_CHECK_RESULTS: Final[tuple[str, ...]] = (
    "未发现问题",
    "发现问题已责令改正",
    "未按规定公示信息",
    "通过登记的住所(经营场所)无法联系",
    "不配合检查情节严重",
    "未发现开展本次抽查涉及的经营活动",
    "发现问题待后续处理",
)
"""The result values published on the national enterprise credit publicity
system; records store the Chinese text itself, exactly as published."""


@dataclass(frozen=True, slots=True)
class ListReason:
    code: str
    name: str
    cure: str
    """What removes the merchant from the list for this reason."""


ABNORMAL_LIST_REASONS: Final[Mapping[str, ListReason]] = MappingProxyType(
    {
        r.code: r
        for r in (
            ListReason(
                "annual_report_not_filed",
                "未按照规定的期限公示年度报告",
                "补报未报年份的年度报告并公示",
            ),
            ListReason(
                "ordered_info_not_published",
                "未在责令的期限内公示有关企业信息",
                "履行公示义务，公示有关企业信息",
            ),
            ListReason(
                "false_information",
                "公示企业信息隐瞒真实情况、弄虚作假",
                "更正其公示的信息",
            ),
            ListReason(
                "unreachable_at_address",
                "通过登记的住所或者经营场所无法联系",
                "依法办理住所或者经营场所变更登记，"
                "或者提出通过登记的住所或者经营场所可以重新取得联系",
            ),
        )
    }
)


def _allowed(names: Mapping[str, str]) -> str:
    return ", ".join(f"{code} ({name})" for code, name in names.items())


def validate_region(code: str) -> str:
    """Return ``code`` if it is a Bazhong division code, else raise ValueError."""
    if code not in DIVISIONS:
        raise ValueError(
            f"unknown region code {code!r}; allowed: {_allowed(DIVISIONS)}"
            f" (巴中经开区/文旅新区 are sub-areas, not region codes)"
        )
    return code


def validate_sector(code: str) -> str:
    """Return ``code`` if it is a sector code, else raise ValueError."""
    if code not in SECTORS:
        raise ValueError(f"unknown sector {code!r}; allowed: {_allowed(SECTORS)}")
    return code


def validate_sub_area(code: str | None) -> str | None:
    """Return ``code`` (``None`` means no sub-area) if known, else raise ValueError."""
    if code is not None and code not in SUB_AREAS:
        raise ValueError(
            f"unknown sub-area {code!r}; allowed: "
            f"{_allowed({k: a.name for k, a in SUB_AREAS.items()})}, or none"
        )
    return code


def validate_spot_check_result(value: str) -> str:
    if value not in SPOT_CHECK_RESULTS:
        raise ValueError(
            f"unknown spot-check result {value!r}; allowed: {'、'.join(SPOT_CHECK_RESULTS)}"
        )
    return value


def validate_abnormal_list_reason(code: str) -> str:
    if code not in ABNORMAL_LIST_REASONS:
        raise ValueError(
            f"unknown abnormal-list reason {code!r}; allowed: "
            f"{_allowed({k: r.name for k, r in ABNORMAL_LIST_REASONS.items()})}"
        )
    return code
