"""The password rule: one function, used by the API, the pages and ``create-user``.

:func:`password_problem` says what is wrong with a password (in English for the API's
``detail`` and in Chinese for the pages), or ``None``; :data:`PASSWORD_RULE_ZH` is the
hint the forms show, written from the same numbers and lists, so the rule shown is the
rule enforced.
"""

from __future__ import annotations

from backend.errors import ValidationFailed

PASSWORD_MIN = 10
PASSWORD_MAX = 128
MIN_DISTINCT = 4

# Runs that a password must not be (or be a part of), forwards or backwards.
_SEQUENCES = (
    "01234567890123456789",
    "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz",
    "qwertyuiopasdfghjklzxcvbnm",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
    "1q2w3e4r5t6y7u8i9o0p",
    "q1w2e3r4t5y6u7i8o9p0",
)

# The most used passwords of ten characters or more (lower case), from published leak
# statistics; everything shorter is refused by length already.
COMMON = frozenset(
    {
        "1234567890", "0987654321", "1234512345", "1122334455", "1234554321",
        "1357924680", "147258369", "1472583690", "1314520520", "5201314520",
        "woaini1314", "woaini520", "iloveyou12", "iloveyou123", "password12",
        "password123", "password1234", "passw0rd123", "p@ssw0rd123", "qwerty1234",
        "qwerty123456", "1qaz2wsx3edc", "1qaz@wsx3edc", "zaq12wsxcde3", "asdf123456",
        "a1234567890", "a123456789", "aa123456789", "abc1234567", "abc123456789",
        "abcd123456", "abcd1234567", "qq123456789", "admin12345", "admin123456",
        "administrator", "welcome123", "changeme123", "letmein123", "football123",
        "sunshine123", "princess123", "123456789a", "123456789q", "1234567890a",
        "12345678910", "123123123123", "1231231231", "1111111111", "0000000000",
    }
)

PASSWORD_RULE_ZH = (
    f"至少 {PASSWORD_MIN} 个字符，至少 {MIN_DISTINCT} 种不同的字符；"
    "不能是连续的数字或字母（如 1234567890、abcdefghij、qwertyuiop）、"
    "重复的片段（如 abcabcabca）或常见密码，也不能与用户名相同。"
)
PASSWORD_RULE_EN = (
    f"at least {PASSWORD_MIN} characters with at least {MIN_DISTINCT} different ones; not a "
    "run of digits or letters (1234567890, abcdefghij, qwertyuiop), not a repeated piece "
    "(abcabcabca), not a common password, and not the user name"
)


class WeakPassword(ValidationFailed):
    """The password breaks the rule; ``detail_zh`` says how, in Chinese."""


def _is_run(text: str) -> bool:
    return any(text in s or text in s[::-1] for s in _SEQUENCES)


def _is_repeated(text: str) -> bool:
    """Made of one piece of at most a third of its length, repeated (the last copy may be cut)."""
    for n in range(1, len(text) // 3 + 1):
        piece = text[:n]
        if (piece * (len(text) // n + 1))[: len(text)] == text:
            return True
    return False


def password_problem(password: str, *, username: str) -> tuple[str, str] | None:
    """What is wrong with ``password`` for the account ``username``, as
    ``(english, chinese)``, or ``None`` if it keeps the rule."""
    n = len(password)
    if n < PASSWORD_MIN:
        return (
            f"password must have at least {PASSWORD_MIN} characters, got {n}",
            f"密码至少 {PASSWORD_MIN} 个字符，现在是 {n} 个。",
        )
    if n > PASSWORD_MAX:
        return (
            f"password must have at most {PASSWORD_MAX} characters, got {n}",
            f"密码最多 {PASSWORD_MAX} 个字符，现在是 {n} 个。",
        )
    folded = password.strip().lower()
    if folded == username.strip().lower():
        return ("password must differ from the user name", "密码不能与用户名相同。")
    if len(set(folded)) < MIN_DISTINCT:
        return (
            f"password must use at least {MIN_DISTINCT} different characters",
            f"密码至少要有 {MIN_DISTINCT} 种不同的字符。",
        )
    if _is_run(folded):
        return (
            "password is a run of digits or letters (like 1234567890); choose another",
            "密码不能是连续的数字或字母（如 1234567890、abcdefghij）。",
        )
    if _is_repeated(folded):
        return ("password is one piece repeated; choose another", "密码不能是重复的片段。")
    if folded in COMMON:
        return ("password is one of the most common passwords; choose another",
                "这是常见密码，很容易被猜中，请换一个。")
    return None


def validate_password(password: str, *, username: str) -> None:
    """Raise :class:`WeakPassword` (with ``detail_zh`` and ``field``) unless the
    password keeps the rule."""
    problem = password_problem(password, username=username)
    if problem is not None:
        raise WeakPassword(problem[0], detail_zh=problem[1], rule_zh=PASSWORD_RULE_ZH)
