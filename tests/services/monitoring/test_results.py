"""Results through HTTP: KPI reports and their progress against baseline and target, milestone completion and
status, and the deadline reminders (each sent once)."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from services.monitoring.models import KpiReport
from services.monitoring.results.service import send_due_reminders, today_in_rome
from tests.services.monitoring.builders import make_fact, make_project, service_headers, with_plan

KPIS = [
    {"name": "Quota fatturato estero", "baseline": "20.00", "target": "30.00", "unit": "%"},
    {"name": "Nuovi clienti esteri", "baseline": "0.00", "target": "8.00", "unit": "clienti"},
    {"name": "Fiere", "baseline": "2.00", "target": "2.00", "unit": "eventi"},
]


async def _project(session: Any, **kw: Any) -> Any:
    milestones = kw.pop("milestones", None)
    project = await make_project(session, partner_id=uuid.uuid4(), **kw)
    project.start_date = date(2025, 3, 10)  # the application's submission: the project's first year is 2025
    return await with_plan(session, project, kpis=KPIS, milestones=milestones)


async def _report(
    client: Any, project: Any, headers: dict[str, str], kpi: str, period: str, value: str, **extra: Any
) -> Any:
    return await client.post(
        f"/v1/projects/{project.id}/kpi-reports",
        json={"kpi": kpi, "period": period, "value": value, "note": None},
        headers={**headers, **extra},
    )


async def test_kpi_progress_is_exact_and_uses_the_latest_period(monitoring_client, session, token_factory):
    project = await _project(session)
    await make_fact(session, call_id=project.call_id, application_id=project.application_id, funded=True)
    partner = await token_factory("partner", partner_id=project.partner_id)

    for kpi, period, value in [
        ("Quota fatturato estero", "2026-Q1", "21.00"),
        ("Quota fatturato estero", "2026", "23.33"),
        ("Quota fatturato estero", "2026-06", "29.00"),
        ("Nuovi clienti esteri", "2026-Q2", "1.00"),
        ("Nuovi clienti esteri", "2025", "5.00"),
    ]:
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
    row = (
        await session.execute(
            text(
                "SELECT foreign_share_baseline, foreign_share_latest FROM monitoring.application_facts "
                "WHERE application_id = :a"
            ),
            {"a": project.application_id},
        )
    ).one()
    assert (str(row[0]), str(row[1])) == ("20.00", "23.33")


async def test_duplicate_kpi_report_is_409_and_keeps_the_first(monitoring_client, session, token_factory):
    project = await _project(session)
    company = await token_factory("company", company_id=project.company_id)
    r = await _report(monitoring_client, project, company, "Fiere", "2026-Q3", "3.00")
    assert r.status_code == 201, r.text
    r = await _report(monitoring_client, project, company, "Fiere", "2026-Q3", "4.00")
    assert r.status_code == 409 and r.json()["type"] == "/problems/already-exists"
    n = (
        await session.execute(
            text("SELECT count(*) FROM monitoring.kpi_reports WHERE project_id = :p"), {"p": project.id}
        )
    ).scalar_one()
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
    r = await monitoring_client.post(
        f"/v1/projects/{project.id}/kpi-reports", json={"kpi": "Fiere", "period": "2026", "value": 1.5}, headers=partner
    )
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
    assert r.status_code == 409 and r.json()["type"].endswith("/reporting-closed")


async def test_milestones_done_due_overdue(monitoring_client, session, token_factory, officer):
    today = today_in_rome()
    project = await _project(
        session,
        milestones=[
            ("Fiera a Ho Chi Minh", today - timedelta(days=10)),
            ("Primo distributore", today + timedelta(days=5)),
            ("Showroom virtuale", today - timedelta(days=3)),
        ],
    )
    partner = await token_factory("partner", partner_id=project.partner_id)
    done_on = (today - timedelta(days=4)).isoformat()
    r = await monitoring_client.post(
        f"/v1/projects/{project.id}/milestones/2/completion",
        json={"completed_on": done_on, "note": "aperto"},
        headers=partner,
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "done" and r.json()["completed_on"] == done_on

    r = await monitoring_client.get(f"/v1/projects/{project.id}/milestones", headers=officer)
    assert r.status_code == 200, r.text
    assert [(m["index"], m["title"], m["status"]) for m in r.json()["items"]] == [
        (0, "Fiera a Ho Chi Minh", "overdue"),
        (1, "Primo distributore", "due"),
        (2, "Showroom virtuale", "done"),
    ]

    again = await monitoring_client.post(
        f"/v1/projects/{project.id}/milestones/2/completion", json={"completed_on": done_on}, headers=partner
    )
    assert again.status_code == 409
    missing = await monitoring_client.post(
        f"/v1/projects/{project.id}/milestones/7/completion", json={"completed_on": done_on}, headers=partner
    )
    assert missing.status_code == 404
    future = await monitoring_client.post(
        f"/v1/projects/{project.id}/milestones/1/completion",
        json={"completed_on": (today + timedelta(days=1)).isoformat()},
        headers=partner,
    )
    assert future.status_code == 422 and future.json()["errors"][0]["code"] == "completed_on_in_future"


async def _reminders(session: Any, project_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = (
        (
            await session.execute(
                text(
                    "SELECT payload FROM desk.outbox WHERE event_type = 'project.reminder' AND aggregate_id = :p "
                    "ORDER BY payload->>'kind', payload->>'due_date'"
                ),
                {"p": str(project_id)},
            )
        )
        .scalars()
        .all()
    )
    return list(rows)


async def test_reminders_are_emitted_once_each(monitoring_client, session):
    today = date(2031, 3, 1)
    deadline = today + timedelta(days=30)
    project = await make_project(
        session, partner_id=uuid.uuid4(), decree_date=today - timedelta(days=500), deadline=deadline
    )
    await with_plan(
        session,
        project,
        milestones=[
            ("Fiera", today + timedelta(days=7)),
            ("Distributore", today + timedelta(days=20)),
            ("Lontana", today + timedelta(days=90)),
            ("Scaduta", today - timedelta(days=1)),
        ],
    )
    finished = await make_project(
        session, decree_date=today - timedelta(days=500), deadline=today + timedelta(days=7), status="completed"
    )

    r = await monitoring_client.post(
        "/v1/internal/reminders/run", json={"today": today.isoformat()}, headers=service_headers()
    )
    assert r.status_code == 200, r.text
    mine = sorted((s["kind"], s["days_left"]) for s in r.json()["sent"] if s["project_id"] == str(project.id))
    assert mine == [("deadline:30d", 30), ("milestone:0:7d", 7), ("milestone:1:30d", 20)]
    assert not [s for s in r.json()["sent"] if s["project_id"] == str(finished.id)]
    events = await _reminders(session, project.id)
    assert [(e["kind"], e["milestone_index"], e["days_before"]) for e in events] == [
        ("deadline", None, 30),
        ("milestone", 0, 7),
        ("milestone", 1, 30),
    ]
    assert events[1]["title"] == "Fiera" and events[1]["due_date"] == (today + timedelta(days=7)).isoformat()

    # the same day again, through the route or the function the daily loop calls: nothing new
    r = await monitoring_client.post(
        "/v1/internal/reminders/run", json={"today": today.isoformat()}, headers=service_headers()
    )
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


def _follow_up(completed_on: date) -> dict[str, Any]:
    """The follow-up the seeded call fixes at completion (2 years; export sales in the new markets one and two
    years after): calendar years completion+1 and +2, each due by 31 March of the year after; reporting open
    until 31 March after the last one."""
    y = completed_on.year
    return {
        "completed_on": completed_on.isoformat(),
        "until": date(y + 3, 3, 31).isoformat(),
        "last_year": y + 2,
        "kpis": [{"name": "Vendite export nei nuovi mercati", "unit": "EUR"}],
        "reports": [
            {
                "kpi": "Vendite export nei nuovi mercati",
                "year_after": n,
                "period": str(y + n),
                "due_date": date(y + n + 1, 3, 31).isoformat(),
            }
            for n in (1, 2)
        ],
    }


async def _completed(session: Any, completed_on: date, **kw: Any) -> Any:
    project = await _project(session, status="completed", **kw)
    project.start_date = date(completed_on.year - 1, 1, 10)
    project.outcome = {"kind": "full", "follow_up": _follow_up(completed_on)}
    await session.flush()
    return project


async def test_results_are_taken_after_completion_for_the_follow_up_years(monitoring_client, session, token_factory):
    today = today_in_rome()
    completed_on = date(today.year - 1, 6, 30)  # follow-up years: today.year and today.year + 1
    project = await _completed(session, completed_on, milestones=[("Showroom", completed_on)])
    partner = await token_factory("partner", partner_id=project.partner_id)

    r = await _report(
        monitoring_client, project, partner, "Vendite export nei nuovi mercati", str(today.year), "150000.00"
    )
    assert r.status_code == 201, r.text
    r = await _report(monitoring_client, project, partner, "Nuovi clienti esteri", str(today.year - 1), "6.00")
    assert r.status_code == 201, r.text
    r = await monitoring_client.post(
        f"/v1/projects/{project.id}/milestones/0/completion",
        json={"completed_on": completed_on.isoformat()},
        headers=partner,
    )
    assert r.status_code == 201, r.text
    clients = next(
        k
        for k in (await monitoring_client.get(f"/v1/projects/{project.id}/kpis", headers=partner)).json()["items"]
        if k["name"] == "Nuovi clienti esteri"
    )
    assert clients["latest"]["value"] == "6.00" and clients["progress_percent"] == "75.00"  # 6 of 0 -> 8
    # the follow-up reports the outcome scheduled, with what was reported: this year's in, next year's upcoming
    follow_up = (await monitoring_client.get(f"/v1/projects/{project.id}/kpis", headers=partner)).json()["follow_up"]
    assert [(f["kpi"], f["year_after"], f["period"], f["due_date"], f["status"]) for f in follow_up] == [
        ("Vendite export nei nuovi mercati", 1, str(today.year), f"{today.year + 1}-03-31", "reported"),
        ("Vendite export nei nuovi mercati", 2, str(today.year + 1), f"{today.year + 2}-03-31", "upcoming"),
    ]
    assert follow_up[0]["report"]["value"] == "150000.00" and follow_up[1]["report"] is None


async def test_report_refusals_are_problems_that_change_nothing(monitoring_client, session, token_factory):
    today = today_in_rome()
    running = await _project(session)
    partner = await token_factory("partner", partner_id=running.partner_id)
    # a period in the future (found: a KPI for 2030 was accepted)
    r = await _report(monitoring_client, running, partner, "Nuovi clienti esteri", str(today.year + 4), "1.00")
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"].endswith("/report-period-not-allowed")
    assert r.json()["errors"][0]["code"] == "period_in_future"
    nxt = f"{today.year + 1}-01" if today.month == 12 else f"{today.year}-{today.month + 1:02d}"
    r = await _report(monitoring_client, running, partner, "Nuovi clienti esteri", nxt, "1.00")
    assert r.json()["errors"][0]["code"] == "period_in_future"
    # before the project's first year
    r = await _report(
        monitoring_client, running, partner, "Nuovi clienti esteri", str(running.start_date.year - 1), "1.00"
    )
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "period_outside_project"
    assert r.json()["errors"][0]["first_year"] == running.start_date.year
    # negative counts and amounts (found: accepted)
    r = await _report(monitoring_client, running, partner, "Nuovi clienti esteri", str(today.year), "-1.00")
    assert r.status_code == 422 and r.json()["type"].endswith("/validation-error")
    assert r.json()["errors"][0]["code"] == "value_negative"
    r = await _report(monitoring_client, running, partner, "Fiere", str(today.year), "-0.01")
    assert r.json()["errors"][0]["code"] == "value_negative"
    completed = await _completed(session, date(today.year - 1, 6, 30))
    mine = await token_factory("partner", partner_id=completed.partner_id)
    r = await _report(monitoring_client, completed, mine, "Vendite export nei nuovi mercati", str(today.year), "-5.00")
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "value_negative"
    kpis = (await monitoring_client.get(f"/v1/projects/{running.id}/kpis", headers=partner)).json()["items"]
    assert [k["reports"] for k in kpis] == [0, 0, 0]
    assert (
        await session.execute(
            text("SELECT count(*) FROM monitoring.kpi_reports WHERE project_id = :p"), {"p": str(completed.id)}
        )
    ).scalar_one() == 0

    # follow-up over: completed four years ago, open until 31 March of the year before last
    old = await _completed(session, date(today.year - 4, 6, 30))
    theirs = await token_factory("partner", partner_id=old.partner_id)
    r = await _report(monitoring_client, old, theirs, "Nuovi clienti esteri", str(today.year - 3), "2.00")
    assert r.status_code == 409 and r.json()["type"].endswith("/reporting-closed")
    assert r.json()["follow_up_until"] == date(today.year - 1, 3, 31).isoformat()
    listed = (await monitoring_client.get(f"/v1/projects/{old.id}/kpis", headers=theirs)).json()["follow_up"]
    assert [(f["period"], f["status"]) for f in listed] == [
        (str(today.year - 3), "overdue"),
        (str(today.year - 2), "overdue"),
    ]
    # revoked: never
    revoked = await _project(session, status="revoked")
    theirs = await token_factory("partner", partner_id=revoked.partner_id)
    r = await _report(monitoring_client, revoked, theirs, "Fiere", str(today.year), "1.00")
    assert r.status_code == 409 and r.json()["type"].endswith("/reporting-closed")


async def test_follow_up_results_get_reminders_once(session):
    completed_on = date(2029, 6, 30)
    project = await _completed(session, completed_on)
    # the first follow-up result (calendar year 2030) is due by 31 March 2031: 7 days before, a reminder
    today = date(2031, 3, 24)
    sent = [s for s in await send_due_reminders(session, today) if s["project_id"] == project.id]
    assert [(s["kind"], s["due_date"], s["days_left"]) for s in sent] == [("follow_up:0:7d", date(2031, 3, 31), 7)]
    events = await _reminders(session, project.id)
    assert [(e["kind"], e["title"]) for e in events] == [("follow_up", "Vendite export nei nuovi mercati 2030")]
    assert not [s for s in await send_due_reminders(session, today) if s["project_id"] == project.id]
    # once reported, the second year's reminder comes, the first's never again
    session.add(
        KpiReport(
            id=uuid.uuid4(),
            project_id=project.id,
            kpi="Vendite export nei nuovi mercati",
            period="2030",
            value=Decimal("1.00"),
            reported_by="test",
        )
    )
    await session.flush()
    later = date(2032, 3, 1)
    sent = [s for s in await send_due_reminders(session, later) if s["project_id"] == project.id]
    assert [(s["kind"], s["days_left"]) for s in sent] == [("follow_up:1:30d", 30)]
