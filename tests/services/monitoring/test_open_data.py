"""Open data through HTTP, without a token: the funded projects as CSV (RFC 4180) and JSON (360Giving shape),
exact rows, no personal data, a content ETag and 304 on If-None-Match."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from typing import Any

import orjson
import pytest_asyncio

from services.monitoring.stats.open_data import FIELDS
from tests.services.monitoring.builders import VALID_IBAN, FakeIntake, make_project

SOLE_TRADER_VAT = "01234567897"
SOLE_TRADER_FISCAL_CODE = "RSSMRA80A01F205X"


@pytest_asyncio.fixture(loop_scope="session")
async def fake_intake(monitoring_app: Any) -> AsyncIterator[FakeIntake]:
    fake = FakeIntake()
    monitoring_app.state.intake_client = fake
    yield fake
    monitoring_app.state.intake_client = None


async def dataset(session: Any, fake: FakeIntake) -> dict[str, Any]:
    call_id = fake.add_call()
    markets = [
        {"dimension": "market", "category": None, "kind": None, "country": "VN", "amount": "45000.00"},
        {"dimension": "market", "category": None, "kind": None, "country": "BR", "amount": "35000.00"},
        {"dimension": "market", "category": None, "kind": None, "country": None, "amount": "15000.00"},
    ]
    company = await make_project(
        session,
        call_id=call_id,
        grant="24396.37",
        loan="79288.21",
        decree_date=date(2026, 1, 31),
        deadline=date(2027, 7, 31),
        cup="J12B26000010001",
        cor="COR-1000001",
        decree_number="DDUO 1234",
        iban=VALID_IBAN,
    )
    company.approved_budget = markets
    company.final_grant = Decimal("20000.00")  # reduced after the final claim
    fake.add_application(company.application_id, "Nuovi mercati in Vietnam e Brasile")
    fake.add_company(
        company.company_id, name='Alfa "Export", S.r.l.', vat_number="12345678903", province="BG", site_province="MI"
    )
    sole = await make_project(
        session,
        call_id=call_id,
        grant="10000.00",
        loan="0.00",
        decree_date=date(2026, 2, 2),
        deadline=date(2027, 8, 2),
        cup="J12B26000010002",
        cor="COR-1000002",
        decree_number="DDUO 1240",
        iban=VALID_IBAN,
    )
    fake.add_application(sole.application_id, "Export in Canada")
    fake.add_company(
        sole.company_id, name="Rossi Mario", vat_number=SOLE_TRADER_VAT, legal_form="ditta_individuale", province="CO"
    )
    revoked = await make_project(session, call_id=call_id, status="revoked", cup="J12B26000010003")
    fake.add_application(revoked.application_id, "Revocato")
    fake.add_company(revoked.company_id, name="Revocata Srl", vat_number="11111111115")
    await session.flush()
    return {"call_id": call_id, "company": company, "sole": sole, "code": fake.calls[call_id].code}


def expected_rows(d: dict[str, Any]) -> list[dict[str, str]]:
    company, sole = d["company"], d["sole"]
    common = {
        "Currency": "EUR",
        "Beneficiary Location:0:Country Code": "IT",
        "Funding Org:Identifier": "IT12874720159",
        "Funding Org:Name": "Regione Lombardia",
        "Grant Programme:Code": d["code"],
        "Grant Programme:Title": "Verso Nuovi Mercati",
    }
    return [
        {
            **common,
            "Identifier": "360G-RegioneLombardia-J12B26000010001",
            "Title": "Nuovi mercati in Vietnam e Brasile",
            "Description": "Progetto di internazionalizzazione (piano d'azione per nuovi mercati); mercati obiettivo: "
            "Brazil (BR), Viet Nam (VN)",
            "Amount Awarded": "20000.00",
            "Loan Amount": "79288.21",
            "Award Date": "2026-01-31",
            "Planned Dates:Start Date": "2026-01-01",
            "Planned Dates:End Date": "2027-07-31",
            "Recipient Org:Identifier": "IT12345678903",
            "Recipient Org:Name": 'Alfa "Export", S.r.l.',
            "Recipient Org:Location:0:Name": "Bergamo",
            "Beneficiary Location:0:Name": "Milano",
            "CUP": "J12B26000010001",
            "COR": "COR-1000001",
            "Decree Number": "DDUO 1234",
            "Last Modified": company.updated_at.isoformat().replace("+00:00", "Z"),
        },
        {
            **common,
            "Identifier": "360G-RegioneLombardia-J12B26000010002",
            "Title": "Export in Canada",
            "Description": "Progetto di internazionalizzazione (piano d'azione per nuovi mercati)",
            "Amount Awarded": "10000.00",
            "Loan Amount": "0.00",
            "Award Date": "2026-02-02",
            "Planned Dates:Start Date": "2026-01-03",
            "Planned Dates:End Date": "2027-08-02",
            "Recipient Org:Identifier": f"360G-RegioneLombardia-IND-{sole.id}",
            "Recipient Org:Name": "Impresa individuale (dati personali non pubblicati)",
            "Recipient Org:Location:0:Name": "Como",
            "Beneficiary Location:0:Name": "Como",
            "CUP": "J12B26000010002",
            "COR": "COR-1000002",
            "Decree Number": "DDUO 1240",
            "Last Modified": sole.updated_at.isoformat().replace("+00:00", "Z"),
        },
    ]


def no_personal_data(raw: bytes) -> None:
    for secret in (
        b"Rossi",
        b"Mario",
        SOLE_TRADER_VAT.encode(),
        SOLE_TRADER_FISCAL_CODE.encode(),
        b"Via Privata",
        VALID_IBAN.encode(),
        b"Revocat",
    ):
        assert secret not in raw, secret


async def test_csv_rows_are_exact_rfc4180_and_without_personal_data(monitoring_client, session, fake_intake):
    d = await dataset(session, fake_intake)
    r = await monitoring_client.get("/v1/open-data/funded-projects.csv", params={"call_id": str(d["call_id"])})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv") and "charset=utf-8" in r.headers["content-type"]
    raw = r.content
    lines = raw.split(b"\r\n")
    assert lines[-1] == b"" and all(b"\n" not in line for line in lines)  # CRLF ends every record
    assert lines[0].decode() == ",".join(FIELDS)
    assert b'"Alfa ""Export"", S.r.l."' in raw  # quotes doubled, field quoted for its comma
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8"), newline="")))
    assert rows == expected_rows(d)
    no_personal_data(raw)


async def test_json_follows_360giving_and_matches_the_csv(monitoring_client, session, fake_intake):
    d = await dataset(session, fake_intake)
    r = await monitoring_client.get("/v1/open-data/funded-projects.json", params={"call_id": str(d["call_id"])})
    assert r.status_code == 200, r.text
    grants = orjson.loads(r.content)["grants"]
    first = expected_rows(d)[0]
    assert grants[0] == {
        "id": first["Identifier"],
        "title": first["Title"],
        "description": first["Description"],
        "currency": "EUR",
        "amountAwarded": "20000.00",
        "loanAmount": "79288.21",
        "awardDate": "2026-01-31",
        "plannedDates": [{"startDate": "2026-01-01", "endDate": "2027-07-31"}],
        "recipientOrganization": [
            {"id": "IT12345678903", "name": 'Alfa "Export", S.r.l.', "location": [{"name": "Bergamo"}]}
        ],
        "beneficiaryLocation": [{"name": "Milano", "countryCode": "IT"}],
        "fundingOrganization": [{"id": "IT12874720159", "name": "Regione Lombardia"}],
        "grantProgramme": [{"code": d["code"], "title": "Verso Nuovi Mercati"}],
        "cup": "J12B26000010001",
        "cor": "COR-1000001",
        "decreeNumber": "DDUO 1234",
        "dateModified": first["Last Modified"],
    }
    assert [g["recipientOrganization"][0]["name"] for g in grants] == [
        'Alfa "Export", S.r.l.',
        "Impresa individuale (dati personali non pubblicati)",
    ]
    no_personal_data(r.content)


async def test_etag_and_304_until_the_data_changes(monitoring_client, session, fake_intake):
    d = await dataset(session, fake_intake)
    params = {"call_id": str(d["call_id"])}
    etags = {}
    for suffix in ("csv", "json"):
        url = f"/v1/open-data/funded-projects.{suffix}"
        first = await monitoring_client.get(url, params=params)
        etags[suffix] = first.headers["etag"]
        same = await monitoring_client.get(url, params=params, headers={"If-None-Match": etags[suffix]})
        assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == etags[suffix]
        other = await monitoring_client.get(url, params=params, headers={"If-None-Match": '"stale"'})
        assert other.status_code == 200 and other.content == first.content
    assert etags["csv"] != etags["json"]
    d["sole"].grant = Decimal("9000.00")
    await session.flush()
    changed = await monitoring_client.get(
        "/v1/open-data/funded-projects.csv", params=params, headers={"If-None-Match": etags["csv"]}
    )
    assert changed.status_code == 200 and b"9000.00" in changed.content
    assert changed.headers["etag"] != etags["csv"]


async def test_open_data_needs_no_token_and_lists_only_funded_projects(monitoring_client, session, fake_intake):
    d = await dataset(session, fake_intake)
    r = await monitoring_client.get("/v1/open-data/funded-projects.json", params={"call_id": str(d["call_id"])})
    assert r.status_code == 200
    assert len(orjson.loads(r.content)["grants"]) == 2  # the revoked project is not published
    r = await monitoring_client.get("/v1/open-data/funded-projects.json", params={"call_id": str(uuid.uuid4())})
    assert orjson.loads(r.content) == {"grants": []}
