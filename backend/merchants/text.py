"""Free text that goes into records and onto public pages: names, addresses,
reasons, extra commitments.

Text is kept exactly as given after Unicode NFC (no trimming, no case
folding: a shop's name is its own), but control characters (Cc) and every
invisible format character (Unicode category Cf: zero-width spaces and joiners,
direction marks and overrides, the byte-order mark, soft hyphens, tag
characters), which can make one name look like another or display as something
else, are refused with their position. Escaping is the renderer's job, always;
this module never escapes or strips markup, so ``<b>`` stays ``<b>``.
"""

from __future__ import annotations

import unicodedata

from backend.errors import ValidationFailed

MULTILINE_ALLOWED = frozenset("\n\r\t")


class InvalidText(ValidationFailed):
    """A text field that is empty, too long or contains a forbidden character."""


def clean_text(
    value: str, *, field: str, max_len: int, multiline: bool = False, required: bool = True
) -> str:
    """NFC-normalise and check ``value``; raise :class:`InvalidText` naming ``field``."""
    text = unicodedata.normalize("NFC", value)
    if not text.strip():
        if required:
            raise InvalidText(f"{field} must not be empty", field=field, rule="empty")
        return text
    if len(text) > max_len:
        raise InvalidText(
            f"{field} is {len(text)} characters long; at most {max_len} are allowed",
            field=field,
            rule="too_long",
            max_len=max_len,
        )
    for pos, ch in enumerate(text, start=1):
        cat = unicodedata.category(ch)
        if cat == "Cc" and not (multiline and ch in MULTILINE_ALLOWED):
            raise InvalidText(
                f"{field} contains the control character U+{ord(ch):04X} at position {pos}",
                field=field,
                rule="control",
            )
        # Cf: invisible format characters (U+200B zero-width space, U+200F right-to-left
        # mark, U+FEFF, the bidi overrides U+202A-U+202E of "Trojan Source"...); Cs: lone
        # surrogates.
        if cat in ("Cf", "Cs"):
            raise InvalidText(
                f"{field} contains the invisible formatting character U+{ord(ch):04X} "
                f"at position {pos}",
                field=field,
                rule="invisible",
            )
    return text


def clean_optional_text(
    value: str | None, *, field: str, max_len: int, multiline: bool = False
) -> str | None:
    """Like :func:`clean_text`, with ``None`` (or blank) meaning "not given"."""
    if value is None:
        return None
    text = clean_text(value, field=field, max_len=max_len, multiline=multiline, required=False)
    return text if text.strip() else None
