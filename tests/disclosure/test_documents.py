"""The documents the site cites (docs/*.md) are served as HTML pages, safely.

/documents lists them, /documents/NAME renders one (markdown-it-py, raw HTML off);
the pages that cite a document link to it; no name reaches anything but docs/*.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.disclosure import documents
from tests.conftest import ROOT
from tests.disclosure.test_pages import HTML

CITED = ["draws", "credit-rating", "records", "proof-bundle"]


def test_every_document_is_listed_and_served(client: TestClient) -> None:
    names = sorted(p.stem for p in (ROOT / "docs").glob("*.md"))
    assert documents.available() == names and set(CITED) <= set(names)
    index = client.get("/documents", headers=HTML)
    assert index.status_code == 200
    for name in names:
        assert f'href="/documents/{name}"' in index.text
        page = client.get(f"/documents/{name}", headers=HTML)
        assert page.status_code == 200, name
        assert "script-src 'self'" in page.headers["content-security-policy"]


def test_draws_renders_headings_tables_and_code(client: TestClient) -> None:
    page = client.get("/documents/draws", headers=HTML).text
    assert '<h1 id="draws-verifiable-random-inspections-双随机">' in page
    assert 'id="84-inputs-as-the-service-builds-them"' in page
    assert '<table class="doc-table">' in page
    assert "<code>uscc|tier|region_code|sector</code>" in page
    # The worked example's plan digest, exactly as in the file.
    assert "9d488f83763bf6f3611a07f6c3ef8422fce54284ab65ce580c23a4fd68c68891" in page
    assert client.get("/documents/draws.md", headers=HTML).text == page


@pytest.mark.parametrize(
    "path", ["/documents/nope", "/documents/..%2FREADME", "/documents/%2e%2e", "/documents/DRAWS"]
)
def test_other_names_are_not_found(client: TestClient, path: str) -> None:
    r = client.get(path, headers=HTML)
    assert r.status_code == 404
    r = client.get(path)
    assert r.status_code == 404 and r.json()["detail_zh"]


def test_raw_html_and_script_links_are_not_passed_through(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "evil.md").write_text(
        "# Evil\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n"
        "[click](javascript:alert(3)) [ok](records.md#x) [rel](docs/draws.md)\n",
        encoding="utf-8",
    )
    (tmp_path / "records.md").write_text("# R\n", encoding="utf-8")
    (tmp_path / "draws.md").write_text("# D\n", encoding="utf-8")
    monkeypatch.setattr(documents, "DOCS_DIR", tmp_path)
    page = client.get("/documents/evil", headers=HTML).text
    body = page.split('<article', 1)[1]
    assert "<script>alert" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<img" not in body and "href=\"javascript:" not in body
    assert 'href="/documents/records#x"' in body and 'href="/documents/draws"' in body


def test_the_pages_that_cite_a_document_link_to_it(client: TestClient) -> None:
    verify = client.get("/verify", headers=HTML).text
    assert 'href="/documents/proof-bundle"' in verify
    assert 'href="/documents"' in client.get("/", headers=HTML).text
    draw_page = (ROOT / "backend/disclosure/templates/draw.html").read_text(encoding="utf-8")
    assert re.search(r'<a href="/documents/draws">docs/draws\.md</a>', draw_page)
    shop = (ROOT / "backend/disclosure/templates/merchant.html").read_text(encoding="utf-8")
    assert 'href="/documents/credit-rating"' in shop
