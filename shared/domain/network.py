"""Business networks (rete d'impresa): the pre-check of each member and the network's limits.

A network application is the lead's application (its company, its expense lines, the action plan shared by
the network) plus members: companies registered at the desk, each with its own expense lines and de minimis
self-declaration. Each member is checked by the same pure rules as any applicant
(``shared.domain.application_check``: size class, ATECO, financial statements, Lombardy site, export share,
its expense lines and caps, the share of new or emerging markets, its de minimis headroom); the problems that
belong to the plan or the timeline are the lead's, reported once. A member's problems point into its place in
the application: ``/network/members/{i}/company``, ``/network/members/{i}/expense_lines/{j}/...``,
``/network/members/{i}/de_minimis_declarations``.

The aid is computed per member (``compute_aid`` on the member's eligible total, capped at the call's maximum
eligible cost like any applicant's), and the network as a whole must respect the call's ``network`` rules:
the number of members, the cap on the network's eligible total and on its aid. No I/O here.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

from shared.domain.application_check import (
    CheckResult,
    CompanyFacts,
    DeclaredAid,
    DraftFacts,
    DraftLine,
    Problem,
    _check_de_minimis,
    _Problems,
    check_application,
)
from shared.domain.call_rules import CallRules
from shared.domain.funding import AidEstimate, EligibleBreakdown, compute_aid
from shared.domain.money import ZERO, eur_en, eur_it

NETWORK_CODES: tuple[str, ...] = (
    "network_not_allowed",
    "network_members_too_few",
    "network_members_too_many",
    "network_member_no_expenses",
    "network_eligible_total_above_max",
    "network_total_aid_above_max",
)

#: the pre-check problems that concern a member itself (its company, its lines, its de minimis headroom);
#: the plan, the markets chosen and the timeline are the lead's, and the call's per-application bounds on the
#: eligible total give way to the network's (a member's aid base is still capped at the call's maximum).
MEMBER_CODES: frozenset[str] = frozenset(
    {
        "size_class_not_allowed",
        "ateco_invalid",
        "ateco_excluded",
        "financial_statements_insufficient",
        "lombardy_site_missing",
        "turnover_not_positive",
        "export_share_exceeded",
        "expense_category_unknown",
        "expense_category_flat_rate",
        "expense_amount_not_positive",
        "expense_amount_too_many_decimals",
        "expense_market_not_in_plan",
        "category_cap_exceeded",
        "eligible_total_above_max",
        "new_or_emerging_share_too_low",
        "de_minimis_aid_reduced",
        "de_minimis_ceiling_reached",
    }
)


def member_path(index: int) -> str:
    return f"/network/members/{index}"


@dataclass(frozen=True)
class MemberFacts:
    """A member as the rules see it: its company's facts, its own lines and its own de minimis declaration."""

    company_id: str
    vat_number: str
    company: CompanyFacts
    expense_lines: tuple[DraftLine, ...] = ()
    declared_aid: tuple[DeclaredAid, ...] = ()


@dataclass(frozen=True)
class MemberCheck:
    company_id: str
    vat_number: str
    problems: tuple[Problem, ...]
    """With paths under ``/network/members/{i}``."""
    breakdown: EligibleBreakdown | None
    estimate: AidEstimate
    """The member's aid on its eligible total (zero with no eligible line), within its de minimis headroom."""


@dataclass(frozen=True)
class NetworkCheck:
    problems: tuple[Problem, ...]
    """The members' problems and the network's own."""
    members: tuple[MemberCheck, ...]
    eligible_total: Decimal
    """Lead + members."""
    grant: Decimal
    loan: Decimal
    total_aid: Decimal

    @property
    def blocking(self) -> bool:
        return any(p.blocking for p in self.problems)


def prefixed(problem: Problem, index: int) -> Problem:
    """A member's problem, its path moved under the member's place in the application."""
    path = problem.path if problem.path.startswith("/") else f"/{problem.path}"
    return replace(problem, path=member_path(index) + path)


def _problem(rules: CallRules, code: str, path: str, it: str, en: str, article: str) -> Problem:
    assert code in NETWORK_CODES, code
    return Problem(code=code, path=path, message_it=it, message_en=en, article=rules.article(article), blocking=True)


def check_member(rules: CallRules, draft: DraftFacts, member: MemberFacts, index: int, *, today: date) -> MemberCheck:
    """One member under the call's rules: its company, its lines under the network's plan, its de minimis."""
    own = replace(draft, expense_lines=member.expense_lines, declared_aid=member.declared_aid)
    result = check_application(rules, member.company, own, today=today)
    kept = [p for p in result.problems if p.code in MEMBER_CODES and not p.code.startswith("de_minimis")]
    breakdown = result.breakdown
    total = breakdown.total if breakdown is not None else ZERO
    share = Decimal(1)
    if member.company.credit_class is not None and member.company.credit_class in {
        c.class_code for c in rules.credit_scoring.classes
    }:
        share = rules.loan_cap_share(member.company.credit_class)
    estimate = compute_aid(rules, total, share)
    problems = [prefixed(p, index) for p in kept]
    if total <= 0:
        problems.append(
            _problem(
                rules,
                "network_member_no_expenses",
                f"{member_path(index)}/expense_lines",
                "Il membro della rete non ha spese ammissibili proprie.",
                "The network member has no eligible expenses of its own.",
                "expenses",
            )
        )
    else:
        dm_problems = _Problems(rules)
        estimate, _ = _check_de_minimis(rules, member.company, own, estimate, today, dm_problems)
        problems.extend(prefixed(p, index) for p in dm_problems.items)
    return MemberCheck(member.company_id, member.vat_number, tuple(problems), breakdown, estimate)


def network_limits(rules: CallRules, *, members: int, eligible_total: Decimal, total_aid: Decimal) -> list[Problem]:
    """The network as a whole against the call's ``network`` rules."""
    net = rules.network
    if net is None:
        return [
            _problem(
                rules,
                "network_not_allowed",
                "/network",
                f"Il bando {rules.code} non ammette domande di reti d'impresa.",
                f"Call {rules.code} takes no business-network application.",
                "applicants",
            )
        ]
    out: list[Problem] = []
    if members < net.min_members:
        out.append(
            _problem(
                rules,
                "network_members_too_few",
                "/network/members",
                f"La rete indica {members} membri oltre al capofila: ne servono almeno {net.min_members}.",
                f"The network lists {members} members besides the lead: at least {net.min_members} are required.",
                "applicants",
            )
        )
    if members > net.max_members:
        out.append(
            _problem(
                rules,
                "network_members_too_many",
                "/network/members",
                f"La rete indica {members} membri oltre al capofila: al massimo {net.max_members}.",
                f"The network lists {members} members besides the lead: at most {net.max_members}.",
                "applicants",
            )
        )
    if eligible_total > net.max_eligible_total:
        out.append(
            _problem(
                rules,
                "network_eligible_total_above_max",
                "/network",
                f"Le spese ammissibili della rete ({eur_it(eligible_total)}, capofila e membri) superano "
                f"il massimo di {eur_it(net.max_eligible_total)}.",
                f"The network's eligible expenses ({eur_en(eligible_total)}, lead and members) exceed "
                f"the maximum of {eur_en(net.max_eligible_total)}.",
                "expenses",
            )
        )
    if net.max_total_aid is not None and total_aid > net.max_total_aid:
        out.append(
            _problem(
                rules,
                "network_total_aid_above_max",
                "/network",
                f"L'aiuto della rete ({eur_it(total_aid)}, capofila e membri) supera il massimo di "
                f"{eur_it(net.max_total_aid)}.",
                f"The network's aid ({eur_en(total_aid)}, lead and members) exceeds the maximum of "
                f"{eur_en(net.max_total_aid)}.",
                "aid",
            )
        )
    return out


def check_network(
    rules: CallRules, lead: CheckResult, draft: DraftFacts, members: Sequence[MemberFacts | None], *, today: date
) -> NetworkCheck:
    """Every member's check and the network's limits; the lead's own check is ``lead`` (its figures count
    towards the network's totals). A member given as ``None`` (its company could not be read: the caller
    reports why) is counted but not checked."""
    checks = tuple(check_member(rules, draft, m, i, today=today) for i, m in enumerate(members) if m is not None)
    lead_total = lead.breakdown.total if lead.breakdown is not None else ZERO
    lead_grant = lead.estimate.grant if lead.estimate is not None else ZERO
    lead_loan = lead.estimate.loan if lead.estimate is not None else ZERO
    eligible = lead_total + sum((c.breakdown.total for c in checks if c.breakdown is not None), ZERO)
    grant = lead_grant + sum((c.estimate.grant for c in checks), ZERO)
    loan = lead_loan + sum((c.estimate.loan for c in checks), ZERO)
    problems = [p for c in checks for p in c.problems]
    problems.extend(network_limits(rules, members=len(members), eligible_total=eligible, total_aid=grant + loan))
    return NetworkCheck(tuple(problems), checks, eligible, grant, loan, grant + loan)
