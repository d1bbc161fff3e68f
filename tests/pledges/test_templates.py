from __future__ import annotations

import dataclasses
import hashlib
import json
import unicodedata
from types import MappingProxyType

import pytest

from backend.merchants.reference import SECTORS
from backend.pledges import templates
from backend.pledges.templates import (
    GENERIC_ITEMS_V1,
    TEMPLATES,
    InvalidPledgeAcceptance,
    PledgeItem,
    PledgeTemplate,
    PledgeTemplateNotFound,
    current_template,
    get_template,
    template_digest,
    template_document,
    validate_acceptance,
)

# Pinned: a pledge record names its template by this digest, so the text of a
# published version must never change. If this test fails, do not update the
# hex here: put the new wording in a new version instead.
V1_DIGESTS = {
    "market": "ad8422d11a546e1fa4946370da3420b66fc94a7689ba7e234a8ca762dd710c02",
    "fuel": "520915bae592231503d2e2868f7948c85b49a8d5db56c06e06ce904172e76cdc",
    "optical": "9162be995b81b0c0d8ad68c2d8c88489a509b84a28bd1a999fba41a02f1a6b2a",
    "catering": "f4a4196bb77af7205928bea64756e2ef9ad0da31e107d0d72697ac180167a1b3",
    "retail": "a74b4546ea70774fac8fa22e4cef66c69778c67b7070f3d92151e926fceb05d5",
    "taxi": "85b5120caca9ff5ae825f02948a97ad403a580cf4708aaa19c3dcdf09a158682",
    "ev_charging": "d76a0c85ed58713cd1a4c4c639b042d82459c53ec0ecc361e0a7b7b42909a096",
    "prepackaged": "249a3046c85db0242753e491f86f5cf2fbc12dd36d1ca5f1bcc63fea787b986b",
    "medical": "1390e1ab2449602ce2594a658b2c8a353dd298cf72f6d9f03dbc0aa540166c46",
    "utility": "a48daeefb9c0cb51b5f1c32938e85bbfed1172d6f7a131f45aa5119d8ffd38ef",
    "other": "e7c8bfa7a28f53e99b0871b5e4ff9901406ce4a801e42df3f05cd0fa209e012b",
}

ALL_V1 = [TEMPLATES[(sector, 1)] for sector in SECTORS]


class TestPins:
    def test_every_sector_is_pinned(self) -> None:
        assert set(V1_DIGESTS) == set(SECTORS)

    @pytest.mark.parametrize("sector", list(V1_DIGESTS))
    def test_v1_digest(self, sector: str) -> None:
        assert template_digest(get_template(sector, 1)) == V1_DIGESTS[sector]

    def test_digest_is_sha256_of_jcs(self) -> None:
        # Independent JCS for this document: only strings, bools and small
        # integers, so sorted keys + no whitespace + raw UTF-8 is exactly RFC 8785.
        t = get_template("fuel", 1)
        jcs = json.dumps(
            template_document(t), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
        assert template_digest(t) == hashlib.sha256(jcs).hexdigest()

    def test_document_shape(self) -> None:
        doc = template_document(get_template("taxi", 1))
        assert list(doc) == ["sector", "version", "title", "items"]
        assert doc["sector"] == "taxi" and doc["version"] == 1
        assert doc["title"] == "出租车诚信计量承诺书"
        assert doc["items"][0] == {"code": "G1", "text": GENERIC_ITEMS_V1[0].text, "required": True}

    @pytest.mark.parametrize(
        "change",
        [
            {"title": "加油站诚信计量承诺"},
            {"version": 2},
            {"items": GENERIC_ITEMS_V1},
        ],
    )
    def test_any_change_changes_the_digest(self, change: dict[str, object]) -> None:
        t = get_template("fuel", 1)
        assert template_digest(dataclasses.replace(t, **change)) != template_digest(t)  # type: ignore[arg-type]

    def test_one_character_of_text_changes_the_digest(self) -> None:
        t = get_template("fuel", 1)
        items = list(t.items)
        items[6] = dataclasses.replace(items[6], text=items[6].text.replace("20升", "20 升"))
        assert template_digest(dataclasses.replace(t, items=tuple(items))) != template_digest(t)

    def test_required_flag_changes_the_digest(self) -> None:
        t = get_template("market", 1)
        items = tuple(dataclasses.replace(i, required=True) for i in t.items)
        assert template_digest(dataclasses.replace(t, items=items)) != template_digest(t)


class TestContent:
    @pytest.mark.parametrize("t", ALL_V1, ids=lambda t: t.sector)
    def test_generic_items_first_and_required(self, t: PledgeTemplate) -> None:
        assert t.items[:6] == GENERIC_ITEMS_V1
        assert [i.code for i in t.items[:6]] == ["G1", "G2", "G3", "G4", "G5", "G6"]
        assert all(i.required for i in t.items[:6])

    @pytest.mark.parametrize("t", ALL_V1, ids=lambda t: t.sector)
    def test_sector_items(self, t: PledgeTemplate) -> None:
        own = t.items[6:]
        assert own, "every sector adds at least one item of its own"
        assert sum(i.required for i in own) >= 1
        assert len(set(t.codes)) == len(t.codes)
        prefix = own[0].code.rstrip("0123456789")
        assert all(i.code.rstrip("0123456789") == prefix for i in own)

    @pytest.mark.parametrize("t", ALL_V1, ids=lambda t: t.sector)
    def test_text_is_formal_nfc_chinese(self, t: PledgeTemplate) -> None:
        assert t.title.endswith("诚信计量承诺书")
        for item in t.items:
            assert item.text == unicodedata.normalize("NFC", item.text)
            assert item.text.endswith("。")
            assert item.text == item.text.strip()

    def test_item_codes_are_not_reused_across_sectors_for_different_text(self) -> None:
        texts: dict[str, str] = {}
        for t in ALL_V1:
            for item in t.items:
                assert texts.setdefault(item.code, item.text) == item.text

    @pytest.mark.parametrize(
        "sector, needle",
        [
            ("fuel", "20升标准金属量器"),
            ("fuel", "铅封"),
            ("market", "公平秤"),
            ("market", "入场协议"),
            ("optical", "焦度计、验光仪和验光镜片组"),
            ("taxi", "计价器"),
            ("ev_charging", "充电电量"),
            ("prepackaged", "“C”标志"),
            ("catering", "净重"),
            ("retail", "净重"),
        ],
    )
    def test_domain_sector_additions_present(self, sector: str, needle: str) -> None:
        assert any(needle in i.text for i in get_template(sector, 1).items)

    def test_frozen(self) -> None:
        t = get_template("fuel", 1)
        with pytest.raises(dataclasses.FrozenInstanceError):
            t.title = "x"  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError):
            t.items[0].text = "x"  # type: ignore[misc]
        with pytest.raises(TypeError):
            TEMPLATES[("fuel", 9)] = t  # type: ignore[index]


class TestLookup:
    def test_get_template(self) -> None:
        t = get_template("optical", 1)
        assert (t.sector, t.version) == ("optical", 1)

    def test_unknown_version(self) -> None:
        with pytest.raises(PledgeTemplateNotFound) as info:
            get_template("fuel", 7)
        assert (info.value.sector, info.value.version) == ("fuel", 7)
        assert str(info.value) == (
            "no pledge template for sector 'fuel' version 7; published versions: 1"
        )

    @pytest.mark.parametrize(
        "lookup", [lambda: get_template("bakery", 1), lambda: current_template("bakery")]
    )
    def test_unknown_sector(self, lookup: object) -> None:
        with pytest.raises(PledgeTemplateNotFound) as info:
            lookup()  # type: ignore[operator]
        assert "unknown sector 'bakery'" in str(info.value)
        assert "fuel (加油站)" in str(info.value)

    def test_current_is_v1_today(self) -> None:
        for sector in SECTORS:
            assert current_template(sector) is TEMPLATES[(sector, 1)]

    def test_current_picks_the_newest_and_old_stays_reachable(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        v1 = TEMPLATES[("fuel", 1)]
        v2 = dataclasses.replace(v1, version=2, items=v1.items + (PledgeItem("FUEL5", "新增。"),))
        monkeypatch.setattr(
            templates, "TEMPLATES", MappingProxyType({**TEMPLATES, ("fuel", 2): v2})
        )
        assert current_template("fuel") is v2
        assert get_template("fuel", 1) is v1
        assert template_digest(get_template("fuel", 1)) == V1_DIGESTS["fuel"]
        with pytest.raises(PledgeTemplateNotFound, match="published versions: 1, 2"):
            get_template("fuel", 3)


class TestAcceptance:
    def test_all_items(self) -> None:
        t = get_template("market", 1)
        validate_acceptance(t, t.codes)

    def test_optional_items_may_be_left_out(self) -> None:
        t = get_template("market", 1)
        assert "MARKET4" not in t.required_codes
        validate_acceptance(t, t.required_codes)

    def test_order_and_duplicates_do_not_matter(self) -> None:
        t = get_template("taxi", 1)
        validate_acceptance(t, list(reversed(t.codes)) + ["G1"])

    def test_missing_required(self) -> None:
        t = get_template("fuel", 1)
        accepted = [c for c in t.codes if c not in ("G3", "FUEL2")]
        with pytest.raises(InvalidPledgeAcceptance) as info:
            validate_acceptance(t, accepted)
        assert info.value.missing == ("G3", "FUEL2")
        assert info.value.unknown == ()
        assert str(info.value) == (
            "pledge acceptance does not match template fuel v1:"
            " required items not accepted: G3, FUEL2"
        )

    def test_unknown_codes(self) -> None:
        t = get_template("optical", 1)
        with pytest.raises(InvalidPledgeAcceptance) as info:
            validate_acceptance(t, [*t.codes, "FUEL1", "g1"])
        assert info.value.missing == ()
        assert info.value.unknown == ("FUEL1", "g1")
        assert "items not in the template: 'FUEL1', 'g1'" in str(info.value)

    def test_both(self) -> None:
        t = get_template("utility", 1)
        with pytest.raises(InvalidPledgeAcceptance) as info:
            validate_acceptance(t, ["G1", "X9"])
        assert info.value.missing == (
            "G2",
            "G3",
            "G4",
            "G5",
            "G6",
            "UTILITY1",
            "UTILITY2",
            "UTILITY3",
        )
        assert info.value.unknown == ("X9",)
        assert "required items not accepted: G2" in str(info.value)
        assert "; items not in the template: 'X9'" in str(info.value)

    def test_nothing_accepted(self) -> None:
        t = get_template("other", 1)
        with pytest.raises(InvalidPledgeAcceptance) as info:
            validate_acceptance(t, [])
        assert info.value.missing == t.required_codes

    def test_a_bare_string_is_refused(self) -> None:
        with pytest.raises(TypeError):
            validate_acceptance(get_template("other", 1), "G1")
