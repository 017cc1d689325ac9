import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from shared.domain.call_rules import CallRules

CALL_FILE = Path(__file__).resolve().parents[3] / "calls" / "verso-nuovi-mercati-2025.yaml"


def raw() -> dict[str, Any]:
    with CALL_FILE.open(encoding="utf-8") as f:
        data: dict[str, Any] = yaml.safe_load(f)
    return data


def test_seeded_call_loads() -> None:
    rules = CallRules.model_validate(raw())
    assert rules.code == "VNM-2025"
    assert rules.legal_basis.decree_date.isoformat() == "2025-04-18"
    assert rules.budget_total == Decimal("18978747.97")
    assert rules.procedure == "ranking"
    assert rules.window.opens_at == datetime(2025, 6, 3, 8, 0, tzinfo=UTC)
    assert rules.window.closes_at == datetime(2025, 9, 9, 10, 0, tzinfo=UTC)
    assert rules.eligibility.sizes == ["micro", "small", "medium"]
    assert rules.direct_codes == ("a", "b", "c")
    assert rules.flat_rate_codes == ("d", "e")
    flat_e = rules.category("e").flat_rate
    assert flat_e is not None and flat_e.base == ["a", "b", "c", "d"]
    assert rules.cap_order() == ("a",) and rules.total_cap_codes == ("c",)
    assert rules.flat_rate_order() == ("d", "e")
    assert rules.aid.grant.cap == Decimal("120000.00")
    assert rules.aid.loan.cap == Decimal("390000.00")
    assert rules.eligible_cost.min == Decimal("30000.00")
    assert rules.de_minimis.ceiling == Decimal("300000.00")
    assert rules.scoring.max_total == 100
    assert rules.loan_cap_share("4") == Decimal("0.50")
    assert rules.is_emerging("BR") and not rules.is_emerging("US")
    assert rules.article("expenses") == "B.3"
    assert rules.window.is_open(datetime(2025, 7, 1, 12, tzinfo=UTC))
    assert not rules.window.is_open(datetime(2025, 9, 9, 10, 0, 1, tzinfo=UTC))
    with pytest.raises(KeyError):
        rules.category("z")


def test_every_decimal_in_yaml_is_quoted() -> None:
    def walk(node: Any) -> None:
        assert not isinstance(node, float), node
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(raw())


def test_assumptions_listed() -> None:
    paths = {a.path for a in CallRules.model_validate(raw()).assumptions}
    for expected in (
        "window.opens_at",
        "aid.loan.grace_months",
        "credit_scoring",
        "markets.min_share_new_or_emerging",
        "markets.emerging_countries",
        "scoring",
        "de_minimis.reference_base_rate",
        "articles",
        "expense_categories[c].cap.base",
        "expense_categories[e].flat_rate.base",
    ):
        assert expected in paths


def test_json_round_trip_with_decimal_strings() -> None:
    rules = CallRules.model_validate(raw())
    dumped = rules.model_dump(mode="json")
    assert dumped["budget_total"] == "18978747.97"
    assert dumped["aid"]["grant"]["cap"] == "120000.00"
    again = CallRules.model_validate(json.loads(json.dumps(dumped)))
    assert again == rules
    assert CallRules.model_validate_json(rules.model_dump_json()) == rules


def test_frozen() -> None:
    rules = CallRules.model_validate(raw())
    with pytest.raises(ValidationError):
        rules.code = "X"  # type: ignore[misc]


def _invalid(mutate: Any) -> None:
    data = copy.deepcopy(raw())
    mutate(data)
    with pytest.raises(ValidationError):
        CallRules.model_validate(data)


def test_rejects_grant_plus_loan_above_intensity() -> None:
    _invalid(lambda d: d["aid"]["loan"].__setitem__("percent", "0.70"))


def test_rejects_unknown_cap_base() -> None:
    _invalid(lambda d: d["expense_categories"][0]["cap"].__setitem__("of", ["b", "z"]))


def test_rejects_unknown_flat_rate_base() -> None:
    _invalid(lambda d: d["expense_categories"][4]["flat_rate"].__setitem__("base", ["a", "q"]))


def test_rejects_naive_datetime() -> None:
    _invalid(lambda d: d["window"].__setitem__("opens_at", "2025-06-03T10:00:00"))


def test_rejects_window_backwards() -> None:
    _invalid(lambda d: d["window"].__setitem__("closes_at", "2025-06-01T10:00:00+02:00"))


def test_rejects_duplicate_category_codes() -> None:
    _invalid(lambda d: d["expense_categories"][1].__setitem__("code", "a"))


def test_rejects_cyclic_caps() -> None:
    _invalid(lambda d: d["expense_categories"][2].__setitem__("cap", {"percent": "0.10", "of": ["a"]}))


def test_rejects_bad_country_extra_key_and_money() -> None:
    _invalid(lambda d: d["markets"]["emerging_countries"].append("XX"))
    _invalid(lambda d: d["markets"]["emerging_countries"].append("br"))
    _invalid(lambda d: d.__setitem__("unexpected", 1))
    _invalid(lambda d: d.__setitem__("budget_total", "10.001"))
    _invalid(lambda d: d.__setitem__("schema_version", 2))
    _invalid(lambda d: d["articles"].pop("aid"))
    _invalid(lambda d: d["eligibility"]["excluded_ateco_sections"].append("Z"))
    _invalid(lambda d: d["assumptions"].append({"path": "nowhere.x", "note": "n"}))
    _invalid(lambda d: d.__setitem__("timezone", "Mars/Base"))


def test_a_cap_on_the_eligible_total_lists_no_categories_and_a_cap_on_categories_lists_some() -> None:
    doc = raw()
    doc["expense_categories"][2]["cap"] = {"percent": "0.10", "base": "eligible_total", "of": ["b"]}
    with pytest.raises(ValidationError, match="lists no categories"):
        CallRules.model_validate(doc)
    doc["expense_categories"][2]["cap"] = {"percent": "0.10", "base": "categories"}
    with pytest.raises(ValidationError, match="lists them in `of`"):
        CallRules.model_validate(doc)


def test_worked_out_orders_and_categories_are_kept_but_neither_dumped_nor_compared() -> None:
    """A submit's pre-check asks the rules for a category per expense line and for the flat-rate and cap orders
    each time it computes an eligible amount: each rules object works them out once."""
    rules = CallRules.model_validate(raw())
    assert rules.flat_rate_order() is rules.flat_rate_order() and rules.cap_order() is rules.cap_order()
    first = rules.expense_categories[0]
    assert rules.category(first.code) is first and rules.has_category(first.code)
    assert not rules.has_category("no-such-category")
    with pytest.raises(KeyError):
        rules.category("no-such-category")
    # what is kept is not part of the rules: not dumped, not compared, the same whether worked out or not
    fresh = CallRules.model_validate(raw())
    assert rules == fresh and rules.model_dump() == fresh.model_dump()
    assert rules.model_dump_json() == fresh.model_dump_json()
    assert not any(k.startswith("_") for k in rules.model_dump())
