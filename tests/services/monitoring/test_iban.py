"""The beneficiary's account through HTTP: a partner cannot redirect a payment already ordered (its change of IBAN
waits for the company's or an officer's confirmation), orders keep the account they were ordered with until an
officer re-issues them, the holder must be the company, and every step is audited. Projects and payments are rows;
intake (companies, the call) answers on a loopback port with committed data."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

from sqlalchemy import text

from tests.factories import make_partner
from tests.services.monitoring.builders import OTHER_VALID_IBAN, VALID_IBAN, make_payment, make_project
from tests.services.monitoring.test_projects_payments import committed_call_and_companies, scalar


def account(iban: str, company: Any, *, name: str | None = None) -> dict[str, Any]:
    return {"iban": iban, "holder": {"name": name or company.name, "tax_code": company.vat_number}}


async def audit(session: Any, resource_id: Any) -> list[tuple[str, str, str]]:
    """(action, principal kind, resource type) of the resource's audit records, in order."""
    rows = await session.execute(
        text("SELECT action, principal_kind, resource_type FROM desk.audit_log WHERE resource_id = :r ORDER BY id"),
        {"r": str(resource_id)},
    )
    return [tuple(r) for r in rows.all()]


async def events(session: Any, project_id: Any) -> list[tuple[str, Any]]:
    rows = await session.execute(
        text("SELECT event_type, partner_id FROM desk.outbox WHERE payload->>'project_id' = :p ORDER BY id"),
        {"p": str(project_id)},
    )
    return [tuple(r) for r in rows.all()]


async def export_ibans(client: Any, officer: dict[str, str], call_id: Any) -> dict[str, str]:
    r = await client.get("/v1/payments/export.csv", params={"call_id": str(call_id)}, headers=officer)
    assert r.status_code == 200, r.text
    return {row["payment_id"]: row["iban"] for row in csv.DictReader(io.StringIO(r.text))}


async def test_a_partner_cannot_redirect_an_ordered_advance(
    monitoring_client, intake, engine, session, token_factory, officer
):
    call, (alfa,) = await committed_call_and_companies(engine, "Alfa Export S.r.l.")
    partner = await make_partner(session)
    project = await make_project(
        session,
        call_id=call.id,
        company_id=alfa.id,
        partner_id=partner.id,
        iban=VALID_IBAN,
        iban_holder_name=alfa.name,
        iban_holder_tax_code=alfa.vat_number,
    )
    advance = await make_payment(session, project, amount="8000.00")
    as_partner = await token_factory("partner", partner_id=partner.id)
    as_company = await token_factory("company", company_id=alfa.id)
    url = f"/v1/projects/{project.id}/iban"

    # the attack: the partner points the project to another account while the advance is ordered
    r = await monitoring_client.put(
        url, json=account(OTHER_VALID_IBAN, alfa, name="Conto del partner"), headers={**as_partner, "If-Match": '"1"'}
    )
    assert r.status_code == 202, r.text
    change = r.json()
    assert (change["status"], change["iban"], change["previous_iban"], change["requested_by_kind"]) == (
        "pending",
        OTHER_VALID_IBAN,
        VALID_IBAN,
        "partner",
    )
    assert change["requested_at"] and change["decided_by"] is None
    assert r.headers["location"] == f"/v1/projects/{project.id}/iban-changes/{change['id']}"
    change_url = f"/v1/projects/{project.id}/iban-changes/{change['id']}"

    # nothing moved: the project keeps its account, the advance pays the old one, the treasury file too
    got = await monitoring_client.get(f"/v1/projects/{project.id}", headers=as_partner)
    assert (got.json()["iban"], got.headers["etag"]) == (VALID_IBAN, '"1"')
    assert (await monitoring_client.get(f"/v1/payments/{advance.id}", headers=officer)).json()["iban"] == VALID_IBAN
    assert await export_ibans(monitoring_client, officer, call.id) == {str(advance.id): VALID_IBAN}

    # the partner who asked cannot confirm it, nor ask a second one over it
    assert (
        await monitoring_client.post(f"{change_url}/confirm", headers={**as_partner, "If-Match": '"1"'})
    ).status_code == 403
    again = await monitoring_client.put(
        url, json=account(OTHER_VALID_IBAN, alfa), headers={**as_partner, "If-Match": '"1"'}
    )
    assert again.status_code == 409 and again.json()["pending_change_id"] == change["id"]
    assert (await monitoring_client.get(change_url, headers=as_partner)).json()["status"] == "pending"

    # the company confirms: the project's account changes, the ordered advance keeps the old one
    confirmed = await monitoring_client.post(f"{change_url}/confirm", headers={**as_company, "If-Match": '"1"'})
    assert confirmed.status_code == 200, confirmed.text
    assert (confirmed.json()["status"], confirmed.headers["etag"]) == ("confirmed", '"2"')
    got = (await monitoring_client.get(f"/v1/projects/{project.id}", headers=as_partner)).json()
    assert (got["iban"], got["iban_holder"], got["etag"]) == (
        OTHER_VALID_IBAN,
        {"name": "Conto del partner", "tax_code": alfa.vat_number},
        '"2"',
    )
    paid_to = await monitoring_client.get(f"/v1/payments/{advance.id}", headers=officer)
    assert (paid_to.json()["iban"], paid_to.headers["etag"]) == (VALID_IBAN, '"1"')
    assert await export_ibans(monitoring_client, officer, call.id) == {str(advance.id): VALID_IBAN}

    # an officer re-issues the open advance: now it goes to the new account
    stale = await monitoring_client.post(f"/v1/payments/{advance.id}/reissue", headers={**officer, "If-Match": '"9"'})
    assert stale.status_code == 412
    reissued = await monitoring_client.post(
        f"/v1/payments/{advance.id}/reissue", headers={**officer, "If-Match": '"1"'}
    )
    assert reissued.status_code == 200, reissued.text
    assert (reissued.json()["iban"], reissued.headers["etag"]) == (OTHER_VALID_IBAN, '"2"')
    assert await export_ibans(monitoring_client, officer, call.id) == {str(advance.id): OTHER_VALID_IBAN}

    # every step left an audit record (who, what) and an event for the partner
    assert await audit(session, change["id"]) == [
        ("project.iban_change_requested", "partner", "iban_change"),
        ("project.iban_change_confirmed", "company", "iban_change"),
    ]
    assert await audit(session, project.id) == [("project.iban_set", "company", "project")]
    assert await audit(session, advance.id) == [("payment.reissued", "officer", "payment")]
    before, after = (
        await session.execute(
            text("SELECT before, after FROM desk.audit_log WHERE action = 'payment.reissued' AND resource_id = :r"),
            {"r": str(advance.id)},
        )
    ).one()
    assert (before["iban"], after["iban"]) == (VALID_IBAN, OTHER_VALID_IBAN)
    assert await events(session, project.id) == [
        ("project.iban_change_requested", partner.id),
        ("project.iban_changed", partner.id),
        ("payment.reissued", partner.id),
    ]


async def test_the_company_can_reject_and_an_officer_confirm(
    monitoring_client, intake, engine, session, token_factory, officer
):
    call, (alfa,) = await committed_call_and_companies(engine, "Alfa Export S.r.l.")
    partner = await make_partner(session)
    project = await make_project(session, call_id=call.id, company_id=alfa.id, partner_id=partner.id, iban=VALID_IBAN)
    await make_payment(session, project, amount="8000.00")
    as_partner = await token_factory("partner", partner_id=partner.id)
    as_company = await token_factory("company", company_id=alfa.id)
    other_company = await token_factory("company", company_id=uuid.uuid4())
    url = f"/v1/projects/{project.id}/iban"

    first = (
        await monitoring_client.put(
            url, json=account(OTHER_VALID_IBAN, alfa), headers={**as_partner, "If-Match": '"1"'}
        )
    ).json()
    change_url = f"/v1/projects/{project.id}/iban-changes/{first['id']}"
    # another company does not even see the project
    assert (
        await monitoring_client.post(f"{change_url}/confirm", headers={**other_company, "If-Match": '"1"'})
    ).status_code == 404
    rejected = await monitoring_client.post(
        f"{change_url}/reject", json={"reason": "Non è il nostro conto"}, headers={**as_company, "If-Match": '"1"'}
    )
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["status"], rejected.json()["reason"]) == ("rejected", "Non è il nostro conto")
    late = await monitoring_client.post(f"{change_url}/confirm", headers={**officer, "If-Match": '"2"'})
    assert late.status_code == 409
    assert (await monitoring_client.get(f"/v1/projects/{project.id}", headers=officer)).json()["iban"] == VALID_IBAN

    # a new request, confirmed by an officer
    second = (
        await monitoring_client.put(
            url, json=account(OTHER_VALID_IBAN, alfa), headers={**as_partner, "If-Match": '"1"'}
        )
    ).json()
    assert second["status"] == "pending" and second["id"] != first["id"]
    ok = await monitoring_client.post(
        f"/v1/projects/{project.id}/iban-changes/{second['id']}/confirm", headers={**officer, "If-Match": '"1"'}
    )
    assert ok.status_code == 200 and ok.json()["status"] == "confirmed"
    assert (await monitoring_client.get(f"/v1/projects/{project.id}", headers=officer)).json()[
        "iban"
    ] == OTHER_VALID_IBAN
    listed = (await monitoring_client.get(f"/v1/projects/{project.id}/iban-changes", headers=as_partner)).json()
    # one test transaction: both were requested at the same instant, so the order between them is by id
    assert {c["id"]: c["status"] for c in listed["items"]} == {first["id"]: "rejected", second["id"]: "confirmed"}
    assert await audit(session, first["id"]) == [
        ("project.iban_change_requested", "partner", "iban_change"),
        ("project.iban_change_rejected", "company", "iban_change"),
    ]
    assert await audit(session, second["id"]) == [
        ("project.iban_change_requested", "partner", "iban_change"),
        ("project.iban_change_confirmed", "officer", "iban_change"),
    ]


async def test_a_holder_other_than_the_company_is_refused_and_nothing_changes(
    monitoring_client, intake, engine, session, token_factory
):
    call, (alfa, beta) = await committed_call_and_companies(engine, "Alfa Export S.r.l.", "Beta Consulenze S.r.l.")
    partner = await make_partner(session)
    open_one = await make_project(session, call_id=call.id, company_id=alfa.id, partner_id=partner.id, iban=VALID_IBAN)
    await make_payment(session, open_one, amount="8000.00")
    nothing_open = await make_project(
        session, call_id=call.id, company_id=alfa.id, partner_id=partner.id, iban=VALID_IBAN
    )
    as_partner = await token_factory("partner", partner_id=partner.id)
    as_company = await token_factory("company", company_id=alfa.id)

    for project in (open_one, nothing_open):
        for who in (as_partner, as_company):
            r = await monitoring_client.put(
                f"/v1/projects/{project.id}/iban",
                json=account(OTHER_VALID_IBAN, beta),
                headers={**who, "If-Match": '"1"', "Accept-Language": "it"},
            )
            assert r.status_code == 422, r.text
            problem = r.json()
            assert problem["type"] == "/problems/iban-holder-mismatch"
            assert [(e["code"], e["path"]) for e in problem["errors"]] == [("iban_holder_mismatch", "/holder/tax_code")]
            assert "impresa beneficiaria" in problem["errors"][0]["message"]
    english = await monitoring_client.put(
        f"/v1/projects/{nothing_open.id}/iban",
        json=account(OTHER_VALID_IBAN, beta),
        headers={**as_partner, "If-Match": '"1"', "Accept-Language": "en"},
    )
    assert "beneficiary company" in english.json()["errors"][0]["message"]
    bad_code = await monitoring_client.put(
        f"/v1/projects/{nothing_open.id}/iban",
        json={"iban": OTHER_VALID_IBAN, "holder": {"name": "Alfa", "tax_code": "12345678901"}},
        headers={**as_partner, "If-Match": '"1"'},
    )
    assert bad_code.status_code == 422
    assert [(e["code"], e["path"]) for e in bad_code.json()["errors"]] == [
        ("holder_tax_code_invalid", "/holder/tax_code")
    ]

    for project in (open_one, nothing_open):
        assert (
            await scalar(session, "SELECT iban || ' ' || version FROM monitoring.projects WHERE id = :p", p=project.id)
            == f"{VALID_IBAN} 1"
        )
        assert (
            await scalar(session, "SELECT count(*) FROM monitoring.iban_changes WHERE project_id = :p", p=project.id)
            == 0
        )
        assert await audit(session, project.id) == []


async def test_without_an_open_order_the_change_applies_at_once(
    monitoring_client, intake, engine, session, token_factory
):
    call, (alfa,) = await committed_call_and_companies(engine, "Alfa Export S.r.l.")
    partner = await make_partner(session)
    project = await make_project(session, call_id=call.id, company_id=alfa.id, partner_id=partner.id, iban=VALID_IBAN)
    paid = await make_payment(session, project, amount="8000.00", status="paid")
    as_partner = await token_factory("partner", partner_id=partner.id)

    r = await monitoring_client.put(
        f"/v1/projects/{project.id}/iban",
        json={
            "iban": "IT42 L123 4512 3451 2345 6789 012",
            "holder": {"name": alfa.name, "tax_code": f"IT{alfa.vat_number}"},
        },
        headers={**as_partner, "If-Match": '"1"'},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["iban"], r.json()["iban_holder"], r.headers["etag"]) == (
        OTHER_VALID_IBAN,
        {"name": alfa.name, "tax_code": alfa.vat_number},
        '"2"',
    )
    # a payment already made is history: untouched
    assert await scalar(session, "SELECT iban FROM monitoring.payments WHERE id = :p", p=paid.id) == VALID_IBAN
    before, after, kind = (
        await session.execute(
            text(
                "SELECT before, after, principal_kind FROM desk.audit_log WHERE action = 'project.iban_set' "
                "AND resource_id = :r"
            ),
            {"r": str(project.id)},
        )
    ).one()
    assert (before["iban"], after["iban"], kind) == (VALID_IBAN, OTHER_VALID_IBAN, "partner")
    assert await events(session, project.id) == [("project.iban_changed", partner.id)]
    (change,) = (await monitoring_client.get(f"/v1/projects/{project.id}/iban-changes", headers=as_partner)).json()[
        "items"
    ]
    assert (change["status"], change["previous_iban"], change["requested_by_kind"]) == (
        "applied",
        VALID_IBAN,
        "partner",
    )
    # the same account again: nothing to do
    same = await monitoring_client.put(
        f"/v1/projects/{project.id}/iban",
        json=account(OTHER_VALID_IBAN, alfa),
        headers={**as_partner, "If-Match": '"2"'},
    )
    assert same.status_code == 200 and same.headers["etag"] == '"2"'


async def test_the_company_or_an_officer_change_it_directly_and_orders_keep_theirs(
    monitoring_client, intake, engine, session, token_factory, officer
):
    call, (alfa,) = await committed_call_and_companies(engine, "Alfa Export S.r.l.")
    partner = await make_partner(session)
    project = await make_project(session, call_id=call.id, company_id=alfa.id, partner_id=partner.id)
    advance = await make_payment(session, project, amount="8000.00")  # ordered when the project started: no IBAN
    as_partner = await token_factory("partner", partner_id=partner.id)
    as_company = await token_factory("company", company_id=alfa.id)
    url = f"/v1/projects/{project.id}/iban"

    # even the first account is only a request when it comes from the partner with the advance open
    pending = await monitoring_client.put(
        url, json=account(VALID_IBAN, alfa), headers={**as_partner, "If-Match": '"1"'}
    )
    assert pending.status_code == 202
    # the company sets it itself: applied, the partner's request superseded; the advance, ordered before any
    # account was known, takes this first one
    r = await monitoring_client.put(url, json=account(VALID_IBAN, alfa), headers={**as_company, "If-Match": '"1"'})
    assert r.status_code == 200 and r.json()["iban"] == VALID_IBAN
    got = (await monitoring_client.get(f"/v1/payments/{advance.id}", headers=officer)).json()
    assert (got["iban"], got["etag"]) == (VALID_IBAN, '"2"')
    superseded = await monitoring_client.get(
        f"/v1/projects/{project.id}/iban-changes/{pending.json()['id']}", headers=as_company
    )
    assert superseded.json()["status"] == "superseded"

    # an officer changes it again: applied at once, and the advance keeps the account it had
    r = await monitoring_client.put(url, json=account(OTHER_VALID_IBAN, alfa), headers={**officer, "If-Match": '"2"'})
    assert r.status_code == 200 and r.json()["iban"] == OTHER_VALID_IBAN
    assert (await monitoring_client.get(f"/v1/payments/{advance.id}", headers=officer)).json()["iban"] == VALID_IBAN
    assert [a for a, _, _ in await audit(session, project.id)] == ["project.iban_set", "project.iban_set"]
    assert await audit(session, advance.id) == [("payment.iban_set", "company", "payment")]


async def test_only_an_open_outgoing_order_is_reissued(monitoring_client, session, token_factory, officer):
    partner = await make_partner(session)
    project = await make_project(session, partner_id=partner.id, iban=OTHER_VALID_IBAN)
    paid = await make_payment(session, project, amount="8000.00", status="paid", iban=VALID_IBAN)
    recovery = await make_payment(session, project, kind="recovery", amount="100.00", iban="")
    same = await make_payment(session, project, kind="balance", amount="500.00")
    as_partner = await token_factory("partner", partner_id=partner.id)

    for p in (paid, recovery):
        r = await monitoring_client.post(f"/v1/payments/{p.id}/reissue", headers={**officer, "If-Match": '"1"'})
        assert r.status_code == 409, r.text
    assert (
        await monitoring_client.post(f"/v1/payments/{same.id}/reissue", headers={**as_partner, "If-Match": '"1"'})
    ).status_code == 403
    unchanged = await monitoring_client.post(f"/v1/payments/{same.id}/reissue", headers={**officer, "If-Match": '"1"'})
    assert (unchanged.status_code, unchanged.json()["iban"], unchanged.headers["etag"]) == (
        200,
        OTHER_VALID_IBAN,
        '"1"',
    )
    assert await scalar(session, "SELECT iban FROM monitoring.payments WHERE id = :p", p=paid.id) == VALID_IBAN
