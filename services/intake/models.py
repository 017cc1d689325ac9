"""Tables of the `intake` schema. Only the intake service writes them."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base, Money, created_now, uuid_pk

SCHEMA = "intake"


class Call(Base):
    __tablename__ = "calls"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[uuid.UUID] = uuid_pk()
    code: Mapped[str] = mapped_column(String(40), unique=True)
    title: Mapped[str] = mapped_column(Text)
    procedure: Mapped[str] = mapped_column(String(16))
    current_version: Mapped[int] = mapped_column(Integer)
    opens_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closes_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # A local demo may open the window now without touching the published rules document.
    demo_opens_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    demo_closes_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    budget_total: Mapped[Decimal] = mapped_column(Money)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = created_now()
    updated_at: Mapped[datetime] = created_now()


class CallVersion(Base):
    __tablename__ = "call_versions"
    __table_args__ = {"schema": SCHEMA}

    call_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.calls.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    rules: Mapped[dict[str, Any]] = mapped_column(JSONB)
    reason: Mapped[str | None] = mapped_column(Text)
    # The decree ordering an amendment after the window opened: {"number": ..., "date": "YYYY-MM-DD"}.
    decree: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = created_now()


class CallCounter(Base):
    """The protocol counter and the head of the receipts' hash chain, one row per call."""

    __tablename__ = "call_counters"
    __table_args__ = {"schema": SCHEMA}

    call_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.calls.id"), primary_key=True)
    last_protocol: Mapped[int] = mapped_column(BigInteger, default=0)
    last_chain_hash: Mapped[str] = mapped_column(String(64))


class Partner(Base):
    __tablename__ = "partners"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))
    fiscal_code: Mapped[str] = mapped_column(String(16), unique=True)
    email: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = created_now()


class Company(Base):
    __tablename__ = "companies"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[uuid.UUID] = uuid_pk()
    vat_number: Mapped[str] = mapped_column(String(11), unique=True)
    fiscal_code: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(Text)
    legal_form: Mapped[str] = mapped_column(String(32))
    ateco_code: Mapped[str] = mapped_column(String(8))
    registered_office: Mapped[dict[str, Any]] = mapped_column(JSONB)
    operating_sites: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    lombardy_site_commitment: Mapped[bool] = mapped_column(Boolean, default=False)
    incorporation_date: Mapped[date] = mapped_column(Date)
    approved_financial_statements: Mapped[int] = mapped_column(Integer)
    headcount_awu: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    turnover: Mapped[Decimal] = mapped_column(Money)
    balance_sheet_total: Mapped[Decimal] = mapped_column(Money)
    previous_year_export_sales: Mapped[Decimal] = mapped_column(Money)
    related_enterprises: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    export_history: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    size_class: Mapped[str] = mapped_column(String(8))
    # Who signs the application form for the company (its qualified signature certificate names this code).
    legal_representative_fiscal_code: Mapped[str | None] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = created_now()
    updated_at: Mapped[datetime] = created_now()


class Delegation(Base):
    """A partner acting for a company. Pending until the company (or an officer) confirms it."""

    __tablename__ = "delegations"
    __table_args__ = (
        Index(
            "uq_delegations_live",
            "partner_id",
            "company_id",
            unique=True,
            postgresql_where=text("status IN ('pending', 'active')"),
        ),
        Index(None, "company_id"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    partner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.partners.id"))
    company_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.companies.id"))
    status: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = created_now()
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Application(Base):
    __tablename__ = "applications"
    __table_args__ = (
        UniqueConstraint("call_id", "protocol_number"),
        # One live submission per company and call, whatever the concurrency.
        Index(
            "uq_applications_one_submitted",
            "call_id",
            "company_id",
            unique=True,
            postgresql_where=text("status = 'submitted'"),
        ),
        Index(None, "company_id"),
        Index(None, "partner_id"),
        # A stamp duty (marca da bollo) pays for one application only.
        Index("uq_applications_stamp_duty_id", "stamp_duty_id", unique=True),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    call_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.calls.id"))
    company_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.companies.id"))
    partner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.partners.id"))
    status: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(Text)
    action_plan: Mapped[dict[str, Any]] = mapped_column(JSONB)
    network: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    de_minimis_declarations: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb")
    )
    flat_rates: Mapped[list[str]] = mapped_column(ARRAY(String(8)))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = created_now()
    updated_at: Mapped[datetime] = created_now()
    call_version: Mapped[int | None] = mapped_column(Integer)
    protocol_number: Mapped[int | None] = mapped_column(BigInteger)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    receipt: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    chain_hash: Mapped[str | None] = mapped_column(String(64))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    withdrawal_reason: Mapped[str | None] = mapped_column(Text)
    # The last passing pre-check of the draft (services.intake.applications.service.record_precheck): what it
    # was computed for and until when it holds. A submit of a draft whose verdict is current commits at once.
    precheck_version: Mapped[int | None] = mapped_column(Integer)
    precheck_company_version: Mapped[int | None] = mapped_column(Integer)
    precheck_call_version: Mapped[int | None] = mapped_column(Integer)
    precheck_valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    precheck_content_sha256: Mapped[str | None] = mapped_column(String(64))
    precheck_estimate: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    stamp_duty_id: Mapped[str | None] = mapped_column(String(14))
    stamp_duty_issued_on: Mapped[date | None] = mapped_column(Date)
    # When the form signed by the legal representative was verified and accepted: the formalities are complete.
    form_signed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApplicationForm(Base):
    """The submitted application as a document: the SHA-256 of the PDF the desk renders (lazily, on its first
    read, the same bytes every time) and, once verified, the copy its legal representative signed (PAdES)."""

    __tablename__ = "application_forms"
    __table_args__ = {"schema": SCHEMA}

    application_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.applications.id", ondelete="CASCADE"), primary_key=True
    )
    form_sha256: Mapped[str] = mapped_column(String(64))
    rendered_at: Mapped[datetime] = created_now()
    signed_pdf: Mapped[bytes | None] = mapped_column(LargeBinary)
    signed_sha256: Mapped[str | None] = mapped_column(String(64))
    signer_fiscal_code: Mapped[str | None] = mapped_column(String(16))
    signing_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    signed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    signed_by: Mapped[str | None] = mapped_column(String(64))


class ExpenseLine(Base):
    __tablename__ = "expense_lines"
    __table_args__ = (
        UniqueConstraint("application_id", "position"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    application_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.applications.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(8))
    description: Mapped[str] = mapped_column(Text)
    amount: Mapped[Decimal] = mapped_column(Money)
    target_market: Mapped[str | None] = mapped_column(String(2))
    supplier: Mapped[str | None] = mapped_column(Text)


class Training(Base):
    __tablename__ = "trainings"
    __table_args__ = (
        CheckConstraint("min_attendance_share > 0 AND min_attendance_share <= 1", name="min_attendance_share"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    title: Mapped[str] = mapped_column(Text)
    topic: Mapped[str] = mapped_column(String(32))
    format: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    location: Mapped[str | None] = mapped_column(Text)
    capacity: Mapped[int] = mapped_column(Integer)
    enrolled: Mapped[int] = mapped_column(Integer, default=0)
    # the share of the session's hours a participant must attend for a certificate of attendance
    min_attendance_share: Mapped[Decimal] = mapped_column(Numeric(3, 2), server_default=text("0.75"))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = created_now()


class Enrolment(Base):
    __tablename__ = "enrolments"
    __table_args__ = (
        Index(
            "uq_enrolments_live",
            "training_id",
            "participant_email",
            unique=True,
            postgresql_where=text("status IN ('enrolled', 'waiting')"),
        ),
        Index(
            "ix_enrolments_waiting",
            "training_id",
            "queue_number",
            unique=True,
            postgresql_where=text("queue_number IS NOT NULL"),
        ),
        Index(None, "company_id"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    training_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.trainings.id"))
    company_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.companies.id"))
    participant_name: Mapped[str] = mapped_column(Text)
    participant_email: Mapped[str] = mapped_column(Text)
    participant_role: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = created_now()
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # arrival number on the session's waiting list (1, 2, ...; never reused); null for direct enrolments
    queue_number: Mapped[int | None] = mapped_column(Integer)
    promoted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))


class Attendance(Base):
    """Hours one participant (an enrolment) attended of one session."""

    __tablename__ = "attendances"
    __table_args__ = (
        CheckConstraint("hours >= 0", name="hours_not_negative"),
        Index(None, "training_id"),
        {"schema": SCHEMA},
    )

    enrolment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.enrolments.id"), primary_key=True)
    training_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.trainings.id"))
    hours: Mapped[Decimal] = mapped_column(Numeric(6, 2))
    version: Mapped[int] = mapped_column(Integer, default=1)
    recorded_by: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = created_now()


class Expert(Base):
    """An accredited expert of the accompaniment roster (temporary export manager, consultant). Officers manage
    the roster; the expert acts through the API client recorded in `client_id`."""

    __tablename__ = "experts"
    __table_args__ = (
        CheckConstraint("hours_per_month > 0", name="hours_per_month_positive"),
        CheckConstraint("accredited_to IS NULL OR accredited_to >= accredited_from", name="accreditation_order"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    fiscal_code: Mapped[str] = mapped_column(String(16), unique=True)
    vat_number: Mapped[str | None] = mapped_column(String(11))
    name: Mapped[str] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    markets: Mapped[list[str]] = mapped_column(ARRAY(String(2)))
    sectors: Mapped[list[str]] = mapped_column(ARRAY(String(8)))
    languages: Mapped[list[str]] = mapped_column(ARRAY(String(2)))
    phases: Mapped[list[str]] = mapped_column(ARRAY(String(16)))
    hours_per_month: Mapped[Decimal] = mapped_column(Numeric(6, 2))
    accredited_from: Mapped[date] = mapped_column(Date)
    accredited_to: Mapped[date | None] = mapped_column(Date)
    client_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = created_now()
    updated_at: Mapped[datetime] = created_now()


class Engagement(Base):
    """A company's request for accompaniment in one phase of an application's plan, and, once an officer assigns
    an expert and the expert confirms, the engagement whose sessions the expert logs."""

    __tablename__ = "engagements"
    __table_args__ = (
        CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name="rating_range"),
        Index(None, "company_id"),
        Index(None, "expert_id"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    company_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.companies.id"))
    application_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.applications.id"))
    call_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.calls.id"))
    partner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.partners.id"))
    phase: Mapped[str] = mapped_column(String(16))
    markets: Mapped[list[str]] = mapped_column(ARRAY(String(2)))
    sector: Mapped[str] = mapped_column(String(8))
    language: Mapped[str] = mapped_column(String(2))
    drafting_consultant: Mapped[str | None] = mapped_column(String(16))
    declared_conflicts: Mapped[list[str]] = mapped_column(ARRAY(String(16)))
    notes: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    expert_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.experts.id"))
    declined_by: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(UUID(as_uuid=True)))
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    hours_logged: Mapped[Decimal] = mapped_column(Numeric(8, 2), default=Decimal("0"))
    sessions_count: Mapped[int] = mapped_column(Integer, default=0)
    rating: Mapped[int | None] = mapped_column(Integer)
    rating_comment: Mapped[str | None] = mapped_column(Text)
    rated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = created_now()


class AccompanimentSession(Base):
    """One session an expert held for an engagement, as the expert logged it."""

    __tablename__ = "accompaniment_sessions"
    __table_args__ = (
        CheckConstraint("hours > 0", name="hours_positive"),
        Index(None, "engagement_id"),
        Index(None, "expert_id", "held_on"),
        Index(None, "company_id", "call_id"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    engagement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.engagements.id"))
    expert_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.experts.id"))
    company_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.companies.id"))
    call_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.calls.id"))
    held_on: Mapped[date] = mapped_column(Date)
    hours: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    topics: Mapped[list[str]] = mapped_column(ARRAY(Text))
    outcome_notes: Mapped[str] = mapped_column(Text)
    next_steps: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = created_now()


# ---------------------------------------------------------------- networking with international operators

_LIVE_MEETING = text("status IN ('proposed', 'confirmed')")


class B2bOperator(Base):
    """A foreign operator (buyer, distributor, importer) companies can meet at B2B events. Officers manage them."""

    __tablename__ = "b2b_operators"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    country: Mapped[str] = mapped_column(String(2))
    sectors: Mapped[list[str]] = mapped_column(ARRAY(String(8)))
    interests: Mapped[list[str]] = mapped_column(ARRAY(Text))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = created_now()


class B2bEvent(Base):
    """An incoming mission or a virtual matchmaking day; `slots` is its list of time slots ({index, starts_at,
    ends_at, capacity}: capacity is the number of parallel tables). Its row lock serialises every change of its
    agenda (planning, manual meetings, withdrawals)."""

    __tablename__ = "b2b_events"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[uuid.UUID] = uuid_pk()
    title: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    slots: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = created_now()


class B2bEventOperator(Base):
    """An operator taking part in an event (`withdrawn` once it pulls out)."""

    __tablename__ = "b2b_event_operators"
    __table_args__ = {"schema": SCHEMA}

    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.b2b_events.id"), primary_key=True)
    operator_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.b2b_operators.id"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class B2bInterest(Base):
    """A company's interest in meeting an operator at an event, with its rank (1 = first choice)."""

    __tablename__ = "b2b_interests"
    __table_args__ = (
        UniqueConstraint("event_id", "company_id", "operator_id"),
        Index(None, "company_id"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.b2b_events.id"))
    company_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.companies.id"))
    operator_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.b2b_operators.id"))
    rank: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = created_now()


class B2bOperatorPreference(Base):
    """An operator's preference for a company at an event (rank, 1 = first choice), registered by officers."""

    __tablename__ = "b2b_operator_preferences"
    __table_args__ = {"schema": SCHEMA}

    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.b2b_events.id"), primary_key=True)
    operator_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.b2b_operators.id"), primary_key=True)
    company_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.companies.id"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = created_now()


class B2bMeeting(Base):
    """One meeting of an event's agenda: a company and an operator at a table of a slot. The partial unique
    indexes are the last word against double-booking: a company, or an operator, is in at most one live meeting
    per slot, and a pair meets once per event."""

    __tablename__ = "b2b_meetings"
    __table_args__ = (
        Index(
            "uq_b2b_meetings_company_slot",
            "event_id",
            "slot",
            "company_id",
            unique=True,
            postgresql_where=_LIVE_MEETING,
        ),
        Index(
            "uq_b2b_meetings_operator_slot",
            "event_id",
            "slot",
            "operator_id",
            unique=True,
            postgresql_where=_LIVE_MEETING,
        ),
        Index(
            "uq_b2b_meetings_pair", "event_id", "company_id", "operator_id", unique=True, postgresql_where=_LIVE_MEETING
        ),
        Index(None, "company_id"),
        CheckConstraint(
            "outcome IS NULL OR outcome <> 'contract' OR (contract_value IS NOT NULL AND market IS NOT NULL)",
            name="contract_has_value_and_market",
        ),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.b2b_events.id"))
    company_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.companies.id"))
    operator_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.b2b_operators.id"))
    slot: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    origin: Mapped[str] = mapped_column(String(16))
    confirmed_by: Mapped[str | None] = mapped_column(String(64))
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(16))
    contract_value: Mapped[Decimal | None] = mapped_column(Money)
    market: Mapped[str | None] = mapped_column(String(2))
    outcome_recorded_by: Mapped[str | None] = mapped_column(String(64))
    outcome_recorded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = created_now()
