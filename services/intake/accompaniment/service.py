"""Use cases of expert accompaniment: the roster of accredited experts (officers), their API clients, the
companies' requests (partners, companies), the proposals ranked by fit, the assignment (officers), the expert's
confirmation or decline and its sessions (the expert's client), the company's rating, and the officers' figures.
Only the intake service writes `intake.experts`, `intake.engagements` and `intake.accompaniment_sessions`.

Months and days are the Europe/Rome calendar's: an expert's monthly capacity counts the hours of the sessions
held in the month.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.accompaniment import repository
from services.intake.accompaniment.schemas import (
    AssignmentIn,
    EngagementIn,
    EngagementOut,
    ExpertIn,
    ExpertOut,
    RatingIn,
    SessionIn,
    SessionOut,
)
from services.intake.calls.service import rules_of_version
from services.intake.clients import service as clients
from services.intake.models import AccompanimentSession, Application, Call, Engagement, Expert
from shared.access import acting_partner, notified_partner
from shared.audit import record_audit, record_event
from shared.auth import Principal, create_client
from shared.db import found
from shared.domain import accompaniment as rules
from shared.errors import ALREADY_EXISTS, Conflict, DeskError, NotFound, ProblemError, ValidationFailed
from shared.models import ApiClient
from shared.pagination import PageParams
from shared.routing import Actor, etag_of

ROME = ZoneInfo("Europe/Rome")
_EDITABLE = (
    "fiscal_code",
    "vat_number",
    "name",
    "email",
    "markets",
    "sectors",
    "languages",
    "phases",
    "hours_per_month",
    "accredited_from",
    "accredited_to",
)
_CENT = Decimal("0.01")


def today() -> date:
    return datetime.now(ROME).date()


# ---------------------------------------------------------------- representations


def expert_out(e: Expert) -> ExpertOut:
    day = today()
    return ExpertOut(
        id=e.id,
        fiscal_code=e.fiscal_code,
        vat_number=e.vat_number,
        name=e.name,
        email=e.email,
        markets=list(e.markets),
        sectors=list(e.sectors),
        languages=list(e.languages),
        phases=list(e.phases),
        hours_per_month=e.hours_per_month,
        accredited_from=e.accredited_from,
        accredited_to=e.accredited_to,
        accredited_today=e.accredited_from <= day and (e.accredited_to is None or day <= e.accredited_to),
        client_id=e.client_id,
        created_at=e.created_at,
        etag=etag_of(e.version),
    )


def engagement_out(g: Engagement) -> EngagementOut:
    return EngagementOut(
        id=g.id,
        company_id=g.company_id,
        application_id=g.application_id,
        call_id=g.call_id,
        phase=g.phase,
        markets=list(g.markets),
        sector=g.sector,
        language=g.language,
        drafting_consultant=g.drafting_consultant,
        declared_conflicts=list(g.declared_conflicts),
        notes=g.notes,
        status=g.status,
        expert_id=g.expert_id,
        declined_by=list(g.declined_by),
        assigned_at=g.assigned_at,
        confirmed_at=g.confirmed_at,
        hours_logged=g.hours_logged,
        sessions_count=g.sessions_count,
        rating=g.rating,
        rating_comment=g.rating_comment,
        rated_at=g.rated_at,
        created_at=g.created_at,
        etag=etag_of(g.version),
    )


def session_out(s: AccompanimentSession) -> SessionOut:
    return SessionOut.model_validate(s)


def _expert_snapshot(e: Expert) -> dict[str, Any]:
    return {f: getattr(e, f) for f in (*_EDITABLE, "client_id", "version")}


def _engagement_snapshot(g: Engagement) -> dict[str, Any]:
    return {
        "status": g.status,
        "expert_id": g.expert_id,
        "declined_by": list(g.declined_by),
        "hours_logged": g.hours_logged,
        "sessions_count": g.sessions_count,
        "rating": g.rating,
        "version": g.version,
    }


def _event_payload(g: Engagement, **extra: Any) -> dict[str, Any]:
    # Events travel to partner webhooks: identifiers and figures, no personal data of the expert.
    return {
        "engagement_id": g.id,
        "company_id": g.company_id,
        "application_id": g.application_id,
        "call_id": g.call_id,
        "phase": g.phase,
        "status": g.status,
        "expert_id": g.expert_id,
        "hours_logged": g.hours_logged,
        **extra,
    }


async def _emit(session: AsyncSession, actor: Actor, event_type: str, g: Engagement, **extra: Any) -> None:
    """Notify the company's partner (outbox, in the change's transaction): the one acting, else the one that
    asked while it still acts for the company, else the company's current delegate."""
    partner = acting_partner(actor.principal) or await notified_partner(session, g.company_id, g.partner_id)
    await record_event(
        session,
        actor,
        event_type=event_type,
        subject_type="engagement",
        subject_id=g.id,
        payload=_event_payload(g, **extra),
        partner_id=partner,
        company_id=g.company_id,
    )


# ---------------------------------------------------------------- roster


def _fiscal_code_taken() -> DeskError:
    return DeskError(
        "Un esperto con questo codice fiscale è già nell'albo.",
        "An expert with this fiscal code is already on the roster.",
        kind=ALREADY_EXISTS,
    )


async def get_expert(session: AsyncSession, expert_id: uuid.UUID, *, for_update: bool = False) -> Expert:
    return found(await repository.get_expert(session, expert_id, for_update=for_update))


async def list_experts(
    *, session: AsyncSession, page: PageParams, phase: str | None, market: str | None, accredited: bool
) -> list[Expert]:
    return await repository.list_experts(
        session, page, phase=phase, market=market, accredited_on=today() if accredited else None
    )


async def create_expert(*, session: AsyncSession, actor: Actor, data: ExpertIn) -> Expert:
    expert = await repository.insert_expert(
        session, {"id": uuid.uuid4(), "version": 1, **data.model_dump(include=set(_EDITABLE))}
    )
    if expert is None:
        raise _fiscal_code_taken()
    await record_audit(
        session,
        actor,
        action="expert.created",
        resource_type="expert",
        resource_id=expert.id,
        after=_expert_snapshot(expert),
    )
    return expert


async def update_expert(*, session: AsyncSession, actor: Actor, expert: Expert, data: ExpertIn) -> Expert:
    """Replace an expert's entry; `expert` is locked by the caller."""
    if await repository.fiscal_code_taken(session, data.fiscal_code, other_than=expert.id):
        raise _fiscal_code_taken()
    before = _expert_snapshot(expert)
    for name, value in data.model_dump(include=set(_EDITABLE)).items():
        setattr(expert, name, value)
    expert.version += 1
    expert.updated_at = datetime.now(UTC)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:  # another replacement took the same fiscal code at the same moment
        raise _fiscal_code_taken() from None
    await record_audit(
        session,
        actor,
        action="expert.updated",
        resource_type="expert",
        resource_id=expert.id,
        before=before,
        after=_expert_snapshot(expert),
    )
    return expert


async def delete_expert(*, session: AsyncSession, actor: Actor, expert: Expert) -> None:
    """Remove an expert never engaged, revoking its API client; one with an engagement stays on the roster (end
    its accreditation)."""
    if await repository.expert_has_engagements(session, expert.id):
        raise Conflict(
            "L'esperto ha incarichi: non si cancella, si chiude l'accreditamento (accredited_to).",
            "The expert has engagements: it is not deleted; end its accreditation instead (accredited_to).",
        )
    if expert.client_id is not None:
        # its credentials go with it
        client = await clients.get(session=session, principal=actor.principal, client_id=expert.client_id, lock=True)
        if clients.status_of(client) == "active":
            await clients.revoke(session=session, actor=actor, client=client, reason="Expert removed from the roster")
    before = _expert_snapshot(expert)
    await session.delete(expert)
    await session.flush()
    await record_audit(
        session, actor, action="expert.deleted", resource_type="expert", resource_id=expert.id, before=before
    )


async def issue_client(*, session: AsyncSession, actor: Actor, expert: Expert) -> tuple[ApiClient, str]:
    """The expert's API client (kind `expert`, scope `intake:accompaniment`); the secret is returned once. An
    expert holds one live client: revoke it (`/v1/clients/{id}/revoke`) before issuing another."""
    if expert.client_id is not None:
        current = await clients.get(session=session, principal=actor.principal, client_id=expert.client_id)
        if clients.status_of(current) == "active":
            raise Conflict(
                "L'esperto ha già un client attivo: revocalo prima di crearne un altro.",
                "The expert already holds an active client: revoke it before issuing another.",
                extra={"client_id": expert.client_id},
            )
    client, secret = await create_client(session, kind="expert", name=f"Expert {expert.name}"[:200])
    await session.refresh(client)
    before = _expert_snapshot(expert)
    expert.client_id = client.client_id
    expert.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="expert.client_issued",
        resource_type="expert",
        resource_id=expert.id,
        before=before,
        after=_expert_snapshot(expert),
    )
    return client, secret


# ---------------------------------------------------------------- engagements


async def request(*, session: AsyncSession, actor: Actor, data: EngagementIn) -> Engagement:
    principal = actor.principal
    application = await repository.get_application(session, principal, data.application_id)
    if application is None:
        raise NotFound("Domanda non trovata.", "Application not found.")
    company = await repository.get_company(session, application.company_id)
    assert company is not None
    call = await session.get(Call, application.call_id)
    assert call is not None
    call_rules = await rules_of_version(session, call.id, application.call_version or call.current_version)
    if call_rules.accompaniment is None:
        raise Conflict(
            "Il bando non prevede l'accompagnamento di esperti.",
            "The call offers no expert accompaniment.",
            extra={"reason": "no_accompaniment"},
        )
    markets = [m["country"] for m in (application.action_plan or {}).get("target_markets", []) if m.get("country")]
    g = Engagement(
        id=uuid.uuid4(),
        company_id=company.id,
        application_id=application.id,
        call_id=call.id,
        partner_id=acting_partner(principal),
        phase=data.phase,
        markets=list(dict.fromkeys(markets)),
        sector=company.ateco_code,
        language=data.language,
        drafting_consultant=data.drafting_consultant.upper() if data.drafting_consultant else None,
        declared_conflicts=[c.upper() for c in data.declared_conflicts],
        notes=data.notes,
        status="requested",
        declined_by=[],
        hours_logged=Decimal("0.00"),
        sessions_count=0,
        version=1,
        created_by=principal.client_id,
    )
    session.add(g)
    await session.flush()
    await session.refresh(g)
    await record_audit(
        session,
        actor,
        action="engagement.requested",
        resource_type="engagement",
        resource_id=g.id,
        after=_engagement_snapshot(g),
    )
    await _emit(session, actor, "engagement.requested", g)
    return g


async def get_engagement(
    session: AsyncSession, principal: Principal, engagement_id: uuid.UUID, *, for_update: bool = False
) -> Engagement:
    return found(await repository.get_engagement(session, principal, engagement_id, for_update=for_update))


async def list_engagements(
    *,
    session: AsyncSession,
    principal: Principal,
    page: PageParams,
    company_id: uuid.UUID | None,
    expert_id: uuid.UUID | None,
    status: str | None,
) -> list[Engagement]:
    return await repository.list_engagements(
        session, principal, page, company_id=company_id, expert_id=expert_id, status=status
    )


async def _need(session: AsyncSession, g: Engagement) -> rules.Need:
    return rules.Need(
        phase=g.phase,
        markets=tuple(g.markets),
        sector=g.sector,
        language=g.language,
        suppliers=tuple(await repository.suppliers(session, g.application_id)),
        drafting_consultant=g.drafting_consultant,
        declared_conflicts=tuple(g.declared_conflicts),
        declined_by=frozenset(g.declined_by),
    )


async def _facts(session: AsyncSession, experts: list[Expert], day: date) -> list[rules.ExpertFacts]:
    first, nxt = rules.month_of(day)
    hours = await repository.hours_in_month(session, [e.id for e in experts], first, nxt)
    return [
        rules.ExpertFacts(
            id=e.id,
            fiscal_code=e.fiscal_code,
            vat_number=e.vat_number,
            markets=tuple(e.markets),
            sectors=tuple(e.sectors),
            languages=tuple(e.languages),
            phases=tuple(e.phases),
            hours_per_month=e.hours_per_month,
            hours_this_month=hours.get(e.id, Decimal("0.00")),
            accredited_from=e.accredited_from,
            accredited_to=e.accredited_to,
        )
        for e in experts
    ]


async def proposals(*, session: AsyncSession, principal: Principal, g: Engagement) -> dict[str, Any]:
    day = today()
    experts = await repository.all_experts_for_phase(session, g.phase)
    names = {e.id: e.name for e in experts}
    facts = await _facts(session, experts, day)
    need = await _need(session, g)
    ranked = rules.proposals(facts, need, day)
    excluded = []
    if principal.kind in ("officer", "auditor", "service"):
        for f in facts:
            reasons = rules.conflicts(f, need)
            if reasons and rules.accredited_on(f, day):
                excluded.append({"expert_id": f.id, "reasons": reasons})
    return {
        "engagement_id": g.id,
        "proposals": [
            {
                "expert_id": e.id,
                "name": names[e.id],
                "score": fit.score,
                "market_points": fit.market_points,
                "sector_points": fit.sector_points,
                "language_points": fit.language_points,
                "availability_points": fit.availability_points,
                "markets_covered": list(fit.markets_covered),
                "hours_left_this_month": fit.hours_left,
            }
            for e, fit in ranked
        ],
        "excluded_for_conflict": excluded,
    }


def _refusal(reason: str, it: str, en: str, **extra: Any) -> Conflict:
    return Conflict(it, en, extra={"reason": reason, **extra})


async def assign(*, session: AsyncSession, actor: Actor, g: Engagement, data: AssignmentIn) -> Engagement:
    """Assign an expert to a requested engagement (`g` locked by the caller). Refused (409, naming the reason) for
    an expert not accredited today, not competent for the phase, in a conflict with the company, who declined
    this engagement, or with no hours left this month."""
    if g.status != "requested":
        raise _refusal(
            "not_requested",
            "L'incarico non è in attesa di assegnazione.",
            "The engagement is not waiting for an assignment.",
            status=g.status,
        )
    expert = await repository.get_expert(session, data.expert_id)
    if expert is None:
        raise ValidationFailed(
            errors=[ProblemError("expert_not_found", "/expert_id", "Esperto inesistente.", "No such expert.")]
        )
    day = today()
    (facts,) = await _facts(session, [expert], day)
    need = await _need(session, g)
    if not rules.accredited_on(facts, day):
        raise _refusal("not_accredited", "L'esperto non è accreditato oggi.", "The expert is not accredited today.")
    if g.phase not in facts.phases:
        raise _refusal(
            "phase_not_covered",
            "L'esperto non segue questa fase del piano.",
            "The expert does not cover this phase of the plan.",
        )
    reasons = rules.conflicts(facts, need)
    if reasons:
        raise _refusal(
            "conflict",
            "L'esperto è in conflitto con l'impresa: " + ", ".join(reasons) + ".",
            "The expert has a conflict with the company: " + ", ".join(reasons) + ".",
            conflicts=reasons,
        )
    if expert.id in g.declined_by:
        raise _refusal(
            "declined", "L'esperto ha già rifiutato questo incarico.", "The expert already declined this engagement."
        )
    left = rules.hours_left(facts)
    if left <= 0:
        raise _refusal(
            "over_capacity",
            f"L'esperto ha esaurito le {facts.hours_per_month} ore disponibili questo mese.",
            f"The expert has used up its {facts.hours_per_month} available hours this month.",
            hours_per_month=str(facts.hours_per_month),
            hours_this_month=str(facts.hours_this_month),
        )
    before = _engagement_snapshot(g)
    g.status = "assigned"
    g.expert_id = expert.id
    g.assigned_at = datetime.now(UTC)
    g.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="engagement.assigned",
        resource_type="engagement",
        resource_id=g.id,
        before=before,
        after=_engagement_snapshot(g),
    )
    await _emit(session, actor, "engagement.assigned", g)
    return g


async def answer(*, session: AsyncSession, actor: Actor, g: Engagement, confirm: bool) -> Engagement:
    """The assigned expert confirms the engagement, or declines it (back to `requested`, never proposed again
    for it). `g` is locked by the caller and readable only by its expert."""
    if g.status != "assigned":
        raise _refusal(
            "not_assigned",
            "L'incarico non attende la conferma dell'esperto.",
            "The engagement is not waiting for the expert's confirmation.",
            status=g.status,
        )
    before = _engagement_snapshot(g)
    if confirm:
        g.status = "confirmed"
        g.confirmed_at = datetime.now(UTC)
        event = "engagement.confirmed"
    else:
        assert g.expert_id is not None
        g.declined_by = [*g.declined_by, g.expert_id]
        g.status = "requested"
        g.expert_id = None
        g.assigned_at = None
        event = "engagement.declined"
    g.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action=event,
        resource_type="engagement",
        resource_id=g.id,
        before=before,
        after=_engagement_snapshot(g),
    )
    await _emit(session, actor, event, g)
    return g


async def engagement_for_session(session: AsyncSession, principal: Principal, engagement_id: uuid.UUID) -> Engagement:
    """The expert's engagement with its company's and expert's rows locked, in the repository's lock order."""
    g = await get_engagement(session, principal, engagement_id)
    await repository.lock_company(session, g.company_id)
    if g.expert_id is not None:
        await repository.get_expert(session, g.expert_id, for_update=True)
    return await get_engagement(session, principal, engagement_id, for_update=True)


async def log_session(
    *, session: AsyncSession, actor: Actor, g: Engagement, data: SessionIn
) -> tuple[AccompanimentSession, Engagement]:
    """Log a session of a confirmed engagement. The caller holds the company's, the expert's and the
    engagement's locks (`engagement_for_session`), so the call's hours per company and the expert's hours per
    month are checked against everything committed before."""
    if g.status != "confirmed" or g.expert_id is None:
        raise _refusal(
            "not_confirmed",
            "Si registrano sessioni solo di un incarico confermato.",
            "Sessions are logged only for a confirmed engagement.",
            status=g.status,
        )
    day = today()
    if data.held_on > day:
        raise ValidationFailed(
            errors=[
                ProblemError(
                    "date_future",
                    "/held_on",
                    "La sessione non può essere nel futuro.",
                    "The session cannot be in the future.",
                )
            ]
        )
    call_rules = await rules_of_version(session, g.call_id, await _call_version(session, g))
    cap = call_rules.accompaniment.max_hours_per_company if call_rules.accompaniment else Decimal(0)
    used = await repository.company_hours(session, g.company_id, g.call_id)
    if used + data.hours > cap:
        raise _refusal(
            "company_cap",
            f"Supererebbe il massimo di {cap} ore di accompagnamento per impresa del bando ({used} già usate).",
            f"It would exceed the call's {cap} hours of accompaniment per company ({used} already used).",
            max_hours_per_company=str(cap),
            hours_used=str(used),
        )
    expert = await repository.get_expert(session, g.expert_id)
    assert expert is not None
    (facts,) = await _facts(session, [expert], data.held_on)
    if facts.hours_this_month + data.hours > facts.hours_per_month:
        raise _refusal(
            "over_capacity",
            f"Supererebbe le {facts.hours_per_month} ore mensili dell'esperto ({facts.hours_this_month} già usate).",
            f"It would exceed the expert's {facts.hours_per_month} hours a month "
            f"({facts.hours_this_month} already used).",
            hours_per_month=str(facts.hours_per_month),
            hours_this_month=str(facts.hours_this_month),
        )
    row = AccompanimentSession(
        id=uuid.uuid4(),
        engagement_id=g.id,
        expert_id=g.expert_id,
        company_id=g.company_id,
        call_id=g.call_id,
        held_on=data.held_on,
        hours=data.hours,
        topics=data.topics,
        outcome_notes=data.outcome_notes,
        next_steps=data.next_steps,
        created_by=actor.principal.client_id,
    )
    session.add(row)
    before = _engagement_snapshot(g)
    g.hours_logged += data.hours
    g.sessions_count += 1
    g.version += 1
    await session.flush()
    await session.refresh(row)
    await record_audit(
        session,
        actor,
        action="engagement.session_logged",
        resource_type="engagement",
        resource_id=g.id,
        before=before,
        after={**_engagement_snapshot(g), "session_id": row.id, "hours": row.hours},
    )
    await _emit(session, actor, "engagement.session_logged", g, session_id=row.id, held_on=row.held_on, hours=row.hours)
    return row, g


async def _call_version(session: AsyncSession, g: Engagement) -> int:
    application = await session.get(Application, g.application_id)
    call = await session.get(Call, g.call_id)
    assert application is not None and call is not None
    return application.call_version or call.current_version


async def list_sessions(*, session: AsyncSession, g: Engagement, page: PageParams) -> list[AccompanimentSession]:
    return await repository.list_sessions(session, g.id, page)


async def rate(*, session: AsyncSession, actor: Actor, g: Engagement, data: RatingIn) -> Engagement:
    """The company (or its partner) rates the engagement once, after its first session (`g` locked)."""
    if g.rating is not None:
        raise DeskError(
            "L'incarico è già stato valutato.", "The engagement has already been rated.", kind=ALREADY_EXISTS
        )
    if g.sessions_count == 0:
        raise _refusal(
            "no_sessions",
            "Si valuta un incarico dopo la sua prima sessione.",
            "An engagement is rated after its first session.",
        )
    before = _engagement_snapshot(g)
    g.rating = data.rating
    g.rating_comment = data.comment
    g.rated_at = datetime.now(UTC)
    g.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="engagement.rated",
        resource_type="engagement",
        resource_id=g.id,
        before=before,
        after=_engagement_snapshot(g),
    )
    await _emit(session, actor, "engagement.rated", g, rating=g.rating)
    return g


# ---------------------------------------------------------------- officers' figures


async def stats(*, session: AsyncSession) -> dict[str, Any]:
    day = today()
    first, nxt = rules.month_of(day)
    experts = await repository.all_experts(session)
    hours = await repository.hours_in_month(session, [e.id for e in experts], first, nxt)
    active = await repository.active_engagements_per_expert(session)
    load = []
    for e in experts:
        used = hours.get(e.id, Decimal("0.00"))
        load.append(
            {
                "expert_id": e.id,
                "name": e.name,
                "hours_per_month": e.hours_per_month,
                "hours_this_month": used,
                "hours_left": max(e.hours_per_month - used, Decimal("0.00")),
                "engagements": active.get(e.id, 0),
            }
        )
    companies = []
    caps: dict[uuid.UUID, Decimal | None] = {}
    for company_id, call_id, h in await repository.hours_per_company(session):
        if call_id not in caps:
            call = await session.get(Call, call_id)
            assert call is not None
            r = await rules_of_version(session, call_id, call.current_version)
            caps[call_id] = r.accompaniment.max_hours_per_company if r.accompaniment else None
        companies.append({"company_id": company_id, "call_id": call_id, "hours": h, "max_hours": caps[call_id]})
    return {
        "month": f"{first:%Y-%m}",
        "experts": load,
        "companies": companies,
        "by_phase": [
            {
                "phase": phase,
                "engagements": n,
                "hours": h.quantize(_CENT),
                "average_rating": None if avg is None else avg.quantize(_CENT, ROUND_HALF_UP),
            }
            for phase, n, h, avg in await repository.figures_by_phase(session)
        ],
        "by_market": [
            {"market": m, "engagements": n, "hours": h.quantize(_CENT)}
            for m, n, h in await repository.figures_by_market(session)
        ],
    }
