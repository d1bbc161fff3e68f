"""Small things a visitor noticed (issue 16): the tier chart's labels, reasons worth
0 points, a clamped score, and targets whose year has passed."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.disclosure.charts import BAR_X, CHART_WIDTH, count_text, text_width, tier_bars
from tests import factories
from tests.supervision import outcomes as o

HTML = {"Accept": "text/html,application/xhtml+xml"}


class TestTierBars:
    @pytest.mark.parametrize(
        ("by_tier", "unrated"),
        [
            ({"A": 120, "B": 1480, "C": 300, "D": 100}, 0),  # B the longest bar: it was cut off
            ({"A": 0, "B": 99999, "C": 1, "D": 0}, 12345),
            ({"A": 5, "B": 5, "C": 5, "D": 5}, 5),
            ({}, 0),
        ],
    )
    def test_every_count_label_fits_in_the_chart(
        self, by_tier: dict[str, int], unrated: int
    ) -> None:
        for b in tier_bars(by_tier, unrated=unrated):
            assert b.text == count_text(b.count, b.share)
            assert b.text_width >= text_width(b.text) > 0
            assert b.text_x >= BAR_X + b.width
            assert b.text_x + b.text_width <= CHART_WIDTH, b

    def test_the_largest_bar_still_scales_to_the_room_left(self) -> None:
        bars = {b.tier: b for b in tier_bars({"A": 50, "B": 100})}
        assert bars["A"].width == pytest.approx(bars["B"].width / 2, abs=0.1)
        assert bars["B"].width > 200

    def test_text_width_counts_cjk_as_a_full_em(self) -> None:
        assert text_width("家") == 13 and text_width("1") < 13


def test_home_chart_labels_lie_inside_the_viewbox(client: TestClient) -> None:
    """The page draws what tier_bars computed, inside the viewBox it declares."""
    for _ in range(3):
        factories.register_verified(client)
    html = client.get("/", headers=HTML).text
    svg = re.search(r'<svg viewBox="0 0 (\d+) \d+" id="tier-chart".*?</svg>', html, re.S)
    assert svg, "no tier chart on the home page"
    width = int(svg.group(1))
    label = r'<text x="([\d.]+)"[^>]*data-width="([\d.]+)">([^<]*)</text>'
    labels = re.findall(label, svg.group(0))
    assert labels and any("家" in t for _, _, t in labels)
    for x, w, _text in labels:
        assert float(x) >= 0 and float(x) + float(w) <= width


def test_a_past_target_is_not_shown_as_a_goal(client: TestClient) -> None:
    html = client.get("/", headers=HTML).text  # the clock is real: 2025 has ended
    assert "到 2025 年" not in html
    past = '2025 年目标 200 家（已到期）：2025 年底有 0 家，<span class="badge muted">未达成'
    assert past in html
    assert "到 2035 年 700 家" in html


class TestShopScore:
    @pytest.fixture
    def rated(self, client: TestClient, regulator: dict[str, str]) -> dict[str, Any]:
        """80 base + 5 pledge + 10 demonstration + 3 × 2 spot checks = 101; a fourth
        check passes the 6-point cap and is worth 0."""
        m, headers = factories.merchant_with_login(client)
        client.post(f"/api/merchants/{m['uscc']}/verification", headers=regulator)
        factories.make_pledge(client, headers=headers)
        r = client.post(
            f"/api/merchants/{m['uscc']}/demonstration",
            json={"action": "award"},
            headers=regulator,
        )
        assert r.status_code == 201, r.text
        for n in (10, 8, 6, 4):
            body = o.spot_check(uscc=m["uscc"], checked_on=o.days_ago(n))
            o.post(client, body, headers=regulator)
        return m

    def test_clamped_score_is_explained(self, client: TestClient, rated: dict[str, Any]) -> None:
        credit = o.credit(client, rated["uscc"])
        assert credit["base_score"] == 80
        assert credit["base_score"] + sum(f["points"] for f in credit["factors"]) == 101
        html = client.get(f"/merchants/{rated['uscc']}", headers=HTML).text
        assert '<strong id="credit-score">100</strong>' in html
        note = re.search(r'<p class="small muted" id="score-clamped">([^<]*)</p>', html)
        assert note and "合计 101 分" in note.group(1) and "0 至 100 分" in note.group(1)

    def test_zero_point_reason_is_neutral(self, client: TestClient, rated: dict[str, Any]) -> None:
        html = client.get(f"/merchants/{rated['uscc']}", headers=HTML).text
        items = re.findall(r'<li class="(\w+)">(-?\d+) 分：', html)
        assert ("zero", "0") in items
        assert all(cls == "zero" for cls, pts in items if pts == "0")
        assert not any(cls == "minus" for cls, pts in items if int(pts) >= 0)

    def test_no_note_when_nothing_is_clamped(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        m = factories.register_verified(client)
        html = client.get(f"/merchants/{m['uscc']}", headers=HTML).text
        assert '<strong id="credit-score">80</strong>' in html and "基础分 80 分" in html
        assert 'id="score-clamped"' not in html

    def test_a_negative_reason_stays_red(
        self, client: TestClient, regulator: dict[str, str]
    ) -> None:
        m = factories.register_verified(client)
        o.post(client, o.spot_check(uscc=m["uscc"], result="发现问题已责令改正"), headers=regulator)
        html = client.get(f"/merchants/{m['uscc']}", headers=HTML).text
        assert re.search(r'<li class="minus">-10 分：', html)
