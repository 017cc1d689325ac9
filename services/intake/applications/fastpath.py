"""The click-day path: `POST /v1/applications/{id}/submit` served straight from ASGI.

On click day thousands of partners submit at the announced minute, and most of a submit's cost was the
framework around it (routing through every router, dependency solving, a session and its pool checkout)
rather than its own work. This middleware answers that one route with the same service function as the
FastAPI route (`service.submit`), the same authentication, rate limit, idempotency and problem details,
on a dedicated asyncpg pool in autocommit mode. Every other request, and this one when no pool is
configured (tests bound to one transaction), goes on to FastAPI, whose route stays the documented contract.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from services.intake.applications import service
from shared.auth import Authenticator
from shared.errors import DeskError, desk_error_handler, unhandled_handler
from shared.routing import Actor, idempotency_key, request_digest

log = structlog.get_logger("desk.submit")
SUBMIT_PATH = re.compile(r"^/v1/applications/([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                         r"[0-9a-fA-F]{12})/submit$")
_applicant = Authenticator(kinds=("partner", "company"), scopes=("intake:read", "intake:write"))


class _Route:
    """What the metrics middleware labels the request with (as FastAPI's route would)."""

    path = "/v1/applications/{application_id}/submit"


class SubmitFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = SUBMIT_PATH.match(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        pool = getattr(scope["app"].state, "submit_pool", None) if match else None
        if pool is None or match is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = _Route
        request = Request(scope, receive)
        try:
            response = await self._submit(request, pool, uuid.UUID(match.group(1)))
        except DeskError as exc:
            response = await desk_error_handler(request, exc)
        except Exception as exc:  # noqa: BLE001 - a database outage becomes a 503 problem, anything else a 500
            response = await unhandled_handler(request, exc)
        await response(scope, receive, send)

    async def _submit(self, request: Request, pool: Any, application_id: uuid.UUID) -> Response:
        principal = await _applicant(request)
        app_state = request.app.state
        key = idempotency_key(request)
        submit_key = None if key is None else service.SubmitKey(
            principal.client_id, key, await request_digest(request), request.url.path,
            timedelta(hours=app_state.settings.idempotency_retention_hours))
        actor = Actor(principal, request.scope.get("state", {}).get("request_id"), app_state.settings.service_name)
        # Wait for a connection in arrival order (shared.fairness), then take it from the pool at once.
        async with app_state.submit_gate, pool.acquire() as conn:
            out, replayed = await service.submit(conn=conn, actor=actor, application_id=application_id,
                                                 keyring=app_state.keyring, key=submit_key,
                                                 if_match=request.headers.get("if-match"), durable=False)
        # The connection is back in the pool; wait for the commit's WAL flush (shared with the submits
        # committed meanwhile) on the flush pool's connection, then answer.
        await service.wait_durable(app_state.flush_pool.acquire)
        headers = {"Location": f"/v1/applications/{application_id}/receipt"}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return Response(orjson.dumps(out), status_code=201, media_type="application/json", headers=headers)
