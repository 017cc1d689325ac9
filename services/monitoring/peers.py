"""Monitoring's clients of the other services (intake: applications, companies, call rules; evaluation: budget
releases): created at startup, kept on app.state, closed at shutdown. Also the calls every monitoring package
makes through them, with peer failures mapped to problems (503 unreachable, 409 refused)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

from shared.clients.base import NotFoundAtPeer, PeerError, PeerUnavailable, ServiceClient
from shared.clients.calls import CallVersions
from shared.clients.evaluation import EvaluationClient
from shared.clients.intake import IntakeClient
from shared.contracts.applications import ApplicationOut
from shared.contracts.calls import CallDetail
from shared.contracts.companies import CompanyOut
from shared.contracts.funding import ReleaseOut
from shared.domain.call_rules import CallRules
from shared.errors import PEER_UNAVAILABLE, Conflict, DeskError, NotFound
from shared.events.inbox import read_application


def _lifespan(
    attr: str, factory: Callable[[Any], ServiceClient]
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if getattr(app.state, attr, None) is not None:  # set already (tests)
            yield
            return
        client = factory(app)
        setattr(app.state, attr, client)
        try:
            yield
        finally:
            setattr(app.state, attr, None)
            await client.aclose()

    return lifespan


def _intake(app: Any) -> ServiceClient:
    s = app.state.settings
    return IntakeClient(s.intake_url, service=s.service_name, keyring=app.state.keyring, issuer=s.token_issuer)


def _evaluation(app: Any) -> ServiceClient:
    s = app.state.settings
    return EvaluationClient(s.evaluation_url, service=s.service_name, keyring=app.state.keyring, issuer=s.token_issuer)


intake_client_lifespan = _lifespan("intake_client", _intake)
evaluation_client_lifespan = _lifespan("evaluation_client", _evaluation)


async def intake_client(request: Request) -> IntakeClient:
    client: IntakeClient | None = getattr(request.app.state, "intake_client", None)
    if client is None:
        raise RuntimeError("no intake client on app.state (started without the monitoring lifespan?)")
    return client


async def evaluation_client(request: Request) -> EvaluationClient:
    client: EvaluationClient | None = getattr(request.app.state, "evaluation_client", None)
    if client is None:
        raise RuntimeError("no evaluation client on app.state (started without the monitoring lifespan?)")
    return client


IntakeDep = Annotated[IntakeClient, Depends(intake_client)]
EvaluationDep = Annotated[EvaluationClient, Depends(evaluation_client)]


# ---------------------------------------------------------------- calls, with failures as problems


def unavailable(exc: PeerUnavailable) -> DeskError:
    service = {"intake": "di protocollo (intake)", "evaluation": "di valutazione (evaluation)"}.get(exc.peer, exc.peer)
    return DeskError(
        f"Il servizio {service} non risponde: riprovare più tardi. Nulla è stato modificato.",
        f"The {exc.peer} service is unreachable: retry later. Nothing was changed.",
        kind=PEER_UNAVAILABLE,
        headers={"Retry-After": "30"},
        extra={"peer": exc.peer},
    )


async def fetch_application(
    intake: IntakeClient, application_id: uuid.UUID, snapshots: dict[uuid.UUID, ApplicationOut | None] | None = None
) -> ApplicationOut:
    """Intake's copy of the application (from a batch's bulk read when it is there)."""
    try:
        return await read_application(intake, application_id, snapshots)
    except PeerUnavailable as exc:
        raise unavailable(exc) from exc
    except NotFoundAtPeer as exc:
        raise Conflict(
            f"La domanda {application_id} non esiste presso intake.",
            f"Application {application_id} is unknown to intake.",
        ) from exc


async def fetch_company(intake: IntakeClient, company_id: uuid.UUID) -> CompanyOut:
    try:
        return await intake.get_company(company_id)
    except PeerUnavailable as exc:
        raise unavailable(exc) from exc
    except NotFoundAtPeer as exc:
        raise Conflict(
            f"L'impresa {company_id} non esiste presso intake.", f"Company {company_id} is unknown to intake."
        ) from exc


# Which version of a call is current is asked again after CURRENT_VERSION_TTL seconds, or at once after
# `call.amended` (`forget_call`); each version is kept (shared.clients.calls).
CURRENT_VERSION_TTL = 300.0
CALLS = CallVersions(ttl=CURRENT_VERSION_TTL)


async def call_detail(intake: IntakeClient, call_id: uuid.UUID) -> CallDetail:
    try:
        return await CALLS.current(intake, call_id)
    except PeerUnavailable as exc:
        raise unavailable(exc) from exc
    except NotFoundAtPeer as exc:
        raise NotFound(f"Il bando {call_id} non esiste.", f"Call {call_id} does not exist.") from exc


def forget_call(call_id: uuid.UUID) -> None:
    """A new version of the call was published: ask intake which version is current on the next read."""
    CALLS.forget(call_id)


async def rules_of_call(intake: IntakeClient, call_id: uuid.UUID) -> CallRules:
    """The rules in force for the call (cached per call version)."""
    return (await call_detail(intake, call_id)).rules


async def release_budget(
    evaluation: EvaluationClient,
    *,
    call_id: uuid.UUID,
    application_id: uuid.UUID,
    amount: Decimal,
    reason: str,
    idempotency_key: str,
) -> ReleaseOut:
    """Give aid back to the call's budget at evaluation (which then funds the waiting list). Evaluation
    unreachable -> 503 and the caller's transaction rolls back; a refusal -> 409 with evaluation's problem."""
    try:
        return await evaluation.release_budget(
            call_id, application_id=application_id, amount=amount, reason=reason, idempotency_key=idempotency_key
        )
    except PeerUnavailable as exc:
        raise unavailable(exc) from exc
    except PeerError as exc:
        raise Conflict(
            "Il servizio di valutazione ha rifiutato il rilascio del budget.",
            "The evaluation service refused to release the budget.",
            extra={"peer": exc.peer, "peer_status": exc.status, "peer_problem": exc.problem},
        ) from exc
