"""Use cases of the application's formalities: the stamp duty, the form as a PDF, the legal representative's
signed copy. None of them runs inside the click-day submit: the form is rendered on its first read.

Only the intake service writes `intake.applications` (stamp duty, form_signed_at) and `intake.application_forms`.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.applications import repository
from services.intake.applications.form import form_lines, render_pdf
from services.intake.applications.schemas import StampDutyIn
from services.intake.applications.service import record_precheck
from services.intake.applications.signature import SignatureRefused, load_trust_roots, verify_signed_form
from services.intake.calls.service import rules_of_version
from services.intake.models import Application, ApplicationForm, Company
from shared.audit import record_audit, record_event
from shared.errors import (
    FORM_OTHER_DOCUMENT,
    FORM_SIGNATURE_LATE,
    FORM_SIGNATURE_UNTRUSTED,
    FORM_SIGNER_NOT_LEGAL_REPRESENTATIVE,
    FORM_TAMPERED,
    FORM_UNSIGNED,
    STAMP_DUTY_REUSED,
    Conflict,
    DeskError,
    NotFound,
)
from shared.routing import Actor

_REFUSALS = {
    "unsigned": (
        FORM_UNSIGNED,
        "Il file non è la domanda firmata digitalmente (PAdES).",
        "The file is not a signed PDF.",
    ),
    "tampered": (
        FORM_TAMPERED,
        "La domanda è stata modificata dopo la firma, o la firma non corrisponde al documento.",
        "The form was altered after signing, or the signature does not match the document.",
    ),
    "other_document": (
        FORM_OTHER_DOCUMENT,
        "La firma non è apposta sulla domanda prodotta dallo sportello.",
        "The signature is not on the form the desk produced.",
    ),
    "untrusted": (
        FORM_SIGNATURE_UNTRUSTED,
        "Il certificato di firma non è qualificato o non era valido al momento della firma.",
        "The signing certificate is not trusted or was not valid when signing.",
    ),
    "signer": (
        FORM_SIGNER_NOT_LEGAL_REPRESENTATIVE,
        "Il firmatario non è il legale rappresentante dell'impresa.",
        "The signer is not the company's legal representative.",
    ),
}


def _submitted(app: Application) -> dict[str, Any]:
    if app.status != "submitted" or app.receipt is None:
        raise NotFound("La domanda non è stata presentata.", "The application has not been submitted.")
    return app.receipt


# ---------------------------------------------------------------- stamp duty


def stamp_duty_out(app: Application) -> dict[str, Any]:
    if app.stamp_duty_id is None:
        raise NotFound("Nessuna marca da bollo dichiarata.", "No stamp duty declared.")
    return {"identifier": app.stamp_duty_id, "issued_on": app.stamp_duty_issued_on}


async def declare_stamp_duty(
    *, session: AsyncSession, actor: Actor, app: Application, body: StampDutyIn
) -> dict[str, Any]:
    """Declares the stamp duty of a draft, once; an identifier already on another application is refused."""
    if app.status != "draft":
        raise Conflict(
            "La marca da bollo si dichiara prima della presentazione.",
            "The stamp duty is declared before submission.",
            extra={"application_status": app.status},
        )
    if app.stamp_duty_id is not None:
        raise Conflict(
            "La marca da bollo di questa domanda è già dichiarata.",
            "This application's stamp duty is already declared.",
        )
    reused = DeskError(
        f"La marca da bollo {body.identifier} è già dichiarata su un'altra domanda.",
        f"The stamp duty {body.identifier} is already declared on another application.",
        kind=STAMP_DUTY_REUSED,
    )
    taken = await session.scalar(select(Application.id).where(Application.stamp_duty_id == body.identifier))
    if taken is not None:
        raise reused
    try:
        async with session.begin_nested():  # a concurrent declaration of the same stamp meets the unique index
            app.stamp_duty_id, app.stamp_duty_issued_on = body.identifier, body.issued_on
            await session.flush()
    except IntegrityError:
        raise reused from None
    # the stamp may be what the draft's pre-check was missing: keep its verdict current for the click-day path
    await record_precheck(await repository.driver_connection(session), app.id)
    out = stamp_duty_out(app)
    await record_audit(
        session,
        actor,
        action="application.stamp_duty_declared",
        resource_type="application",
        resource_id=app.id,
        before=None,
        after=out,
    )
    return out


# ---------------------------------------------------------------- the form


async def render_form(session: AsyncSession, app: Application) -> bytes:
    """The form's PDF, rendered from the submitted content and receipt (the same bytes every time)."""
    receipt = _submitted(app)
    lines = await repository.lines_of(session, app.id)
    text = form_lines(
        receipt=receipt,
        title=app.title,
        action_plan=app.action_plan,
        expense_lines=[
            {
                "category": ln.category,
                "description": ln.description,
                "amount": f"{ln.amount:.2f}",
                "target_market": ln.target_market,
                "supplier": ln.supplier,
            }
            for ln in lines
        ],
        flat_rates=list(app.flat_rates or []),
        network=app.network,
        de_minimis_declarations=app.de_minimis_declarations or [],
        stamp_duty_id=app.stamp_duty_id,
        stamp_duty_issued_on=app.stamp_duty_issued_on.isoformat() if app.stamp_duty_issued_on else None,
    )
    instant = datetime.fromisoformat(str(receipt["submitted_at"]).replace("Z", "+00:00"))
    return render_pdf(text, title=f"Domanda n. {receipt['protocol_number']} - {receipt['call_code']}", instant=instant)


async def form_pdf(session: AsyncSession, app: Application) -> tuple[bytes, str]:
    """The form and its SHA-256; the first read stores the hash (what the legal representative must sign)."""
    pdf = await render_form(session, app)
    digest = hashlib.sha256(pdf).hexdigest()
    await session.execute(
        insert(ApplicationForm)
        .values(application_id=app.id, form_sha256=digest)
        .on_conflict_do_nothing(index_elements=[ApplicationForm.application_id])
    )
    stored = await session.scalar(select(ApplicationForm.form_sha256).where(ApplicationForm.application_id == app.id))
    if stored != digest:  # the renderer changed under a stored form: never serve a document other than the first
        raise DeskError("Il modulo della domanda non è più riproducibile.", "The application form is not reproducible.")
    return pdf, digest


def repr_digest(digest_hex: str) -> str:
    """RFC 9530 Repr-Digest of the form."""
    return "sha-256=:" + base64.b64encode(bytes.fromhex(digest_hex)).decode() + ":"


# ---------------------------------------------------------------- the signed form


def signed_form_out(app: Application, form: ApplicationForm | None) -> dict[str, Any]:
    if form is None or form.signed_at is None:
        raise NotFound("La domanda firmata non è stata caricata.", "The signed form has not been uploaded.")
    return {
        "application_id": app.id,
        "form_sha256": form.form_sha256,
        "signed_sha256": form.signed_sha256,
        "signer_fiscal_code": form.signer_fiscal_code,
        "signing_time": form.signing_time,
        "signed_at": form.signed_at,
    }


async def get_form_row(session: AsyncSession, app: Application) -> ApplicationForm | None:
    return await session.get(ApplicationForm, app.id)


async def accept_signed_form(
    *,
    session: AsyncSession,
    actor: Actor,
    app: Application,
    signed: bytes,
    trust_roots: list[Path],
    now: datetime | None = None,
) -> dict[str, Any]:
    """Verifies the legal representative's signed copy of the form and records it; any refusal changes nothing."""
    receipt = _submitted(app)
    now = now or datetime.now(UTC)
    if app.form_signed_at is not None:
        raise Conflict("La domanda firmata è già stata accettata.", "The signed form was already accepted.")
    assert app.submitted_at is not None and app.call_version is not None
    rules = await rules_of_version(session, app.call_id, app.call_version)
    deadline = app.submitted_at + timedelta(days=rules.formalities.signature_days)
    if now > deadline:
        raise DeskError(
            f"Il termine per caricare la domanda firmata è scaduto il {deadline.isoformat()}.",
            f"The deadline for the signed form passed at {deadline.isoformat()}.",
            kind=FORM_SIGNATURE_LATE,
            extra={"deadline": deadline.isoformat()},
        )
    form, _ = await form_pdf(session, app)
    company = await session.get(Company, app.company_id)
    assert company is not None
    try:
        verified = await verify_signed_form(
            signed, form=form, trust_roots=load_trust_roots(trust_roots), not_before=app.submitted_at, now=now
        )
    except SignatureRefused as refused:
        kind, it, en = _REFUSALS[refused.reason]
        raise DeskError(it, en, kind=kind, extra={"reason": refused.reason}) from None
    legal = (company.legal_representative_fiscal_code or "").upper()
    if verified.signer_fiscal_code != legal:
        kind, it, en = _REFUSALS["signer"]
        if not legal:
            it += " Nessun legale rappresentante è registrato per l'impresa."
            en += " No legal representative is registered for the company."
        raise DeskError(it, en, kind=kind, extra={"reason": "signer"})
    row = await session.get(ApplicationForm, app.id, with_for_update=True)
    assert row is not None
    row.signed_pdf, row.signed_sha256 = signed, hashlib.sha256(signed).hexdigest()
    row.signer_fiscal_code, row.signing_time = verified.signer_fiscal_code, verified.signing_time
    row.signed_at, row.signed_by = now, actor.principal.client_id
    app.form_signed_at = now
    await session.flush()
    out = signed_form_out(app, row)
    await record_audit(
        session,
        actor,
        action="application.form_signed",
        resource_type="application",
        resource_id=app.id,
        before={"form_signed_at": None},
        after=out,
    )
    await record_event(
        session,
        actor,
        event_type="application.form_signed",
        subject_type="application",
        subject_id=app.id,
        partner_id=app.partner_id,
        company_id=app.company_id,
        payload={
            **out,
            "call_id": app.call_id,
            "company_id": app.company_id,
            "protocol_number": receipt["protocol_number"],
        },
    )
    return out
