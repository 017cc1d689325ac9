"""Builders of test data: valid Italian identifiers, partners, companies, delegations, an open call,
and a complete "Verso Nuovi Mercati" draft that passes every check."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from stdnum import luhn

from services.intake.calls.service import load_rules_file
from services.intake.models import Call, CallCounter, CallVersion, Company, Delegation, Partner
from shared.domain.receipts import GENESIS
from shared.settings import REPO_ROOT

CALL_FILE = REPO_ROOT / "calls" / "verso-nuovi-mercati-2025.yaml"


def vat_number() -> str:
    # digits 8-10 are the provincial office code: 001-100 are valid
    body = f"{random.randrange(10**7):07d}{random.randint(1, 100):03d}"
    return body + luhn.calc_check_digit(body)


async def make_partner(session: AsyncSession, **kw: Any) -> Partner:
    p = Partner(id=uuid.uuid4(), name=kw.get("name", "Camera di Commercio di Test"),
                kind=kw.get("kind", "chamber_of_commerce"), fiscal_code=vat_number(), email=None, version=1)
    session.add(p)
    await session.flush()
    return p


def company_fields(**kw: Any) -> dict[str, Any]:
    vat = kw.pop("vat_number", None) or vat_number()
    fields: dict[str, Any] = dict(
        vat_number=vat, fiscal_code=vat, name="Meccanica Lombarda S.r.l.", legal_form="srl", ateco_code="28.29.30",
        registered_office={"address": "Via Roma 1", "municipality": "Bergamo", "postal_code": "24121",
                           "province": "BG"},
        operating_sites=[], lombardy_site_commitment=False, incorporation_date=date(2015, 3, 1),
        approved_financial_statements=3, headcount_awu=Decimal("25"), turnover=Decimal("5000000.00"),
        balance_sheet_total=Decimal("4000000.00"), previous_year_export_sales=Decimal("1000000.00"),
        related_enterprises=[],
        export_history=[{"year": date.today().year - 1, "country": "DE", "amount": "600000.00"},
                        {"year": date.today().year - 1, "country": "FR", "amount": "400000.00"}],
        size_class="small",
    )
    fields.update(kw)
    return fields


async def make_company(session: AsyncSession, **kw: Any) -> Company:
    c = Company(id=uuid.uuid4(), version=1, created_by="test", **company_fields(**kw))
    session.add(c)
    await session.flush()
    return c


async def delegate(session: AsyncSession, partner: Partner, company: Company, status: str = "active") -> Delegation:
    d = Delegation(id=uuid.uuid4(), partner_id=partner.id, company_id=company.id, status=status, version=1,
                   activated_at=datetime.now(UTC) if status == "active" else None)
    session.add(d)
    await session.flush()
    return d


async def open_call(session: AsyncSession, *, code: str | None = None, opens_in: timedelta | None = None,
                    days: int = 30) -> Call:
    """The seeded call's rules with its window opened now (or later), under a unique code."""
    rules = load_rules_file(CALL_FILE)
    code = code or f"VNM-T-{uuid.uuid4().hex[:8]}"
    rules = rules.model_copy(update={"code": code})
    now = datetime.now(UTC)
    opens = now + (opens_in or timedelta(seconds=-60))
    call = Call(id=uuid.uuid4(), code=code, title=rules.title, procedure=rules.procedure, current_version=1,
                opens_at=rules.window.opens_at, closes_at=rules.window.closes_at, demo_opens_at=opens,
                demo_closes_at=opens + timedelta(days=days), budget_total=rules.budget_total, version=1)
    session.add(call)
    await session.flush()
    session.add(CallVersion(call_id=call.id, version=1, rules=rules.model_dump(mode="json"), created_by="test"))
    session.add(CallCounter(call_id=call.id, last_protocol=0, last_chain_hash=GENESIS))
    await session.flush()
    return call


def draft_body(call_id: uuid.UUID, company_id: uuid.UUID, **kw: Any) -> dict[str, Any]:
    """A complete draft: eligible total 121,980.00 -> grant 24,396.00 and loan 79,287.00."""
    start = date.today() + timedelta(days=30)
    end = start + timedelta(days=365)
    body: dict[str, Any] = {
        "call_id": str(call_id), "company_id": str(company_id),
        "title": "Nuovi mercati in Vietnam e Brasile",
        "action_plan": {
            "objectives": "Aprire due mercati extra-UE con distributori locali.",
            "starting_point": "Esportiamo solo in Germania e Francia (20% del fatturato).",
            "strategy": "Fiere, showroom virtuale, certificazioni locali, formazione export manager.",
            "resources": "Export manager, consulente, budget marketing.",
            "target_markets": [
                {"country": "VN", "analysis": "Domanda crescente di macchinari.", "risks": "Dazi; cambio."},
                {"country": "BR", "analysis": "Mercato ampio nel settore alimentare.", "risks": "Burocrazia."},
            ],
            "start_date": start.isoformat(), "end_date": end.isoformat(),
            "milestones": [{"title": "Fiera a Ho Chi Minh", "due_date": (start + timedelta(days=120)).isoformat()},
                           {"title": "Primo distributore in Brasile",
                            "due_date": (start + timedelta(days=300)).isoformat()}],
            "kpis": [{"name": "Quota fatturato estero", "baseline": "20.00", "target": "30.00", "unit": "%"},
                     {"name": "Nuovi clienti esteri", "baseline": "0.00", "target": "8.00", "unit": "clienti"}],
        },
        "expense_lines": [
            {"category": "a", "description": "Consulenza per il piano di azione", "amount": "10000.00",
             "target_market": None, "supplier": "Studio Export Srl"},
            {"category": "b", "description": "Fiera Vietnam Manufacturing Expo", "amount": "45000.00",
             "target_market": "VN", "supplier": None},
            {"category": "b", "description": "Showroom virtuale e campagna Brasile", "amount": "35000.00",
             "target_market": "BR", "supplier": None},
            {"category": "c", "description": "Formazione export manager", "amount": "5000.00",
             "target_market": None, "supplier": None},
        ],
        "flat_rates": ["d", "e"],
        "network": None,
    }
    body.update(kw)
    return body
