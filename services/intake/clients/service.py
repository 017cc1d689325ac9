"""Use cases on API clients: create, read, list, rotate the secret with an overlap, revoke.

A plain secret leaves the desk only in the response that creates it (creation, rotation); the table keeps
its argon2 hash. A revocation is refused at the token endpoint at once and, for the tokens already issued,
by every service within `DESK_REVOCATION_REFRESH_SECONDS` (`shared.revocation`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.clients import repository
from services.intake.clients.schemas import ApiClientCreate
from shared.audit import record_audit
from shared.auth import DEFAULT_SCOPES, Principal, create_client, live_previous_secrets, rotate_client_secret
from shared.errors import Conflict, NotFound, ProblemError, ValidationFailed
from shared.models import ApiClient
from shared.pagination import PageParams
from shared.routing import Actor, etag_of

RESOURCE = "api_client"


def status_of(client: ApiClient) -> str:
    return "revoked" if client.revoked_at is not None or not client.active else "active"


def to_out(client: ApiClient, *, now: datetime | None = None) -> dict[str, Any]:
    live = live_previous_secrets(client, now or datetime.now(UTC))
    return {
        "client_id": client.client_id,
        "name": client.name,
        "kind": client.kind,
        "partner_id": client.partner_id,
        "company_id": client.company_id,
        "scopes": list(client.scopes),
        "status": status_of(client),
        "created_at": client.created_at,
        "rotated_at": client.rotated_at,
        "previous_secret_expires_at": max((datetime.fromisoformat(p["expires_at"]) for p in live), default=None),
        "revoked_at": client.revoked_at,
        "revoked_reason": client.revoked_reason,
        "last_used_at": client.last_used_at,
        "etag": etag_of(client.version),
    }


def _snapshot(client: ApiClient) -> dict[str, Any]:
    """What the audit trail keeps of a client: never a secret nor its hash."""
    return {
        "kind": client.kind,
        "name": client.name,
        "partner_id": client.partner_id,
        "company_id": client.company_id,
        "scopes": list(client.scopes),
        "status": status_of(client),
        "rotated_at": client.rotated_at,
        "previous_secrets": len(client.previous_secrets or []),
        "revoked_at": client.revoked_at,
        "revoked_reason": client.revoked_reason,
    }


def _invalid(code: str, path: str, it: str, en: str) -> ValidationFailed:
    return ValidationFailed(errors=[ProblemError(code, path, it, en)])


async def _holder(
    session: AsyncSession, principal: Principal, data: ApiClientCreate
) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    """Whom the new client acts for, as the caller may ask: a partner only for itself."""
    if principal.kind == "partner":
        if data.kind != "partner":
            raise _invalid(
                "kind_not_allowed",
                "/kind",
                "Un partner crea solo client di tipo partner.",
                "A partner creates only clients of kind partner.",
            )
        if data.partner_id not in (None, principal.partner_id):
            raise _invalid(
                "partner_not_allowed",
                "/partner_id",
                "Un partner crea client solo per sé stesso.",
                "A partner creates clients only for itself.",
            )
        if data.company_id is not None:
            raise _invalid(
                "company_not_allowed",
                "/company_id",
                "Un client partner non agisce per un'impresa.",
                "A partner client does not act for a company.",
            )
        return principal.partner_id, None
    if data.kind == "expert":
        # An expert's client is tied to its roster entry, which /v1/experts/{id}/clients records.
        raise _invalid(
            "kind_not_allowed",
            "/kind",
            "Le credenziali di un esperto si creano da /v1/experts/{id}/clients.",
            "An expert's credentials are created through /v1/experts/{id}/clients.",
        )
    if data.kind == "partner":
        if data.partner_id is None:
            raise _invalid(
                "partner_required",
                "/partner_id",
                "Indica il partner per cui agisce il client.",
                "Name the partner the client acts for.",
            )
        if not await repository.partner_exists(session, data.partner_id):
            raise _invalid("partner_not_found", "/partner_id", "Partner inesistente.", "No such partner.")
    elif data.partner_id is not None:
        raise _invalid(
            "partner_not_allowed",
            "/partner_id",
            "Solo un client partner agisce per un partner.",
            "Only a partner client acts for a partner.",
        )
    if data.kind == "company":
        if data.company_id is None:
            raise _invalid(
                "company_required",
                "/company_id",
                "Indica l'impresa per cui agisce il client.",
                "Name the company the client acts for.",
            )
        if not await repository.company_exists(session, data.company_id):
            raise _invalid("company_not_found", "/company_id", "Impresa inesistente.", "No such company.")
    elif data.company_id is not None:
        raise _invalid(
            "company_not_allowed",
            "/company_id",
            "Solo un client impresa agisce per un'impresa.",
            "Only a company client acts for a company.",
        )
    return data.partner_id, data.company_id


def _scopes(data: ApiClientCreate) -> tuple[str, ...]:
    allowed = DEFAULT_SCOPES[data.kind]
    if data.scopes is None:
        return allowed
    for i, scope in enumerate(data.scopes):
        if scope not in allowed:
            raise _invalid(
                "scope_not_allowed",
                f"/scopes/{i}",
                f"Scope non consentito a questo tipo: {scope}.",
                f"Scope not allowed for this kind: {scope}.",
            )
    if not data.scopes:
        raise _invalid("scopes_empty", "/scopes", "Serve almeno uno scope.", "At least one scope is needed.")
    return tuple(dict.fromkeys(data.scopes))


async def create(*, session: AsyncSession, actor: Actor, data: ApiClientCreate) -> tuple[ApiClient, str]:
    partner_id, company_id = await _holder(session, actor.principal, data)
    client, secret = await create_client(
        session, kind=data.kind, name=data.name, partner_id=partner_id, company_id=company_id, scopes=_scopes(data)
    )
    await session.refresh(client)
    await record_audit(
        session,
        actor,
        action="api_client.created",
        resource_type=RESOURCE,
        resource_id=client.client_id,
        after=_snapshot(client),
    )
    return client, secret


async def get(*, session: AsyncSession, principal: Principal, client_id: str, lock: bool = False) -> ApiClient:
    client = await repository.get_readable(session, principal, client_id, lock=lock)
    if client is None:
        raise NotFound()
    return client


async def list_clients(
    *,
    session: AsyncSession,
    principal: Principal,
    page: PageParams,
    partner_id: uuid.UUID | None,
    kind: str | None,
    status: str | None,
) -> list[ApiClient]:
    return await repository.list_page(session, principal, page, partner_id=partner_id, kind=kind, status=status)


def _refuse_revoked(client: ApiClient) -> None:
    if status_of(client) == "revoked":
        raise Conflict("Il client è revocato.", "The client is revoked.")


async def rotate(*, session: AsyncSession, actor: Actor, client: ApiClient, overlap_seconds: int) -> str:
    _refuse_revoked(client)
    before = _snapshot(client)
    secret = await rotate_client_secret(
        session, client, overlap=timedelta(seconds=overlap_seconds), now=datetime.now(UTC)
    )
    await record_audit(
        session,
        actor,
        action="api_client.rotated",
        resource_type=RESOURCE,
        resource_id=client.client_id,
        before=before,
        after={**_snapshot(client), "overlap_seconds": overlap_seconds},
    )
    return secret


async def revoke(*, session: AsyncSession, actor: Actor, client: ApiClient, reason: str) -> ApiClient:
    _refuse_revoked(client)
    before = _snapshot(client)
    client.revoked_at = datetime.now(UTC)
    client.revoked_reason = reason
    client.active = False
    client.previous_secrets = []
    client.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="api_client.revoked",
        resource_type=RESOURCE,
        resource_id=client.client_id,
        before=before,
        after=_snapshot(client),
    )
    return client
