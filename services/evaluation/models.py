"""Tables of the `evaluation` schema. Only the evaluation service writes them."""

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
    Identity,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base, Money
from shared.events.inbox import InboxRecord

SCHEMA = "evaluation"


class InboxEvent(InboxRecord, Base):
    """Events received from other services (shared.events.inbox), kept by id so a redelivery is recognised."""

    __tablename__ = "inbox"
    __table_args__ = {"schema": SCHEMA}


class ReceivedApplication(Base):
    """A submitted application as evaluation knows it: the snapshot fetched from intake's API."""

    __tablename__ = "applications"
    __table_args__ = {"schema": SCHEMA}

    application_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    call_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    company_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    protocol_number: Mapped[int] = mapped_column(BigInteger)
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # The partner notified of the application's events: the submitting partner, then (on
    # `company.delegation_changed`) the company's current delegate. Never an access rule: shared.access is.
    partner_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    version: Mapped[int] = mapped_column(Integer, default=1)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    withdrawal_reason: Mapped[str | None] = mapped_column(Text)


class Evaluation(Base):
    """The evaluation of one received application: admissibility, merit, funding computation."""

    __tablename__ = "evaluations"
    __table_args__ = {"schema": SCHEMA}

    application_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.applications.application_id"), primary_key=True
    )
    call_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    stage: Mapped[str] = mapped_column(String(24))
    admissibility_verdict: Mapped[str | None] = mapped_column(String(16))
    admissibility_checks: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    cuts: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    eligible_total: Mapped[Decimal | None] = mapped_column(Money)
    credit_class: Mapped[str | None] = mapped_column(String(8))
    score: Mapped[Decimal | None] = mapped_column(Numeric(6, 2))
    merit_verdict: Mapped[str | None] = mapped_column(String(16))
    grant: Mapped[Decimal | None] = mapped_column(Money)
    loan: Mapped[Decimal | None] = mapped_column(Money)
    loan_gge: Mapped[Decimal | None] = mapped_column(Money)
    funding: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    de_minimis: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # A network application's members: eligible total after the cuts, then each one's aid (None otherwise).
    network: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PriorAid(Base):
    """The de minimis register: aid already granted to an undertaking (officer entry or state-aid register import)."""

    __tablename__ = "de_minimis_aids"
    __table_args__ = (
        UniqueConstraint("source", "reference"),
        Index(None, "vat_number", "granted_on"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    vat_number: Mapped[str] = mapped_column(String(11))
    granted_on: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Money)
    granting_authority: Mapped[str] = mapped_column(Text)
    regulation: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ConflictDeclaration(Base):
    """A reviewer's declaration about a company: a conflict of interest, or none for one application."""

    __tablename__ = "conflict_declarations"
    __table_args__ = (
        Index(None, "reviewer", "company_id"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    reviewer: Mapped[str] = mapped_column(String(64))
    company_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    application_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    conflict: Mapped[bool] = mapped_column(Boolean)
    statement: Mapped[str | None] = mapped_column(Text)
    declared_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ReviewAssignment(Base):
    __tablename__ = "review_assignments"
    __table_args__ = (
        UniqueConstraint("application_id", "reviewer"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    application_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.applications.application_id"))
    reviewer: Mapped[str] = mapped_column(String(64))
    assigned_by: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    no_conflict_declared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    scores: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    total: Mapped[Decimal | None] = mapped_column(Numeric(6, 2))
    scored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Budget(Base):
    """The call's budget: what is committed can never exceed the total (a CHECK, not only code)."""

    __tablename__ = "budgets"
    __table_args__ = (
        CheckConstraint("committed >= 0 AND committed <= total", name="within_total"),
        {"schema": SCHEMA},
    )

    call_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    total: Mapped[Decimal] = mapped_column(Money)
    committed: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    freed: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    # The version of the call's rules `total` comes from (call.amended events older than it change nothing).
    call_version: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class BudgetEntry(Base):
    """The ledger behind a budget: every commitment and every release, append-only."""

    __tablename__ = "budget_entries"
    __table_args__ = (
        Index(None, "call_id", "id"),
        {"schema": SCHEMA},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    call_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.budgets.call_id"))
    application_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(Money)
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Funding(Base):
    """Where an application stands in the allocation: one row per application, so never funded twice."""

    __tablename__ = "fundings"
    __table_args__ = (
        Index(None, "call_id", "status"),
        {"schema": SCHEMA},
    )

    application_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.applications.application_id"), primary_key=True
    )
    call_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    status: Mapped[str] = mapped_column(String(16))
    requested: Mapped[Decimal] = mapped_column(Money)
    granted: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    grant: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    loan: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    partial: Mapped[bool] = mapped_column(Boolean, default=False)
    protocol_number: Mapped[int] = mapped_column(BigInteger)
    score: Mapped[Decimal | None] = mapped_column(Numeric(6, 2))
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Decree(Base):
    """A concession decree: the batch in which decisions are issued (number and date)."""

    __tablename__ = "decrees"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    call_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    number: Mapped[str] = mapped_column(String(40), unique=True)
    decree_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, default=1)


class Decision(Base):
    __tablename__ = "decisions"
    __table_args__ = (
        UniqueConstraint("application_id", "decree_id"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    decree_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.decrees.id"))
    application_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.applications.application_id"))
    company_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    outcome: Mapped[str] = mapped_column(String(24))
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    grant: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    loan: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    cup: Mapped[str | None] = mapped_column(String(15), unique=True)
    cor: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    renounced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RankingVersion(Base):
    """A published ranking (graduatoria) of a call: numbered 1, 2, ... per call, immutable (a trigger refuses
    UPDATE and DELETE). A later one (after an appeal, a revocation, a scorrimento) is a new number with its reason;
    every version stays readable. `entries` is the ranking as it stood: position, protocol, score, outcome."""

    __tablename__ = "rankings"
    __table_args__ = (
        UniqueConstraint("call_id", "number"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    call_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    number: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    procedure: Mapped[str] = mapped_column(String(16))
    entries: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
