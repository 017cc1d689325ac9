"""The networking results: intake's `meeting.outcome_recorded` (registered on the inbox at import) is kept once
per meeting, attached to the company's funded project when it has one (the running project, else the latest
completed), and counted in the project's results (`GET /v1/projects/{id}/kpis`, entry `b2b`) and in the B2B
statistics (`GET /v1/stats/b2b`: per event, market and outcome)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.inbox.registry import InboxContext, event_data, register_handler
from services.monitoring.models import B2bOutcome
from services.monitoring.networking import repository
from shared.events.catalogue import Envelope, MeetingOutcomeRecorded

log = structlog.get_logger("monitoring.networking")
_ZERO = Decimal("0.00")


async def on_outcome_recorded(ctx: InboxContext, event: Envelope) -> None:
    data = event_data(event, MeetingOutcomeRecorded)
    project = await repository.project_of_company(ctx.session, data.company_id)
    created = await repository.insert_outcome(
        ctx.session,
        {
            "meeting_id": data.meeting_id,
            "event_id": data.event_id,
            "event_title": data.event_title,
            "company_id": data.company_id,
            "operator_country": data.operator_country,
            "project_id": project.id if project else None,
            "application_id": project.application_id if project else None,
            "outcome": data.outcome,
            "contract_value": data.value,
            "market": data.market,
            "recorded_at": data.recorded_at,
        },
    )
    if created:
        log.info("b2b outcome kept", meeting_id=str(data.meeting_id), project_id=str(project.id) if project else None)


register_handler("meeting.outcome_recorded", on_outcome_recorded)


async def project_results(session: AsyncSession, project_id: uuid.UUID) -> dict[str, Any]:
    rows = await repository.outcomes_of_project(session, project_id)
    by_market: dict[str, list[Decimal]] = {}
    for r in rows:
        if r.outcome == "contract" and r.market is not None:
            by_market.setdefault(r.market, []).append(r.contract_value or _ZERO)
    contracts = [r for r in rows if r.outcome == "contract"]
    return {
        "meetings": len(rows),
        "no_follow_up": sum(r.outcome == "no_follow_up" for r in rows),
        "leads": sum(r.outcome == "lead" for r in rows),
        "offers": sum(r.outcome == "offer" for r in rows),
        "contracts": len(contracts),
        "contract_value": sum((r.contract_value or _ZERO for r in contracts), _ZERO),
        "by_market": [
            {"market": m, "contracts": len(v), "contract_value": sum(v, _ZERO)} for m, v in sorted(by_market.items())
        ],
    }


def _group(row: Any) -> dict[str, Any]:
    return {
        "meetings": row.meetings,
        "no_follow_up": row.no_follow_up,
        "leads": row.leads,
        "offers": row.offers,
        "contracts": row.contracts,
        "contract_value": Decimal(row.contract_value).quantize(Decimal("0.01")),
    }


async def stats(session: AsyncSession, *, event_id: uuid.UUID | None) -> dict[str, Any]:
    titles = await repository.event_titles(session)
    events = await repository.grouped(session, B2bOutcome.event_id, event_id=event_id)
    markets = await repository.grouped(
        session, func.coalesce(B2bOutcome.market, B2bOutcome.operator_country), event_id=event_id
    )
    outcomes = await repository.grouped(session, B2bOutcome.outcome, event_id=event_id)
    return {
        "by_event": [{"event_id": r.key, "event_title": titles.get(r.key, ""), **_group(r)} for r in events],
        "by_market": [{"market": r.key, **_group(r)} for r in markets],
        "by_outcome": [
            {"outcome": r.key, "meetings": r.meetings, "contract_value": _group(r)["contract_value"]} for r in outcomes
        ],
    }
