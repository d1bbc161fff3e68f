"""Safeguards on amounts: the fine in words (大写), a confirmation above the threshold,
no exponent notation, and the decision file's digest marked as required."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.disclosure.amounts import CONFIRM_ABOVE_FEN, parse_yuan, yuan_in_words
from backend.timeutil import today_shanghai
from tests import factories
from tests.disclosure.test_form_errors import assert_chinese_only, field_error
from tests.disclosure.test_pages import HTML, _login


@pytest.mark.parametrize(
    ("fen", "words"),
    [
        (0, "零元整"),
        (1, "壹分"),
        (10, "壹角"),
        (105005, "壹仟零伍拾元零伍分"),
        (100000100, "壹佰万零壹元整"),
        (123456789, "壹佰贰拾叁万肆仟伍佰陆拾柒元捌角玖分"),
        (10010000, "壹拾万零壹佰元整"),
        (100_000_000_000, "壹拾亿元整"),
        (1_000_000_000_500, "壹佰亿零伍元整"),
    ],
)
def test_words(fen: int, words: str) -> None:
    assert yuan_in_words(fen) == words


@pytest.mark.parametrize("raw", ["1e9", "Infinity", "NaN", "-5", "1.234", "5元", "", "0x10"])
def test_only_plain_amounts(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_yuan(raw)


def test_plain_amounts() -> None:
    assert parse_yuan(" 1,234.5 ") == 123450
    assert parse_yuan("0") == 0


def _penalty(client: TestClient, csrf: str, uscc: str, amount: str, **extra: str) -> Any:
    return client.post(
        "/regulator/outcomes",
        data={
            "csrf_token": csrf,
            "kind": "penalty",
            "uscc": uscc,
            "decision_no": "巴市监罚〔2026〕1号",
            "decided_on": today_shanghai().isoformat(),
            "authority": "巴中市市场监督管理局",
            "amount_yuan": amount,
            "evidence_sha256": "ab" * 32,
            **extra,
        },
        headers=HTML,
    )


class TestPenaltyForm:
    def test_exponent_refused_large_amount_confirmed(self, client: TestClient) -> None:
        shop = factories.register(client)
        factories.create_staff(client, username="reg.amt", role="regulator")
        csrf = _login(client, "reg.amt", factories.STAFF_PASSWORD)

        page = client.get("/regulator/outcomes?kind=penalty", headers=HTML).text
        assert 'src="/static/amounts.js' in page
        assert 'for="o-evidence_sha256">决定书文件的 SHA-256 <span class="req"' in page

        r = _penalty(client, csrf, shop["uscc"], "1e9")
        assert r.status_code == 422
        assert field_error(r.text, "amount_yuan", "o-") == "罚没金额应为数字（元），最多两位小数"

        big = CONFIRM_ABOVE_FEN // 100 * 2
        r = _penalty(client, csrf, shop["uscc"], str(big))
        assert r.status_code == 422
        message = field_error(r.text, "amount_yuan", "o-")
        assert "贰拾万元整" in message and "金额无误" in message
        assert f'name="amount_confirmed" value="{big * 100}"' in r.text
        assert "大写：贰拾万元整" in r.text
        assert_chinese_only(r.text)

        # Confirming another amount does not count.
        r = _penalty(client, csrf, shop["uscc"], str(big + 1), amount_confirmed=str(big * 100))
        assert r.status_code == 422 and "贰拾万零壹元整" in r.text

        r = _penalty(client, csrf, shop["uscc"], str(big), amount_confirmed=str(big * 100))
        assert r.status_code == 201 and 'id="outcome-written"' in r.text

        # Small amounts need no confirmation.
        r = _penalty(client, csrf, shop["uscc"], "500", decision_no="巴市监罚〔2026〕2号")
        assert r.status_code == 201, r.text
