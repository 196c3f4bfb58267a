"""`/docs` served entirely by the API: Swagger UI's files come from a package, not a CDN.

FastAPI's default `/docs` page loads Swagger UI from a CDN, so it is blank offline or behind
a firewall. The `swagger-ui-bundle-v2` package ships the Swagger UI distribution; its files
are served under `/docs/static`. `GET /` leads to `/docs` (there is no dashboard yet).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCS_URL = "/docs"
STATIC_URL = f"{DOCS_URL}/static"
OAUTH2_REDIRECT_URL = f"{DOCS_URL}/oauth2-redirect"


def _root_path(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


async def _swagger_ui(request: Request) -> HTMLResponse:
    root = _root_path(request)
    app: FastAPI = request.app
    return get_swagger_ui_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - Swagger UI",
        oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_URL}",
        swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}{STATIC_URL}/favicon-32x32.png",
    )


async def _oauth2_redirect(_request: Request) -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


async def _to_docs(request: Request) -> RedirectResponse:
    return RedirectResponse(f"{_root_path(request)}{DOCS_URL}", status_code=307)


def add_docs(app: FastAPI) -> None:
    """Serve Swagger UI at `/docs` from local files, and redirect `GET /` there.

    The app must be built with `docs_url=None` (and `redoc_url=None`: ReDoc has no packaged
    distribution and would load from a CDN too).
    """
    app.mount(STATIC_URL, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")
    app.add_route(DOCS_URL, _swagger_ui, include_in_schema=False)
    app.add_route(OAUTH2_REDIRECT_URL, _oauth2_redirect, include_in_schema=False)
    app.add_route("/", _to_docs, include_in_schema=False)
