"""Monitoring's inbox through HTTP: `decision.accepted` starts the project and orders the advance (once, whatever
the redeliveries); intake's and evaluation's events keep the application facts. The real intake answers on a
loopback port with committed data."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import text

from tests.services.evaluation.builders import submit_through_intake
from tests.services.evaluation.test_inbox import outbox_event
from tests.services.monitoring.builders import decision_accepted, deliver, envelope


async def scalar(session: Any, sql: str, **params: Any) -> Any:
    return (await session.execute(text(sql), params)).scalar_one()


async def test_decision_accepted_starts_the_project_and_orders_the_advance_once(
    monitoring_client, intake, intake_server, engine, officer, session, token_factory
):
    sub = await submit_through_intake(engine, intake_server.url)
    data = decision_accepted(
        application_id=sub["application_id"],
        call_id=sub["call_id"],
        company_id=str(sub["company_id"]),
        partner_id=str(sub["partner_id"]),
        grant="24396.37",
        loan="79288.21",
        decree_date="2026-01-31",
    )
    body = envelope("decision.accepted", data)

    r = await deliver(monitoring_client, body)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "processed" and r.json()["application_id"] == sub["application_id"]

    partner = await token_factory("partner", partner_id=sub["partner_id"])
    listed = (await monitoring_client.get("/v1/projects", headers=partner)).json()["items"]
    assert len(listed) == 1
    project = listed[0]
    assert project["application_id"] == sub["application_id"] and project["status"] == "active"
    assert project["grant"] == "24396.37" and project["loan"] == "79288.21"
    assert project["eligible_total"] == "121980.00" and project["cup"] == data["cup"]
    # 18 months from the decree; 31 January + 18 months = 31 July of the next year
    assert project["deadline"] == "2027-07-31"
    # expenses are eligible from the submission (its date in Europe/Rome)
    submitted_at = datetime.fromisoformat(sub["receipt"]["submitted_at"].replace("Z", "+00:00"))
    assert project["start_date"] == submitted_at.astimezone(ZoneInfo("Europe/Rome")).date().isoformat()
    assert project["timeline"]["loan_terms"] == {
        "annual_rate": "0.015",
        "years": 5,
        "grace_months": 12,
        "periods_per_year": 2,
    }
    assert [m["title"] for m in project["timeline"]["milestones"]] == [
        "Fiera a Ho Chi Minh",
        "Primo distributore in Brasile",
    ]
    assert project["kpis"][0] == {"name": "Quota fatturato estero", "baseline": "20.00", "target": "30.00", "unit": "%"}
    assert {"dimension": "market", "category": None, "kind": None, "country": "VN", "amount": "45000.00"} in project[
        "approved_budget"
    ]
    assert project["lombardy_site_verified"] is True  # the example company's office is in Bergamo

    # the advance: 40 % of the grant, floored to the cent (24396.37 x 0.40 = 9758.548)
    payments = (
        await monitoring_client.get("/v1/payments", params={"project_id": project["id"]}, headers=officer)
    ).json()["items"]
    assert [(p["kind"], p["amount"], p["status"]) for p in payments] == [("advance", "9758.54", "ordered")]

    events = (
        await session.execute(
            text(
                "SELECT event_type, aggregate_type, aggregate_id, ordering_key FROM desk.outbox"
                " WHERE source = 'monitoring' AND payload->>'project_id' = :p ORDER BY id"
            ),
            {"p": project["id"]},
        )
    ).all()
    # each about its own object, both ordered with the application's other events
    assert [tuple(e) for e in events] == [
        ("project.started", "project", project["id"], data["application_id"]),
        ("payment.ordered", "payment", payments[0]["id"], data["application_id"]),
    ]

    # redelivery of the same event, and a second event for the same application: nothing new
    again = await deliver(monitoring_client, body)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    other = await deliver(monitoring_client, envelope("decision.accepted", data))
    assert other.status_code == 200 and other.json()["status"] == "processed"
    assert (
        await scalar(
            session, "SELECT count(*) FROM monitoring.projects WHERE application_id = :a", a=sub["application_id"]
        )
        == 1
    )
    assert await scalar(session, "SELECT count(*) FROM monitoring.payments WHERE project_id = :p", p=project["id"]) == 1
    assert (
        await scalar(
            session,
            "SELECT count(*) FROM desk.audit_log WHERE service = 'monitoring' AND "
            "action = 'project.started' AND resource_id = :p",
            p=project["id"],
        )
        == 1
    )

    # the fact was built from intake (no submission event had arrived) and marked funded
    fact = (
        (
            await session.execute(
                text("SELECT * FROM monitoring.application_facts WHERE application_id = :a"),
                {"a": sub["application_id"]},
            )
        )
        .mappings()
        .one()
    )
    assert fact["funded"] and fact["status"] == "accepted"
    assert fact["committed"] == Decimal("103684.58")


async def test_a_company_with_only_a_commitment_starts_unverified(
    monitoring_client, intake, intake_server, engine, officer
):
    sub = await submit_through_intake(
        engine,
        intake_server.url,
        company={
            "registered_office": {
                "address": "Via Po 1",
                "municipality": "Torino",
                "postal_code": "10121",
                "province": "TO",
            },
            "lombardy_site_commitment": True,
        },
    )
    data = decision_accepted(
        application_id=sub["application_id"],
        call_id=sub["call_id"],
        company_id=str(sub["company_id"]),
        partner_id=str(sub["partner_id"]),
        loan_years=None,
    )
    assert (await deliver(monitoring_client, envelope("decision.accepted", data))).status_code == 200
    project = (await monitoring_client.get("/v1/projects", params={"call_id": sub["call_id"]}, headers=officer)).json()[
        "items"
    ][0]
    assert project["lombardy_site_verified"] is False
    assert project["timeline"]["loan_terms"]["years"] == 6  # no funding computation: the call's longest loan


async def test_application_events_keep_the_facts(monitoring_client, intake, intake_server, engine, session):
    sub = await submit_through_intake(engine, intake_server.url)
    app_id = sub["application_id"]
    submitted = await outbox_event(engine, app_id, "application.submitted")
    r = await deliver(monitoring_client, submitted)
    assert r.status_code == 200 and r.json()["status"] == "processed", r.text

    fact = (
        (
            await session.execute(
                text("SELECT * FROM monitoring.application_facts WHERE application_id = :a"), {"a": app_id}
            )
        )
        .mappings()
        .one()
    )
    estimate = orjson.loads(submitted)["data"]["estimate"]
    assert fact["province"] == "BG" and fact["ateco_section"] == "C" and fact["size_class"] == "small"
    assert sorted(fact["markets"]) == ["BR", "VN"]
    assert fact["requested_aid"] == Decimal(estimate["grant"]) + Decimal(estimate["loan"])
    assert fact["status"] == "submitted" and not fact["admitted"] and not fact["funded"]

    ids = {"application_id": app_id, "call_id": sub["call_id"], "company_id": str(sub["company_id"])}
    r = await deliver(
        monitoring_client,
        envelope("evaluation.admissibility_completed", {**ids, "verdict": "admissible", "failed_checks": []}),
    )
    assert r.status_code == 200
    r = await deliver(
        monitoring_client,
        envelope(
            "decision.issued",
            {
                **ids,
                "decision_id": str(uuid.uuid4()),
                "protocol_number": 1,
                "outcome": "funded",
                "grant": "20000.00",
                "loan": "65000.00",
                "decree_id": str(uuid.uuid4()),
                "decree_number": "D-9",
                "decree_date": date.today().isoformat(),
                "reasons": [],
            },
        ),
    )
    assert r.status_code == 200
    fact = (
        (
            await session.execute(
                text("SELECT * FROM monitoring.application_facts WHERE application_id = :a"), {"a": app_id}
            )
        )
        .mappings()
        .one()
    )
    assert fact["admitted"] and fact["status"] == "funded" and fact["committed"] == Decimal("85000.00")

    r = await deliver(
        monitoring_client,
        envelope(
            "application.withdrawn",
            {**ids, "protocol_number": 1, "reason": "Rinuncia", "withdrawn_at": "2026-02-01T10:00:00Z"},
            source="intake",
        ),
    )
    assert r.status_code == 200
    fact = (
        await session.execute(
            text("SELECT status, committed FROM monitoring.application_facts WHERE application_id = :a"), {"a": app_id}
        )
    ).one()
    assert fact == ("withdrawn", Decimal("0.00"))


async def test_unconsumed_types_are_ignored_and_only_services_may_post(monitoring_client, intake, officer):
    r = await deliver(monitoring_client, envelope("webhook.ping", {"subscription_id": str(uuid.uuid4())}))
    assert r.status_code == 202 and r.json()["status"] == "ignored"
    r = await deliver(monitoring_client, envelope("decision.accepted", {"application_id": "nope"}))
    assert r.status_code == 422
    assert any(e["path"].startswith("/data/") for e in r.json()["errors"])
    r = await deliver(monitoring_client, envelope("webhook.ping", {}), headers=officer)
    assert r.status_code == 403


async def test_a_project_started_after_its_partner_was_revoked_notifies_the_current_delegate(
    monitoring_client, intake, intake_server, engine, session, token_factory
):
    """The decision names the partner that submitted; by the time it is accepted, the company has revoked that
    partner and delegated another: the project records the current delegate, and only it reaches the project."""
    from shared.access import record_delegation

    sub = await submit_through_intake(engine, intake_server.url)
    company_id, old_partner, new_partner = sub["company_id"], sub["partner_id"], uuid.uuid4()
    await record_delegation(
        session, delegation_id=uuid.uuid4(), company_id=company_id, partner_id=old_partner, status="revoked"
    )
    await record_delegation(
        session, delegation_id=uuid.uuid4(), company_id=company_id, partner_id=new_partner, status="active"
    )
    data = decision_accepted(
        application_id=sub["application_id"],
        call_id=sub["call_id"],
        company_id=str(company_id),
        partner_id=str(old_partner),
        grant="24396.37",
        loan="79288.21",
        decree_date="2026-01-31",
    )
    r = await deliver(monitoring_client, envelope("decision.accepted", data))
    assert r.status_code == 200, r.text

    assert (
        await scalar(
            session, "SELECT partner_id FROM monitoring.projects WHERE application_id = :a", a=sub["application_id"]
        )
        == new_partner
    )
    assert (
        await scalar(
            session,
            "SELECT partner_id FROM desk.outbox WHERE event_type = 'project.started' "
            "AND payload->>'application_id' = :a",
            a=sub["application_id"],
        )
        == new_partner
    )
    old = await token_factory("partner", partner_id=old_partner)
    new = await token_factory("partner", partner_id=new_partner)
    assert (await monitoring_client.get("/v1/projects", headers=old)).json()["items"] == []
    assert [
        p["application_id"] for p in (await monitoring_client.get("/v1/projects", headers=new)).json()["items"]
    ] == [sub["application_id"]]
