"""From intake's API models to the facts the pure rules take (``shared.domain.application_check``).

The one place where evaluation maps what intake publishes (``CompanyOut``, ``ApplicationOut``) onto
``CompanyFacts``/``DraftFacts``, the VAT numbers of the related enterprises and of the single
undertaking, and the supplier VAT numbers of the expense lines. Intake builds the same facts from its
own rows (``services.intake.applications.service.company_facts``); evaluation reads only the API.
"""

from __future__ import annotations

import re
from dataclasses import replace

from shared.contracts.applications import ApplicationOut, ExpenseLineOut, NetworkMemberOut
from shared.contracts.companies import CompanyOut
from shared.domain.application_check import (
    CompanyFacts,
    DeclaredAid,
    DraftFacts,
    DraftLine,
    ExportSale,
    Milestone,
)
from shared.domain.de_minimis import normalise_vat

# An expense line's supplier is free text at intake; a partita IVA in it (11 digits, "IT" optional)
# is what the intra-group check can compare with the related enterprises.
_SUPPLIER_VAT = re.compile(r"(?<!\d)(?:IT)?(\d{11})(?!\d)", re.IGNORECASE)


def company_facts(company: CompanyOut, *, credit_class: str | None = None) -> CompanyFacts:
    """``credit_class`` is evaluation's (the merit evaluation assigns it), not intake's."""
    return CompanyFacts(
        size_class=company.size_class,
        ateco_code=company.ateco_code,
        approved_financial_statements=company.approved_financial_statements,
        has_lombardy_site=company.has_lombardy_site,
        lombardy_site_commitment=company.lombardy_site_commitment,
        turnover=company.turnover,
        previous_year_export_sales=company.previous_year_export_sales,
        export_history=tuple(ExportSale(e.year, e.country, e.amount) for e in company.export_history),
        credit_class=credit_class,
    )


def draft_facts(app: ApplicationOut) -> DraftFacts:
    plan = app.action_plan
    return DraftFacts(
        target_markets=tuple(m.country for m in plan.target_markets),
        objectives=plan.objectives,
        starting_point=plan.starting_point,
        strategy=plan.strategy,
        resources=plan.resources,
        start_date=plan.start_date,
        end_date=plan.end_date,
        milestones=tuple(Milestone(m.title, m.due_date) for m in plan.milestones),
        kpi_count=len(plan.kpis),
        expense_lines=tuple(DraftLine(ln.category, ln.amount, ln.target_market) for ln in app.expense_lines),
        flat_rates=frozenset(app.flat_rates),
        declared_aid=tuple(
            DeclaredAid(normalise_vat(d.vat_number), d.granted_on, d.amount, d.reference or f"declared {i + 1}")
            for i, d in enumerate(app.de_minimis_declarations)
        ),
    )


def member_draft_facts(app: ApplicationOut, member: NetworkMemberOut) -> DraftFacts:
    """A network member's facts: the network's action plan with the member's own lines and declaration."""
    return replace(
        draft_facts(app),
        expense_lines=tuple(DraftLine(ln.category, ln.amount, ln.target_market) for ln in member.expense_lines),
        declared_aid=tuple(
            DeclaredAid(normalise_vat(d.vat_number), d.granted_on, d.amount, d.reference or f"declared {i + 1}")
            for i, d in enumerate(member.de_minimis_declarations)
        ),
    )


def line_suppliers(app: ApplicationOut) -> dict[int, str]:
    """Supplier VAT number by line position, for the lines whose supplier quotes one."""
    return suppliers_of(app.expense_lines)


def suppliers_of(lines: list[ExpenseLineOut]) -> dict[int, str]:
    """Supplier VAT number by position, for the lines (the application's, or a network member's) quoting one."""
    out: dict[int, str] = {}
    for i, line in enumerate(lines):
        m = _SUPPLIER_VAT.search(line.supplier or "")
        if m is not None:
            out[i] = m.group(1)
    return out


def related_vats(company: CompanyOut) -> list[str]:
    """The applicant and its partner and linked enterprises: purchases from them are intra-group."""
    return [normalise_vat(company.vat_number), *(normalise_vat(r.vat_number) for r in company.related_enterprises)]


def single_undertaking(company: CompanyOut) -> list[str]:
    """The single undertaking of de minimis (Reg. 2023/2831 Art. 2(2)): the company and its linked
    enterprises (relation "linked" at intake), not the partner enterprises."""
    linked = [normalise_vat(r.vat_number) for r in company.related_enterprises if r.relation == "linked"]
    return list(dict.fromkeys([normalise_vat(company.vat_number), *linked]))
