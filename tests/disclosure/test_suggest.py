"""Search-as-you-type on the home page, the search page and the complaint form's shop
picker: an external script (no inline one) filling a datalist from the site's search."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from backend.disclosure.web import STATIC_DIR

HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.mark.parametrize(("path", "input_name"), [
    ("/", "q"), ("/search?q=x", "q"), ("/complaint", "uscc"),
])
def test_pages_offer_suggestions(client: TestClient, path: str, input_name: str) -> None:
    html = client.get(path, headers=HTML).text
    tag = re.search(rf'<input[^>]*name="{input_name}"[^>]*>', html)
    assert tag, html
    listed = re.search(r'data-suggest="([^"]+)"', tag.group(0))
    assert listed and f'list="{listed.group(1)}"' in tag.group(0)
    assert f'<datalist id="{listed.group(1)}">' in html
    assert re.search(r'<script src="/static/suggest\.js\?v=[0-9a-f]+" defer></script>', html)


def test_the_script_asks_the_suggest_endpoint() -> None:
    source = (STATIC_DIR / "suggest.js").read_text()
    assert "/api/merchants/suggest?q=" in source
    assert "innerHTML" not in source  # names are text, never markup
