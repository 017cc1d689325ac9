"""Training that counts, through HTTP on real PostgreSQL: attendance per participant and session, the waiting
list (promoted in order, once, notified; also under concurrent cancellations), certificates of attendance
as PDF for those who attended at least the session's share of hours, and the refusals that change nothing.

Figures worked by hand: a session from 09:00 to 12:30 lasts 3.50 hours; with the default share 0.75 a
certificate needs 3.50 x 0.75 = 2.625 hours, 2.63 to the hundredth (half up): 2.63 hours attended is
enough, 2.62 is not. With share 0.50 a 2-hour session needs 1.00 hour."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.intake.models import Company, Delegation, Enrolment, Partner, Training
from shared.db import make_sessionmaker
from shared.models import CompanyDelegate
from tests.conftest import TokenFactory
from tests.factories import delegate
from tests.services.intake.test_trainings import _company, _partner, _partner_with_company, _person, _training

Headers = dict[str, str]


async def _session_of(client: httpx.AsyncClient, officer: Headers, **over: Any) -> dict[str, Any]:
    r = await client.post("/v1/trainings", json=_training(**over), headers=officer)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def _enrol(client: httpx.AsyncClient, training_id: str, body: dict[str, Any], headers: Headers) -> dict[str, Any]:
    r = await client.post(f"/v1/trainings/{training_id}/enrolments", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def _held(session: AsyncSession, training_id: str, *, starts: datetime, minutes: int) -> None:
    """Move the session into the past (it was published in the future, as the API requires)."""
    await session.execute(
        text("UPDATE intake.trainings SET starts_at = :s, ends_at = :e WHERE id = :id"),
        {"s": starts, "e": starts + timedelta(minutes=minutes), "id": training_id},
    )


async def _counts(session: AsyncSession, enrolment_id: str) -> tuple[int, int, int]:
    """Attendance rows, audit records and outbox events about one enrolment."""
    row = (
        await session.execute(
            text(
                "SELECT (SELECT count(*) FROM intake.attendances WHERE enrolment_id = :id),"
                " (SELECT count(*) FROM desk.audit_log WHERE resource_id = :sid),"
                " (SELECT count(*) FROM desk.outbox WHERE payload->>'enrolment_id' = :sid)"
            ),
            {"id": enrolment_id, "sid": enrolment_id},
        )
    ).one()
    return int(row[0]), int(row[1]), int(row[2])


def _pdf_text_and_check(body: bytes) -> bytes:
    """Enough of a PDF reader to tell the document is one: header, trailer, every xref offset pointing at
    its object; returns the page's content stream (uncompressed)."""
    assert body.startswith(b"%PDF-1.") and body.rstrip().endswith(b"%%EOF")
    startxref = int(re.search(rb"startxref\s+(\d+)\s+%%EOF\s*$", body)[1])  # type: ignore[index]
    assert body[startxref:].startswith(b"xref")
    entries = re.findall(rb"(\d{10}) 00000 n ", body[startxref:])
    assert len(entries) == 6
    for number, offset in enumerate(entries, start=1):
        assert body[int(offset) :].startswith(b"%d 0 obj" % number)
    length = int(re.search(rb"/Length (\d+)", body)[1])  # type: ignore[index]
    start = body.index(b"stream\n") + len(b"stream\n")
    assert body[start + length :].startswith(b"endstream")
    return body[start : start + length]


# ---------------------------------------------------------------- attendance and certificates


async def test_attendance_and_certificate_at_the_share_boundary(
    client: httpx.AsyncClient, officer: Headers, token_factory: TokenFactory, session: AsyncSession
) -> None:
    partner, company = await _partner_with_company(session)
    as_partner = await token_factory("partner", partner_id=partner.id)
    training = await _session_of(client, officer, title="Dogane e origine preferenziale")
    assert Decimal(str(training["min_attendance_share"])) == Decimal("0.75")  # the default
    giulia = await _enrol(
        client, training["id"], {**_person(company.id), "participant_name": "Giulia Bianchi"}, as_partner
    )
    marco = await _enrol(client, training["id"], {**_person(company.id), "participant_name": "Marco Verdi"}, as_partner)
    # held yesterday from 09:00 to 12:30 (Rome, UTC+1 in December): 3.50 hours
    await _held(session, training["id"], starts=datetime(2026, 12, 2, 8, 0, tzinfo=UTC), minutes=210)
    t = (await client.get(f"/v1/trainings/{training['id']}", headers=officer)).json()
    assert Decimal(str(t["hours"])) == Decimal("3.50")

    url = f"/v1/enrolments/{giulia['id']}/attendance"
    r = await client.put(url, json={"hours": "2.63"}, headers=officer)
    assert r.status_code == 201, r.text
    a = r.json()
    assert (Decimal(str(a["hours"])), Decimal(str(a["session_hours"])), Decimal(str(a["required_hours"]))) == (
        Decimal("2.63"),
        Decimal("3.50"),
        Decimal("2.63"),
    )
    assert a["certificate_available"] is True and r.headers["etag"] == '"1"'
    r = await client.put(f"/v1/enrolments/{marco['id']}/attendance", json={"hours": "2.62"}, headers=officer)
    assert r.status_code == 201 and r.json()["certificate_available"] is False

    # Giulia: 2.63 >= 2.63, a certificate; partners of the company read it too
    r = await client.get(f"/v1/enrolments/{giulia['id']}/certificate", headers=as_partner)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    content = _pdf_text_and_check(r.content)
    assert b"(Giulia Bianchi)" in content and b"(Dogane e origine preferenziale)" in content
    assert b"2,63 su / of 3,50" in content
    assert b"02/12/2026 09:00 - 02/12/2026 12:30" in content

    # Marco: 2.62 < 2.63, refused with the hours attended and required
    r = await client.get(f"/v1/enrolments/{marco['id']}/certificate", headers=as_partner)
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
    assert (r.json()["hours_attended"], r.json()["hours_required"]) == ("2.62", "2.63")

    # a correction is a replacement: If-Match needed, then the certificate follows the new hours
    assert (
        await client.put(f"/v1/enrolments/{marco['id']}/attendance", json={"hours": "3"}, headers=officer)
    ).status_code == 428
    r = await client.put(
        f"/v1/enrolments/{marco['id']}/attendance", json={"hours": "3"}, headers={**officer, "If-Match": '"7"'}
    )
    assert r.status_code == 412
    r = await client.put(
        f"/v1/enrolments/{marco['id']}/attendance", json={"hours": "3"}, headers={**officer, "If-Match": '"1"'}
    )
    assert r.status_code == 200 and r.headers["etag"] == '"2"' and r.json()["certificate_available"] is True
    assert (await client.get(f"/v1/enrolments/{marco['id']}/certificate", headers=officer)).status_code == 200
    audit = (
        (
            await session.execute(
                text("SELECT action FROM desk.audit_log WHERE resource_id = :id ORDER BY id"), {"id": marco["id"]}
            )
        )
        .scalars()
        .all()
    )
    assert audit == ["training.enrolled", "training.attendance_recorded", "training.attendance_recorded"]


async def test_the_catalogue_sets_the_share(client: httpx.AsyncClient, officer: Headers, session: AsyncSession) -> None:
    _, company = await _partner_with_company(session)
    r = await client.post("/v1/trainings", json=_training(min_attendance_share="1.5"), headers=officer)
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "/min_attendance_share"
    training = await _session_of(client, officer, min_attendance_share="0.50")
    e = await _enrol(client, training["id"], _person(company.id), officer)
    await _held(session, training["id"], starts=datetime.now(UTC) - timedelta(days=1), minutes=120)
    # 2.00 hours x 0.50 = 1.00 hour required
    r = await client.put(f"/v1/enrolments/{e['id']}/attendance", json={"hours": "0.99"}, headers=officer)
    assert Decimal(str(r.json()["required_hours"])) == Decimal("1.00")
    r = await client.get(f"/v1/enrolments/{e['id']}/certificate", headers=officer)
    assert r.status_code == 409 and (r.json()["hours_attended"], r.json()["hours_required"]) == ("0.99", "1.00")
    r = await client.put(
        f"/v1/enrolments/{e['id']}/attendance", json={"hours": "1.00"}, headers={**officer, "If-Match": '"1"'}
    )
    assert r.status_code == 200
    assert (await client.get(f"/v1/enrolments/{e['id']}/certificate", headers=officer)).status_code == 200


async def test_certificate_for_someone_who_did_not_attend_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, officer: Headers, token_factory: TokenFactory, session: AsyncSession
) -> None:
    _, company = await _partner_with_company(session)
    as_company = await token_factory("company", company_id=company.id)
    training = await _session_of(client, officer)
    e = await _enrol(client, training["id"], _person(company.id), officer)
    await _held(session, training["id"], starts=datetime.now(UTC) - timedelta(days=2), minutes=180)
    before = await _counts(session, e["id"])
    assert before == (0, 1, 1)  # enrolled: one audit record, one event
    # no attendance recorded: 0 of 3.00 x 0.75 = 2.25 hours
    r = await client.get(f"/v1/enrolments/{e['id']}/certificate", headers=as_company)
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
    assert (r.json()["hours_attended"], r.json()["hours_required"]) == ("0.00", "2.25")
    # attended none of it
    r = await client.put(f"/v1/enrolments/{e['id']}/attendance", json={"hours": "0"}, headers=officer)
    assert r.status_code == 201
    r = await client.get(f"/v1/enrolments/{e['id']}/certificate", headers=as_company)
    assert r.status_code == 409 and r.json()["hours_attended"] == "0.00"
    assert await _counts(session, e["id"]) == (1, 2, 1)  # only the attendance was written, by the PUT
    # someone else's enrolment: 404, nothing leaks
    other = await token_factory("partner", partner_id=_partner().id)
    assert (await client.get(f"/v1/enrolments/{e['id']}/certificate", headers=other)).status_code == 404


async def test_attendance_refusals_change_nothing(
    client: httpx.AsyncClient, officer: Headers, token_factory: TokenFactory, session: AsyncSession
) -> None:
    partner, company = await _partner_with_company(session)
    as_partner = await token_factory("partner", partner_id=partner.id)
    past = await _session_of(client, officer, capacity=1)
    enrolled = await _enrol(client, past["id"], _person(company.id), officer)
    waiting = await _enrol(client, past["id"], _person(company.id), officer)
    assert waiting["status"] == "waiting"
    future = await _session_of(client, officer)
    upcoming = await _enrol(client, future["id"], _person(company.id), officer)
    cancelled = await _enrol(client, future["id"], _person(company.id), officer)
    r = await client.post(
        f"/v1/enrolments/{cancelled['id']}/cancel", headers={**officer, "If-Match": cancelled["etag"]}
    )
    assert r.status_code == 200
    await _held(session, past["id"], starts=datetime.now(UTC) - timedelta(days=1), minutes=180)
    snapshot = {e["id"]: await _counts(session, e["id"]) for e in (enrolled, waiting, upcoming, cancelled)}

    def put(e: dict[str, Any], hours: str, headers: Headers = officer) -> Any:
        return client.put(f"/v1/enrolments/{e['id']}/attendance", json={"hours": hours}, headers=headers)

    # hours above the session's 3.00
    r = await put(enrolled, "3.01")
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "hours_above_session"
    assert r.json()["errors"][0]["path"] == "/hours"
    assert (await put(enrolled, "-1")).status_code == 422
    # someone not enrolled: on the waiting list, or cancelled
    r = await put(waiting, "1")
    assert r.status_code == 409 and r.json()["enrolment_status"] == "waiting"
    r = await put(cancelled, "1")
    assert r.status_code == 409 and r.json()["enrolment_status"] == "cancelled"
    # a session in the future
    r = await put(upcoming, "1")
    assert r.status_code == 409 and "starts_at" in r.json()
    # partners do not record attendance
    assert (await put(enrolled, "1", as_partner)).status_code == 403
    for e in (enrolled, waiting, upcoming, cancelled):
        assert await _counts(session, e["id"]) == snapshot[e["id"]]
    # the whole session, exactly, is fine
    assert (await put(enrolled, "3.00")).status_code == 201


# ---------------------------------------------------------------- waiting list


async def test_waiting_list_is_promoted_in_order_once_and_notified(
    client: httpx.AsyncClient, officer: Headers, token_factory: TokenFactory, session: AsyncSession
) -> None:
    partner, company = await _partner_with_company(session)
    as_partner = await token_factory("partner", partner_id=partner.id)
    training = await _session_of(client, officer, capacity=2)
    t_url = f"/v1/trainings/{training['id']}"
    a = await _enrol(client, training["id"], _person(company.id), as_partner)
    b = await _enrol(client, training["id"], _person(company.id), as_partner)
    w1, w2, w3 = [await _enrol(client, training["id"], _person(company.id), as_partner) for _ in range(3)]
    assert [(e["status"], e["queue_number"]) for e in (a, b, w1, w2, w3)] == [
        ("enrolled", None),
        ("enrolled", None),
        ("waiting", 1),
        ("waiting", 2),
        ("waiting", 3),
    ]
    # the same address cannot wait twice
    r = await client.post(f"{t_url}/enrolments", json=_person(company.id, w1["participant_email"]), headers=as_partner)
    assert r.status_code == 409 and r.json()["type"] == "/problems/already-exists"

    async def cancel(e: dict[str, Any]) -> dict[str, Any]:
        r = await client.post(f"/v1/enrolments/{e['id']}/cancel", headers={**as_partner, "If-Match": e["etag"]})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    async def state(e: dict[str, Any]) -> dict[str, Any]:
        return (await client.get(f"/v1/enrolments/{e['id']}", headers=as_partner)).json()  # type: ignore[no-any-return]

    # A leaves: W1, first in, takes the place
    await cancel(a)
    s1 = await state(w1)
    assert (s1["status"], s1["etag"]) == ("enrolled", '"2"') and s1["promoted_at"] is not None
    assert [(await state(e))["status"] for e in (w2, w3)] == ["waiting", "waiting"]
    assert (await client.get(t_url, headers=officer)).json()["enrolled"] == 2
    # W2 leaves the list: no place freed, nobody promoted
    await cancel(w2)
    assert (await state(w3))["status"] == "waiting"
    assert (await client.get(t_url, headers=officer)).json()["enrolled"] == 2
    # B leaves: W3 is next
    await cancel(b)
    assert (await state(w3))["status"] == "enrolled"
    # the partner hears each promotion once, through the company's event
    events = (
        await session.execute(
            text(
                "SELECT payload->>'enrolment_id', company_id, payload->>'status' FROM desk.outbox"
                " WHERE event_type = 'training.enrolment_promoted' AND payload->>'training_id' = :t"
                " ORDER BY id"
            ),
            {"t": training["id"]},
        )
    ).all()
    assert [(e[0], e[1], e[2]) for e in events] == [
        (w1["id"], company.id, "enrolled"),
        (w3["id"], company.id, "enrolled"),
    ]
    # more places: the waiting list moves up too
    w4 = await _enrol(client, training["id"], _person(company.id), as_partner)
    assert (w4["status"], w4["queue_number"]) == ("waiting", 4)
    r = await client.put(t_url, json=_training(capacity=3), headers={**officer, "If-Match": training["etag"]})
    assert r.status_code == 200 and r.json()["enrolled"] == 3
    assert (await state(w4))["status"] == "enrolled"


async def test_two_concurrent_cancellations_promote_in_order_and_never_exceed_capacity(
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
        as_partner = await token_factory("partner", partner_id=partner.id)
        r = await committing_client.post("/v1/trainings", json=_training(capacity=2, topic="other"), headers=officer)
        assert r.status_code == 201, r.text
        training_id = r.json()["id"]
        tag = uuid.uuid4().hex[:10]
        people = [_person(company.id, f"q{i}.{tag}@example.it") for i in range(8)]
        placed = [await _enrol(committing_client, training_id, people[i], as_partner) for i in range(2)]
        queue = [await _enrol(committing_client, training_id, people[i], as_partner) for i in range(2, 6)]
        assert [e["queue_number"] for e in queue] == [1, 2, 3, 4]

        async def cancel(e: dict[str, Any]) -> httpx.Response:
            return await committing_client.post(
                f"/v1/enrolments/{e['id']}/cancel", headers={**as_partner, "If-Match": e["etag"]}
            )

        # both places free at once, while two more people try to enrol
        responses = await asyncio.gather(
            cancel(placed[0]),
            cancel(placed[1]),
            committing_client.post(f"/v1/trainings/{training_id}/enrolments", json=people[6], headers=as_partner),
            committing_client.post(f"/v1/trainings/{training_id}/enrolments", json=people[7], headers=as_partner),
        )
        assert [r.status_code for r in responses] == [200, 200, 201, 201], [r.text for r in responses]
        # the newcomers found the places already given to the waiting list: they queue behind it
        assert sorted(r.json()["queue_number"] for r in responses[2:]) == [5, 6]
        assert all(r.json()["status"] == "waiting" for r in responses[2:])

        async with sm() as s:
            tid = uuid.UUID(training_id)
            rows = (
                await s.execute(
                    select(Enrolment.queue_number, Enrolment.status, Enrolment.version)
                    .where(Enrolment.training_id == tid, Enrolment.queue_number.is_not(None))
                    .order_by(Enrolment.queue_number)
                )
            ).all()
            # the first two in the queue promoted, once each (version 2), the others still waiting
            assert [tuple(r) for r in rows] == [
                (1, "enrolled", 2),
                (2, "enrolled", 2),
                (3, "waiting", 1),
                (4, "waiting", 1),
                (5, "waiting", 1),
                (6, "waiting", 1),
            ]
            enrolled = (await s.execute(select(Training.enrolled).where(Training.id == tid))).scalar_one()
            live = (
                await s.execute(
                    select(func.count())
                    .select_from(Enrolment)
                    .where(Enrolment.training_id == tid, Enrolment.status == "enrolled")
                )
            ).scalar_one()
            assert enrolled == live == 2
            promoted = (
                (
                    await s.execute(
                        text(
                            "SELECT payload->>'enrolment_id' FROM desk.outbox"
                            " WHERE event_type = 'training.enrolment_promoted' AND aggregate_type = 'training'"
                            " AND aggregate_id = :t ORDER BY 1"
                        ),
                        {"t": training_id},
                    )
                )
                .scalars()
                .all()
            )
            assert promoted == sorted([queue[0]["id"], queue[1]["id"]])
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
