"""Versioned pledge (诚信计量承诺) templates, one per sector.

A pledge record names the template it accepted by ``(sector, version,
digest)``, where the digest is SHA-256 over the RFC 8785 canonical JSON of the
template. The text a merchant pledged must therefore never change after the
template is published: a change is a *new version* added to ``TEMPLATES``,
never an edit of an old one (tests pin the version-1 digests). Nothing here
does I/O.

Every template starts with the six generic items (G1-G6, from the
《商业、服务业诚信计量行为规范》 and domain.md) followed by the sector's own items.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

import rfc8785

from backend.merchants.reference import SECTORS, validate_sector


@dataclass(frozen=True, slots=True)
class PledgeItem:
    code: str
    text: str
    required: bool = True


@dataclass(frozen=True, slots=True)
class PledgeTemplate:
    sector: str
    version: int
    title: str
    items: tuple[PledgeItem, ...]

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(item.code for item in self.items)

    @property
    def required_codes(self) -> tuple[str, ...]:
        return tuple(item.code for item in self.items if item.required)


class PledgeTemplateNotFound(LookupError):
    """No template exists for the sector/version asked for."""

    def __init__(self, sector: str, version: int | None, message: str) -> None:
        super().__init__(message)
        self.sector = sector
        self.version = version


class InvalidPledgeAcceptance(ValueError):
    """The accepted item codes do not match the template."""

    def __init__(self, message: str, *, missing: tuple[str, ...], unknown: tuple[str, ...]) -> None:
        super().__init__(message)
        self.missing = missing
        self.unknown = unknown


GENERIC_ITEMS_V1: Final = (
    PledgeItem(
        "G1",
        "遵守《中华人民共和国计量法》等计量法律、法规和规章，自觉接受市场监督管理部门的计量监督检查。",
    ),
    PledgeItem(
        "G2",
        "使用的计量器具符合零售商品称重计量监督管理的有关规定，称重计量误差不超过规定的允许范围。",
    ),
    PledgeItem(
        "G3",
        "使用经法定计量检定机构检定合格并在有效期内的计量器具，"
        "不使用未经检定、检定不合格或者超过检定周期的计量器具。",
    ),
    PledgeItem(
        "G4",
        "计量时向消费者明示计量单位、计量过程和计量器具显示的量值；商品量短缺的，主动为消费者补足。",
    ),
    PledgeItem(
        "G5",
        "销售的定量包装商品，其净含量符合定量包装商品计量监督管理的有关规定。",
    ),
    PledgeItem(
        "G6",
        "遵守《商业、服务业诚信计量行为规范》，并在经营场所醒目位置公示本承诺。",
    ),
)

_SECTOR_ITEMS_V1: Final[dict[str, tuple[PledgeItem, ...]]] = {
    "market": (
        PledgeItem(
            "MARKET1",
            "在市场醒目位置设置公平秤，保持其准确可用，供消费者免费复核。",
        ),
        PledgeItem(
            "MARKET2",
            "建立场内经营者计量器具登记台账，督促场内经营者按期申请强制检定。",
        ),
        PledgeItem(
            "MARKET3",
            "在与场内经营者签订的入场协议中明确诚信计量的责任和义务。",
        ),
        PledgeItem(
            "MARKET4",
            "定期对场内经营者使用的计量器具开展自查，发现问题及时督促整改。",
            required=False,
        ),
    ),
    "fuel": (
        PledgeItem("FUEL1", "配备经检定合格的20升标准金属量器，供消费者核验加油量。"),
        PledgeItem("FUEL2", "保持燃油加油机的检定合格证和铅封等封印完好，不擅自拆启。"),
        PledgeItem(
            "FUEL3",
            "不安装作弊装置，不擅自改动燃油加油机的计量结构、部件或者参数。",
        ),
        PledgeItem("FUEL4", "燃油加油机维修后，经法定计量检定机构检定合格后方可投入使用。"),
    ),
    "optical": (
        PledgeItem(
            "OPTICAL1",
            "使用的焦度计、验光仪和验光镜片组等计量器具按期申请检定，检定合格后方可使用。",
        ),
        PledgeItem("OPTICAL2", "如实向消费者出具验光和配镜的计量数据。"),
    ),
    "catering": (
        PledgeItem(
            "CATERING1",
            "用于称重计价的计量器具检定合格，并放置在消费者能够看清读数的位置。",
        ),
        PledgeItem(
            "CATERING2",
            "以称重方式计价的菜品和食材按净重计价，不将包装物、容器的重量计入。",
        ),
    ),
    "retail": (
        PledgeItem(
            "RETAIL1",
            "用于称重计价的计量器具检定合格，并放置在消费者能够看清读数的位置。",
        ),
        PledgeItem("RETAIL2", "称重销售的商品按净重计价，不将包装物的重量计入。"),
    ),
    "taxi": (
        PledgeItem(
            "TAXI1", "使用的出租汽车计价器经检定合格，封印完好，并在明显位置张贴检定合格标志。"
        ),
        PledgeItem(
            "TAXI2",
            "不擅自改装、调整计价器，不安装作弊装置，按计价器显示金额收费。",
        ),
    ),
    "ev_charging": (
        PledgeItem("EV1", "使用的电动汽车充电设施经检定合格并在有效期内。"),
        PledgeItem("EV2", "充电过程中清晰显示充电电量、单价和金额，按实际充电电量计费。"),
    ),
    "prepackaged": (
        PledgeItem(
            "PKG1",
            "生产的定量包装商品净含量符合定量包装商品计量监督管理的有关规定。",
        ),
        PledgeItem(
            "PKG2",
            "作出净含量计量自我声明或者使用“C”标志的，如实声明，并持续保证商品净含量符合要求。",
        ),
        PledgeItem("PKG3", "配备与生产相适应的计量检测设备，并按规定检定或者校准。"),
    ),
    "medical": (
        PledgeItem(
            "MEDICAL1",
            "列入强制检定目录的医用计量器具按期申请检定，未经检定或者检定不合格的不得使用。",
        ),
        PledgeItem("MEDICAL2", "建立计量器具管理台账，指定专人负责计量器具的管理。"),
        PledgeItem(
            "MEDICAL3",
            "以称重方式计价的中药饮片等药品，按实际称量的重量计价。",
            required=False,
        ),
    ),
    "utility": (
        PledgeItem(
            "UTILITY1",
            "用于贸易结算的水表、电能表、燃气表经首次强制检定合格后方可安装使用，并按规定到期轮换。",
        ),
        PledgeItem("UTILITY2", "按照计量器具的实际示值抄表结算，不估抄、不多收。"),
        PledgeItem(
            "UTILITY3",
            "用户对计量结果有异议的，及时受理并告知申请检定的途径。",
        ),
    ),
    "other": (PledgeItem("OTHER1", "建立用于贸易结算的计量器具台账，按期申请检定。"),),
}


def _title(sector: str) -> str:
    if sector == "other":
        return "诚信计量承诺书"
    return f"{SECTORS[sector]}诚信计量承诺书"


def _build_v1() -> dict[tuple[str, int], PledgeTemplate]:
    return {
        (sector, 1): PledgeTemplate(
            sector=sector,
            version=1,
            title=_title(sector),
            items=GENERIC_ITEMS_V1 + _SECTOR_ITEMS_V1[sector],
        )
        for sector in SECTORS
    }


TEMPLATES: Final[Mapping[tuple[str, int], PledgeTemplate]] = MappingProxyType(_build_v1())
"""All published templates keyed by ``(sector, version)``. Only ever add."""


def get_template(sector: str, version: int) -> PledgeTemplate:
    """The template a pledge names; raises :class:`PledgeTemplateNotFound`."""
    template = TEMPLATES.get((sector, version))
    if template is None:
        versions = _versions(sector, version)
        raise PledgeTemplateNotFound(
            sector,
            version,
            f"no pledge template for sector {sector!r} version {version!r};"
            f" published versions: {', '.join(map(str, versions))}",
        )
    return template


def current_template(sector: str) -> PledgeTemplate:
    """The newest published template for ``sector``."""
    return TEMPLATES[(sector, max(_versions(sector, None)))]


def _versions(sector: str, version: int | None) -> list[int]:
    versions = sorted(v for s, v in TEMPLATES if s == sector)
    if not versions:
        try:
            validate_sector(sector)
        except ValueError as exc:
            raise PledgeTemplateNotFound(sector, version, str(exc)) from None
        # A sector without a template is a bug in this module, not bad input.
        raise RuntimeError(f"sector {sector!r} has no pledge template")  # pragma: no cover
    return versions


def template_document(template: PledgeTemplate) -> dict[str, Any]:
    """The JSON form of a template; its canonical bytes are what the digest covers."""
    return {
        "sector": template.sector,
        "version": template.version,
        "title": template.title,
        "items": [
            {"code": item.code, "text": item.text, "required": item.required}
            for item in template.items
        ],
    }


def template_digest(template: PledgeTemplate) -> str:
    """SHA-256 (lower-case hex) of the RFC 8785 canonical JSON of the template."""
    return hashlib.sha256(rfc8785.dumps(template_document(template))).hexdigest()


def validate_acceptance(template: PledgeTemplate, accepted_codes: Iterable[str]) -> None:
    """Raise :class:`InvalidPledgeAcceptance` unless ``accepted_codes`` covers
    every required item and names no item outside the template."""
    if isinstance(accepted_codes, str):
        raise TypeError("accepted_codes must be a collection of item codes, not a str")
    accepted = set(accepted_codes)
    missing = tuple(c for c in template.required_codes if c not in accepted)
    unknown = tuple(sorted(accepted - set(template.codes), key=str))
    if not missing and not unknown:
        return
    where = f"{template.sector} v{template.version}"
    parts = []
    if missing:
        parts.append(f"required items not accepted: {', '.join(missing)}")
    if unknown:
        parts.append(f"items not in the template: {', '.join(map(repr, unknown))}")
    raise InvalidPledgeAcceptance(
        f"pledge acceptance does not match template {where}: {'; '.join(parts)}",
        missing=missing,
        unknown=unknown,
    )
