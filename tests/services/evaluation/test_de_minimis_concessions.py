"""The desk's own concessions in the de minimis register, through HTTP: a company funded in one call and accepting
the decision applies to a second call, and its headroom there shows the first aid; an acceptance that would take
the single undertaking over the ceiling is a problem that changes nothing; two acceptances of one undertaking at
once cannot together exceed the ceiling.

Figures (see test_funding_computation): the complete draft gives grant 24,396.00 and loan 79,287.00 whose gross
grant equivalent over 6 years is 7,085.77, so the concession counts 24,396.00 + 7,085.77 = 31,481.77; the second
call's headroom is 300,000.00 - 31,481.77 = 268,518.23."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from shared.db import make_sessionmaker
from tests.conftest import make_token
from tests.factories import declare_stamp_duty, draft_body, open_call, vat_number
from tests.services.evaluation.builders import FakeIntake, evaluated_application
from tests.services.evaluation.test_decisions import close
from tests.services.evaluation.test_funding_computation import admissible_and_passed, fund, today_rome
from tests.services.evaluation.test_inbox import deliver, outbox_event


async def close_window(engine: Any, call_id: str) -> None:
    """The call's (demo) window closes now, at intake: a ranking call is allocated only after its close."""
    async with engine.begin() as c:
        await c.execute(
            text(
                "UPDATE intake.calls SET demo_closes_at = now() - interval '1 second', "
                "version = version + 1 WHERE id = :c"
            ),
            {"c": call_id},
        )


async def decide_and_accept(
    client: Any,
    call_id: str,
    app_id: str,
    officer: dict[str, str],
    company_headers: dict[str, str],
    *,
    cor: str,
    confirmer: dict[str, str],
    engine: Any = None,
) -> httpx.Response:
    """Allocate the call (after closing its window at intake when `engine` is given), put the application in a
    decree dated today closed by two officers (`officer` proposes, `confirmer` confirms), give CUP and COR, and
    accept."""
    if engine is not None:
        await close_window(engine, call_id)
    r = await client.post(f"/v1/calls/{call_id}/allocation", headers=officer)
    assert r.status_code == 200, r.text
    r = await client.post(
        "/v1/decrees",
        headers=officer,
        json={"call_id": call_id, "number": f"DDS-{uuid.uuid4().hex[:10]}", "decree_date": today_rome().isoformat()},
    )
    assert r.status_code == 201, r.text
    decree = r.json()
    r = await client.post(
        f"/v1/decrees/{decree['id']}/decisions",
        headers={**officer, "If-Match": decree["etag"]},
        json={"application_ids": [app_id]},
    )
    assert r.status_code == 201, r.text
    decision = r.json()["created"][0]
    etag = r.json()["decree"]["etag"]
    r = await close(client, decree["id"], etag, officer, confirmer)
    assert r.status_code == 200, r.text
    for what, value in (("cup", f"E14D{uuid.uuid4().int % 10**11:011d}"), ("cor", cor)):
        etag = (await client.get(f"/v1/decisions/{decision['id']}", headers=officer)).headers["etag"]
        r = await client.put(
            f"/v1/decisions/{decision['id']}/{what}", headers={**officer, "If-Match": etag}, json={what: value}
        )
        assert r.status_code == 200, r.text
    etag = (await client.get(f"/v1/decisions/{decision['id']}", headers=officer)).headers["etag"]
    return await client.post(f"/v1/decisions/{decision['id']}/accept", headers={**company_headers, "If-Match": etag})


async def second_application(client: Any, engine: Any, intake_url: str, sub: dict[str, Any]) -> str:
    """The same company, through the same partner, applies to a second (new) call; evaluation receives it."""
    async with make_sessionmaker(engine)() as s:
        call = await open_call(s)
        await s.commit()
    async with httpx.AsyncClient(base_url=intake_url) as http:
        r = await http.post(
            "/v1/applications", json=draft_body(call.id, sub["company_id"]), headers=sub["partner_headers"]
        )
        assert r.status_code == 201, r.text
        await declare_stamp_duty(http, r.json()["id"], sub["partner_headers"])
        r = await http.post(f"/v1/applications/{r.json()['id']}/submit", headers=sub["partner_headers"])
        assert r.status_code == 201, r.text
    app_id = str(r.json()["receipt"]["application_id"])
    r = await deliver(client, await outbox_event(engine, app_id, "application.submitted"))
    assert r.status_code == 200, r.text
    return app_id


def de_minimis_doc(vat: str, equivalent: str) -> dict[str, Any]:
    """The de minimis part of an evaluation as the desk writes it, for an undertaking with no prior aid:
    `equivalent` (grant plus the loan's gross grant equivalent) within the 300,000.00 ceiling."""
    today = date.today()
    return {
        "grant_date": today.isoformat(),
        "members": [vat],
        "ceiling": "300000.00",
        "window_start": date(today.year - 2, 1, 1).isoformat(),
        "window_end": today.isoformat(),
        "prior_total": "0.00",
        "headroom": "300000.00",
        "requested_equivalent": equivalent,
        "allowed_equivalent": equivalent,
        "reduced": False,
        "refused": False,
        "steps": [],
    }


async def test_a_company_funded_in_one_call_sees_that_aid_in_the_second(
    evaluation_client, intake, intake_server, engine, officer, second_officer, auditor, session
):
    first = await admissible_and_passed(evaluation_client, engine, intake_server.url, session)
    r = await fund(evaluation_client, first["application_id"], officer)
    assert r.status_code == 200, r.text
    assert (r.json()["grant"], r.json()["loan_gge"]) == ("24396.00", "7085.77")
    cor = str(uuid.uuid4().int % 10**9)
    r = await decide_and_accept(
        evaluation_client,
        first["call_id"],
        first["application_id"],
        officer,
        first["partner_headers"],
        cor=cor,
        confirmer=second_officer,
        engine=engine,
    )
    assert r.status_code == 200, r.text

    r = await evaluation_client.get("/v1/de-minimis/aids", params={"vat_number": first["vat_number"]}, headers=auditor)
    (entry,) = r.json()["items"]
    assert (entry["source"], entry["reference"], entry["amount"], entry["granted_on"]) == (
        "desk",
        cor,
        "31481.77",
        today_rome().isoformat(),
    ), "grant 24,396.00 + GGE 7,085.77 at the decree's date"

    second = await second_application(evaluation_client, engine, intake_server.url, first)
    await session.execute(
        text(
            "UPDATE evaluation.evaluations SET credit_class = '2', merit_verdict = 'passed', "
            "score = 75 WHERE application_id = :a"
        ),
        {"a": second},
    )
    r = await fund(evaluation_client, second, {**officer, "Accept-Language": "en"})
    assert r.status_code == 200, r.text
    dm = r.json()["de_minimis"]
    assert (dm["prior_total"], dm["headroom"], dm["reduced"]) == ("31481.77", "268518.23", False)
    counted = [s for s in dm["steps"] if s["code"] == "prior_aid_counted"]
    assert len(counted) == 1 and f"aid {cor} (desk)" in counted[0]["detail_en"]

    # the same aid imported later from the state-aid register (same COR) is counted once
    csv = (
        "CODICE_FISCALE_BENEFICIARIO;DATA_CONCESSIONE;ELEMENTO_DI_AIUTO;SOGGETTO_CONCEDENTE;REGOLAMENTO;COR\n"
        f"{first['vat_number']};{today_rome():%d/%m/%Y};31.481,77;Regione Lombardia;Reg. (UE) 2023/2831;{cor}\n"
    )
    r = await evaluation_client.post(
        "/v1/de-minimis/imports", content=csv.encode(), headers={**officer, "Content-Type": "text/csv"}
    )
    assert r.status_code == 200 and r.json()["imported"] == 1, r.text
    r = await evaluation_client.get(
        f"/v1/de-minimis/undertakings/{first['vat_number']}", params={"call_id": first["call_id"]}, headers=auditor
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["aids"]) == 2 and r.json()["period"]["total"] == "31481.77"


async def test_an_acceptance_over_the_ceiling_is_refused_and_changes_nothing(
    evaluation_client, intake, intake_server, engine, officer, second_officer, auditor, session
):
    sub = await admissible_and_passed(evaluation_client, engine, intake_server.url, session)
    r = await fund(evaluation_client, sub["application_id"], officer)
    assert r.status_code == 200, r.text
    # after the computation (headroom then 300,000.00) another aid of 290,000.00 enters the register:
    # 300,000.00 - 290,000.00 = 10,000.00 of headroom < 31,481.77
    r = await evaluation_client.post(
        "/v1/de-minimis/aids",
        headers=officer,
        json={
            "vat_number": sub["vat_number"],
            "granted_on": today_rome().isoformat(),
            "amount": "290000.00",
            "granting_authority": "Camera di commercio",
            "regulation": "Reg. (UE) 2023/2831",
            "reference": "COR-X-1",
        },
    )
    assert r.status_code == 201, r.text
    r = await decide_and_accept(
        evaluation_client,
        sub["call_id"],
        sub["application_id"],
        officer,
        {**sub["partner_headers"], "Accept-Language": "en"},
        cor="998877",
        confirmer=second_officer,
        engine=engine,
    )
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["type"].endswith("/problems/de-minimis-ceiling")
    assert (problem["amount"], problem["prior_total"], problem["headroom"]) == ("31481.77", "290000.00", "10000.00")
    r = await evaluation_client.get("/v1/de-minimis/aids", params={"vat_number": sub["vat_number"]}, headers=auditor)
    assert [a["reference"] for a in r.json()["items"]] == ["COR-X-1"], "no concession registered"
    assert (
        await session.scalar(
            text("SELECT count(*) FROM desk.outbox WHERE event_type = 'decision.accepted' AND ordering_key = :a"),
            {"a": sub["application_id"]},
        )
        == 0
    )
    assert (
        await session.scalar(
            text("SELECT status FROM evaluation.decisions WHERE application_id = :a"), {"a": sub["application_id"]}
        )
        == "issued"
    )


async def test_two_acceptances_of_one_undertaking_at_once_never_exceed_the_ceiling(
    engine, evaluation_committing_app, evaluation_committing_client
):
    """Two concessions of 160,000.00 each (grant 120,000.00 + loan GGE 40,000.00) to one company at once: the
    ceiling of 300,000.00 takes one; the other is refused (409 de-minimis-ceiling), whatever the interleaving."""
    client = evaluation_committing_client
    fake = FakeIntake()
    call_id = fake.add_call(budget_total="5000000.00")
    evaluation_committing_app.state.intake_client = fake
    company_id, vat = uuid.uuid4(), vat_number()
    async with make_sessionmaker(engine)() as s:
        apps = [
            await evaluated_application(
                s,
                call_id=call_id,
                grant="120000.00",
                loan="390000.00",
                loan_gge="40000.00",
                company_id=company_id,
                de_minimis=de_minimis_doc(vat, "160000.00"),
            )
            for _ in range(2)
        ]
        officer = await make_token(s, "officer")
        confirmer = await make_token(s, "officer")
        company = await make_token(s, "company", company_id=company_id)
        await s.commit()
    ids = [str(a.application_id) for a in apps]
    r = await client.post(f"/v1/calls/{call_id}/allocation", headers=officer)
    assert r.status_code == 200, r.text
    r = await client.post(
        "/v1/decrees",
        headers=officer,
        json={
            "call_id": str(call_id),
            "number": f"DDS-{uuid.uuid4().hex[:10]}",
            "decree_date": today_rome().isoformat(),
        },
    )
    decree = r.json()
    r = await client.post(
        f"/v1/decrees/{decree['id']}/decisions",
        headers={**officer, "If-Match": decree["etag"]},
        json={"application_ids": ids},
    )
    assert r.status_code == 201, r.text
    decisions = r.json()["created"]
    etag = r.json()["decree"]["etag"]
    r = await close(client, decree["id"], etag, officer, confirmer)
    assert r.status_code == 200, r.text
    etags = []
    for i, d in enumerate(decisions):
        codes = (("cup", f"E14D{uuid.uuid4().int % 10**11:011d}"), ("cor", f"{uuid.uuid4().int % 10**9}{i}"))
        for what, value in codes:
            etag = (await client.get(f"/v1/decisions/{d['id']}", headers=officer)).headers["etag"]
            r = await client.put(
                f"/v1/decisions/{d['id']}/{what}", headers={**officer, "If-Match": etag}, json={what: value}
            )
            assert r.status_code == 200, r.text
        etags.append(r.headers["etag"])
    results = await asyncio.gather(
        *(
            client.post(f"/v1/decisions/{d['id']}/accept", headers={**company, "If-Match": etag})
            for d, etag in zip(decisions, etags, strict=True)
        )
    )
    assert sorted(r.status_code for r in results) == [200, 409], [r.text for r in results]
    refused = next(r for r in results if r.status_code == 409).json()
    assert refused["type"].endswith("/problems/de-minimis-ceiling")
    assert (refused["prior_total"], refused["headroom"]) == ("160000.00", "140000.00")
    async with engine.connect() as c:
        total = await c.scalar(
            text("SELECT coalesce(sum(amount), 0) FROM evaluation.de_minimis_aids WHERE vat_number = :v"), {"v": vat}
        )
    assert str(total) == "160000.00", "one concession only: never over 300,000.00"


async def test_a_reduction_and_a_revocation_update_the_concession(
    evaluation_app, evaluation_client, session, officer, second_officer, auditor, token_factory
):
    """Grant 20,000.00 + loan 80,000.00 whose GGE is 8,000.00 (0.1 per euro): the concession counts 28,000.00.
    Monitoring reduces the aid by 50,000.00: grant 10,000.00 + loan 40,000.00 (the request's proportion), which
    count 10,000.00 + 40,000.00 x 0.1 = 14,000.00. Then it revokes the rest: 0.00."""
    from tests.services.evaluation.test_inbox import service_headers

    fake = FakeIntake()
    evaluation_app.state.intake_client = fake
    try:
        call_id = fake.add_call(budget_total="1000000.00")
        vat = vat_number()
        app = await evaluated_application(
            session,
            call_id=call_id,
            grant="20000.00",
            loan="80000.00",
            loan_gge="8000.00",
            de_minimis=de_minimis_doc(vat, "28000.00"),
        )
        company = await token_factory("company", company_id=app.company_id)
        cor = str(uuid.uuid4().int % 10**9)
        r = await decide_and_accept(
            evaluation_client,
            str(call_id),
            str(app.application_id),
            officer,
            company,
            cor=cor,
            confirmer=second_officer,
        )
        assert r.status_code == 200, r.text

        async def amount() -> str:
            r = await evaluation_client.get("/v1/de-minimis/aids", params={"vat_number": vat}, headers=auditor)
            (entry,) = r.json()["items"]
            assert entry["reference"] == cor
            return str(entry["amount"])

        assert await amount() == "28000.00"
        release = f"/v1/calls/{call_id}/budget/releases"
        r = await evaluation_client.post(
            release,
            headers=service_headers(),
            json={"application_id": str(app.application_id), "amount": "50000.00", "reason": "spese non ammesse"},
        )
        assert r.status_code == 200, r.text
        assert await amount() == "14000.00"
        r = await evaluation_client.post(
            release,
            headers=service_headers(),
            json={"application_id": str(app.application_id), "amount": "50000.00", "reason": "revoca art. 15"},
        )
        assert r.status_code == 200, r.text
        assert await amount() == "0.00"
        actions = (
            (
                await session.execute(
                    text(
                        "SELECT action FROM desk.audit_log WHERE resource_type = 'de_minimis_aid' AND "
                        "resource_id = (SELECT id "
                        "FROM evaluation.de_minimis_aids WHERE source = 'desk' AND reference = :c)::text ORDER BY id"
                    ),
                    {"c": cor},
                )
            )
            .scalars()
            .all()
        )
        assert actions == [
            "de_minimis.concession_registered",
            "de_minimis.concession_reduced",
            "de_minimis.concession_revoked",
        ]
    finally:
        evaluation_app.state.intake_client = None


async def test_the_funding_counts_the_declared_aid_once_with_the_register(
    evaluation_client, intake, intake_server, engine, officer, session
):
    """Declared: 200,000.00 (COR 7777777, also in the register) + 80,000.00 (not in the register): counted
    280,000.00, not 480,000.00. Headroom 20,000.00 < the grant 24,396.00: grant 20,000.00, no loan."""
    vat = vat_number()
    day = today_rome() - timedelta(days=20)
    declarations = [
        {
            "vat_number": vat,
            "granting_authority": "Regione Lombardia",
            "granted_on": day.isoformat(),
            "amount": "200000.00",
            "regulation": "Reg. (UE) 2023/2831",
            "reference": "7777777",
        },
        {
            "vat_number": vat,
            "granting_authority": "Comune di Bergamo",
            "granted_on": day.isoformat(),
            "amount": "80000.00",
            "regulation": "Reg. (UE) 1407/2013",
        },
    ]
    sub = await admissible_and_passed(
        evaluation_client,
        engine,
        intake_server.url,
        session,
        company={"vat_number": vat},
        draft={"de_minimis_declarations": declarations},
    )
    r = await evaluation_client.post(
        "/v1/de-minimis/aids",
        headers=officer,
        json={
            "vat_number": vat,
            "granted_on": day.isoformat(),
            "amount": "200000.00",
            "granting_authority": "Regione Lombardia",
            "regulation": "Reg. (UE) 2023/2831",
            "reference": "7777777",
        },
    )
    assert r.status_code == 201, r.text
    r = await fund(evaluation_client, sub["application_id"], officer)
    assert r.status_code == 200, r.text
    ev = r.json()
    dm = ev["de_minimis"]
    assert (dm["prior_total"], dm["headroom"], dm["reduced"]) == ("280000.00", "20000.00", True)
    assert (ev["grant"], ev["loan"]) == ("20000.00", "0.00")
    # the admissibility's de minimis check passed over the declarations (280,000.00), noting the cut to 20,000.00
    check = next(c for c in ev["checks"] if c["code"] == "de_minimis")
    assert check["outcome"] == "pass" and "280.000,00" in str(check) and "20.000,00" in str(check)


async def test_the_officer_compares_declared_rna_and_desk_aid(
    evaluation_client, intake, intake_server, engine, officer, second_officer, auditor, token_factory, session
):
    """Declared: A 50,000.00 (COR 5550001, in the RNA) and B 30,000.00 (not in the RNA). RNA: A, and C 20,000.00
    (not declared). Desk: the first application's concession of 31,481.77. Totals: declared 80,000.00, RNA
    70,000.00, desk 31,481.77; counted: A once + B + C + desk = 50,000.00 + 30,000.00 + 20,000.00 + 31,481.77
    = 131,481.77; headroom 168,518.23."""
    vat = vat_number()
    first = await admissible_and_passed(
        evaluation_client, engine, intake_server.url, session, company={"vat_number": vat}
    )
    assert (await fund(evaluation_client, first["application_id"], officer)).status_code == 200
    cor = str(uuid.uuid4().int % 10**9)
    r = await decide_and_accept(
        evaluation_client,
        first["call_id"],
        first["application_id"],
        officer,
        first["partner_headers"],
        cor=cor,
        confirmer=second_officer,
        engine=engine,
    )
    assert r.status_code == 200, r.text

    day = today_rome() - timedelta(days=40)
    declared = [
        {
            "vat_number": vat,
            "granting_authority": "Regione Lombardia",
            "granted_on": day.isoformat(),
            "amount": "50000.00",
            "regulation": "Reg. (UE) 2023/2831",
            "reference": "5550001",
        },
        {
            "vat_number": vat,
            "granting_authority": "Comune di Brescia",
            "granted_on": day.isoformat(),
            "amount": "30000.00",
            "regulation": "Reg. (UE) 1407/2013",
        },
    ]
    async with make_sessionmaker(engine)() as s:
        call = await open_call(s)
        await s.commit()
    async with httpx.AsyncClient(base_url=intake_server.url) as http:
        r = await http.post(
            "/v1/applications",
            headers=first["partner_headers"],
            json=draft_body(call.id, first["company_id"], de_minimis_declarations=declared),
        )
        assert r.status_code == 201, r.text
        await declare_stamp_duty(http, r.json()["id"], first["partner_headers"])
        r = await http.post(f"/v1/applications/{r.json()['id']}/submit", headers=first["partner_headers"])
        assert r.status_code == 201, r.text
    second = str(r.json()["receipt"]["application_id"])
    assert (
        await deliver(evaluation_client, await outbox_event(engine, second, "application.submitted"))
    ).status_code == 200
    csv = (
        "CODICE_FISCALE_BENEFICIARIO;DATA_CONCESSIONE;ELEMENTO_DI_AIUTO;SOGGETTO_CONCEDENTE;REGOLAMENTO;COR\n"
        f"{vat};{day:%d/%m/%Y};50.000,00;Regione Lombardia;Reg. (UE) 2023/2831;5550001\n"
        f"{vat};{day:%d/%m/%Y};20.000,00;Camera di commercio;Reg. (UE) 2023/2831;5550002\n"
    )
    r = await evaluation_client.post(
        "/v1/de-minimis/imports", content=csv.encode(), headers={**officer, "Content-Type": "text/csv"}
    )
    assert r.status_code == 200 and r.json()["imported"] == 2, r.text

    r = await evaluation_client.get(f"/v1/de-minimis/applications/{second}", headers=officer)
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["totals_in_period"] == {"declared": "80000.00", "rna": "70000.00", "manual": "0.00", "desk": "31481.77"}
    assert (view["counted_total"], view["headroom"]) == ("131481.77", "168518.23")
    assert [d["amount"] for d in view["declared_not_in_rna"]] == ["30000.00"]
    assert [a["reference"] for a in view["rna_not_declared"]] == ["5550002"]
    assert {a["reference"]: a["declared"] for a in view["register_entries"]} == {
        cor: False,
        "5550001": True,
        "5550002": False,
    }
    assert (await evaluation_client.get(f"/v1/de-minimis/applications/{second}", headers=auditor)).status_code == 200
    partner = await evaluation_client.get(f"/v1/de-minimis/applications/{second}", headers=first["partner_headers"])
    assert partner.status_code == 403
    unknown = await evaluation_client.get(f"/v1/de-minimis/applications/{uuid.uuid4()}", headers=officer)
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith("application/problem+json")
