"""The event catalogue: every event type the desk emits, its version and the JSON Schema of its data.

Each event reaches subscribers in this envelope (the webhook body), signed per Standard Webhooks:

    {"id": "<event uuid>", "type": "application.submitted", "version": 1, "source": "intake",
     "occurred_at": "...Z",
     "subject": {"type": "application", "id": "<uuid>", "href": "/v1/applications/<uuid>"}, "data": {...}}

The subject convention: an event type is `<noun>.<verb>` and its subject is the object the noun names, never
another aggregate: `decision.accepted` is about the decision (`/v1/decisions/{id}`), `payment.paid` about the
payment. `SUBJECTS` says, for each noun, the service that owns the object and the path where it is read on
that service (the event's `source`). Related objects (the application, the company, the project) are in
`data` by their ids. `shared.audit.event_params` refuses an event whose subject breaks the convention.

The catalogue is published as the `webhooks` of intake's OpenAPI 3.1 document and at `GET /v1/events/types`.
Adding a field is compatible; changing or removing one is a new `version` of the type.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas import INT32_MAX


class _Data(BaseModel):
    model_config = ConfigDict(extra="allow")


class NetworkEstimateData(BaseModel):
    eligible_total: Decimal = Field(description="The network's: lead and members.")
    grant: Decimal
    loan: Decimal


class EstimateData(BaseModel):
    eligible_total: Decimal
    grant: Decimal
    loan: Decimal
    network: NetworkEstimateData | None = Field(
        None, description="A network application: its totals (the figures above are the lead's)."
    )


class ApplicationSubmitted(_Data):
    application_id: uuid.UUID
    call_id: uuid.UUID
    company_id: uuid.UUID
    protocol_number: int
    submitted_at: datetime
    content_sha256: str
    estimate: EstimateData | None


class ApplicationWithdrawn(_Data):
    application_id: uuid.UUID
    call_id: uuid.UUID
    company_id: uuid.UUID
    protocol_number: int | None
    reason: str
    withdrawn_at: datetime


class ApplicationFormSigned(_Data):
    application_id: uuid.UUID
    call_id: uuid.UUID
    company_id: uuid.UUID
    protocol_number: int | None
    form_sha256: str
    signed_sha256: str
    signer_fiscal_code: str
    signing_time: datetime
    signed_at: datetime


class DelegationChanged(_Data):
    delegation_id: uuid.UUID
    partner_id: uuid.UUID
    company_id: uuid.UUID
    status: str


class CompanyDelegationChanged(_Data):
    company_id: uuid.UUID
    delegation_id: uuid.UUID = Field(description="The delegation that changed.")
    partner_id: uuid.UUID = Field(description="The partner of that delegation.")
    status: str = Field(description="Its new status: pending, active or revoked.")
    delegates: list[uuid.UUID] = Field(
        description="The partners acting for the company from now on (holding an "
        "active delegation), the most recently delegated first; "
        "empty when the company acts alone."
    )


class EnrolmentChanged(_Data):
    enrolment_id: uuid.UUID
    training_id: uuid.UUID
    company_id: uuid.UUID
    status: str
    training_title: str
    starts_at: datetime
    places_left: int


class MeetingOutcomeRecorded(_Data):
    meeting_id: uuid.UUID
    event_id: uuid.UUID = Field(description="The B2B event (incoming mission, matchmaking day).")
    event_title: str
    company_id: uuid.UUID
    operator_id: uuid.UUID
    operator_country: str = Field(description="The operator's country (ISO 3166-1 alpha-2).")
    outcome: str = Field(description="no_follow_up, lead, offer or contract.")
    value: Decimal | None = Field(description="A contract's value in euro (a string); null for other outcomes.")
    market: str | None = Field(description="A contract's market (ISO 3166-1 alpha-2); null for other outcomes.")
    recorded_at: datetime


class Ping(_Data):
    subscription_id: uuid.UUID
    message: str = "ping"


class AdmissibilityCompleted(_Data):
    application_id: uuid.UUID
    call_id: uuid.UUID
    company_id: uuid.UUID
    verdict: str = Field(description="admissible, needs_review or not_admissible.")
    failed_checks: list[str] = Field(description="Codes of the checks that failed.")
    review_checks: list[str] = Field(default_factory=list, description="Codes of the checks awaiting a review.")


class FundingComputed(_Data):
    application_id: uuid.UUID
    call_id: uuid.UUID
    company_id: uuid.UUID
    stage: str = Field(description="evaluated, or not_admissible when the aid cannot be granted.")
    reason: str | None = Field(None, description="Why not admissible: de_minimis_ceiling, credit_class_excluded.")
    grant: Decimal
    loan: Decimal
    loan_gge: Decimal
    de_minimis_reduced: bool


class MeritCompleted(_Data):
    application_id: uuid.UUID
    call_id: uuid.UUID
    company_id: uuid.UUID
    score: Decimal = Field(description="The final merit score (reviewers' consensus), two decimals.")
    verdict: str = Field(description="passed or failed against the call's pass mark.")
    pass_mark: int
    reviews: int = Field(description="How many reviews the consensus used (2, or 3 after a divergence).")


class FundingGrantedFromWaitingList(_Data):
    application_id: uuid.UUID
    call_id: uuid.UUID
    company_id: uuid.UUID
    protocol_number: int
    previous_status: str = Field(description="waiting, or partially_funded when the application is topped up.")
    status: str = Field(description="funded, or partially_funded when what was freed covers only part of it.")
    requested: Decimal = Field(description="Aid the evaluation computed (grant + loan).")
    granted: Decimal = Field(description="Aid now committed to it (grant + loan).")
    grant: Decimal
    loan: Decimal
    committed_now: Decimal = Field(description="What this scorrimento committed.")
    reason: str = Field(description="What freed the budget, e.g. 'scorrimento after renunciation'.")


class FundingReleased(_Data):
    application_id: uuid.UUID
    call_id: uuid.UUID
    company_id: uuid.UUID
    kind: str = Field(description="withdrawal, renunciation, revocation or reduction.")
    amount: Decimal = Field(description="Aid released back to the call's budget.")
    reason: str
    status: str = Field(description="The application's allocation status after the release.")
    granted: Decimal
    grant: Decimal
    loan: Decimal


class DecisionIssued(_Data):
    decision_id: uuid.UUID
    application_id: uuid.UUID
    call_id: uuid.UUID
    company_id: uuid.UUID
    protocol_number: int
    outcome: str = Field(description="funded, partially_funded, waiting or not_admitted.")
    grant: Decimal
    loan: Decimal
    decree_id: uuid.UUID
    decree_number: str
    decree_date: date
    reasons: list[dict[str, Any]] = Field(description="Every reason (code, article, detail_it, detail_en).")


class ApprovedAmount(BaseModel):
    category: str | None = None
    country: str | None = None
    kind: str | None = None
    amount: Decimal


class ApprovedBudget(BaseModel):
    eligible_total: Decimal
    by_category: list[ApprovedAmount] = Field(description="Eligible expenses per category of the call.")
    by_market: list[ApprovedAmount] = Field(
        description="Expenses per target market (country null: no market), after the evaluation's line cuts."
    )


class DecisionAccepted(_Data):
    decision_id: uuid.UUID
    application_id: uuid.UUID
    call_id: uuid.UUID
    company_id: uuid.UUID
    partner_id: uuid.UUID | None
    protocol_number: int
    outcome: str
    grant: Decimal
    loan: Decimal
    loan_gge: Decimal | None
    decree_id: uuid.UUID
    decree_number: str
    decree_date: date
    cup: str
    cor: str
    accepted_at: datetime
    approved_budget: ApprovedBudget
    action_plan: dict[str, Any] = Field(description="start_date, end_date, milestones and kpis of the action plan.")
    funding: dict[str, Any] | None = Field(description="The evaluation's funding computation (loan terms, plan).")


class DecisionRenounced(_Data):
    decision_id: uuid.UUID
    application_id: uuid.UUID
    call_id: uuid.UUID
    company_id: uuid.UUID
    grant: Decimal
    loan: Decimal
    decree_number: str
    decree_date: date
    renounced_at: datetime
    reason: str


class DecreeData(BaseModel):
    number: str
    date: dt.date


class CallAmended(_Data):
    call_id: uuid.UUID
    code: str
    version: int = Field(description="The new version of the call's rules.")
    previous_version: int
    opened: bool = Field(
        description="Whether the window had opened: then only closes_at later and budget_total "
        "higher may change, each by decree."
    )
    changed_fields: list[str] = Field(description="Dotted paths of the rules that changed (e.g. budget_total).")
    budget_total: Decimal = Field(description="The call's budget under the new version.")
    previous_budget_total: Decimal
    closes_at: datetime = Field(description="The window's close under the new version.")
    previous_closes_at: datetime
    decree: DecreeData | None = Field(
        description="The decree ordering the amendment (required once the window opened)."
    )
    reason: str
    amended_at: datetime


class EngagementChanged(_Data):
    """An engagement of expert accompaniment: identifiers and figures, no personal data of the expert."""

    engagement_id: uuid.UUID
    company_id: uuid.UUID
    application_id: uuid.UUID
    call_id: uuid.UUID
    phase: str = Field(description="design, monitoring or reporting.")
    status: str = Field(description="requested, assigned or confirmed.")
    expert_id: uuid.UUID | None
    hours_logged: Decimal


class EngagementSessionLogged(EngagementChanged):
    session_id: uuid.UUID
    held_on: date
    hours: Decimal


class EngagementRated(EngagementChanged):
    rating: int = Field(ge=1, le=5)


@dataclass(frozen=True)
class EventType:
    name: str
    version: int
    source: str
    summary: str
    data: type[BaseModel]


CATALOGUE: dict[str, EventType] = {
    e.name: e
    for e in (
        EventType(
            "application.submitted",
            1,
            "intake",
            "An application was submitted: protocol number and receipt hash.",
            ApplicationSubmitted,
        ),
        EventType(
            "application.withdrawn",
            1,
            "intake",
            "A submitted application was withdrawn by its applicant.",
            ApplicationWithdrawn,
        ),
        EventType(
            "application.form_signed",
            1,
            "intake",
            "The application form signed by the company's legal representative (PAdES) was verified and accepted: "
            "the application's formalities are complete and admissibility may proceed.",
            ApplicationFormSigned,
        ),
        EventType(
            "delegation.requested",
            1,
            "intake",
            "A partner asked a company for a delegation (sent to the company "
            "only: the partner hears of the delegation once the company accepts it).",
            DelegationChanged,
        ),
        EventType("delegation.activated", 1, "intake", "A delegation became active.", DelegationChanged),
        EventType("delegation.revoked", 1, "intake", "A delegation was revoked.", DelegationChanged),
        EventType(
            "company.delegation_changed",
            1,
            "intake",
            "Who acts for a company changed (a delegation was requested, accepted or revoked): the partners "
            "acting for it from now on. Only they reach the company's applications, evaluations, decisions and "
            "projects, and hear their events.",
            CompanyDelegationChanged,
        ),
        EventType(
            "training.enrolled", 1, "intake", "A company's staff member was enrolled in a session.", EnrolmentChanged
        ),
        EventType("training.enrolment_cancelled", 1, "intake", "An enrolment was cancelled.", EnrolmentChanged),
        EventType(
            "training.enrolment_waitlisted",
            1,
            "intake",
            "A company's staff member joined a full session's waiting list (`status` `waiting`).",
            EnrolmentChanged,
        ),
        EventType(
            "training.enrolment_promoted",
            1,
            "intake",
            "A place freed and the first enrolment on the session's waiting list took it (in order of arrival, "
            "once): the participant is now enrolled.",
            EnrolmentChanged,
        ),
        EventType(
            "engagement.requested",
            1,
            "intake",
            "A company asked for expert accompaniment in a phase of its plan (`status` `requested`).",
            EngagementChanged,
        ),
        EventType(
            "engagement.assigned",
            1,
            "intake",
            "An officer assigned an expert to the engagement; the expert is to confirm it.",
            EngagementChanged,
        ),
        EventType(
            "engagement.confirmed", 1, "intake", "The assigned expert confirmed the engagement.", EngagementChanged
        ),
        EventType(
            "engagement.declined",
            1,
            "intake",
            "The assigned expert declined the engagement: it waits for another assignment (`status` `requested`).",
            EngagementChanged,
        ),
        EventType(
            "engagement.session_logged",
            1,
            "intake",
            "The expert logged a session of the engagement: its day and hours, and the engagement's total.",
            EngagementSessionLogged,
        ),
        EventType("engagement.rated", 1, "intake", "The company rated the engagement (1-5).", EngagementRated),
        EventType(
            "meeting.outcome_recorded",
            1,
            "intake",
            "The outcome of a B2B meeting that took place (no follow-up, lead, offer, contract with value and "
            "market). Monitoring adds it to the networking results of the company's project and to the "
            "statistics.",
            MeetingOutcomeRecorded,
        ),
        EventType(
            "call.amended",
            1,
            "intake",
            "A new version of a call's rules was published (once open: a later close or a higher budget, by "
            "decree). Evaluation's budget ledger applies the new total and funds the waiting list.",
            CallAmended,
        ),
        EventType("webhook.ping", 1, "intake", "A test event sent on request to check an endpoint.", Ping),
        EventType(
            "evaluation.admissibility_completed",
            1,
            "evaluation",
            "The admissibility of a submitted application was determined (automatically or by an officer's "
            "review): verdict and failed checks.",
            AdmissibilityCompleted,
        ),
        EventType(
            "evaluation.funding_computed",
            1,
            "evaluation",
            "Grant, loan and its gross grant equivalent were computed under the de minimis ceiling; or the aid "
            "was refused (stage not_admissible, with the reason).",
            FundingComputed,
        ),
        EventType(
            "evaluation.merit_completed",
            1,
            "evaluation",
            "The merit evaluation of an application is final: the reviewers' consensus score and verdict.",
            MeritCompleted,
        ),
        EventType(
            "funding.granted_from_waiting_list",
            1,
            "evaluation",
            "Budget freed by a withdrawal, renunciation, revocation or reduction funded an application on the "
            "waiting list (scorrimento).",
            FundingGrantedFromWaitingList,
        ),
        EventType(
            "funding.released",
            1,
            "evaluation",
            "Aid committed to an application went back to the call's budget (withdrawal, renunciation, "
            "revocation, reduction).",
            FundingReleased,
        ),
        EventType(
            "decision.issued",
            1,
            "evaluation",
            "A concession decree was closed: the decision on an application (funded, partially funded, waiting, "
            "not admitted with every reason).",
            DecisionIssued,
        ),
        EventType(
            "decision.accepted",
            1,
            "evaluation",
            "The company accepted a funded decision: everything monitoring needs to start the project.",
            DecisionAccepted,
        ),
        EventType(
            "decision.renounced",
            1,
            "evaluation",
            "The company renounced a funded decision; the aid goes back to the budget.",
            DecisionRenounced,
        ),
    )
}


def register(event: EventType) -> None:
    """Other services add their event types (evaluation's decisions, monitoring's payments) here."""
    CATALOGUE[event.name] = event


@dataclass(frozen=True)
class SubjectKind:
    """What an event's noun names: the service owning the object and the path reading it there."""

    service: str
    href: str  # a template with `{id}`


# Evaluations and fundings are one per application and are read by the application's id: that is their id.
# A training's events (enrolments, cancellations, the waiting list) are about the training session; the
# enrolment is in `data`. A webhook's (ping) is the subscription `/v1/webhooks/{id}`.
SUBJECTS: dict[str, SubjectKind] = {
    "application": SubjectKind("intake", "/v1/applications/{id}"),
    "call": SubjectKind("intake", "/v1/calls/{id}"),
    "company": SubjectKind("intake", "/v1/companies/{id}"),
    "delegation": SubjectKind("intake", "/v1/delegations/{id}"),
    "engagement": SubjectKind("intake", "/v1/engagements/{id}"),
    "meeting": SubjectKind("intake", "/v1/b2b/meetings/{id}"),
    "training": SubjectKind("intake", "/v1/trainings/{id}"),
    "webhook": SubjectKind("intake", "/v1/webhooks/{id}"),
    "evaluation": SubjectKind("evaluation", "/v1/evaluations/{id}"),
    "funding": SubjectKind("evaluation", "/v1/fundings/{id}"),
    "decision": SubjectKind("evaluation", "/v1/decisions/{id}"),
    "project": SubjectKind("monitoring", "/v1/projects/{id}"),
    "claim": SubjectKind("monitoring", "/v1/claims/{id}"),
    "payment": SubjectKind("monitoring", "/v1/payments/{id}"),
}


def noun(event_type: str) -> str:
    """The noun of `<noun>.<verb>`: the subject's type."""
    return event_type.split(".", 1)[0]


def subject_href(subject_type: str, subject_id: str) -> str | None:
    """The path reading the subject on its owning service (None for a noun outside `SUBJECTS`)."""
    kind = SUBJECTS.get(subject_type)
    return kind.href.format(id=subject_id) if kind is not None else None


class Subject(BaseModel):
    type: str = Field(description="The noun of the event type (`decision` for `decision.accepted`).")
    id: str = Field(description="The UUID of that object.")
    href: str | None = Field(
        None, description="Where the object is read, a path on the service that sent the event (`source`)."
    )


class Envelope(BaseModel):
    """The body of every webhook and of every item of `GET /v1/events`."""

    id: uuid.UUID = Field(description="Event id; also the webhook-id header: deduplicate on it.")
    type: str
    version: int = Field(ge=1, le=INT32_MAX)
    source: str
    occurred_at: datetime
    subject: Subject
    data: dict[str, Any]


def envelope(row: Any) -> dict[str, Any]:
    """The envelope of an outbox row (desk.outbox), JSON-ready."""
    return {
        "id": str(row.event_id),
        "type": row.event_type,
        "version": row.event_version,
        "source": row.source,
        "occurred_at": row.occurred_at.isoformat().replace("+00:00", "Z"),
        "subject": {
            "type": row.aggregate_type,
            "id": row.aggregate_id,
            "href": subject_href(row.aggregate_type, row.aggregate_id),
        },
        "data": row.payload,
    }


# ---------------------------------------------------------------- monitoring's events


class ProjectStarted(_Data):
    project_id: uuid.UUID
    application_id: uuid.UUID
    decision_id: uuid.UUID
    call_id: uuid.UUID
    company_id: uuid.UUID
    partner_id: uuid.UUID | None
    cup: str | None
    cor: str | None
    grant: Decimal
    loan: Decimal
    eligible_total: Decimal
    start_date: date = Field(description="Expenses are eligible from this date (the application's submission).")
    deadline: date = Field(description="The project ends by this date: decree date + the call's duration.")


class PaymentChanged(_Data):
    payment_id: uuid.UUID
    project_id: uuid.UUID
    application_id: uuid.UUID
    call_id: uuid.UUID
    company_id: uuid.UUID
    kind: str = Field(description="advance, balance, or recovery (what the company must give back).")
    status: str = Field(description="ordered, paid, failed or cancelled.")
    amount: Decimal
    cup: str | None
    reason: str | None = Field(None, description="Why it failed or was cancelled.")


class ProjectExtended(_Data):
    project_id: uuid.UUID
    application_id: uuid.UUID
    company_id: uuid.UUID
    previous_deadline: date
    deadline: date
    reason: str


class ProjectCompleted(_Data):
    project_id: uuid.UUID
    application_id: uuid.UUID
    call_id: uuid.UUID
    company_id: uuid.UUID
    outcome: str = Field(description="full, or reduced (in proportion to the spend recognised).")
    approved: Decimal = Field(description="The approved eligible total.")
    recognised: Decimal = Field(description="The spend recognised on the final claim.")
    grant: Decimal = Field(description="Final grant.")
    loan: Decimal = Field(description="Final loan.")
    released: Decimal = Field(description="Aid given back to the call's budget (a reduction); 0 for full aid.")
    balance: Decimal = Field(description="Balance ordered: final grant - advance (0 when nothing is due).")


class ProjectRevoked(_Data):
    project_id: uuid.UUID
    application_id: uuid.UUID
    call_id: uuid.UUID
    company_id: uuid.UUID
    reason_code: str = Field(description="below_threshold, deadline_missed or site_never_opened.")
    reason: str
    recovery: Decimal = Field(description="What the company must give back: everything paid (0 if nothing was).")
    released: Decimal = Field(description="Aid (grant + loan) given back to the call's budget.")


class IbanChangeData(_Data):
    change_id: uuid.UUID
    project_id: uuid.UUID
    application_id: uuid.UUID
    company_id: uuid.UUID
    status: str = Field(description="applied, pending, confirmed, rejected or superseded.")
    iban: str = Field(description="The account asked for.")
    previous_iban: str | None = Field(description="The project's account before the change.")
    holder_name: str
    requested_by: str = Field(description="Client id of who asked for the change.")
    requested_by_kind: str = Field(description="partner, company or officer.")
    decided_by: str | None = Field(description="Client id of who applied, confirmed, rejected or superseded it.")
    reason: str | None = Field(None, description="Why it was rejected or superseded.")


class PaymentReissued(PaymentChanged):
    iban: str = Field(description="The account the order now goes to: the project's current IBAN.")
    previous_iban: str | None = Field(description="The account it was ordered with.")


for _event in (
    EventType(
        "project.started",
        1,
        "monitoring",
        "A project started from an accepted decision: CUP, amounts, eligibility start and deadline.",
        ProjectStarted,
    ),
    EventType(
        "project.extended", 1, "monitoring", "An officer extended the project's deadline (once).", ProjectExtended
    ),
    EventType(
        "project.completed",
        1,
        "monitoring",
        "The final claim was reviewed: full aid or aid reduced in proportion; the balance is ordered.",
        ProjectCompleted,
    ),
    EventType(
        "project.revoked",
        1,
        "monitoring",
        "The aid was revoked (spend below the threshold, deadline missed, Lombardy site never opened): "
        "what was paid is to be recovered and the aid goes back to the call's budget.",
        ProjectRevoked,
    ),
    EventType(
        "payment.ordered", 1, "monitoring", "A payment (advance, balance) or a recovery was ordered.", PaymentChanged
    ),
    EventType(
        "payment.paid",
        1,
        "monitoring",
        "The treasury paid a payment order (or a recovery was collected).",
        PaymentChanged,
    ),
    EventType("payment.failed", 1, "monitoring", "A payment order failed; a new one can be ordered.", PaymentChanged),
    EventType(
        "payment.cancelled", 1, "monitoring", "A payment order not yet paid was cancelled (revocation).", PaymentChanged
    ),
    EventType(
        "payment.reissued",
        1,
        "monitoring",
        "An officer re-issued an open payment order to the project's current account.",
        PaymentReissued,
    ),
    EventType(
        "project.iban_change_requested",
        1,
        "monitoring",
        "A partner asked to change the project's account while a payment is ordered and not yet paid: the "
        "change waits for the company's or an officer's confirmation.",
        IbanChangeData,
    ),
    EventType(
        "project.iban_changed",
        1,
        "monitoring",
        "The project's account changed (at once, or on the company's or an officer's confirmation). "
        "Orders already placed keep their account.",
        IbanChangeData,
    ),
    EventType(
        "project.iban_change_rejected",
        1,
        "monitoring",
        "A pending change of account was rejected by the company or an officer (status rejected), or "
        "replaced by their own change (status superseded).",
        IbanChangeData,
    ),
):
    register(_event)


# ---------------------------------------------------------------- monitoring's reporting (claims) events


class ClaimSubmitted(_Data):
    claim_id: uuid.UUID
    project_id: uuid.UUID
    application_id: uuid.UUID
    call_id: uuid.UUID
    company_id: uuid.UUID
    kind: str = Field(description="intermediate or final.")
    lines: int
    claimed_total: Decimal = Field(description="Sum of the lines' taxable amounts (net of VAT).")
    admissible_total: Decimal = Field(
        description="What the automatic checks would let be recognised, direct costs "
        "plus the flat rates recomputed on them."
    )
    failed_checks: dict[str, int] = Field(description="How many lines failed each check (by check code).")
    submitted_at: datetime


class ClaimReviewed(_Data):
    claim_id: uuid.UUID
    project_id: uuid.UUID
    application_id: uuid.UUID
    call_id: uuid.UUID
    company_id: uuid.UUID
    kind: str
    status: str = Field(description="approved, partially_approved or rejected.")
    claimed_total: Decimal
    recognised_direct: Decimal
    recognised_flat_rates: Decimal
    recognised_total: Decimal = Field(description="Direct costs recognised plus the flat rates recomputed on them.")
    reviewed_at: datetime


for _event in (
    EventType(
        "claim.submitted",
        1,
        "monitoring",
        "An expense claim (rendicontazione) was submitted: its lines were checked automatically.",
        ClaimSubmitted,
    ),
    EventType(
        "claim.reviewed",
        1,
        "monitoring",
        "An officer completed the review of an expense claim: what is recognised.",
        ClaimReviewed,
    ),
):
    register(_event)


class ProjectReminder(_Data):
    project_id: uuid.UUID
    application_id: uuid.UUID
    call_id: uuid.UUID
    company_id: uuid.UUID
    cup: str | None
    kind: str = Field(
        description="milestone, deadline (the project's deadline) or follow_up (a result due after completion)."
    )
    milestone_index: int | None = Field(
        description="Position of the milestone in the action plan (milestones), "
        "or of the result in the follow-up schedule (follow_up)."
    )
    title: str = Field(description="The milestone's title, 'project deadline', or the follow-up KPI and period.")
    due_date: date
    days_before: int = Field(description="The lead time reached (e.g. 30 or 7 days).")
    days_left: int = Field(description="Days from the run's day to the due date.")


register(
    EventType(
        "project.reminder",
        1,
        "monitoring",
        "A milestone or the project's deadline is near (sent once per lead time, e.g. 30 and 7 days before).",
        ProjectReminder,
    )
)
