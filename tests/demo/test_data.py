from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest

from backend.demo.data import DEFAULT_SEED, generate_merchants
from backend.merchants.reference import (
    DIVISIONS,
    SECTORS,
    validate_region,
    validate_sector,
    validate_sub_area,
)
from backend.uscc import uscc_parts, validate_uscc

KEYS = {
    "uscc",
    "name",
    "sector",
    "region_code",
    "sub_area",
    "address",
    "contact_name",
    "contact_phone",
}
CJK = re.compile(r"^[\u4e00-\u9fff]+$")
# Sectors whose names must say what they are (cooperatives excepted).
SECTOR_WORDS = {
    "market": ("市场",),
    "fuel": ("加油站",),
    "optical": ("眼镜",),
    "taxi": ("出租", "客运", "运输"),
    "ev_charging": ("充电",),
    "utility": ("供水", "水务", "燃气", "天然气"),
    "medical": ("诊所", "门诊部", "医院", "卫生服务站"),
}


@pytest.fixture(scope="module")
def merchants() -> list[dict[str, Any]]:
    return generate_merchants(2000)


class TestValidity:
    def test_shape(self, merchants: list[dict[str, Any]]) -> None:
        assert len(merchants) == 2000
        assert all(set(m) == KEYS for m in merchants)

    def test_codes_validate_and_are_unique(self, merchants: list[dict[str, Any]]) -> None:
        codes = [m["uscc"] for m in merchants]
        assert all(validate_uscc(c) == c for c in codes)
        assert len(set(codes)) == len(codes)

    def test_codes_are_bazhong_market_regulator_codes(
        self, merchants: list[dict[str, Any]]
    ) -> None:
        for m in merchants:
            parts = uscc_parts(m["uscc"])
            assert parts["authority"] == "9"
            assert parts["entity_type"] in {"1", "2", "3"}
            assert parts["division_code"] == m["region_code"]
            if parts["entity_type"] == "3":
                assert m["name"].endswith("专业合作社")
        prefixes = Counter(m["uscc"][:2] for m in merchants)
        assert set(prefixes) == {"91", "92", "93"}
        assert sum(m["uscc"][8:10] == "MA" for m in merchants) > len(merchants) * 0.7

    def test_reference_values(self, merchants: list[dict[str, Any]]) -> None:
        for m in merchants:
            validate_sector(m["sector"])
            validate_region(m["region_code"])
            validate_sub_area(m["sub_area"])

    def test_names(self, merchants: list[dict[str, Any]]) -> None:
        names = [m["name"] for m in merchants]
        assert len(set(names)) == len(names)
        for m in merchants:
            county = "巴中市" if m["region_code"] == "511900" else DIVISIONS[m["region_code"]]
            assert county in m["name"] or m["name"].startswith("巴中市"), m
            words = SECTOR_WORDS.get(m["sector"])
            if words and not m["name"].endswith("专业合作社"):
                assert any(w in m["name"] for w in words), m

    def test_addresses(self, merchants: list[dict[str, Any]]) -> None:
        for m in merchants:
            address = m["address"]
            assert re.fullmatch(r"巴中市\S+?\d{1,3}号", address), address
            if m["region_code"] not in ("511900",):
                assert DIVISIONS[m["region_code"]] in address
            if m["sub_area"] == "jingkai":
                assert "经济技术开发区" in address
            if m["sub_area"] == "wenlv":
                assert "文旅新区" in address

    def test_contacts(self, merchants: list[dict[str, Any]]) -> None:
        phones = [m["contact_phone"] for m in merchants]
        assert all(re.fullmatch(r"1[3-9]\d{9}", p) for p in phones)
        assert len(set(phones)) == len(phones)
        assert all(
            CJK.match(m["contact_name"]) and 2 <= len(m["contact_name"]) <= 3 for m in merchants
        )


class TestSpread:
    def test_realistic_sector_mix(self, merchants: list[dict[str, Any]]) -> None:
        counts = Counter(m["sector"] for m in merchants)
        assert counts["catering"] + counts["retail"] + counts["market"] > len(merchants) / 2
        for few in ("fuel", "optical", "taxi", "ev_charging", "utility"):
            assert counts[few] < counts["catering"] / 3
            assert counts[few] < counts["retail"] / 3

    @pytest.mark.parametrize("seed", [0, 1, 2, DEFAULT_SEED])
    def test_every_sector_and_division_at_200(self, seed: int) -> None:
        ms = generate_merchants(200, seed=seed)
        assert {m["sector"] for m in ms} == set(SECTORS)
        assert {m["region_code"] for m in ms} == set(DIVISIONS)

    def test_every_sector_as_soon_as_n_allows(self) -> None:
        assert {m["sector"] for m in generate_merchants(len(SECTORS))} == set(SECTORS)

    def test_sub_areas_appear(self, merchants: list[dict[str, Any]]) -> None:
        assert {m["sub_area"] for m in merchants} == {None, "jingkai", "wenlv"}


class TestDeterminism:
    def test_same_seed_same_output(self) -> None:
        assert generate_merchants(300, seed=7) == generate_merchants(300, seed=7)

    def test_default_seed(self, merchants: list[dict[str, Any]]) -> None:
        assert generate_merchants(2000, seed=DEFAULT_SEED) == merchants

    def test_different_seed_different_output(self) -> None:
        assert generate_merchants(50, seed=1) != generate_merchants(50, seed=2)

    def test_small_and_empty(self) -> None:
        assert generate_merchants(0) == []
        assert len(generate_merchants(1)) == 1
        with pytest.raises(ValueError):
            generate_merchants(-1)


