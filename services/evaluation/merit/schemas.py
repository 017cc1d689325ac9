"""Requests and answers of merit evaluation."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field

from shared.schemas import ApiModel, OutModel

Statement = Annotated[str, Field(min_length=3, max_length=4000)]
AssignmentStatus = Literal["assigned", "declared", "submitted", "cancelled"]
MeritVerdict = Literal["passed", "failed", "third_review_needed"]


class ConflictCreate(ApiModel):
    company_id: uuid.UUID = Field(description="The company (at intake) the reviewer has a conflict of interest with.")
    statement: Statement = Field(description="Why: the relationship with the company, in the reviewer's words.")


class ConflictOut(OutModel):
    id: uuid.UUID
    reviewer: str = Field(description="The reviewer's client id.")
    company_id: uuid.UUID
    application_id: uuid.UUID | None = Field(
        description="Set when the declaration was made on an assignment (for that application)."
    )
    conflict: bool = Field(
        description="true: a conflict of interest; false: a declaration of no conflict for the application."
    )
    statement: str | None
    declared_at: datetime


class ConflictCreated(ConflictOut):
    cancelled_assignments: list[uuid.UUID] = Field(
        description="Open assignments of this reviewer on the company's applications, cancelled by the declaration."
    )


class AssignmentCreate(ApiModel):
    reviewer: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="Client id of the officer who will review."
    )


class Declaration(ApiModel):
    no_conflict: bool = Field(
        description="true: I have no conflict of interest with this application's company; "
        "false: I have one (the assignment is cancelled)."
    )
    statement: Statement


class CriterionScore(ApiModel):
    points: Annotated[
        int,
        Field(
            strict=True,
            le=1_000_000,  # a grid's points fit far below; the check says why
            description="Whole points, 0 to the criterion's max_points.",
        ),
    ]
    comment: Annotated[str, Field(min_length=1, max_length=4000, description="The reviewer's motivation.")]


class ReviewIn(ApiModel):
    scores: dict[str, CriterionScore] = Field(
        description="One entry per criterion of the call's scoring grid, keyed by criterion code."
    )


class AssignmentOut(OutModel):
    id: uuid.UUID
    application_id: uuid.UUID
    call_id: uuid.UUID
    protocol_number: int
    reviewer: str
    assigned_by: str
    status: AssignmentStatus = Field(
        description="assigned: waiting for the reviewer's declaration; declared: no "
        "conflict declared, the reviewer may read and score; submitted: "
        "scores frozen; cancelled: the reviewer declared a conflict."
    )
    no_conflict_declared_at: datetime | None
    scores: dict[str, Any] | None = Field(description="The reviewer's scores (only to the reviewer).")
    total: Decimal | None
    scored_at: datetime | None = Field(description="When the review was submitted.")
    created_at: datetime
    etag: str


class AssignmentApplication(OutModel):
    assignment_id: uuid.UUID
    application_id: uuid.UUID
    call_id: uuid.UUID
    protocol_number: int
    submitted_at: datetime
    snapshot: dict[str, Any] = Field(
        description="The application as intake returned it when it was received (intake's ApplicationOut)."
    )


class ReviewSummary(OutModel):
    assignment_id: uuid.UUID
    reviewer: str
    status: AssignmentStatus
    total: Decimal | None = Field(
        description="Shown once the merit verdict is final, so that a third reviewer is "
        "not influenced by the first two."
    )
    scored_at: datetime | None


class ConsensusOut(OutModel):
    totals: list[int]
    divergence: int
    divergence_threshold: int
    averaged: list[str] = Field(description="Which reviews the final score averages, in submission order (a, b, c).")


class MeritOut(OutModel):
    application_id: uuid.UUID
    call_id: uuid.UUID
    stage: str
    score: Decimal | None
    merit_verdict: MeritVerdict | None
    pass_mark: int
    max_total: int
    consensus: ConsensusOut | None
    credit_class: str | None
    loan_cap_share: Decimal | None
    loan_excluded: bool | None
    reviews: list[ReviewSummary]
    etag: str = Field(description="The evaluation's ETag (If-Match of the credit-class change).")


class CreditClassIn(ApiModel):
    class_code: Annotated[str, Field(min_length=1, max_length=8)] = Field(
        description="One of the call's credit_scoring classes."
    )


class CreditClassOut(OutModel):
    application_id: uuid.UUID
    credit_class: str
    loan_cap_share: Decimal = Field(description="Share of the loan cap granted to this class (fraction 0-1).")
    loan_excluded: bool = Field(description="true when the class's loan_cap_share is 0: no loan can be granted.")
    note: str | None
    etag: str
