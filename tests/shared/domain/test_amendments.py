"""The frozen-field diff of two versions of a call's rules (pure, no database)."""

from datetime import timedelta
from decimal import Decimal

from shared.domain.amendments import changed_fields, check_amendment
from shared.domain.call_rules import CallRules
from tests.shared.domain.test_call_rules import raw


def rules(**update: object) -> CallRules:
    return CallRules.model_validate(raw()).model_copy(update=update)


def test_identical_documents_differ_nowhere_even_with_other_spellings() -> None:
    assert changed_fields({"a": Decimal("0.2"), "b": [1, {"c": 2}]}, {"a": Decimal("0.20"), "b": [1, {"c": 2}]}) == []
    assert changed_fields({"a": [1, 2]}, {"a": [1, 2, 3]}) == ["a"]
    assert changed_fields({"x": {"y": [{"z": 1}]}}, {"x": {"y": [{"z": 2}]}}) == ["x.y[0].z"]
    check = check_amendment(rules(), rules(), opened=True)
    assert check.changed == () and check.refused == () and not check.needs_decree


def test_once_open_only_a_later_close_and_a_higher_budget_pass() -> None:
    before = rules()
    window = before.window.model_copy(update={"closes_at": before.window.closes_at + timedelta(days=30)})
    after = rules(window=window, budget_total=Decimal("20000000.00"))
    check = check_amendment(before, after, opened=True)
    assert check.changed == ("budget_total", "window.closes_at")
    assert check.refused == () and check.extends_window and check.raises_budget and check.needs_decree


def test_once_open_rates_eligibility_an_earlier_close_and_a_lower_budget_are_refused_by_name() -> None:
    before = rules()
    aid = before.aid.model_copy(update={"grant": before.aid.grant.model_copy(update={"percent": Decimal("0.10")})})
    eligibility = before.eligibility.model_copy(update={"sizes": ["micro"]})
    window = before.window.model_copy(update={"closes_at": before.window.closes_at - timedelta(days=1)})
    after = rules(aid=aid, eligibility=eligibility, window=window, budget_total=Decimal("1000000.00"))
    check = check_amendment(before, after, opened=True)
    assert check.refused == ("aid.grant.percent", "budget_total", "eligibility.sizes", "window.closes_at")
    assert check.changed == check.refused
    # before opening the same change is allowed
    assert check_amendment(before, after, opened=False).refused == ()


def test_a_change_inside_a_list_of_categories_is_named_with_its_index() -> None:
    before = rules()
    cats = list(before.expense_categories)
    cap = cats[2].cap
    assert cap is not None
    cats[2] = cats[2].model_copy(update={"cap": cap.model_copy(update={"percent": Decimal("0.15")})})
    check = check_amendment(before, rules(expense_categories=cats), opened=True)
    assert check.refused == ("expense_categories[2].cap.percent",)
