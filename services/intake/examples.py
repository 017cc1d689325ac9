"""Example request bodies: a Lombard SME and a complete "Verso Nuovi Mercati" draft that passes every check.

Used by `desk example …` (so the README's walkthrough always has dates in the future), by the
tests' factories and by the click-day benchmark. The draft's figures: eligible total 121,980.00
(a 10,000 + b 80,000 + c 5,000, d 20 % = 19,000, e 7 % = 7,980) → grant 24,396.00, loan 79,287.00.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from stdnum import luhn


def vat_number(rng: random.Random | None = None) -> str:
    """A valid Italian VAT number (partita IVA): 7 digits, a provincial office code 001-100, the Luhn digit."""
    r = rng or random.Random()  # noqa: S311 - example data, not a secret
    body = f"{r.randrange(10**7):07d}{r.randint(1, 100):03d}"
    return body + luhn.calc_check_digit(body)


def company_body(vat: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A small manufacturing company in Bergamo that exports to Germany and France only."""
    vat = vat or vat_number()
    last_year = date.today().year - 1
    body: dict[str, Any] = {
        "vat_number": vat,
        "fiscal_code": vat,
        "name": "Meccanica Lombarda S.r.l.",
        "legal_form": "srl",
        "ateco_code": "28.29.30",
        "registered_office": {
            "address": "Via Roma 1",
            "municipality": "Bergamo",
            "postal_code": "24121",
            "province": "BG",
        },
        "operating_sites": [],
        "lombardy_site_commitment": False,
        "incorporation_date": "2015-03-01",
        "approved_financial_statements": 3,
        "headcount_awu": "25",
        "turnover": "5000000.00",
        "balance_sheet_total": "4000000.00",
        "previous_year_export_sales": "1000000.00",
        "related_enterprises": [],
        "export_history": [
            {"year": last_year, "country": "DE", "amount": "600000.00"},
            {"year": last_year, "country": "FR", "amount": "400000.00"},
        ],
    }
    body.update(overrides)
    return body


def draft_body(call_id: Any, company_id: Any, *, today: date | None = None, **overrides: Any) -> dict[str, Any]:
    """A complete draft for new markets (Vietnam, Brazil), starting a month from `today`."""
    start = (today or date.today()) + timedelta(days=30)
    end = start + timedelta(days=365)
    body: dict[str, Any] = {
        "call_id": str(call_id),
        "company_id": str(company_id),
        "title": "Nuovi mercati in Vietnam e Brasile",
        "action_plan": {
            "objectives": "Aprire due mercati extra-UE con distributori locali.",
            "starting_point": "Esportiamo solo in Germania e Francia (20% del fatturato).",
            "strategy": "Fiere, showroom virtuale, certificazioni locali, formazione export manager.",
            "resources": "Export manager, consulente, budget marketing.",
            "target_markets": [
                {"country": "VN", "analysis": "Domanda crescente di macchinari.", "risks": "Dazi; cambio."},
                {"country": "BR", "analysis": "Mercato ampio nel settore alimentare.", "risks": "Burocrazia."},
            ],
            "start_date": start.isoformat(),
            "end_date": end.isoformat(),
            "milestones": [
                {"title": "Fiera a Ho Chi Minh", "due_date": (start + timedelta(days=120)).isoformat()},
                {"title": "Primo distributore in Brasile", "due_date": (start + timedelta(days=300)).isoformat()},
            ],
            "kpis": [
                {"name": "Quota fatturato estero", "baseline": "20.00", "target": "30.00", "unit": "%"},
                {"name": "Nuovi clienti esteri", "baseline": "0.00", "target": "8.00", "unit": "clienti"},
            ],
        },
        "expense_lines": [
            {
                "category": "a",
                "description": "Consulenza per il piano di azione",
                "amount": "10000.00",
                "target_market": None,
                "supplier": "Studio Export Srl",
            },
            {
                "category": "b",
                "description": "Fiera Vietnam Manufacturing Expo",
                "amount": "45000.00",
                "target_market": "VN",
                "supplier": None,
            },
            {
                "category": "b",
                "description": "Showroom virtuale e campagna Brasile",
                "amount": "35000.00",
                "target_market": "BR",
                "supplier": None,
            },
            {
                "category": "c",
                "description": "Formazione export manager",
                "amount": "5000.00",
                "target_market": None,
                "supplier": None,
            },
        ],
        "flat_rates": ["d", "e"],
        "network": None,
    }
    body.update(overrides)
    return body
