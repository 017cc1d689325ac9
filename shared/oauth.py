"""The token endpoint: OAuth 2.0 client credentials grant (RFC 6749 §4.4), on every service."""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal
from urllib.parse import unquote

from argon2.exceptions import VerificationError
from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from shared.auth import _hasher, issue_token
from shared.db import SessionDep
from shared.errors import INVALID_CLIENT, INVALID_GRANT_REQUEST, DeskError, ProblemKind, problem_responses
from shared.models import ApiClient
from shared.routing import UnitOfWorkRoute


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="Lifetime in seconds.")
    scope: str


def _oauth_error(error: str, description: str, *, status_kind: ProblemKind = INVALID_GRANT_REQUEST,
                 headers: dict[str, str] | None = None) -> DeskError:
    return DeskError(description, description, kind=status_kind, headers=headers,
                     extra={"error": error, "error_description": description})


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        raw = base64.b64decode(value.strip()).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    cid, sep, sec = raw.partition(":")
    return (unquote(cid), unquote(sec)) if sep else None


token_router = APIRouter(tags=["oauth"], route_class=UnitOfWorkRoute)


@token_router.post(
    "/v1/oauth/token", response_model=TokenResponse, summary="Get an access token (client credentials)",
    operation_id="oauth-token", openapi_extra={"security": []},
    responses=problem_responses(400, 401, 429),
    description="OAuth 2.0 client credentials grant (RFC 6749 §4.4). Send the form fields "
                "`grant_type=client_credentials`, `client_id`, `client_secret` (or HTTP Basic) and optionally "
                "`scope` (space-separated subset of the client's scopes). Errors carry the RFC 6749 `error` code.",
)
async def token(
    request: Request,
    session: SessionDep,
    grant_type: Annotated[str, Form()],
    client_id: Annotated[str | None, Form()] = None,
    client_secret: Annotated[str | None, Form()] = None,
    scope: Annotated[str | None, Form()] = None,
) -> Any:
    basic = _basic_credentials(request)
    if basic:
        client_id, client_secret = basic
    request.app.state.token_limiter.check(client_id or (request.client.host if request.client else "?"))
    if grant_type != "client_credentials":
        raise _oauth_error("unsupported_grant_type", "Only grant_type=client_credentials is supported.")
    if not client_id or not client_secret:
        raise _oauth_error("invalid_request", "client_id and client_secret are required.")
    client = (await session.execute(select(ApiClient).where(ApiClient.client_id == client_id))).scalar_one_or_none()
    ok = False
    if client is not None and client.active:
        try:
            ok = await run_in_threadpool(_hasher.verify, client.secret_hash, client_secret)
        except VerificationError:
            ok = False
    if not ok or client is None:
        # RFC 6749 §5.2's Basic challenge, except to a script in a browser page (Swagger UI's Authorize sends
        # X-Requested-With): there it opens the browser's own login dialog, or hangs a headless one, instead of
        # letting the page show the error
        scripted = request.headers.get("x-requested-with", "").lower() == "xmlhttprequest"
        raise _oauth_error("invalid_client", "Client authentication failed.", status_kind=INVALID_CLIENT,
                           headers=None if scripted else {"WWW-Authenticate": 'Basic realm="desk"'})
    granted = list(client.scopes)
    if scope:
        asked = scope.split()
        if not set(asked) <= set(granted):
            raise _oauth_error("invalid_scope", f"Scopes not granted to this client: "
                                                f"{' '.join(sorted(set(asked) - set(granted)))}.")
        granted = asked
    settings = request.app.state.settings
    tok = issue_token(request.app.state.keyring, client=client, scopes=granted, issuer=settings.token_issuer,
                      ttl=settings.access_token_ttl_seconds)
    return JSONResponse(
        {"access_token": tok, "token_type": "Bearer", "expires_in": settings.access_token_ttl_seconds,
         "scope": " ".join(granted)},
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )
