"""Use cases on applications: draft, edit, pre-check, submit (protocol + signed receipt), withdraw.

The pre-check and the submit apply the same pure rules (`shared.domain.application_check`) to
the call's rules document in force, so "check says submittable" and "submit accepts" agree.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, NamedTuple, Protocol
from zoneinfo import ZoneInfo

import asyncpg
import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.applications import repository
from services.intake.applications.schemas import ApplicationCreate, ApplicationDocument
from services.intake.calls.service import cached_rules, effective_window, remember_rules, rules_of_call, status_of
from services.intake.companies import repository as companies_repository
from services.intake.companies import service as companies_service
from services.intake.fairness import GroupFlush
from services.intake.models import Application, Call, Company, ExpenseLine
from shared.access import acting_partner, can_reach_company
from shared.audit import record_audit, record_event
from shared.auth import KeyRing
from shared.contracts.applications import DeMinimisDeclaration
from shared.domain.application_check import (
    CheckResult,
    CompanyFacts,
    DeclaredAid,
    DraftFacts,
    DraftLine,
    ExportSale,
    Milestone,
    Problem,
    check_application,
)
from shared.domain.call_rules import CallRules
from shared.domain.de_minimis import normalise_vat
from shared.domain.formalities import with_formalities
from shared.domain.network import MemberFacts, NetworkCheck, check_network
from shared.domain.receipts import canonical_json, sha256_hex
from shared.errors import (
    CHECK_FAILED,
    IDEMPOTENCY_MISMATCH,
    WINDOW_CLOSED,
    Conflict,
    DeskError,
    NotFound,
    ProblemError,
    ValidationFailed,
)
from shared.i18n import Lang
from shared.routing import Actor, check_if_match_value, etag_of
from shared.schemas import LOMBARDY_PROVINCES

# ---------------------------------------------------------------- reading


async def snapshots(session: AsyncSession, ids: list[uuid.UUID]) -> dict[str, Any]:
    """Many applications as `to_out` gives them, in the order asked (each once), the ids not found, and the
    companies of those found (applicants and network members) as `GET /v1/companies/{id}` gives them."""
    asked = list(dict.fromkeys(ids))
    found = {a.id: (a, lines) for a, lines in await repository.applications_with_lines(session, asked)}
    items = [to_out(*found[i]) for i in asked if i in found]
    company_ids = {a.company_id for a, _lines in found.values()}
    for a, _lines in found.values():
        company_ids.update(uuid.UUID(str(m["company_id"])) for m in (a.network or {}).get("members", []))
    companies = await companies_repository.get_many(session, sorted(company_ids))
    return {
        "items": items,
        "unknown": [i for i in asked if i not in found],
        "companies": [companies_service.to_out(c) for c in companies],
    }


def to_out(app: Application, lines: list[ExpenseLine]) -> dict[str, Any]:
    return {
        "id": app.id,
        "call_id": app.call_id,
        "company_id": app.company_id,
        "partner_id": app.partner_id,
        "status": app.status,
        "title": app.title,
        "action_plan": app.action_plan,
        "expense_lines": [
            {
                "category": ln.category,
                "description": ln.description,
                "amount": ln.amount,
                "target_market": ln.target_market,
                "supplier": ln.supplier,
            }
            for ln in lines
        ],
        "flat_rates": app.flat_rates,
        "network": app.network,
        "de_minimis_declarations": app.de_minimis_declarations or [],
        "protocol_number": app.protocol_number,
        "submitted_at": app.submitted_at,
        "call_version": app.call_version,
        "company_vat_number": app.receipt["company_vat_number"] if app.receipt else None,
        "content_sha256": app.content_sha256,
        "withdrawn_at": app.withdrawn_at,
        "form_signed_at": app.form_signed_at,
        "created_at": app.created_at,
        "updated_at": app.updated_at,
        "etag": etag_of(app.version),
    }


async def get_readable(
    session: AsyncSession, actor: Actor, application_id: uuid.UUID, *, for_update: bool = False
) -> Application:
    app = await repository.get_readable(session, actor.principal, application_id, for_update=for_update)
    if app is None:
        raise NotFound()
    return app


# ---------------------------------------------------------------- drafting


def _document(body: ApplicationDocument, rules: CallRules) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """The stored shape of a draft; flat rates default to every one the call offers."""
    flat = body.flat_rates if body.flat_rates is not None else list(rules.flat_rate_codes)
    unknown = [c for c in flat if c not in rules.flat_rate_codes]
    if unknown:
        raise ValidationFailed(
            errors=[
                ProblemError(
                    "flat_rate_unknown",
                    f"/flat_rates/{flat.index(c)}",
                    f"La categoria {c} non è un forfait previsto dal bando.",
                    f"Category {c} is not a flat rate of the call.",
                )
                for c in unknown
            ]
        )
    plan = body.action_plan.model_dump(mode="json")
    lines = [ln.model_dump() for ln in body.expense_lines]
    return plan, lines, sorted(set(flat))


def _declarations(body: ApplicationDocument, rules: CallRules, company: Company | None) -> list[dict[str, Any]]:
    """The de minimis self-declaration as stored; refused (422, every error) when an aid was granted outside the
    current and the two previous fiscal years (or in the future), or to an enterprise that is neither the
    applicant nor one of its linked enterprises (its single undertaking)."""
    errors = _declaration_errors(body.de_minimis_declarations, rules, company, "/de_minimis_declarations")
    if errors:
        raise ValidationFailed(errors=errors)
    return [d.model_dump(mode="json") for d in body.de_minimis_declarations]


def _declaration_errors(
    items: list[DeMinimisDeclaration], rules: CallRules, company: Any, prefix: str
) -> list[ProblemError]:
    """What is wrong with a de minimis self-declaration of `company` (the applicant, or a network member)."""
    today = datetime.now(ZoneInfo(rules.timezone)).date()
    first = date(today.year - 2, 1, 1)
    members = None
    if company is not None:
        members = {
            normalise_vat(company.vat_number),
            *(
                normalise_vat(r["vat_number"])
                for r in company.related_enterprises or []
                if r.get("relation") == "linked"
            ),
        }
    errors = []
    for i, d in enumerate(items):
        if not first <= d.granted_on <= today:
            errors.append(
                ProblemError(
                    "de_minimis_date_out_of_period",
                    f"{prefix}/{i}/granted_on",
                    f"La data di concessione va dal {first:%d/%m/%Y} (tre esercizi finanziari) a oggi.",
                    f"The date of concession runs from {first.isoformat()} (three fiscal years) to today.",
                    extra={"from": first.isoformat(), "to": today.isoformat()},
                )
            )
        if members is not None and normalise_vat(d.vat_number) not in members:
            errors.append(
                ProblemError(
                    "de_minimis_not_single_undertaking",
                    f"{prefix}/{i}/vat_number",
                    "L'impresa non è né il richiedente né una sua impresa collegata (impresa unica).",
                    "The enterprise is neither the applicant nor one of its linked enterprises (single undertaking).",
                )
            )
    return errors


def _category_errors(lines: list[dict[str, Any]], rules: CallRules) -> None:
    """An expense category the call does not know is bad input, refused at the edge."""
    bad = _category_problems(lines, rules, "/expense_lines")
    if bad:
        raise ValidationFailed(errors=bad)


def _category_problems(lines: list[dict[str, Any]], rules: CallRules, prefix: str) -> list[ProblemError]:
    return [
        ProblemError(
            "expense_category_unknown",
            f"{prefix}/{i}/category",
            f'La categoria "{ln["category"]}" non è prevista dal bando {rules.code}.',
            f'Category "{ln["category"]}" is not in call {rules.code}.',
        )
        for i, ln in enumerate(lines)
        if not rules.has_category(ln["category"])
    ]


# ---------------------------------------------------------------- business networks


def _not_reachable(path: str) -> ProblemError:
    return ProblemError(
        "company_not_found",
        path,
        "Impresa inesistente o non delegata a te.",
        "No such company, or not delegated to you.",
    )


async def _network(
    session: AsyncSession, actor: Actor, body: ApplicationDocument, rules: CallRules, lead_id: uuid.UUID
) -> dict[str, Any] | None:
    """The network as stored, or a 422 listing every error: a member that is the lead, a company listed twice,
    a company the caller cannot act for (members are delegated to the same partner as the lead), an expense
    category the call does not know, a de minimis declaration out of period or of another undertaking."""
    if body.network is None:
        return None
    reach, who = _reach(actor.principal)
    companies = await repository.network_companies(
        await repository.driver_connection(session), [m.company_id for m in body.network.members], reach, who
    )
    errors: list[ProblemError] = []
    seen: dict[uuid.UUID, int] = {}
    members = []
    for i, m in enumerate(body.network.members):
        path = f"/network/members/{i}"
        company = companies.get(m.company_id)
        if m.company_id == lead_id:
            errors.append(
                ProblemError(
                    "network_lead_is_member",
                    f"{path}/company_id",
                    "Il capofila (l'impresa della domanda) non può essere membro della propria rete.",
                    "The lead (the application's company) cannot be a member of its own network.",
                )
            )
        elif m.company_id in seen:
            errors.append(
                ProblemError(
                    "network_member_duplicate",
                    f"{path}/company_id",
                    f"L'impresa è già membro della rete (posizione {seen[m.company_id]}).",
                    f"The company is already a member of the network (position {seen[m.company_id]}).",
                    extra={"first": f"/network/members/{seen[m.company_id]}/company_id"},
                )
            )
        else:
            seen[m.company_id] = i
            if company is None or not company.reachable:
                errors.append(_not_reachable(f"{path}/company_id"))
        lines = [ln.model_dump(mode="json") for ln in m.expense_lines]
        errors.extend(_category_problems(lines, rules, f"{path}/expense_lines"))
        reached = company if company is not None and company.reachable else None
        errors.extend(_declaration_errors(m.de_minimis_declarations, rules, reached, f"{path}/de_minimis_declarations"))
        members.append(
            {
                "company_id": str(m.company_id),
                "vat_number": reached.vat_number if reached is not None else None,
                "name": reached.name if reached is not None else None,
                "expense_lines": lines,
                "de_minimis_declarations": [d.model_dump(mode="json") for d in m.de_minimis_declarations],
            }
        )
    if errors:
        raise ValidationFailed(errors=errors)
    return {"name": body.network.name, "members": members}


def _member_facts(stored: dict[str, Any], company: repository.MemberRow) -> MemberFacts:
    return MemberFacts(
        company_id=str(company.id),
        vat_number=company.vat_number,
        company=company_facts(company),
        expense_lines=tuple(
            DraftLine(ln["category"], Decimal(str(ln["amount"])), ln.get("target_market"))
            for ln in stored.get("expense_lines") or []
        ),
        declared_aid=tuple(
            DeclaredAid(
                normalise_vat(d["vat_number"]),
                date.fromisoformat(d["granted_on"]),
                Decimal(str(d["amount"])),
                d.get("reference") or f"declaration {i + 1}",
            )
            for i, d in enumerate(stored.get("de_minimis_declarations") or [])
        ),
    )


async def with_network(
    conn: repository.Connection,
    rules: CallRules,
    lead: CheckResult,
    draft: DraftFacts,
    network: dict[str, Any] | None,
    reach: tuple[str, uuid.UUID | None],
    today: date,
) -> tuple[CheckResult, NetworkCheck | None]:
    """The lead's check with the network's: each member's own checks (its company as registered now, within the
    caller's reach now), the network's limits; the problems of both in one result."""
    if not network:
        return lead, None
    stored = list(network.get("members") or [])
    ids = [uuid.UUID(str(m["company_id"])) for m in stored]
    companies = await repository.network_companies(conn, ids, *reach)
    unreachable: list[Problem] = []
    members: list[MemberFacts | None] = []
    for i, (m, company_id) in enumerate(zip(stored, ids, strict=True)):
        company = companies.get(company_id)
        if company is None or not company.reachable:
            p = _not_reachable(f"/network/members/{i}/company_id")
            unreachable.append(Problem(p.code, p.path, p.message_it, p.message_en, rules.article("applicants"), True))
            members.append(None)
        else:
            members.append(_member_facts(m, company))
    net = check_network(rules, lead, draft, members, today=today)
    problems = (*lead.problems, *unreachable, *net.problems)
    return replace(lead, problems=problems, blocking=any(p.blocking for p in problems)), net


async def _call_accepting_drafts(session: AsyncSession, call_id: uuid.UUID) -> Call:
    call = await session.get(Call, call_id)
    if call is None:
        raise ValidationFailed(
            errors=[ProblemError("call_not_found", "/call_id", "Bando inesistente.", "No such call.")]
        )
    if status_of(call, datetime.now(UTC)) == "closed":
        raise DeskError("Lo sportello del bando è chiuso.", "The call's window has closed.", kind=WINDOW_CLOSED)
    return call


async def create_draft(*, session: AsyncSession, actor: Actor, body: ApplicationCreate) -> Application:
    if not await can_reach_company(session, actor.principal, body.company_id):
        raise ValidationFailed(
            errors=[
                ProblemError(
                    "company_not_found",
                    "/company_id",
                    "Impresa inesistente o non delegata a te.",
                    "No such company, or not delegated to you.",
                )
            ]
        )
    call = await _call_accepting_drafts(session, body.call_id)
    rules = await rules_of_call(session, call)
    plan, lines, flat = _document(body, rules)
    _category_errors(lines, rules)
    declared = _declarations(body, rules, await session.get(Company, body.company_id))
    network = await _network(session, actor, body, rules, body.company_id)
    app = Application(
        id=uuid.uuid4(),
        call_id=call.id,
        company_id=body.company_id,
        partner_id=acting_partner(actor.principal),
        status="draft",
        title=body.title,
        action_plan=plan,
        network=network,
        flat_rates=flat,
        version=1,
        de_minimis_declarations=declared,
        created_by=actor.principal.client_id,
    )
    session.add(app)
    await session.flush()
    await repository.replace_lines(session, app.id, lines)
    await record_audit(
        session,
        actor,
        action="application.created",
        resource_type="application",
        resource_id=app.id,
        after=_audit_view(app, lines),
    )
    await record_precheck(await repository.driver_connection(session), app.id)
    return app


def _audit_view(app: Application, lines: list[dict[str, Any]] | list[ExpenseLine]) -> dict[str, Any]:
    rows = [
        ln
        if isinstance(ln, dict)
        else {
            "category": ln.category,
            "description": ln.description,
            "amount": ln.amount,
            "target_market": ln.target_market,
            "supplier": ln.supplier,
        }
        for ln in lines
    ]
    return {
        "status": app.status,
        "title": app.title,
        "action_plan": app.action_plan,
        "flat_rates": app.flat_rates,
        "network": app.network,
        "de_minimis_declarations": app.de_minimis_declarations,
        "expense_lines": rows,
        "version": app.version,
    }


def _require_draft(app: Application) -> None:
    if app.status != "draft":
        raise Conflict(
            f"La domanda è {_STATUS_IT[app.status]} e non si può modificare.",
            f"The application is {app.status} and can no longer be changed.",
            extra={"application_status": app.status},
        )


_STATUS_IT = {"draft": "in bozza", "submitted": "già presentata", "withdrawn": "ritirata"}


async def update_draft(
    *, session: AsyncSession, actor: Actor, app: Application, body: ApplicationDocument
) -> Application:
    _require_draft(app)
    call = await _call_accepting_drafts(session, app.call_id)
    rules = await rules_of_call(session, call)
    plan, lines, flat = _document(body, rules)
    _category_errors(lines, rules)
    declared = _declarations(body, rules, await session.get(Company, app.company_id))
    network = await _network(session, actor, body, rules, app.company_id)
    before = _audit_view(app, await repository.lines_of(session, app.id))
    app.title, app.action_plan, app.flat_rates, app.network = body.title, plan, flat, network
    app.de_minimis_declarations = declared
    app.version += 1
    app.updated_at = datetime.now(UTC)
    await repository.replace_lines(session, app.id, lines)
    await record_audit(
        session,
        actor,
        action="application.updated",
        resource_type="application",
        resource_id=app.id,
        before=before,
        after=_audit_view(app, lines),
    )
    await session.flush()
    await record_precheck(await repository.driver_connection(session), app.id)
    return app


async def delete_draft(*, session: AsyncSession, actor: Actor, app: Application) -> None:
    _require_draft(app)
    before = _audit_view(app, await repository.lines_of(session, app.id))
    await session.delete(app)
    await session.flush()
    await record_audit(
        session, actor, action="application.deleted", resource_type="application", resource_id=app.id, before=before
    )


# ---------------------------------------------------------------- pre-check


class CompanyLike(Protocol):
    """What the rules read of a company: a `Company` row, or a company as the submit path loads it."""

    @property
    def size_class(self) -> str: ...
    @property
    def ateco_code(self) -> str: ...
    @property
    def approved_financial_statements(self) -> int: ...
    @property
    def registered_office(self) -> dict[str, Any]: ...
    @property
    def operating_sites(self) -> list[dict[str, Any]]: ...
    @property
    def lombardy_site_commitment(self) -> bool: ...
    @property
    def turnover(self) -> Decimal: ...
    @property
    def previous_year_export_sales(self) -> Decimal: ...
    @property
    def export_history(self) -> list[dict[str, Any]]: ...


def company_facts(company: CompanyLike) -> CompanyFacts:
    provinces = {company.registered_office.get("province")} | {s.get("province") for s in company.operating_sites}
    return CompanyFacts(
        size_class=company.size_class,  # type: ignore[arg-type]
        ateco_code=company.ateco_code,
        approved_financial_statements=company.approved_financial_statements,
        has_lombardy_site=bool(provinces & LOMBARDY_PROVINCES),
        lombardy_site_commitment=company.lombardy_site_commitment,
        turnover=company.turnover,
        previous_year_export_sales=company.previous_year_export_sales,
        export_history=tuple(
            ExportSale(int(e["year"]), e["country"], Decimal(str(e["amount"]))) for e in company.export_history
        ),
    )


def draft_facts(app: Application, lines: list[ExpenseLine]) -> DraftFacts:
    plan = app.action_plan
    return DraftFacts(
        target_markets=tuple(m["country"] for m in plan.get("target_markets", [])),
        objectives=plan.get("objectives", ""),
        starting_point=plan.get("starting_point", ""),
        strategy=plan.get("strategy", ""),
        resources=plan.get("resources", ""),
        start_date=_date(plan.get("start_date")),
        end_date=_date(plan.get("end_date")),
        milestones=tuple(Milestone(m["title"], _date(m["due_date"])) for m in plan.get("milestones", [])),
        kpi_count=len(plan.get("kpis", [])),
        expense_lines=tuple(DraftLine(ln.category, ln.amount, ln.target_market) for ln in lines),
        flat_rates=frozenset(app.flat_rates),
        declared_aid=tuple(
            DeclaredAid(
                normalise_vat(d["vat_number"]),
                date.fromisoformat(d["granted_on"]),
                Decimal(str(d["amount"])),
                d.get("reference") or f"declaration {i + 1}",
            )
            for i, d in enumerate(app.de_minimis_declarations or [])
        ),
    )


def _date(v: str | None) -> Any:
    return date.fromisoformat(v) if v else None


async def run_check(
    session: AsyncSession, app: Application, actor: Actor, *, call: Call | None = None
) -> tuple[CheckResult, NetworkCheck | None]:
    """The pre-check of the application (a network's members too, within the caller's reach)."""
    call = call or await session.get(Call, app.call_id)
    company = await session.get(Company, app.company_id)
    assert call is not None and company is not None
    rules = await rules_of_call(session, call)
    lines = await repository.lines_of(session, app.id)
    today = datetime.now(ZoneInfo(rules.timezone)).date()
    facts = draft_facts(app, lines)
    result = check_application(rules, company_facts(company), facts, today=today)
    result, network = await with_network(
        await repository.driver_connection(session), rules, result, facts, app.network, _reach(actor.principal), today
    )
    return with_formalities(rules, result, stamp_duty_declared=app.stamp_duty_id is not None), network


def _network_out(net: NetworkCheck | None) -> dict[str, Any] | None:
    if net is None:
        return None
    return {
        "members": [
            {
                "company_id": m.company_id,
                "vat_number": m.vat_number,
                "eligible_total": m.breakdown.total if m.breakdown is not None else Decimal("0.00"),
                "grant": m.estimate.grant,
                "loan": m.estimate.loan,
                "total_aid": m.estimate.total_aid,
            }
            for m in net.members
        ],
        "eligible_total": net.eligible_total,
        "grant": net.grant,
        "loan": net.loan,
        "total_aid": net.total_aid,
    }


def check_out(result: CheckResult, lang: Lang, network: NetworkCheck | None = None) -> dict[str, Any]:
    b = result.breakdown
    e = result.estimate
    return {
        "submittable": not result.blocking,
        "problems": [
            {
                "code": p.code,
                "path": p.path,
                "message": p.message_it if lang == "it" else p.message_en,
                "message_it": p.message_it,
                "message_en": p.message_en,
                "article": p.article,
                "blocking": p.blocking,
                "outcome": "fail" if p.blocking else "warning",
                "details": {},
            }
            for p in result.problems
        ],
        "breakdown": None
        if b is None
        else {
            "requested": dict(b.requested),
            "direct": dict(b.direct),
            "flat_rates": dict(b.flat_rates),
            "total": b.total,
            "cuts": [
                {"category": c.category, "requested": c.requested, "allowed": c.allowed, "reason": c.reason}
                for c in b.cuts
            ],
        },
        "estimate": None
        if e is None
        else {
            "eligible_total": e.eligible_total,
            "aid_base": e.aid_base,
            "grant": e.grant,
            "loan": e.loan,
            "total_aid": e.total_aid,
        },
        "de_minimis": None
        if (dm := result.de_minimis) is None
        else {
            "ceiling": dm.ceiling,
            "window_start": dm.period.window_start,
            "window_end": dm.period.window_end,
            "declared_total": dm.period.total,
            "headroom": dm.headroom,
            "requested_equivalent": dm.requested_equivalent,
            "allowed_equivalent": dm.allowed_equivalent,
            "reduced": dm.reduced,
            "refused": dm.refused,
        },
        "network": _network_out(network),
    }


# ---------------------------------------------------------------- submit


def submitted_content(
    app: Application, company: Company, call_version: int, lines: list[ExpenseLine]
) -> dict[str, Any]:
    """What the receipt's content hash covers: the application exactly as submitted."""
    return {
        "application_id": app.id,
        "call_id": app.call_id,
        "call_version": call_version,
        "company_id": app.company_id,
        "company_vat_number": company.vat_number,
        "title": app.title,
        "action_plan": app.action_plan,
        "flat_rates": app.flat_rates,
        "network": app.network,
        "de_minimis_declarations": app.de_minimis_declarations or [],
        "expense_lines": [
            {
                "category": ln.category,
                "description": ln.description,
                "amount": ln.amount,
                "target_market": ln.target_market,
                "supplier": ln.supplier,
            }
            for ln in lines
        ],
    }


@dataclass(frozen=True)
class SubmitKey:
    """The request's Idempotency-Key, bound to its method, path and body, and owned by
    `shared.routing.idempotency_owner` of the caller (as on every other route)."""

    owner: str
    key: str
    digest: bytes
    path: str
    retention: timedelta


async def _replay(conn: repository.Connection, keyring: KeyRing, render_ref: str) -> dict[str, Any]:
    row = await repository.receipt_row(conn, uuid.UUID(render_ref.split(":", 1)[1]))
    assert row is not None
    # The receipt comes back from JSONB with its keys in JSONB's order; the original answer had them in the
    # canonical (sorted) order the receipt is signed in. Re-read from that form, the replay is the same bytes.
    receipt_json = canonical_json(row.receipt)
    return {
        "receipt": orjson.loads(receipt_json),
        "signature": keyring.sign(receipt_json),
        "previous_hash": row.previous_hash,
        "chain_hash": row.chain_hash,
        "register_url": f"/v1/calls/{row.call_id}/register",
    }


def _mismatch() -> DeskError:
    return DeskError(
        "La chiave di idempotenza è già stata usata con una richiesta diversa.",
        "This Idempotency-Key was already used with a different request.",
        kind=IDEMPOTENCY_MISMATCH,
    )


class CommitArgs(NamedTuple):
    """The arguments of `intake.commit_submission` (migrations/sql/commit_submission.sql), passed by name:
    each field is the parameter `p_<field>`. The pre-checked mode leaves `version` .. `company_id` empty
    (the draft's kept verdict supplies them); the full path passes what it checked."""

    application_id: uuid.UUID
    prechecked: bool
    reach: str | None
    reach_id: uuid.UUID | None
    version: int | None
    call_id: uuid.UUID | None
    call_code: str | None
    call_version: int | None
    company_vat: str | None
    content_sha256: str | None
    event_payload: str | None  # canonical JSON text
    partner_id: uuid.UUID | None
    company_id: uuid.UUID | None
    key_id: str
    principal: str
    principal_kind: str
    request_id: str | None
    service: str
    idem_owner: str | None
    idem_key: str | None
    idem_hash: bytes | None
    idem_path: str | None
    idem_expires: datetime | None
    event_id: uuid.UUID


_COMMIT_CALL = "intake.commit_submission({})".format(
    ", ".join(
        f"p_{name} => ${i}::jsonb" if name == "event_payload" else f"p_{name} => ${i}"
        for i, name in enumerate(CommitArgs._fields, start=1)
    )
)
COMMIT_SQL = f"SELECT * FROM {_COMMIT_CALL}"
# The pre-checked attempt: its `not_prechecked` answer carries the draft for the full path (one round trip
# instead of two); the function's own columns come first, as in COMMIT_SQL.
PRECHECKED_SQL = repository.commit_or_load(_COMMIT_CALL)

# The PostgreSQL type of each argument, for the group commit's arrays (`intake.commit_submission_group`,
# migrations/sql/commit_submission_group.sql: each argument an array, element i for submit i).
_ARG_TYPES = {
    "application_id": "uuid",
    "prechecked": "boolean",
    "reach": "text",
    "reach_id": "uuid",
    "version": "integer",
    "call_id": "uuid",
    "call_code": "text",
    "call_version": "integer",
    "company_vat": "text",
    "content_sha256": "text",
    "event_payload": "text",
    "partner_id": "uuid",
    "company_id": "uuid",
    "key_id": "text",
    "principal": "text",
    "principal_kind": "text",
    "request_id": "text",
    "service": "text",
    "idem_owner": "text",
    "idem_key": "text",
    "idem_hash": "bytea",
    "idem_path": "text",
    "idem_expires": "timestamptz",
    "event_id": "uuid",
}
assert tuple(_ARG_TYPES) == CommitArgs._fields
# A group of submits in one statement: a row per submit, in the group's order (`ord`), with PRECHECKED_SQL's
# columns (the draft with a `not_prechecked` answer).
GROUP_SQL = repository.commit_or_load_group(
    "intake.commit_submission_group({})".format(
        ", ".join(f"${i}::{t}[]" for i, t in enumerate(_ARG_TYPES.values(), start=1))
    )
)


def group_arguments(group: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """GROUP_SQL's arguments for these submits: one list per argument, element i for submit i."""
    return [list(column) for column in zip(*group, strict=True)]


class _Line:
    __slots__ = ("amount", "category", "description", "supplier", "target_market")

    def __init__(self, d: dict[str, Any]) -> None:
        self.category, self.description, self.amount = d["category"], d["description"], Decimal(d["amount"])
        self.target_market, self.supplier = d["target_market"], d["supplier"]


@dataclass(frozen=True)
class Precheck:
    """The call's rules applied to a loaded draft (a `repository.load_for_submit` row) on a given instant."""

    result: CheckResult
    content_sha256: str
    estimate: dict[str, Any] | None
    valid_until: datetime
    network: NetworkCheck | None = None
    """The verdict depends on the day only through the year (new markets) and the planned start date
    (not in the past): it holds until the end of that year, or of the start date if earlier."""


async def precheck(
    conn: repository.Connection,
    row: repository.DraftRow,
    now: datetime,
    reach: tuple[str, uuid.UUID | None] = ("all", None),
) -> Precheck:
    rules = cached_rules(row.call_id, row.current_version) or remember_rules(
        row.call_id, row.current_version, await repository.rules_document(conn, row.call_id, row.current_version)
    )
    lines = [_Line(d) for d in row.lines]
    tz = ZoneInfo(rules.timezone)
    today = now.astimezone(tz).date()
    facts = draft_facts(row, lines)  # type: ignore[arg-type]
    result, network = await with_network(
        conn, rules, check_application(rules, company_facts(row), facts, today=today), facts, row.network, reach, today
    )
    result = with_formalities(rules, result, stamp_duty_declared=row.stamp_duty_id is not None)
    content_hash = sha256_hex(canonical_json(submitted_content(row, row, row.current_version, lines)))  # type: ignore[arg-type]
    e = result.estimate
    last = date(today.year, 12, 31) if facts.start_date is None else min(date(today.year, 12, 31), facts.start_date)
    estimate: dict[str, Any] | None = (
        None if e is None else {"eligible_total": e.eligible_total, "grant": e.grant, "loan": e.loan}
    )
    if estimate is not None and network is not None:
        estimate["network"] = {"eligible_total": network.eligible_total, "grant": network.grant, "loan": network.loan}
    return Precheck(
        result, content_hash, estimate, datetime.combine(last + timedelta(days=1), time(), tzinfo=tz), network
    )


_RECORD_PRECHECK = """
UPDATE intake.applications
   SET precheck_version = $3, precheck_company_version = $4, precheck_call_version = $5, precheck_valid_until = $6,
       precheck_content_sha256 = $7, precheck_estimate = $8::jsonb
 WHERE id = $1 AND status = 'draft' AND version = $2
"""


def _verdict_row(row: repository.DraftRow, check: Precheck) -> tuple[Any, ...]:
    """The verdict's columns; all empty when the draft is not submittable (a draft with no verdict takes
    the full path, which reports every reason), or is a network's: its members' companies and delegations are
    read again at submit, so it always takes the full path."""
    if check.result.blocking or row.network:
        return (row.id, row.version, None, None, None, None, None, None)
    return (
        row.id,
        row.version,
        row.version,
        row.company_version,
        row.current_version,
        check.valid_until,
        check.content_sha256,
        canonical_json(check.estimate).decode(),
    )


async def record_precheck(conn: repository.Connection, application_id: uuid.UUID) -> bool:
    """Run the pre-check of a draft and keep its verdict, so that its submit commits in one statement.
    Called whenever a draft is saved or checked; returns whether the draft is submittable today."""
    rows = await record_prechecks(conn, [application_id])
    return rows == 1


async def record_prechecks(conn: repository.Connection, application_ids: list[uuid.UUID]) -> int:
    """The pre-check of many drafts (`desk precheck`), in one query and one batch of updates.
    Returns how many are submittable; a failing or stale verdict is cleared."""
    now = datetime.now(UTC)
    verdicts, passing = [], 0
    for row in await repository.load_drafts(conn, application_ids):
        check = await precheck(conn, row, now)
        passing += not check.result.blocking
        verdicts.append(_verdict_row(row, check))
    if verdicts:
        await conn.executemany(_RECORD_PRECHECK, verdicts)
    return passing


def event_payload(row: repository.DraftRow, check: Precheck) -> bytes:
    """The `application.submitted` event's payload before the number (which the commit adds): on the
    pre-checked path `intake.commit_submission` builds the same from the kept verdict."""
    return canonical_json(
        {
            "application_id": row.id,
            "call_id": row.call_id,
            "company_id": row.company_id,
            "content_sha256": check.content_sha256,
            "estimate": check.estimate,
        }
    )


def _committed(out: Any, keyring: KeyRing, call_id: uuid.UUID) -> dict[str, Any]:
    receipt_json: str = out["receipt_json"]
    return {
        "receipt": orjson.loads(receipt_json),
        "signature": keyring.sign(receipt_json.encode()),
        "previous_hash": out["previous_hash"],
        "chain_hash": out["chain_hash"],
        "register_url": f"/v1/calls/{call_id}/register",
    }


def _commit_refused(exc: asyncpg.PostgresError) -> DeskError | None:
    code = exc.sqlstate
    if code == "DK001":
        return Conflict(
            "La domanda è già stata presentata o ritirata.", "The application has already been submitted or withdrawn."
        )
    if code == "DK002":
        return Conflict(
            "La domanda è stata modificata mentre veniva presentata: ricontrollala e ripresenta.",
            "The application changed while it was being submitted: check it and submit again.",
        )
    if code == "23505":  # one live submission per company and call
        return Conflict(
            "L'impresa ha già presentato una domanda su questo bando.",
            "The company has already submitted an application to this call.",
        )
    return None


def _reach(principal: Any) -> tuple[str, uuid.UUID | None]:
    if principal.reads_everything:
        return "all", None
    return ("company", principal.company_id) if principal.kind == "company" else ("partner", principal.partner_id)


def _actor_and_key(actor: Actor, keyring: KeyRing, key: SubmitKey | None) -> dict[str, Any]:
    """The arguments that say who submits and under which Idempotency-Key (the same on both paths)."""
    return {
        "key_id": keyring.key_id,
        "principal": actor.principal.client_id,
        "principal_kind": actor.principal.kind,
        "request_id": actor.request_id,
        "service": actor.service,
        "idem_owner": key.owner if key else None,
        "idem_key": key.key if key else None,
        "idem_hash": key.digest if key else None,
        "idem_path": key.path if key else None,
        "idem_expires": datetime.now(UTC) + key.retention if key else None,
    }


def prechecked_args(
    *, actor: Actor, application_id: uuid.UUID, keyring: KeyRing, key: SubmitKey | None, if_match: str | None
) -> CommitArgs | None:
    """The arguments of `COMMIT_SQL` in its pre-checked mode for this request, or None when the request cannot
    take that path (an If-Match to compare, or a principal with no reach)."""
    reach, who = _reach(actor.principal)
    if if_match is not None or (who is None and reach != "all"):
        return None
    return CommitArgs(
        application_id=application_id,
        prechecked=True,
        reach=reach,
        reach_id=who,
        **_NOT_CHECKED,
        **_actor_and_key(actor, keyring, key),
        event_id=uuid.uuid4(),
    )


async def settle(
    out: Any, keyring: KeyRing, application_id: uuid.UUID, connection: Callable[[], AbstractAsyncContextManager[Any]]
) -> tuple[dict[str, Any], bool]:
    """The answer to a committed (or refused, or replayed) pre-checked submit; a replay reads the original
    receipt on a connection from `connection()`. Durability is the caller's (`wait_durable`)."""
    if out["outcome"] == "idempotency_mismatch":
        raise _mismatch()
    if out["outcome"] == "replay":
        async with connection() as conn:
            return await _replay(conn, keyring, f"application-receipt:{application_id}"), True
    return _committed(out, keyring, out["call_id"]), False


async def submit(
    *,
    conn: repository.Connection,
    actor: Actor,
    application_id: uuid.UUID,
    keyring: KeyRing,
    key: SubmitKey | None,
    if_match: str | None,
    durable: bool = True,
    prechecked: bool = True,
) -> tuple[dict[str, Any], bool]:
    """Submit a draft and return its receipt, and whether it replays an earlier identical request.

    The click-day path: a draft whose pre-check verdict is current (`record_precheck`, run when it was last
    saved or checked, or by `desk precheck`) is committed by one statement, `intake.commit_submission` in
    its pre-checked mode. Any other draft takes the full path: one query loads it (its call, company and
    lines), the window and the pre-check run here, then the same function commits what was checked
    (protocol number, hash-chain link, outbox event, audit record, idempotency record). `conn` is an asyncpg
    connection: the session's own (inside its transaction, if any) or one from the submit pool (autocommit).

    The commit does not wait for its WAL flush (`commit_submission` must not hold the call's counter lock
    across it). With `durable` (the default) this function waits for it before returning; the click-day
    path passes False, gives its connection back, then waits with `wait_durable` on a connection of its own.
    `prechecked=False` skips the pre-checked attempt (the caller already knows the draft has no current
    verdict). The attempt's `not_prechecked` answer carries the draft (`PRECHECKED_SQL`); the click-day
    route checks it and commits it in a group instead (`submit_grouped`).
    """
    try:
        args = (
            prechecked_args(actor=actor, application_id=application_id, keyring=keyring, key=key, if_match=if_match)
            if prechecked
            else None
        )
        attempt = None
        if args is not None:
            attempt = await conn.fetchrow(PRECHECKED_SQL, *args)
            assert attempt is not None  # the function returns one row
            if attempt["outcome"] != "not_prechecked":
                return await _outcome(conn, attempt, keyring, application_id, durable)
        row = (
            repository.loaded_draft(attempt)
            if attempt is not None
            else await repository.load_for_submit(conn, actor.principal, application_id)
        )
        return await _submit_checking(conn, actor, row, keyring, key, if_match, durable)
    except asyncpg.PostgresError as exc:
        refused = _commit_refused(exc)
        if refused is None:
            raise
        raise refused from None


# A transactional WAL message, committed with the server's synchronous_commit: its commit flushes the log
# up to itself, so past every commit made before it started (PostgreSQL writes WAL in order).
_DURABLE = "SELECT pg_logical_emit_message(true, 'desk.submission', '')"
_FLUSH = GroupFlush()  # concurrent submits share one such commit


async def wait_durable(connection: Callable[[], AbstractAsyncContextManager[Any]]) -> None:
    """Return once every submission committed before this call is durable (flushed as the server's
    synchronous_commit requires). No receipt may leave before."""
    await _FLUSH.flush(connection, _DURABLE)


@asynccontextmanager
async def _same(conn: repository.Connection) -> AsyncIterator[Any]:
    yield conn


# The pre-checked draft's own values are used
_NOT_CHECKED: dict[str, Any] = dict.fromkeys(
    CommitArgs._fields[CommitArgs._fields.index("version") : CommitArgs._fields.index("key_id")]
)


async def _outcome(
    conn: repository.Connection, out: Any, keyring: KeyRing, application_id: uuid.UUID, durable: bool
) -> tuple[dict[str, Any], bool]:
    if out["outcome"] == "idempotency_mismatch":
        raise _mismatch()
    if durable:
        await wait_durable(lambda: _same(conn))
    if out["outcome"] == "replay":  # a concurrent twin with the same key committed first
        return await _replay(conn, keyring, f"application-receipt:{application_id}"), True
    return _committed(out, keyring, out["call_id"]), False


async def _checked_args(
    conn: repository.Connection,
    actor: Actor,
    row: repository.DraftRow | None,
    keyring: KeyRing,
    key: SubmitKey | None,
    if_match: str | None,
) -> CommitArgs | tuple[dict[str, Any], bool]:
    """The full path up to its commit: the draft's state, window and rules checked (a refusal raised), and the
    commit's arguments returned; or the answer of an earlier identical request (a retry that committed)."""
    if row is None:
        raise NotFound()
    if key is not None and row.status != "draft":  # most likely a retry of the submit that committed
        earlier = await repository.idempotency_record(conn, key.owner, key.key)
        if earlier is not None:
            if bytes(earlier["request_hash"]) != key.digest or not (earlier["render_ref"] or "").startswith(
                "application-receipt:"
            ):
                raise _mismatch()
            return await _replay(conn, keyring, earlier["render_ref"]), True
    check_if_match_value(if_match, row.version, required=False)
    if row.status != "draft":
        raise Conflict(
            "La domanda è già stata presentata o ritirata.",
            "The application has already been submitted or withdrawn.",
            extra={"application_status": row.status},
        )
    now = datetime.now(UTC)
    opens, closes = effective_window(row)
    if not opens <= now < closes:
        raise DeskError(
            f"Lo sportello è aperto dal {opens.isoformat()} al {closes.isoformat()} (ora del server).",
            f"The window is open from {opens.isoformat()} to {closes.isoformat()} (server clock).",
            kind=WINDOW_CLOSED,
            extra={"opens_at": opens.isoformat(), "closes_at": closes.isoformat()},
        )
    check = await precheck(conn, row, now, _reach(actor.principal))
    if check.result.blocking:
        raise DeskError(
            kind=CHECK_FAILED,
            errors=[
                ProblemError(p.code, p.path, p.message_it, p.message_en, extra={"article": p.article})
                for p in check.result.problems
                if p.blocking
            ],
        )
    return full_path_args(row, check.content_sha256, event_payload(row, check).decode(), actor, keyring, key)


def full_path_args(
    row: repository.DraftRow,
    content_sha256: str,
    payload: str,
    actor: Actor,
    keyring: KeyRing,
    key: SubmitKey | None,
) -> CommitArgs:
    """The arguments of `COMMIT_SQL` for a draft the full path checked: what was checked (its version, call,
    company, content hash) and the event's payload built from it (canonical JSON text)."""
    return CommitArgs(
        application_id=row.id,
        prechecked=False,
        reach=None,
        reach_id=None,
        version=row.version,
        call_id=row.call_id,
        call_code=row.call_code,
        call_version=row.current_version,
        company_vat=row.vat_number,
        content_sha256=content_sha256,
        event_payload=payload,
        partner_id=row.partner_id,
        company_id=row.company_id,
        **_actor_and_key(actor, keyring, key),
        event_id=uuid.uuid4(),
    )


async def _submit_checking(
    conn: repository.Connection,
    actor: Actor,
    row: repository.DraftRow | None,
    keyring: KeyRing,
    key: SubmitKey | None,
    if_match: str | None,
    durable: bool,
) -> tuple[dict[str, Any], bool]:
    args = await _checked_args(conn, actor, row, keyring, key, if_match)
    if not isinstance(args, CommitArgs):
        return args
    out = await conn.fetchrow(COMMIT_SQL, *args)
    return await _outcome(conn, out, keyring, args.application_id, durable)


class _OnDemand:
    """The reads of a full-path check (rules document on a cache miss, a network's members, an earlier
    receipt), each on a connection taken for that read only: the check itself holds none."""

    def __init__(self, connection: Callable[[], AbstractAsyncContextManager[Any]]) -> None:
        self._connection = connection

    async def fetch(self, query: str, *args: Any) -> list[repository.Record]:
        async with self._connection() as conn:
            rows: list[repository.Record] = await conn.fetch(query, *args)
            return rows

    async def fetchrow(self, query: str, *args: Any) -> repository.Record | None:
        async with self._connection() as conn:
            row: repository.Record | None = await conn.fetchrow(query, *args)
            return row

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self._connection() as conn:
            return await conn.fetchval(query, *args)

    async def fetchmany(self, query: str, args: Iterable[Sequence[Any]]) -> list[repository.Record]:
        async with self._connection() as conn:
            rows: list[repository.Record] = await conn.fetchmany(query, args)
            return rows

    async def executemany(self, command: str, args: Iterable[Sequence[Any]]) -> None:
        async with self._connection() as conn:
            await conn.executemany(command, args)


async def submit_grouped(
    *,
    attempt: repository.Record,
    actor: Actor,
    keyring: KeyRing,
    key: SubmitKey | None,
    commit: Callable[[CommitArgs], Awaitable[Any]],
    connection: Callable[[], AbstractAsyncContextManager[Any]],
) -> tuple[dict[str, Any], bool]:
    """The full path of the click-day route, after its pre-checked attempt answered `not_prechecked` with the
    draft (`PRECHECKED_SQL`): checked here holding no connection, then committed by `commit` (the group
    commit, `fastpath.CommitBatcher`, which answers None when its group failed: this submit then commits
    alone and gets its own answer). Durability is the caller's (`wait_durable`)."""
    reads = _OnDemand(connection)
    try:
        args = await _checked_args(reads, actor, repository.loaded_draft(attempt), keyring, key, None)
        if not isinstance(args, CommitArgs):
            return args
        out = await commit(args)
        if out is None:
            async with connection() as conn:
                out = await conn.fetchrow(COMMIT_SQL, *args)
    except asyncpg.PostgresError as exc:
        refused = _commit_refused(exc)
        if refused is None:
            raise
        raise refused from None
    return await _outcome(reads, out, keyring, args.application_id, durable=False)


def receipt_out(app: Application, keyring: KeyRing, previous_hash: str) -> dict[str, Any]:
    """The receipt of a submitted application; its signature is recomputed (Ed25519 is deterministic)."""
    assert app.receipt is not None
    return {
        "receipt": app.receipt,
        "signature": keyring.sign(canonical_json(app.receipt)),
        "previous_hash": previous_hash,
        "chain_hash": app.chain_hash,
        "register_url": f"/v1/calls/{app.call_id}/register",
    }


async def withdraw(*, session: AsyncSession, actor: Actor, app: Application, reason: str) -> Application:
    if app.status != "submitted":
        raise Conflict(
            "Si può ritirare solo una domanda presentata.",
            "Only a submitted application can be withdrawn.",
            extra={"application_status": app.status},
        )
    app.status, app.withdrawn_at, app.withdrawal_reason = "withdrawn", datetime.now(UTC), reason
    app.version += 1
    app.updated_at = app.withdrawn_at
    await session.flush()
    await record_audit(
        session,
        actor,
        action="application.withdrawn",
        resource_type="application",
        resource_id=app.id,
        before={"status": "submitted"},
        after={"status": "withdrawn", "reason": reason},
    )
    await record_event(
        session,
        actor,
        event_type="application.withdrawn",
        subject_type="application",
        subject_id=app.id,
        partner_id=app.partner_id,
        company_id=app.company_id,
        payload={
            "application_id": app.id,
            "call_id": app.call_id,
            "company_id": app.company_id,
            "protocol_number": app.protocol_number,
            "reason": reason,
            "withdrawn_at": app.withdrawn_at,
        },
    )
    return app
