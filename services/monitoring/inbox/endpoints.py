"""Route of the inbox: `POST /v1/internal/events`, for the desk's services (the delivery worker) only."""

from __future__ import annotations

from services.monitoring.inbox import facts
from services.monitoring.inbox.registry import INBOX
from services.monitoring.networking import service as networking_service
from services.monitoring.peers import intake_client
from services.monitoring.projects import service as projects_service
from services.monitoring.stats import service as stats_service

# The consuming packages register their handlers when imported.
_REGISTERED = (facts, projects_service, stats_service, networking_service)

internal_router = INBOX.router(
    intake_dependency=intake_client,
    description="The delivery worker posts each event envelope here (Standard Webhooks headers, service token). "
    "Idempotent on the event id: a redelivery answers 200 `duplicate` and changes nothing. "
    "`decision.accepted` starts the project (deadline, approved budget, timeline, KPIs) and orders "
    "the advance; `application.submitted`, `application.withdrawn`, "
    "`evaluation.admissibility_completed`, `decision.issued`, `decision.accepted` and "
    "`decision.renounced` keep the application facts of the statistics; `company.delegation_changed` "
    "moves the company's projects to its current delegate for notifications; `call.amended` makes the "
    "statistics read the call's version in force; `meeting.outcome_recorded` adds a B2B meeting's "
    "outcome to the company's project results and the B2B statistics. Other types are recorded and "
    "ignored (202). If intake is unreachable the answer is 503 and nothing is kept, so the worker retries.",
)
