"""Routes of /v1/projects: reads for whoever reaches the project (officers, auditors, the company, its partner),
the IBAN (set by the beneficiary or an officer; a partner's change confirmed by the company or an officer while a
payment is open), extension, Lombardy-site check and revocation by officers (the outcome comes from the reviewed final
claim, in the claims package), and the loan's
repayment plan."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from services.monitoring.models import IbanChange, Project
from services.monitoring.peers import EvaluationDep, IntakeDep
from services.monitoring.projects import iban, repository, service
from services.monitoring.projects.schemas import (
    ExtensionIn,
    IbanChangeOut,
    IbanChangeRejectIn,
    IbanIn,
    LoanScheduleOut,
    LombardySiteIn,
    ProjectOut,
    ProjectStatus,
    RevocationIn,
)
from shared.auth import Authenticator
from shared.db import SessionDep
from shared.pagination import Page, PageDep, keyset, page_of
from shared.routing import ActorDep, Idempotent, UnitOfWorkRoute, check_if_match, etag_of

router = APIRouter(
    prefix="/v1/projects",
    tags=["projects"],
    route_class=UnitOfWorkRoute,
    dependencies=[Depends(Authenticator(scopes=("monitoring:read",)))],
)
officer = Depends(Authenticator(kinds=("officer",), scopes=("monitoring:write",)))
account_setter = Depends(Authenticator(kinds=("partner", "company", "officer"), scopes=("monitoring:write",)))
account_confirmer = Depends(Authenticator(kinds=iban.CONFIRMING_KINDS, scopes=("monitoring:write",)))


async def valid_project_id(project_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Project:
    return await service.get_readable(session, actor.principal, project_id)


async def lockable_project_id(project_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Project:
    return await service.get_readable(session, actor.principal, project_id, for_update=True)


ValidProject = Annotated[Project, Depends(valid_project_id)]
LockedProject = Annotated[Project, Depends(lockable_project_id)]


def _out(project: Project, response: Response) -> dict[str, Any]:
    response.headers["ETag"] = etag_of(project.version)
    return service.to_out(project)


@router.get(
    "",
    response_model=Page[ProjectOut],
    summary="List the projects within reach",
    description="Officers, auditors and services see every project; a partner those of its companies' "
    "applications; a company its own.",
)
async def list_projects(
    session: SessionDep,
    actor: ActorDep,
    page: PageDep,
    call_id: uuid.UUID | None = None,
    company_id: uuid.UUID | None = None,
    status: Annotated[ProjectStatus | None, Query()] = None,
) -> Any:
    stmt = keyset(
        repository.listing(actor.principal, call_id=call_id, company_id=company_id, status=status),
        page,
        Project.created_at,
        Project.id,
    )
    return page_of(await repository.projects(session, stmt), page, service.to_out)


@router.get(
    "/{project_id}",
    response_model=ProjectOut,
    summary="Read a project",
)
async def get_project(project: ValidProject, response: Response) -> Any:
    return _out(project, response)


def _change_out(change: IbanChange, response: Response) -> dict[str, Any]:
    response.headers["ETag"] = etag_of(change.version)
    return iban.change_out(change)


@router.put(
    "/{project_id}/iban",
    response_model=ProjectOut,
    dependencies=[account_setter],
    summary="Set the account payments go to, with its holder (If-Match on the project)",
    description="An Italian IBAN (check digits verified with python-stdnum) and its holder, whose VAT number "
    "or fiscal code must be the company's (422 `iban-holder-mismatch` otherwise, nothing "
    "changed). Applied at once (200, the project) when asked by the company or an officer, or "
    "when no payment is ordered and not yet paid. Asked by a partner while an advance or "
    "balance is ordered and not yet paid, it is only recorded (202, the pending change, "
    "`Location` its address) until the company or an officer confirms it. Orders already "
    "placed keep their account; an officer may re-issue them "
    "(`POST /v1/payments/{id}/reissue`).",
    responses={
        202: {"model": IbanChangeOut, "description": "The change awaits the company's or an officer's confirmation."},
    },
)
async def set_project_iban(
    body: IbanIn,
    project: LockedProject,
    session: SessionDep,
    actor: ActorDep,
    intake: IntakeDep,
    request: Request,
    response: Response,
) -> Any:
    check_if_match(request, project.version)
    project, change = await iban.set_iban(
        session=session,
        actor=actor,
        intake=intake,
        project=project,
        iban=body.iban,
        holder_name=body.holder.name,
        holder_tax_code=body.holder.tax_code,
    )
    if change is not None and change.status == "pending":
        return JSONResponse(
            jsonable_encoder(IbanChangeOut.model_validate(iban.change_out(change))),
            status_code=202,
            headers={
                "ETag": etag_of(change.version),
                "Location": f"/v1/projects/{project.id}/iban-changes/{change.id}",
            },
        )
    return _out(project, response)


async def valid_change_id(change_id: uuid.UUID, project: ValidProject, session: SessionDep) -> IbanChange:
    return await iban.get_change(session, project, change_id)


async def lockable_change_id(change_id: uuid.UUID, project: LockedProject, session: SessionDep) -> IbanChange:
    return await iban.get_change(session, project, change_id, for_update=True)


ValidChange = Annotated[IbanChange, Depends(valid_change_id)]
LockedChange = Annotated[IbanChange, Depends(lockable_change_id)]


@router.get(
    "/{project_id}/iban-changes",
    response_model=Page[IbanChangeOut],
    summary="The project's changes of account, oldest first",
)
async def list_iban_changes(project: ValidProject, session: SessionDep, page: PageDep) -> Any:
    stmt = keyset(repository.iban_changes(project.id), page, IbanChange.requested_at, IbanChange.id)
    return page_of(await repository.rows(session, stmt), page, lambda r: iban.change_out(r.IbanChange))


@router.get(
    "/{project_id}/iban-changes/{change_id}",
    response_model=IbanChangeOut,
    summary="Read a change of account",
)
async def get_iban_change(change: ValidChange, response: Response) -> Any:
    return _change_out(change, response)


@router.post(
    "/{project_id}/iban-changes/{change_id}/confirm",
    response_model=IbanChangeOut,
    status_code=200,
    dependencies=[account_confirmer],
    summary="Confirm a partner's change of account: the company or an officer (If-Match on the change)",
    description="The project's IBAN becomes the change's (the holder is checked again against the "
    "company). Orders already placed keep their account; an officer may re-issue them.",
)
async def confirm_iban_change(
    project: LockedProject,
    change: LockedChange,
    session: SessionDep,
    actor: ActorDep,
    intake: IntakeDep,
    request: Request,
    response: Response,
    _idem: Idempotent,
) -> Any:
    check_if_match(request, change.version)
    change = await iban.confirm_change(session=session, actor=actor, intake=intake, project=project, change=change)
    return _change_out(change, response)


@router.post(
    "/{project_id}/iban-changes/{change_id}/reject",
    response_model=IbanChangeOut,
    status_code=200,
    dependencies=[account_confirmer],
    summary="Reject a partner's change of account: the company or an officer (If-Match on the change)",
)
async def reject_iban_change(
    body: IbanChangeRejectIn,
    project: LockedProject,
    change: LockedChange,
    session: SessionDep,
    actor: ActorDep,
    request: Request,
    response: Response,
    _idem: Idempotent,
) -> Any:
    check_if_match(request, change.version)
    change = await iban.reject_change(session=session, actor=actor, project=project, change=change, reason=body.reason)
    return _change_out(change, response)


@router.post(
    "/{project_id}/extension",
    response_model=ProjectOut,
    status_code=200,
    dependencies=[officer],
    summary="Extend the deadline by the call's extension, once (If-Match)",
)
async def extend_project(
    body: ExtensionIn,
    project: LockedProject,
    session: SessionDep,
    actor: ActorDep,
    intake: IntakeDep,
    request: Request,
    response: Response,
    _idem: Idempotent,
) -> Any:
    check_if_match(request, project.version)
    project = await service.grant_extension(
        session=session, actor=actor, intake=intake, project=project, reason=body.reason
    )
    return _out(project, response)


@router.post(
    "/{project_id}/lombardy-site",
    response_model=ProjectOut,
    status_code=200,
    dependencies=[officer],
    summary="Record whether the operating site in Lombardy is open (If-Match)",
    description="A project whose company had only committed to open a site starts unverified; not verified "
    "when the outcome is applied means revocation.",
)
async def record_lombardy_site(
    body: LombardySiteIn,
    project: LockedProject,
    session: SessionDep,
    actor: ActorDep,
    request: Request,
    response: Response,
    _idem: Idempotent,
) -> Any:
    check_if_match(request, project.version)
    project = await service.record_lombardy_site(
        session=session, actor=actor, project=project, opened=body.opened, note=body.note
    )
    return _out(project, response)


@router.post(
    "/{project_id}/revocation",
    response_model=ProjectOut,
    status_code=200,
    dependencies=[officer],
    summary="Revoke the aid for a catalogued reason citing its article (If-Match)",
    description="The reason comes from the call's catalogue (`revocation_reasons`): deadline missed, "
    "Lombardy site never opened, false declaration (DPR 445/2000 art. 75), renunciation, "
    "obligations after completion broken. Open payment orders are cancelled; everything paid "
    "is ordered back in one `recovery` payment with the statutory interest (tasso di interesse "
    "legale, by year) from each payment date to today, and the loan's outstanding capital "
    "(early repayment); the aid still committed goes back to the call's budget at evaluation. "
    "The outcome's `recovery_detail` shows the figures. The outcome of a completed project is "
    "never typed: it is computed when its final claim's review is completed "
    "(`POST /v1/claims/{id}/review/complete`).",
)
async def revoke_project(
    body: RevocationIn,
    project: LockedProject,
    session: SessionDep,
    actor: ActorDep,
    intake: IntakeDep,
    evaluation: EvaluationDep,
    request: Request,
    response: Response,
    _idem: Idempotent,
) -> Any:
    check_if_match(request, project.version)
    project = await service.revoke_project(
        session=session,
        actor=actor,
        intake=intake,
        evaluation=evaluation,
        project=project,
        reason_code=body.reason_code,
        reason=body.reason,
        recovery_date=body.recovery_date,
    )
    return _out(project, response)


@router.get(
    "/{project_id}/loan-schedule",
    response_model=LoanScheduleOut,
    summary="The subsidised loan's repayment plan",
    description="French amortisation, half-yearly, after the grace period, at the call's rate; the loan's "
    "years are the evaluation's. The final loan once the outcome is applied (none if revoked).",
)
async def get_loan_schedule(project: ValidProject) -> Any:
    return service.loan_schedule(project)
