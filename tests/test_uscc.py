"""GB 32100 credit-code checks: published and domain.md vectors, every rule
with its message, and property tests cross-checked against a naive reference
written from the standard's own tables (not from the module under test)."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.uscc import (
    ALPHABET,
    InvalidUSCC,
    check_char,
    compute_check_chars,
    is_valid_uscc,
    normalize_uscc,
    org_check_char,
    uscc_parts,
    validate_uscc,
)

# --- naive reference, straight from the standards' tables -------------------

REF_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
# GB 32100-2015 table of weights for positions 1..17, as printed in the standard.
REF_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
REF_ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2]
REF_ORG_VALUES = {
    **{d: int(d) for d in string.digits},
    **{c: 10 + i for i, c in enumerate(string.ascii_uppercase)},
}


def ref_org_check(body: str) -> str:
    total = 0
    for i in range(8):
        total += REF_ORG_VALUES[body[i]] * REF_ORG_WEIGHTS[i]
    c = 11 - total % 11
    if c == 10:
        return "X"
    if c == 11:
        return "0"
    return str(c)


def ref_check(first17: str) -> str:
    total = 0
    for i in range(17):
        total += REF_CHARSET.index(first17[i]) * REF_WEIGHTS[i]
    c = 31 - total % 31
    if c == 31:
        c = 0
    return REF_CHARSET[c]


def ref_is_valid(code: str) -> bool:
    return (
        len(code) == 18
        and all(c in REF_CHARSET for c in code)
        and ref_org_check(code[8:16]) == code[16]
        and ref_check(code[:17]) == code[17]
    )


VALID_PUBLISHED = ["91512081MA62K0260E", "914403001922038216", "91330100716105852F"]
VALID_MADE_UP_BAZHONG = ["91511902MA62Q3T556", "92511923MA6A1B2C3M", "93511903MA62R7U15L"]
VALID = VALID_PUBLISHED + VALID_MADE_UP_BAZHONG
BASE = "91511902MA62Q3T556"

prefixes16 = st.text(alphabet=ALPHABET, min_size=16, max_size=16)


def rule_of(raw: str) -> str:
    with pytest.raises(InvalidUSCC) as info:
        validate_uscc(raw)
    return info.value.rule


class TestReferenceTables:
    def test_alphabet_is_the_31_characters(self) -> None:
        assert ALPHABET == REF_CHARSET
        assert len(ALPHABET) == 31
        assert not set("IOSVZ") & set(ALPHABET)

    def test_weights_are_powers_of_three(self) -> None:
        assert [pow(3, i, 31) for i in range(17)] == REF_WEIGHTS


class TestDomainExamples:
    @pytest.mark.parametrize("code", VALID)
    def test_valid(self, code: str) -> None:
        assert validate_uscc(code) == code
        assert is_valid_uscc(code)
        assert ref_is_valid(code)

    @pytest.mark.parametrize("code", VALID)
    def test_compute_check_chars_reproduces(self, code: str) -> None:
        assert compute_check_chars(code[:16]) == code[16:]

    def test_invalid_example_is_rejected_for_its_forbidden_check_character(self) -> None:
        # domain.md: "91350100M000100Y4Z (check should be '3')". 'Z' is outside the
        # alphabet, so the charset rule fires first; the message still says '3'.
        with pytest.raises(InvalidUSCC) as info:
            validate_uscc("91350100M000100Y4Z")
        err = info.value
        assert err.rule == "charset"
        assert (err.position, err.given, err.expected) == (18, "Z", "3")
        assert "'Z' at position 18" in str(err)
        assert "would be '3'" in str(err)
        assert "按前17位计算校验码应为'3'" in str(err)

    def test_invalid_example_with_check_3_is_valid(self) -> None:
        assert validate_uscc("91350100M000100Y43") == "91350100M000100Y43"

    def test_invalid_example_with_another_allowed_check_char_fails_check(self) -> None:
        with pytest.raises(InvalidUSCC) as info:
            validate_uscc("91350100M000100Y4Y")
        assert (info.value.rule, info.value.expected, info.value.given) == ("check", "3", "Y")


class TestNormalisation:
    @pytest.mark.parametrize(
        "raw",
        [
            "91511902ma62q3t556",
            "  91511902MA62Q3T556  ",
            "\t91511902Ma62q3T556\n",
            "\u300091511902MA62Q3T556\u3000",  # ideographic space, common when pasting
        ],
    )
    def test_case_and_surrounding_whitespace(self, raw: str) -> None:
        assert validate_uscc(raw) == BASE

    def test_normalize_only(self) -> None:
        assert normalize_uscc(" abc ") == "ABC"

    def test_non_ascii_is_not_upper_cased_into_ascii(self) -> None:
        # 'ß'.upper() == 'SS' and 'ı'.upper() == 'I' would change length or
        # produce an ASCII look-alike; both must stay and fail the charset rule.
        assert normalize_uscc("ß") == "ß"
        code = BASE[:17] + "ß"
        with pytest.raises(InvalidUSCC) as info:
            validate_uscc(code)
        assert info.value.rule == "charset"
        assert info.value.position == 18
        assert rule_of(BASE[:9] + "ı" + BASE[10:]) == "charset"

    def test_not_a_string(self) -> None:
        with pytest.raises(TypeError):
            validate_uscc(915119021234567890)  # type: ignore[arg-type]
        assert not is_valid_uscc(None)  # type: ignore[arg-type]


class TestLengthRule:
    @pytest.mark.parametrize("raw, n", [(BASE[:17], 17), (BASE + "0", 19), ("", 0), ("   ", 0)])
    def test_message(self, raw: str, n: int) -> None:
        with pytest.raises(InvalidUSCC) as info:
            validate_uscc(raw)
        assert info.value.rule == "length"
        assert str(info.value) == (
            f"credit code must be 18 characters, got {n} (统一社会信用代码应为18位，实际为{n}位)"
        )

    def test_length_is_checked_before_charset(self) -> None:
        assert rule_of("I" * 17) == "length"

    def test_internal_space_is_not_stripped(self) -> None:
        assert rule_of("91511902 MA62Q3T556") == "length"


class TestCharsetRule:
    @pytest.mark.parametrize("letter", list("IOSVZ"))
    def test_forbidden_letters_are_named(self, letter: str) -> None:
        raw = BASE[:9] + letter + BASE[10:]
        with pytest.raises(InvalidUSCC) as info:
            validate_uscc(raw)
        err = info.value
        assert err.rule == "charset"
        assert (err.position, err.given, err.expected) == (10, letter, None)
        assert f"'{letter}' at position 10" in str(err)
        assert f"第10位'{letter}'" in str(err)
        assert "except I, O, S, V, Z" in str(err)

    def test_lowercase_forbidden_letter_is_reported_upper_cased(self) -> None:
        err_text = str(pytest.raises(InvalidUSCC, validate_uscc, BASE[:9] + "o" + BASE[10:]).value)
        assert "'O' at position 10" in err_text

    def test_all_bad_characters_are_listed(self) -> None:
        raw = "91511902MA6IQ3TO56"
        with pytest.raises(InvalidUSCC) as info:
            validate_uscc(raw)
        assert "'I' at position 12, 'O' at position 16" in str(info.value)
        assert info.value.position == 12

    @pytest.mark.parametrize("bad", ["-", " ", "１", "中", "\u200b"])
    def test_other_characters(self, bad: str) -> None:
        raw = BASE[:5] + bad + BASE[6:]
        with pytest.raises(InvalidUSCC) as info:
            validate_uscc(raw)
        assert info.value.rule == "charset"
        assert f"{bad!r} at position 6" in str(info.value)

    def test_charset_is_checked_before_the_check_characters(self) -> None:
        assert rule_of("I" + BASE[1:]) == "charset"


class TestOrgCheckRule:
    def test_wrong_digit(self) -> None:
        with pytest.raises(InvalidUSCC) as info:
            validate_uscc(BASE[:16] + "4" + BASE[17])
        err = info.value
        assert (err.rule, err.position, err.expected, err.given) == ("org_check", 17, "5", "4")
        assert str(err) == (
            "organisation-code check character (position 17) should be '5', got '4'"
            " (组织机构代码校验码（第17位）应为'5'，实际为'4')"
        )

    def test_letter_other_than_x(self) -> None:
        with pytest.raises(InvalidUSCC) as info:
            validate_uscc(BASE[:16] + "A" + BASE[17])
        err = info.value
        assert (err.rule, err.expected, err.given) == ("org_check", "5", "A")
        assert "must be a digit or 'X', got 'A'" in str(err)
        assert "for body MA62Q3T5 it should be '5'" in str(err)
        assert "应为数字或X" in str(err)

    def test_x_where_a_digit_is_expected(self) -> None:
        with pytest.raises(InvalidUSCC) as info:
            validate_uscc(BASE[:16] + "X" + BASE[17])
        assert (info.value.rule, info.value.expected, info.value.given) == ("org_check", "5", "X")
        assert "should be '5', got 'X'" in str(info.value)

    @pytest.mark.parametrize(
        "code, c17", [("91511902MA62Q300XP", "X"), ("91511902MA62Q30503", "0")]
    )
    def test_remainder_10_and_11_map_to_x_and_0(self, code: str, c17: str) -> None:
        assert org_check_char(code[8:16]) == c17 == ref_org_check(code[8:16])
        assert validate_uscc(code) == code

    def test_letters_use_the_full_alphabet_values(self) -> None:
        # 'P' is 25 over A-Z but index 22 in the 31-character table.
        body = "P0000000"
        assert org_check_char(body) == ref_org_check(body)
        assert org_check_char(body) == str(11 - (25 * 3) % 11)

    def test_mod_11_blind_spot_is_caught_by_the_final_check(self) -> None:
        # '2' -> 'D' adds 11 to the body value: the GB 11714 check cannot see it,
        # the GB 32100 check can.
        changed = BASE[:11] + "D" + BASE[12:]
        assert ref_org_check(changed[8:16]) == changed[16]
        with pytest.raises(InvalidUSCC) as info:
            validate_uscc(changed)
        assert (info.value.rule, info.value.expected, info.value.given) == ("check", "J", "6")


class TestCheckRule:
    def test_wrong_check_character(self) -> None:
        with pytest.raises(InvalidUSCC) as info:
            validate_uscc(BASE[:17] + "7")
        err = info.value
        assert (err.rule, err.position, err.expected, err.given) == ("check", 18, "6", "7")
        assert str(err) == (
            "check character (position 18) should be '6', got '7'"
            " (统一社会信用代码校验码（第18位）应为'6'，实际为'7')"
        )

    def test_remainder_zero_maps_to_0(self) -> None:
        # Find a prefix whose sum is 0 mod 31: then C18 = 31 -> '0'.
        first17 = "00000000000000000"
        assert check_char(first17) == "0" == ref_check(first17)

    def test_check_char_rejects_bad_input(self) -> None:
        with pytest.raises(ValueError):
            check_char("I" * 17)
        with pytest.raises(ValueError):
            org_check_char("MA62")


class TestComputeCheckChars:
    def test_lowercase_prefix_is_normalised(self) -> None:
        assert compute_check_chars("91511902ma62q3t5") == "56"

    def test_wrong_length(self) -> None:
        with pytest.raises(InvalidUSCC) as info:
            compute_check_chars(BASE[:15])
        assert info.value.rule == "length"
        assert "got 15" in str(info.value)

    def test_forbidden_character(self) -> None:
        with pytest.raises(InvalidUSCC) as info:
            compute_check_chars("91511902MA62Q3TS")
        assert info.value.rule == "charset"
        assert "'S' at position 16" in str(info.value)

    @given(prefixes16)
    def test_completed_codes_validate(self, prefix: str) -> None:
        code = prefix + compute_check_chars(prefix)
        assert validate_uscc(code) == code
        assert ref_is_valid(code)

    @given(st.text(alphabet=ALPHABET, min_size=17, max_size=17))
    def test_check_char_matches_reference(self, first17: str) -> None:
        assert check_char(first17) == ref_check(first17)

    @given(st.text(alphabet=string.digits + string.ascii_uppercase, min_size=8, max_size=8))
    def test_org_check_char_matches_reference(self, body: str) -> None:
        assert org_check_char(body) == ref_org_check(body)


def expected_rule(code: str) -> str | None:
    """Which rule the reference says fails first, or None if valid."""
    if len(code) != 18:
        return "length"
    if any(c not in REF_CHARSET for c in code):
        return "charset"
    if ref_org_check(code[8:16]) != code[16]:
        return "org_check"
    if ref_check(code[:17]) != code[17]:
        return "check"
    return None


# Replacement characters: the alphabet, the forbidden letters, lower case,
# punctuation and a few non-ASCII look-alikes.
replacements = st.sampled_from(
    sorted(set(ALPHABET + "IOSVZ" + string.ascii_lowercase + "-_. ０１ＡΙО中"))
)


class TestMutations:
    @given(prefixes16, st.integers(0, 17), replacements)
    def test_single_substitution_is_rejected_by_the_right_rule(
        self, prefix: str, index: int, new: str
    ) -> None:
        code = prefix + compute_check_chars(prefix)
        mutated = code[:index] + new + code[index + 1 :]
        normalised = normalize_uscc(mutated)
        if normalised == code:
            return  # a lower-case spelling of the same character
        # The mod-31 weights are all non-zero mod a prime, so no substitution
        # inside the alphabet keeps the final check: never another valid code.
        assert expected_rule(normalised) is not None
        assert not is_valid_uscc(mutated)
        assert rule_of(mutated) == expected_rule(normalised)

    @given(prefixes16, st.integers(0, 17))
    def test_deletion_and_insertion_fail_length(self, prefix: str, index: int) -> None:
        code = prefix + compute_check_chars(prefix)
        assert rule_of(code[:index] + code[index + 1 :]) == "length"
        assert rule_of(code[:index] + "0" + code[index:]) == "length"

    @pytest.mark.parametrize("index", range(18))
    def test_every_position_of_a_domain_example(self, index: int) -> None:
        for new in ALPHABET:
            if new == BASE[index]:
                continue
            mutated = BASE[:index] + new + BASE[index + 1 :]
            assert rule_of(mutated) == expected_rule(mutated)


class TestParts:
    def test_individual_business_in_pingchang(self) -> None:
        assert uscc_parts(" 92511923ma6a1b2c3m ") == {
            "code": "92511923MA6A1B2C3M",
            "authority": "9",
            "authority_name": "工商/市场监管",
            "entity_type": "2",
            "entity_type_name": "个体工商户",
            "division_code": "511923",
            "org_code": "MA6A1B2C3",
            "check_char": "M",
        }

    @pytest.mark.parametrize(
        "code, entity_name, division",
        [
            ("91511902MA62Q3T556", "企业", "511902"),
            ("93511903MA62R7U15L", "农民专业合作社", "511903"),
            ("914403001922038216", "企业", "440300"),
        ],
    )
    def test_entity_types(self, code: str, entity_name: str, division: str) -> None:
        parts = uscc_parts(code)
        assert parts["entity_type_name"] == entity_name
        assert parts["division_code"] == division

    def test_unknown_authority_has_no_name(self) -> None:
        prefix = "A1511902MA62Q3T5"
        parts = uscc_parts(prefix + compute_check_chars(prefix))
        assert parts["authority"] == "A"
        assert parts["authority_name"] is None
        assert parts["entity_type_name"] is None

    def test_invalid_code_raises(self) -> None:
        with pytest.raises(InvalidUSCC):
            uscc_parts("91350100M000100Y4Z")
