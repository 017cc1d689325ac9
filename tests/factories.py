"""Builders of test data: partners, companies, delegations and an open call, as committed rows.

Request bodies (a company, a complete draft) and valid VAT numbers come from services.intake.examples,
re-exported here so tests import them from one place."""

from __future__ import annotations

import secrets
import string
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession
from stdnum.it import codicefiscale

from services.intake.calls.service import load_rules_file
from services.intake.examples import company_body, draft_body, vat_number
from services.intake.models import Call, CallCounter, CallVersion, Company, Delegation, Partner
from shared.access import record_delegation
from shared.domain.receipts import GENESIS
from shared.settings import REPO_ROOT

CALL_FILE = REPO_ROOT / "calls" / "verso-nuovi-mercati-2025.yaml"
__all__ = [
    "CALL_FILE",
    "company_body",
    "company_fields",
    "delegate",
    "draft_body",
    "expert_body",
    "fiscal_code",
    "make_company",
    "make_partner",
    "open_call",
    "today",
    "vat_number",
]


async def make_partner(session: AsyncSession, **kw: Any) -> Partner:
    p = Partner(
        id=uuid.uuid4(),
        name=kw.get("name", "Camera di Commercio di Test"),
        kind=kw.get("kind", "chamber_of_commerce"),
        fiscal_code=vat_number(),
        email=None,
        version=1,
    )
    session.add(p)
    await session.flush()
    return p


def company_fields(**kw: Any) -> dict[str, Any]:
    """Column values of a company row (the example company's, as the API would store them)."""
    body = company_body(kw.pop("vat_number", None))
    fields: dict[str, Any] = {
        k: body[k]
        for k in (
            "vat_number",
            "fiscal_code",
            "name",
            "legal_form",
            "ateco_code",
            "registered_office",
            "operating_sites",
            "lombardy_site_commitment",
            "related_enterprises",
            "export_history",
            "approved_financial_statements",
        )
    }
    fields.update(
        incorporation_date=date.fromisoformat(body["incorporation_date"]),
        headcount_awu=Decimal(body["headcount_awu"]),
        turnover=Decimal(body["turnover"]),
        balance_sheet_total=Decimal(body["balance_sheet_total"]),
        previous_year_export_sales=Decimal(body["previous_year_export_sales"]),
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
    d = Delegation(
        id=uuid.uuid4(),
        partner_id=partner.id,
        company_id=company.id,
        status=status,
        version=1,
        activated_at=datetime.now(UTC) if status == "active" else None,
    )
    session.add(d)
    await session.flush()
    # as intake does in the delegation's transaction: the shared access rule reads this projection
    await record_delegation(session, delegation_id=d.id, company_id=company.id, partner_id=partner.id, status=status)
    return d


async def open_call(
    session: AsyncSession, *, code: str | None = None, opens_in: timedelta | None = None, days: int = 30
) -> Call:
    """The seeded call's rules with its window opened now (or later), under a unique code."""
    rules = load_rules_file(CALL_FILE)
    code = code or f"VNM-T-{uuid.uuid4().hex[:8]}"
    rules = rules.model_copy(update={"code": code})
    now = datetime.now(UTC)
    opens = now + (opens_in or timedelta(seconds=-60))
    call = Call(
        id=uuid.uuid4(),
        code=code,
        title=rules.title,
        procedure=rules.procedure,
        current_version=1,
        opens_at=rules.window.opens_at,
        closes_at=rules.window.closes_at,
        demo_opens_at=opens,
        demo_closes_at=opens + timedelta(days=days),
        budget_total=rules.budget_total,
        version=1,
    )
    session.add(call)
    await session.flush()
    session.add(CallVersion(call_id=call.id, version=1, rules=rules.model_dump(mode="json"), created_by="test"))
    session.add(CallCounter(call_id=call.id, last_protocol=0, last_chain_hash=GENESIS))
    await session.flush()
    return call


# ---------------------------------------------------------------- expert accompaniment

ROME = ZoneInfo("Europe/Rome")


def today() -> date:
    return datetime.now(ROME).date()


def fiscal_code() -> str:
    """A valid personal fiscal code, unique enough for a test run."""
    letters = "".join(secrets.choice(string.ascii_uppercase) for _ in range(6))
    base = f"{letters}80A01F205"
    return base + codicefiscale.calc_check_digit(base)


def expert_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "fiscal_code": fiscal_code(),
        "name": "Mario Rossi",
        "email": "m.rossi@example.it",
        "markets": ["VN", "BR"],
        "sectors": ["28"],
        "languages": ["en", "it"],
        "phases": ["design", "monitoring", "reporting"],
        "hours_per_month": "20.00",
        "accredited_from": (today() - timedelta(days=30)).isoformat(),
        "accredited_to": None,
    }
    body.update(over)
    return body


def stamp_duty_body() -> dict[str, str]:
    """A stamp duty (marca da bollo) with an identifier of its own: one identifier is never on two applications."""
    return {"identifier": f"{uuid.uuid4().int % 10**14:014d}", "issued_on": "2026-11-30"}


async def declare_stamp_duty(client: Any, application_id: Any, headers: dict[str, str]) -> None:
    """Declare a fresh stamp duty on a draft, as the call requires before its submit (unless it has one)."""
    if (await client.get(f"/v1/applications/{application_id}/stamp-duty", headers=headers)).status_code == 200:
        return
    r = await client.put(f"/v1/applications/{application_id}/stamp-duty", json=stamp_duty_body(), headers=headers)
    assert r.status_code == 200, r.text
