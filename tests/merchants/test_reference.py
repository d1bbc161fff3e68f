from __future__ import annotations

import pytest

from backend.merchants.reference import (
    ABNORMAL_LIST_REASONS,
    DIVISIONS,
    SECTORS,
    SPOT_CHECK_RESULTS,
    SUB_AREAS,
    validate_abnormal_list_reason,
    validate_region,
    validate_sector,
    validate_spot_check_result,
    validate_sub_area,
)


class TestDivisions:
    def test_exact(self) -> None:
        assert dict(DIVISIONS) == {
            "511900": "巴中市",
            "511902": "巴州区",
            "511903": "恩阳区",
            "511921": "通江县",
            "511922": "南江县",
            "511923": "平昌县",
        }

    @pytest.mark.parametrize("code", ["511900", "511902", "511923"])
    def test_valid(self, code: str) -> None:
        assert validate_region(code) == code

    @pytest.mark.parametrize("code", ["511971", "jingkai", "510100", "", "511901"])
    def test_invalid_names_allowed_values(self, code: str) -> None:
        with pytest.raises(ValueError) as info:
            validate_region(code)
        message = str(info.value)
        assert f"unknown region code {code!r}" in message
        for allowed, name in DIVISIONS.items():
            assert f"{allowed} ({name})" in message
        assert "sub-areas, not region codes" in message

    def test_immutable(self) -> None:
        with pytest.raises(TypeError):
            DIVISIONS["511971"] = "巴中经开区"  # type: ignore[index]


class TestSubAreas:
    def test_exact(self) -> None:
        assert {k: (a.name, a.stats_code) for k, a in SUB_AREAS.items()} == {
            "jingkai": ("巴中经开区", "511971"),
            "wenlv": ("文旅新区", None),
        }

    def test_stats_codes_are_not_divisions(self) -> None:
        for area in SUB_AREAS.values():
            assert area.stats_code not in DIVISIONS

    @pytest.mark.parametrize("code", ["jingkai", "wenlv", None])
    def test_valid(self, code: str | None) -> None:
        assert validate_sub_area(code) == code

    @pytest.mark.parametrize("code", ["511971", "JINGKAI", "", "经开区"])
    def test_invalid(self, code: str) -> None:
        with pytest.raises(ValueError) as info:
            validate_sub_area(code)
        message = str(info.value)
        assert f"unknown sub-area {code!r}" in message
        assert "jingkai (巴中经开区), wenlv (文旅新区), or none" in message


class TestSectors:
    def test_exact(self) -> None:
        assert dict(SECTORS) == {
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

    @pytest.mark.parametrize("code", list(SECTORS))
    def test_valid(self, code: str) -> None:
        assert validate_sector(code) == code

    @pytest.mark.parametrize("code", ["Fuel", "加油站", "restaurant", ""])
    def test_invalid(self, code: str) -> None:
        with pytest.raises(ValueError) as info:
            validate_sector(code)
        message = str(info.value)
        assert f"unknown sector {code!r}" in message
        assert "fuel (加油站)" in message
        assert "ev_charging (电动汽车充电桩)" in message


class TestSpotCheckResults:
    def test_exact_published_values(self) -> None:
        assert SPOT_CHECK_RESULTS == (
            "未发现问题",
            "发现问题已责令改正",
            "未按规定公示信息",
            "通过登记的住所(经营场所)无法联系",
            "不配合检查情节严重",
            "未发现开展本次抽查涉及的经营活动",
            "发现问题待后续处理",
        )

    def test_validate(self) -> None:
        assert validate_spot_check_result("未发现问题") == "未发现问题"
        with pytest.raises(ValueError) as info:
            validate_spot_check_result("合格")
        assert "unknown spot-check result '合格'" in str(info.value)
        assert "发现问题待后续处理" in str(info.value)


class TestAbnormalListReasons:
    def test_four_reasons(self) -> None:
        assert {k: r.name for k, r in ABNORMAL_LIST_REASONS.items()} == {
            "annual_report_not_filed": "未按照规定的期限公示年度报告",
            "ordered_info_not_published": "未在责令的期限内公示有关企业信息",
            "false_information": "公示企业信息隐瞒真实情况、弄虚作假",
            "unreachable_at_address": "通过登记的住所或者经营场所无法联系",
        }
        for code, reason in ABNORMAL_LIST_REASONS.items():
            assert reason.code == code
            assert reason.cure

    def test_validate(self) -> None:
        assert validate_abnormal_list_reason("false_information") == "false_information"
        with pytest.raises(ValueError) as info:
            validate_abnormal_list_reason("late_report")
        assert "unknown abnormal-list reason 'late_report'" in str(info.value)
        assert "annual_report_not_filed (未按照规定的期限公示年度报告)" in str(info.value)
