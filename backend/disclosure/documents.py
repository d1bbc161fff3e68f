"""The project's documents the site cites (``docs/*.md``), served as HTML pages.

The pages name their rules by document (``docs/draws.md`` for the draw, ``docs/
credit-rating.md`` for the tier): those must be readable where they are cited, not only
in the repository. ``/documents`` lists them and ``/documents/{name}`` renders one with
markdown-it-py (CommonMark and tables). Safe by construction: raw HTML in the Markdown
is shown as text, never passed through (``html`` off), link targets go through the
library's URL check (no ``javascript:``), and the output has no inline script or style,
so the site's Content-Security-Policy holds. Links between documents (``records.md``,
``docs/records.md``) point at their pages. Headings get GitHub-style ids, so a page can
link to a section (``/documents/draws#84-inputs-as-the-service-builds-them``).

Only the files of ``docs/`` beside the package are served, by a name that must be one
of them: no path reaches anything else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markdown_it import MarkdownIt
from markdown_it.token import Token

from backend.disclosure import web
from backend.disclosure.web import PageUser
from backend.errors import NotFound

pages = APIRouter(include_in_schema=False)

DOCS_DIR = Path(__file__).resolve().parent.parent.parent / "docs"
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")

TITLES: dict[str, str] = {
    "draws": "双随机抽查算法（可复核的随机抽取）",
    "credit-rating": "计量信用等级规则",
    "records": "存证记录的格式",
    "proof-bundle": "证明文件的格式与验证",
    "trust-root": "信任根",
    "witness": "见证方（其他机关的副署）",
    "eip712-pledge": "承诺书的钱包签名（EIP-712）",
    "operations": "运维说明",
}
"""The Chinese title of each document (a document without one shows its file name)."""


class DocumentNotFound(NotFound):
    """No document of ``docs/`` has this name."""


@dataclass(frozen=True)
class Document:
    name: str
    title: str
    html: str


def available() -> list[str]:
    """The names of the documents served (``docs/NAME.md``), sorted."""
    if not DOCS_DIR.is_dir():
        return []
    return sorted(p.stem for p in DOCS_DIR.glob("*.md") if NAME.fullmatch(p.stem))


def slug(text: str) -> str:
    """GitHub's heading id: lower case, punctuation dropped, spaces as hyphens."""
    kept = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return kept.replace(" ", "-")


def _link(href: str, names: set[str]) -> str:
    """A link to another document (``records.md``, ``docs/records.md#x``) as its page."""
    found = re.fullmatch(r"(?:\./)?(?:docs/)?([a-z0-9-]+)\.md(#[\w\-]*)?", href)
    if found and found.group(1) in names:
        return f"/documents/{found.group(1)}{found.group(2) or ''}"
    return href


def _markdown() -> MarkdownIt:
    # html=False: any raw HTML in the text is escaped, never rendered.
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table")
    return md


def _decorate(tokens: list[Token], names: set[str]) -> None:
    seen: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and i + 1 < len(tokens):
            base = slug(tokens[i + 1].content) or "section"
            n = seen.get(base, 0)
            seen[base] = n + 1
            tok.attrSet("id", base if n == 0 else f"{base}-{n}")
        for child in tok.children or []:
            if child.type == "link_open":
                href = str(child.attrGet("href") or "")
                child.attrSet("href", _link(href, names))
        if tok.type == "table_open":
            tok.attrSet("class", "doc-table")


@lru_cache(maxsize=32)
def _render(name: str, mtime_ns: int) -> Document:
    text = (DOCS_DIR / f"{name}.md").read_text(encoding="utf-8")
    md = _markdown()
    tokens = md.parse(text)
    _decorate(tokens, set(available()))
    html = md.renderer.render(tokens, md.options, {})
    return Document(name, TITLES.get(name, f"{name}.md"), html)


def document(name: str) -> Document:
    """The rendered ``docs/{name}.md``; :class:`DocumentNotFound` for any other name."""
    if not NAME.fullmatch(name) or name not in available():
        raise DocumentNotFound(f"no document {name!r}; see /documents")
    path = DOCS_DIR / f"{name}.md"
    return _render(name, path.stat().st_mtime_ns)


@pages.get("/documents", response_class=HTMLResponse)
def documents_index(request: Request, _user: PageUser) -> HTMLResponse:
    items = [(n, TITLES.get(n, f"{n}.md")) for n in available()]
    return web.render(
        request, "documents.html", {"title": "技术文档", "nav": "", "items": items, "doc": None}
    )


@pages.get("/documents/{name}", response_class=HTMLResponse)
def document_page(request: Request, _user: PageUser, name: str) -> Response:
    if name.endswith(".md"):
        name = name[: -len(".md")]
    doc = document(name)
    context: dict[str, Any] = {"title": doc.title, "nav": "", "doc": doc, "items": None}
    return web.render(request, "documents.html", context)
