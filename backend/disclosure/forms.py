"""Checks of whole forms before a service is called, so one submission shows every problem.

A service stops at the first rule an input breaks; a person filling a form wants to
see every field that needs fixing at once. Each function here runs the domain's own
check of each field (the same parse functions the services call, never a copy of a
rule), gathers every failure as a :class:`~backend.disclosure.web.FormError`, and
returns ``None`` when nothing is wrong. The service still checks everything again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from pydantic import ValidationError

from backend.accounts.passwords import validate_password
from backend.disclosure.web import FORM_INVALID, FormError, check_each, required
from backend.merchants import service as merchants
from backend.merchants.models import MerchantCreate
from backend.supervision.models import ComplaintCreate
from backend.uscc import normalize_uscc

T = TypeVar("T")

REGISTER_REQUIRED = {
    "uscc": "统一社会信用代码",
    "name": "经营者名称",
    "sector": "行业",
    "region_code": "所在地区",
    "address": "经营地址",
    "contact_person": "联系人姓名",
    "contact_phone": "联系电话",
    "password": "密码",
}

REGISTER_LABELS = {**REGISTER_REQUIRED, "sub_area": "所在园区", "password2": "再次输入的密码"}


def _validated(
    found: list[FormError], build: Callable[[], T], labels: Mapping[str, str]
) -> tuple[T | None, FormError | None]:
    """``build()`` (the service's input model) unless it or ``found`` has a problem; a
    field already reported is not reported twice."""
    data = None
    try:
        data = build()
    except ValidationError as exc:
        already = {f for e in found for f in e.fields()}
        invalid = FormError.of(exc, labels=labels)
        invalid.problems = [(f, t) for f, t in invalid.problems if f not in already]
        found.append(invalid)
    error = FormError.collect([e for e in found if e.problems])
    if error is not None:
        error.message = FORM_INVALID
        return None, error
    return data, None


def _given(values: Mapping[str, str], name: str) -> bool:
    return bool(values.get(name, "").strip())


def merchant_create(
    values: Mapping[str, str], *, password: str, password2: str
) -> tuple[MerchantCreate | None, FormError | None]:
    """The registration a form describes, or every problem with it (``values`` as typed)."""
    found = required({**values, "password": password}, REGISTER_REQUIRED)
    checks = {
        "uscc": lambda: merchants.parse_uscc(values["uscc"]),
        "sector": lambda: merchants.parse_sector(values["sector"]),
        "region_code": lambda: merchants.parse_region(values["region_code"]),
        "sub_area": lambda: merchants.parse_sub_area(values.get("sub_area") or None),
        "contact_phone": lambda: merchants.parse_phone(values["contact_phone"]),
        # The one password rule (backend/accounts/passwords.py); a merchant's user
        # name is its credit code.
        "password": lambda: validate_password(
            password, username=normalize_uscc(values.get("uscc", ""))
        ),
    }
    found += check_each(
        {k: check for k, check in checks.items() if _given({**values, "password": password}, k)},
        labels=REGISTER_LABELS,
    )
    if password and password != password2:
        found.append(FormError("", problems=[("password2", "两次输入的密码不一致")]))
    return _validated(
        found,
        lambda: MerchantCreate(
            uscc=values["uscc"],
            name=values["name"],
            sector=values["sector"],
            region_code=values["region_code"],
            sub_area=values.get("sub_area") or None,
            address=values["address"],
            contact_person=values["contact_person"],
            contact_phone=values["contact_phone"],
            password=password,
        ),
        REGISTER_LABELS,
    )


COMPLAINT_LABELS = {
    "uscc": "被举报经营者的统一社会信用代码",
    "content": "举报内容",
    "contact": "联系方式",
}


def complaint_create(values: Mapping[str, str]) -> tuple[ComplaintCreate | None, FormError | None]:
    """The complaint a form describes, or every problem with it."""
    found = required(values, {"uscc": COMPLAINT_LABELS["uscc"], "content": "举报内容"})
    if _given(values, "uscc"):
        found += check_each(
            {"uscc": lambda: merchants.parse_uscc(values["uscc"])}, labels=COMPLAINT_LABELS
        )
    return _validated(
        found,
        lambda: ComplaintCreate(
            uscc=values["uscc"],
            content=values["content"],
            contact=values.get("contact", "").strip() or None,
        ),
        COMPLAINT_LABELS,
    )
