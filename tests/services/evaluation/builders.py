"""Builders of evaluation data for tests that need no intake round trip: a received application (its snapshot
shaped like intake's ApplicationOut, from `tests.factories.draft_body`) and its evaluation row. Append yours."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation.models import Evaluation, ReceivedApplication
from shared.access import record_delegation
from shared.contracts.applications import ApplicationOut
from tests.factories import declare_stamp_duty, draft_body

_PROTOCOL = itertools.count(1)


def application_snapshot(
    application_id: uuid.UUID,
    call_id: uuid.UUID,
    company_id: uuid.UUID,
    *,
    partner_id: uuid.UUID | None = None,
    protocol_number: int = 1,
    submitted_at: datetime | None = None,
    **draft: Any,
) -> dict[str, Any]:
    """intake's ApplicationOut of a submitted `draft_body` application, as JSON (validated against the model)."""
    body = draft_body(call_id, company_id, **draft)
    now = submitted_at or datetime.now(UTC)
    snapshot = {
        **body,
        "id": str(application_id),
        "partner_id": str(partner_id) if partner_id else None,
        "status": "submitted",
        "protocol_number": protocol_number,
        "submitted_at": now.isoformat(),
        "withdrawn_at": None,
        "created_at": now.isoformat(),
        "updated_at": now.isoformat(),
        "etag": '"2"',
    }
    return ApplicationOut.model_validate(snapshot).model_dump(mode="json")


async def received_application(
    session: AsyncSession,
    *,
    call_id: uuid.UUID,
    company_id: uuid.UUID,
    partner_id: uuid.UUID | None = None,
    protocol_number: int | None = None,
    status: str = "received",
    **draft: Any,
) -> ReceivedApplication:
    """A submitted application as evaluation stores it on `application.submitted`. Its partner (if any) acts for
    the company: it holds the company's active delegation (shared.access), as when it submitted."""
    application_id = uuid.uuid4()
    number = protocol_number or next(_PROTOCOL)
    submitted_at = datetime.now(UTC)
    app = ReceivedApplication(
        application_id=application_id,
        call_id=call_id,
        company_id=company_id,
        protocol_number=number,
        submitted_at=submitted_at,
        status=status,
        version=1,
        partner_id=partner_id,
        snapshot=application_snapshot(
            application_id,
            call_id,
            company_id,
            partner_id=partner_id,
            protocol_number=number,
            submitted_at=submitted_at,
            **draft,
        ),
    )
    session.add(app)
    await session.flush()
    if partner_id is not None:
        await record_delegation(
            session, delegation_id=uuid.uuid4(), company_id=company_id, partner_id=partner_id, status="active"
        )
    return app


async def evaluation_of(
    session: AsyncSession, app: ReceivedApplication, *, stage: str = "admissible", **fields: Any
) -> Evaluation:
    """The application's evaluation row (by default admissible, as the admissibility step leaves it)."""
    values: dict[str, Any] = {
        "admissibility_verdict": "admissible" if stage == "admissible" else None,
        "admissibility_checks": [],
        "cuts": [],
        "version": 1,
    }
    values.update(fields)
    row = Evaluation(application_id=app.application_id, call_id=app.call_id, stage=stage, **values)
    session.add(row)
    await session.flush()
    return row


# ---------------------------------------------------------------- through intake's API (committed data)


async def submit_through_intake(
    engine: Any, intake_url: str, *, company: dict[str, Any] | None = None, draft: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Commit an open call, a partner, a company (`tests.factories.company_fields` updated with `company`) and
    the delegation; the partner creates the draft (`draft_body` updated with `draft`) and submits it through
    intake's API. Returns the receipt, the partner's headers and ids, the company and its VAT number."""
    import httpx

    from shared.db import make_sessionmaker
    from tests.conftest import make_token
    from tests.factories import delegate, make_company, make_partner, open_call

    async with make_sessionmaker(engine)() as s:
        call = await open_call(s)
        partner = await make_partner(s)
        firm = await make_company(s, **(company or {}))
        await delegate(s, partner, firm)
        headers = await make_token(s, "partner", partner_id=partner.id)
        await s.commit()
    async with httpx.AsyncClient(base_url=intake_url) as http:
        r = await http.post("/v1/applications", json=draft_body(call.id, firm.id, **(draft or {})), headers=headers)
        assert r.status_code == 201, r.text
        await declare_stamp_duty(http, r.json()["id"], headers)
        r = await http.post(f"/v1/applications/{r.json()['id']}/submit", headers=headers)
        assert r.status_code == 201, r.text
    receipt = r.json()["receipt"]
    return {
        "receipt": receipt,
        "application_id": receipt["application_id"],
        "call_id": str(call.id),
        "partner_headers": headers,
        "partner_id": partner.id,
        "company_id": firm.id,
        "vat_number": firm.vat_number,
    }


# ---------------------------------------------------------------- budget and decisions (no intake round trip)


def call_detail(
    call_id: uuid.UUID,
    *,
    budget_total: str,
    procedure: str = "first_come",
    partial_funding_of_last: bool = False,
    closes_at: datetime | None = None,
) -> Any:
    """intake's CallDetail of the seeded call's rules with this budget, procedure and partial-funding rule."""
    from decimal import Decimal

    from services.intake.calls.service import load_rules_file
    from shared.contracts.calls import CallDetail
    from tests.factories import CALL_FILE

    rules = load_rules_file(CALL_FILE).model_copy(
        update={
            "budget_total": Decimal(budget_total),
            "procedure": procedure,
            "partial_funding_of_last": partial_funding_of_last,
            "code": f"VNM-B-{call_id.hex[:8]}",
        }
    )
    window = {"opens_at": rules.window.opens_at, "closes_at": rules.window.closes_at}
    effective = {**window, "closes_at": closes_at} if closes_at is not None else window
    return CallDetail(
        id=call_id,
        code=rules.code,
        title=rules.title,
        procedure=procedure,
        current_version=1,
        budget_total=rules.budget_total,
        window=window,
        effective_window=effective,
        demo_window=closes_at is not None,
        status="open" if closes_at is not None and closes_at > datetime.now(UTC) else "closed",
        etag='"1"',
        rules=rules,
    )


class FakeIntake:
    """Stands in for evaluation's IntakeClient where only the call's rules are read (`get_call`)."""

    def __init__(self) -> None:
        self.calls: dict[uuid.UUID, Any] = {}
        self.get_call_count = 0
        self.vat_numbers: dict[uuid.UUID, str] = {}

    def add_call(self, call_id: uuid.UUID | None = None, **kw: Any) -> uuid.UUID:
        call_id = call_id or uuid.uuid4()
        self.calls[call_id] = call_detail(call_id, **kw)
        return call_id

    async def get_call(self, call_id: uuid.UUID) -> Any:
        from shared.clients.base import NotFoundAtPeer

        self.get_call_count += 1
        if call_id not in self.calls:
            raise NotFoundAtPeer("intake", 404, None)
        return self.calls[call_id]

    async def get_company(self, company_id: uuid.UUID) -> Any:
        """Every company is known, named after its id (what a published ranking shows), with its VAT number
        (one per company, made up on first read) and no related enterprises."""
        from types import SimpleNamespace

        from tests.factories import vat_number

        vat = self.vat_numbers.setdefault(company_id, vat_number())
        return SimpleNamespace(
            id=company_id, name=f"Impresa {str(company_id)[:8]} S.r.l.", vat_number=vat, related_enterprises=[]
        )


async def evaluated_application(
    session: AsyncSession,
    *,
    call_id: uuid.UUID,
    grant: str,
    loan: str,
    score: str | None = None,
    stage: str = "evaluated",
    company_id: uuid.UUID | None = None,
    partner_id: uuid.UUID | None = None,
    protocol_number: int | None = None,
    **fields: Any,
) -> ReceivedApplication:
    """A received application whose evaluation is over: stage "evaluated" with grant, loan (and score), as the
    budget takes it; pass stage="not_admissible" with `admissibility_checks` for one not admitted."""
    from decimal import Decimal

    app = await received_application(
        session,
        call_id=call_id,
        company_id=company_id or uuid.uuid4(),
        partner_id=partner_id,
        protocol_number=protocol_number,
    )
    values: dict[str, Any] = {
        "admissibility_verdict": "admissible" if stage == "evaluated" else stage,
        "grant": Decimal(grant),
        "loan": Decimal(loan),
        "score": Decimal(score) if score is not None else None,
        "eligible_total": Decimal("121980.00"),
    }
    values.update(fields)
    await evaluation_of(session, app, stage=stage, **values)
    return app


def failed_check(code: str = "export_share", article: str = "Art. 3") -> dict[str, Any]:
    return {
        "code": code,
        "outcome": "fail",
        "automatic_outcome": "fail",
        "article": article,
        "detail_it": f"Controllo {code} non superato.",
        "detail_en": f"Check {code} failed.",
        "review": None,
    }


async def approve_funding(client: Any, application_id: Any, proposer: dict[str, str], confirmer: dict[str, str]) -> Any:
    """Four-eyes approval through HTTP: one officer proposes (202), another confirms; returns the confirmation's
    response, or the proposal's if it was refused."""
    r = await client.post(f"/v1/fundings/{application_id}/approve", headers=proposer)
    if r.status_code != 202:
        return r
    return await client.post(f"/v1/fundings/{application_id}/confirm", headers=confirmer)
