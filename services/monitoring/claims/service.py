"""Use cases of the reporting (rendicontazione): open a claim, add and remove its lines, attach evidence
(FatturaPA read), submit it (the automatic checks run and are stored per line), and the officer's review
(per-line outcome, then the recognised total; a final claim decides the project's outcome).

Every change locks the claim row first, then checks its state and `If-Match`: concurrent changes queue and the
second one sees the first. The services never commit (the route's unit of work does).
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.claims import repository
from services.monitoring.models import Claim, ClaimLine, EvidenceFile, Project
from services.monitoring.peers import fetch_application, rules_of_call
from services.monitoring.projects.service import apply_outcome
from services.monitoring.storage import Storage, content_key
from shared import four_eyes
from shared.audit import record_audit, record_event
from shared.auth import Principal
from shared.clients.evaluation import EvaluationClient
from shared.clients.intake import IntakeClient
from shared.domain import reporting
from shared.domain.call_rules import CallRules
from shared.domain.fatturapa import FatturaPAError, parse_fatturapa
from shared.domain.money import ZERO
from shared.errors import (
    EVIDENCE_TYPE_MISMATCH,
    EVIDENCE_TYPE_NOT_ALLOWED,
    INVOICE_ALREADY_CLAIMED,
    PAYLOAD_TOO_LARGE,
    Conflict,
    DeskError,
    NotFound,
    ProblemError,
    ValidationFailed,
)
from shared.i18n import Lang
from shared.models import MoneyConfirmation
from shared.routing import Actor, check_if_match_value, etag_of

CLOSED_PROJECT = ("revoked", "completed")


# ---------------------------------------------------------------- reading


async def get_project(session: AsyncSession, principal: Principal, project_id: uuid.UUID) -> Project:
    p = await repository.project(session, project_id, principal)
    if p is None:
        raise NotFound()
    return p


async def get_claim(session: AsyncSession, principal: Principal, claim_id: uuid.UUID) -> tuple[Claim, Project]:
    found = await repository.claim(session, claim_id, principal)
    if found is None:
        raise NotFound()
    return found


async def get_line(session: AsyncSession, claim: Claim, line_id: uuid.UUID) -> ClaimLine:
    ln = await repository.line(session, claim.id, line_id)
    if ln is None:
        raise NotFound()
    return ln


def evidence_out(e: EvidenceFile) -> dict[str, Any]:
    return {
        "id": e.id,
        "claim_line_id": e.claim_line_id,
        "filename": e.filename,
        "media_type": e.media_type,
        "size_bytes": e.size_bytes,
        "sha256": e.sha256,
        "invoice_data": e.invoice_data,
        "uploaded_at": e.uploaded_at,
        "download_url": f"/v1/evidence/{e.id}",
    }


def check_item(ch: dict[str, Any], lang: Lang) -> dict[str, Any]:
    """A stored check (shared.domain.reporting.CheckResult.as_json) as the desk's verdict item."""
    return {
        "code": ch["code"],
        "outcome": ch["status"],
        "blocking": bool(ch.get("blocking")),
        "path": None,
        "article": None,
        "message": ch["message_it"] if lang == "it" else ch["message_en"],
        "message_it": ch["message_it"],
        "message_en": ch["message_en"],
        "details": ch.get("details") or {},
    }


def line_out(ln: ClaimLine, evidence: list[EvidenceFile], lang: Lang = "it") -> dict[str, Any]:
    return {
        "id": ln.id,
        "claim_id": ln.claim_id,
        "project_id": ln.project_id,
        "kind": ln.kind,
        "supplier_vat": ln.supplier_vat,
        "supplier_name": ln.supplier_name,
        "document_number": ln.document_number,
        "issue_date": ln.issue_date,
        "taxable_amount": ln.taxable_amount,
        "category": ln.category,
        "market": ln.market,
        "payment_date": ln.payment_date,
        "payment_method": ln.payment_method,
        "cup_quoted": ln.cup_quoted,
        "checks": [check_item(ch, lang) for ch in ln.checks or []],
        "outcome": ln.outcome,
        "recognised_amount": ln.recognised_amount,
        "officer_note": ln.officer_note,
        "evidence": [evidence_out(e) for e in evidence],
        "created_at": ln.created_at,
    }


def claim_out(c: Claim) -> dict[str, Any]:
    return {
        "id": c.id,
        "project_id": c.project_id,
        "kind": c.kind,
        "status": c.status,
        "claimed_total": c.claimed_total,
        "recognised_total": c.recognised_total,
        "submitted_at": c.submitted_at,
        "reviewed_at": c.reviewed_at,
        "review": c.review,
        "etag": etag_of(c.version),
        "created_at": c.created_at,
    }


async def claim_detail(session: AsyncSession, c: Claim, lang: Lang = "it") -> dict[str, Any]:
    lines = await repository.lines(session, c.id)
    files = await repository.evidence_of(session, [ln.id for ln in lines])
    by_line: dict[uuid.UUID, list[EvidenceFile]] = {}
    for f in files:
        by_line.setdefault(f.claim_line_id, []).append(f)
    return {**claim_out(c), "lines": [line_out(ln, by_line.get(ln.id, []), lang) for ln in lines]}


# ---------------------------------------------------------------- the approved budget


def approved_budget(project: Project) -> reporting.ApprovedBudget:
    """The project's approved budget (rows `{dimension: category|market, category, kind, country, amount}`)."""
    by_category: dict[str, Decimal] = {}
    by_market: dict[str | None, Decimal] = {}
    flat: set[str] = set()
    for row in project.approved_budget or []:
        amount = Decimal(str(row.get("amount", "0")))
        dimension = row.get("dimension") or ("category" if row.get("category") else "market")
        if dimension == "category" and row.get("category"):
            if row.get("kind") == "flat_rate":
                if amount > 0:
                    flat.add(str(row["category"]))
            else:
                by_category[str(row["category"])] = by_category.get(str(row["category"]), ZERO) + amount
        elif dimension == "market":
            country = row.get("country")
            by_market[country] = by_market.get(country, ZERO) + amount
    return reporting.ApprovedBudget(by_category=by_category, by_market=by_market, flat_rates=frozenset(flat))


def approved_categories(project: Project) -> list[str]:
    return sorted(c for c, a in approved_budget(project).by_category.items() if a > 0)


# ---------------------------------------------------------------- claims and lines


def _require_draft(c: Claim) -> None:
    if c.status != "draft":
        raise Conflict(
            "La rendicontazione è già stata presentata: non si può più modificare.",
            "The claim was already submitted: it can no longer be changed.",
            extra={"claim_status": c.status},
        )


async def create_claim(*, session: AsyncSession, actor: Actor, project: Project, kind: str) -> Claim:
    # the project row is the lock that keeps "one open claim per project" true under concurrency
    locked = await repository.project(session, project.id, actor.principal, for_update=True)
    assert locked is not None
    if locked.status in CLOSED_PROJECT:
        raise Conflict(
            f"Il progetto è {'revocato' if locked.status == 'revoked' else 'concluso'}: "
            "non si possono presentare rendicontazioni.",
            f"The project is {locked.status}: no claim can be filed.",
            extra={"project_status": locked.status},
        )
    drafts = await repository.claims_with_status(session, locked.id, repository.OPEN_STATUSES)
    if drafts:
        raise Conflict(
            "Esiste già una rendicontazione in bozza per il progetto.",
            "The project already has a draft claim.",
            extra={"claim_id": str(drafts[0].id)},
        )
    finals = await repository.claims_with_status(
        session, locked.id, ("submitted", "approved", "partially_approved"), kind="final"
    )
    if finals:
        raise Conflict(
            "La rendicontazione finale è già stata presentata.",
            "The final claim was already filed.",
            extra={"claim_id": str(finals[0].id)},
        )
    c = Claim(
        id=uuid.uuid4(),
        project_id=locked.id,
        kind=kind,
        status="draft",
        claimed_total=ZERO,
        version=1,
        created_by=actor.principal.client_id,
    )
    session.add(c)
    await session.flush()
    await session.refresh(c)
    await record_audit(
        session,
        actor,
        action="claim.created",
        resource_type="claim",
        resource_id=c.id,
        after={"project_id": str(locked.id), "kind": kind, "status": "draft"},
    )
    return c


async def add_line(
    *, session: AsyncSession, actor: Actor, claim: Claim, project: Project, if_match: str | None, data: dict[str, Any]
) -> tuple[Claim, ClaimLine]:
    c = await repository.lock_claim(session, claim.id)
    _require_draft(c)
    check_if_match_value(if_match, c.version)
    categories = approved_categories(project)
    if data["category"] not in categories:
        raise ValidationFailed(
            errors=[
                ProblemError(
                    "category_not_approved",
                    "/category",
                    f"La categoria {data['category']} non è tra quelle approvate per il progetto "
                    f"({', '.join(categories)}).",
                    f"Category {data['category']} is not among the project's approved ones ({', '.join(categories)}).",
                    extra={"approved_categories": categories},
                )
            ]
        )
    ln = ClaimLine(id=uuid.uuid4(), claim_id=c.id, project_id=project.id, outcome="pending", checks=[], **data)
    try:
        async with session.begin_nested():
            session.add(ln)
            await session.flush()
    except IntegrityError as exc:
        if not repository.is_duplicate_invoice(exc):
            raise
        raise DeskError(
            "Questo documento (stesso fornitore, numero e data) è già stato rendicontato, in questo o in un altro "
            "progetto: non si può rendicontare due volte.",
            "This document (same supplier, number and date) is already claimed, in this or another project: it "
            "cannot be claimed twice.",
            kind=INVOICE_ALREADY_CLAIMED,
            extra={
                "supplier_vat": data["supplier_vat"],
                "document_number": data["document_number"],
                "issue_date": str(data["issue_date"]),
            },
        ) from None
    await session.refresh(ln)
    before = {"claimed_total": str(c.claimed_total), "version": c.version}
    c.claimed_total = await repository.claimed_total(session, c.id)
    c.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="claim.line_added",
        resource_type="claim",
        resource_id=c.id,
        before=before,
        after={"line_id": str(ln.id), **_line_fields(ln), "claimed_total": str(c.claimed_total), "version": c.version},
    )
    return c, ln


def _line_fields(ln: ClaimLine) -> dict[str, Any]:
    return {
        "kind": ln.kind,
        "supplier_vat": ln.supplier_vat,
        "document_number": ln.document_number,
        "issue_date": str(ln.issue_date),
        "taxable_amount": str(ln.taxable_amount),
        "category": ln.category,
        "market": ln.market,
        "payment_method": ln.payment_method,
    }


async def delete_line(
    *, session: AsyncSession, actor: Actor, claim: Claim, line: ClaimLine, if_match: str | None
) -> Claim:
    c = await repository.lock_claim(session, claim.id)
    _require_draft(c)
    check_if_match_value(if_match, c.version)
    before = {
        "line_id": str(line.id),
        **_line_fields(line),
        "claimed_total": str(c.claimed_total),
        "version": c.version,
    }
    await repository.delete_line(session, line.id)
    session.expunge(line)
    c.claimed_total = await repository.claimed_total(session, c.id)
    c.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="claim.line_deleted",
        resource_type="claim",
        resource_id=c.id,
        before=before,
        after={"claimed_total": str(c.claimed_total), "version": c.version},
    )
    return c


# ---------------------------------------------------------------- evidence


def safe_filename(name: str | None) -> str:
    """The base name only (no folders, no control characters), at most 200 characters."""
    raw = name or "evidence"
    base = PureWindowsPath(PurePosixPath(raw).name).name
    cleaned = "".join(ch for ch in base if ch.isprintable() and ch not in '"\\').strip()
    return cleaned[:200] or "evidence"


def _invoice_data(line: ClaimLine, project: Project, raw: bytes) -> dict[str, Any]:
    try:
        doc = parse_fatturapa(raw)
    except FatturaPAError as exc:
        raise ValidationFailed(
            "Il file XML non è una fattura elettronica leggibile.",
            "The XML file is not a readable e-invoice.",
            errors=[
                ProblemError(
                    exc.code, "/file", f"Fattura elettronica non valida: {exc}", f"Invalid electronic invoice: {exc}"
                )
            ],
        ) from None
    inv = doc.invoice(line.document_number)
    if inv is None:
        raise ValidationFailed(
            errors=[
                ProblemError(
                    "fatturapa_invoice_not_in_file",
                    "/file",
                    f"Il file non contiene la fattura numero {line.document_number}.",
                    f"The file has no invoice number {line.document_number}.",
                    extra={"numbers": [i.number for i in doc.invoices]},
                )
            ]
        )
    return {
        "format": "FatturaPA",
        "version": doc.version,
        "supplier_vat": doc.supplier_vat_key,
        "supplier_country": doc.supplier_country,
        "supplier_name": doc.supplier_name,
        "number": inv.number,
        "issue_date": inv.issue_date.isoformat(),
        "document_type": inv.document_type,
        "currency": inv.currency,
        "taxable_amount": str(inv.taxable_amount),
        "tax_amount": str(inv.tax_amount),
        "cup_codes": list(inv.cup_codes),
        "cup": project.cup,
        "cup_found": bool(project.cup) and inv.quotes_cup(project.cup or ""),
        "invoices_in_file": len(doc.invoices),
    }


async def upload_evidence(
    *,
    session: AsyncSession,
    actor: Actor,
    storage: Storage,
    claim: Claim,
    project: Project,
    line: ClaimLine,
    filename: str | None,
    content_type: str | None,
    data: bytes,
    max_bytes: int,
    if_match: str | None,
) -> EvidenceFile:
    """Attach a file to a draft claim's line. Its type is read from its content (PDF, PNG, JPEG, FatturaPA XML),
    never taken from what the client declares; a declaration that contradicts the content is refused."""
    c = await repository.lock_claim(session, claim.id)
    _require_draft(c)
    check_if_match_value(if_match, c.version, required=False)
    name = safe_filename(filename)
    if len(data) > max_bytes:
        raise DeskError(
            f"Il file supera il limite di {max_bytes} byte.",
            f"The file exceeds {max_bytes} bytes.",
            kind=PAYLOAD_TOO_LARGE,
            extra={"max_bytes": max_bytes},
        )
    if not data:
        raise ValidationFailed(errors=[ProblemError("file_empty", "/file", "Il file è vuoto.", "The file is empty.")])
    kind = reporting.sniff_evidence(data)
    if kind is None:
        if reporting.is_signed_envelope(data, name):
            raise DeskError(
                "Le fatture firmate (.p7m) non sono accettate: caricare il file XML della fattura.",
                "Signed invoices (.p7m) are not accepted: upload the invoice's XML file.",
                kind=EVIDENCE_TYPE_NOT_ALLOWED,
                extra={"allowed": sorted(reporting.MEDIA_TYPES.values())},
            )
        raise DeskError(
            "Tipo di file non ammesso: PDF, PNG, JPEG o fattura elettronica XML (FatturaPA).",
            "File type not allowed: PDF, PNG, JPEG or FatturaPA XML.",
            kind=EVIDENCE_TYPE_NOT_ALLOWED,
            extra={"allowed": sorted(reporting.MEDIA_TYPES.values())},
        )
    if not reporting.declared_matches(kind, content_type or "", name):
        raise DeskError(
            f"Il contenuto del file ({kind}) non corrisponde al tipo dichiarato.",
            f"The file's content ({kind}) does not match its declared type.",
            kind=EVIDENCE_TYPE_MISMATCH,
            extra={"detected": reporting.MEDIA_TYPES[kind], "declared": content_type, "filename": name},
        )
    invoice = _invoice_data(line, project, data) if kind == "fatturapa" else None
    sha = content_key(data)
    await storage.put(sha, data)
    e = EvidenceFile(
        id=uuid.uuid4(),
        claim_line_id=line.id,
        filename=name,
        media_type=reporting.MEDIA_TYPES[kind],
        size_bytes=len(data),
        sha256=sha,
        storage_key=sha,
        invoice_data=invoice,
        uploaded_by=actor.principal.client_id,
    )
    session.add(e)
    await session.flush()
    await session.refresh(e)
    await record_audit(
        session,
        actor,
        action="claim.evidence_uploaded",
        resource_type="claim_line",
        resource_id=line.id,
        after={
            "evidence_id": str(e.id),
            "filename": name,
            "media_type": e.media_type,
            "size_bytes": e.size_bytes,
            "sha256": sha,
            "invoice": invoice,
        },
    )
    return e


async def get_evidence(session: AsyncSession, principal: Principal, evidence_id: uuid.UUID) -> EvidenceFile:
    e = await repository.evidence(session, evidence_id, principal)
    if e is None:
        raise NotFound()
    return e


async def read_evidence(storage: Storage, e: EvidenceFile) -> bytes:
    data = await storage.get(e.storage_key)
    if content_key(data) != e.sha256:  # the store was tampered with or is corrupt: never serve it
        raise DeskError(
            "Il file archiviato non corrisponde alla sua impronta SHA-256.",
            "The stored file does not match its SHA-256.",
        )
    return data


# ---------------------------------------------------------------- checks and submission


async def _submitted_on(intake: IntakeClient, project: Project, rules: CallRules) -> date | None:
    app = await fetch_application(intake, project.application_id)
    submitted_at: datetime | None = getattr(app, "submitted_at", None)
    return submitted_at.astimezone(rules.tz).date() if submitted_at is not None else None


def _invoice_evidence(files: list[EvidenceFile]) -> reporting.InvoiceEvidence | None:
    for f in reversed(files):  # the latest e-invoice uploaded
        d = f.invoice_data
        if d:
            return reporting.InvoiceEvidence(
                supplier_vat=str(d["supplier_vat"]),
                supplier_name=str(d.get("supplier_name", "")),
                number=str(d["number"]),
                issue_date=date.fromisoformat(d["issue_date"]),
                taxable_amount=Decimal(str(d["taxable_amount"])),
                currency=str(d.get("currency", "")),
                cup_found=bool(d.get("cup_found")),
            )
    return None


async def _prior(session: AsyncSession, project: Project, claim: Claim) -> reporting.PriorAmounts:
    """What the project's other live claims already take of the budget: recognised amounts once reviewed,
    claimed amounts while under review; rejected lines take nothing."""
    by_cat: dict[str, Decimal] = {}
    by_market: dict[str | None, Decimal] = {}
    for ln, c in await repository.project_lines(session, project.id, repository.LIVE_STATUSES, exclude_claim=claim.id):
        if ln.outcome == "rejected":
            continue
        amount = (
            ln.recognised_amount if c.status != "submitted" and ln.recognised_amount is not None else ln.taxable_amount
        )
        by_cat[ln.category] = by_cat.get(ln.category, ZERO) + amount
        by_market[ln.market] = by_market.get(ln.market, ZERO) + amount
    return reporting.PriorAmounts(by_category=by_cat, by_market=by_market)


async def submit_claim(
    *, session: AsyncSession, actor: Actor, intake: IntakeClient, claim: Claim, project: Project, if_match: str | None
) -> Claim:
    c = await repository.lock_claim(session, claim.id)
    _require_draft(c)
    check_if_match_value(if_match, c.version)
    lines = await repository.lines(session, c.id)
    files = await repository.evidence_of(session, [ln.id for ln in lines])
    by_line: dict[uuid.UUID, list[EvidenceFile]] = {}
    for f in files:
        by_line.setdefault(f.claim_line_id, []).append(f)
    if not lines or not by_line:
        raise ValidationFailed(
            "La rendicontazione deve avere almeno una riga con un giustificativo allegato.",
            "The claim needs at least one line with evidence attached.",
            errors=[
                ProblemError(
                    "claim_without_evidence", "/lines", "Nessuna riga con giustificativo.", "No line with evidence."
                )
            ],
        )
    rules = await rules_of_call(intake, project.call_id)
    facts = reporting.ProjectFacts(
        start_date=project.start_date,
        deadline=project.deadline,
        submitted_on=await _submitted_on(intake, project, rules),
        cup=project.cup,
        budget=approved_budget(project),
        tolerance=rules.reporting.claim_tolerance_percent,
    )
    line_facts = [
        reporting.LineFacts(
            id=str(ln.id),
            kind=ln.kind,
            supplier_vat=ln.supplier_vat,
            document_number=ln.document_number,
            issue_date=ln.issue_date,
            taxable_amount=ln.taxable_amount,
            category=ln.category,
            market=ln.market,
            payment_date=ln.payment_date,
            payment_method=ln.payment_method,
            cup_quoted=ln.cup_quoted,
            evidence_count=len(by_line.get(ln.id, [])),
            invoice=_invoice_evidence(by_line.get(ln.id, [])),
            claimed_elsewhere=await repository.claimed_elsewhere(session, ln),
        )
        for ln in lines
    ]
    prior = await _prior(session, project, c)
    results = reporting.run_line_checks(line_facts, facts, prior)
    failed: Counter[str] = Counter()
    suggested: list[reporting.RecognisedLine] = []
    for ln, lf in zip(lines, line_facts, strict=True):
        checks = results[lf.id]
        ln.checks = [r.as_json() for r in checks]
        failed.update(r.code for r in checks if r.status == "fail")
        suggested.append(
            reporting.RecognisedLine(lf.id, ln.category, ln.market, reporting.suggested_amount(lf, checks))
        )
    estimate = reporting.recognise(rules, suggested, facts.budget, facts.tolerance, prior)
    now = datetime.now(UTC)
    c.claimed_total = sum((ln.taxable_amount for ln in lines), ZERO)
    c.status, c.submitted_at = "submitted", now
    c.review = {
        "submission": {
            "claimed_total": str(c.claimed_total),
            "lines": len(lines),
            "admissible_direct": str(estimate.breakdown.direct_total),
            "admissible_flat_rates": str(estimate.breakdown.flat_rate_total),
            "admissible_total": str(estimate.total),
            "failed_checks": dict(failed),
            "lines_needing_review": sum(1 for lf in line_facts if any(r.status != "pass" for r in results[lf.id])),
        }
    }
    c.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="claim.submitted",
        resource_type="claim",
        resource_id=c.id,
        before={"status": "draft"},
        after={"status": "submitted", **c.review["submission"], "version": c.version},
    )
    await record_event(
        session,
        actor,
        event_type="claim.submitted",
        subject_type="claim",
        subject_id=c.id,
        ordering_key=project.application_id,
        partner_id=project.partner_id,
        company_id=project.company_id,
        payload={
            "claim_id": c.id,
            "project_id": project.id,
            "application_id": project.application_id,
            "call_id": project.call_id,
            "company_id": project.company_id,
            "kind": c.kind,
            "lines": len(lines),
            "claimed_total": c.claimed_total,
            "admissible_total": estimate.total,
            "failed_checks": dict(failed),
            "submitted_at": now,
        },
    )
    return c


# ---------------------------------------------------------------- the officer's review


def _require_submitted(c: Claim) -> None:
    if c.status != "submitted":
        raise Conflict(
            "La rendicontazione non è in istruttoria (non presentata, o già esaminata).",
            "The claim is not under review (not submitted, or already reviewed).",
            extra={"claim_status": c.status},
        )


def _amount_error(code: str, it: str, en: str) -> ValidationFailed:
    return ValidationFailed(errors=[ProblemError(code, "/recognised_amount", it, en)])


def reviewed_amount(line: ClaimLine, outcome: str, amount: Decimal | None) -> Decimal:
    """The amount an outcome recognises, or 422 when it does not add up with the line."""
    taxable = line.taxable_amount
    if amount is not None and amount > taxable:
        raise _amount_error(
            "recognised_amount_exceeds_taxable",
            f"L'importo riconosciuto supera l'imponibile della riga ({taxable}).",
            f"The recognised amount exceeds the line's taxable amount ({taxable}).",
        )
    if outcome == "recognised":
        if amount is not None and amount != taxable:
            raise _amount_error(
                "recognised_amount_mismatch",
                "Riconoscimento pieno: l'importo è l'imponibile (usare 'partially' per una parte).",
                "Full recognition: the amount is the taxable amount (use 'partially' for a part).",
            )
        return taxable
    if outcome == "partially":
        if amount is None or not ZERO < amount < taxable:
            raise _amount_error(
                "recognised_amount_invalid",
                f"Riconoscimento parziale: importo maggiore di zero e minore di {taxable}.",
                f"Partial recognition: an amount above zero and below {taxable}.",
            )
        return amount
    if amount not in (None, ZERO):
        raise _amount_error(
            "recognised_amount_on_rejection",
            "Una riga respinta non riconosce alcun importo.",
            "A rejected line recognises no amount.",
        )
    return ZERO


async def review_line(
    *,
    session: AsyncSession,
    actor: Actor,
    claim: Claim,
    line: ClaimLine,
    outcome: str,
    amount: Decimal | None,
    note: str | None,
    if_match: str | None,
) -> tuple[Claim, ClaimLine]:
    c = await repository.lock_claim(session, claim.id)
    _require_submitted(c)
    check_if_match_value(if_match, c.version)
    recognised = reviewed_amount(line, outcome, amount)
    blocking = [ch["code"] for ch in (line.checks or []) if ch.get("blocking")]
    if outcome != "rejected" and blocking:
        raise ValidationFailed(
            "La riga non può essere riconosciuta: un controllo bloccante è fallito.",
            "The line cannot be recognised: a blocking check failed.",
            errors=[
                ProblemError(
                    "line_not_recognisable",
                    "/outcome",
                    f"Controlli bloccanti falliti: {', '.join(blocking)}.",
                    f"Blocking checks failed: {', '.join(blocking)}.",
                    extra={"checks": blocking},
                )
            ],
        )
    before = {
        "line_id": str(line.id),
        "outcome": line.outcome,
        "recognised_amount": str(line.recognised_amount) if line.recognised_amount is not None else None,
    }
    line.outcome, line.recognised_amount, line.officer_note = outcome, recognised, note
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:  # un-rejecting a line whose invoice was claimed again meanwhile
        if not repository.is_duplicate_invoice(exc):
            raise
        raise DeskError(
            "Il documento è stato nel frattempo rendicontato altrove.",
            "The document was claimed elsewhere in the meantime.",
            kind=INVOICE_ALREADY_CLAIMED,
        ) from None
    c.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="claim.line_reviewed",
        resource_type="claim",
        resource_id=c.id,
        before=before,
        after={
            "line_id": str(line.id),
            "outcome": outcome,
            "recognised_amount": str(recognised),
            "note": note,
            "version": c.version,
        },
    )
    return c, line


async def _reviewed_claim(
    session: AsyncSession, actor: Actor, claim: Claim, project: Project, if_match: str | None
) -> tuple[Project, Claim, list[ClaimLine]]:
    """The project, then the claim, locked (as the projects package does): a submitted claim at `if_match`
    whose every line was reviewed."""
    locked = await repository.project(session, project.id, actor.principal, for_update=True)
    assert locked is not None
    c = await repository.lock_claim(session, claim.id)
    _require_submitted(c)
    check_if_match_value(if_match, c.version)
    lines = await repository.lines(session, c.id)
    pending = [str(ln.id) for ln in lines if ln.outcome == "pending"]
    if pending:
        raise Conflict(
            "Alcune righe non sono ancora state esaminate.",
            "Some lines have not been reviewed yet.",
            extra={"pending_lines": pending},
        )
    return locked, c, lines


async def _computed(
    session: AsyncSession, rules: CallRules, project: Project, c: Claim, lines: list[ClaimLine]
) -> reporting.Recognition:
    """What the call's rules recognise of the claim's reviewed lines, after the project's other claims."""
    prior = await _prior_recognised(session, project, c)
    this = [reporting.RecognisedLine(str(ln.id), ln.category, ln.market, ln.recognised_amount or ZERO) for ln in lines]
    return reporting.recognise(rules, this, approved_budget(project), rules.reporting.claim_tolerance_percent, prior)


async def complete_review(
    *,
    session: AsyncSession,
    actor: Actor,
    intake: IntakeClient,
    evaluation: EvaluationClient | None,
    claim: Claim,
    project: Project,
    if_match: str | None,
) -> Claim:
    """The recognised total as the call's rules compute it; a final claim then decides the project's outcome.
    An override still waiting for its second officer is superseded: the computed outcome is what is decided."""
    project, c, lines = await _reviewed_claim(session, actor, claim, project, if_match)
    pending = await four_eyes.open_proposal(session, action=OVERRIDE, resource_id=c.id, for_update=True)
    if pending is not None:
        pending.status = "superseded"
        await session.flush()
        await record_audit(
            session,
            actor,
            action=f"{OVERRIDE}.superseded",
            resource_type="claim",
            resource_id=c.id,
            before={"proposal_id": str(pending.id), "detail": pending.detail},
            after={"by": "computed outcome"},
        )
    return await _complete(
        session=session,
        actor=actor,
        intake=intake,
        evaluation=evaluation,
        project=project,
        claim=c,
        lines=lines,
        override=None,
    )


OVERRIDE = "claim.override"


async def propose_override(
    *,
    session: AsyncSession,
    actor: Actor,
    intake: IntakeClient,
    claim: Claim,
    project: Project,
    recognised_total: Decimal,
    reason: str,
    if_match: str | None,
) -> MoneyConfirmation:
    """An officer proposes to recognise `recognised_total` instead of what the rules compute, with a written
    reason; nothing changes until a second, different officer confirms it (`confirm_override`)."""
    project, c, lines = await _reviewed_claim(session, actor, claim, project, if_match)
    rules = await rules_of_call(intake, project.call_id)
    computed = (await _computed(session, rules, project, c, lines)).total
    if recognised_total > c.claimed_total:
        raise ValidationFailed(
            errors=[
                ProblemError(
                    "override_exceeds_claimed",
                    "/recognised_total",
                    f"Non si può riconoscere più di quanto rendicontato ({c.claimed_total}).",
                    f"No more than the claimed total ({c.claimed_total}) can be recognised.",
                    extra={"claimed_total": str(c.claimed_total)},
                )
            ]
        )
    if recognised_total == computed:
        raise ValidationFailed(
            errors=[
                ProblemError(
                    "override_equals_computed",
                    "/recognised_total",
                    "L'importo è quello calcolato dalle regole del bando: completare l'istruttoria senza deroga.",
                    "The amount is what the call's rules compute: complete the review without an override.",
                    extra={"computed_total": str(computed)},
                )
            ]
        )
    return await four_eyes.propose(
        session,
        actor,
        action=OVERRIDE,
        resource_type="claim",
        resource_id=c.id,
        detail={
            "version": c.version,
            "computed_total": str(computed),
            "recognised_total": str(recognised_total),
            "reason": reason,
        },
    )


async def confirm_override(
    *,
    session: AsyncSession,
    actor: Actor,
    intake: IntakeClient,
    evaluation: EvaluationClient | None,
    claim: Claim,
    project: Project,
    if_match: str | None,
) -> Claim:
    """A second officer confirms the proposed override: the review completes with the overriding total (a final
    claim then decides the project's outcome from it). A claim changed since the proposal is refused."""
    project, c, lines = await _reviewed_claim(session, actor, claim, project, if_match)
    proposal = await four_eyes.confirm(session, actor, action=OVERRIDE, resource_id=c.id)
    if proposal.detail.get("version") != c.version:
        raise Conflict(
            "La rendicontazione è cambiata dopo la proposta di deroga: va proposta di nuovo.",
            "The claim changed after the override was proposed: propose it again.",
            extra={"proposed_version": proposal.detail.get("version"), "version": c.version},
        )
    override = {
        "recognised_total": proposal.detail["recognised_total"],
        "reason": proposal.detail["reason"],
        "computed_total": proposal.detail["computed_total"],
        **four_eyes.officers(proposal),
    }
    return await _complete(
        session=session,
        actor=actor,
        intake=intake,
        evaluation=evaluation,
        project=project,
        claim=c,
        lines=lines,
        override=override,
    )


async def _complete(
    *,
    session: AsyncSession,
    actor: Actor,
    intake: IntakeClient,
    evaluation: EvaluationClient | None,
    project: Project,
    claim: Claim,
    lines: list[ClaimLine],
    override: dict[str, Any] | None,
) -> Claim:
    c = claim
    rules = await rules_of_call(intake, project.call_id)
    budget = approved_budget(project)
    tolerance = rules.reporting.claim_tolerance_percent
    result = await _computed(session, rules, project, c, lines)
    if override is None:
        total = result.total
        full = (
            all(ln.outcome == "recognised" for ln in lines)
            and result.cut_over_budget == 0
            and not result.breakdown.cuts
        )
    else:
        total = Decimal(override["recognised_total"])
        full = total == c.claimed_total
    status = "rejected" if total == 0 else "approved" if full else "partially_approved"
    now = datetime.now(UTC)
    c.status, c.reviewed_at, c.recognised_total = status, now, total
    c.review = {
        **(c.review or {}),
        "review": {
            "recognised_lines": str(sum((ln.recognised_amount or ZERO for ln in lines), ZERO)),
            "cut_over_budget": str(result.cut_over_budget),
            "category_caps": [
                {"category": k.category, "requested": str(k.requested), "allowed": str(k.allowed)}
                for k in result.breakdown.cuts
            ],
            "direct_by_category": {k: str(v) for k, v in result.direct_by_category.items()},
            "flat_rates": {k: str(v) for k, v in result.flat_rates.items()},
            "recognised_direct": str(result.breakdown.direct_total),
            "recognised_flat_rates": str(result.breakdown.flat_rate_total),
            "computed_total": str(result.total),
            "recognised_total": str(total),
            "override": _json_safe(override),
            "reviewed_by": actor.principal.client_id,
        },
    }
    c.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="claim.reviewed",
        resource_type="claim",
        resource_id=c.id,
        before={"status": "submitted"},
        after={"status": status, **c.review["review"], "version": c.version},
    )
    await record_event(
        session,
        actor,
        event_type="claim.reviewed",
        subject_type="claim",
        subject_id=c.id,
        ordering_key=project.application_id,
        partner_id=project.partner_id,
        company_id=project.company_id,
        payload={
            "claim_id": c.id,
            "project_id": project.id,
            "application_id": project.application_id,
            "call_id": project.call_id,
            "company_id": project.company_id,
            "kind": c.kind,
            "status": status,
            "claimed_total": c.claimed_total,
            "recognised_direct": result.breakdown.direct_total,
            "recognised_flat_rates": result.breakdown.flat_rate_total,
            "recognised_total": total,
            "reviewed_at": now,
        },
    )
    if c.kind == "final":
        if evaluation is None:
            raise RuntimeError("no evaluation client on app.state: the final outcome cannot release budget")
        await _apply_final_outcome(
            session=session,
            actor=actor,
            intake=intake,
            evaluation=evaluation,
            project=project,
            claim=c,
            rules=rules,
            budget=budget,
            tolerance=tolerance,
            overridden=None if override is None else total,
        )
    return c


def _json_safe(override: dict[str, Any] | None) -> dict[str, Any] | None:
    if override is None:
        return None
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in override.items()}


async def _prior_recognised(session: AsyncSession, project: Project, claim: Claim) -> reporting.PriorAmounts:
    by_cat: dict[str, Decimal] = {}
    by_market: dict[str | None, Decimal] = {}
    for ln, _c in await repository.project_lines(
        session, project.id, ("approved", "partially_approved"), exclude_claim=claim.id
    ):
        amount = ln.recognised_amount or ZERO
        by_cat[ln.category] = by_cat.get(ln.category, ZERO) + amount
        by_market[ln.market] = by_market.get(ln.market, ZERO) + amount
    return reporting.PriorAmounts(by_category=by_cat, by_market=by_market)


async def project_recognised_total(
    session: AsyncSession,
    project: Project,
    rules: CallRules,
    budget: reporting.ApprovedBudget,
    tolerance: Decimal,
    *,
    exclude_claim: uuid.UUID | None = None,
) -> Decimal:
    """Everything recognised on the project's reviewed claims, intermediate and final together: the direct
    costs cut to the approved budget plus the tolerance, the flat rates recomputed on them."""
    rows = await repository.project_lines(
        session, project.id, ("approved", "partially_approved"), exclude_claim=exclude_claim
    )
    lines = [
        reporting.RecognisedLine(str(ln.id), ln.category, ln.market, ln.recognised_amount or ZERO)
        for ln, _c in rows
        if ln.outcome != "rejected"
    ]
    return reporting.recognise(rules, lines, budget, tolerance).total


async def _apply_final_outcome(
    *,
    session: AsyncSession,
    actor: Actor,
    intake: IntakeClient,
    evaluation: EvaluationClient,
    project: Project,
    claim: Claim,
    rules: CallRules,
    budget: reporting.ApprovedBudget,
    tolerance: Decimal,
    overridden: Decimal | None,
) -> None:
    """The final claim decides the project's outcome (full aid, reduction, revocation): the projects package owns
    those rules and their payments; this passes it everything recognised on the project (with an override
    confirmed by two officers, the other claims' recognised total plus the overriding one). The project row is
    locked (complete_review)."""
    if overridden is None:
        total = await project_recognised_total(session, project, rules, budget, tolerance)
    else:
        total = (
            await project_recognised_total(session, project, rules, budget, tolerance, exclude_claim=claim.id)
            + overridden
        )
    await apply_outcome(
        session=session,
        actor=actor,
        intake=intake,
        evaluation=evaluation,
        project=project,
        recognised_total=total,
        completed_on=(claim.submitted_at or datetime.now(UTC)).astimezone(rules.tz).date(),
    )
