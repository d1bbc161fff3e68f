"""Safeguards on amounts typed into staff forms: the amount in words (大写) and a
confirmation above a threshold, so that a slip (``1e9`` for 1,000 元) is caught before
it is published for good. ``static/amounts.js`` shows the same words as one types;
this module is what the server checks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from backend.disclosure.shown import yuan

CONFIRM_ABOVE_FEN = 10_000_000
"""A fine above 100,000 元 must be confirmed (the larger penalties are rare and permanent)."""

_AMOUNT = re.compile(r"\d{1,16}(?:\.\d{1,2})?")


def parse_yuan(raw: str) -> int:
    """Yuan as typed (digits, an optional point and two decimals; thousands commas
    ignored) in fen. ValueError for anything else: ``1e9``, ``Infinity``, ``-5``."""
    text = raw.strip().replace(",", "")
    if not _AMOUNT.fullmatch(text):
        raise ValueError(f"not an amount of yuan: {raw!r}")
    whole, _, cents = text.partition(".")
    return int(whole) * 100 + int((cents + "00")[:2])


_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_SMALL = ("", "拾", "佰", "仟")
_GROUPS = ("", "万", "亿", "万亿")


def _group(n: int) -> str:
    """0 < n < 10000 in words, with 零 for inner gaps."""
    out, zero = "", False
    for i in range(3, -1, -1):
        d = n // 10**i % 10
        if d == 0:
            zero = bool(out)
            continue
        if zero:
            out += "零"
            zero = False
        out += _DIGITS[d] + _SMALL[i]
    return out


def yuan_in_words(fen: int) -> str:
    """An amount of fen in 大写, as on a cheque: ``105005`` → ``壹仟零伍拾元零伍分``."""
    if fen < 0:
        return "负" + yuan_in_words(-fen)
    whole, cents = divmod(fen, 100)
    words = ""
    if whole:
        groups = []
        k = 0
        while whole:
            groups.append((whole % 10_000, k))
            whole //= 10_000
            k += 1
        need_zero = False
        for n, k in reversed(groups):
            if n == 0:
                need_zero = bool(words)
                continue
            if words and (need_zero or n < 1000):
                words += "零"
            words += _group(n) + _GROUPS[k]
            need_zero = False
        words += "元"
    jiao, fen_ = divmod(cents, 10)
    if not cents:
        return (words or "零元") + "整"
    if jiao:
        words += _DIGITS[jiao] + "角"
    elif words:
        words += "零"
    if fen_:
        words += _DIGITS[fen_] + "分"
    return words


def confirmation_needed(amount_fen: int, form: Mapping[str, str]) -> str | None:
    """The Chinese request to confirm a large amount, or ``None`` when it is small or was
    confirmed (the confirmation names the very amount, so a changed amount asks again)."""
    if amount_fen <= CONFIRM_ABOVE_FEN or form.get("amount_confirmed") == str(amount_fen):
        return None
    return (
        f"罚没金额为 {yuan(amount_fen)}（{yuan_in_words(amount_fen)}），超过 "
        f"{yuan(CONFIRM_ABOVE_FEN)}：请核对无误后勾选“金额无误”再提交"
    )
