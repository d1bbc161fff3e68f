"""A draw's 检查对象名单 and 回避名单 open as readable tables: paged, searchable by name,
credit code (and inspector number), filtered by tier or reason, with the JSON the
verifier reads as a download; bad input gets a Chinese page, never a 500."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.disclosure import draw_lists
from tests import factories
from tests.disclosure.test_form_errors import assert_chinese_only
from tests.disclosure.test_pages import HTML
from tests.inspections.helpers import add_inspectors, add_item, create_draw, reveal, seed_merchants

TIERS = ["A"] * 4 + ["B"] * 5 + ["C"] * 3 + ["D"] * 2


def _rows(html: str) -> list[str]:
    body = html.split('<table id="draw-list">', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<a href="/merchants/([0-9A-Z]{18})">', body)


@pytest.fixture
def draws(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(draw_lists, "PAGE_SIZE", 5)
    reg = factories.create_staff(client, username="reg.lists", role="regulator")
    usccs = seed_merchants(client, tiers=TIERS)
    add_inspectors(client, reg, count=5)
    item = add_item(client, reg)
    first = create_draw(client, reg, item_id=item, rates_bp={"A": 10000, "B": 10000, "C": 10000,
                                                            "D": 10000})
    reveal(client, reg, first["id"])
    second = create_draw(client, reg, item_id=item)
    return {"usccs": usccs, "first": first, "second": second}


def test_snapshot_table(client: TestClient, draws: dict[str, Any]) -> None:
    n = draws["second"]["number"]
    draw_page = client.get(f"/inspections/{n}", headers=HTML).text
    assert f'href="/inspections/{n}/snapshot"' in draw_page
    assert f'href="/inspections/{n}/recusals"' in draw_page
    assert f'download="draw-{n}-snapshot.json"' in draw_page

    page = client.get(f"/inspections/{n}/snapshot", headers=HTML)
    assert page.status_code == 200
    assert '<span id="list-total">14</span>' in page.text
    first_page = _rows(page.text)
    assert first_page == sorted(draws["usccs"])[:5]
    assert "测试商户" in page.text and "第 1 / 3 页" in page.text
    assert f'href="/api/draws/{draws["second"]["id"]}/snapshot"' in page.text
    last = client.get(f"/inspections/{n}/snapshot?page=3", headers=HTML).text
    assert _rows(last) == sorted(draws["usccs"])[10:]

    target = draws["usccs"][3]
    by_code = client.get(f"/inspections/{n}/snapshot", params={"q": target}, headers=HTML).text
    assert _rows(by_code) == [target]
    by_name = client.get(
        f"/inspections/{n}/snapshot", params={"q": f"测试商户{target[-4:]}"}, headers=HTML
    ).text
    assert target in _rows(by_name)
    only_d = client.get(f"/inspections/{n}/snapshot?tier=D", headers=HTML).text
    assert '<span id="list-total">2</span>' in only_d
    for page_text in (page.text, last, by_code, by_name, only_d):
        assert_chinese_only(page_text)


def test_recusals_table(client: TestClient, draws: dict[str, Any]) -> None:
    n = draws["second"]["number"]
    api = client.get(f"/api/draws/{draws['second']['id']}/recusals").json()
    assert api["count"] > 5  # every merchant was checked in the first draw
    page = client.get(f"/inspections/{n}/recusals", headers=HTML)
    assert page.status_code == 200
    assert f'<span id="list-total">{api["count"]}</span>' in page.text
    assert "上次检查过（轮换）" in page.text
    assert len(_rows(page.text)) == 5
    one = api["items"][0]
    found = client.get(
        f"/inspections/{n}/recusals", params={"q": one["inspector_id"]}, headers=HTML
    ).text
    assert all(
        i == one["inspector_id"] for i in re.findall(r'<td class="mono">([^<]+)</td>', found)
    )
    none = client.get(f"/inspections/{n}/recusals?source=conflict", headers=HTML).text
    assert '<span id="list-total">0</span>' in none and "没有符合条件的记录" in none
    assert_chinese_only(page.text)


@pytest.mark.parametrize(
    "query",
    ["tier=E", "page=0", "page=abc", "q=" + "长" * 101, "source=other", "q=%3Cscript%3E"],
)
def test_bad_input_is_a_chinese_page(
    client: TestClient, draws: dict[str, Any], query: str
) -> None:
    n = draws["second"]["number"]
    for which in ("snapshot", "recusals"):
        r = client.get(f"/inspections/{n}/{which}?{query}", headers=HTML)
        assert r.status_code in (200, 422), (which, query, r.status_code)
        assert "<script>" not in r.text.split("</header>", 1)[-1]
        assert_chinese_only(r.text)
    assert client.get("/inspections/999/snapshot", headers=HTML).status_code == 404
