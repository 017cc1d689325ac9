"""The de minimis register through HTTP: officers' entries, the import of a state-aid register (RNA)
export, and the single undertaking (the company and its linked enterprises, from intake on loopback)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import text

from services.evaluation.deminimis.service import italian_today
from shared.db import make_sessionmaker
from tests.factories import make_company, make_partner, open_call, vat_number
from tests.services.evaluation.test_inbox import count

HEADER = "CODICE_FISCALE_BENEFICIARIO;DATA_CONCESSIONE;ELEMENTO_DI_AIUTO;SOGGETTO_CONCEDENTE;REGOLAMENTO;COR"
CSV = {"Content-Type": "text/csv"}


def cor() -> str:
    return str(uuid.uuid4().int % 10**9)


def aid(vat: str, granted_on: date, amount: str, reference: str | None = None) -> dict[str, Any]:
    return {
        "vat_number": vat,
        "granted_on": granted_on.isoformat(),
        "amount": amount,
        "granting_authority": "Regione Lombardia",
        "regulation": "Reg. (UE) 2023/2831",
        "reference": reference or cor(),
    }


async def listed(client: Any, headers: dict[str, str], vat: str) -> list[dict[str, Any]]:
    r = await client.get("/v1/de-minimis/aids", params={"vat_number": vat}, headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


# ---------------------------------------------------------------- officers' entries


async def test_an_officer_records_an_aid_and_a_duplicate_reference_is_409(evaluation_client, officer, auditor, session):
    vat = vat_number()
    body = aid(f"IT{vat}", date(2025, 3, 1), "12500.50")
    r = await evaluation_client.post("/v1/de-minimis/aids", json=body, headers=officer)
    assert r.status_code == 201, r.text
    got = r.json()
    assert (got["vat_number"], got["amount"], got["source"], got["granted_on"]) == (
        vat,
        "12500.50",
        "manual",
        "2025-03-01",
    )
    assert (
        await count(
            session,
            "SELECT count(*) FROM desk.audit_log WHERE action = 'de_minimis.aid_recorded' AND resource_id = :i",
            i=got["id"],
        )
        == 1
    )
    r = await evaluation_client.post("/v1/de-minimis/aids", json=body, headers=officer)
    assert r.status_code == 409
    assert [a["id"] for a in await listed(evaluation_client, auditor, vat)] == [got["id"]]


async def test_a_partner_cannot_use_the_register(evaluation_client, token_factory, session):
    partner = await make_partner(session)
    headers = await token_factory("partner", partner_id=partner.id)
    r = await evaluation_client.post(
        "/v1/de-minimis/aids", json=aid(vat_number(), date(2025, 1, 1), "100.00"), headers=headers
    )
    assert r.status_code == 403
    assert (await evaluation_client.get("/v1/de-minimis/aids", headers=headers)).status_code == 403
    r = await evaluation_client.post("/v1/de-minimis/imports", content=HEADER + "\n", headers={**headers, **CSV})
    assert r.status_code == 403


async def test_an_auditor_cannot_record(evaluation_client, auditor):
    r = await evaluation_client.post(
        "/v1/de-minimis/aids", json=aid(vat_number(), date(2025, 1, 1), "100.00"), headers=auditor
    )
    assert r.status_code == 403


async def test_a_float_amount_is_refused(evaluation_client, officer):
    body = {**aid(vat_number(), date(2025, 1, 1), "1.00"), "amount": 100.5}
    r = await evaluation_client.post("/v1/de-minimis/aids", json=body, headers=officer)
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "/amount"


# ---------------------------------------------------------------- the register import


async def test_an_rna_export_is_imported_with_italian_decimals(evaluation_client, officer, session):
    a, b = vat_number(), vat_number()
    cor_a, cor_b = cor(), cor()
    content = "\n".join(
        [
            HEADER + ";TITOLO_PROGETTO",  # extra columns are ignored
            f"{a};15/03/2024;12.500,75;Regione Lombardia;Reg. (UE) 2023/2831;{cor_a};Fiere",
            f'IT{b};2023-11-02;8000,00;"Camera di Commercio; Milano";Reg. (UE) 1407/2013;{cor_b};E-commerce',
            "",
        ]
    )
    r = await evaluation_client.post("/v1/de-minimis/imports", content=content.encode(), headers={**officer, **CSV})
    assert r.status_code == 200, r.text
    assert r.json() == {"imported": 2, "skipped_duplicates": 0, "errors": []}
    (got_a,) = await listed(evaluation_client, officer, a)
    assert (got_a["amount"], got_a["granted_on"], got_a["source"], got_a["reference"]) == (
        "12500.75",
        "2024-03-15",
        "RNA",
        cor_a,
    )
    (got_b,) = await listed(evaluation_client, officer, b)
    assert (got_b["amount"], got_b["granting_authority"], got_b["regulation"]) == (
        "8000.00",
        "Camera di Commercio; Milano",
        "Reg. (UE) 1407/2013",
    )
    assert (
        await count(
            session,
            "SELECT count(*) FROM desk.audit_log WHERE action = 'de_minimis.imported' "
            "AND after->>'imported' = '2' AND after->'references' ? :c",
            c=cor_a,
        )
        == 1
    )


async def test_a_bad_row_is_reported_with_its_line_and_nothing_is_imported(evaluation_client, officer):
    a, b = vat_number(), vat_number()
    content = "\n".join(
        [
            HEADER,
            f"{a};15/03/2024;1.000,00;Regione Lombardia;Reg. (UE) 2023/2831;{cor()}",
            f"{b};31/02/2024;2.000,00;Regione Lombardia;Reg. (UE) 2023/2831;{cor()}",
            f"12345678901;01/02/2024;3.000,123;Regione Lombardia;Reg. (UE) 2023/2831;{cor()}",
        ]
    )
    r = await evaluation_client.post("/v1/de-minimis/imports", content=content, headers={**officer, **CSV})
    assert r.status_code == 422, r.text
    errors = {(e["line"], e["field"]) for e in r.json()["errors"]}
    assert errors == {(3, "DATA_CONCESSIONE"), (4, "CODICE_FISCALE_BENEFICIARIO"), (4, "ELEMENTO_DI_AIUTO")}
    assert {e["path"] for e in r.json()["errors"]} >= {"/lines/3/DATA_CONCESSIONE"}
    assert await listed(evaluation_client, officer, a) == []  # all or nothing

    r = await evaluation_client.post(
        "/v1/de-minimis/imports",
        params={"skip_invalid": "true"},
        content=content,
        headers={**officer, **CSV, "Accept-Language": "en"},
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["imported"] == 1 and report["skipped_duplicates"] == 0
    assert (report["errors"][0]["line"], report["errors"][0]["field"]) == (3, "DATA_CONCESSIONE")
    assert report["errors"][0]["message"] == report["errors"][0]["message_en"]
    assert len(await listed(evaluation_client, officer, a)) == 1


def test_the_register_day_is_the_day_in_rome_not_in_utc():
    # 23:30 UTC on 4 December is 00:30 in Rome on the 5th (winter, UTC+1); 22:30 UTC on 30 June is 00:30 on
    # 1 July (summer, UTC+2): a grant dated the 5th / 1 July is not in the future there
    assert italian_today(datetime(2026, 12, 4, 23, 30, tzinfo=UTC)) == date(2026, 12, 5)
    assert italian_today(datetime(2026, 6, 30, 22, 30, tzinfo=UTC)) == date(2026, 7, 1)
    assert italian_today(datetime(2026, 12, 4, 22, 59, tzinfo=UTC)) == date(2026, 12, 4)


async def test_a_grant_dated_today_in_rome_is_imported_and_tomorrow_is_refused(evaluation_client, officer):
    today = italian_today()
    a = vat_number()
    rows = [HEADER, f"{a};{today:%d/%m/%Y};1.000,00;Regione Lombardia;Reg. (UE) 2023/2831;{cor()}"]
    rows.append(f"{a};{today + timedelta(days=1):%d/%m/%Y};1.000,00;Regione Lombardia;Reg. (UE) 2023/2831;{cor()}")
    r = await evaluation_client.post("/v1/de-minimis/imports", content="\n".join(rows), headers={**officer, **CSV})
    assert r.status_code == 422, r.text
    assert [(e["line"], e["field"]) for e in r.json()["errors"]] == [(3, "DATA_CONCESSIONE")]
    r = await evaluation_client.post("/v1/de-minimis/imports", content="\n".join(rows[:2]), headers={**officer, **CSV})
    assert r.status_code == 200 and r.json()["imported"] == 1, r.text


async def test_a_missing_column_is_422(evaluation_client, officer):
    r = await evaluation_client.post(
        "/v1/de-minimis/imports", content="CODICE_FISCALE_BENEFICIARIO;COR\n1;2\n", headers={**officer, **CSV}
    )
    assert r.status_code == 422
    assert "/header/DATA_CONCESSIONE" in {e["path"] for e in r.json()["errors"]}


async def test_an_export_with_bare_carriage_returns_is_read_line_by_line(evaluation_client, officer):
    """Lines ending in a bare CR (old spreadsheet exports) are lines, as the csv module reads them in
    universal-newline mode: a file of them imports, and a header of a single unknown column is a 422 naming
    the missing ones, never a server error."""
    a = vat_number()
    content = "\r".join([HEADER, f"{a};15/03/2024;1.000,00;Regione Lombardia;Reg. (UE) 2023/2831;{cor()}", ""])
    r = await evaluation_client.post("/v1/de-minimis/imports", content=content, headers={**officer, **CSV})
    assert r.status_code == 200, r.text
    assert r.json()["imported"] == 1 and len(await listed(evaluation_client, officer, a)) == 1
    r = await evaluation_client.post("/v1/de-minimis/imports", content="V\rU", headers={**officer, **CSV})
    assert r.status_code == 422, r.text
    assert "/header/DATA_CONCESSIONE" in {e["path"] for e in r.json()["errors"]}


async def test_a_file_the_csv_reader_cannot_read_is_422_naming_its_line(evaluation_client, officer):
    """A field over the csv module's size limit (131,072 characters) on line 3."""
    content = "\n".join(
        [
            HEADER,
            f"{vat_number()};15/03/2024;1.000,00;Regione Lombardia;Reg. (UE) 2023/2831;{cor()}",
            f'{vat_number()};15/03/2024;1.000,00;"{"x" * 140_000}";Reg. (UE) 2023/2831;{cor()}',
        ]
    )
    r = await evaluation_client.post("/v1/de-minimis/imports", content=content, headers={**officer, **CSV})
    assert r.status_code == 422, r.text
    (error,) = r.json()["errors"]
    assert (error["code"], error["path"], error["line"]) == ("csv_unreadable", "/lines/3", 3)


async def test_a_duplicate_cor_is_skipped_and_counted(evaluation_client, officer):
    a = vat_number()
    same, other = cor(), cor()
    content = "\n".join(
        [
            HEADER,
            f"{a};15/03/2024;1000,00;Regione Lombardia;Reg. (UE) 2023/2831;{same}",
            f"{a};16/03/2024;1000,00;Regione Lombardia;Reg. (UE) 2023/2831;{same}",  # repeated in the file
        ]
    )
    r = await evaluation_client.post("/v1/de-minimis/imports", content=content, headers={**officer, **CSV})
    assert r.json() == {"imported": 1, "skipped_duplicates": 1, "errors": []}
    content += f"\n{a};17/03/2024;500,00;Regione Lombardia;Reg. (UE) 2023/2831;{other}"
    # the same export again, as a multipart upload: only the new COR is imported
    r = await evaluation_client.post(
        "/v1/de-minimis/imports", files={"file": ("rna.csv", content, "text/csv")}, headers=officer
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"imported": 1, "skipped_duplicates": 2, "errors": []}
    assert sorted(x["amount"] for x in await listed(evaluation_client, officer, a)) == ["1000.00", "500.00"]


async def test_a_json_body_is_415(evaluation_client, officer):
    r = await evaluation_client.post("/v1/de-minimis/imports", json={"rows": []}, headers=officer)
    assert r.status_code == 415


# ---------------------------------------------------------------- the single undertaking


async def test_the_single_undertaking_counts_its_linked_enterprises_in_the_period(
    evaluation_client, intake, intake_server, engine, officer
):
    linked, partner_vat = vat_number(), vat_number()
    related = [
        {
            "vat_number": linked,
            "name": "Controllata S.r.l.",
            "relation": "linked",
            "share": "0.60",
            "headcount_awu": "5",
            "turnover": "500000.00",
            "balance_sheet_total": "400000.00",
        },
        {
            "vat_number": partner_vat,
            "name": "Partecipata S.r.l.",
            "relation": "partner",
            "share": "0.30",
            "headcount_awu": "5",
            "turnover": "500000.00",
            "balance_sheet_total": "400000.00",
        },
    ]
    async with make_sessionmaker(engine)() as s:
        call = await open_call(s)
        company = await make_company(s, related_enterprises=related)
        await s.commit()
    on = date(2026, 6, 30)
    for body in (
        aid(company.vat_number, date(2025, 1, 10), "100000.00"),
        aid(linked, date(2024, 5, 5), "50000.00"),
        aid(company.vat_number, date(2023, 6, 30), "70000.00"),  # the day before the period starts
        aid(partner_vat, date(2025, 1, 1), "90000.00"),
    ):  # a partner enterprise is another undertaking
        assert (await evaluation_client.post("/v1/de-minimis/aids", json=body, headers=officer)).status_code == 201

    r = await evaluation_client.get(
        f"/v1/de-minimis/undertakings/{company.vat_number}",
        params={"on": on.isoformat(), "call_id": str(call.id)},
        headers={**officer, "Accept-Language": "en"},
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["company_id"] == str(company.id)
    assert [(m["vat_number"], m["relation"]) for m in got["members"]] == [
        (company.vat_number, "applicant"),
        (linked, "linked"),
    ]
    assert [a["amount"] for a in got["aids"]] == ["70000.00", "50000.00", "100000.00"]
    period = got["period"]
    assert (period["window_start"], period["window_end"]) == ("2023-07-01", "2026-06-30")
    assert (period["total"], period["ceiling"], period["headroom"]) == ("150000.00", "300000.00", "150000.00")
    codes = [s["code"] for s in period["steps"]]
    assert codes.count("prior_aid_counted") == 2 and codes.count("prior_aid_outside_period") == 1
    assert period["steps"][0]["detail"] == period["steps"][0]["detail_en"]

    # without a call: the members and their entries, no period
    r = await evaluation_client.get(f"/v1/de-minimis/undertakings/{company.vat_number}", headers=officer)
    assert r.json()["period"] is None and len(r.json()["aids"]) == 3


async def test_a_vat_number_unknown_to_intake_is_its_own_undertaking(evaluation_client, intake, officer):
    vat = vat_number()
    assert (
        await evaluation_client.post("/v1/de-minimis/aids", json=aid(vat, date(2025, 1, 1), "10.00"), headers=officer)
    ).status_code == 201
    r = await evaluation_client.get(f"/v1/de-minimis/undertakings/{vat}", headers=officer)
    assert r.status_code == 200
    assert r.json()["company_id"] is None and [m["vat_number"] for m in r.json()["members"]] == [vat]
    assert [a["amount"] for a in r.json()["aids"]] == ["10.00"]


async def test_the_register_list_is_paginated(evaluation_client, officer, session):
    vat = vat_number()
    for day in range(3):
        r = await evaluation_client.post(
            "/v1/de-minimis/aids", json=aid(vat, date(2025, 1, 1) + timedelta(days=day), "1.00"), headers=officer
        )
        assert r.status_code == 201
    first = await evaluation_client.get("/v1/de-minimis/aids", params={"vat_number": vat, "limit": 2}, headers=officer)
    assert len(first.json()["items"]) == 2 and first.json()["next_cursor"]
    rest = await evaluation_client.get(
        "/v1/de-minimis/aids",
        params={"vat_number": vat, "limit": 2, "cursor": first.json()["next_cursor"]},
        headers=officer,
    )
    assert len(rest.json()["items"]) == 1
    assert (
        await session.execute(text("SELECT count(*) FROM evaluation.de_minimis_aids WHERE vat_number = :v"), {"v": vat})
    ).scalar_one() == 3
