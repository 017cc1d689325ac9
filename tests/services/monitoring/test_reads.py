"""Monitoring's reads through HTTP on real PostgreSQL: claims across projects within reach (another partner sees
none, and 404 on one), with their filters; officers' queues of claims to review and of payment orders to confirm
or send to the treasury, each item dropping out once handled."""

from __future__ import annotations

import uuid
from typing import Any

from services.monitoring.models import Claim
from tests.services.monitoring.builders import VALID_IBAN, make_payment, make_project
from tests.services.monitoring.test_claims import (  # noqa: F401 (fixtures)
    SAMPLE,
    Desk,
    add_line,
    complete,
    desk,
    fake_intake,
    open_claim,
    review,
    storage,
    submit,
    upload,
)
from tests.services.monitoring.test_projects_payments import committed_call_and_companies


def items(r: Any) -> list[dict[str, Any]]:
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def ids(r: Any) -> set[str]:
    return {x["id"] for x in items(r)}


async def test_claims_are_listed_across_projects_within_reach_and_the_review_queue_empties(
    desk: Desk,  # noqa: F811 (the fixture imported above)
    session: Any,
    token_factory: Any,
    auditor: dict[str, str],
) -> None:
    d = desk
    # a second project of the same partner's company, and a stranger's project
    sister = await make_project(session, call_id=d.project.call_id, company_id=d.project.company_id)
    stranger_project = await make_project(session, call_id=d.project.call_id, partner_id=uuid.uuid4())
    stranger = await token_factory("partner", partner_id=stranger_project.partner_id)
    final_draft = Claim(id=uuid.uuid4(), project_id=sister.id, kind="final", status="draft", version=1, created_by="t")
    theirs = Claim(
        id=uuid.uuid4(), project_id=stranger_project.id, kind="intermediate", status="draft", version=1, created_by="t"
    )
    session.add_all([final_draft, theirs])
    await session.flush()

    claim = await open_claim(d)
    cid = claim["id"]
    line = (await add_line(d, cid)).json()
    assert (await upload(d, cid, line["id"], SAMPLE, "IT01234560157_00147.xml", "text/xml")).status_code == 201
    assert (await submit(d, cid)).status_code == 200

    def listed(headers: dict[str, str], **params: Any) -> Any:
        return d.client.get("/v1/claims", params={k: str(v) for k, v in params.items()}, headers=headers)

    assert ids(await listed(d.partner)) == {cid, str(final_draft.id)}
    assert ids(await listed(d.company)) == {cid, str(final_draft.id)}
    assert ids(await listed(d.partner, project_id=sister.id)) == {str(final_draft.id)}
    assert ids(await listed(d.partner, status="submitted")) == {cid}
    assert ids(await listed(d.partner, kind="final")) == {str(final_draft.id)}
    assert ids(await listed(stranger)) == {str(theirs.id)}
    assert ids(await listed(stranger, project_id=d.project.id)) == set()
    assert (await d.client.get(f"/v1/claims/{cid}", headers=stranger)).status_code == 404
    assert (await listed(d.partner, status="lost")).status_code == 422
    page = (await listed(d.partner, limit=1)).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    rest = (await listed(d.partner, limit=1, cursor=page["next_cursor"])).json()
    assert rest["next_cursor"] is None and {page["items"][0]["id"], rest["items"][0]["id"]} == {
        cid,
        str(final_draft.id),
    }

    queue = "/v1/queues/claims-to-review"
    call = {"call_id": str(d.project.call_id)}
    (queued,) = items(await d.client.get(queue, params=call, headers=d.officer))
    assert (queued["id"], queued["status"], queued["claimed_total"]) == (cid, "submitted", "4000.00")
    assert ids(await d.client.get(queue, params=call, headers=auditor)) == {cid}
    assert (await d.client.get(queue, headers=d.partner)).status_code == 403

    assert (await review(d, cid, line["id"], "recognised")).status_code == 200
    assert ids(await d.client.get(queue, params=call, headers=d.officer)) == {cid}, "reviewed lines, review open"
    r = await complete(d, cid)
    assert r.status_code == 200, r.text
    assert items(await d.client.get(queue, params=call, headers=d.officer)) == [], "reviewed: out of the queue"


async def test_the_payments_queue_shows_orders_to_confirm_then_to_send_and_drops_them_once_paid(
    monitoring_client: Any,
    intake: Any,
    engine: Any,
    session: Any,
    officer: dict[str, str],
    second_officer: dict[str, str],
    token_factory: Any,
) -> None:
    call, (alfa,) = await committed_call_and_companies(engine, "Alfa Export S.r.l.")
    project = await make_project(session, call_id=call.id, company_id=alfa.id, grant="12345.67", iban=VALID_IBAN)
    other = await make_project(session, call_id=call.id, iban=VALID_IBAN)
    await make_payment(session, other, status="paid")  # paid already: not pending
    queue, c = "/v1/queues/payments-to-order", {"call_id": str(call.id)}

    r = await monitoring_client.post(f"/v1/projects/{project.id}/payments", json={"kind": "advance"}, headers=officer)
    assert r.status_code == 201, r.text
    order = r.json()
    (queued,) = items(await monitoring_client.get(queue, params=c, headers=officer))
    # 40 % of 12345.67 = 4938.268, floored to the cent
    assert (queued["id"], queued["amount"], queued["awaiting_confirmation"]) == (order["id"], "4938.26", True)

    confirmed = await monitoring_client.post(
        f"/v1/payments/{order['id']}/confirm", headers={**second_officer, "If-Match": order["etag"]}
    )
    assert confirmed.status_code == 200, confirmed.text
    (queued,) = items(await monitoring_client.get(queue, params=c, headers=officer))
    assert (queued["id"], queued["awaiting_confirmation"]) == (order["id"], False), "ready for the treasury file"
    company = await token_factory("company", company_id=alfa.id)
    assert (await monitoring_client.get(queue, headers=company)).status_code == 403

    paid = await monitoring_client.post(
        f"/v1/payments/{order['id']}/paid", headers={**officer, "If-Match": order["etag"]}
    )
    assert paid.status_code == 200, paid.text
    assert items(await monitoring_client.get(queue, params=c, headers=officer)) == [], "paid: out of the queue"
