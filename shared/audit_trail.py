"""Routes of /v1/audit, mounted on every service: read, export and verify the hash-chained audit trail.

The records of every service sit in `desk.audit_log` (a `service` column, one chain per service), so
each service answers for all of them. Officers and auditors only (scope `audit:read`). Nothing here
writes: records are linked into their chain by the database trigger `desk.audit_link` (migration 0013),
and `shared.audit_chain` verifies them exactly as an auditor does offline on an export.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from shared.audit_chain import EXPORT_FORMAT, ChainVerifier, parse_record
from shared.auth import Authenticator
from shared.db import SessionDep
from shared.errors import ProblemError, ValidationFailed
from shared.models import AuditChain, AuditRecord
from shared.pagination import Page, SeqPageDep, encode_seq_cursor
from shared.routing import UnitOfWorkRoute
from shared.schemas import BIGINT_MAX

EXPORT_MAX = 10_000  # records per export; a longer range is exported in several
VERIFY_BATCH = 2_000
NDJSON = "application/x-ndjson"

router = APIRouter(
    prefix="/v1/audit",
    tags=["audit"],
    route_class=UnitOfWorkRoute,
    dependencies=[Depends(Authenticator(kinds=("officer", "auditor"), scopes=("audit:read",)))],
)

SERVICE_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"  # a chain is named after the service that wrote it
ServiceQuery = Annotated[
    str | None,
    Query(
        max_length=32,
        pattern=SERVICE_PATTERN,
        description="The chain: the service that wrote the records (intake, evaluation, monitoring, desk-cli). "
        "Default: this service.",
    ),
]
FromSeq = Annotated[int, Query(ge=1, le=BIGINT_MAX, description="First seq of the range (default 1).")]
ToSeq = Annotated[
    int | None, Query(ge=1, le=BIGINT_MAX, description="Last seq of the range (default: the chain's head).")
]


class AuditRecordOut(BaseModel):
    id: int
    service: str
    seq: int | None = Field(
        description="Position in the service's chain: 1, 2, 3... without gaps. Set when the "
        "writing transaction commits, as `prev_hash` and `hash`."
    )
    at: datetime
    request_id: str | None
    principal_kind: str
    principal_client_id: str
    action: str
    resource_type: str
    resource_id: str
    before: Any = None
    after: Any = None
    prev_hash: str | None = Field(description="`hash` of the previous record of the chain (64 zeros for the first).")
    hash: str | None = Field(description="SHA-256 (hex) of the record's canonical form: see the README, Audit trail.")


class AuditFailure(BaseModel):
    seq: int | None = Field(description="The first record that does not hold (or the missing one's seq).")
    id: int | None
    reason: str = Field(
        description="seq_gap, prev_hash_mismatch, hash_mismatch, service_mismatch, malformed, "
        "missing_tail or head_mismatch."
    )


class AuditVerification(BaseModel):
    service: str
    ok: bool
    from_seq: int
    to_seq: int | None = Field(description="Last seq checked against (the head when not given).")
    records: int = Field(description="Records verified before the failure, or all of them.")
    head_seq: int
    head_hash: str
    last_hash: str | None = Field(description="Hash of the last record verified: keep it as the next export's anchor.")
    failure: AuditFailure | None


def _record_out(r: AuditRecord) -> AuditRecordOut:
    return AuditRecordOut.model_validate(r, from_attributes=True)


@router.get(
    "",
    response_model=Page[AuditRecordOut],
    summary="The audit trail: the history of a resource",
    description="Records in the order they were written (`id`), filtered by resource and/or chain.",
)
async def list_audit_records(
    session: SessionDep,
    page: SeqPageDep,
    resource_type: Annotated[str | None, Query(max_length=64, description="e.g. application, project.")] = None,
    resource_id: Annotated[str | None, Query(max_length=64)] = None,
    service: Annotated[
        str | None, Query(max_length=32, pattern=SERVICE_PATTERN, description="Only this service's records.")
    ] = None,
) -> Any:
    stmt = select(AuditRecord)
    if resource_type is not None:
        stmt = stmt.where(AuditRecord.resource_type == resource_type)
    if resource_id is not None:
        stmt = stmt.where(AuditRecord.resource_id == resource_id)
    if service is not None:
        stmt = stmt.where(AuditRecord.service == service)
    if page.after is not None:
        stmt = stmt.where(AuditRecord.id > page.after)
    rows = list((await session.scalars(stmt.order_by(AuditRecord.id).limit(page.limit + 1))).all())
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    return {
        "items": [_record_out(r) for r in rows],
        "next_cursor": encode_seq_cursor(rows[-1].id) if more and rows else None,
    }


# One record as a line of the export: the fields the canonical form covers, with `at` already in its canonical
# text and `before`/`after` in PostgreSQL's jsonb text, so the offline verifier hashes what the trigger hashed.
_LINES = text(
    "SELECT json_build_object('seq', seq, 'id', id, 'service', service,"
    " 'at', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), 'request_id', request_id,"
    " 'principal_kind', principal_kind, 'principal_client_id', principal_client_id, 'action', action,"
    " 'resource_type', resource_type, 'resource_id', resource_id, 'before', before, 'after', after,"
    " 'prev_hash', prev_hash, 'hash', hash)::text AS line"
    " FROM desk.audit_log WHERE service = :service AND seq BETWEEN :lo AND :hi ORDER BY seq"
)


async def _head(session: AsyncSession, service: str) -> tuple[int, str]:
    head = await session.get(AuditChain, service)
    return (head.last_seq, head.last_hash) if head is not None else (0, "0" * 64)


def _range_error(message_it: str, message_en: str) -> ValidationFailed:
    return ValidationFailed(errors=[ProblemError("range_invalid", "/to_seq", message_it, message_en, location="query")])


@router.get(
    "/export",
    summary="Export a range of one service's chain for offline verification",
    description="JSON Lines: a header (`format`, `service`, `from_seq`, `to_seq`, `head_seq`, `head_hash`), "
    f"then one record per line in seq order. At most {EXPORT_MAX} records per export. Verify with "
    "`desk audit-verify FILE` or the standalone `shared/audit_chain.py` (README, Audit trail).",
    response_class=Response,
    responses={200: {"content": {NDJSON: {"schema": {"type": "string"}}}}},
)
async def export_audit_records(
    session: SessionDep, request: Request, service: ServiceQuery = None, from_seq: FromSeq = 1, to_seq: ToSeq = None
) -> Response:
    chain = service or request.app.state.settings.service_name
    head_seq, head_hash = await _head(session, chain)
    last = min(to_seq if to_seq is not None else head_seq, head_seq)
    if to_seq is not None and to_seq < from_seq:
        raise _range_error("to_seq precede from_seq.", "to_seq is before from_seq.")
    if last - from_seq + 1 > EXPORT_MAX:
        raise _range_error(
            f"Al massimo {EXPORT_MAX} record per esportazione.", f"At most {EXPORT_MAX} records per export."
        )
    header = {
        "format": EXPORT_FORMAT,
        "service": chain,
        "from_seq": from_seq,
        "to_seq": last,
        "head_seq": head_seq,
        "head_hash": head_hash,
    }
    rows = (await session.execute(_LINES, {"service": chain, "lo": from_seq, "hi": last})).scalars().all()
    body = "\n".join([orjson.dumps(header).decode(), *rows]) + "\n"
    return Response(
        body,
        media_type=NDJSON,
        headers={"Content-Disposition": f'attachment; filename="audit-{chain}-{from_seq}-{last}.jsonl"'},
    )


@router.get(
    "/verify",
    response_model=AuditVerification,
    summary="Verify a range of one service's chain",
    description="Recomputes every record's hash and link, as the offline verifier does on an export, and "
    "answers ok or the first record that does not hold. Without `to_seq` the range ends at the "
    "chain's head, so a deleted last record shows too.",
)
async def verify_audit_chain(
    session: SessionDep, request: Request, service: ServiceQuery = None, from_seq: FromSeq = 1, to_seq: ToSeq = None
) -> Any:
    chain = service or request.app.state.settings.service_name
    if to_seq is not None and to_seq < from_seq:
        raise _range_error("to_seq precede from_seq.", "to_seq is before from_seq.")
    head_seq, head_hash = await _head(session, chain)
    last = min(to_seq, head_seq) if to_seq is not None else head_seq
    verifier = ChainVerifier(service=chain, from_seq=from_seq)
    lo = from_seq
    while lo <= last and verifier.failure is None:
        hi = min(lo + VERIFY_BATCH - 1, last)
        for line in (await session.execute(_LINES, {"service": chain, "lo": lo, "hi": hi})).scalars():
            if verifier.feed(parse_record(line)) is not None:
                break
        lo = hi + 1
    verdict = verifier.finish(head_seq=last, head_hash=head_hash if last == head_seq else None)
    failure = verdict.failure
    return AuditVerification(
        service=chain,
        ok=verdict.ok,
        from_seq=from_seq,
        to_seq=last,
        records=verdict.records,
        head_seq=head_seq,
        head_hash=head_hash,
        last_hash=verdict.last_hash,
        failure=AuditFailure(seq=failure.seq, id=failure.id, reason=failure.reason) if failure else None,
    )
