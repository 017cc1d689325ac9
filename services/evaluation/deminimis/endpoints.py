"""Routes of /v1/de-minimis: the register of aid granted (officers write, officers and auditors read),
the import of a state-aid register export, and the single undertaking's aid in the rolling period."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.datastructures import UploadFile

from services.evaluation.deminimis import repository, service
from services.evaluation.deminimis.schemas import AidIn, AidOut, ComparisonOut, ImportReport, UndertakingOut
from services.evaluation.inbox.service import get_received
from services.evaluation.models import PriorAid
from services.evaluation.peers import IntakeDep
from shared.auth import Authenticator
from shared.db import SessionDep
from shared.domain.de_minimis import normalise_vat
from shared.errors import UNSUPPORTED_MEDIA, DeskError, ProblemError, ValidationFailed
from shared.i18n import pick_language
from shared.pagination import Page, PageDep, keyset, page_of
from shared.routing import ActorDep, Idempotent, UnitOfWorkRoute

router = APIRouter(
    prefix="/v1/de-minimis",
    tags=["de-minimis"],
    route_class=UnitOfWorkRoute,
    dependencies=[Depends(Authenticator(kinds=("officer", "auditor", "service"), scopes=("evaluation:read",)))],
)
officer = Depends(Authenticator(kinds=("officer",), scopes=("evaluation:write",)))

CSV_TYPES = ("text/csv", "application/csv", "text/plain", "application/vnd.ms-excel")
IMPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {
                "schema": {"type": "string"},
                "example": "CODICE_FISCALE_BENEFICIARIO;DATA_CONCESSIONE;ELEMENTO_DI_AIUTO;SOGGETTO_CONCEDENTE;"
                "REGOLAMENTO;COR\n01234567897;15/03/2024;12.500,00;Regione Lombardia;"
                "Reg. (UE) 2023/2831;1234567\n",
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
        },
    }
}


@router.post(
    "/aids",
    response_model=AidOut,
    status_code=201,
    summary="Record an aid granted to an undertaking",
    dependencies=[officer],
)
async def record_aid(body: AidIn, session: SessionDep, actor: ActorDep, _idem: Idempotent, response: Response) -> Any:
    aid = await service.record_aid(session=session, actor=actor, **body.model_dump())
    response.headers["Location"] = f"/v1/de-minimis/aids?vat_number={aid.vat_number}"
    return service.aid_out(aid)


async def _upload(request: Request) -> bytes:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await request.form()
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise ValidationFailed(
                errors=[
                    ProblemError(
                        "file_missing", "/file", "Manca il file (campo 'file').", "The file is missing (field 'file')."
                    )
                ]
            )
        return await file.read()
    if ctype in CSV_TYPES:
        return await request.body()
    raise DeskError(
        "Inviare il CSV come text/csv o multipart/form-data (campo 'file').",
        "Send the CSV as text/csv or as multipart/form-data (field 'file').",
        kind=UNSUPPORTED_MEDIA,
    )


@router.post(
    "/imports",
    response_model=ImportReport,
    summary="Import an export of the national state-aid register",
    dependencies=[officer],
    openapi_extra=IMPORT_BODY,
    description="A CSV export of the RNA (Registro nazionale degli aiuti di Stato), as text/csv or as the "
    "`file` of a multipart form. Columns by header (others ignored): CODICE_FISCALE_BENEFICIARIO "
    "(the partita IVA), DATA_CONCESSIONE (dd/mm/yyyy or yyyy-mm-dd), ELEMENTO_DI_AIUTO (alias "
    "IMPORTO_AIUTO; Italian decimal commas accepted), SOGGETTO_CONCEDENTE, REGOLAMENTO, COR. "
    "Separator ; or ,. All or nothing: any invalid row -> 422 listing every error with its line "
    "and column, nothing imported; with `skip_invalid=true` the valid rows are imported and the "
    "invalid ones reported. A COR already in the register is skipped and counted.",
)
async def import_aids(
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
    skip_invalid: Annotated[bool, Query(description="Import the valid rows, report the others.")] = False,
) -> Any:
    content = await _upload(request)
    report = await service.import_rna_csv(session=session, actor=actor, content=content, skip_invalid=skip_invalid)
    lang = pick_language(request.headers.get("accept-language"))
    report["errors"] = [
        {**e, "message": e["message_it"] if lang == "it" else e["message_en"]} for e in report["errors"]
    ]
    return report


@router.get(
    "/aids",
    response_model=Page[AidOut],
    summary="List the register's entries",
)
async def list_aids(
    session: SessionDep,
    page: PageDep,
    vat_number: Annotated[str | None, Query(max_length=13, description="Exact VAT number.")] = None,
) -> Any:
    stmt = keyset(
        repository.listing(vat_number=normalise_vat(vat_number) if vat_number else None),
        page,
        PriorAid.created_at,
        PriorAid.id,
    )
    return page_of(await repository.page(session, stmt), page, service.aid_out)


@router.get(
    "/undertakings/{vat_number}",
    response_model=UndertakingOut,
    summary="The single undertaking of a VAT number and its de minimis aid in the rolling period",
    description="The company registered at intake with this VAT number and its linked enterprises "
    "(related enterprises with relation `linked`), their entries in the register and, with "
    "`call_id`, the aid counted in the rolling period ending on `on` (default today) under that "
    "call's de minimis rules, with the headroom left and the computation.",
)
async def get_undertaking(
    vat_number: str,
    session: SessionDep,
    intake: IntakeDep,
    request: Request,
    on: date | None = None,
    call_id: uuid.UUID | None = None,
) -> Any:
    return await service.undertaking(
        session=session,
        intake=intake,
        vat_number=vat_number,
        on=on,
        call_id=call_id,
        lang=pick_language(request.headers.get("accept-language")),
    )


@router.get(
    "/applications/{application_id}",
    response_model=ComparisonOut,
    summary="Declared, RNA and desk aid of an application's single undertaking, side by side",
    description="For the officer: the aid the applicant declared (its self-declaration), the entries of the "
    "national state-aid register import (RNA), the officers' manual entries and the desk's own "
    "concessions, for the single undertaking, with totals in the rolling period ending on `on` "
    "(default today) under the application's call, what counts against the ceiling and the "
    "differences: declared but not in the RNA, in the RNA but not declared.",
)
async def compare_application(
    application_id: uuid.UUID, session: SessionDep, intake: IntakeDep, on: date | None = None
) -> Any:
    app = await get_received(session, application_id)
    return await service.comparison(session=session, intake=intake, app=app, on=on)
