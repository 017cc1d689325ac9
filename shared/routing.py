"""The unit of work and the request guarantees every route shares.

`UnitOfWorkRoute` opens one session per request, runs the endpoint, stores the idempotent
response, commits, and only then lets the response go: a 2xx means committed. On any error
the session is rolled back, so a failed request changes nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from sqlalchemy import text
from starlette.responses import Response

from shared.auth import Principal, current_principal
from shared.errors import (
    IDEMPOTENCY_INVALID,
    IDEMPOTENCY_MISMATCH,
    PRECONDITION_FAILED,
    PRECONDITION_REQUIRED,
    Conflict,
    DeskError,
)

IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"  # printable ASCII, no spaces
_KEY_RE = re.compile(IDEMPOTENCY_KEY_PATTERN)
_REPLAYED_HEADERS = ("etag", "location", "content-type")


class IdempotentReplay(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


@dataclass(slots=True)
class IdempotencySlot:
    owner: str
    key: str


def idempotency_owner(principal: Principal) -> str:
    """Whom an Idempotency-Key belongs to: the partner or company the caller acts for, so that any of
    its API clients retrying a request gets the stored response; a client acting for neither (officer,
    auditor, service) owns its keys alone. The submit's SQL function stores keys under the same name."""
    if principal.kind == "partner" and principal.partner_id is not None:
        return f"partner:{principal.partner_id}"
    if principal.kind == "company" and principal.company_id is not None:
        return f"company:{principal.company_id}"
    return f"client:{principal.client_id}"


class UnitOfWorkRoute(APIRoute):
    sessionmaker_attr = "sessionmaker"

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()
        attr = self.sessionmaker_attr

        async def handler(request: Request) -> Response:
            state = request.app.state
            sessionmaker = getattr(state, attr, None) or state.sessionmaker
            async with sessionmaker() as session:
                request.state.session = session
                try:
                    response = await original(request)
                except IdempotentReplay as replay:
                    await session.rollback()
                    return replay.response
                except BaseException:
                    await session.rollback()
                    raise
                slot: IdempotencySlot | None = getattr(request.state, "idempotency", None)
                if slot is not None and 200 <= response.status_code < 300:
                    await _store_response(session, slot, response)
                await session.commit()
                return response

        return handler


async def _store_response(session: Any, slot: IdempotencySlot, response: Response) -> None:
    headers = {k: v for k, v in response.headers.items() if k in _REPLAYED_HEADERS}
    await session.execute(
        text(
            "UPDATE desk.idempotency_keys SET status_code = :s, response_body = :b, response_headers = "
            "CAST(:h AS jsonb) WHERE principal = :p AND key = :k"
        ),
        {"s": response.status_code, "b": bytes(response.body), "h": _json(headers), "p": slot.owner, "k": slot.key},
    )


def _json(obj: Any) -> str:
    import orjson

    return orjson.dumps(obj).decode()


async def idempotency(request: Request) -> IdempotencySlot | None:
    """Honour `Idempotency-Key` on a state-changing POST.

    The key is reserved with an INSERT in the request's own transaction: a concurrent duplicate
    waits on the unique index until the first commits (then replays its stored response) or rolls
    back (then executes). Keys belong to the partner or company the client acts for (`idempotency_owner`),
    and are kept for the configured retention. A replay answers the stored response's bytes.
    """
    key = idempotency_key(request)
    if key is None:
        return None
    owner = idempotency_owner(current_principal(request))
    digest = await request_digest(request)
    session = request.state.session
    retention = timedelta(hours=request.app.state.settings.idempotency_retention_hours)
    params = {
        "p": owner,
        "k": key,
        "m": request.method,
        "path": request.url.path,
        "h": digest,
        "exp": datetime.now(UTC) + retention,
    }
    inserted = (
        await session.execute(
            text(
                "INSERT INTO desk.idempotency_keys (principal, key, method, path, request_hash, expires_at) "
                "VALUES (:p, :k, :m, :path, :h, :exp) ON CONFLICT (principal, key) DO NOTHING RETURNING 1"
            ),
            params,
        )
    ).first()
    if inserted is None:
        row = (
            await session.execute(
                text(
                    "SELECT request_hash, status_code, response_body, response_headers, expires_at "
                    "FROM desk.idempotency_keys WHERE principal = :p AND key = :k"
                ),
                params,
            )
        ).first()
        if row is not None and row.expires_at <= datetime.now(UTC):
            await session.execute(
                text(
                    "UPDATE desk.idempotency_keys SET method = :m, path = :path, request_hash = :h, status_code = NULL,"
                    " response_body = NULL, response_headers = NULL, created_at = now(), expires_at = :exp "
                    "WHERE principal = :p AND key = :k"
                ),
                params,
            )
        elif row is None or bytes(row.request_hash) != digest:
            raise DeskError(
                "La chiave di idempotenza è già stata usata con una richiesta diversa.",
                "This Idempotency-Key was already used with a different request.",
                kind=IDEMPOTENCY_MISMATCH,
            )
        elif row.status_code is None:
            raise Conflict(
                "Una richiesta con la stessa chiave è in corso.", "A request with the same key is in progress."
            )
        else:
            headers = dict(row.response_headers or {})
            headers["idempotent-replayed"] = "true"
            raise IdempotentReplay(
                Response(bytes(row.response_body or b""), status_code=row.status_code, headers=headers)
            )
    slot = IdempotencySlot(owner, key)
    request.state.idempotency = slot
    return slot


async def _form_digest_input(request: Request) -> bytes:
    """The parsed form as bytes to digest: each field's name and value, a file's name, type and SHA-256."""
    form = await request.form()
    parts = []
    for name, value in form.multi_items():
        if isinstance(value, str):
            parts.append(f"{name}={value}".encode())
        else:
            content = await value.read()
            await value.seek(0)
            meta = f"{name}:{value.filename}:{value.content_type}:".encode()
            parts.append(meta + hashlib.sha256(content).hexdigest().encode())
    return b"\n".join(parts)


async def request_digest(request: Request) -> bytes:
    """What an idempotency key is bound to: method, path and body."""
    try:
        body = await request.body()
    except RuntimeError:  # a multipart body FastAPI already parsed into a form for the route (an upload)
        body = await _form_digest_input(request)
    return hashlib.sha256(request.method.encode() + b" " + request.url.path.encode() + b"\n" + body).digest()


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not _KEY_RE.match(key):
        raise DeskError(kind=IDEMPOTENCY_INVALID)
    return key


Idempotent = Annotated[IdempotencySlot | None, Depends(idempotency)]


# ---------------------------------------------------------------- ETag / If-Match


def etag_of(version: int) -> str:
    return f'"{version}"'


def check_if_match(request: Request, version: int, *, required: bool = True) -> None:
    """Refuse a lost update: stale If-Match -> 412; missing (when required) -> 428."""
    check_if_match_value(request.headers.get("if-match"), version, required=required)


def check_if_match_value(header: str | None, version: int, *, required: bool = True) -> None:
    if header is None:
        if required:
            raise DeskError(
                "Serve l'intestazione If-Match con l'ETag corrente.",
                "Send If-Match with the current ETag.",
                kind=PRECONDITION_REQUIRED,
                extra={"current_etag": etag_of(version)},
            )
        return
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    if "*" in tags or etag_of(version) in tags:
        return
    raise DeskError(
        "La risorsa è cambiata: ricaricala e riprova.",
        "The resource has changed: reload and retry.",
        kind=PRECONDITION_FAILED,
        extra={"current_etag": etag_of(version)},
    )


# ---------------------------------------------------------------- the request's actor


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts in a service call, and under which request id (for audit and events)."""

    principal: Principal
    request_id: str | None
    service: str


async def actor(request: Request) -> Actor:
    return Actor(
        current_principal(request), getattr(request.state, "request_id", None), request.app.state.settings.service_name
    )


ActorDep = Annotated[Actor, Depends(actor)]
