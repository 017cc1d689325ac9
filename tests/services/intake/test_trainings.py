"""Training catalogue and enrolments, through HTTP on real PostgreSQL: publishing and replacing sessions,
who may enrol whom, duplicates, capacity (also under 30 concurrent requests: the rest wait), cancellation,
If-Match."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from stdnum import luhn

from services.intake.models import Company, Delegation, Enrolment, Partner, Training
from shared.db import make_sessionmaker
from shared.models import CompanyDelegate
from tests.conftest import TokenFactory
from tests.factories import delegate

Headers = dict[str, str]


def _vat() -> str:
    base = f"{secrets.randbelow(9_000_000) + 1_000_000}001"
    return base + luhn.calc_check_digit(base)


def _company(vat: str | None = None) -> Company:
    vat = vat or _vat()
    return Company(
        id=uuid.uuid4(),
        vat_number=vat,
        fiscal_code=vat,
        name=f"Impresa {vat} S.r.l.",
        legal_form="srl",
        ateco_code="28.29.30",
        registered_office={"province": "MI", "city": "Milano"},
        operating_sites=[],
        lombardy_site_commitment=False,
        incorporation_date=date(2015, 3, 1),
        approved_financial_statements=3,
        headcount_awu=Decimal("12.00"),
        turnover=Decimal("2500000.00"),
        balance_sheet_total=Decimal("1800000.00"),
        previous_year_export_sales=Decimal("300000.00"),
        related_enterprises=[],
        export_history=[],
        size_class="small",
        version=1,
        created_by="tests",
    )


def _partner() -> Partner:
    return Partner(
        id=uuid.uuid4(),
        name="Camera di Commercio di Test",
        kind="chamber_of_commerce",
        fiscal_code=f"{secrets.randbelow(10**11):011d}",
        email=None,
        version=1,
    )


async def _partner_with_company(session: AsyncSession, *, status: str = "active") -> tuple[Partner, Company]:
    partner, company = _partner(), _company()
    session.add_all([partner, company])
    await session.flush()
    await delegate(session, partner, company, status)
    return partner, company


def _training(**over: Any) -> dict[str, Any]:
    starts = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    body: dict[str, Any] = {
        "title": "Dogane e origine preferenziale",
        "topic": "customs",
        "format": "training",
        "description": "Regole d'origine, EORI, classificazione doganale.",
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=3)).isoformat(),
        "location": "Palazzo Lombardia, Milano",
        "capacity": 20,
    }
    body.update(over)
    return body


def _person(company_id: uuid.UUID, email: str | None = None) -> dict[str, Any]:
    return {
        "company_id": str(company_id),
        "participant_name": "Maria Rossi",
        "participant_email": email or f"m.rossi.{uuid.uuid4().hex[:8]}@example.it",
        "participant_role": "Export manager",
    }


async def _create(client: httpx.AsyncClient, officer: dict[str, str], **over: Any) -> dict[str, Any]:
    r = await client.post("/v1/trainings", json=_training(**over), headers=officer)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def _all_ids(client: httpx.AsyncClient, url: str, headers: dict[str, str], **params: Any) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        q = {**params, "limit": 100, **({"cursor": cursor} if cursor else {})}
        r = await client.get(url, params=q, headers=headers)
        assert r.status_code == 200, r.text
        ids += [i["id"] for i in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return ids


# ---------------------------------------------------------------- catalogue


async def test_officer_publishes_a_session_anyone_authenticated_reads_it(
    client: httpx.AsyncClient, officer: Headers, token_factory: TokenFactory, session: AsyncSession
) -> None:
    r = await client.post("/v1/trainings", json=_training(location=None, format="mentoring"), headers=officer)
    assert r.status_code == 201, r.text
    created = r.json()
    assert r.headers["etag"] == '"1"' and r.headers["location"] == f"/v1/trainings/{created['id']}"
    assert created["online"] is True and created["location"] is None and created["format"] == "mentoring"

    partner, _ = await _partner_with_company(session)
    as_partner = await token_factory("partner", partner_id=partner.id)
    r = await client.get(f"/v1/trainings/{created['id']}", headers=as_partner)
    assert r.status_code == 200 and r.headers["etag"] == '"1"'
    assert (r.json()["capacity"], r.json()["enrolled"], r.json()["places_left"]) == (20, 0, 20)
    assert (await client.get(f"/v1/trainings/{uuid.uuid4()}", headers=as_partner)).status_code == 404
    assert (await client.get(f"/v1/trainings/{created['id']}")).status_code == 401

    audit = (
        (
            await session.execute(
                text("SELECT action FROM desk.audit_log WHERE resource_type = 'training' AND resource_id = :id"),
                {"id": created["id"]},
            )
        )
        .scalars()
        .all()
    )
    assert audit == ["training.created"]


async def test_list_filters_by_topic_and_upcoming_and_paginates(
    client: httpx.AsyncClient, officer: Headers, session: AsyncSession
) -> None:
    customs = await _create(client, officer, topic="customs")
    digital = await _create(client, officer, topic="digital_export")
    started = datetime.now(UTC) - timedelta(hours=1)
    past = Training(
        id=uuid.uuid4(),
        title="Passata",
        topic="customs",
        format="training",
        description="d",
        starts_at=started,
        ends_at=started + timedelta(hours=2),
        location=None,
        capacity=5,
        enrolled=0,
        version=1,
    )
    session.add(past)
    await session.flush()

    r = await client.get("/v1/trainings", params={"topic": "customs", "limit": 100}, headers=officer)
    assert r.status_code == 200 and all(i["topic"] == "customs" for i in r.json()["items"])
    all_customs = await _all_ids(client, "/v1/trainings", officer, topic="customs")
    assert customs["id"] in all_customs and str(past.id) in all_customs and digital["id"] not in all_customs
    upcoming = await _all_ids(client, "/v1/trainings", officer, topic="customs", upcoming="true")
    assert customs["id"] in upcoming and str(past.id) not in upcoming

    first = await client.get("/v1/trainings", params={"limit": 1}, headers=officer)
    assert len(first.json()["items"]) == 1 and first.json()["next_cursor"]
    second = await client.get(
        "/v1/trainings", params={"limit": 1, "cursor": first.json()["next_cursor"]}, headers=officer
    )
    assert second.json()["items"][0]["id"] != first.json()["items"][0]["id"]
    assert (await client.get("/v1/trainings", params={"topic": "cooking"}, headers=officer)).status_code == 422


async def test_invalid_sessions_are_422_with_json_pointers(client: httpx.AsyncClient, officer: Headers) -> None:
    starts = datetime.now(UTC) + timedelta(days=10)
    r = await client.post(
        "/v1/trainings",
        json=_training(starts_at=starts.isoformat(), ends_at=(starts - timedelta(hours=1)).isoformat()),
        headers=officer,
    )
    assert r.status_code == 422 and r.json()["type"] == "/problems/validation-error"
    assert {(e["path"], e["code"]) for e in r.json()["errors"]} == {("/ends_at", "dates_out_of_order")}

    r = await client.post("/v1/trainings", json=_training(capacity=0), headers=officer)
    assert r.status_code == 422 and [e["path"] for e in r.json()["errors"]] == ["/capacity"]
    r = await client.post("/v1/trainings", json=_training(capacity=1001), headers=officer)
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "/capacity"

    naive = (datetime.now() + timedelta(days=3)).replace(microsecond=0).isoformat()
    r = await client.post("/v1/trainings", json=_training(starts_at=naive), headers=officer)
    assert r.status_code == 422 and ("/starts_at", "timezone_aware") in {
        (e["path"], e["code"]) for e in r.json()["errors"]
    }
    past = datetime.now(UTC) - timedelta(days=1)
    r = await client.post(
        "/v1/trainings",
        json=_training(starts_at=past.isoformat(), ends_at=(past + timedelta(hours=2)).isoformat()),
        headers=officer,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "/starts_at"
    r = await client.post("/v1/trainings", json=_training(topic="cooking", extra=1), headers=officer)
    assert {e["path"] for e in r.json()["errors"]} == {"/topic", "/extra"}


async def test_partner_company_and_auditor_cannot_publish_or_replace(
    client: httpx.AsyncClient, officer: Headers, token_factory: TokenFactory, session: AsyncSession
) -> None:
    partner, company = await _partner_with_company(session)
    created = await _create(client, officer)
    for headers in (
        await token_factory("partner", partner_id=partner.id),
        await token_factory("company", company_id=company.id),
        await token_factory("auditor"),
    ):
        r = await client.post("/v1/trainings", json=_training(), headers=headers)
        assert r.status_code == 403 and r.json()["type"] == "/problems/forbidden"
        r = await client.put(f"/v1/trainings/{created['id']}", json=_training(), headers={**headers, "If-Match": '"1"'})
        assert r.status_code == 403


async def test_replace_needs_current_if_match_and_keeps_capacity_above_enrolled(
    client: httpx.AsyncClient, officer: Headers, session: AsyncSession
) -> None:
    created = await _create(client, officer, capacity=3)
    url = f"/v1/trainings/{created['id']}"
    r = await client.put(url, json=_training(title="Nuovo titolo", capacity=2), headers=officer)
    assert r.status_code == 428
    r = await client.put(url, json=_training(title="Nuovo titolo", capacity=2), headers={**officer, "If-Match": '"1"'})
    assert r.status_code == 200 and r.headers["etag"] == '"2"'
    assert r.json()["title"] == "Nuovo titolo" and r.json()["places_left"] == 2
    r = await client.put(url, json=_training(capacity=5), headers={**officer, "If-Match": '"1"'})
    assert r.status_code == 412 and r.json()["current_etag"] == '"2"'

    _, company = await _partner_with_company(session)
    for _ in range(2):
        assert (await client.post(f"{url}/enrolments", json=_person(company.id), headers=officer)).status_code == 201
    r = await client.put(url, json=_training(capacity=1), headers={**officer, "If-Match": '"2"'})
    assert r.status_code == 409 and r.json()["enrolled"] == 2
    r = await client.get(url, headers=officer)
    assert (r.json()["capacity"], r.json()["enrolled"], r.headers["etag"]) == (2, 2, '"2"')
    actions = (
        await session.execute(
            text("SELECT action FROM desk.audit_log WHERE resource_id = :id ORDER BY id"), {"id": created["id"]}
        )
    ).scalars()
    assert list(actions) == ["training.created", "training.updated"]


# ---------------------------------------------------------------- enrolments


async def test_partner_enrols_a_delegated_company_and_places_drop(
    client: httpx.AsyncClient, officer: Headers, token_factory: TokenFactory, session: AsyncSession
) -> None:
    partner, company = await _partner_with_company(session)
    as_partner = await token_factory("partner", partner_id=partner.id)
    training = await _create(client, officer, capacity=2)
    url = f"/v1/trainings/{training['id']}"

    r = await client.post(f"{url}/enrolments", json=_person(company.id, "Maria.Rossi@Example.IT"), headers=as_partner)
    assert r.status_code == 201, r.text
    enrolment = r.json()
    assert r.headers["location"] == f"/v1/enrolments/{enrolment['id']}" and r.headers["etag"] == '"1"'
    assert enrolment["status"] == "enrolled" and enrolment["participant_email"] == "maria.rossi@example.it"
    r = await client.get(url, headers=as_partner)
    assert (r.json()["enrolled"], r.json()["places_left"]) == (1, 1)
    assert (await client.get(f"/v1/enrolments/{enrolment['id']}", headers=as_partner)).json()["id"] == enrolment["id"]

    event = (
        await session.execute(
            text(
                "SELECT event_type, company_id, partner_id, payload, aggregate_type, aggregate_id FROM desk.outbox"
                " WHERE payload->>'enrolment_id' = :id"
            ),
            {"id": enrolment["id"]},
        )
    ).one()
    # about the training session (the subject), the enrolment in the data
    assert (event.aggregate_type, event.aggregate_id) == ("training", enrolment["training_id"])
    assert event.event_type == "training.enrolled" and event.company_id == company.id
    assert event.partner_id == partner.id and event.payload["places_left"] == 1
    assert "participant_email" not in event.payload
    audit = (
        await session.execute(
            text("SELECT action, after FROM desk.audit_log WHERE resource_id = :id"), {"id": enrolment["id"]}
        )
    ).one()
    assert audit.action == "training.enrolled" and audit.after["company_id"] == str(company.id)


async def test_company_enrols_itself_and_officer_enrols_anyone(
    client: httpx.AsyncClient, officer: Headers, token_factory: TokenFactory, session: AsyncSession
) -> None:
    _, company = await _partner_with_company(session)
    training = await _create(client, officer)
    url = f"/v1/trainings/{training['id']}/enrolments"
    as_company = await token_factory("company", company_id=company.id)
    assert (await client.post(url, json=_person(company.id), headers=as_company)).status_code == 201
    assert (await client.post(url, json=_person(company.id), headers=officer)).status_code == 201
    _, other = await _partner_with_company(session)
    assert (await client.post(url, json=_person(other.id), headers=as_company)).status_code == 404
    assert (await client.post(url, json=_person(uuid.uuid4()), headers=officer)).status_code == 404
    r = await client.post(url, json=_person(company.id), headers=await token_factory("auditor"))
    assert r.status_code == 403


async def test_same_address_twice_is_409_already_exists(
    client: httpx.AsyncClient, officer: Headers, session: AsyncSession
) -> None:
    _, company = await _partner_with_company(session)
    training = await _create(client, officer)
    url = f"/v1/trainings/{training['id']}"
    assert (
        await client.post(f"{url}/enrolments", json=_person(company.id, "anna.bianchi@example.it"), headers=officer)
    ).status_code == 201
    r = await client.post(f"{url}/enrolments", json=_person(company.id, "Anna.Bianchi@example.it"), headers=officer)
    assert r.status_code == 409 and r.json()["type"] == "/problems/already-exists"
    assert (await client.get(url, headers=officer)).json()["enrolled"] == 1


async def test_enrolling_outside_reach_is_404(
    client: httpx.AsyncClient, officer: Headers, token_factory: TokenFactory, session: AsyncSession
) -> None:
    partner, _mine = await _partner_with_company(session)
    _, theirs = await _partner_with_company(session)
    pending_partner, pending_company = await _partner_with_company(session, status="pending")
    training = await _create(client, officer)
    url = f"/v1/trainings/{training['id']}/enrolments"
    as_partner = await token_factory("partner", partner_id=partner.id)
    r = await client.post(url, json=_person(theirs.id), headers=as_partner)
    assert r.status_code == 404 and r.json()["type"] == "/problems/not-found"
    as_pending = await token_factory("partner", partner_id=pending_partner.id)
    assert (await client.post(url, json=_person(pending_company.id), headers=as_pending)).status_code == 404
    assert (
        await client.post(f"/v1/trainings/{uuid.uuid4()}/enrolments", json=_person(_mine.id), headers=as_partner)
    ).status_code == 404
    assert (await client.get(f"/v1/trainings/{training['id']}", headers=officer)).json()["enrolled"] == 0


async def test_full_session_puts_the_enrolment_on_the_waiting_list(
    client: httpx.AsyncClient, officer: Headers, session: AsyncSession
) -> None:
    _, company = await _partner_with_company(session)
    training = await _create(client, officer, capacity=1)
    url = f"/v1/trainings/{training['id']}"
    assert (await client.post(f"{url}/enrolments", json=_person(company.id), headers=officer)).status_code == 201
    r = await client.post(f"{url}/enrolments", json=_person(company.id), headers=officer)
    assert r.status_code == 201 and (r.json()["status"], r.json()["queue_number"]) == ("waiting", 1)
    assert (await client.get(url, headers=officer)).json()["enrolled"] == 1
    r = await client.get(url, headers=officer)
    assert (r.json()["enrolled"], r.json()["places_left"]) == (1, 0)


async def test_started_session_refuses_enrolment(
    client: httpx.AsyncClient, officer: Headers, session: AsyncSession
) -> None:
    _, company = await _partner_with_company(session)
    started = datetime.now(UTC) - timedelta(minutes=5)
    training = Training(
        id=uuid.uuid4(),
        title="In corso",
        topic="logistics",
        format="training",
        description="d",
        starts_at=started,
        ends_at=started + timedelta(hours=2),
        location=None,
        capacity=5,
        enrolled=0,
        version=1,
    )
    session.add(training)
    await session.flush()
    r = await client.post(f"/v1/trainings/{training.id}/enrolments", json=_person(company.id), headers=officer)
    assert r.status_code == 409 and r.json()["type"] == "/problems/conflict"
    assert (await client.get(f"/v1/trainings/{training.id}", headers=officer)).json()["enrolled"] == 0


async def test_invalid_email_is_422(client: httpx.AsyncClient, officer: Headers, session: AsyncSession) -> None:
    _, company = await _partner_with_company(session)
    training = await _create(client, officer)
    url = f"/v1/trainings/{training['id']}/enrolments"
    for bad in (
        "maria",
        "maria@",
        "@example.it",
        "maria@example",
        "maria..rossi@example.it",
        "maria@-x.it",
        "maria rossi@example.it",
        "maria@example.i",
    ):
        r = await client.post(url, json=_person(company.id, bad), headers=officer)
        assert r.status_code == 422, bad
        assert [e["path"] for e in r.json()["errors"]] == ["/participant_email"], bad


async def test_enrolment_lists_show_only_reachable_companies(
    client: httpx.AsyncClient, officer: Headers, auditor: Headers, token_factory: TokenFactory, session: AsyncSession
) -> None:
    partner, mine = await _partner_with_company(session)
    _, theirs = await _partner_with_company(session)
    training = await _create(client, officer)
    url = f"/v1/trainings/{training['id']}/enrolments"
    a = (await client.post(url, json=_person(mine.id), headers=officer)).json()
    b = (await client.post(url, json=_person(theirs.id), headers=officer)).json()
    as_partner = await token_factory("partner", partner_id=partner.id)
    assert await _all_ids(client, url, as_partner) == [a["id"]]
    assert set(await _all_ids(client, url, officer)) == {a["id"], b["id"]}
    assert set(await _all_ids(client, url, auditor)) == {a["id"], b["id"]}
    assert (await client.get(f"/v1/enrolments/{b['id']}", headers=as_partner)).status_code == 404
    r = await client.post(f"/v1/enrolments/{b['id']}/cancel", headers={**as_partner, "If-Match": '"1"'})
    assert r.status_code == 404


async def test_cancel_frees_the_place_and_stale_if_match_is_412(
    client: httpx.AsyncClient, officer: Headers, token_factory: TokenFactory, session: AsyncSession
) -> None:
    partner, company = await _partner_with_company(session)
    as_partner = await token_factory("partner", partner_id=partner.id)
    training = await _create(client, officer, capacity=1)
    t_url = f"/v1/trainings/{training['id']}"
    person = _person(company.id)
    enrolment = (await client.post(f"{t_url}/enrolments", json=person, headers=as_partner)).json()
    assert (await client.get(t_url, headers=as_partner)).json()["places_left"] == 0
    url = f"/v1/enrolments/{enrolment['id']}/cancel"

    assert (await client.post(url, headers=as_partner)).status_code == 428
    assert (await client.post(url, headers={**as_partner, "If-Match": '"7"'})).status_code == 412
    r = await client.post(url, headers={**as_partner, "If-Match": enrolment["etag"]})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled" and r.json()["cancelled_at"] and r.headers["etag"] == '"2"'
    t = (await client.get(t_url, headers=as_partner)).json()
    assert (t["enrolled"], t["places_left"]) == (0, 1)

    r = await client.post(url, headers={**as_partner, "If-Match": enrolment["etag"]})
    assert r.status_code == 412
    r = await client.post(url, headers={**as_partner, "If-Match": '"2"'})
    assert r.status_code == 409
    assert (await client.get(t_url, headers=as_partner)).json()["enrolled"] == 0

    event = (
        await session.execute(
            text(
                "SELECT company_id FROM desk.outbox WHERE payload->>'enrolment_id' = :id AND event_type = "
                "'training.enrolment_cancelled'"
            ),
            {"id": enrolment["id"]},
        )
    ).scalar_one()
    assert event == company.id
    # the freed place and the address can be taken again
    again = await client.post(f"{t_url}/enrolments", json=person, headers=as_partner)
    assert again.status_code == 201 and again.json()["id"] != enrolment["id"]
    r = await client.get(f"{t_url}/enrolments", params={"status": "cancelled"}, headers=as_partner)
    assert [i["id"] for i in r.json()["items"]] == [enrolment["id"]]


async def test_enrolment_retry_with_idempotency_key_takes_one_place(
    client: httpx.AsyncClient, officer: Headers, session: AsyncSession
) -> None:
    _, company = await _partner_with_company(session)
    training = await _create(client, officer)
    url = f"/v1/trainings/{training['id']}"
    headers = {**officer, "Idempotency-Key": f"enrol-{uuid.uuid4()}"}
    person = _person(company.id)
    first = await client.post(f"{url}/enrolments", json=person, headers=headers)
    again = await client.post(f"{url}/enrolments", json=person, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true" and again.json()["id"] == first.json()["id"]
    assert (await client.get(url, headers=officer)).json()["enrolled"] == 1


# ---------------------------------------------------------------- concurrency (real commits)


async def test_capacity_holds_under_30_concurrent_enrolments(
    committing_client: httpx.AsyncClient, engine: AsyncEngine, officer: Headers, token_factory: TokenFactory
) -> None:
    partner, company = _partner(), _company()
    sm = make_sessionmaker(engine)
    async with sm() as s:
        s.add_all([partner, company])
        await s.flush()
        await delegate(s, partner, company)
        await s.commit()
    training_id: str | None = None
    try:
        r = await committing_client.post("/v1/trainings", json=_training(capacity=5, topic="other"), headers=officer)
        assert r.status_code == 201, r.text
        training_id = r.json()["id"]
        as_partner = await token_factory("partner", partner_id=partner.id)
        tag = uuid.uuid4().hex[:10]

        async def enrol(i: int) -> httpx.Response:
            return await committing_client.post(
                f"/v1/trainings/{training_id}/enrolments",
                json=_person(company.id, f"p{i}.{tag}@example.it"),
                headers=as_partner,
            )

        responses = await asyncio.gather(*(enrol(i) for i in range(30)))
        assert all(r.status_code == 201 for r in responses), [r.text for r in responses if r.status_code != 201]
        states = [r.json()["status"] for r in responses]
        assert (states.count("enrolled"), states.count("waiting")) == (5, 25)
        # the 25 who found the session full are queued 1..25, each number once
        queued = sorted(r.json()["queue_number"] for r in responses if r.json()["status"] == "waiting")
        assert queued == list(range(1, 26))

        async with sm() as s:
            enrolled = await s.execute(select(Training.enrolled).where(Training.id == uuid.UUID(training_id)))
            live = await s.execute(
                select(func.count())
                .select_from(Enrolment)
                .where(Enrolment.training_id == uuid.UUID(training_id), Enrolment.status == "enrolled")
            )
            assert enrolled.scalar_one() == 5 and live.scalar_one() == 5
        r = await committing_client.get(f"/v1/trainings/{training_id}", headers=as_partner)
        assert r.json()["places_left"] == 0
    finally:
        async with sm() as s:
            if training_id is not None:
                await s.execute(delete(Enrolment).where(Enrolment.training_id == uuid.UUID(training_id)))
                await s.execute(delete(Training).where(Training.id == uuid.UUID(training_id)))
            await s.execute(delete(Delegation).where(Delegation.company_id == company.id))
            await s.execute(delete(CompanyDelegate).where(CompanyDelegate.company_id == company.id))
            await s.execute(delete(Company).where(Company.id == company.id))
            await s.execute(delete(Partner).where(Partner.id == partner.id))
            await s.commit()
