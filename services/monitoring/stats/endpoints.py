"""Routes of the statistics (`/v1/stats` for officers, auditors and services; `/v1/public/stats` and its SVG
charts for anyone) and of the open data (`/v1/open-data/funded-projects.csv|.json`, no token)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from services.monitoring.charts import SVG_MEDIA_TYPE
from services.monitoring.networking import service as networking
from services.monitoring.networking.schemas import B2bStatsOut
from services.monitoring.peers import IntakeDep
from services.monitoring.stats import open_data, service
from services.monitoring.stats.schemas import GroupBy, PublicStatsOut, StatsOut
from shared.auth import Authenticator
from shared.db import SessionDep
from shared.errors import NotFound
from shared.routing import UnitOfWorkRoute

PUBLIC: dict[str, Any] = {"security": []}
CHARTS = ("funds-by-province", "applications-per-hour", "markets-targeted")

router = APIRouter(
    prefix="/v1/stats",
    tags=["stats"],
    route_class=UnitOfWorkRoute,
    dependencies=[Depends(Authenticator(kinds=("officer", "auditor", "service"), scopes=("monitoring:read",)))],
)
public_router = APIRouter(prefix="/v1/public/stats", tags=["public"], route_class=UnitOfWorkRoute)
open_data_router = APIRouter(prefix="/v1/open-data", tags=["open-data"], route_class=UnitOfWorkRoute)

CallId = Annotated[uuid.UUID, Query(description="The call.")]
GroupByQuery = Annotated[GroupBy | None, Query(description="The dimension of the groups; none: the totals only.")]


def _conditional(request: Request, body: bytes, media_type: str, *, max_age: int = 60) -> Response:
    """The body with a content ETag, or 304 when the client already holds it (`If-None-Match`)."""
    etag = open_data.etag_of_content(body)
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={max_age}"}
    if open_data.not_modified(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


@router.get(
    "",
    response_model=StatsOut,
    summary="Statistics of a call, grouped by one dimension",
    description="Per group: applications, admitted, funded, aid committed and paid, revoked, and the export "
    "growth of the beneficiaries (mean change of their foreign turnover share); for the call its "
    "budget against what is committed. Days and hours are Europe/Rome. A view is computed once "
    "and served again while fresh (`generated_at` says when): at most "
    "`MONITORING_STATS_CACHE_MIN_FRESH_SECONDS` old once the facts changed, at most "
    "`MONITORING_STATS_CACHE_SECONDS` in any case.",
)
async def get_stats(
    request: Request, session: SessionDep, intake: IntakeDep, call_id: CallId, group_by: GroupByQuery = None
) -> Any:
    view = await service.call_view(
        session=session, intake=intake, call_id=call_id, group_by=group_by, cache=service.stats_cache(request.app.state)
    )
    return Response(service.to_json(service.stats_out(view)), media_type="application/json")


@router.get(
    "/b2b",
    response_model=B2bStatsOut,
    summary="Statistics of networking with international operators",
    description="The outcomes of B2B meetings recorded at intake (`meeting.outcome_recorded`): meetings, "
    "no follow-up, leads, offers, contracts and contract value per event, per market (a contract's "
    "market; for other outcomes the operator's country) and per outcome. Optionally of one event.",
)
async def get_b2b_stats(
    session: SessionDep,
    event_id: Annotated[uuid.UUID | None, Query(description="Only the meetings of this B2B event.")] = None,
) -> Any:
    return await networking.stats(session, event_id=event_id)


@public_router.get(
    "",
    response_model=PublicStatsOut,
    summary="Public statistics of a call (aggregates only)",
    description="The same figures as `/v1/stats`, without a token. A group of fewer than three "
    "applications is not shown (nor, where the groups add up to the totals, the smallest "
    "others needed so the hidden ones cannot be recovered by subtraction); an export "
    "growth of fewer than three beneficiaries is null.",
    openapi_extra=PUBLIC,
)
async def get_public_stats(
    request: Request, session: SessionDep, intake: IntakeDep, call_id: CallId, group_by: GroupByQuery = None
) -> Any:
    view = await service.call_view(
        session=session, intake=intake, call_id=call_id, group_by=group_by, cache=service.stats_cache(request.app.state)
    )
    return Response(service.to_json(service.public_stats_out(view)), media_type="application/json")


@public_router.get(
    "/charts/{name}.svg",
    summary="A chart of a call's statistics (SVG)",
    response_class=Response,
    description="`funds-by-province` (aid committed per province, bars), `applications-per-hour` (applications per "
    "hour of the call's window, a line) or `markets-targeted` (applications per target market, the top "
    "20). The public view's suppression applies. `ETag` from the content; `If-None-Match` -> 304.",
    openapi_extra=PUBLIC,
    responses={
        200: {"content": {SVG_MEDIA_TYPE: {"schema": {"type": "string"}}}},
        304: {"description": "Not modified."},
    },
)
async def get_chart(name: str, request: Request, session: SessionDep, intake: IntakeDep, call_id: CallId) -> Response:
    if name not in CHARTS:
        raise NotFound(
            f"Grafico sconosciuto: {name} (disponibili: {', '.join(CHARTS)}).",
            f"Unknown chart: {name} (available: {', '.join(CHARTS)}).",
        )
    svg = await service.chart_svg(
        session=session, intake=intake, call_id=call_id, name=name, cache=service.stats_cache(request.app.state)
    )
    return _conditional(request, svg.encode("utf-8"), SVG_MEDIA_TYPE)


_OPEN_DATA_DESCRIPTION = (
    "The funded projects (revoked ones excluded), with 360Giving field names where they fit, plus the call's CUP, "
    "COR and decree number. No personal data: a sole proprietorship's name and VAT number are replaced by a "
    "pseudonymous identifier. Regenerated on every request; `ETag` is a hash of the content, so `If-None-Match` "
    "answers 304 while nothing changed."
)
CallFilter = Annotated[uuid.UUID | None, Query(description="Only this call's projects.")]


@open_data_router.get(
    "/funded-projects.csv",
    summary="Funded projects (CSV, RFC 4180)",
    response_class=Response,
    description=_OPEN_DATA_DESCRIPTION,
    openapi_extra=PUBLIC,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        304: {"description": "Not modified."},
    },
)
async def funded_projects_csv(
    request: Request, session: SessionDep, intake: IntakeDep, call_id: CallFilter = None
) -> Response:
    rows = await open_data.funded_project_rows(session=session, intake=intake, call_id=call_id)
    response = _conditional(request, open_data.to_csv(rows), "text/csv; charset=utf-8; header=present", max_age=300)
    response.headers["Content-Disposition"] = 'attachment; filename="funded-projects.csv"'
    return response


@open_data_router.get(
    "/funded-projects.json",
    summary="Funded projects (JSON, 360Giving shape)",
    response_class=Response,
    description=_OPEN_DATA_DESCRIPTION,
    openapi_extra=PUBLIC,
    responses={
        200: {"content": {"application/json": {"schema": {"type": "object"}}}},
        304: {"description": "Not modified."},
    },
)
async def funded_projects_json(
    request: Request, session: SessionDep, intake: IntakeDep, call_id: CallFilter = None
) -> Response:
    rows = await open_data.funded_project_rows(session=session, intake=intake, call_id=call_id)
    return _conditional(request, open_data.to_json(rows), "application/json", max_age=300)
