"""Records in plain language: a title and labelled facts, in Chinese.

What each record kind says is declared by the package that owns the kind
(``kinds.py`` in merchants, pledges, credit and supervision; see
``backend/ledger/kinds.py``); this module only looks the declaration up, runs
it on the record as the page has it, and notes every value shown (:class:`Shown`)
for the browser's 验证. Presentation only: nothing here reads a table or the log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from backend.credit import kinds as credit_kinds
from backend.disclosure.shown import BodyReader, Shown
from backend.ledger.kinds import RecordKind, Telling, by_type
from backend.merchants import kinds as merchant_kinds
from backend.pledges import kinds as pledge_kinds
from backend.supervision import kinds as supervision_kinds

KINDS: dict[str, RecordKind] = by_type(
    merchant_kinds.KINDS, pledge_kinds.KINDS, credit_kinds.KINDS, supervision_kinds.KINDS
)
"""Every record kind a shop's page lists, by record type."""

SECTION_OF: dict[str, str] = {t: k.section for t, k in KINDS.items()}
"""The section of a shop's page each record type is listed in."""


@dataclass
class RecordView:
    record_id: str
    leaf_index: int | None
    type: str
    title: str
    facts: list[tuple[str, str]]
    at: str
    anchored: bool
    tone: str = ""  # "ok", "bad", "warn" or ""
    corrects: str | None = None
    refs: list[tuple[str, str]] = field(default_factory=list)
    shown: Shown | None = None
    """The values the title and facts were made from, for 验证 (``None``: not checked)."""

    @property
    def dom_id(self) -> str:
        return "v-" + self.record_id[:16]

    def field_of(self, label: str) -> str | None:
        return self.shown.field_of(label) if self.shown is not None else None


REL_LABELS = {
    "supersedes": "更正",
    "revokes": "撤销",
    "renews": "续期",
    "verifies": "核验",
    "repairs": "修复",
    "decides": "决定",
}

def describe(
    env: Mapping[str, Any],
    *,
    record_id: str,
    leaf_index: int | None,
    anchored: bool,
) -> RecordView:
    """A record as its kind tells it (``kinds.py`` of its package). Presentation only.

    ``env`` is the record as the page has it (from a table); every field the title
    and facts are made from is noted in the view's :class:`Shown`, so that 验证 can
    compare it with the record in the log.
    """
    s = Shown(record_id)
    t = str(env.get("type", ""))
    kind = KINDS.get(t)
    told = kind.tell(BodyReader(s, env)) if kind is not None else Telling(t)
    refs = [
        (REL_LABELS.get(str(r.get("rel")), str(r.get("rel"))), str(r.get("record")))
        for r in env.get("refs") or []
        if isinstance(r, Mapping)
    ]
    corrects = next((rid for rel, rid in refs if rel == "更正"), None)
    title = told.title + ("（更正）" if corrects else "")
    s.common(env)
    return RecordView(
        record_id=record_id,
        leaf_index=leaf_index,
        type=t,
        title=title,
        facts=[(k, v) for k, v in told.facts if v not in ("", "None")],
        at=str(env.get("at", "")),
        anchored=anchored,
        tone=told.tone,
        corrects=corrects,
        refs=refs,
        shown=s,
    )


def missing_view(
    *, record_type: str, record_id: str, leaf_index: int | None, anchored: bool
) -> RecordView:
    """A record the disclosure rule shows but no table holds: nothing to show but the
    gap itself (验证 reports it; ``honest-metering audit`` names the missing row)."""
    kind = KINDS.get(record_type)
    return RecordView(
        record_id=record_id,
        leaf_index=leaf_index,
        type=record_type,
        title=(kind.label if kind else record_type) + "（数据表中缺少这条记录，无法显示内容）",
        facts=[],
        at="",
        anchored=anchored,
        tone="warn",
        shown=Shown(record_id, missing=True),
    )


DRAW_TITLES = {
    "draw.committed": "抽查承诺：锁定检查对象名单、检查人员名录和种子哈希",
    "draw.revealed": "揭示种子，得到随机数",
    "draw.plan": "公布抽查计划（检查对象与检查人员）",
    "draw.failed": "抽取失败",
    "draw.expired": "未在期限内揭示，抽查作废",
}


def describe_draw_record(
    rtype: str, canonical: str, *, record_id: str, leaf_index: int, anchored: bool
) -> RecordView:
    env = json.loads(canonical)
    b = env.get("body") or {}
    facts: list[tuple[str, str]] = []
    if rtype == "draw.committed":
        facts = [
            ("检查对象名单", f"{b.get('snapshot_size')} 户，默克尔根 {b.get('snapshot_root')}"),
            ("检查人员", f"{b.get('inspector_count')} 人，默克尔根 {b.get('inspectors_root')}"),
            ("回避", f"{b.get('recusal_count')} 对，默克尔根 {b.get('recusal_root')}"),
            ("种子哈希", str(b.get("seed_hash"))),
        ]
    elif rtype == "draw.revealed":
        facts = [
            ("种子", str(b.get("seed"))),
            ("区块哈希", str(b.get("block_hash"))),
            ("随机数", str(b.get("randomness"))),
        ]
    elif rtype == "draw.plan":
        facts = [
            ("抽中", f"{len(b.get('assignments') or [])} 户"),
            ("每户检查人员", str(b.get("per_check"))),
        ]
    elif rtype == "draw.failed":
        facts = [
            (
                "原因",
                f"{b.get('uscc')} 需要 {b.get('needed')} 名检查人员，只有 "
                f"{b.get('available')} 名可派",
            )
        ]
    return RecordView(
        record_id=record_id,
        leaf_index=leaf_index,
        type=rtype,
        title=DRAW_TITLES.get(rtype, rtype),
        facts=facts,
        at=str(env.get("at", "")),
        anchored=anchored,
    )


