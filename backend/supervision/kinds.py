"""Each supervision outcome kind, declared once.

An :class:`OutcomeKind` says everything about one kind of ``supervision.*``
record: its API input (the body schema, ``models.py``), the checks that turn
an input into the record's body (:attr:`OutcomeKind.check`), which table its
projection writes, its Chinese name, how a page tells it (title, labelled
facts with their formats: dates, 元 from fen, yes/no) and the fields of the
regulators' form. The write path (``service.py``), the bulk import
(``bulk.py``), the projection (``records.py``), the pages and forms
(``backend/disclosure``) and the demo read these declarations; none of them
spells a kind's labels or fields again.

The rating reads the records by their type and is specified on its own
(``backend/credit/rating.py``, ``docs/rating.md``): it sits below this package
and cannot read these declarations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, get_args

from pydantic import BaseModel

from backend.credit import service as credit
from backend.errors import DomainError
from backend.ledger.kinds import FormField, Option, Reader, RecordKind, Telling
from backend.ledger.records import Ref
from backend.merchants.reference import ABNORMAL_LIST_REASONS, SPOT_CHECK_RESULTS
from backend.supervision.checks import (
    Checker,
    DuplicateOutcome,
    ListingConflict,
    MerchantState,
    RowInvalid,
    StateRow,
    is_person,
    text_field,
    validate_date,
)
from backend.supervision.models import (
    RECORD_TYPE_PREFIX,
    AbnormalListInput,
    ComplaintVerifiedInput,
    DemonstrationInput,
    InstrumentInput,
    Kind,
    ListInput,
    PenaltyInput,
    RevocationInput,
    SeriousListInput,
    SpotCheckInput,
    SupervisionRecord,
)
from backend.uscc import compute_check_chars

Checked = tuple[dict[str, Any], date | None, str | None]
"""What a kind's check makes of an input: the record's body, its date of legal
effect (``None``: the day it is written) and the draw it names."""
Check = Callable[[Checker, Any, str, MerchantState, StateRow | None, list[Ref]], Checked]
"""``(checker, input, uscc, the merchant's outcomes, the record it corrects, refs)``:
the body, after checking the input against the database and the batch; appends
the refs the record makes besides ``supersedes``."""

OUTCOME_TABLE = SupervisionRecord.__tablename__


@dataclass(frozen=True, kw_only=True)
class OutcomeKind(RecordKind):
    """One supervision outcome kind."""

    name: str
    """The API's ``kind`` (the record type without ``supervision.``)."""
    form_label: str
    """The tab of the regulators' form."""
    input: type[BaseModel]
    fields: tuple[FormField, ...]
    """The form's fields besides the merchant and the correction."""
    check: Check | None
    """``None``: not written by the outcome service (see :attr:`elsewhere`)."""
    elsewhere: str = ""
    """Why a kind without ``check`` is not written here, and where it is."""
    correctable: bool = True
    """A record of this kind can be corrected (``supersedes``)."""
    stateless: bool = False
    """Its checks never look at the merchant's other outcomes (unless correcting)."""
    projected_by: str = OUTCOME_TABLE
    """The table its projection writes."""


# --- checks --------------------------------------------------------------------------


def _check_spot_check(
    c: Checker, inp: SpotCheckInput, uscc: str, st: MerchantState, replaced: StateRow | None,
    refs: list[Ref],
) -> Checked:
    checked_on = validate_date(inp.checked_on, "checked_on", c.today)
    draw_id = None if inp.draw_id is None else c.draw(inp.draw_id, uscc)
    return (
        {
            "result": inp.result,
            "checked_on": checked_on,
            "authority": text_field(inp.authority, "authority", 200),
            "draw_id": draw_id,
            "evidence_sha256": inp.evidence_sha256,
        },
        inp.checked_on,
        draw_id,
    )


def _refuse_duplicate(
    st: MerchantState, kind: str, key: str, value: str, replaced: StateRow | None,
    message: Callable[[str], str],
) -> None:
    """DuplicateOutcome (on field ``key``) if a current ``kind`` outcome of the merchant,
    other than the one being replaced, already has this ``key``: one decision number,
    one complaint id, is recorded once."""
    for r in st.current(kind):
        if r.body.get(key) == value and r is not replaced:
            raise DuplicateOutcome(message(r.record_id), field=key)


def _check_penalty(
    c: Checker, inp: PenaltyInput, uscc: str, st: MerchantState, replaced: StateRow | None,
    refs: list[Ref],
) -> Checked:
    decided_on = validate_date(inp.decided_on, "decided_on", c.today)
    decision_no = text_field(inp.decision_no, "decision_no", 200)
    _refuse_duplicate(
        st, "penalty", "decision_no", decision_no, replaced,
        lambda rid: f"merchant {uscc} already has penalty {decision_no} (record {rid}); "
        "correct it with supersedes instead",
    )
    lower = inp.lower_amount
    if lower is None:
        try:
            policy = credit.in_force(c.versions, inp.decided_on).policy
        except DomainError:
            policy = c.versions[-1].policy
        lower = policy.is_lower_amount(amount_fen=inp.amount_fen, person=is_person(uscc))
    return (
        {
            "decision_no": decision_no,
            "decided_on": decided_on,
            "authority": text_field(inp.authority, "authority", 200),
            "amount_fen": inp.amount_fen,
            "lower_amount": lower,
            "circulated_criticism": inp.circulated_criticism,
            "special_sector": inp.special_sector,
            "performed": inp.performed,
            "evidence_sha256": inp.evidence_sha256,
        },
        inp.decided_on,
        None,
    )


def _check_complaint(
    c: Checker, inp: ComplaintVerifiedInput, uscc: str, st: MerchantState,
    replaced: StateRow | None, refs: list[Ref],
) -> Checked:
    cid = text_field(inp.complaint_id, "complaint_id", 64)
    _refuse_duplicate(
        st, "complaint_verified", "complaint_id", cid, replaced,
        lambda rid: f"complaint {cid} about merchant {uscc} is already recorded (record {rid})",
    )
    return (
        {
            "complaint_id": cid,
            "verified_on": validate_date(inp.verified_on, "verified_on", c.today),
            "summary": text_field(inp.summary, "summary", 500, multiline=True),
        },
        inp.verified_on,
        None,
    )


def _check_instrument(
    c: Checker, inp: InstrumentInput, uscc: str, st: MerchantState, replaced: StateRow | None,
    refs: list[Ref],
) -> Checked:
    verified_on = validate_date(inp.verified_on, "verified_on", c.today)
    valid_until = validate_date(inp.valid_until, "valid_until", c.today, may_be_future=True)
    if inp.valid_until < inp.verified_on:
        raise RowInvalid(
            f"valid_until {inp.valid_until} is before verified_on {inp.verified_on}",
            field="valid_until",
        )
    return (
        {
            "instrument_type": text_field(inp.instrument_type, "instrument_type", 200),
            "serial": text_field(inp.serial, "serial", 100),
            "certificate_no": text_field(inp.certificate_no, "certificate_no", 100),
            "verified_on": verified_on,
            "valid_until": valid_until,
        },
        inp.verified_on,
        None,
    )


def _listing_in(
    c: Checker, inp: ListInput, kind: str, name: str, uscc: str, st: MerchantState,
    replaced: StateRow | None,
) -> str:
    """The reason of an ``in``, once it is known not to clash with an open listing."""
    if inp.closes is not None:
        raise RowInvalid("closes is only for action 'out'", field="closes")
    if replaced is not None and st.ended_by(replaced.record_id) is not None:
        raise ListingConflict(
            f"listing {replaced.record_id} has already ended; correct or revoke its 'out' "
            "record first",
            field="supersedes",
        )
    if kind == "abnormal_list":
        if inp.reason is None or inp.reason not in ABNORMAL_LIST_REASONS:
            allowed = ", ".join(f"{k} ({r.name})" for k, r in ABNORMAL_LIST_REASONS.items())
            raise RowInvalid(
                f"reason must be one of the listing reasons: {allowed}; got {inp.reason!r}",
                field="reason",
            )
        reason = inp.reason
        clash = [
            r for r in st.open_listings(kind)
            if r.body.get("reason") == reason and r is not replaced
        ]
    else:
        if inp.reason is None:
            raise RowInvalid("reason is required", field="reason")
        reason = text_field(inp.reason, "reason", 500, multiline=True)
        clash = [r for r in st.open_listings(kind) if r is not replaced]
    if clash:
        raise ListingConflict(
            f"merchant {uscc} is already on the {name} since {clash[0].body.get('on')} "
            f"(record {clash[0].record_id})",
            field="action",
        )
    return reason


def _listing_out(
    c: Checker, inp: ListInput, kind: str, name: str, uscc: str, st: MerchantState,
    replaced: StateRow | None, refs: list[Ref],
) -> str:
    """The reason of an ``out``; appends a ``closes`` ref for each listing it ends."""
    if replaced is not None:
        targets = [st.rows[ref["record"]] for ref in replaced.refs
                   if ref["rel"] == "closes" and ref["record"] in st.rows]
        if inp.closes is not None and inp.closes not in {t.record_id for t in targets}:
            raise RowInvalid(
                "a correction of an 'out' ends the same listing(s) as the record it corrects",
                field="closes",
            )
    elif inp.closes is not None:
        target = c.target(st, inp.closes, "closes")
        if target.kind != kind or target.body.get("action") != "in":
            raise RowInvalid(
                f"closes: record {inp.closes} is not a listing on the {name}", field="closes"
            )
        if st.ended_by(target.record_id) is not None:
            raise ListingConflict(f"closes: listing {inp.closes} has already ended", field="closes")
        targets = [target]
    else:
        targets = st.open_listings(kind)
        if not targets:
            raise ListingConflict(f"merchant {uscc} is not on the {name}", field="action")
    for t in targets:
        if inp.on < t.effective_on:
            raise RowInvalid(
                f"on {inp.on} is before the listing it ends ({t.effective_on}, record "
                f"{t.record_id})",
                field="on",
            )
        refs.append(Ref("closes", t.record_id))
    if inp.reason is not None:
        return text_field(inp.reason, "reason", 500, multiline=True)
    if kind == "abnormal_list":
        cures = [ABNORMAL_LIST_REASONS[code].cure for code in
                 dict.fromkeys(str(t.body.get("reason")) for t in targets)
                 if code in ABNORMAL_LIST_REASONS]
        if cures:
            return "；".join(cures)
    raise RowInvalid("reason is required", field="reason")


def _listing_check(name: str) -> Check:
    """The check of a list's ``in`` and ``out`` events; ``name`` names the list in errors."""

    def check(
        c: Checker, inp: ListInput, uscc: str, st: MerchantState, replaced: StateRow | None,
        refs: list[Ref],
    ) -> Checked:
        kind = inp.kind  # type: ignore[attr-defined]
        on = validate_date(inp.on, "on", c.today)
        if replaced is not None and replaced.body.get("action") != inp.action:
            raise RowInvalid(
                f"a correction keeps the action: record {replaced.record_id} is an "
                f"{replaced.body.get('action')!r}",
                field="action",
            )
        if inp.action == "in":
            reason = _listing_in(c, inp, kind, name, uscc, st, replaced)
        else:
            reason = _listing_out(c, inp, kind, name, uscc, st, replaced, refs)
        return {"action": inp.action, "on": on, "reason": reason}, inp.on, None

    return check


def _check_revocation(
    c: Checker, inp: RevocationInput, uscc: str, st: MerchantState, replaced: StateRow | None,
    refs: list[Ref],
) -> Checked:
    target = c.target(st, inp.revokes, "revokes")
    if target.kind == "revocation":
        raise RowInvalid(
            "a revocation is final and cannot be revoked; record the outcome again instead",
            field="revokes",
        )
    refs.append(Ref("revokes", target.record_id))
    return {"reason": text_field(inp.reason, "reason", 500, multiline=True)}, None, None


# --- how a page tells each kind ------------------------------------------------------------

INSTRUMENT_LABELS = {
    "instrument_type": "计量器具",
    "serial": "出厂编号",
    "certificate_no": "检定证书",
    "verified_on": "检定日期",
    "valid_until": "有效期至",
}
"""The labels of an instrument's fields, on its record and in the page's table of
instruments."""


def _tell_spot_check(r: Reader) -> Telling:
    result = r.text("result", "检查结果")
    facts = [
        ("检查日期", r.text("checked_on", "检查日期", "date")),
        ("检查机关", r.text("authority", "检查机关")),
    ]
    draw_id = r.value("draw_id", "双随机抽查")
    if draw_id:
        facts.append(("双随机抽查", str(draw_id)))
    return Telling(f"监督抽查：{result}", facts, "ok" if result == "未发现问题" else "bad")


def _tell_penalty(r: Reader) -> Telling:
    return Telling(
        f"行政处罚（{r.text('decision_no', '决定书文号')}）",
        [
            ("决定日期", r.text("decided_on", "决定日期", "date")),
            ("处罚机关", r.text("authority", "处罚机关")),
            ("罚没金额", r.text("amount_fen", "罚没金额", "yuan")),
            ("通报批评", r.text("circulated_criticism", "通报批评", "yes")),
            ("已履行", r.text("performed", "已履行", "yes")),
        ],
        "bad",
    )


def _tell_complaint(r: Reader) -> Telling:
    return Telling(
        "投诉举报经核实",
        [
            ("核实日期", r.text("verified_on", "核实日期", "date")),
            ("内容摘要", r.text("summary", "内容摘要")),
        ],
        "bad",
    )


def _tell_listing(list_name: str) -> Callable[[Reader], Telling]:
    def tell(r: Reader) -> Telling:
        inn = r.value("action", "列入或移出") == "in"
        reason = r.text("reason", "原因")
        known = ABNORMAL_LIST_REASONS.get(reason)
        return Telling(
            ("列入" if inn else "移出") + list_name,
            [("日期", r.text("on", "日期", "date")), ("原因", known.name if known else reason)],
            "bad" if inn else "ok",
        )

    return tell


def _tell_instrument(r: Reader) -> Telling:
    label = INSTRUMENT_LABELS
    return Telling(
        f"强制检定计量器具：{r.text('instrument_type', label['instrument_type'])}",
        [
            (label["serial"], r.text("serial", label["serial"])),
            (label["certificate_no"], r.text("certificate_no", label["certificate_no"])),
            (label["verified_on"], r.text("verified_on", label["verified_on"], "date")),
            (label["valid_until"], r.text("valid_until", label["valid_until"], "date")),
        ],
    )


def _tell_demonstration(r: Reader) -> Telling:
    award = r.value("action", "评定或撤销") == "award"
    facts = [("日期", r.text("on", "日期", "date"))]
    if award:
        facts.append(("有效期至", r.text("valid_until", "有效期至", "date")))
    else:
        reason = r.value("reason", "原因")
        if reason:
            facts.append(("原因", str(reason)))
    title = "评为诚信计量示范单位" if award else "撤销诚信计量示范单位"
    return Telling(title, facts, "ok" if award else "warn")


def _tell_revocation(r: Reader) -> Telling:
    return Telling("撤销一条监管记录", [("原因", r.text("reason", "原因"))])


# --- the form's fields ---------------------------------------------------------------------

_AUTHORITY_DEFAULT = "巴中市市场监督管理局"
_ACTION_IN_OUT = (Option("in", "列入"), Option("out", "移出"))
_LIST_CLOSES = FormField("closes", "移出所对应的列入记录编号（可选）")

CORRECTION_FIELDS = (
    FormField(
        "supersedes",
        "更正的记录编号（可选）",
        hint="填写则本条为对该记录的更正，需同时填写更正原因",
    ),
    FormField("correction_reason", "更正原因（可选）"),
)
"""The fields of a correction, at the end of a correctable kind's form."""
MERCHANT_FIELD = FormField("uscc", "统一社会信用代码", required=True)
"""The first field of every kind's form."""


# --- the kinds -----------------------------------------------------------------------------


def _kind(name: str, label: str, section: str, **kw: Any) -> OutcomeKind:
    return OutcomeKind(
        type=RECORD_TYPE_PREFIX + name, name=name, label=label, section=section, **kw
    )


SPOT_CHECK = _kind(
    "spot_check", "监督抽查", "spot_check",
    form_label="抽查结果",
    input=SpotCheckInput,
    check=_check_spot_check,
    stateless=True,
    tell=_tell_spot_check,
    fields=(
        FormField(
            "result", "检查结果", "select", True, tuple(Option(r, r) for r in SPOT_CHECK_RESULTS)
        ),
        FormField("checked_on", "检查日期", "date", True, example="2026/11/24"),
        FormField("authority", "检查机关", required=True, default=_AUTHORITY_DEFAULT),
        FormField("draw_id", "双随机抽查编号（可选）"),
        FormField("evidence_sha256", "检查记录文件的 SHA-256（可选）"),
    ),
)
PENALTY = _kind(
    "penalty", "行政处罚", "penalty",
    form_label="行政处罚",
    input=PenaltyInput,
    check=_check_penalty,
    tell=_tell_penalty,
    fields=(
        FormField("decision_no", "决定书文号", required=True, example="巴市监罚〔2026〕12号"),
        FormField("decided_on", "决定日期", "date", True, example="2026/11/24"),
        FormField("authority", "处罚机关", required=True, default=_AUTHORITY_DEFAULT),
        FormField(
            "amount_yuan",
            "罚没金额（元）",
            required=True,
            hint="没有罚款填 0",
            into="amount_fen",
            example="3000",
        ),
        FormField(
            "lower_amount",
            "较低数额罚款",
            "select",
            False,
            (Option("yes", "是"), Option("no", "否")),
            hint="不选则按信用规则由金额判断",
        ),
        FormField("circulated_criticism", "通报批评", "checkbox"),
        FormField("special_sector", "食品、药品、特种设备领域", "checkbox"),
        FormField("performed", "已履行", "checkbox"),
        FormField(
            "evidence_file",
            "处罚决定书文件",
            "file",
            hint="只在本机计算并记录文件的 SHA-256，文件本身不上传保存；也可直接填写下一项",
            into="evidence_sha256",
        ),
        FormField(
            "evidence_sha256",
            "决定书文件的 SHA-256",
            required=True,
            hint="选择上面的文件后由浏览器自动计算；也可直接填写",
            example="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        ),
    ),
)
COMPLAINT_VERIFIED = _kind(
    "complaint_verified", "投诉举报核实", "complaint",
    form_label="投诉核实",
    input=ComplaintVerifiedInput,
    check=_check_complaint,
    tell=_tell_complaint,
    fields=(
        FormField(
            "complaint_id",
            "投诉编号",
            required=True,
            hint="如 12315 平台的投诉编号",
            example="12315-2026-000123",
        ),
        FormField("verified_on", "核实日期", "date", True, example="2026/11/24"),
        FormField(
            "summary",
            "公示摘要",
            "textarea",
            True,
            hint="不得包含投诉人个人信息",
            example="电子计价秤少称约 50 克，已责令改正",
        ),
    ),
)
ABNORMAL_LIST = _kind(
    "abnormal_list", "经营异常名录", "lists",
    form_label="经营异常名录",
    input=AbnormalListInput,
    check=_listing_check("abnormal-operations list"),
    tell=_tell_listing("经营异常名录"),
    fields=(
        FormField("action", "操作", "select", True, _ACTION_IN_OUT),
        FormField("on", "日期", "date", True, example="2026/11/24"),
        FormField(
            "reason",
            "列入原因 / 移出依据",
            "select",
            False,
            tuple(Option(k, r.name) for k, r in ABNORMAL_LIST_REASONS.items()),
            hint="列入时必选；移出时可不选（默认为列入原因对应的移出条件）",
        ),
        _LIST_CLOSES,
    ),
)
SERIOUS_LIST = _kind(
    "serious_list", "严重违法失信名单", "lists",
    form_label="严重违法失信名单",
    input=SeriousListInput,
    check=_listing_check("serious-violation list"),
    tell=_tell_listing("严重违法失信名单"),
    fields=(
        FormField("action", "操作", "select", True, _ACTION_IN_OUT),
        FormField("on", "日期", "date", True, example="2026/11/24"),
        FormField("reason", "原因", "textarea", True, example="因计量违法行为受到较重行政处罚"),
        _LIST_CLOSES,
    ),
)
INSTRUMENT = _kind(
    "instrument", "强制检定计量器具", "instrument",
    form_label="强制检定",
    input=InstrumentInput,
    check=_check_instrument,
    stateless=True,
    tell=_tell_instrument,
    fields=(
        FormField(
            "instrument_type",
            "计量器具名称",
            required=True,
            hint="例如：电子计价秤、燃油加油机",
            example="电子计价秤",
        ),
        FormField("serial", "出厂编号", required=True, example="SN20260001"),
        FormField("certificate_no", "检定证书编号", required=True, example="JD-2026-00123"),
        FormField("verified_on", "检定日期", "date", True, example="2026/11/24"),
        FormField("valid_until", "有效期至（含当天）", "date", True, example="2027/11/23"),
    ),
)
DEMONSTRATION = _kind(
    "demonstration", "诚信计量示范单位", "demonstration",
    form_label="示范单位",
    input=DemonstrationInput,
    check=None,
    elsewhere="demonstration units are awarded one at a time: use POST "
    "/api/supervision/records or POST /api/merchants/{uscc}/demonstration",
    correctable=False,
    projected_by="demonstration_award",  # backend/pledges owns the awards
    tell=_tell_demonstration,
    fields=(
        FormField(
            "action",
            "操作",
            "select",
            True,
            (Option("award", "评为示范单位"), Option("withdraw", "撤销示范单位")),
        ),
        FormField("on", "日期（默认今天）", "date"),
        FormField("valid_until", "有效期至（评定时，默认三年）", "date"),
        FormField("reason", "撤销原因（撤销时）", "textarea"),
    ),
)
REVOCATION = _kind(
    "revocation", "撤销监管记录", "other",
    form_label="撤销记录",
    input=RevocationInput,
    check=_check_revocation,
    correctable=False,
    tell=_tell_revocation,
    fields=(
        FormField(
            "revokes",
            "要撤销的记录编号",
            required=True,
            example="3f2a9c0d5b7e41a68d0c2e9f7b1a4c6d8e0f2a4b6c8d0e2f4a6b8c0d2e4f6a8b",
        ),
        FormField("reason", "撤销原因", "textarea", True, example="录入错误，该记录不属于该经营者"),
    ),
)

OUTCOMES: dict[str, OutcomeKind] = {
    k.name: k
    for k in (
        SPOT_CHECK,
        PENALTY,
        COMPLAINT_VERIFIED,
        ABNORMAL_LIST,
        SERIOUS_LIST,
        INSTRUMENT,
        DEMONSTRATION,
        REVOCATION,
    )
}
"""Every outcome kind by its name, in the order the API lists them."""
assert tuple(OUTCOMES) == get_args(Kind), "models.Kind and the declarations differ"

KINDS: tuple[OutcomeKind, ...] = tuple(OUTCOMES.values())

FORM_ORDER: tuple[str, ...] = (
    "spot_check",
    "penalty",
    "instrument",
    "abnormal_list",
    "serious_list",
    "complaint_verified",
    "demonstration",
    "revocation",
)
"""The tabs of the regulators' form, most used first."""


def form_fields(kind: OutcomeKind) -> list[FormField]:
    """The whole form of ``kind``: the merchant, its own fields, then the correction."""
    return [MERCHANT_FIELD, *kind.fields, *(CORRECTION_FIELDS if kind.correctable else ())]


def _csv_columns() -> tuple[str, ...]:
    cols = ["kind"]
    for kind in KINDS:
        if kind.check is not None:
            cols.extend(f for f in kind.input.model_fields if f not in cols)
    return tuple(cols)


CSV_COLUMNS: tuple[str, ...] = _csv_columns()
"""Every column a bulk file may have (any subset, any order; empty cells mean "not
given"): ``kind``, then the input fields of every kind a file may hold, in the
order of the kinds."""


# --- bulk files: columns in Chinese ------------------------------------------------------------

KIND_HEADER = "记录类型"
"""The Chinese header of the ``kind`` column; its cells take a kind's name or label."""
_EXAMPLE_PREFIX = "91511900MA6XXXXX"
EXAMPLE_USCC = _EXAMPLE_PREFIX + compute_check_chars(_EXAMPLE_PREFIX)
"""The credit code of a template's example row: a well-formed code that a bulk import
refuses as "the example row" (so a template sent back unedited records nothing)."""

BULK_KINDS: tuple[OutcomeKind, ...] = tuple(
    OUTCOMES[k] for k in FORM_ORDER if OUTCOMES[k].check is not None
)
"""The kinds a bulk file may hold, in the form's order (a template each)."""


def bulk_fields(kind: OutcomeKind) -> list[FormField]:
    """The columns of ``kind``'s template: its form without the file pickers (a file's
    digest has its own column)."""
    return [f for f in form_fields(kind) if f.type != "file"]
