"""The application's formalities as rules: the stamp duty a call requires before submission, and the signed
form its admissibility waits for.

Pure functions over the call's rules and a few facts; intake applies the first to its pre-check (so the
click-day path, which commits a kept verdict, refuses what the ordinary submit refuses), evaluation applies
the second before it runs admissibility. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from shared.domain.application_check import CheckResult, Problem
from shared.domain.call_rules import CallRules

STAMP_DUTY_MISSING = "stamp_duty_missing"
#: the admissibility check a missing signed form fails (its reason code in the evaluation's checks).
SIGNED_FORM_CHECK = "signed_form"

Gate = Literal["run", "awaiting_signature", "signature_missing"]


def stamp_duty_problem(rules: CallRules, *, declared: bool) -> Problem | None:
    """The blocking problem of a draft whose call requires a stamp duty that is not declared yet."""
    if declared or not rules.formalities.stamp_duty_required:
        return None
    amount = rules.formalities.stamp_duty
    return Problem(
        code=STAMP_DUTY_MISSING,
        path="/stamp_duty",
        message_it=f"Manca la marca da bollo (EUR {amount}): dichiararne identificativo e data di emissione "
        "prima di presentare la domanda.",
        message_en=f"The stamp duty (EUR {amount}) is missing: declare its identifier and issue date before "
        "submitting the application.",
        article=rules.article("submission"),
        blocking=True,
    )


def with_formalities(rules: CallRules, result: CheckResult, *, stamp_duty_declared: bool) -> CheckResult:
    """The pre-check's result with the formalities' problems added (they block submission)."""
    problem = stamp_duty_problem(rules, declared=stamp_duty_declared)
    if problem is None:
        return result
    return replace(result, problems=(*result.problems, problem), blocking=True)


def signature_deadline(rules: CallRules, submitted_at: datetime) -> datetime:
    """The last instant the legal representative's signed form is accepted."""
    return submitted_at + timedelta(days=rules.formalities.signature_days)


@dataclass(frozen=True)
class SignatureGate:
    state: Gate
    deadline: datetime | None


def admissibility_gate(
    rules: CallRules, *, submitted_at: datetime, form_signed_at: datetime | None, now: datetime
) -> SignatureGate:
    """Whether admissibility may run for a submitted application.

    `run`: the call requires no signed form, or a valid one was accepted. `awaiting_signature`: the call
    requires it and its deadline has not passed. `signature_missing`: the deadline passed without it (the
    application is not admissible)."""
    if not rules.formalities.signed_form_required:
        return SignatureGate("run", None)
    deadline = signature_deadline(rules, submitted_at)
    if form_signed_at is not None:
        return SignatureGate("run", deadline)
    return SignatureGate("awaiting_signature" if now <= deadline else "signature_missing", deadline)
