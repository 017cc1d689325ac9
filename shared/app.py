"""The one shape of every desk service: app factory, lifespan, health, metrics, problem catalogue."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from fastapi.telemetry import TelemetryConfig
from sqlalchemy import text
from starlette.responses import Response
from starlette.types import ASGIApp

from shared.audit_trail import router as audit_router
from shared.auth import SCOPES, load_or_create_key
from shared.db import create_engine, make_sessionmaker
from shared.docs import install_docs
from shared.errors import (
    CATALOGUE,
    UNAVAILABLE,
    FieldError,
    NotFound,
    Problem,
    install_error_handlers,
    problem_body,
    problem_response,
)
from shared.i18n import ContentLanguageMiddleware, pick_language
from shared.inputguard import ControlCharacterGuard
from shared.labels import EnumLabels, labelled
from shared.oauth import token_router
from shared.observability import RequestContextMiddleware, configure_logging, metrics_response
from shared.openapi_headers import declare_headers
from shared.openapi_problems import declare_problems
from shared.ratelimit import RateLimiter
from shared.revocation import RevokedClients
from shared.routing import UnitOfWorkRoute
from shared.schemas import decimals_as_strings
from shared.settings import DeskSettings


def operation_id(route: APIRoute) -> str:
    """Stable operation ids (`tag-route_name`) so generated clients get good method names."""
    tag = route.tags[0] if route.tags else "desk"
    return f"{tag}-{route.name}"


def resolve_database_url(settings: DeskSettings) -> str:
    if settings.database_url:
        return settings.database_url
    from shared.embedded import embedded_database_url

    return embedded_database_url(settings.data_dir)


PUBLIC: dict[str, Any] = {"security": []}
SECURITY_DESCRIPTION = (
    "OAuth 2.0 client credentials (RFC 6749 §4.4). In `/docs`, Authorize with your `client_id` and "
    "`client_secret`; tick no scope to get all of your client's scopes. A token from any of the three "
    "services is accepted by all three."
)


def system_router() -> APIRouter:
    r = APIRouter(tags=["system"], route_class=UnitOfWorkRoute)

    @r.get("/healthz", summary="Liveness", operation_id="system-healthz", openapi_extra=PUBLIC)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @r.get(
        "/readyz",
        summary="Readiness: the database answers",
        operation_id="system-readyz",
        openapi_extra=PUBLIC,
    )
    async def readyz(request: Request) -> Any:
        try:
            async with request.app.state.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any failure means not ready
            lang = pick_language(request.headers.get("accept-language"))
            return problem_response(problem_body(UNAVAILABLE, request, lang), {"Retry-After": "5"})
        return {"status": "ready"}

    @r.get(
        "/metrics",
        summary="Prometheus metrics",
        operation_id="system-metrics",
        openapi_extra=PUBLIC,
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}},
    )
    async def metrics() -> Response:
        return metrics_response()

    @r.get("/problems", summary="Catalogue of problem types", operation_id="system-list_problems", openapi_extra=PUBLIC)
    async def problems() -> list[dict[str, Any]]:
        return [
            {
                "type": k.type_uri,
                "status": k.status,
                "title_it": k.title_it,
                "title_en": k.title_en,
                "description": k.description,
            }
            for k in CATALOGUE.values()
        ]

    @r.get(
        "/v1/labels",
        summary="Labels of the enum values",
        operation_id="system-list_labels",
        openapi_extra=PUBLIC,
        response_model=list[EnumLabels],
        description="Every enum field of this service's API (body properties and query or path parameters) with "
        "its values: each value is a stable English code, with an Italian and an English label for people.",
    )
    async def labels(request: Request) -> list[EnumLabels]:
        cached: list[EnumLabels] | None = getattr(request.app.state, "labels", None)
        if cached is None:
            cached = request.app.state.labels = labelled(request.app.openapi())
        return cached

    @r.get(
        "/problems/{slug}",
        summary="One problem type",
        operation_id="system-get_problem",
        openapi_extra=PUBLIC,
    )
    async def problem(slug: str) -> dict[str, Any]:
        k = CATALOGUE.get(slug)
        if k is None:
            raise NotFound()
        return {
            "type": k.type_uri,
            "status": k.status,
            "title_it": k.title_it,
            "title_en": k.title_en,
            "description": k.description,
        }

    return r


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


GC_THRESHOLDS = (50_000, 20, 20)


def tune_garbage_collector() -> None:
    """Once the service has started: everything allocated so far (modules, the app, its schemas, pools)
    lives as long as the process, so freeze it out of the cyclic collector's reach, and collect young
    objects less often. With CPython's defaults a click-day burst triggered a full collection of all
    of that every few thousand requests: 40-100 ms pauses of the whole event loop, the p99 of the
    submit path. Reference cycles are still collected, only not every 700 allocations."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


_NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(
    settings: DeskSettings,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    version: str = "1.0.0",
    lifespans: Sequence[Lifespan] = (),
    body_limits: Sequence[tuple[str, int]] = (),
    inner_middleware: Sequence[Callable[[ASGIApp], ASGIApp]] = (),
) -> FastAPI:
    """`lifespans` are a service's own startup/shutdown hooks (e.g. its peer clients): each is entered in
    order once the database and the keyring are ready, and exited in reverse order before the engine closes.
    `body_limits` are (path regex, bytes) for the routes that accept more than `max_body_bytes` (uploads)."""
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = None
        if getattr(app.state, "sessionmaker", None) is None:  # tests inject their own
            engine = create_engine(
                resolve_database_url(settings),
                pool_size=settings.db_pool_size,
                max_overflow=settings.db_max_overflow,
                statement_cache=settings.db_statement_cache,
                generic_plans=settings.db_generic_plans,
                application_name=settings.service_name,
            )
            app.state.engine = engine
            app.state.sessionmaker = make_sessionmaker(engine)
        if getattr(app.state, "keyring", None) is None:
            pem = settings.signing_key.get_secret_value() if settings.signing_key else None
            app.state.keyring = load_or_create_key(
                pem, settings.data_dir, allow_generate=settings.environment != "production"
            )
        try:
            async with AsyncExitStack() as stack:
                for hook in lifespans:
                    await stack.enter_async_context(hook(app))
                tune_garbage_collector()
                yield
        finally:
            if engine is not None:
                await engine.dispose()

    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        separate_input_output_schemas=False,  # one schema per model: generated clients get one type each
        docs_url=None,
        redoc_url=None,  # FastAPI's pages load from a CDN: install_docs serves packaged assets
        # Off unless asked for: on, every request first asks OpenTelemetry's global providers whether one is
        # configured (about 2 % of intake's CPU per click-day submit, py-spy), though the desk installs no SDK.
        telemetry=None if settings.opentelemetry else _NO_TELEMETRY,
    )
    app.state.settings = settings
    app.state.token_limiter = RateLimiter(settings.rate_limit_token_per_minute)
    app.state.write_limiter = RateLimiter(settings.rate_limit_write_per_minute, settings.rate_limit_write_burst)
    app.state.revoked_clients = RevokedClients(
        refresh_seconds=settings.revocation_refresh_seconds, token_ttl_seconds=settings.access_token_ttl_seconds
    )
    app.state.sessionmaker = None
    app.state.keyring = None
    install_error_handlers(app)
    for middleware in inner_middleware:  # inside the request-context middleware: ids, metrics, body limits apply
        app.add_middleware(middleware)
    # outside the service's own middleware (intake's click-day fast path answers straight from ASGI)
    app.add_middleware(ControlCharacterGuard)
    app.add_middleware(
        RequestContextMiddleware,
        service=settings.service_name,
        max_body_bytes=settings.max_body_bytes,
        access_log=settings.access_log,
        body_limits=body_limits,
    )
    app.add_middleware(ContentLanguageMiddleware)  # outermost: every JSON or problem body says its language
    app.include_router(system_router())
    app.include_router(token_router)
    app.include_router(audit_router)  # every service reads, exports and verifies the audit trail
    for r in routers:
        app.include_router(r)
    install_docs(app)

    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            servers=[{"url": "/"}],
            separate_input_output_schemas=False,
        )
        comps = schema.setdefault("components", {})
        schemas = comps.setdefault("schemas", {})
        schemas.setdefault("Problem", Problem.model_json_schema(ref_template="#/components/schemas/{model}"))
        schemas.setdefault("FieldError", FieldError.model_json_schema(ref_template="#/components/schemas/{model}"))
        schemas["Problem"]["properties"]["errors"] = {
            "anyOf": [{"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}}, {"type": "null"}]
        }
        schemas["Problem"].pop("$defs", None)
        # tokenUrl is relative: /docs's Authorize asks this service's token endpoint, and the keyring is the
        # desk's, so the token works on all three services
        comps["securitySchemes"] = {
            "oauth2": {
                "type": "oauth2",
                "description": SECURITY_DESCRIPTION,
                "flows": {"clientCredentials": {"tokenUrl": "/v1/oauth/token", "scopes": SCOPES}},
            }
        }
        declare_headers(schema, app.routes)
        schema["components"] = decimals_as_strings(comps)
        declare_problems(schema, app)
        for methods in schema.get("paths", {}).values():
            for op in methods.values():
                op.setdefault("security", [{"oauth2": []}])  # public routes declare security: []
        app.openapi_schema = schema
        return schema

    app.openapi = custom_openapi  # type: ignore[method-assign]
    return app
