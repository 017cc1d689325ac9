"""The open data of the funded projects: one row per project still holding aid, with the 360Giving data
standard's field names where they fit, plus the call's identifiers (CUP, COR, decree number).

No personal data: no natural person's name, fiscal code, address, e-mail or IBAN. A company is a business and
its VAT number a business identifier, so both are published; a sole proprietorship (`ditta_individuale`) is a
natural person in business, so its name and VAT number are replaced by a pseudonymous identifier of the grant.
Only the province of a recipient is given, never its address. Free texts written by applicants are not
published except the project's title; the description is built from the target markets.

Regenerated on every request from the current projects (intake's applications and companies are read through
its API and cached: an application's title is frozen at submission, a company's name is re-read after an hour).
Amounts are strings (the desk never puts a float on the path), where 360Giving's JSON has numbers.
"""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from collections.abc import Sequence
from datetime import UTC, date
from decimal import Decimal
from typing import Any

import orjson
import pycountry
import structlog
from cachetools import LRUCache, TTLCache
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.models import Project
from services.monitoring.peers import call_detail, unavailable
from services.monitoring.stats import repository
from services.monitoring.stats.service import PROVINCE_NAMES
from shared.clients.base import NotFoundAtPeer, PeerUnavailable
from shared.clients.intake import IntakeClient
from shared.contracts.applications import ApplicationOut
from shared.contracts.companies import CompanyOut

log = structlog.get_logger("monitoring.open_data")

FUNDING_ORG_ID = "IT12874720159"
"""Regione Lombardia's EU VAT identifier (IT + partita IVA); recipients are identified the same way."""
FUNDING_ORG_NAME = "Regione Lombardia"
IDENTIFIER_PREFIX = "360G-RegioneLombardia-"
NATURAL_PERSON_FORMS = frozenset({"ditta_individuale"})
COMPANY_TTL_SECONDS = 3600.0

FIELDS: tuple[str, ...] = (
    "Identifier",
    "Title",
    "Description",
    "Currency",
    "Amount Awarded",
    "Loan Amount",
    "Award Date",
    "Planned Dates:Start Date",
    "Planned Dates:End Date",
    "Recipient Org:Identifier",
    "Recipient Org:Name",
    "Recipient Org:Location:0:Name",
    "Beneficiary Location:0:Name",
    "Beneficiary Location:0:Country Code",
    "Funding Org:Identifier",
    "Funding Org:Name",
    "Grant Programme:Code",
    "Grant Programme:Title",
    "CUP",
    "COR",
    "Decree Number",
    "Last Modified",
)

# an application's title never changes once submitted; a company's name and site may, so they are read again
_TITLES: LRUCache[uuid.UUID, str] = LRUCache(100_000)
_COMPANIES: TTLCache[uuid.UUID, CompanyOut] = TTLCache(100_000, COMPANY_TTL_SECONDS)


async def _application(intake: IntakeClient, application_id: uuid.UUID) -> ApplicationOut | None:
    try:
        return await intake.get_application(application_id)
    except PeerUnavailable as exc:
        raise unavailable(exc) from exc
    except NotFoundAtPeer:
        return None


async def _title(intake: IntakeClient, application_id: uuid.UUID) -> str | None:
    if application_id not in _TITLES:
        app = await _application(intake, application_id)
        if app is None:
            return None
        _TITLES[application_id] = app.title
    return _TITLES[application_id]


async def _company(intake: IntakeClient, company_id: uuid.UUID) -> CompanyOut | None:
    hit = _COMPANIES.get(company_id)
    if hit is not None:
        return hit
    try:
        company = await intake.get_company(company_id)
    except PeerUnavailable as exc:
        raise unavailable(exc) from exc
    except NotFoundAtPeer:
        return None
    _COMPANIES[company_id] = company
    return company


def _province(code: str | None) -> str:
    return PROVINCE_NAMES.get(code or "", code or "")


def _markets(project: Project) -> list[str]:
    return sorted(
        {
            str(line["country"])
            for line in project.approved_budget or []
            if line.get("dimension") == "market" and line.get("country")
        }
    )


def _country_name(code: str) -> str:
    c = pycountry.countries.get(alpha_2=code)
    return str(c.name) if c is not None else code


def _d(v: date | None) -> str:
    return v.isoformat() if v else ""


def _amount(v: Decimal | None) -> str:
    return f"{v:.2f}" if v is not None else ""


def project_row(
    project: Project, *, call_code: str, call_title: str, title: str, company: CompanyOut
) -> dict[str, str]:
    natural_person = company.legal_form in NATURAL_PERSON_FORMS
    lombard_site = next((s for s in company.operating_sites if s.province in PROVINCE_NAMES), None)
    markets = _markets(project)
    description = "Progetto di internazionalizzazione (piano d'azione per nuovi mercati)"
    if markets:
        description += "; mercati obiettivo: " + ", ".join(f"{_country_name(m)} ({m})" for m in markets)
    return {
        "Identifier": f"{IDENTIFIER_PREFIX}{project.cup or project.id}",
        "Title": title,
        "Description": description,
        "Currency": "EUR",
        "Amount Awarded": _amount(project.final_grant if project.final_grant is not None else project.grant),
        "Loan Amount": _amount(project.final_loan if project.final_loan is not None else project.loan),
        "Award Date": _d(project.decree_date),
        "Planned Dates:Start Date": _d(project.start_date),
        "Planned Dates:End Date": _d(project.deadline),
        "Recipient Org:Identifier": (
            f"{IDENTIFIER_PREFIX}IND-{project.id}" if natural_person else f"IT{company.vat_number}"
        ),
        "Recipient Org:Name": (
            "Impresa individuale (dati personali non pubblicati)" if natural_person else company.name
        ),
        "Recipient Org:Location:0:Name": _province(company.registered_office.province),
        "Beneficiary Location:0:Name": _province((lombard_site or company.registered_office).province),
        "Beneficiary Location:0:Country Code": "IT",
        "Funding Org:Identifier": FUNDING_ORG_ID,
        "Funding Org:Name": FUNDING_ORG_NAME,
        "Grant Programme:Code": call_code,
        "Grant Programme:Title": call_title,
        "CUP": project.cup or "",
        "COR": project.cor or "",
        "Decree Number": project.decree_number,
        "Last Modified": project.updated_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }


async def funded_project_rows(
    *, session: AsyncSession, intake: IntakeClient, call_id: uuid.UUID | None = None
) -> list[dict[str, str]]:
    rows = []
    for project in await repository.funded_projects(session, call_id):
        call = await call_detail(intake, project.call_id)
        title = await _title(intake, project.application_id)
        company = await _company(intake, project.company_id)
        if title is None or company is None:  # intake no longer knows it: left out rather than half-published
            log.warning("open data: project left out", project_id=str(project.id))
            continue
        rows.append(project_row(project, call_code=call.code, call_title=call.title, title=title, company=company))
    return rows


def to_csv(rows: Sequence[dict[str, str]]) -> bytes:
    """RFC 4180: a header line, CRLF line ends, fields quoted when they hold a comma, a quote or a line break
    (quotes doubled), UTF-8."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def to_json(rows: Sequence[dict[str, str]]) -> bytes:
    """360Giving's JSON shape (a `grants` array, nested organisations and locations), plus the desk's fields."""
    grants: list[dict[str, Any]] = []
    for r in rows:
        grants.append(
            {
                "id": r["Identifier"],
                "title": r["Title"],
                "description": r["Description"],
                "currency": r["Currency"],
                "amountAwarded": r["Amount Awarded"],
                "loanAmount": r["Loan Amount"],
                "awardDate": r["Award Date"],
                "plannedDates": [{"startDate": r["Planned Dates:Start Date"], "endDate": r["Planned Dates:End Date"]}],
                "recipientOrganization": [
                    {
                        "id": r["Recipient Org:Identifier"],
                        "name": r["Recipient Org:Name"],
                        "location": [{"name": r["Recipient Org:Location:0:Name"]}],
                    }
                ],
                "beneficiaryLocation": [
                    {"name": r["Beneficiary Location:0:Name"], "countryCode": r["Beneficiary Location:0:Country Code"]}
                ],
                "fundingOrganization": [{"id": r["Funding Org:Identifier"], "name": r["Funding Org:Name"]}],
                "grantProgramme": [{"code": r["Grant Programme:Code"], "title": r["Grant Programme:Title"]}],
                "cup": r["CUP"],
                "cor": r["COR"],
                "decreeNumber": r["Decree Number"],
                "dateModified": r["Last Modified"],
            }
        )
    return orjson.dumps({"grants": grants}, option=orjson.OPT_INDENT_2)


def etag_of_content(body: bytes) -> str:
    """A strong ETag from the content itself: the same dataset always has the same tag, whatever the replica."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: weak comparison, `*` matches anything."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags
