"""The pure rules of business networks (no database): each member's problems under its own path, the
network's limits from the call's `network` section."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from pydantic import ValidationError

from services.intake.calls.service import load_rules_file
from shared.domain.application_check import CheckResult, CompanyFacts, DraftFacts, DraftLine
from shared.domain.call_rules import NetworkRules
from shared.domain.network import MemberFacts, check_member, check_network, network_limits
from tests.factories import CALL_FILE

RULES = load_rules_file(CALL_FILE)
DAY = date(2026, 12, 3)
SMALL = CompanyFacts(
    size_class="small",
    ateco_code="28.29.30",
    approved_financial_statements=3,
    has_lombardy_site=True,
    lombardy_site_commitment=False,
    turnover=Decimal("5000000.00"),
    previous_year_export_sales=Decimal("1000000.00"),
)
PLAN = DraftFacts(target_markets=("VN", "BR"), flat_rates=frozenset({"d", "e"}))


def test_the_call_declares_its_network_limits_as_assumptions():
    assert RULES.network == NetworkRules(
        min_members=2, max_members=9, max_eligible_total=Decimal("1500000.00"), max_total_aid=Decimal("1275000.00")
    )
    assert {a.path for a in RULES.assumptions} >= {
        "network.min_members",
        "network.max_members",
        "network.max_eligible_total",
        "network.max_total_aid",
    }
    with pytest.raises(ValidationError):
        NetworkRules(min_members=3, max_members=2, max_eligible_total=Decimal("1.00"))


def test_a_member_is_checked_on_its_own_company_and_lines_under_its_path():
    large = CompanyFacts(**{**SMALL.__dict__, "size_class": "large", "has_lombardy_site": False})
    member = MemberFacts("m", "12345678903", large, (DraftLine("b", Decimal("20000.00"), "US"),))
    got = check_member(RULES, PLAN, member, 1, today=DAY)
    assert {(p.code, p.path) for p in got.problems} == {
        ("size_class_not_allowed", "/network/members/1/company"),
        ("lombardy_site_missing", "/network/members/1/company"),
        ("expense_market_not_in_plan", "/network/members/1/expense_lines/0/target_market"),
    }
    # b 20,000.00 + d 4,000.00 + e 7 % of 24,000.00 = 1,680.00 -> 25,680.00: grant 5,136.00, loan 16,692.00
    assert (got.estimate.eligible_total, got.estimate.grant, got.estimate.loan) == (
        Decimal("25680.00"),
        Decimal("5136.00"),
        Decimal("16692.00"),
    )


def test_a_member_without_lines_blocks_and_gets_no_aid():
    got = check_member(RULES, PLAN, MemberFacts("m", "12345678903", SMALL), 0, today=DAY)
    assert [(p.code, p.path, p.blocking) for p in got.problems] == [
        ("network_member_no_expenses", "/network/members/0/expense_lines", True)
    ]
    assert got.estimate.total_aid == 0


def test_the_network_limits():
    assert [
        p.code
        for p in network_limits(RULES, members=2, eligible_total=Decimal("1500000.00"), total_aid=Decimal("1275000.00"))
    ] == []
    over = network_limits(RULES, members=10, eligible_total=Decimal("1500000.01"), total_aid=Decimal("1275000.01"))
    assert [(p.code, p.path) for p in over] == [
        ("network_members_too_many", "/network/members"),
        ("network_eligible_total_above_max", "/network"),
        ("network_total_aid_above_max", "/network"),
    ]
    assert "1.500.000,00 €" in over[1].message_it and "EUR 1,500,000.01" in over[1].message_en
    closed = network_limits(
        RULES.model_copy(update={"network": None}), members=2, eligible_total=Decimal(0), total_aid=Decimal(0)
    )
    assert [(p.code, p.path) for p in closed] == [("network_not_allowed", "/network")]


def test_a_member_not_read_is_counted_not_checked():
    lead = CheckResult(problems=(), breakdown=None, estimate=None, blocking=False)
    member = MemberFacts("m", "12345678903", SMALL, (DraftLine("b", Decimal("20000.00"), "VN"),))
    got = check_network(RULES, lead, PLAN, [None, member], today=DAY)
    assert [m.company_id for m in got.members] == ["m"] and got.problems == ()
    assert (got.eligible_total, got.total_aid) == (Decimal("25680.00"), Decimal("21828.00"))
