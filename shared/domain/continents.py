"""The continent of a country (ISO 3166-1 alpha-2), for statistics by target market.

pycountry carries no continents, so the table is data here. It follows the UN M49 regions, with the
Americas split into North America (Northern America, Central America, the Caribbean) and South America,
and two conventions: Cyprus is counted in Europe (an EU member state; M49 puts it in Western Asia), and
the uninhabited Antarctic territories (AQ, BV, GS, HM, TF) in Antarctica. Pure data, no I/O.
"""

from __future__ import annotations

from typing import Literal

Continent = Literal["AF", "AN", "AS", "EU", "NA", "OC", "SA"]

#: Continent codes and their names (English, Italian), in the order charts and tables list them.
CONTINENTS: dict[Continent, tuple[str, str]] = {
    "EU": ("Europe", "Europa"),
    "AS": ("Asia", "Asia"),
    "NA": ("North America", "America settentrionale"),
    "SA": ("South America", "America meridionale"),
    "AF": ("Africa", "Africa"),
    "OC": ("Oceania", "Oceania"),
    "AN": ("Antarctica", "Antartide"),
}

_MEMBERS: dict[Continent, str] = {
    "AF": """AO BF BI BJ BW CD CF CG CI CM CV DJ DZ EG EH ER ET GA GH GM GN GQ GW IO KE KM LR LS LY MA MG ML MR
             MU MW MZ NA NE NG RE RW SC SD SH SL SN SO SS ST SZ TD TG TN TZ UG YT ZA ZM ZW""",
    "AN": "AQ BV GS HM TF",
    "AS": """AE AF AM AZ BD BH BN BT CN GE HK ID IL IN IQ IR JO JP KG KH KP KR KW KZ LA LB LK MM MN MO MV MY NP
             OM PH PK PS QA SA SG SY TH TJ TL TM TR TW UZ VN YE""",
    "EU": """AD AL AT AX BA BE BG BY CH CY CZ DE DK EE ES FI FO FR GB GG GI GR HR HU IE IM IS IT JE LI LT LU LV
             MC MD ME MK MT NL NO PL PT RO RS RU SE SI SJ SK SM UA VA XK""",
    "NA": """AG AI AW BB BL BM BQ BS BZ CA CR CU CW DM DO GD GL GP GT HN HT JM KN KY LC MF MQ MS MX NI PA PM PR
             SV SX TC TT US VC VG VI""",
    "OC": "AS AU CC CK CX FJ FM GU KI MH MP NC NF NR NU NZ PF PG PN PW SB TK TO TV UM VU WF WS",
    "SA": "AR BO BR CL CO EC FK GF GY PE PY SR UY VE",
}

#: ISO 3166-1 alpha-2 code -> continent code.
COUNTRY_CONTINENT: dict[str, Continent] = {
    country: continent for continent, members in _MEMBERS.items() for country in members.split()
}


def continent_of(country: str | None) -> Continent | None:
    """The continent of an alpha-2 country code (any case), or None if the code is unknown or missing."""
    if not country:
        return None
    return COUNTRY_CONTINENT.get(country.upper())


def continents_of(countries: list[str] | tuple[str, ...]) -> frozenset[Continent]:
    """The distinct continents of a list of countries (an application targeting two Asian markets is one
    application for Asia); unknown codes are ignored."""
    return frozenset(c for c in (continent_of(x) for x in countries) if c is not None)
