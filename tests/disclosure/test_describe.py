"""Records in plain language come from each kind's declaration: labels, formats
(元 from fen, dates, yes/no) and what 验证 is told was shown."""

from __future__ import annotations

import json
from datetime import date

from backend.disclosure import describe, service
from backend.supervision import kinds

RID = "ab" * 32


def _view(
    rtype: str, body: dict[str, object], refs: list[dict[str, str]] | None = None
) -> describe.RecordView:
    env = {"type": rtype, "at": "2026-01-01T00:00:00Z", "body": body, "refs": refs or []}
    return describe.describe(env, record_id=RID, leaf_index=7, anchored=True)


def test_a_penalty_is_told_as_its_kind_declares_it() -> None:
    v = _view(
        "supervision.penalty",
        {"decision_no": "巴市监罚〔2026〕1号", "decided_on": "2026-02-03", "authority": "巴州区局",
         "amount_fen": 410000, "circulated_criticism": False, "performed": True},
    )
    assert v.title == "行政处罚（巴市监罚〔2026〕1号）" and v.tone == "bad"
    assert v.facts == [
        ("决定日期", "2026年2月3日"),
        ("处罚机关", "巴州区局"),
        ("罚没金额", "4,100.00 元"),
        ("通报批评", "否"),
        ("已履行", "是"),
    ]
    assert v.shown is not None
    how = json.loads(v.shown.how_json())
    assert how["body.amount_fen"] == {"as": "yuan", "label": "罚没金额"}
    assert json.loads(v.shown.values_json())["body.amount_fen"] == 410000
    assert v.field_of("罚没金额") == "body.amount_fen"


def test_a_correction_and_a_list_event_use_the_declared_names() -> None:
    v = _view(
        "supervision.abnormal_list",
        {"action": "in", "on": "2026-01-05", "reason": "unreachable_at_address"},
        [{"rel": "supersedes", "record": "cd" * 32}],
    )
    assert v.title == "列入经营异常名录（更正）" and v.corrects == "cd" * 32
    assert v.facts[0] == ("日期", "2026年1月5日")
    assert v.refs == [("更正", "cd" * 32)]


def test_a_missing_row_is_named_by_its_kinds_label() -> None:
    for kind in describe.KINDS.values():
        v = describe.missing_view(
            record_type=kind.type, record_id=RID, leaf_index=1, anchored=False
        )
        assert v.title.startswith(kind.label + "（") and v.shown is not None and v.shown.missing


def test_an_unknown_type_is_shown_by_its_name() -> None:
    v = _view("other.thing", {"x": 1})
    assert (v.title, v.facts, v.tone) == ("other.thing", [], "")


def test_every_kind_a_shop_page_lists_has_a_section_and_a_telling() -> None:
    assert set(describe.SECTION_OF) == set(describe.KINDS)
    for t in describe.KINDS:
        v = _view(t, {})
        assert v.title and v.shown is not None and v.shown.values["type"] == t


def test_the_regulators_form_is_the_declaration() -> None:
    assert [k for k, _ in service.OUTCOME_KINDS] == list(kinds.FORM_ORDER)
    assert sorted(kinds.FORM_ORDER) == sorted(kinds.OUTCOMES)
    fields = service.outcome_fields("penalty")
    assert [f.name for f in fields][:3] == ["uscc", "decision_no", "decided_on"]
    assert service.outcome_fields("no-such-kind") == []
    assert service.outcome_defaults("spot_check", today=date(2026, 1, 2)) == {
        "kind": "spot_check",
        "checked_on": "2026-01-02",
        "authority": "巴中市市场监督管理局",
    }
