"""The token endpoint: OAuth 2.0 client credentials grant (RFC 6749 §4.4), on every service."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import unquote

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import issue_token, verify_client_secret
from shared.db import SessionDep
from shared.errors import INVALID_CLIENT, INVALID_GRANT_REQUEST, DeskError, ProblemKind
from shared.models import ApiClient
from shared.routing import UnitOfWorkRoute


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="Lifetime in seconds.")
    scope: str


def _oauth_error(
    error: str,
    detail_it: str,
    description: str,
    *,
    status_kind: ProblemKind = INVALID_GRANT_REQUEST,
    headers: dict[str, str] | None = None,
) -> DeskError:
    """A token error: the problem's title and detail in the negotiated language; `error` and the English
    `error_description` as RFC 6749 §5.2 requires (ASCII, whatever the language)."""
    return DeskError(
        detail_it,
        description,
        kind=status_kind,
        headers=headers,
        extra={"error": error, "error_description": description},
    )


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


LAST_USED_RESOLUTION = timedelta(minutes=1)


async def _note_use(session: AsyncSession, client: ApiClient, now: datetime) -> None:
    """`last_used_at` is when a token was last issued to the client, to the minute: a client asking for tokens
    in a burst writes the row once a minute at most (the condition also settles concurrent requests)."""
    if client.last_used_at is not None and now - client.last_used_at < LAST_USED_RESOLUTION:
        return
    await session.execute(
        update(ApiClient)
        .where(
            ApiClient.id == client.id,
            or_(ApiClient.last_used_at.is_(None), ApiClient.last_used_at < now - LAST_USED_RESOLUTION),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )


token_router = APIRouter(tags=["oauth"], route_class=UnitOfWorkRoute)


@token_router.post(
    "/v1/oauth/token",
    response_model=TokenResponse,
    summary="Get an access token (client credentials)",
    operation_id="oauth-token",
    openapi_extra={"security": []},
    description="OAuth 2.0 client credentials grant (RFC 6749 §4.4). Send the form fields "
    "`grant_type=client_credentials`, `client_id`, `client_secret` (or HTTP Basic) and optionally "
    "`scope` (space-separated subset of the client's scopes). Errors carry the RFC 6749 `error` code. "
    "A revoked client is refused; a secret replaced by a rotation works until its overlap ends.",
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
        raise _oauth_error(
            "unsupported_grant_type",
            "È ammesso solo grant_type=client_credentials.",
            "Only grant_type=client_credentials is supported.",
        )
    if not client_id or not client_secret:
        raise _oauth_error(
            "invalid_request", "Servono client_id e client_secret.", "client_id and client_secret are required."
        )
    client = (await session.execute(select(ApiClient).where(ApiClient.client_id == client_id))).scalar_one_or_none()
    now = datetime.now(UTC)
    ok = False
    if client is not None and client.active and client.revoked_at is None:
        ok = await verify_client_secret(client, client_secret, now)
    if not ok or client is None:
        # RFC 6749 §5.2's Basic challenge, except to a script in a browser page (Swagger UI's Authorize sends
        # X-Requested-With): there it opens the browser's own login dialog, or hangs a headless one, instead of
        # letting the page show the error
        scripted = request.headers.get("x-requested-with", "").lower() == "xmlhttprequest"
        raise _oauth_error(
            "invalid_client",
            "Autenticazione del client non riuscita.",
            "Client authentication failed.",
            status_kind=INVALID_CLIENT,
            headers=None if scripted else {"WWW-Authenticate": 'Basic realm="desk"'},
        )
    granted = list(client.scopes)
    if scope:
        asked = scope.split()
        if not set(asked) <= set(granted):
            missing = " ".join(sorted(set(asked) - set(granted)))
            raise _oauth_error(
                "invalid_scope",
                f"Ambiti non concessi a questo client: {missing}.",
                f"Scopes not granted to this client: {missing}.",
            )
        granted = asked
    await _note_use(session, client, now)
    settings = request.app.state.settings
    tok = issue_token(
        request.app.state.keyring,
        client=client,
        scopes=granted,
        issuer=settings.token_issuer,
        ttl=settings.access_token_ttl_seconds,
    )
    return JSONResponse(
        {
            "access_token": tok,
            "token_type": "Bearer",
            "expires_in": settings.access_token_ttl_seconds,
            "scope": " ".join(granted),
        },
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )
