"""Use cases of merit evaluation.

* A reviewer is an officer, identified by their client id. They may declare, once and for all, a conflict of
  interest with a company; they are then never assigned to its applications (and their open assignments on it
  are cancelled).
* An officer assigns reviewers to an admissible application: two, and a third only when the first two diverge
  (``shared.domain.merit.consensus``). The assignee must declare no conflict for that application before reading
  or scoring it; declaring one cancels the assignment and is recorded like any other conflict.
* Scores are checked against the call's grid (``validate_scores``), saved, then submitted (frozen). When the
  second (or third) review is submitted the consensus and the verdict (``passes``) are stored on the evaluation,
  and a final verdict is announced with ``evaluation.merit_completed``.

Call rules come from intake's API (``services.evaluation.rules.rules_of_call``). Services flush; the route commits.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation.merit import repository
from services.evaluation.models import ConflictDeclaration, Evaluation, ReceivedApplication, ReviewAssignment
from services.evaluation.rules import rules_of_application, rules_of_call
from shared.audit import record_audit, record_event
from shared.auth import Principal
from shared.clients.base import NotFoundAtPeer, PeerUnavailable
from shared.clients.intake import IntakeClient
from shared.domain.call_rules import CallRules
from shared.domain.merit import DEFAULT_DIVERGENCE_THRESHOLD, Consensus, consensus, passes, validate_scores
from shared.errors import (
    ALREADY_EXISTS,
    CONFLICT_OF_INTEREST,
    DECLARATION_REQUIRED,
    PEER_UNAVAILABLE,
    Conflict,
    DeskError,
    NotFound,
    ProblemError,
    ValidationFailed,
)
from shared.routing import Actor, etag_of

ADMISSIBLE_STAGE = "admissible"
REVIEWERS = 2
THIRD_REVIEW = "third_review"
"""Stored value of the `third_review_needed` verdict: `evaluations.merit_verdict` is varchar(16)."""
FINAL_VERDICTS = ("passed", "failed")


# ---------------------------------------------------------------- answers


def conflict_out(row: ConflictDeclaration) -> dict[str, Any]:
    return {
        "id": row.id,
        "reviewer": row.reviewer,
        "company_id": row.company_id,
        "application_id": row.application_id,
        "conflict": row.conflict,
        "statement": row.statement,
        "declared_at": row.declared_at,
    }


def assignment_out(row: ReviewAssignment, app: ReceivedApplication | Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "application_id": row.application_id,
        "call_id": app.call_id,
        "protocol_number": app.protocol_number,
        "reviewer": row.reviewer,
        "assigned_by": row.assigned_by,
        "status": row.status,
        "no_conflict_declared_at": row.no_conflict_declared_at,
        "scores": row.scores,
        "total": row.total,
        "scored_at": row.scored_at,
        "created_at": row.created_at,
        "etag": etag_of(row.version),
    }


def _assignment_state(row: ReviewAssignment) -> dict[str, Any]:
    return {"status": row.status, "scores": row.scores, "total": row.total, "version": row.version}


# ---------------------------------------------------------------- loading


async def get_application(session: AsyncSession, application_id: uuid.UUID) -> ReceivedApplication:
    app = await repository.get_application(session, application_id)
    if app is None:
        raise NotFound()
    return app


async def get_evaluation(session: AsyncSession, application_id: uuid.UUID, *, for_update: bool = False) -> Evaluation:
    """The application's evaluation; 404 for an unknown application, 409 when it has not been evaluated yet."""
    await get_application(session, application_id)
    evaluation = await repository.get_evaluation(session, application_id, for_update=for_update)
    if evaluation is None:
        raise Conflict(
            "La domanda non è ancora stata valutata (ammissibilità).",
            "The application has not been evaluated yet (admissibility).",
            extra={"reason": "not_evaluated"},
        )
    return evaluation


async def get_own_assignment(
    session: AsyncSession, principal: Principal, assignment_id: uuid.UUID, *, for_update: bool = False
) -> ReviewAssignment:
    """The assignment if the caller is its reviewer. Another officer's assignment answers 404, as if absent:
    reviews are independent, and who reviews what is not for the other reviewers to see."""
    row = await repository.get_assignment(session, assignment_id, for_update=for_update)
    if row is None or row.reviewer != principal.client_id:
        raise NotFound()
    return row


# ---------------------------------------------------------------- conflicts of interest


async def declare_conflict(
    *, session: AsyncSession, actor: Actor, intake: IntakeClient, company_id: uuid.UUID, statement: str
) -> dict[str, Any]:
    """The calling reviewer declares a conflict of interest with a company (known to intake)."""
    reviewer = actor.principal.client_id
    if await repository.conflict_with(session, reviewer, company_id) is not None:
        raise DeskError(
            "Hai già dichiarato un conflitto di interessi con questa impresa.",
            "You have already declared a conflict of interest with this company.",
            kind=ALREADY_EXISTS,
        )
    await _company_exists(intake, company_id)
    row = ConflictDeclaration(
        id=uuid.uuid4(),
        reviewer=reviewer,
        company_id=company_id,
        application_id=None,
        conflict=True,
        statement=statement,
    )
    await repository.add(session, row)
    await session.refresh(row)
    await record_audit(
        session,
        actor,
        action="reviewer.conflict_declared",
        resource_type="conflict_declaration",
        resource_id=row.id,
        after=conflict_out(row),
    )
    cancelled = []
    for assignment in await repository.open_assignments_on_company(session, reviewer, company_id):
        await _cancel(session=session, actor=actor, assignment=assignment, reason="conflict_declared")
        cancelled.append(assignment.id)
    return {**conflict_out(row), "cancelled_assignments": cancelled}


async def _company_exists(intake: IntakeClient, company_id: uuid.UUID) -> None:
    try:
        await intake.get_company(company_id)
    except PeerUnavailable as exc:
        raise DeskError(
            "Il servizio delle imprese (intake) non risponde: riprovare più tardi.",
            "The intake service is unreachable: retry later.",
            kind=PEER_UNAVAILABLE,
            headers={"Retry-After": "30"},
            extra={"peer": exc.peer},
        ) from exc
    except NotFoundAtPeer:
        raise ValidationFailed(
            errors=[ProblemError("company_unknown", "/company_id", "Impresa sconosciuta.", "Unknown company.")]
        ) from None


async def _cancel(*, session: AsyncSession, actor: Actor, assignment: ReviewAssignment, reason: str) -> None:
    before = _assignment_state(assignment)
    assignment.status = "cancelled"
    assignment.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="assignment.cancelled",
        resource_type="review_assignment",
        resource_id=assignment.id,
        before=before,
        after={**_assignment_state(assignment), "reason": reason},
    )


# ---------------------------------------------------------------- assignments


async def assign_reviewer(
    *, session: AsyncSession, actor: Actor, application_id: uuid.UUID, reviewer: str
) -> tuple[ReviewAssignment, ReceivedApplication]:
    app = await get_application(session, application_id)
    # The evaluation row is the lock that serialises the assignments of one application.
    evaluation = await get_evaluation(session, application_id, for_update=True)
    if evaluation.stage != ADMISSIBLE_STAGE or app.status != "received":
        raise Conflict(
            "Solo una domanda ammissibile può essere assegnata a un valutatore.",
            "Only an admissible application can be assigned to a reviewer.",
            extra={"reason": "not_admissible", "stage": evaluation.stage, "application_status": app.status},
        )
    if not await repository.officer_exists(session, reviewer):
        raise ValidationFailed(
            errors=[
                ProblemError(
                    "reviewer_unknown",
                    "/reviewer",
                    "Il valutatore non è un funzionario attivo.",
                    "The reviewer is not an active officer.",
                )
            ]
        )
    if await repository.conflict_with(session, reviewer, app.company_id) is not None:
        raise DeskError(
            "Il valutatore ha dichiarato un conflitto di interessi con l'impresa richiedente.",
            "The reviewer declared a conflict of interest with the applicant company.",
            kind=CONFLICT_OF_INTEREST,
            extra={"reason": "conflict_of_interest", "reviewer": reviewer},
        )
    existing = await repository.assignments_of(session, application_id)
    if any(a.reviewer == reviewer for a in existing):
        raise Conflict(
            "Il valutatore è già stato assegnato a questa domanda.",
            "The reviewer has already been assigned to this application.",
            extra={"reason": "already_assigned", "reviewer": reviewer},
        )
    if evaluation.merit_verdict in FINAL_VERDICTS:
        raise Conflict(
            "La valutazione di merito della domanda è già conclusa.",
            "The merit evaluation of this application is already final.",
            extra={"reason": "merit_final"},
        )
    active = [a for a in existing if a.status in repository.ACTIVE_STATUSES]
    allowed = REVIEWERS + (1 if evaluation.merit_verdict == THIRD_REVIEW else 0)
    if len(active) >= allowed:
        raise Conflict(
            f"La domanda ha già {len(active)} valutatori: un terzo solo se i primi due divergono.",
            f"The application already has {len(active)} reviewers: a third one only when the first two diverge.",
            extra={"reason": "reviewers_complete", "reviewers": len(active)},
        )
    row = ReviewAssignment(
        id=uuid.uuid4(),
        application_id=application_id,
        reviewer=reviewer,
        assigned_by=actor.principal.client_id,
        status="assigned",
        version=1,
    )
    await repository.add(session, row)
    await session.refresh(row)
    await record_audit(
        session,
        actor,
        action="assignment.created",
        resource_type="review_assignment",
        resource_id=row.id,
        after={"application_id": application_id, "reviewer": reviewer, "status": row.status},
    )
    return row, app


async def declare(
    *, session: AsyncSession, actor: Actor, assignment: ReviewAssignment, no_conflict: bool, statement: str
) -> ReceivedApplication:
    """The assignee's declaration for this application: none (they may now read and score) or a conflict
    (the assignment is cancelled and the conflict bars them from the company's applications)."""
    if assignment.status != "assigned":
        raise Conflict(
            "La dichiarazione per questa assegnazione è già stata resa.",
            "The declaration for this assignment has already been made.",
            extra={"reason": "already_declared", "status": assignment.status},
        )
    app = await get_application(session, assignment.application_id)
    declaration = ConflictDeclaration(
        id=uuid.uuid4(),
        reviewer=assignment.reviewer,
        company_id=app.company_id,
        application_id=app.application_id,
        conflict=not no_conflict,
        statement=statement,
    )
    await repository.add(session, declaration)
    await session.refresh(declaration)
    await record_audit(
        session,
        actor,
        action="reviewer.conflict_declared" if not no_conflict else "reviewer.no_conflict_declared",
        resource_type="conflict_declaration",
        resource_id=declaration.id,
        after=conflict_out(declaration),
    )
    if not no_conflict:
        await _cancel(session=session, actor=actor, assignment=assignment, reason="conflict_declared")
        return app
    before = _assignment_state(assignment)
    assignment.status = "declared"
    assignment.no_conflict_declared_at = declaration.declared_at
    assignment.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="assignment.declared",
        resource_type="review_assignment",
        resource_id=assignment.id,
        before=before,
        after=_assignment_state(assignment),
    )
    return app


def _require_declared(assignment: ReviewAssignment) -> None:
    if assignment.status == "assigned":
        raise DeskError(
            "Prima di leggere o valutare la domanda dichiara l'assenza di conflitti di interessi "
            f"(POST /v1/assignments/{assignment.id}/declaration).",
            "Declare that you have no conflict of interest before reading or scoring the application "
            f"(POST /v1/assignments/{assignment.id}/declaration).",
            kind=DECLARATION_REQUIRED,
            extra={"declaration_url": f"/v1/assignments/{assignment.id}/declaration"},
        )
    if assignment.status == "cancelled":
        raise Conflict(
            "L'assegnazione è stata annullata per conflitto di interessi.",
            "The assignment was cancelled for a conflict of interest.",
            extra={"reason": "cancelled"},
        )


async def application_for_review(*, session: AsyncSession, assignment: ReviewAssignment) -> dict[str, Any]:
    _require_declared(assignment)
    app = await get_application(session, assignment.application_id)
    return {
        "assignment_id": assignment.id,
        "application_id": app.application_id,
        "call_id": app.call_id,
        "protocol_number": app.protocol_number,
        "submitted_at": app.submitted_at,
        "snapshot": app.snapshot,
    }


# ---------------------------------------------------------------- scores


def _pointer(code: str) -> str:
    return "/scores/" + code.replace("~", "~0").replace("/", "~1") + "/points"


def _require_open(assignment: ReviewAssignment) -> None:
    _require_declared(assignment)
    if assignment.status == "submitted":
        raise Conflict(
            "La valutazione è già stata inviata: non si può modificare né inviare di nuovo.",
            "The review has already been submitted: it cannot be changed or submitted again.",
            extra={"reason": "review_submitted"},
        )


async def save_review(
    *,
    session: AsyncSession,
    actor: Actor,
    intake: IntakeClient,
    assignment: ReviewAssignment,
    scores: dict[str, dict[str, Any]],
) -> ReceivedApplication:
    _require_open(assignment)
    app = await get_application(session, assignment.application_id)
    rules = await rules_of_application(intake, app)  # the version it was submitted under
    problems = validate_scores(rules, {code: s["points"] for code, s in scores.items()})
    if problems:
        raise ValidationFailed(
            errors=[ProblemError(p.code, _pointer(p.criterion), p.message_it, p.message_en) for p in problems]
        )
    ordered = {c.code: scores[c.code] for c in rules.scoring.criteria}
    before = _assignment_state(assignment)
    assignment.scores = ordered
    assignment.total = Decimal(sum(s["points"] for s in ordered.values()))
    assignment.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="review.saved",
        resource_type="review_assignment",
        resource_id=assignment.id,
        before=before,
        after=_assignment_state(assignment),
    )
    return app


async def submit_review(
    *, session: AsyncSession, actor: Actor, intake: IntakeClient, assignment: ReviewAssignment
) -> ReceivedApplication:
    """Freeze the reviewer's scores; with the second (or third) review, compute the consensus and the verdict."""
    _require_open(assignment)
    if assignment.scores is None:
        raise Conflict(
            "Non ci sono punteggi da inviare: salvarli prima con PUT /review.",
            "There are no scores to submit: save them first with PUT /review.",
            extra={"reason": "review_empty"},
        )
    app = await get_application(session, assignment.application_id)
    rules = await rules_of_application(intake, app)  # the version it was submitted under
    # Re-checked: the grid is the call's, and the call may have been amended since the scores were saved.
    problems = validate_scores(rules, {code: s["points"] for code, s in assignment.scores.items()})
    if problems:
        raise ValidationFailed(
            errors=[ProblemError(p.code, _pointer(p.criterion), p.message_it, p.message_en) for p in problems]
        )
    evaluation = await get_evaluation(session, app.application_id, for_update=True)
    before = _assignment_state(assignment)
    assignment.status = "submitted"
    assignment.scored_at = await repository.now(session)
    assignment.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="review.submitted",
        resource_type="review_assignment",
        resource_id=assignment.id,
        before=before,
        after=_assignment_state(assignment),
    )
    await _conclude(session=session, actor=actor, app=app, evaluation=evaluation, rules=rules)
    return app


def _consensus_of(submitted: list[ReviewAssignment]) -> Consensus | None:
    """Consensus of the submitted reviews, in submission order: a, b, and c for a third review."""
    if len(submitted) < REVIEWERS:
        return None
    points = [{code: int(s["points"]) for code, s in (r.scores or {}).items()} for r in submitted]
    return consensus(points[0], points[1], scores_c=points[2] if len(points) > REVIEWERS else None)


async def _conclude(
    *, session: AsyncSession, actor: Actor, app: ReceivedApplication, evaluation: Evaluation, rules: CallRules
) -> None:
    submitted = [a for a in await repository.assignments_of(session, app.application_id) if a.status == "submitted"]
    result = _consensus_of(submitted)
    if result is None:
        return
    if result.total is None:
        verdict, score = THIRD_REVIEW, None
    else:
        verdict, score = ("passed" if passes(result.total, rules) else "failed"), result.total
    if (evaluation.merit_verdict, evaluation.score) == (verdict, score):
        return
    before = {"score": evaluation.score, "merit_verdict": evaluation.merit_verdict, "version": evaluation.version}
    evaluation.score = score
    evaluation.merit_verdict = verdict
    evaluation.version += 1
    evaluation.updated_at = await repository.now(session)
    await session.flush()
    after = {
        "score": score,
        "merit_verdict": verdict,
        "version": evaluation.version,
        "totals": list(result.totals),
        "divergence": result.divergence,
        "averaged": list(result.averaged),
    }
    await record_audit(
        session,
        actor,
        action="evaluation.merit_concluded",
        resource_type="evaluation",
        resource_id=app.application_id,
        before=before,
        after=after,
    )
    if score is not None:
        partner = app.snapshot.get("partner_id")
        await record_event(
            session,
            actor,
            event_type="evaluation.merit_completed",
            subject_type="evaluation",
            subject_id=app.application_id,
            payload={
                "application_id": str(app.application_id),
                "call_id": str(app.call_id),
                "company_id": str(app.company_id),
                "score": str(score),
                "verdict": verdict,
                "pass_mark": rules.scoring.pass_mark,
                "reviews": len(result.totals),
            },
            partner_id=uuid.UUID(partner) if partner else None,
            company_id=app.company_id,
        )


# ---------------------------------------------------------------- the merit view and the credit class


async def merit_of(*, session: AsyncSession, intake: IntakeClient, application_id: uuid.UUID) -> dict[str, Any]:
    evaluation = await get_evaluation(session, application_id)
    rules = await rules_of_call(intake, evaluation.call_id)
    assignments = await repository.assignments_of(session, application_id)
    final = evaluation.merit_verdict in FINAL_VERDICTS
    result = _consensus_of([a for a in assignments if a.status == "submitted"])
    share = _share(rules, evaluation.credit_class)
    return {
        "application_id": application_id,
        "call_id": evaluation.call_id,
        "stage": evaluation.stage,
        "score": evaluation.score,
        "merit_verdict": verdict_out(evaluation.merit_verdict),
        "pass_mark": rules.scoring.pass_mark,
        "max_total": rules.scoring.max_total,
        "consensus": None
        if result is None or not final
        else {
            "totals": list(result.totals),
            "divergence": result.divergence,
            "divergence_threshold": DEFAULT_DIVERGENCE_THRESHOLD,
            "averaged": list(result.averaged),
        },
        "credit_class": evaluation.credit_class,
        "loan_cap_share": share,
        "loan_excluded": None if share is None else share == 0,
        "reviews": [
            {
                "assignment_id": a.id,
                "reviewer": a.reviewer,
                "status": a.status,
                "total": a.total if final and a.status == "submitted" else None,
                "scored_at": a.scored_at,
            }
            for a in assignments
        ],
        "etag": etag_of(evaluation.version),
    }


def verdict_out(stored: str | None) -> str | None:
    """The verdict as the API says it (`MeritVerdict`): the stored `third_review` is `third_review_needed`."""
    return "third_review_needed" if stored == THIRD_REVIEW else stored


def _share(rules: CallRules, class_code: str | None) -> Decimal | None:
    if class_code is None:
        return None
    try:
        return rules.loan_cap_share(class_code)
    except KeyError:
        return None


async def set_credit_class(
    *, session: AsyncSession, actor: Actor, intake: IntakeClient, evaluation: Evaluation, class_code: str
) -> dict[str, Any]:
    if evaluation.stage != ADMISSIBLE_STAGE:
        raise Conflict(
            "La classe di merito creditizio si attribuisce solo a una domanda ammissibile.",
            "A credit-scoring class is given only to an admissible application.",
            extra={"reason": "not_admissible", "stage": evaluation.stage},
        )
    rules = await rules_of_call(intake, evaluation.call_id)
    share = _share(rules, class_code)
    if share is None:
        known = ", ".join(c.class_code for c in rules.credit_scoring.classes)
        raise ValidationFailed(
            errors=[
                ProblemError(
                    "credit_class_unknown",
                    "/class_code",
                    f"Classe '{class_code}' sconosciuta: il bando prevede {known}.",
                    f"Unknown class '{class_code}': the call has {known}.",
                    extra={"allowed": known.split(", ")},
                )
            ]
        )
    before = {"credit_class": evaluation.credit_class, "version": evaluation.version}
    if evaluation.credit_class != class_code:
        evaluation.credit_class = class_code
        evaluation.version += 1
        evaluation.updated_at = await repository.now(session)
        await session.flush()
        await record_audit(
            session,
            actor,
            action="evaluation.credit_class_set",
            resource_type="evaluation",
            resource_id=evaluation.application_id,
            before=before,
            after={"credit_class": class_code, "loan_cap_share": share, "version": evaluation.version},
        )
    excluded = share == 0
    return {
        "application_id": evaluation.application_id,
        "credit_class": class_code,
        "loan_cap_share": share,
        "loan_excluded": excluded,
        "note": "Loan excluded: the call grants no loan to this credit-scoring class (loan_cap_share 0)."
        if excluded
        else None,
        "etag": etag_of(evaluation.version),
    }
