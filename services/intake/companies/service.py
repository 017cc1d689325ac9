"""Use cases on companies and delegations: register, read, replace; request, accept, revoke.

A company's SME size class is computed here with the pure rule of `shared.domain.sme` and stored,
so that later checks read one agreed value; it is recomputed on every replacement.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.companies import repository
from services.intake.companies.repository import DelegationView
from services.intake.companies.schemas import CompanyIn
from services.intake.models import Company, Delegation
from shared.access import record_delegation
from shared.audit import record_audit, record_event
from shared.auth import Principal
from shared.domain.sme import EnterpriseFigures, RelatedEnterprise, SizeClass, aggregate_figures, size_class
from shared.errors import ALREADY_EXISTS, Conflict, DeskError, Forbidden, NotFound, ProblemError, ValidationFailed
from shared.pagination import PageParams
from shared.routing import Actor, etag_of
from shared.schemas import LOMBARDY_PROVINCES

CENT = Decimal("0.01")


# ---------------------------------------------------------------- SME figures


def _own_and_related(
    headcount_awu: Decimal, turnover: Decimal, balance_sheet_total: Decimal, related: list[dict[str, Any]]
) -> tuple[EnterpriseFigures, list[RelatedEnterprise]]:
    own = EnterpriseFigures(headcount_awu=headcount_awu, turnover=turnover, balance_sheet_total=balance_sheet_total)
    others = [
        RelatedEnterprise(
            relation=r["relation"],
            share=Decimal(str(r["share"])),
            figures=EnterpriseFigures(
                headcount_awu=Decimal(str(r["headcount_awu"])),
                turnover=Decimal(str(r["turnover"])),
                balance_sheet_total=Decimal(str(r["balance_sheet_total"])),
            ),
        )
        for r in related
    ]
    return own, others


def _size_class_of(data: CompanyIn, related: list[dict[str, Any]]) -> SizeClass:
    return size_class(*_own_and_related(data.headcount_awu, data.turnover, data.balance_sheet_total, related))


def has_lombardy_site(registered_office: dict[str, Any], operating_sites: list[dict[str, Any]]) -> bool:
    return any(site.get("province") in LOMBARDY_PROVINCES for site in [registered_office, *operating_sites])


def to_out(company: Company) -> dict[str, Any]:
    agg = aggregate_figures(
        *_own_and_related(
            company.headcount_awu, company.turnover, company.balance_sheet_total, company.related_enterprises
        )
    )
    return {
        **_snapshot(company),
        "id": company.id,
        "has_lombardy_site": has_lombardy_site(company.registered_office, company.operating_sites),
        "aggregated_figures": {
            "headcount_awu": agg.headcount_awu.quantize(CENT, ROUND_HALF_UP),
            "turnover": agg.turnover.quantize(CENT, ROUND_HALF_UP),
            "balance_sheet_total": agg.balance_sheet_total.quantize(CENT, ROUND_HALF_UP),
        },
        "created_at": company.created_at,
        "updated_at": company.updated_at,
        "etag": etag_of(company.version),
    }


_FIELDS = (
    "vat_number",
    "fiscal_code",
    "legal_representative_fiscal_code",
    "name",
    "legal_form",
    "ateco_code",
    "registered_office",
    "operating_sites",
    "lombardy_site_commitment",
    "incorporation_date",
    "approved_financial_statements",
    "headcount_awu",
    "turnover",
    "balance_sheet_total",
    "previous_year_export_sales",
    "related_enterprises",
    "export_history",
    "size_class",
)


def _snapshot(company: Company) -> dict[str, Any]:
    return {f: getattr(company, f) for f in _FIELDS}


def _columns(data: CompanyIn) -> dict[str, Any]:
    """The request as column values: scalars typed, nested structures as JSON (decimals as strings)."""
    as_json = data.model_dump(
        mode="json", include={"registered_office", "operating_sites", "related_enterprises", "export_history"}
    )
    values = data.model_dump(exclude=set(as_json))
    values.update(as_json)
    values["size_class"] = _size_class_of(data, as_json["related_enterprises"])
    return values


# ---------------------------------------------------------------- companies


async def _acting_partner(session: AsyncSession, principal: Principal) -> tuple[uuid.UUID, str]:
    """The registered partner a partner client acts for (a client bound to no partner cannot act)."""
    name = await repository.get_partner_name(session, principal.partner_id) if principal.partner_id else None
    if principal.kind != "partner" or principal.partner_id is None or name is None:
        raise Forbidden(
            "Il client non è associato a un partner registrato.", "This client is not bound to a registered partner."
        )
    return principal.partner_id, name


def _duplicate_vat(vat_number: str) -> DeskError:
    return DeskError(
        f"L'impresa con partita IVA {vat_number} è già registrata: chiedi una delega (POST /v1/delegations).",
        f"The company with VAT number {vat_number} is already registered: request a delegation "
        "(POST /v1/delegations) instead.",
        kind=ALREADY_EXISTS,
    )


async def create_company(*, session: AsyncSession, actor: Actor, data: CompanyIn) -> Company | dict[str, Any]:
    """Register a company. A partner registering it gets an active delegation in the same transaction;
    an officer registers it with none; a company principal already exists and cannot register another.

    A partner registering a VAT number that is already registered gets a delegation request instead, and
    its answer (`request_delegation`): nothing about the existing company, which is asked to accept."""
    principal = actor.principal
    if principal.kind == "company":
        raise Forbidden(
            "La tua impresa è già registrata: aggiornala con PUT /v1/companies/{id}.",
            "Your company is already registered: update it with PUT /v1/companies/{id}.",
        )
    if principal.kind == "partner":
        await _acting_partner(session, principal)
    if await repository.get_by_vat(session, data.vat_number) is not None:
        return await _already_registered(session=session, actor=actor, vat_number=data.vat_number)
    company = Company(id=uuid.uuid4(), version=1, created_by=principal.client_id, **_columns(data))
    if not await repository.add_unique(session, company):  # a concurrent registration won
        return await _already_registered(session=session, actor=actor, vat_number=data.vat_number)
    await session.refresh(company)
    await record_audit(
        session,
        actor,
        action="company.registered",
        resource_type="company",
        resource_id=company.id,
        before=None,
        after=_snapshot(company),
    )
    if principal.kind == "partner" and principal.partner_id is not None:
        await _grant_delegation_at_registration(
            session=session, actor=actor, partner_id=principal.partner_id, company=company
        )
    return company


async def _already_registered(*, session: AsyncSession, actor: Actor, vat_number: str) -> dict[str, Any]:
    if actor.principal.kind != "partner":  # officers read every company: a plain conflict tells them nothing new
        raise _duplicate_vat(vat_number)
    return await request_delegation(session=session, actor=actor, vat_number=vat_number)


async def replace_company(*, session: AsyncSession, actor: Actor, company: Company, data: CompanyIn) -> Company:
    """Full replacement of the editable facts (If-Match checked by the caller); the VAT number is fixed."""
    if data.vat_number != company.vat_number:
        raise ValidationFailed(
            errors=[
                ProblemError(
                    "vat_number_immutable",
                    "/vat_number",
                    "La partita IVA non può cambiare: è l'identità dell'impresa.",
                    "The VAT number cannot change: it is the company's identity.",
                )
            ]
        )
    before = _snapshot(company)
    for field, value in _columns(data).items():
        setattr(company, field, value)
    company.version += 1
    company.updated_at = datetime.now(UTC)
    await session.flush()
    await record_audit(
        session,
        actor,
        action="company.updated",
        resource_type="company",
        resource_id=company.id,
        before=before,
        after=_snapshot(company),
    )
    return company


async def get_company(
    *, session: AsyncSession, principal: Principal, company_id: uuid.UUID, for_update: bool = False
) -> Company:
    company = await repository.get_reachable(session, principal, company_id, for_update=for_update)
    if company is None:
        raise NotFound()
    return company


async def list_companies(
    *, session: AsyncSession, principal: Principal, page: PageParams, vat_number: str | None = None
) -> list[Company]:
    if vat_number is not None:
        vat_number = vat_number.strip().upper().removeprefix("IT")
    return await repository.list_reachable(session, principal, page, vat_number=vat_number)


# ---------------------------------------------------------------- delegations


def delegation_to_out(view: DelegationView) -> dict[str, Any]:
    d = view.delegation
    return {
        "id": d.id,
        "partner_id": d.partner_id,
        "partner_name": view.partner_name,
        "company_id": d.company_id,
        "company_name": view.company_name,
        "company_vat_number": view.company_vat_number,
        "status": d.status,
        "created_at": d.created_at,
        "activated_at": d.activated_at,
        "revoked_at": d.revoked_at,
        "etag": etag_of(d.version),
    }


def _delegation_state(d: Delegation) -> dict[str, Any]:
    return {
        "status": d.status,
        "partner_id": d.partner_id,
        "company_id": d.company_id,
        "activated_at": d.activated_at,
        "revoked_at": d.revoked_at,
    }


async def _emit(session: AsyncSession, actor: Actor, d: Delegation, event_type: str) -> None:
    """Every change of a delegation, in its transaction: the shared access projection (who reaches the
    company from now on, in every service), the delegation's own event, and `company.delegation_changed`,
    from which evaluation and monitoring move their notifications to the company's current delegate.

    A delegation never active is the company's business only: its request and its refusal would tell the
    partner the company's id before the company agreed to it. The partner hears of it from activation on."""
    delegates = await record_delegation(
        session,
        delegation_id=d.id,
        company_id=d.company_id,
        partner_id=d.partner_id,
        status=d.status,
        at=d.revoked_at or d.activated_at or d.created_at,
    )
    told = d.partner_id if d.activated_at is not None else None
    await record_event(
        session,
        actor,
        event_type=event_type,
        subject_type="delegation",
        subject_id=d.id,
        payload={
            "delegation_id": str(d.id),
            "partner_id": str(d.partner_id),
            "company_id": str(d.company_id),
            "status": d.status,
        },
        partner_id=told,
        company_id=d.company_id,
    )
    await record_event(
        session,
        actor,
        event_type="company.delegation_changed",
        subject_type="company",
        subject_id=d.company_id,
        payload={
            "company_id": str(d.company_id),
            "delegation_id": str(d.id),
            "partner_id": str(d.partner_id),
            "status": d.status,
            "delegates": [str(p) for p in delegates],
        },
        partner_id=told,
        company_id=d.company_id,
    )


def _live_exists() -> DeskError:
    return DeskError(
        "Esiste già una delega in corso o attiva tra questo partner e questa impresa.",
        "A pending or active delegation between this partner and this company already exists.",
        kind=ALREADY_EXISTS,
    )


async def _insert_delegation(
    *, session: AsyncSession, actor: Actor, partner_id: uuid.UUID, company_id: uuid.UUID, status: str, event_type: str
) -> Delegation:
    now = datetime.now(UTC)
    d = Delegation(
        id=uuid.uuid4(),
        partner_id=partner_id,
        company_id=company_id,
        status=status,
        version=1,
        activated_at=now if status == "active" else None,
    )
    if not await repository.add_unique(session, d):  # uq_delegations_live: a concurrent twin won
        raise _live_exists()
    await session.refresh(d)
    await record_audit(
        session,
        actor,
        action=event_type,
        resource_type="delegation",
        resource_id=d.id,
        before=None,
        after=_delegation_state(d),
    )
    await _emit(session, actor, d, event_type)
    return d


async def _grant_delegation_at_registration(
    *, session: AsyncSession, actor: Actor, partner_id: uuid.UUID, company: Company
) -> Delegation:
    # The partner registering the company is the one assisting it: the delegation starts active.
    return await _insert_delegation(
        session=session,
        actor=actor,
        partner_id=partner_id,
        company_id=company.id,
        status="active",
        event_type="delegation.activated",
    )


def _request_answer(request_id: uuid.UUID, vat_number: str) -> dict[str, Any]:
    return {"id": request_id, "vat_number": vat_number, "status": "requested"}


async def request_delegation(*, session: AsyncSession, actor: Actor, vat_number: str) -> dict[str, Any]:
    """A partner asks the company with this VAT number for a delegation.

    The answer is the same whether or not such a company is registered (VAT numbers are public, the
    desk's list of companies is not): a request id and `requested`. When the company exists, a pending
    delegation is stored and the company is told (`delegation.requested`, to the company only); the
    partner sees the delegation, with the company's id and name, only once the company accepts it.
    A request that matches no company, or one already pending, is only written to the audit trail.
    """
    partner_id, _name = await _acting_partner(session, actor.principal)
    company = await repository.get_by_vat(session, vat_number)
    live = None if company is None else await repository.get_live_delegation(session, partner_id, company.id)
    if live is not None and live.status == "active":  # the partner reaches the company already
        raise _live_exists()
    if company is not None and live is None:
        d = Delegation(id=uuid.uuid4(), partner_id=partner_id, company_id=company.id, status="pending", version=1)
        if await repository.add_unique(session, d):  # else a concurrent twin request won: answered alike
            await record_audit(
                session,
                actor,
                action="delegation.requested",
                resource_type="delegation",
                resource_id=d.id,
                before=None,
                after=_delegation_state(d),
            )
            await _emit(session, actor, d, "delegation.requested")
            return _request_answer(d.id, vat_number)
    request_id = uuid.uuid4()
    # Kept for auditors: a partner probing VAT numbers leaves a trail of unmatched requests.
    await record_audit(
        session,
        actor,
        action="delegation.requested",
        resource_type="delegation_request",
        resource_id=request_id,
        before=None,
        after={
            "partner_id": partner_id,
            "vat_number": vat_number,
            "outcome": "unmatched" if company is None else "already_pending",
        },
    )
    return _request_answer(request_id, vat_number)


async def get_delegation(
    *, session: AsyncSession, principal: Principal, delegation_id: uuid.UUID, for_update: bool = False
) -> DelegationView:
    view = await repository.get_visible_delegation(session, principal, delegation_id, for_update=for_update)
    if view is None:
        raise NotFound()
    return view


async def list_delegations(
    *, session: AsyncSession, principal: Principal, page: PageParams, status: str | None = None
) -> list[DelegationView]:
    return await repository.list_visible_delegations(session, principal, page, status=status)


async def _transition(
    *,
    session: AsyncSession,
    actor: Actor,
    view: DelegationView,
    allowed_from: tuple[str, ...],
    to: str,
    event_type: str,
) -> DelegationView:
    d = view.delegation
    if d.status not in allowed_from:
        raise Conflict(
            f"La delega è nello stato '{d.status}': operazione non possibile.",
            f"The delegation is '{d.status}': this operation is not possible.",
            extra={"status": d.status},
        )
    before = _delegation_state(d)
    now = datetime.now(UTC)
    d.status = to
    if to == "active":
        d.activated_at = now
    if to == "revoked":
        d.revoked_at = now
    d.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action=event_type,
        resource_type="delegation",
        resource_id=d.id,
        before=before,
        after=_delegation_state(d),
    )
    await _emit(session, actor, d, event_type)
    return view


async def accept_delegation(*, session: AsyncSession, actor: Actor, view: DelegationView) -> DelegationView:
    """The company (or an officer) confirms a pending delegation: from now on the partner reaches the company."""
    return await _transition(
        session=session,
        actor=actor,
        view=view,
        allowed_from=("pending",),
        to="active",
        event_type="delegation.activated",
    )


async def revoke_delegation(*, session: AsyncSession, actor: Actor, view: DelegationView) -> DelegationView:
    """Either side (or an officer) ends a delegation: the partner loses sight of the company at once."""
    return await _transition(
        session=session,
        actor=actor,
        view=view,
        allowed_from=("pending", "active"),
        to="revoked",
        event_type="delegation.revoked",
    )
