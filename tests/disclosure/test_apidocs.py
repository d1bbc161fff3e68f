"""/docs and /redoc (issue 15, L8): served by the app itself from the assets of the
fastapi-standalone-docs package, under a strict CSP; before, they loaded Swagger UI and
ReDoc from a CDN without subresource integrity and were blank offline."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from fastapi.testclient import TestClient

from tests.disclosure.conftest import LiveServer
from tests.disclosure.ui import console_problems, wait_for


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("src", "href", "spec-url", "data-openapi-url"):
            if found.get(name):
                self.urls.append(str(found[name]))
        self._in_script = tag == "script"
        if tag == "style" or "style" in found:
            self.inline_scripts += 1  # counted with scripts: no inline code of any kind

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_pages_reference_only_same_origin_assets(client: TestClient, page: str) -> None:
    resp = client.get(page)
    assert resp.status_code == 200
    refs = _Refs()
    refs.feed(resp.text)
    assert refs.urls, "the page names its assets"
    assert refs.inline_scripts == 0
    for url in refs.urls:
        assert urlsplit(url).netloc == "" and url.startswith("/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
    csp = resp.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    if page == "/docs":
        assert directives["style-src"] == "'self'"
    assert not re.search(r"https?:|\*", csp), csp


def test_the_bundles_come_from_the_package(client: TestClient) -> None:
    import fastapi_standalone_docs

    from backend.disclosure.apidocs import ASSETS_DIR

    assert ASSETS_DIR.is_relative_to(fastapi_standalone_docs.__path__[0])
    js = client.get("/docs-assets/swagger/swagger-ui-bundle.js")
    assert js.content == (ASSETS_DIR / "swagger" / "swagger-ui-bundle.js").read_bytes()
    assert "javascript" in js.headers["content-type"]
    # FastAPI's own CDN pages are off.
    assert client.get("/docs/oauth2-redirect").status_code == 404


@pytest.mark.browser
@pytest.mark.parametrize(
    ("page", "ready"), [("/docs", ".opblock"), ("/redoc", "[data-section-id]")]
)
def test_pages_work_in_a_browser_from_this_origin_alone(
    browser: Any, live_server: LiveServer, page: str, ready: str
) -> None:
    console_problems(browser)
    browser.get(live_server.url + page)
    wait_for(browser, ready, timeout=90)  # the operations rendered from /openapi.json
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    origin = urlsplit(live_server.url).netloc
    assert loaded and all(
        urlsplit(urljoin(live_server.url, u)).netloc == origin for u in loaded
    ), loaded
    assert console_problems(browser) == []
