"""Every error a person reads, in Chinese, naming the field: the one translation layer.

The services raise :class:`~backend.errors.DomainError` with an English ``detail`` for
API clients and logs, and pydantic reports its own English. Neither is shown to a
person: the JSON API adds ``detail_zh`` (``backend/app.py``) and the pages show only
what this module makes of an error (``backend/disclosure/web.py``):

- :func:`pydantic_errors` turns each pydantic error (by its ``type``, its context and
  the field it is about) into ``(field, message)``;
- :func:`domain_errors` does the same for a domain error, by its class name (and the
  ``field`` / ``rule`` it carries);
- :data:`FIELD_LABELS` names the fields as the forms label them.

Pure: no I/O, no settings. It never returns a library's English: an error type it
does not know becomes "格式不正确" with the field's name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from backend.errors import DomainError

FIELD_LABELS: dict[str, str] = {
    # registration and accounts
    "uscc": "统一社会信用代码",
    "name": "名称",
    "sector": "行业",
    "region_code": "所在地区",
    "sub_area": "所在园区",
    "address": "经营地址",
    "contact_person": "联系人姓名",
    "contact_phone": "联系电话",
    "password": "密码",
    "password2": "再次输入的密码",
    "new_password": "新密码",
    "username": "用户名",
    "role": "角色",
    "wallet_address": "钱包地址",
    # complaints
    "content": "举报内容",
    "contact": "联系方式",
    "ticket": "受理编号",
    "code": "查询码",
    "complaint_id": "投诉编号",
    "outcome": "处理结果",
    "summary": "公示摘要",
    # pledges and repairs
    "template_version": "承诺书版本",
    "items": "承诺事项",
    "extra_commitments": "补充承诺",
    "pledge_id": "承诺编号",
    "penalty_record_id": "处罚记录",
    "statement": "申请说明",
    "decision": "审核决定",
    # supervision outcomes
    "kind": "记录类型",
    "result": "检查结果",
    "checked_on": "检查日期",
    "authority": "机关",
    "draw_id": "双随机抽查编号",
    "evidence_sha256": "文件的 SHA-256",
    "evidence_file": "文件",
    "decision_no": "决定书文号",
    "decided_on": "决定日期",
    "amount_fen": "罚没金额",
    "amount_yuan": "罚没金额",
    "amount_confirmed": "金额确认",
    "lower_amount": "较低数额罚款",
    "circulated_criticism": "通报批评",
    "special_sector": "特殊领域",
    "performed": "已履行",
    "verified_on": "日期",
    "action": "操作",
    "on": "日期",
    "reason": "原因",
    "closes": "对应的列入记录编号",
    "instrument_type": "计量器具名称",
    "serial": "出厂编号",
    "certificate_no": "检定证书编号",
    "valid_until": "有效期至",
    "revokes": "撤销的记录编号",
    "supersedes": "更正的记录编号",
    "correction_reason": "更正原因",
    "file": "文件",
    # the credit policy and frequencies
    "document": "规则文档",
    "effective_from": "生效日期",
    "rate_A": "A 级抽查比例",
    "rate_B": "B 级抽查比例",
    "rate_C": "C 级抽查比例",
    "rate_D": "D 级抽查比例",
    "interval_A": "A 级最短间隔",
    "interval_B": "B 级最短间隔",
    "interval_C": "C 级最短间隔",
    "interval_D": "D 级最短间隔",
    "rates_bp": "抽查比例",
    "note": "说明",
    # inspections
    "unit": "所在单位",
    "inspector_id": "检查人员编号",
    "title": "事项名称",
    "legal_basis": "抽查依据",
    "method": "抽查方式",
    "sectors": "行业",
    "regions": "地区",
    "item_id": "抽查事项",
    "planned_start": "计划开始日期",
    "planned_end": "计划结束日期",
    "per_check": "每户检查人员数",
    "csrf_token": "表单令牌",
    "form_token": "表单令牌",
}


def field_label(field: str | None, labels: Mapping[str, str] | None = None) -> str:
    """The Chinese name of a form field (``labels`` first, then :data:`FIELD_LABELS`);
    a field it does not know is "该项", never its English name."""
    if not field:
        return ""
    if labels and field in labels:
        return labels[field]
    return FIELD_LABELS.get(field, "该项")


# --- pydantic ---------------------------------------------------------------------------

# Messages of the project's own validators (``raise ValueError(...)`` in a model), by
# how the English message starts: pydantic reports them as type ``value_error``.
VALUE_ERRORS: tuple[tuple[str, str], ...] = (
    ("must be a date", "应为日期，格式如 2026-01-31"),
    ("must be a SHA-256 digest", "应为 64 位十六进制的 SHA-256 摘要"),
    ("must be a record id", "应为记录编号（64 位十六进制）"),
    ("must name a draw", "应为抽查序号（如 12）或抽查编号（64 位十六进制）"),
    ("must be true or false", "应为“是”或“否”"),
    ("must be one of the published results", "应为公示的七种抽查结果之一"),
    ("must be a whole number", "应为整数"),
    ("unknown sector", "不是可选的行业"),
    ("unknown region", "不是巴中市的区县"),
    ("unknown sub-area", "不是可选的园区"),
    ("spot-check rates are basis points", "抽查比例应在 0% 到 100% 之间"),
    ("spot-check rates must not fall", "抽查比例不能随风险升高而降低（应为 A ≤ B ≤ C ≤ D）"),
)


def _of_value_error(msg: str) -> str:
    text = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    for start, zh in VALUE_ERRORS:
        if text.startswith(start):
            return zh
    return "格式不正确"


def _limit(ctx: Mapping[str, Any], key: str) -> str:
    value = ctx.get(key)
    return str(value) if value is not None else ""


def pydantic_message(err: Mapping[str, Any]) -> str:
    """What one pydantic error means, in Chinese, without the field's name."""
    kind = str(err.get("type", ""))
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    if kind == "missing":
        return "必须填写"
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return "不能为空" if n in (1, "1") else f"至少 {n} 个字符"
    if kind == "string_too_long":
        return f"不能超过 {_limit(ctx, 'max_length')} 个字符"
    if kind in ("too_short", "too_long"):
        if kind == "too_short":
            return f"至少选择 {_limit(ctx, 'min_length')} 项"
        return f"最多 {_limit(ctx, 'max_length')} 项"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "应为整数"
    if kind in ("float_parsing", "float_type", "decimal_parsing", "decimal_type", "finite_number"):
        return "应为数字"
    if kind == "greater_than_equal":
        return f"不能小于 {_limit(ctx, 'ge')}"
    if kind == "greater_than":
        return f"应大于 {_limit(ctx, 'gt')}"
    if kind == "less_than_equal":
        return f"不能大于 {_limit(ctx, 'le')}"
    if kind == "less_than":
        return f"应小于 {_limit(ctx, 'lt')}"
    if kind.startswith("date") or kind.startswith("datetime"):
        return "应为有效日期，格式如 2026-01-31"
    if kind in ("bool_parsing", "bool_type"):
        return "应为“是”或“否”"
    if kind in ("literal_error", "enum", "union_tag_invalid", "union_tag_not_found"):
        return "不是可选的值"
    if kind in ("string_type", "string_sub_type", "string_unicode"):
        return "应为文字"
    if kind == "string_pattern_mismatch":
        return "格式不正确"
    if kind == "extra_forbidden":
        return "不是这个表单的项目"
    if kind in ("value_error", "assertion_error"):
        return _of_value_error(str(err.get("msg", "")))
    if kind == "json_invalid":
        return "不是有效的 JSON"
    return "格式不正确"


# Where pydantic names the place of an error but not a field: the body, a query, the
# tag of a union (``penalty`` in ``("penalty", "amount_fen")``), a list index.
_NOT_FIELDS = {"body", "query", "path", "header", "cookie", "form"}


def error_field(loc: Sequence[Any], known: Iterable[str] | None = None) -> str | None:
    """The form field a pydantic ``loc`` is about: its last name that is a field."""
    names = [str(p) for p in loc if isinstance(p, str) and p not in _NOT_FIELDS]
    pool = set(known) if known is not None else set(FIELD_LABELS)
    for name in reversed(names):
        if name in pool:
            return name
    return names[-1] if names else None


def pydantic_errors(
    errors: Iterable[Mapping[str, Any]],
    *,
    labels: Mapping[str, str] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> list[tuple[str | None, str]]:
    """Each pydantic error as ``(field, "标签：说明")``; ``aliases`` maps a model's field
    to the form's (``amount_fen`` → ``amount_yuan``)."""
    out: list[tuple[str | None, str]] = []
    known = set(FIELD_LABELS) | set(labels or {})
    for err in errors:
        field = error_field(err.get("loc", ()), known)
        if field and aliases and field in aliases:
            field = aliases[field]
        label = field_label(field, labels)
        message = pydantic_message(err)
        out.append((field, f"{label}：{message}" if label else message))
    return out


# --- domain errors ----------------------------------------------------------------------

# The plain meaning of the errors people meet, by class name.
DOMAIN_MESSAGES: dict[str, str] = {
    "MerchantNotFound": "没有找到这个统一社会信用代码对应的经营者",
    "MerchantAlreadyRegistered": "这个统一社会信用代码已经注册过，请直接登录",
    "MerchantAlreadyVerified": "该经营者已经核验过",
    "UnknownSector": "不是可选的行业",
    "UnknownRegion": "不是巴中市的区县",
    "UnknownSubArea": "不是可选的园区",
    "InvalidPhone": "不是有效的电话号码（只能包含数字、空格和 + - ( )）",
    "InvalidWalletAddress": "不是有效的以太坊地址（0x 加 40 位十六进制）",
    "InvalidTier": "信用等级应为 A、B、C 或 D",
    "InvalidDate": "不是有效日期",
    "UsernameTaken": "这个用户名已被使用",
    "WeakPassword": "密码不符合要求",
    "MerchantNotVerified": (
        "待核验：登记信息尚未经监管部门核验。核验前不显示计量信用等级，也不提供承诺牌"
    ),
    "RegistrationAlreadyRejected": "这个登记已被监管部门驳回",
    "AccountNotFound": "没有这个账号",
    "CannotActOnSelf": "不能停用自己的账号，也不能修改自己的角色",
    "AccountAlreadyInState": "账号已经是这个状态",
    "InvalidRole": "角色只能是监管人员或管理员",
    "InvalidUsername": "用户名只能由小写字母、数字、“.”、“_”或“-”组成，以字母或数字开头",
    "InvalidCredentials": "用户名或密码错误",
    "NotAuthenticated": "请先登录",
    "InvalidToken": "登录已失效，请重新登录",
    "RoleNotPermitted": "当前账号没有执行这个操作的权限",
    "NotOwnMerchant": "只能操作本单位的信息",
    "CsrfFailed": "页面已过期或来源不明，请刷新页面后重新提交",
    "FormExpired": "表单已过期，请刷新页面后重新提交",
    "RateLimited": "尝试次数过多，请稍后再试",
    "TooManyAttempts": "尝试次数过多，请稍后再试",
    "ServerBusy": "同时登录和注册的人较多，请稍后再试",
    "DatabaseBusy": "系统正忙，请稍后再试",
    "DatabaseUnavailable": "数据库暂时无法连接，请稍后再试",
    "PledgeItemsInvalid": "承诺事项不完整：必选事项都要勾选",
    "RecordNotFound": "没有找到这条记录",
    "RecordNotAnchored": "这条记录尚未锚定到区块链，下一个检查点锚定后即可验证",
    "CheckpointNotFound": "没有这个检查点",
    "InvalidSubjectCode": "不是有效的统一社会信用代码",
    "NoSubjectIndex": "这个检查点锚定于记录索引启用之前，无法证明记录完整性，请选择更新的检查点",
    "LedgerUnavailable": "暂时无法连接区块链节点，请稍后再试",
    "LogKeyError": (
        "本平台的日志签名密钥缺失或不可用，暂时无法提供签名检查点和信任根；记录和链上锚定不受影响"
    ),
    "NotFound": "页面不存在",
    "MethodNotAllowed": "不支持这个操作",
    "PayloadTooLarge": "提交的内容过大",
    "RequestTimeout": "请求超时，请重试",
    "NulCharacter": "含有空字符（U+0000），请删除后重新提交",
    "UnsupportedMediaType": "不支持的文件格式",
    "BadRequest": "请求格式有误",
    "DateInFuture": "不能晚于今天（北京时间）；事情发生后再记录",
    "DateTooEarly": "日期过早，请检查年份",
    "DateBeyondHorizon": "日期太远（最多 50 年以后），请检查年份",
    "UnknownDraw": "没有找到这次双随机抽查",
    "DrawNotRevealed": "这次双随机抽查尚未揭示",
    "MerchantNotSelected": "该经营者不在这次双随机抽查的检查对象名单中",
    "SupervisionRecordNotFound": "没有找到这条监管记录",
    "AlreadyReplaced": "这条记录已被更正或撤销，请对最新版本操作",
    "DuplicateOutcome": "这条监管记录已经存在",
    "ListingConflict": "与该经营者当前的名录状态不符",
    "BulkValidationFailed": "文件中有错误的行，请按下表修改后重新上传",
    "UnsupportedBulkFormat": "只支持 Excel 表格（.xlsx）、.csv 或 .jsonl 文件",
    "StagedFileGone": "预检过的文件已不在，请重新上传并预检",
    "ComplaintNotFound": "没有找到这件投诉",
    "ComplaintAlreadyReviewed": "这件投诉已经处理过",
    "ComplaintTicketNotFound": "受理编号或查询码不正确",
    "RepairNotFound": "没有找到这份信用修复申请",
    "PenaltyNotFound": "没有找到这条处罚记录",
    "RepairNotAllowed": "暂不符合信用修复条件",
    "RepairPending": "已有一份待审核的修复申请",
    "RepairAlreadyDecided": "这份修复申请已经审核过",
    "PolicyNotFound": "没有找到这一版信用规则",
    "NoPolicyInForce": "当前没有生效的信用规则",
    "InvalidPolicy": "信用规则不符合要求",
    "PolicyBackdated": "生效日期不能早于今天或已发布的版本",
    "PolicyVersionConflict": "信用规则已被他人更新，请刷新后重试",
    "ProposalNotFound": "没有找到这份抽查比例提案",
    "ProposalDecided": "这份提案已经处理过",
    "SelfApproval": "提案人不能批准自己的提案，需要另一名工作人员批准",
    "PublishNotPermitted": "按当前设置，这个账号不能发布抽查比例",
    "NothingProposed": "抽查比例与现行规则相同，无需提出",
    "InspectorNotFound": "没有找到这名检查人员",
    "InspectorExists": "这个检查人员编号已经存在",
    "InvalidInspector": "检查人员信息不完整",
    "ItemNotFound": "没有找到这个抽查事项",
    "NothingChanged": "没有需要保存的修改",
    "DrawNotFound": "没有找到这次双随机抽查",
    "InvalidDraw": "抽查设置有误",
    "EmptySnapshot": "没有符合条件的检查对象",
    "NotEnoughInspectors": "可用的检查人员不足",
    "ItemInactive": "这个抽查事项已停用",
    "DrawNotDue": "尚未到达揭示区块，请稍后再揭示",
    "DrawAlreadyRevealed": "这次抽查已经揭示过",
    "DrawExpired": "这次抽查已过期",
    "DocumentNotFound": "没有这份文档",
    "InvalidTreeSize": "树的大小超出日志范围",
    "InvalidIdempotencyKey": "幂等键（Idempotency-Key）格式不正确",
    "IdempotencyKeyReused": "这个幂等键（Idempotency-Key）已用于另一个不同的请求",
    "UnknownPledgeTemplate": "没有这个版本的承诺书",
    "InvalidValidity": "承诺有效期不正确",
    "InvalidPledgeSignature": "承诺书签名无效",
    "NoWalletBound": "尚未绑定钱包地址，无法验证签名",
    "SignerMismatch": "签名的钱包不是本单位绑定的钱包",
    "InvalidDemonstrationAction": "示范单位操作不正确",
    "SignatureAlreadyUsed": "这个签名已经使用过",
    "PledgeNotActive": "这份承诺已不在有效期内",
    "PledgeConflict": "承诺状态已变化，请刷新后重试",
    "NoActivePledge": "当前没有有效的承诺",
    "AlreadyDemonstrationUnit": "该经营者已是示范单位",
    "NotDemonstrationUnit": "该经营者不是示范单位",
    "ConflictAlreadyWithdrawn": "这条利益冲突申报已经撤回",
    "ConflictAlreadyDeclared": "这条利益冲突已经申报过",
    "EntryTooLarge": "条目过大，无法发布",
    "MetricsTokenRequired": "查看运行指标需要令牌",
    "CreditUnavailable": "信用等级暂时无法计算，请稍后再试",
    "RpcBusy": "区块链节点繁忙，请稍后再试",
    "LedgerDisagreement": "区块链上的数据与本地记录不一致，请联系运维人员",
    "LedgerRefused": "区块链拒绝了这笔交易",
    "Unauthorized": "需要登录",
    "Forbidden": "没有权限",
    "Conflict": "与现有记录冲突",
    "ServiceUnavailable": "服务暂不可用，请稍后再试",
    "ValidationFailed": "填写的内容有误",
    "RowInvalid": "格式不正确",
    "FormInputError": "格式不正确",
}

# A class of error the table does not name, by HTTP status.
STATUS_MESSAGES: dict[int, str] = {
    400: "请求有误",
    401: "需要登录",
    403: "没有权限",
    404: "没有找到",
    405: "不支持的操作",
    406: "无法按要求的格式回答",
    408: "请求超时",
    409: "与现有记录冲突",
    413: "内容过大",
    415: "不支持的格式",
    422: "填写的内容有误",
    429: "操作过于频繁，请稍后再试",
    500: "系统错误",
    502: "上游服务（区块链节点）返回了意外结果",
    503: "服务暂不可用，请稍后再试",
}

# Which field an error is about when the error itself does not say (``field=``).
DOMAIN_FIELDS: dict[str, str] = {
    "InvalidCreditCode": "uscc",
    "MerchantAlreadyRegistered": "uscc",
    "MerchantNotFound": "uscc",
    "UsernameTaken": "uscc",
    "UnknownSector": "sector",
    "UnknownRegion": "region_code",
    "UnknownSubArea": "sub_area",
    "InvalidPhone": "contact_phone",
    "WeakPassword": "password",
    "InvalidWalletAddress": "wallet_address",
    "PledgeItemsInvalid": "items",
    "MerchantNotSelected": "draw_id",
    "UnknownDraw": "draw_id",
    "DrawNotRevealed": "draw_id",
}

_CHARSET = "只能是数字和除 I、O、S、V、Z 以外的大写字母"


def _credit_code(extra: Mapping[str, Any]) -> str:
    rule = extra.get("rule")
    position = extra.get("position")
    expected = extra.get("expected")
    hint = f"；按前 17 位计算，第 18 位应为 {expected}" if expected else ""
    if rule == "length":
        return "应为 18 位"
    if rule == "charset":
        where = f"第 {position} 位" if position else ""
        return f"{where}含有不允许的字符（{_CHARSET}）{hint}"
    if rule in ("check", "org_check"):
        position = position or (18 if rule == "check" else 17)
        tail = f"，按规则应为 {expected}" if expected else ""
        return f"校验位不正确：第 {position} 位{tail}。请核对营业执照"
    return "格式不正确"


_TEXT_RULES = {
    "empty": "不能为空",
    "control": "含有不允许的控制字符",
    "invisible": "含有看不见的格式字符（如零宽空格），请删除后重新输入",
}


def _text(extra: Mapping[str, Any]) -> str:
    rule = extra.get("rule")
    if rule == "too_long":
        return f"不能超过 {extra.get('max_len', '')} 个字符"
    return _TEXT_RULES.get(str(rule), "格式不正确")


def _row(extra: Mapping[str, Any]) -> str:
    return _credit_code(extra) if extra.get("field") == "uscc" else _text(extra)


def _record_not_found(extra: Mapping[str, Any]) -> str:
    if extra.get("field") == "uscc":
        return DOMAIN_MESSAGES["MerchantNotFound"]
    return DOMAIN_MESSAGES["SupervisionRecordNotFound"]


_SPECIAL = {
    "InvalidCreditCode": _credit_code,
    "InvalidText": _text,
    "RowInvalid": _row,
    "SupervisionRecordNotFound": _record_not_found,
}


def domain_field(exc: DomainError) -> str | None:
    field = exc.extra.get("field")
    return field if isinstance(field, str) else DOMAIN_FIELDS.get(exc.name)


def domain_message(exc: DomainError) -> str:
    """What a domain error means, in Chinese, without the field's name."""
    special = _SPECIAL.get(exc.name)
    if special is not None:
        return special(exc.extra)
    for cls in type(exc).__mro__:
        text = DOMAIN_MESSAGES.get(cls.__name__)
        if text is not None and cls.__name__ not in ("ValidationFailed", "DomainError"):
            return text
    return STATUS_MESSAGES.get(exc.status_code, "出错了")


def domain_errors(
    exc: DomainError, *, labels: Mapping[str, str] | None = None
) -> list[tuple[str | None, str]]:
    """A domain error as ``[(field, "标签：说明")]`` (a bulk import's rows aside)."""
    field = domain_field(exc)
    given = exc.extra.get("detail_zh")
    if isinstance(given, str) and given:
        # Raised by a page with its own Chinese, which names the field already.
        return [(field, given)]
    message = domain_message(exc)
    label = field_label(field, labels) if field else ""
    return [(field, f"{label}：{message}" if label else message)]


def summary(name: str, status: int) -> str:
    """One line for the top of a page: what kind of problem this is."""
    return DOMAIN_MESSAGES.get(name) or STATUS_MESSAGES.get(status, "出错了")


def detail_zh(exc: DomainError) -> str:
    """``detail_zh`` of a JSON error answer."""
    return "；".join(text for _, text in domain_errors(exc))


def validation_detail_zh(errors: Iterable[Mapping[str, Any]]) -> str:
    """``detail_zh`` of a request that failed validation: every problem, joined."""
    return "；".join(text for _, text in pydantic_errors(errors)) or "请求内容有误"

