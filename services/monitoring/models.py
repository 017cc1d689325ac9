"""Tables of the `monitoring` schema. Only the monitoring service writes them.

Projects start from an accepted decision (event); claims (rendicontazione) and their lines and
evidence, payments, KPI and milestone reports follow them. `application_facts` is monitoring's
read model of every application of every call (fed by intake's and evaluation's events), the
base of the statistics and of the open data.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base, Money, created_now, uuid_pk
from shared.events.inbox import InboxRecord

SCHEMA = "monitoring"


class InboxEvent(InboxRecord, Base):
    """Events received from other services (shared.events.inbox), kept by id so a redelivery is recognised."""

    __tablename__ = "inbox"
    __table_args__ = {"schema": SCHEMA}


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (
        Index(None, "call_id", "status"),
        Index(None, "company_id"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    application_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    decision_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    call_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    company_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    partner_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    cup: Mapped[str | None] = mapped_column(String(15), unique=True)
    cor: Mapped[str | None] = mapped_column(String(32))
    decree_number: Mapped[str] = mapped_column(String(40))
    decree_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    grant: Mapped[Decimal] = mapped_column(Money)
    loan: Mapped[Decimal] = mapped_column(Money)
    eligible_total: Mapped[Decimal] = mapped_column(Money)
    approved_budget: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    timeline: Mapped[dict[str, Any]] = mapped_column(JSONB)
    kpis: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    start_date: Mapped[date] = mapped_column(Date)
    deadline: Mapped[date] = mapped_column(Date)
    extension_granted: Mapped[bool] = mapped_column(Boolean, default=False)
    lombardy_site_verified: Mapped[bool] = mapped_column(Boolean, default=True)
    iban: Mapped[str | None] = mapped_column(String(34))
    # Who holds the account, as declared with the IBAN and checked against the company's VAT number / fiscal code.
    iban_holder_name: Mapped[str | None] = mapped_column(String(200))
    iban_holder_tax_code: Mapped[str | None] = mapped_column(String(16))
    final_grant: Mapped[Decimal | None] = mapped_column(Money)
    final_loan: Mapped[Decimal | None] = mapped_column(Money)
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = created_now()
    updated_at: Mapped[datetime] = created_now()


class Payment(Base):
    """A payment order to the treasury (advance, balance) or a recovery order after a revocation."""

    __tablename__ = "payments"
    __table_args__ = (
        # One live advance and one live balance per project, whatever the retries.
        Index(
            "uq_payments_one_live_per_kind",
            "project_id",
            "kind",
            unique=True,
            postgresql_where=text("status IN ('ordered', 'paid')"),
        ),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.projects.id"))
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(Money)
    iban: Mapped[str | None] = mapped_column(String(34))
    status: Mapped[str] = mapped_column(String(16))
    ordered_at: Mapped[datetime] = created_now()
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_reason: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(64))


class IbanChange(Base):
    """A change of the project's account: applied at once (`applied`), or, when a partner asks for it while a
    payment is ordered and not yet paid, `pending` until the company or an officer confirms or rejects it (a later
    direct change leaves it `superseded`). At most one pending change per project."""

    __tablename__ = "iban_changes"
    __table_args__ = (
        Index("uq_iban_changes_one_pending", "project_id", unique=True, postgresql_where=text("status = 'pending'")),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.projects.id"))
    iban: Mapped[str] = mapped_column(String(34))
    holder_name: Mapped[str] = mapped_column(String(200))
    holder_tax_code: Mapped[str] = mapped_column(String(16))
    previous_iban: Mapped[str | None] = mapped_column(String(34))
    status: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_by_kind: Mapped[str] = mapped_column(String(16))
    requested_at: Mapped[datetime] = created_now()
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)


class Claim(Base):
    """An expense claim (rendicontazione): intermediate or final."""

    __tablename__ = "claims"
    __table_args__ = (
        Index(None, "project_id"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.projects.id"))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(20))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_total: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    recognised_total: Mapped[Decimal | None] = mapped_column(Money)
    review: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = created_now()


class ClaimLine(Base):
    """One invoice or payslip of a claim. The same invoice can be claimed only once, across all projects
    and calls: a partial unique index on its identity among the lines not rejected."""

    __tablename__ = "claim_lines"
    __table_args__ = (
        Index(
            "uq_claim_lines_invoice_once",
            "supplier_vat",
            "document_number",
            "issue_date",
            unique=True,
            postgresql_where=text("outcome <> 'rejected'"),
        ),
        Index(None, "claim_id"),
        Index(None, "project_id", "category", "market"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    claim_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.claims.id"))
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.projects.id"))
    kind: Mapped[str] = mapped_column(String(16))
    supplier_vat: Mapped[str] = mapped_column(String(16))
    supplier_name: Mapped[str | None] = mapped_column(Text)
    document_number: Mapped[str] = mapped_column(String(40))
    issue_date: Mapped[date] = mapped_column(Date)
    taxable_amount: Mapped[Decimal] = mapped_column(Money)
    category: Mapped[str] = mapped_column(String(8))
    market: Mapped[str | None] = mapped_column(String(2))
    payment_date: Mapped[date | None] = mapped_column(Date)
    payment_method: Mapped[str | None] = mapped_column(String(24))
    cup_quoted: Mapped[bool] = mapped_column(Boolean, default=False)
    checks: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    outcome: Mapped[str] = mapped_column(String(16), default="pending")
    recognised_amount: Mapped[Decimal | None] = mapped_column(Money)
    officer_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_now()


class EvidenceFile(Base):
    __tablename__ = "evidence_files"
    __table_args__ = (
        Index(None, "claim_line_id"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    claim_line_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.claim_lines.id"))
    filename: Mapped[str] = mapped_column(Text)
    media_type: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(Text)
    invoice_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    uploaded_by: Mapped[str] = mapped_column(String(64))
    uploaded_at: Mapped[datetime] = created_now()


class KpiReport(Base):
    __tablename__ = "kpi_reports"
    __table_args__ = (
        UniqueConstraint("project_id", "kpi", "period"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.projects.id"))
    kpi: Mapped[str] = mapped_column(Text)
    period: Mapped[str] = mapped_column(String(16))
    value: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    note: Mapped[str | None] = mapped_column(Text)
    reported_by: Mapped[str] = mapped_column(String(64))
    reported_at: Mapped[datetime] = created_now()


class MilestoneReport(Base):
    __tablename__ = "milestone_reports"
    __table_args__ = (
        UniqueConstraint("project_id", "milestone"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.projects.id"))
    milestone: Mapped[str] = mapped_column(Text)
    due_date: Mapped[date] = mapped_column(Date)
    completed_on: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(Text)
    reported_by: Mapped[str] = mapped_column(String(64))
    reported_at: Mapped[datetime] = created_now()


class Reminder(Base):
    """A deadline reminder sent (as an event) for a project, so each is sent once."""

    __tablename__ = "reminders"
    __table_args__ = (
        UniqueConstraint("project_id", "kind", "due_date"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.projects.id"))
    kind: Mapped[str] = mapped_column(String(32))
    due_date: Mapped[date] = mapped_column(Date)
    sent_at: Mapped[datetime] = created_now()


class ApplicationFact(Base):
    """Monitoring's read model of one application, fed by events: what the statistics count."""

    __tablename__ = "application_facts"
    __table_args__ = (
        Index(None, "call_id", "province"),
        Index(None, "call_id", "submitted_at"),
        {"schema": SCHEMA},
    )

    application_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    call_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    company_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    province: Mapped[str | None] = mapped_column(String(2))
    ateco_section: Mapped[str | None] = mapped_column(String(1))
    size_class: Mapped[str | None] = mapped_column(String(8))
    markets: Mapped[list[str]] = mapped_column(ARRAY(String(2)), default=list)
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    requested_aid: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    status: Mapped[str] = mapped_column(String(16))
    admitted: Mapped[bool] = mapped_column(Boolean, default=False)
    funded: Mapped[bool] = mapped_column(Boolean, default=False)
    committed: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    paid: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    foreign_share_baseline: Mapped[Decimal | None] = mapped_column(Numeric(7, 2))
    foreign_share_latest: Mapped[Decimal | None] = mapped_column(Numeric(7, 2))
    updated_at: Mapped[datetime] = created_now()


class FactGroup(Base):
    """The statistics of one group of a call's applications (`dimension` and `key`: a province, a market, an
    hour...; the dimension `total` holds the call's totals, key ''), kept up to date by the statement-level
    triggers of `application_facts` (migration 0020) in the transaction that changes the facts, so a view reads
    a handful of rows instead of scanning the call's facts. A key of '' stands for "not known" (null): no real
    key is empty. Groups left with no application are deleted."""

    __tablename__ = "fact_groups"
    __table_args__ = {"schema": SCHEMA}

    call_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    dimension: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    applications: Mapped[int] = mapped_column(BigInteger)
    admitted: Mapped[int] = mapped_column(BigInteger)
    funded: Mapped[int] = mapped_column(BigInteger)
    committed: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    paid: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    revoked: Mapped[int] = mapped_column(BigInteger)
    growth_n: Mapped[int] = mapped_column(BigInteger)
    growth_sum: Mapped[Decimal] = mapped_column(Numeric(18, 2))


class CountryContinent(Base):
    """The continent of each country (ISO 3166 alpha-2), as `shared.domain.continents` has it: the triggers that
    keep `fact_groups` count an application once per continent its markets are in."""

    __tablename__ = "country_continents"
    __table_args__ = {"schema": SCHEMA}

    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    continent: Mapped[str] = mapped_column(String(2))


class B2bOutcome(Base):
    """The outcome of one B2B meeting (intake's `meeting.outcome_recorded`), attached to the company's project
    when it has one: the networking results of the plan and of the statistics."""

    __tablename__ = "b2b_outcomes"
    __table_args__ = (
        Index(None, "project_id"),
        Index(None, "event_id"),
        {"schema": SCHEMA},
    )

    meeting_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    event_title: Mapped[str] = mapped_column(Text)
    company_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    operator_country: Mapped[str] = mapped_column(String(2))
    project_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    application_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    outcome: Mapped[str] = mapped_column(String(16))
    contract_value: Mapped[Decimal | None] = mapped_column(Money)
    market: Mapped[str | None] = mapped_column(String(2))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
