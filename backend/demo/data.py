"""Deterministic made-up Bazhong merchants for demo seeding.

Everything produced here is invented: names, people, phone numbers and credit
codes (which pass the GB 32100 checks but are not looked up anywhere). It must
never be used to seed a production database. Output depends only on ``n`` and
``seed``; the generator does no I/O.

Each merchant is a dict with the keys of a ``merchant.registered`` record
(``uscc, name, sector, region_code, sub_area, address``) plus the private
``contact_name`` and ``contact_phone``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import partial
from typing import Any, Final

from backend.merchants.reference import DIVISIONS
from backend.uscc import ALPHABET, compute_check_chars

DEFAULT_SEED: Final = 511900

# Rough shares: livelihood trades dominate, metered utilities are few.
SECTOR_WEIGHTS: Final = {
    "catering": 26,
    "retail": 24,
    "market": 8,
    "fuel": 5,
    "optical": 4,
    "taxi": 4,
    "ev_charging": 3,
    "prepackaged": 7,
    "medical": 7,
    "utility": 2,
    "other": 10,
}
REGION_WEIGHTS: Final = {
    "511900": 8,
    "511902": 26,
    "511903": 12,
    "511921": 18,
    "511922": 16,
    "511923": 20,
}
# Share of enterprise (91), individual business (92), cooperative (93) per sector.
_ENTITY_WEIGHTS: Final = {
    "catering": (30, 70, 0),
    "retail": (35, 65, 0),
    "market": (85, 10, 5),
    "fuel": (100, 0, 0),
    "optical": (40, 60, 0),
    "taxi": (50, 50, 0),
    "ev_charging": (100, 0, 0),
    "prepackaged": (80, 5, 15),
    "medical": (60, 40, 0),
    "utility": (100, 0, 0),
    "other": (45, 40, 15),
}

_TOWNS: Final = {
    "511900": ("江北", "回风", "东城", "西城", "兴文"),
    "511902": ("江北", "回风", "东城", "西城", "宕梁", "清江", "曾口", "水宁寺", "化成", "梁永"),
    "511903": ("登科", "文治", "柳林", "下八庙", "玉山", "渔溪", "花丛", "三汇", "茶坝"),
    "511921": ("诺江", "民胜", "空山", "沙溪", "至诚", "铁佛", "瓦室", "涪阳", "永安", "陈河"),
    "511922": ("南江", "东榆", "长赤", "下两", "赶场", "正直", "大河", "坪河", "光雾山", "关坝"),
    "511923": ("江口", "同州", "驷马", "响滩", "白衣", "岳家", "元山", "土垭", "兰草", "得胜"),
}
_STREETS: Final = (
    "人民路",
    "新华街",
    "滨河路",
    "中山街",
    "建设路",
    "文化路",
    "解放街",
    "顺城街",
    "光明路",
    "和平街",
    "健康路",
    "育才路",
    "兴业路",
    "迎宾大道",
    "车站路",
    "商贸街",
)
_CITY_STREETS: Final = ("江北大道", "巴州大道", "回风大道", "将军路", "老街", "红军路")
_SURNAMES: Final = (
    "王",
    "李",
    "张",
    "刘",
    "陈",
    "杨",
    "赵",
    "黄",
    "周",
    "吴",
    "徐",
    "何",
    "罗",
    "苟",
    "向",
    "岳",
    "蒲",
    "邓",
    "唐",
    "冯",
    "谢",
    "曾",
    "彭",
    "胡",
    "郑",
    "马",
    "袁",
    "熊",
)
_GIVEN: Final = (
    "建国",
    "秀英",
    "志强",
    "桂芳",
    "明",
    "丽",
    "军",
    "敏",
    "静",
    "伟",
    "芳",
    "勇",
    "艳",
    "杰",
    "涛",
    "磊",
    "婷",
    "超",
    "红梅",
    "德华",
    "小平",
    "玉兰",
    "海燕",
    "春林",
    "文斌",
    "建华",
    "晓燕",
    "国强",
    "凤英",
    "大勇",
    "家明",
    "永红",
    "淑芬",
    "志华",
)
_WORDS: Final = (
    "巴山",
    "光雾",
    "米仓",
    "红星",
    "兴旺",
    "福源",
    "顺达",
    "恒通",
    "鑫隆",
    "惠民",
    "聚源",
    "宏发",
    "金秋",
    "长青",
    "康泰",
    "瑞丰",
    "嘉禾",
    "盛世",
    "和美",
    "永盛",
    "佳乐",
    "祥和",
    "益民",
    "诚信",
    "百顺",
    "川北",
    "秦巴",
    "巴河",
    "恩阳河",
    "通河",
    "明江",
    "鼎盛",
    "万家",
    "利民",
    "天成",
    "金桥",
    "新城",
    "汇通",
    "安康",
    "福瑞",
)
_PHONE_PREFIXES: Final = (
    "130",
    "131",
    "132",
    "133",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "153",
    "155",
    "156",
    "158",
    "159",
    "177",
    "180",
    "181",
    "182",
    "183",
    "185",
    "186",
    "187",
    "188",
    "189",
    "199",
)
_SPECIAL_SPECIALTIES: Final = {
    "511921": "通江银耳",
    "511922": "南江黄羊",
    "511923": "平昌青花椒",
    "511903": "恩阳十大碗",
}


def generate_merchants(n: int, *, seed: int = DEFAULT_SEED) -> list[dict[str, Any]]:
    """``n`` made-up merchants; every sector and every division appears once
    ``n`` is at least their count (11 and 6); codes and names are unique."""
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    rng = random.Random(seed)
    sectors = _spread(n, SECTOR_WEIGHTS, rng)
    regions = _spread(n, REGION_WEIGHTS, rng)
    codes: set[str] = set()
    names: set[str] = set()
    phones: set[str] = set()
    out: list[dict[str, Any]] = []
    for sector, region in zip(sectors, regions, strict=True):
        entity = rng.choices(("1", "2", "3"), _ENTITY_WEIGHTS[sector])[0]
        uscc = _unique(codes, partial(random_uscc, rng, entity, region))
        sub_area = _sub_area(rng, region)
        town = rng.choice(_TOWNS[region])
        for attempt in range(1, 1000):
            surname, given = rng.choice(_SURNAMES), rng.choice(_GIVEN)
            name = _name(rng, sector, entity, region, town, surname, given)
            if attempt > 50:
                # A crowded pattern (few words x few towns): number the branch
                # the way real chains do rather than loop for ever.
                name += f"第{attempt}分店"
            if name not in names:
                break
        else:  # pragma: no cover
            raise RuntimeError("demo-data generator ran out of unique names")
        names.add(name)
        out.append(
            {
                "uscc": uscc,
                "name": name,
                "sector": sector,
                "region_code": region,
                "sub_area": sub_area,
                "address": _address(rng, region, town, sub_area),
                "contact_name": surname + given,
                "contact_phone": _unique(phones, lambda: _phone(rng)),
            }
        )
    return out


def _spread(n: int, weights: dict[str, int], rng: random.Random) -> list[str]:
    """Largest-remainder apportionment with at least one of each key (if n
    allows), shuffled: a realistic, exactly reproducible mix."""
    keys = list(weights)
    floor = 1 if n >= len(keys) else 0
    rest = n - floor * len(keys)
    total = sum(weights.values())
    exact = {k: rest * weights[k] / total for k in keys}
    counts = {k: floor + int(exact[k]) for k in keys}
    short = n - sum(counts.values())
    for k in sorted(keys, key=lambda k: exact[k] - int(exact[k]), reverse=True)[:short]:
        counts[k] += 1
    items = [k for k in keys for _ in range(counts[k])]
    rng.shuffle(items)
    return items


def _unique(seen: set[str], make: Callable[[], str]) -> str:
    for _ in range(1000):
        value = make()
        if value not in seen:
            seen.add(value)
            return value
    raise RuntimeError("demo-data generator ran out of unique values")  # pragma: no cover


def random_uscc(rng: random.Random, entity: str = "1", region: str = "511902") -> str:
    """A well-formed credit code (check characters by backend/uscc.py) for a made-up
    entity of type ``entity`` registered in division ``region``."""
    if rng.random() < 0.85:
        # Codes issued since 2015 carry a body starting 'MA'; Sichuan's read MA6x.
        body = "MA6" + rng.choice("12ABCDE") + "".join(rng.choices(ALPHABET, k=4))
    else:
        # Older codes reuse the pre-2015 all-digit organisation code.
        body = "".join(rng.choices("0123456789", k=8))
    prefix = "9" + entity + region + body
    return prefix + compute_check_chars(prefix)


def _sub_area(rng: random.Random, region: str) -> str | None:
    if region in ("511900", "511902") and rng.random() < 0.12:
        return "jingkai"
    if region in ("511902", "511903") and rng.random() < 0.06:
        return "wenlv"
    return None


def _county(region: str) -> str:
    return "巴中市" if region == "511900" else DIVISIONS[region]


def _address(rng: random.Random, region: str, town: str, sub_area: str | None) -> str:
    number = f"{rng.randint(1, 399)}号"
    if sub_area == "jingkai":
        return f"巴中市巴州区巴中经济技术开发区{rng.choice(_STREETS)}{number}"
    if sub_area == "wenlv":
        return f"巴中市{DIVISIONS[region]}文旅新区{rng.choice(_STREETS)}{number}"
    if region in ("511900", "511902"):
        street = rng.choice(_CITY_STREETS + _STREETS)
        return f"巴中市巴州区{street}{number}"
    return f"巴中市{DIVISIONS[region]}{town}镇{rng.choice(_STREETS)}{number}"


def _phone(rng: random.Random) -> str:
    return rng.choice(_PHONE_PREFIXES) + f"{rng.randrange(10**8):08d}"


def _name(
    rng: random.Random, sector: str, entity: str, region: str, town: str, surname: str, given: str
) -> str:
    """A shop name fitting the sector; an individual business is often named
    after its operator, who is then also the contact person."""
    county = _county(region)
    word = rng.choice(_WORDS)
    if entity == "3":
        product = rng.choice(("银耳种植", "青花椒种植", "茶叶", "核桃种植", "黄羊养殖", "蔬菜种植"))
        return f"{county}{town}{word}{product}专业合作社"
    company = entity == "1"
    match sector:
        case "catering":
            dish = _SPECIAL_SPECIALTIES.get(region) if rng.random() < 0.15 else None
            if dish:
                return f"{county}{town}{surname}记{dish}"
            kind = rng.choice(
                (
                    "川菜馆",
                    "火锅店",
                    "面馆",
                    "小吃店",
                    "饭店",
                    "酒楼",
                    "烧烤店",
                    "羊肉汤锅",
                    "米粉店",
                    "豆花饭庄",
                )
            )
            return f"{county}{rng.choice((f'{surname}记', word, town))}{kind}"
        case "retail":
            kind = rng.choice(
                (
                    "便民超市",
                    "粮油店",
                    "副食店",
                    "水果店",
                    "生鲜超市",
                    "土特产店",
                    "茶叶店",
                    "日杂店",
                )
            )
            if company:
                return f"巴中市{word}{rng.choice(('超市', '商贸'))}有限公司{town}店"
            return f"{county}{town}{rng.choice((f'{surname}记', word, '老街', '好又多'))}{kind}"
        case "market":
            kind = rng.choice(("农贸市场", "集贸市场", "综合市场", "菜市场"))
            return f"{county}{town}{rng.choice(('', '新街', '老街', '东街', '西街', word))}{kind}"
        case "fuel":
            brand = rng.choice(("中石化", "中石油", "中石化", "中石油", word))
            return f"{county}{brand}{town}{rng.choice(('', '一', '二'))}加油站"
        case "optical":
            word = rng.choice(("明亮", "视康", "清晰", "亮视", "明目", "视界", "睛彩", "光明"))
            return f"{county}{town}{word}眼镜{rng.choice(('店', '店', '行', '中心'))}"
        case "taxi":
            if company:
                kind = rng.choice(("出租汽车", "出租汽车", "客运", "汽车运输", "交通运输"))
                return f"巴中市{word}{kind}有限公司"
            return f"{county}{surname}{given}出租车客运服务部"
        case "ev_charging":
            return f"巴中市{word}新能源科技有限公司{town}充电站"
        case "prepackaged":
            product = rng.choice(("食品", "银耳", "茶业", "粮油", "酒业", "调味品", "腊肉制品"))
            return f"{county}{word}{product}有限公司"
        case "medical":
            kind = rng.choice(("诊所", "中医诊所", "口腔诊所", "口腔门诊部", "社区卫生服务站"))
            if company:
                return f"{county}{word}{rng.choice(('医院', '口腔医院', '中医医院'))}有限公司"
            return f"{county}{town}{surname}{given}{kind}"
        case "utility":
            kind = rng.choice(("供水有限公司", "水务有限公司", "燃气有限公司", "天然气有限公司"))
            return f"{county}{word}{kind}"
        case _:
            kind = rng.choice(
                (
                    "废旧物资回收站",
                    "农资经营部",
                    "金银饰品店",
                    "粮食收购点",
                    "物流有限公司" if company else "快递代收点",
                )
            )
            return f"{county}{town}{rng.choice((word, f'{surname}记'))}{kind}"
