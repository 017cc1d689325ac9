"""The funding computation through HTTP, with worked figures: grant and loan on the eligible total after
the cuts, the loan's plan and gross grant equivalent, and the de minimis ceiling over the single
undertaking (the company and its linked enterprises) reducing or refusing the aid.

The call "Verso Nuovi Mercati": grant 20 % (cap 120,000), loan 65 % (cap 390,000 x the class's share),
intensity 85 %, loan at 1.5 % over 3-6 years with 12 months' grace; reference rate 3.10 % + the class's
margin (class 2: 100 bp = 4.10 %); ceiling 300,000.00 over 3 years. The complete draft's eligible total
is 121,980.00 -> grant 24,396.00, loan 79,287.00; over 6 years one euro of loan is worth 0.08936854 of
grant (GGE), so the loan counts 7,085.77 (rounded up to the cent) against the ceiling."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text

from tests.factories import vat_number
from tests.services.evaluation.test_admissibility import evaluated, events_of


def today_rome() -> date:
    from datetime import datetime

    return datetime.now(ZoneInfo("Europe/Rome")).date()


async def admissible_and_passed(
    client: Any,
    engine: Any,
    intake_url: str,
    session: Any,
    *,
    company: dict[str, Any] | None = None,
    credit_class: str | None = "2",
    merit_verdict: str | None = "passed",
    draft: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An application evaluated admissible; the merit module's outcome set directly in the database."""
    sub = await evaluated(client, engine, intake_url, company=company, draft=draft)
    await session.execute(
        text(
            "UPDATE evaluation.evaluations SET credit_class = :c, merit_verdict = :m, "
            "score = 75 WHERE application_id = :a"
        ),
        {"c": credit_class, "m": merit_verdict, "a": sub["application_id"]},
    )
    return sub


async def record(client: Any, officer: dict[str, str], vat: str, granted_on: date, amount: str) -> None:
    r = await client.post(
        "/v1/de-minimis/aids",
        json={
            "vat_number": vat,
            "granted_on": granted_on.isoformat(),
            "amount": amount,
            "granting_authority": "Regione Lombardia",
            "regulation": "Reg. (UE) 2023/2831",
            "reference": f"COR-{vat}-{granted_on.isoformat()}",
        },
        headers=officer,
    )
    assert r.status_code == 201, r.text


async def fund(
    client: Any, app_id: str, headers: dict[str, str], body: dict[str, Any] | None = None, etag: str = '"1"'
) -> Any:
    return await client.post(
        f"/v1/evaluations/{app_id}/funding", json=body or {}, headers={**headers, "If-Match": etag}
    )


async def test_funding_with_no_prior_aid(evaluation_client, intake, intake_server, engine, officer, session):
    sub = await admissible_and_passed(evaluation_client, engine, intake_server.url, session)
    r = await fund(evaluation_client, sub["application_id"], {**officer, "Accept-Language": "en"})
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == '"2"'
    ev = r.json()
    assert ev["stage"] == "evaluated"
    assert (ev["grant"], ev["loan"], ev["loan_gge"]) == ("24396.00", "79287.00", "7085.77")
    f = ev["funding"]
    assert (f["refused"], f["credit_class"], f["loan_years"], f["grace_months"]) == (False, "2", 6, 12)
    assert (f["reference_rate"], f["gge_per_euro"], f["total_aid"]) == ("0.0410", "0.08936854", "103683.00")
    assert (f["requested_grant"], f["requested_loan"]) == ("24396.00", "79287.00")
    plan = f["installments"]
    assert len(plan) == 12 and [i["month"] for i in plan[:3]] == [6, 12, 18]
    assert [i["principal"] for i in plan[:2]] == ["0.00", "0.00"]  # 12 months' grace: interest only
    assert plan[0]["interest"] == "594.65"  # 79,287.00 x 1.5 % / 2, half-up
    assert sum(Decimal(i["principal"]) for i in plan) == Decimal("79287.00") and plan[-1]["outstanding"] == "0.00"
    assert [s["code"] for s in f["steps"]] == [
        "eligible_total",
        "credit_class",
        "grant",
        "loan",
        "reference_rate",
        "loan_gge",
    ]
    assert f["steps"][0]["detail"] == "Eligible expenses after the cuts: EUR 121,980.00."
    dm = ev["de_minimis"]
    assert (dm["prior_total"], dm["headroom"], dm["requested_equivalent"], dm["allowed_equivalent"]) == (
        "0.00",
        "300000.00",
        "31481.77",
        "31481.77",
    )
    assert (dm["reduced"], dm["refused"], dm["grant_date"]) == (False, False, today_rome().isoformat())
    assert [s["code"] for s in dm["steps"]][-1] == "fits"
    assert next(c for c in ev["checks"] if c["code"] == "credit_class")["outcome"] == "pass"

    (event,) = await events_of(session, sub["application_id"], "evaluation.funding_computed")
    assert event.payload["stage"] == "evaluated" and event.payload["grant"] == "24396.00"
    assert event.partner_id == sub["partner_id"]
    # computed once: a second computation is refused
    again = await fund(evaluation_client, sub["application_id"], officer, etag='"2"')
    assert again.status_code == 409
    # and the partner reads the explained result
    r = await evaluation_client.get(f"/v1/evaluations/{sub['application_id']}", headers=sub["partner_headers"])
    assert r.status_code == 200 and r.json()["funding"]["steps"][0]["detail"].startswith("Spese ammissibili")


async def test_prior_aid_of_the_company_and_a_linked_enterprise_reduces_the_loan(
    evaluation_client, intake, intake_server, engine, officer, session
):
    linked, partner_vat = vat_number(), vat_number()
    related = [
        {
            "vat_number": linked,
            "name": "Controllata S.r.l.",
            "relation": "linked",
            "share": "0.60",
            "headcount_awu": "2",
            "turnover": "100000.00",
            "balance_sheet_total": "100000.00",
        },
        {
            "vat_number": partner_vat,
            "name": "Partecipata S.r.l.",
            "relation": "partner",
            "share": "0.30",
            "headcount_awu": "2",
            "turnover": "100000.00",
            "balance_sheet_total": "100000.00",
        },
    ]
    sub = await admissible_and_passed(
        evaluation_client, engine, intake_server.url, session, company={"related_enterprises": related}
    )
    day = today_rome()
    await record(evaluation_client, officer, sub["vat_number"], day - timedelta(days=400), "120000.00")
    await record(evaluation_client, officer, linked, day - timedelta(days=30), "150000.00")
    await record(evaluation_client, officer, sub["vat_number"], day - timedelta(days=4 * 365), "100000.00")  # out
    await record(evaluation_client, officer, partner_vat, day - timedelta(days=30), "200000.00")  # not counted

    r = await fund(evaluation_client, sub["application_id"], officer)
    assert r.status_code == 200, r.text
    ev = r.json()
    # headroom 300,000 - 270,000 = 30,000: the grant stays, the loan keeps what fits:
    # 30,000 - 24,396 = 5,604.00 of equivalent -> 62,706.63 of loan (x 0.08936854, rounded up = 5,604.00)
    assert ev["stage"] == "evaluated"
    assert (ev["grant"], ev["loan"], ev["loan_gge"]) == ("24396.00", "62706.63", "5604.00")
    dm = ev["de_minimis"]
    assert (dm["prior_total"], dm["headroom"], dm["allowed_equivalent"], dm["reduced"]) == (
        "270000.00",
        "30000.00",
        "30000.00",
        True,
    )
    assert sorted(dm["members"]) == sorted([sub["vat_number"], linked])
    codes = [s["code"] for s in dm["steps"]]
    assert codes.count("prior_aid_counted") == 2 and codes.count("prior_aid_outside_period") == 1
    assert {"loan_reduced", "grant_kept", "allowed"} <= set(codes)
    f = ev["funding"]
    assert (f["requested_loan"], f["loan"]) == ("79287.00", "62706.63")
    assert sum(Decimal(i["principal"]) for i in f["installments"]) == Decimal("62706.63")
    assert f["steps"][-1]["code"] == "de_minimis_reduced"
    (event,) = await events_of(session, sub["application_id"], "evaluation.funding_computed")
    assert event.payload["de_minimis_reduced"] is True and event.payload["loan"] == "62706.63"


async def test_no_headroom_refuses_the_aid(evaluation_client, intake, intake_server, engine, officer, session):
    sub = await admissible_and_passed(evaluation_client, engine, intake_server.url, session)
    await record(evaluation_client, officer, sub["vat_number"], today_rome() - timedelta(days=10), "300000.00")
    r = await fund(evaluation_client, sub["application_id"], officer)
    assert r.status_code == 200, r.text
    ev = r.json()
    assert ev["stage"] == "not_admissible"
    assert (ev["grant"], ev["loan"], ev["loan_gge"]) == ("0.00", "0.00", "0.00")
    assert ev["funding"]["refused"] is True and ev["funding"]["reason"] == "de_minimis_ceiling"
    assert ev["funding"]["installments"] == []
    assert ev["de_minimis"]["refused"] is True and ev["de_minimis"]["steps"][-1]["code"] == "refused"
    (event,) = await events_of(session, sub["application_id"], "evaluation.funding_computed")
    assert event.payload["stage"] == "not_admissible" and event.payload["reason"] == "de_minimis_ceiling"


async def test_a_shorter_loan_and_a_class_with_half_the_cap(
    evaluation_client, intake, intake_server, engine, officer, session
):
    sub = await admissible_and_passed(evaluation_client, engine, intake_server.url, session, credit_class="4")
    r = await fund(evaluation_client, sub["application_id"], officer, {"loan_years": 3})
    assert r.status_code == 200, r.text
    f = r.json()["funding"]
    # class 4: loan cap 195,000 (not binding here); margin 400 bp -> reference 7.10 %
    assert (f["loan_years"], f["loan_cap_share"], f["reference_rate"], f["loan"]) == (3, "0.50", "0.0710", "79287.00")
    assert len(f["installments"]) == 6


async def test_preconditions_are_problems_and_change_nothing(
    evaluation_client, intake, intake_server, engine, officer, session
):
    sub = await admissible_and_passed(evaluation_client, engine, intake_server.url, session, credit_class=None)
    app_id = sub["application_id"]
    r = await fund(evaluation_client, app_id, officer)
    assert r.status_code == 409 and r.json()["reason"] == "credit_class_missing"
    await session.execute(
        text(
            "UPDATE evaluation.evaluations SET credit_class = '2', merit_verdict = 'failed' WHERE application_id = :a"
        ),
        {"a": app_id},
    )
    r = await fund(evaluation_client, app_id, officer)
    assert r.status_code == 409 and r.json()["reason"] == "merit_not_passed"
    await session.execute(
        text("UPDATE evaluation.evaluations SET merit_verdict = 'passed' WHERE application_id = :a"), {"a": app_id}
    )
    r = await fund(evaluation_client, app_id, officer, {"loan_years": 7})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "/loan_years"
    assert (await fund(evaluation_client, app_id, officer, etag='"9"')).status_code == 412
    assert (
        await evaluation_client.post(f"/v1/evaluations/{app_id}/funding", json={}, headers=officer)
    ).status_code == 428
    assert (await fund(evaluation_client, app_id, sub["partner_headers"])).status_code == 403
    ev = (await evaluation_client.get(f"/v1/evaluations/{app_id}", headers=officer)).json()
    assert ev["stage"] == "admissible" and ev["funding"] is None and ev["etag"] == '"1"'
    assert await events_of(session, app_id, "evaluation.funding_computed") == []


async def test_a_not_admissible_application_is_not_funded(
    evaluation_client, intake, intake_server, engine, officer, session
):
    sub = await admissible_and_passed(evaluation_client, engine, intake_server.url, session)
    await session.execute(
        text("UPDATE evaluation.evaluations SET stage = 'needs_review' WHERE application_id = :a"),
        {"a": sub["application_id"]},
    )
    r = await fund(evaluation_client, sub["application_id"], officer)
    assert r.status_code == 409 and r.json()["reason"] == "not_admissible"
