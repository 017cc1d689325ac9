"""The pure rules of expert accompaniment: sector coverage, conflicts, fit and the order of proposals."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

from shared.domain.accompaniment import ExpertFacts, Need, conflicts, fit, proposals, sector_covers

TODAY = date(2026, 12, 4)


def expert(**over: object) -> ExpertFacts:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "fiscal_code": "RSSMRA80A01F205X",
        "vat_number": "01234567897",
        "markets": ("VN", "BR"),
        "sectors": ("28",),
        "languages": ("en",),
        "phases": ("design",),
        "hours_per_month": Decimal("10"),
        "hours_this_month": Decimal("0"),
        "accredited_from": date(2026, 1, 1),
        "accredited_to": None,
    }
    values.update(over)
    return ExpertFacts(**values)  # type: ignore[arg-type]


def need(**over: object) -> Need:
    values: dict[str, object] = {
        "phase": "design",
        "markets": ("VN", "BR", "US", "CN"),
        "sector": "28.29.30",
        "language": "it",
        "suppliers": (),
        "drafting_consultant": None,
        "declared_conflicts": (),
    }
    values.update(over)
    return Need(**values)  # type: ignore[arg-type]


def test_a_sector_code_covers_the_codes_below_it_only() -> None:
    assert sector_covers("28", "28.29.30") and sector_covers("28.2", "28.29") and sector_covers("28.29.30", "28.29.30")
    assert not sector_covers("28.3", "28.29.30") and not sector_covers("10", "28.29.30")


def test_conflicts_by_supplier_vat_with_prefix_consultant_and_declaration() -> None:
    e = expert()
    assert conflicts(e, need(suppliers=("Fiere Srl P.IVA IT01234567897",))) == ["supplier"]
    assert conflicts(e, need(suppliers=("Fiere Srl",))) == []
    assert conflicts(e, need(drafting_consultant="rssmra80a01f205x")) == ["drafting_consultant"]
    assert conflicts(e, need(declared_conflicts=("01234567897",))) == ["declared_conflict"]


def test_fit_by_hand() -> None:
    # 2 of 4 markets: 20; sector 25; no Italian: 0; 7.5 of 10 hours left: 15 -> 60
    f = fit(expert(hours_this_month=Decimal("2.5")), need())
    assert (f.market_points, f.sector_points, f.language_points, f.availability_points, f.score) == (
        Decimal("20.00"),
        Decimal("25.00"),
        Decimal("0.00"),
        Decimal("15.00"),
        Decimal("60.00"),
    )


def test_proposals_leave_out_the_ineligible_and_break_ties_by_hours_left() -> None:
    a = expert(fiscal_code="B" * 16, hours_per_month=Decimal("20"), hours_this_month=Decimal("10"))
    full = expert(hours_this_month=Decimal("10"))
    expired = expert(accredited_to=date(2026, 12, 3))
    other_phase = expert(phases=("reporting",))
    declined = expert()
    b = expert(fiscal_code="A" * 16, hours_this_month=Decimal("5"))  # same score as a (20 x 5/10), fewer hours left
    ranked = proposals([b, full, expired, other_phase, declined, a], need(declined_by=frozenset({declined.id})), TODAY)
    assert [e.id for e, _ in ranked] == [a.id, b.id]
