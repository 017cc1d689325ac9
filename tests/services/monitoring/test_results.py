"""Results through HTTP: KPI reports and their progress against baseline and target, milestone completion and
status, and the deadline reminders (each sent once)."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

from sqlalchemy import text

from services.monitoring.results.service import send_due_reminders, today_in_rome
from tests.services.monitoring.builders import make_fact, make_project, service_headers, with_plan

KPIS = [{"name": "Quota fatturato estero", "baseline": "20.00", "target": "30.00", "unit": "%"},
        {"name": "Nuovi clienti esteri", "baseline": "0.00", "target": "8.00", "unit": "clienti"},
        {"name": "Fiere", "baseline": "2.00", "target": "2.00", "unit": "eventi"}]


async def _project(session: Any, **kw: Any) -> Any:
    milestones = kw.pop("milestones", None)
    project = await make_project(session, partner_id=uuid.uuid4(), **kw)
    return await with_plan(session, project, kpis=KPIS, milestones=milestones)


async def _report(client: Any, project: Any, headers: dict[str, str], kpi: str, period: str, value: str,
                  **extra: Any) -> Any:
    return await client.post(f"/v1/projects/{project.id}/kpi-reports",
                             json={"kpi": kpi, "period": period, "value": value, "note": None},
                             headers={**headers, **extra})


async def test_kpi_progress_is_exact_and_uses_the_latest_period(monitoring_client, session, token_factory):
    project = await _project(session)
    await make_fact(session, call_id=project.call_id, application_id=project.application_id, funded=True)
    partner = await token_factory("partner", partner_id=project.partner_id)

    for kpi, period, value in [("Quota fatturato estero", "2026-Q1", "21.00"),
                               ("Quota fatturato estero", "2026", "23.33"),
                               ("Quota fatturato estero", "2026-06", "29.00"),
                               ("Nuovi clienti esteri", "2026-Q2", "1.00"),
                               ("Nuovi clienti esteri", "2025", "5.00")]:
        r = await _report(monitoring_client, project, partner, kpi, period, value)
        assert r.status_code == 201, r.text
    assert r.json()["kpi"] == "Nuovi clienti esteri" and r.json()["value"] == "5.00"

    r = await monitoring_client.get(f"/v1/projects/{project.id}/kpis", headers=partner)
    assert r.status_code == 200, r.text
    items = {k["name"]: k for k in r.json()["items"]}
    share = items["Quota fatturato estero"]
    # the year 2026 ends after June and Q1: (23.33 - 20) x 100 / (30 - 20) = 33.30
    assert share["latest"]["period"] == "2026" and share["latest"]["value"] == "23.33"
    assert share["progress_percent"] == "33.30" and share["reports"] == 3
    assert share["baseline"] == "20.00" and share["target"] == "30.00" and share["unit"] == "%"
    clients = items["Nuovi clienti esteri"]
    assert clients["latest"]["period"] == "2026-Q2" and clients["progress_percent"] == "12.50"
    fairs = items["Fiere"]
    assert fairs["latest"] is None and fairs["progress_percent"] is None and fairs["reports"] == 0

    # the foreign share feeds the statistics' export growth
    row = (await session.execute(text(
        "SELECT foreign_share_baseline, foreign_share_latest FROM monitoring.application_facts "
        "WHERE application_id = :a"), {"a": project.application_id})).one()
    assert (str(row[0]), str(row[1])) == ("20.00", "23.33")


async def test_duplicate_kpi_report_is_409_and_keeps_the_first(monitoring_client, session, token_factory):
    project = await _project(session)
    company = await token_factory("company", company_id=project.company_id)
    r = await _report(monitoring_client, project, company, "Fiere", "2026-Q3", "3.00")
    assert r.status_code == 201, r.text
    r = await _report(monitoring_client, project, company, "Fiere", "2026-Q3", "4.00")
    assert r.status_code == 409 and r.json()["type"] == "/problems/already-exists"
    n = (await session.execute(text("SELECT count(*) FROM monitoring.kpi_reports WHERE project_id = :p"),
                               {"p": project.id})).scalar_one()
    assert n == 1

    # a retry with the same Idempotency-Key replays the 201, it is not a duplicate
    key = {"Idempotency-Key": f"kpi-{uuid.uuid4()}"}
    first = await _report(monitoring_client, project, company, "Fiere", "2026-Q4", "5.00", **key)
    again = await _report(monitoring_client, project, company, "Fiere", "2026-Q4", "5.00", **key)
    assert first.status_code == again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert again.headers.get("idempotent-replayed") == "true"


async def test_kpi_report_refusals(monitoring_client, session, token_factory, officer):
    project = await _project(session)
    partner = await token_factory("partner", partner_id=project.partner_id)
    r = await _report(monitoring_client, project, partner, "Fatturato su Marte", "2026", "1.00")
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "kpi_unknown"
    r = await _report(monitoring_client, project, partner, "Fiere", "2026-Q5", "1.00")
    assert r.status_code == 422
    r = await monitoring_client.post(f"/v1/projects/{project.id}/kpi-reports",
                                     json={"kpi": "Fiere", "period": "2026", "value": 1.5}, headers=partner)
    assert r.status_code == 422  # numbers must be strings, never floats
    r = await _report(monitoring_client, project, officer, "Fiere", "2026", "1.00")
    assert r.status_code == 403
    stranger = await token_factory("partner", partner_id=uuid.uuid4())
    r = await _report(monitoring_client, project, stranger, "Fiere", "2026", "1.00")
    assert r.status_code == 404
    r = await monitoring_client.get(f"/v1/projects/{project.id}/kpis", headers=stranger)
    assert r.status_code == 404
    revoked = await _project(session, status="revoked")
    mine = await token_factory("partner", partner_id=revoked.partner_id)
    r = await _report(monitoring_client, revoked, mine, "Fiere", "2026", "1.00")
    assert r.status_code == 409


async def test_milestones_done_due_overdue(monitoring_client, session, token_factory, officer):
    today = today_in_rome()
    project = await _project(session, milestones=[("Fiera a Ho Chi Minh", today - timedelta(days=10)),
                                                  ("Primo distributore", today + timedelta(days=5)),
                                                  ("Showroom virtuale", today - timedelta(days=3))])
    partner = await token_factory("partner", partner_id=project.partner_id)
    done_on = (today - timedelta(days=4)).isoformat()
    r = await monitoring_client.post(f"/v1/projects/{project.id}/milestones/2/completion",
                                     json={"completed_on": done_on, "note": "aperto"}, headers=partner)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "done" and r.json()["completed_on"] == done_on

    r = await monitoring_client.get(f"/v1/projects/{project.id}/milestones", headers=officer)
    assert r.status_code == 200, r.text
    assert [(m["index"], m["title"], m["status"]) for m in r.json()["items"]] == [
        (0, "Fiera a Ho Chi Minh", "overdue"), (1, "Primo distributore", "due"), (2, "Showroom virtuale", "done")]

    again = await monitoring_client.post(f"/v1/projects/{project.id}/milestones/2/completion",
                                         json={"completed_on": done_on}, headers=partner)
    assert again.status_code == 409
    missing = await monitoring_client.post(f"/v1/projects/{project.id}/milestones/7/completion",
                                           json={"completed_on": done_on}, headers=partner)
    assert missing.status_code == 404
    future = await monitoring_client.post(f"/v1/projects/{project.id}/milestones/1/completion",
                                          json={"completed_on": (today + timedelta(days=1)).isoformat()},
                                          headers=partner)
    assert future.status_code == 422 and future.json()["errors"][0]["code"] == "completed_on_in_future"


async def _reminders(session: Any, project_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = (await session.execute(text(
        "SELECT payload FROM desk.outbox WHERE event_type = 'project.reminder' AND aggregate_id = :p "
        "ORDER BY payload->>'kind', payload->>'due_date'"), {"p": str(project_id)})).scalars().all()
    return list(rows)


async def test_reminders_are_emitted_once_each(monitoring_client, session):
    today = date(2031, 3, 1)
    deadline = today + timedelta(days=30)
    project = await make_project(session, partner_id=uuid.uuid4(), decree_date=today - timedelta(days=500),
                                 deadline=deadline)
    await with_plan(session, project, milestones=[("Fiera", today + timedelta(days=7)),
                                                  ("Distributore", today + timedelta(days=20)),
                                                  ("Lontana", today + timedelta(days=90)),
                                                  ("Scaduta", today - timedelta(days=1))])
    finished = await make_project(session, decree_date=today - timedelta(days=500), deadline=today + timedelta(days=7),
                                  status="completed")

    r = await monitoring_client.post("/v1/internal/reminders/run", json={"today": today.isoformat()},
                                     headers=service_headers())
    assert r.status_code == 200, r.text
    mine = sorted((s["kind"], s["days_left"]) for s in r.json()["sent"] if s["project_id"] == str(project.id))
    assert mine == [("deadline:30d", 30), ("milestone:0:7d", 7), ("milestone:1:30d", 20)]
    assert not [s for s in r.json()["sent"] if s["project_id"] == str(finished.id)]
    events = await _reminders(session, project.id)
    assert [(e["kind"], e["milestone_index"], e["days_before"]) for e in events] == [
        ("deadline", None, 30), ("milestone", 0, 7), ("milestone", 1, 30)]
    assert events[1]["title"] == "Fiera" and events[1]["due_date"] == (today + timedelta(days=7)).isoformat()

    # the same day again, through the route or the function the daily loop calls: nothing new
    r = await monitoring_client.post("/v1/internal/reminders/run", json={"today": today.isoformat()},
                                     headers=service_headers())
    assert not [s for s in r.json()["sent"] if s["project_id"] == str(project.id)]
    assert not [s for s in await send_due_reminders(session, today) if s["project_id"] == project.id]
    assert len(await _reminders(session, project.id)) == 3

    # 23 days later the 7-day lead of the deadline is reached: one more reminder, once
    later = today + timedelta(days=23)
    sent = [s for s in await send_due_reminders(session, later) if s["project_id"] == project.id]
    assert [(s["kind"], s["days_left"]) for s in sent] == [("deadline:7d", 7)]
    kinds = sorted(e["kind"] + str(e["days_before"]) for e in await _reminders(session, project.id))
    assert kinds == ["deadline30", "deadline7", "milestone30", "milestone7"]
    assert not [s for s in await send_due_reminders(session, later) if s["project_id"] == project.id]


async def test_reminders_route_is_for_services_only(monitoring_client, officer):
    r = await monitoring_client.post("/v1/internal/reminders/run", json={}, headers=officer)
    assert r.status_code == 403
