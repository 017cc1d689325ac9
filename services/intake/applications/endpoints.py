"""Routes of /v1/applications: drafts, pre-check, submit, receipt, withdrawal."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response

from services.intake.applications import formalities, repository, service
from services.intake.applications.autocommit import AutocommitRoute
from services.intake.applications.schemas import (
    ApplicationCreate,
    ApplicationUpdate,
    CheckResultOut,
    SignedFormOut,
    StampDutyIn,
    StampDutyOut,
    SubmissionReceipt,
    Withdrawal,
)
from services.intake.models import Application
from services.intake.principals import applicant, reader
from shared.auth import Authenticator, Principal
from shared.contracts.applications import ApplicationOut, SnapshotsOut, SnapshotsRequest
from shared.db import SessionDep
from shared.errors import NotFound
from shared.i18n import pick_language
from shared.pagination import Page, PageDep, keyset, page_of
from shared.routing import (
    ActorDep,
    Idempotent,
    UnitOfWorkRoute,
    check_if_match,
    etag_of,
    idempotency_key,
    idempotency_owner,
    request_digest,
)
from shared.schemas import BIGINT_MAX

router = APIRouter(
    prefix="/v1/applications",
    tags=["applications"],
    route_class=UnitOfWorkRoute,
    dependencies=[reader],
)
internal_router = APIRouter(
    prefix="/v1/internal/applications",
    tags=["internal"],
    route_class=UnitOfWorkRoute,
    dependencies=[Depends(Authenticator(kinds=("service",), scopes=("internal",)))],
)


async def valid_application_id(application_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Application:
    return await service.get_readable(session, actor, application_id)


async def lockable_application_id(application_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Application:
    return await service.get_readable(session, actor, application_id, for_update=True)


ValidApplication = Annotated[Application, Depends(valid_application_id)]
LockedApplication = Annotated[Application, Depends(lockable_application_id)]


async def _out(session: SessionDep, app: Application, response: Response) -> dict[str, Any]:
    response.headers["ETag"] = etag_of(app.version)
    return service.to_out(app, await repository.lines_of(session, app.id))


@router.post(
    "",
    response_model=ApplicationOut,
    status_code=201,
    summary="Create a draft application",
    dependencies=[applicant],
)
async def create_application(
    body: ApplicationCreate, session: SessionDep, actor: ActorDep, _idem: Idempotent, response: Response
) -> Any:
    app = await service.create_draft(session=session, actor=actor, body=body)
    response.headers["Location"] = f"/v1/applications/{app.id}"
    return await _out(session, app, response)


@router.get(
    "",
    response_model=Page[ApplicationOut],
    summary="List the applications within reach",
)
async def list_applications(
    session: SessionDep,
    actor: ActorDep,
    page: PageDep,
    call_id: uuid.UUID | None = None,
    company_id: uuid.UUID | None = None,
    status: Annotated[Literal["draft", "submitted", "withdrawn"] | None, Query()] = None,
    protocol_number: Annotated[
        int | None, Query(ge=1, le=BIGINT_MAX, description="Only the application with this protocol number.")
    ] = None,
    submitted_from: Annotated[
        datetime | None, Query(description="Only applications submitted at or after this instant.")
    ] = None,
    submitted_to: Annotated[
        datetime | None, Query(description="Only applications submitted before this instant.")
    ] = None,
) -> Any:
    stmt = repository.listing(
        actor.principal,
        call_id=call_id,
        company_id=company_id,
        status=status,
        protocol_number=protocol_number,
        submitted_from=submitted_from,
        submitted_to=submitted_to,
    )
    rows = list((await session.execute(keyset(stmt, page, Application.created_at, Application.id))).scalars())
    lines = {a.id: await repository.lines_of(session, a.id) for a in rows[: page.limit]}
    return page_of(rows, page, lambda a: service.to_out(a, lines[a.id]))


@router.get(
    "/{application_id}",
    response_model=ApplicationOut,
    summary="Read an application",
)
async def get_application(app: ValidApplication, session: SessionDep, response: Response) -> Any:
    return await _out(session, app, response)


@router.put(
    "/{application_id}",
    response_model=ApplicationOut,
    summary="Replace a draft's content",
    dependencies=[applicant],
)
async def update_application(
    app: LockedApplication,
    body: ApplicationUpdate,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    response: Response,
) -> Any:
    check_if_match(request, app.version)
    app = await service.update_draft(session=session, actor=actor, app=app, body=body)
    return await _out(session, app, response)


@router.delete(
    "/{application_id}",
    status_code=204,
    summary="Delete a draft",
    dependencies=[applicant],
)
async def delete_application(
    app: LockedApplication, request: Request, session: SessionDep, actor: ActorDep
) -> Response:
    check_if_match(request, app.version)
    await service.delete_draft(session=session, actor=actor, app=app)
    return Response(status_code=204)


@router.post(
    "/{application_id}/check",
    response_model=CheckResultOut,
    summary="Pre-check a draft: every problem at once, and the estimated aid",
    description="Changes nothing in the application. Lists every problem (code, JSON pointer, message, "
    "call article, whether it blocks submission) and the eligible total, grant and loan to "
    "the cent. A passing verdict is remembered (as when the draft is saved), so a submit "
    "that follows, with neither the draft nor its company changed, commits at once.",
)
async def check_application(app: ValidApplication, request: Request, session: SessionDep, actor: ActorDep) -> Any:
    result, network = await service.run_check(session, app, actor)
    if app.status == "draft":
        await service.record_precheck(await repository.driver_connection(session), app.id)
    return service.check_out(result, pick_language(request.headers.get("accept-language")), network)


# The submit commits in one server-side statement (no lock held across a round trip): its own route class.
# Who may submit and how its idempotency key is built: shared with the click-day path (fastpath.py).
submitter = Authenticator(kinds=("partner", "company"), scopes=("intake:read", "intake:write"))


async def submit_key_of(request: Request, principal: Principal) -> service.SubmitKey | None:
    """The submit's idempotency key (owner, key, request digest, path, retention), or None without one."""
    key = idempotency_key(request)
    if key is None:
        return None
    return service.SubmitKey(
        idempotency_owner(principal),
        key,
        await request_digest(request),
        request.url.path,
        timedelta(hours=request.app.state.settings.idempotency_retention_hours),
    )


submit_router = APIRouter(
    prefix="/v1/applications",
    tags=["applications"],
    route_class=AutocommitRoute,
    dependencies=[reader],
)


@submit_router.post(
    "/{application_id}/submit",
    response_model=SubmissionReceipt,
    status_code=201,
    summary="Submit a draft: protocol number and signed receipt",
    dependencies=[Depends(submitter)],
    description="Only inside the call's window (server clock) and only when the pre-check finds no "
    "blocking problem. Returns the receipt: protocol number (unique per call, in arrival "
    "order), server timestamp, SHA-256 of the submitted content, the desk's signature and "
    "the receipt's link in the call's hash-chained register. Honours Idempotency-Key; "
    "If-Match is optional.",
)
async def submit_application(
    application_id: uuid.UUID, request: Request, session: SessionDep, actor: ActorDep
) -> Response:
    submit_key = await submit_key_of(request, actor.principal)
    conn = await repository.driver_connection(session)
    out, replayed = await service.submit(
        conn=conn,
        actor=actor,
        application_id=application_id,
        keyring=request.app.state.keyring,
        key=submit_key,
        if_match=request.headers.get("if-match"),
    )
    headers = {"Location": f"/v1/applications/{application_id}/receipt"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    # Built directly (orjson) rather than re-validated against the response model: this is the click-day path.
    return Response(orjson.dumps(out), status_code=201, media_type="application/json", headers=headers)


@router.get(
    "/{application_id}/receipt",
    response_model=SubmissionReceipt,
    summary="Read the submission receipt",
)
async def get_receipt(app: ValidApplication, request: Request, session: SessionDep) -> Any:
    if app.receipt is None or app.protocol_number is None:
        raise NotFound("La domanda non è stata presentata.", "The application has not been submitted.")
    return service.receipt_out(app, request.app.state.keyring, await repository.chain_hash_before(session, app))


@router.post(
    "/{application_id}/withdraw",
    response_model=ApplicationOut,
    summary="Withdraw a submitted application",
    dependencies=[applicant],
)
async def withdraw_application(
    app: LockedApplication,
    body: Withdrawal,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    check_if_match(request, app.version, required=False)
    app = await service.withdraw(session=session, actor=actor, app=app, reason=body.reason)
    return await _out(session, app, response)


# ---------------------------------------------------------------- formalities (never on the submit path)


@router.put(
    "/{application_id}/stamp-duty",
    response_model=StampDutyOut,
    summary="Declare the stamp duty (marca da bollo) of a draft, once",
    description="The €16 stamp's 14-digit identifier and issue date, declared once per application before "
    "submission; an identifier already declared on another application is refused (409 stamp-duty-reused).",
    dependencies=[applicant],
)
async def declare_stamp_duty(app: LockedApplication, body: StampDutyIn, session: SessionDep, actor: ActorDep) -> Any:
    return await formalities.declare_stamp_duty(session=session, actor=actor, app=app, body=body)


@router.get(
    "/{application_id}/stamp-duty",
    response_model=StampDutyOut,
    summary="Read the declared stamp duty",
)
async def get_stamp_duty(app: ValidApplication) -> Any:
    return formalities.stamp_duty_out(app)


@router.get(
    "/{application_id}/form.pdf",
    summary="The submitted application form as PDF, for the legal representative to sign",
    description="Rendered from the submitted content and the receipt (protocol number, server instant, content "
    "hash, stamp duty, the applicant's declarations including the de minimis self-declaration): the same bytes "
    "on every read. ETag and Repr-Digest carry its SHA-256; sign exactly this file (PAdES) and upload it to "
    "POST .../signed-form.",
    response_class=Response,
    responses={
        200: {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}},
    },
)
async def get_form_pdf(app: ValidApplication, session: SessionDep) -> Response:
    pdf, digest = await formalities.form_pdf(session, app)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "ETag": f'"{digest}"',
            "Repr-Digest": formalities.repr_digest(digest),
            "Content-Disposition": f'inline; filename="domanda-{app.protocol_number}.pdf"',
        },
    )


@router.post(
    "/{application_id}/signed-form",
    response_model=SignedFormOut,
    status_code=201,
    summary="Upload the form signed by the company's legal representative (PAdES)",
    description="The body is the signed PDF. Accepted when the signature covers the form the desk produced, "
    "unmodified, by a certificate valid at signing time chaining to a trusted root, whose subject names the "
    "legal representative's fiscal code, within the call's formalities.signature_days of submission. Each "
    "refusal is its own problem type and changes nothing. Emits application.form_signed.",
    dependencies=[applicant],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload_signed_form(
    app: LockedApplication, request: Request, session: SessionDep, actor: ActorDep, _idem: Idempotent
) -> Any:
    return await formalities.accept_signed_form(
        session=session,
        actor=actor,
        app=app,
        signed=await request.body(),
        trust_roots=request.app.state.settings.signature_trust_roots,
    )


@router.get(
    "/{application_id}/signed-form",
    response_model=SignedFormOut,
    summary="Read the accepted signed form's verification",
)
async def get_signed_form(app: ValidApplication, session: SessionDep) -> Any:
    return formalities.signed_form_out(app, await formalities.get_form_row(session, app))


@internal_router.post(
    "/snapshots",
    response_model=SnapshotsOut,
    status_code=200,
    summary="Read many applications at once (desk services only)",
    description="The snapshots (as `GET /v1/applications/{id}` returns them) of up to 200 applications in one "
    "request, for a desk service applying a batch of events; ids intake has no application for are listed in "
    "`unknown`. Reads only: nothing changes, so a retry is always safe.",
)
async def application_snapshots(body: SnapshotsRequest, session: SessionDep) -> Any:
    return await service.snapshots(session, body.ids)
