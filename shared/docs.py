"""The interactive API docs of every service (`/docs`, Swagger UI; `/redoc`, ReDoc), served offline.

FastAPI's own pages load their JavaScript and CSS from a CDN, so on an officer's intranet (no Internet) they
are blank. The assets come instead from the pinned `fastapi-offline` distribution (Swagger UI and ReDoc
bundles, favicon) and are served by the service itself under `DOCS_ASSETS_URL`: the pages reference
same-origin paths only. We use the package for its files and build the pages with FastAPI's helpers, because
its own factory drops Swagger UI's `initOAuth` settings.

The Authorize button uses the OAuth2 client-credentials scheme of the OpenAPI document (`tokenUrl` relative,
so each service's page asks its own `/v1/oauth/token`; the token is accepted by all three services). Behind a
proxy that strips a prefix (ROOT_PATH), the pages, their assets and the token URL all keep the prefix.
"""

from __future__ import annotations

import copy
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

DOCS_ASSETS_URL = "/docs-assets"
_ASSETS = files("fastapi_offline") / "static"

SWAGGER_UI_PARAMETERS: dict[str, Any] = {
    # a token survives a reload of the page (it lives at most `access_token_ttl_seconds` anyway)
    "persistAuthorization": True,
    # never ask the public online validator (there is no Internet on an intranet, and specs stay private)
    "validatorUrl": None,
    "displayRequestDuration": True,
}


def swagger_ui_init_oauth(title: str) -> dict[str, Any]:
    """Swagger UI's `initOAuth`: no client id or secret is pre-filled (each caller types their own). No scope
    ticked means none is sent, and the token endpoint then grants all the client's scopes."""
    return {"appName": title, "scopeSeparator": " "}


def root_path(request: Request) -> str:
    """The prefix a proxy strips (ROOT_PATH): links in the pages keep it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def under_root_path(schema: dict[str, Any], root: str) -> dict[str, Any]:
    """The OpenAPI document as served behind a proxy that strips `root` (ROOT_PATH): operations go to the
    `root` server (as FastAPI does), and so does the Authorize button, whose tokenUrl Swagger UI resolves as a
    URL (an absolute path would leave the prefix out and reach nothing)."""
    if not root:
        return schema
    schema = dict(schema)
    if root not in {s.get("url") for s in schema.get("servers", [])}:
        schema["servers"] = [{"url": root}, *schema.get("servers", [])]
    schemes = copy.deepcopy(schema.get("components", {}).get("securitySchemes", {}))
    for scheme in schemes.values():
        for flow in scheme.get("flows", {}).values():
            if str(flow.get("tokenUrl", "")).startswith("/"):
                flow["tokenUrl"] = root + flow["tokenUrl"]
    schema["components"] = {**schema.get("components", {}), "securitySchemes": schemes}
    return schema


def install_docs(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Serve `docs_url` and `redoc_url` from the packaged assets. `app` must be built with docs_url=None and
    redoc_url=None (FastAPI's CDN pages off)."""

    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(under_root_path(app.openapi(), root_path(request)))

    # FastAPI's own /openapi.json route prefixes the servers only: swap it, in place, for one that also
    # prefixes the token URL
    app.router.routes[:] = [
        Route(r.path, openapi, include_in_schema=False) if isinstance(r, Route) and r.path == app.openapi_url else r
        for r in app.router.routes
    ]
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=str(_ASSETS)), name="docs-assets")
    init_oauth = swagger_ui_init_oauth(app.title)

    # plain Starlette routes, as FastAPI's own docs pages: outside the API (no auth, no unit of work, no schema)
    async def swagger_ui(request: Request) -> HTMLResponse:
        base = root_path(request)
        return get_swagger_ui_html(
            openapi_url=f"{base}{app.openapi_url}",
            title=f"{app.title} — Swagger UI",
            swagger_js_url=f"{base}{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{base}{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{base}{DOCS_ASSETS_URL}/favicon.png",
            oauth2_redirect_url=None,  # client credentials only: no browser redirect comes back
            init_oauth=init_oauth,
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )

    async def redoc(request: Request) -> HTMLResponse:
        base = root_path(request)
        return get_redoc_html(
            openapi_url=f"{base}{app.openapi_url}",
            title=f"{app.title} — ReDoc",
            redoc_js_url=f"{base}{DOCS_ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{base}{DOCS_ASSETS_URL}/favicon.png",
            with_google_fonts=False,  # fonts from a CDN too: the bundle falls back to the system's
        )

    app.add_route(docs_url, swagger_ui, include_in_schema=False)
    app.add_route(redoc_url, redoc, include_in_schema=False)
