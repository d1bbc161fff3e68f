"""Unified social credit code (统一社会信用代码, GB 32100-2015): parse and check.

A merchant is identified everywhere (database rows, ledger record subjects,
public pages) by its credit code, so this module is the one place that decides
whether a string is one. It is pure: no I/O, no database, no registry look-up.
Passing these checks proves only that a code is well formed, never that the
entity exists; it must not be used as evidence of registration.

Layout (1-based positions)::

    1     registration authority      (9 = 工商/市场监管, ...)
    2     entity type                 (under 9: 1 企业, 2 个体工商户, 3 农民专业合作社)
    3-8   administrative division code of the registering authority (GB/T 2260)
    9-16  organisation-code body      (GB 11714)
    17    organisation-code check     (GB 11714, mod 11: a digit or 'X')
    18    check character             (GB 32100, mod 31)

The rules are applied in the order length, charset, org_check, check, and the
first one that fails is reported; :attr:`InvalidUSCC.rule` names it.
"""

from __future__ import annotations

from typing import Final, TypedDict

LENGTH: Final = 18
ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
"""The 31 characters a code may contain; a character's value is its index."""
FORBIDDEN_LETTERS: Final = "IOSVZ"

_VALUE: Final = {c: i for i, c in enumerate(ALPHABET)}
# GB 32100 weights: W_i = 3^(i-1) mod 31 for i = 1..17.
_CHECK_WEIGHTS: Final = tuple(pow(3, i, 31) for i in range(LENGTH - 1))
# GB 11714 weights for the 8 body characters of the organisation code.
_ORG_WEIGHTS: Final = (3, 7, 9, 10, 5, 8, 4, 2)

AUTHORITIES: Final = {"1": "机构编制", "5": "民政", "9": "工商/市场监管", "Y": "其他"}
ENTITY_TYPES: Final = {
    "9": {"1": "企业", "2": "个体工商户", "3": "农民专业合作社"},
}


class InvalidUSCC(ValueError):
    """A string is not a well-formed unified social credit code.

    ``rule`` is one of ``"length"``, ``"charset"``, ``"org_check"``, ``"check"``.
    For the two check rules ``expected`` and ``given`` hold the check character
    the code should have and the one it has; ``position`` is 1-based.
    """

    def __init__(
        self,
        message: str,
        *,
        rule: str,
        code: str,
        position: int | None = None,
        expected: str | None = None,
        given: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule
        self.code = code
        self.position = position
        self.expected = expected
        self.given = given


class USCCParts(TypedDict):
    code: str
    authority: str
    authority_name: str | None
    entity_type: str
    entity_type_name: str | None
    division_code: str
    org_code: str
    check_char: str


def normalize_uscc(raw: str) -> str:
    """Strip surrounding whitespace and upper-case ASCII letters.

    Only ASCII is upper-cased: ``str.upper`` would turn 'ß' into 'SS' or the
    dotless 'ı' into 'I', changing the length or smuggling a look-alike past
    the charset rule.
    """
    if not isinstance(raw, str):
        raise TypeError(f"credit code must be a str, got {type(raw).__name__}")
    return "".join(c.upper() if c.isascii() else c for c in raw.strip())


def org_check_char(body: str) -> str:
    """GB 11714 check character for an 8-character organisation-code body.

    Digits are valued 0-9 and letters A=10 ... Z=35 over the *full* alphabet
    (not the 31-character table). Result: a digit, or 'X' for 10.
    """
    if len(body) != 8 or not all(c.isascii() and c.isalnum() for c in body):
        raise ValueError(f"organisation-code body must be 8 characters 0-9/A-Z, got {body!r}")
    total = sum(int(c, 36) * w for c, w in zip(body.upper(), _ORG_WEIGHTS, strict=True))
    c9 = 11 - total % 11
    return "X" if c9 == 10 else "0" if c9 == 11 else str(c9)


def check_char(first17: str) -> str:
    """GB 32100 check character (position 18) for the first 17 characters."""
    if len(first17) != LENGTH - 1 or any(c not in _VALUE for c in first17):
        raise ValueError(f"need 17 characters from the credit-code alphabet, got {first17!r}")
    total = sum(_VALUE[c] * w for c, w in zip(first17, _CHECK_WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def compute_check_chars(first16: str) -> str:
    """The two check characters (positions 17 and 18) that complete ``first16``.

    ``first16`` is normalised like a full code; it must be 16 characters from
    the credit-code alphabet, else :class:`InvalidUSCC` (rule ``length`` or
    ``charset``) is raised.
    """
    prefix = normalize_uscc(first16)
    if len(prefix) != LENGTH - 2:
        raise InvalidUSCC(
            f"credit-code prefix must be 16 characters, got {len(prefix)}"
            f" (统一社会信用代码前16位应为16位，实际为{len(prefix)}位)",
            rule="length",
            code=prefix,
        )
    _check_charset(prefix)
    c17 = org_check_char(prefix[8:16])
    return c17 + check_char(prefix + c17)


def validate_uscc(raw: str) -> str:
    """Return the normalised code, or raise :class:`InvalidUSCC` naming the rule."""
    code = normalize_uscc(raw)
    if len(code) != LENGTH:
        raise InvalidUSCC(
            f"credit code must be 18 characters, got {len(code)}"
            f" (统一社会信用代码应为18位，实际为{len(code)}位)",
            rule="length",
            code=code,
        )
    _check_charset(code)

    expected17 = org_check_char(code[8:16])
    given17 = code[16]
    if given17 != expected17:
        if not (given17.isdigit() or given17 == "X"):
            message = (
                f"organisation-code check character (position 17) must be a digit or 'X',"
                f" got {given17!r}; for body {code[8:16]} it should be {expected17!r}"
                f" (组织机构代码校验码（第17位）应为数字或X，实际为'{given17}'，"
                f"按第9-16位计算应为'{expected17}')"
            )
        else:
            message = (
                f"organisation-code check character (position 17) should be {expected17!r},"
                f" got {given17!r}"
                f" (组织机构代码校验码（第17位）应为'{expected17}'，实际为'{given17}')"
            )
        raise InvalidUSCC(
            message,
            rule="org_check",
            code=code,
            position=17,
            expected=expected17,
            given=given17,
        )

    expected18 = check_char(code[:17])
    given18 = code[17]
    if given18 != expected18:
        raise InvalidUSCC(
            f"check character (position 18) should be {expected18!r}, got {given18!r}"
            f" (统一社会信用代码校验码（第18位）应为'{expected18}'，实际为'{given18}')",
            rule="check",
            code=code,
            position=18,
            expected=expected18,
            given=given18,
        )
    return code


def is_valid_uscc(raw: str) -> bool:
    try:
        validate_uscc(raw)
    except (InvalidUSCC, TypeError):
        return False
    return True


def uscc_parts(code: str) -> USCCParts:
    """Split a code (validated first) into its GB 32100 fields.

    Names are given only for the authorities and entity types this service
    knows (domain.md); anything else is ``None``, not an error, because the
    standard's table grows and the check characters do not depend on it.
    """
    code = validate_uscc(code)
    authority, entity_type = code[0], code[1]
    return {
        "code": code,
        "authority": authority,
        "authority_name": AUTHORITIES.get(authority),
        "entity_type": entity_type,
        "entity_type_name": ENTITY_TYPES.get(authority, {}).get(entity_type),
        "division_code": code[2:8],
        "org_code": code[8:17],
        "check_char": code[17],
    }


def _check_charset(code: str) -> None:
    bad = [(i, c) for i, c in enumerate(code, start=1) if c not in _VALUE]
    if not bad:
        return
    listed = ", ".join(f"{c!r} at position {i}" for i, c in bad)
    listed_zh = "、".join(f"第{i}位{c!r}" for i, c in bad)
    first_i, first_c = bad[0]
    expected: str | None = None
    hint = hint_zh = ""
    if len(code) == LENGTH and bad == [(LENGTH, code[-1])]:
        # Only the check character is bad: say what it should have been, so a
        # code with a made-up last character is diagnosed as fully as possible.
        expected = check_char(code[:17])
        hint = f"; the check character for the first 17 characters would be {expected!r}"
        hint_zh = f"；按前17位计算校验码应为'{expected}'"
    message = (
        f"credit code contains characters that are not allowed: {listed};"
        f" allowed are 0-9 and A-Y except I, O, S, V, Z{hint}"
        f" (统一社会信用代码含有不允许的字符：{listed_zh}；"
        f"只允许数字0-9和除I、O、S、V、Z以外的大写字母{hint_zh})"
    )
    raise InvalidUSCC(
        message,
        rule="charset",
        code=code,
        position=first_i,
        expected=expected,
        given=first_c,
    )
