"""Builders of monitoring data for tests that need no event round trip: projects and payments as rows, the
`decision.accepted` envelope evaluation emits, the worker's way of posting an event, and the peers on loopback.
Append yours."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.models import Payment, Project
from shared.access import record_delegation
from shared.auth import DEFAULT_SCOPES, mint_token
from shared.events.catalogue import noun, subject_href
from shared.events.signing import new_webhook_secret, sign_headers
from tests.conftest import KEYRING

VALID_IBAN = "IT60X0542811101000000123456"
OTHER_VALID_IBAN = "IT42L1234512345123456789012"


def random_cup() -> str:
    return ("J" + uuid.uuid4().hex.upper())[:15]


async def make_project(
    session: AsyncSession,
    *,
    call_id: uuid.UUID | None = None,
    company_id: uuid.UUID | None = None,
    partner_id: uuid.UUID | None = None,
    application_id: uuid.UUID | None = None,
    grant: str = "20000.00",
    loan: str = "65000.00",
    eligible_total: str = "100000.00",
    decree_date: date | None = None,
    deadline: date | None = None,
    iban: str | None = None,
    status: str = "active",
    lombardy_site_verified: bool = True,
    years: int = 6,
    **kw: Any,
) -> Project:
    """A project as `decision.accepted` leaves it (the seeded call's loan terms: 1.5 %, 12 months' grace). Its
    partner (if any) acts for the company: it holds the company's active delegation (shared.access)."""
    decree = decree_date or date.today()
    p = Project(
        id=uuid.uuid4(),
        application_id=application_id or uuid.uuid4(),
        decision_id=uuid.uuid4(),
        call_id=call_id or uuid.uuid4(),
        company_id=company_id or uuid.uuid4(),
        partner_id=partner_id,
        cup=kw.pop("cup", random_cup()),
        cor=kw.pop("cor", "COR-123456"),
        decree_number=kw.pop("decree_number", "D-1"),
        decree_date=decree,
        status=status,
        grant=Decimal(grant),
        loan=Decimal(loan),
        eligible_total=Decimal(eligible_total),
        approved_budget=[{"dimension": "category", "category": "b", "kind": "direct", "amount": eligible_total}],
        timeline={
            "start_date": None,
            "end_date": None,
            "milestones": [],
            "loan_terms": {"annual_rate": "0.015", "years": years, "grace_months": 12, "periods_per_year": 2},
        },
        kpis=[],
        start_date=decree - timedelta(days=30),
        deadline=deadline or decree + timedelta(days=548),
        extension_granted=False,
        lombardy_site_verified=lombardy_site_verified,
        iban=iban,
        version=1,
        **kw,
    )
    session.add(p)
    await session.flush()
    if partner_id is not None:
        await record_delegation(
            session, delegation_id=uuid.uuid4(), company_id=p.company_id, partner_id=partner_id, status="active"
        )
    return p


async def make_payment(
    session: AsyncSession,
    project: Project,
    *,
    kind: str = "advance",
    amount: str = "8000.00",
    status: str = "ordered",
    iban: str | None = None,
) -> Payment:
    p = Payment(
        id=uuid.uuid4(),
        project_id=project.id,
        kind=kind,
        amount=Decimal(amount),
        iban=iban if iban is not None else project.iban,
        status=status,
        version=1,
        created_by="test",
        paid_at=datetime.now(UTC) if status == "paid" else None,
    )
    session.add(p)
    await session.flush()
    return p


def service_headers() -> dict[str, str]:
    token = mint_token(
        KEYRING,
        sub="desk-worker",
        kind="service",
        scopes=list(DEFAULT_SCOPES["service"]),
        issuer="regional-desk",
        ttl=600,
    )
    return {"Authorization": f"Bearer {token}"}


def subject(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """The subject the publisher writes: the object its type's noun names (`decision.accepted`: the decision),
    found in the data as `<noun>_id` (an evaluation or a funding: the application's id)."""
    kind = noun(event_type)
    sid = str(data.get(f"{kind}_id") or data.get("application_id") or uuid.uuid4())
    return {"type": kind, "id": sid, "href": subject_href(kind, sid)}


def envelope(event_type: str, data: dict[str, Any], *, source: str = "evaluation", event_id: str | None = None) -> str:
    return orjson.dumps(
        {
            "id": event_id or str(uuid.uuid4()),
            "type": event_type,
            "version": 1,
            "source": source,
            "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "subject": subject(event_type, data),
            "data": data,
        }
    ).decode()


async def deliver(client: Any, body: str, headers: dict[str, str] | None = None) -> Any:
    """POST as the delivery worker does: Standard Webhooks headers (webhook-id = event id) and a service token."""
    event_id = orjson.loads(body)["id"]
    hdrs = sign_headers(msg_id=event_id, at=datetime.now(UTC), body=body, secrets_=[new_webhook_secret()])
    hdrs["content-type"] = "application/json"
    hdrs.update(service_headers() if headers is None else headers)
    return await client.post("/v1/internal/events", content=body, headers=hdrs)


def decision_accepted(
    *,
    application_id: str,
    call_id: str,
    company_id: str,
    partner_id: str | None,
    grant: str = "24396.37",
    loan: str = "79288.21",
    eligible_total: str = "121980.00",
    decree_date: str = "2026-01-31",
    cup: str | None = None,
    loan_years: int | None = 5,
    decision_id: str | None = None,
) -> dict[str, Any]:
    """The data of `decision.accepted` as evaluation emits it (shared.events.catalogue.DecisionAccepted)."""
    return {
        "decision_id": decision_id or str(uuid.uuid4()),
        "application_id": application_id,
        "call_id": call_id,
        "company_id": company_id,
        "partner_id": partner_id,
        "protocol_number": 1,
        "outcome": "funded",
        "grant": grant,
        "loan": loan,
        "loan_gge": "1234.56",
        "decree_id": str(uuid.uuid4()),
        "decree_number": "DDUO 1234",
        "decree_date": decree_date,
        "cup": cup or random_cup(),
        "cor": "COR-998877",
        "accepted_at": datetime.now(UTC).isoformat(),
        "approved_budget": {
            "eligible_total": eligible_total,
            "by_category": [
                {"category": "a", "kind": "direct", "amount": "10000.00"},
                {"category": "b", "kind": "direct", "amount": "80000.00"},
                {"category": "c", "kind": "direct", "amount": "5000.00"},
                {"category": "d", "kind": "flat_rate", "amount": "19000.00"},
                {"category": "e", "kind": "flat_rate", "amount": "7980.00"},
            ],
            "by_market": [
                {"country": "BR", "amount": "35000.00"},
                {"country": "VN", "amount": "45000.00"},
                {"country": None, "amount": "15000.00"},
            ],
        },
        "action_plan": {},
        "funding": {"loan_years": loan_years} if loan_years else None,
    }


# ---------------------------------------------------------------- results, statistics and open data


async def with_plan(
    session: AsyncSession,
    project: Project,
    *,
    milestones: list[tuple[str, date]] | None = None,
    kpis: list[dict[str, str]] | None = None,
) -> Project:
    """Give a project the milestones and KPIs of its action plan (as `decision.accepted` copies them)."""
    timeline = dict(project.timeline)
    timeline["milestones"] = [{"title": t, "due_date": d.isoformat()} for t, d in (milestones or [])]
    project.timeline = timeline
    project.kpis = kpis or []
    await session.flush()
    return project


async def make_fact(
    session: AsyncSession,
    *,
    call_id: uuid.UUID,
    province: str | None = "MI",
    ateco_section: str | None = "C",
    size_class: str | None = "small",
    markets: list[str] | None = None,
    submitted_at: datetime | None = None,
    admitted: bool = False,
    funded: bool = False,
    committed: str = "0.00",
    paid: str = "0.00",
    revoked: bool = False,
    baseline: str | None = None,
    latest: str | None = None,
    status: str = "submitted",
    company_id: uuid.UUID | None = None,
    application_id: uuid.UUID | None = None,
) -> Any:
    """An application fact as the inbox leaves it (monitoring.application_facts)."""
    from services.monitoring.models import ApplicationFact

    fact = ApplicationFact(
        application_id=application_id or uuid.uuid4(),
        call_id=call_id,
        company_id=company_id or uuid.uuid4(),
        province=province,
        ateco_section=ateco_section,
        size_class=size_class,
        markets=markets or [],
        submitted_at=submitted_at or datetime.now(UTC),
        requested_aid=Decimal("100000.00"),
        status=status,
        admitted=admitted,
        funded=funded,
        committed=Decimal(committed),
        paid=Decimal(paid),
        revoked=revoked,
        foreign_share_baseline=Decimal(baseline) if baseline is not None else None,
        foreign_share_latest=Decimal(latest) if latest is not None else None,
    )
    session.add(fact)
    await session.flush()
    return fact


async def make_claim_line(
    session: AsyncSession,
    project: Project,
    *,
    amount: str = "1000.00",
    category: str = "b",
    market: str | None = "VN",
    claim_id: uuid.UUID | None = None,
) -> Any:
    """One expense line of a (new, draft) claim of the project."""
    from services.monitoring.models import Claim, ClaimLine

    if claim_id is None:
        claim = Claim(
            id=uuid.uuid4(), project_id=project.id, kind="intermediate", status="draft", version=1, created_by="test"
        )
        session.add(claim)
        await session.flush()
        claim_id = claim.id
    line = ClaimLine(
        id=uuid.uuid4(),
        claim_id=claim_id,
        project_id=project.id,
        kind="invoice",
        supplier_vat="01234567897",
        document_number=f"F-{uuid.uuid4().hex[:10]}",
        issue_date=date.today(),
        taxable_amount=Decimal(amount),
        category=category,
        market=market,
    )
    session.add(line)
    await session.flush()
    return line


class FakeIntake:
    """Stands in for monitoring's IntakeClient where statistics and open data read intake: `get_call` (the seeded
    call's rules with a budget), `get_application` (title) and `get_company` (name, VAT, legal form, sites)."""

    def __init__(self) -> None:
        self.calls: dict[uuid.UUID, Any] = {}
        self.applications: dict[uuid.UUID, Any] = {}
        self.companies: dict[uuid.UUID, Any] = {}

    def add_call(
        self,
        call_id: uuid.UUID | None = None,
        *,
        budget_total: str = "1000000.00",
        opens_at: datetime | None = None,
        closes_at: datetime | None = None,
    ) -> uuid.UUID:
        from tests.services.evaluation.builders import call_detail

        call_id = call_id or uuid.uuid4()
        detail = call_detail(call_id, budget_total=budget_total)
        if opens_at is not None and closes_at is not None:
            window = {"opens_at": opens_at, "closes_at": closes_at}
            detail = detail.model_copy(update={"effective_window": detail.effective_window.model_copy(update=window)})
        self.calls[call_id] = detail
        return call_id

    def add_application(self, application_id: uuid.UUID, title: str) -> None:
        from types import SimpleNamespace

        self.applications[application_id] = SimpleNamespace(id=application_id, title=title)

    def add_company(
        self,
        company_id: uuid.UUID,
        *,
        name: str,
        vat_number: str,
        legal_form: str = "srl",
        province: str = "MI",
        site_province: str | None = None,
    ) -> None:
        from types import SimpleNamespace

        def site(p: str) -> Any:
            return SimpleNamespace(address="Via Privata 1", municipality="Comune", postal_code="20100", province=p)

        self.companies[company_id] = SimpleNamespace(
            id=company_id,
            name=name,
            vat_number=vat_number,
            legal_form=legal_form,
            registered_office=site(province),
            operating_sites=[site(site_province)] if site_province else [],
            fiscal_code="RSSMRA80A01F205X",
        )

    async def get_call(self, call_id: uuid.UUID) -> Any:
        return self._get(self.calls, call_id)

    async def get_application(self, application_id: uuid.UUID) -> Any:
        return self._get(self.applications, application_id)

    async def get_company(self, company_id: uuid.UUID) -> Any:
        return self._get(self.companies, company_id)

    @staticmethod
    def _get(store: dict[uuid.UUID, Any], key: uuid.UUID) -> Any:
        from shared.clients.base import NotFoundAtPeer

        if key not in store:
            raise NotFoundAtPeer("intake", 404, None)
        return store[key]
