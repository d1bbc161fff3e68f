"""/docs (Swagger UI) and /redoc (ReDoc), served entirely by this app.

FastAPI's own pages load their scripts from a CDN without subresource integrity and
bootstrap them with an inline script: offline they are blank, and their CSP had to
allow the CDN and ``'unsafe-inline'`` scripts. Here the Swagger UI and ReDoc bundles
come from the ``fastapi-standalone-docs`` package (pinned in pyproject.toml; its ReDoc
bundle loads the Redocly logo from ``<page>/logo-mini.svg`` instead of a CDN, and the
package ships that file), and Swagger UI is started by a static file of ours
(``static/swagger-init.js``), so the pages run under :data:`DOCS_CSP`: scripts from
this origin only, nothing from elsewhere (ReDoc also needs inline styles and a blob
worker).
"""

from __future__ import annotations

import html
from pathlib import Path

import fastapi_standalone_docs
from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs-assets"
ASSETS_DIR = Path(fastapi_standalone_docs.__path__[0]) / "static"
DOCS_PATHS = frozenset({"/docs", "/redoc"})

_CSP = (
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
)
DOCS_CSP = {
    "/docs": "; ".join(_CSP),
    # ReDoc's styled-components write <style> elements, and its search index runs in a
    # worker it makes from a blob: scripts still come from this origin only.
    "/redoc": "; ".join(
        d.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'") for d in _CSP
    )
    + "; worker-src blob:",
}
"""The Content-Security-Policy of each page (backend/disclosure/web.py sets it)."""

_SWAGGER = """<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{title} - Swagger UI</title>
<link rel="stylesheet" href="{assets}/swagger/swagger-ui.css">
<link rel="icon" href="{assets}/fastapi/favicon.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi}"></div>
<script src="{assets}/swagger/swagger-ui-bundle.js"></script>
<script src="/static/swagger-init.js"></script>
</body>
</html>
"""

_REDOC = """<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{title} - ReDoc</title>
<link rel="icon" href="{assets}/fastapi/favicon.png">
</head>
<body>
<redoc spec-url="{openapi}"></redoc>
<script src="{assets}/redoc/redoc.standalone.js"></script>
</body>
</html>
"""


def install(app: FastAPI) -> None:
    """Serve /docs, /redoc and their assets (the app is made with ``docs_url=None``)."""
    assert app.openapi_url is not None
    values = {
        "title": html.escape(app.title),
        "assets": ASSETS_URL,
        "openapi": html.escape(app.openapi_url),
    }
    swagger, redoc = _SWAGGER.format(**values), _REDOC.format(**values)
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return HTMLResponse(swagger)

    @app.get("/redoc", include_in_schema=False)
    def redoc_ui() -> HTMLResponse:
        return HTMLResponse(redoc)

    @app.get("/redoc/logo-mini.svg", include_in_schema=False)
    def redoc_logo() -> FileResponse:
        return FileResponse(ASSETS_DIR / "redoc" / "logo-mini.svg", media_type="image/svg+xml")
