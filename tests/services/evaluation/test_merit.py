"""Merit evaluation through HTTP: conflict-of-interest declarations, reviewer assignments, scores against the
call's grid, the two- (or three-) reviewer consensus and the credit-scoring class. The call's rules come from
the real intake service on a loopback port (committed call); evaluation's rows are arranged in the test's
transaction with tests/services/evaluation/builders.py."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.auth import create_client, issue_token
from shared.clients.intake import IntakeClient
from shared.db import make_sessionmaker
from tests.conftest import KEYRING
from tests.factories import make_company, make_partner, open_call
from tests.services.evaluation.builders import evaluation_of, received_application

Http = httpx.AsyncClient
Ids = dict[str, uuid.UUID]
GRID = ("plan_quality", "market_analysis", "expected_impact", "feasibility", "digital_sustainability")


# ---------------------------------------------------------------- fixtures


@pytest_asyncio.fixture(loop_scope="session")
async def seeded(engine: AsyncEngine) -> dict[str, uuid.UUID]:
    """A call and a company committed at intake (what evaluation reads through intake's API)."""
    async with make_sessionmaker(engine)() as s:
        call = await open_call(s)
        partner = await make_partner(s)
        company = await make_company(s)
        other = await make_company(s)
        ids = {"call": call.id, "partner": partner.id, "company": company.id, "other_company": other.id}
        await s.commit()
    return ids


@pytest_asyncio.fixture(loop_scope="session")
async def admissible(session: Any, seeded: dict[str, uuid.UUID], intake: IntakeClient) -> Any:
    app = await received_application(
        session, call_id=seeded["call"], company_id=seeded["company"], partner_id=seeded["partner"]
    )
    await evaluation_of(session, app)
    return app


class Officer:
    def __init__(self, client_id: str, token: str) -> None:
        self.id = client_id
        self.headers = {"Authorization": f"Bearer {token}"}


async def new_officer(session: Any) -> Officer:
    client, _ = await create_client(session, kind="officer", name="test reviewer", secret="s" * 32)
    return Officer(
        client.client_id,
        issue_token(KEYRING, client=client, scopes=list(client.scopes), issuer="regional-desk", ttl=900),
    )


def scores(*points: int) -> dict[str, Any]:
    return {
        "scores": {
            code: {"points": p, "comment": f"Motivazione per {code}."} for code, p in zip(GRID, points, strict=True)
        }
    }


async def assign(client: httpx.AsyncClient, manager: Officer, app_id: Any, reviewer: Officer) -> httpx.Response:
    return await client.post(
        f"/v1/evaluations/{app_id}/assignments", json={"reviewer": reviewer.id}, headers=manager.headers
    )


async def assigned_and_declared(
    client: httpx.AsyncClient, manager: Officer, app_id: Any, reviewer: Officer
) -> dict[str, Any]:
    r = await assign(client, manager, app_id, reviewer)
    assert r.status_code == 201, r.text
    a = r.json()
    r = await client.post(
        f"/v1/assignments/{a['id']}/declaration",
        json={"no_conflict": True, "statement": "Nessun conflitto di interessi."},
        headers={**reviewer.headers, "If-Match": a["etag"]},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


async def review(client: httpx.AsyncClient, reviewer: Officer, assignment: dict[str, Any], *points: int) -> str:
    """Save and submit: returns the final ETag."""
    r = await client.put(
        f"/v1/assignments/{assignment['id']}/review",
        json=scores(*points),
        headers={**reviewer.headers, "If-Match": assignment["etag"]},
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/assignments/{assignment['id']}/review/submit", headers={**reviewer.headers, "If-Match": r.headers["etag"]}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "submitted"
    return str(r.headers["etag"])


async def merit(client: httpx.AsyncClient, who: Officer, app_id: Any) -> dict[str, Any]:
    r = await client.get(f"/v1/evaluations/{app_id}/merit", headers=who.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def outbox(session: Any, app_id: Any) -> list[Any]:
    return list(
        (
            await session.execute(
                text(
                    "SELECT event_type, source, partner_id, company_id, payload FROM desk.outbox WHERE "
                    "aggregate_id = :a "
                    "AND event_type = 'evaluation.merit_completed'"
                ),
                {"a": str(app_id)},
            )
        ).all()
    )


# ---------------------------------------------------------------- the flow


async def test_two_reviewers_agree_and_the_consensus_is_their_mean(
    evaluation_client: Http, admissible: Any, session: Any, seeded: Ids
) -> None:
    manager, ada, bruno = await new_officer(session), await new_officer(session), await new_officer(session)
    a = await assigned_and_declared(evaluation_client, manager, admissible.application_id, ada)
    b = await assigned_and_declared(evaluation_client, manager, admissible.application_id, bruno)
    assert a["status"] == b["status"] == "declared" and a["no_conflict_declared_at"]

    await review(evaluation_client, ada, a, 25, 16, 15, 14, 8)  # 78
    half = await merit(evaluation_client, manager, admissible.application_id)
    assert half["score"] is None and half["merit_verdict"] is None
    assert await outbox(session, admissible.application_id) == []
    await review(evaluation_client, bruno, b, 22, 15, 14, 15, 7)  # 73

    got = await merit(evaluation_client, manager, admissible.application_id)
    assert got["score"] == "75.50" and got["merit_verdict"] == "passed"
    assert got["pass_mark"] == 60 and got["max_total"] == 100
    assert got["consensus"] == {"totals": [78, 73], "divergence": 5, "divergence_threshold": 15, "averaged": ["a", "b"]}
    assert sorted(r["total"] for r in got["reviews"]) == ["73.00", "78.00"]
    row = (
        await session.execute(
            text("SELECT score, merit_verdict, version FROM evaluation.evaluations WHERE application_id = :a"),
            {"a": admissible.application_id},
        )
    ).one()
    assert (str(row.score), row.merit_verdict, row.version) == ("75.50", "passed", 2)

    [event] = await outbox(session, admissible.application_id)
    assert event.source == "evaluation" and event.partner_id == seeded["partner"]
    assert event.company_id == seeded["company"]
    assert event.payload == {
        "application_id": str(admissible.application_id),
        "call_id": str(seeded["call"]),
        "company_id": str(seeded["company"]),
        "score": "75.50",
        "verdict": "passed",
        "pass_mark": 60,
        "reviews": 2,
    }
    actions = (
        (
            await session.execute(
                text("SELECT action FROM desk.audit_log WHERE service = 'evaluation' AND resource_id IN (:a, :x, :y)"),
                {"a": str(admissible.application_id), "x": a["id"], "y": b["id"]},
            )
        )
        .scalars()
        .all()
    )
    assert actions.count("review.submitted") == 2 and actions.count("evaluation.merit_concluded") == 1
    assert actions.count("assignment.created") == 2

    # each reviewer keeps their own scores, with comments
    r = await evaluation_client.get(f"/v1/assignments/{a['id']}", headers=ada.headers)
    assert set(r.json()["scores"]) == set(GRID) and r.json()["total"] == "78.00"
    assert r.json()["scores"]["plan_quality"] == {"points": 25, "comment": "Motivazione per plan_quality."}


async def test_a_divergence_needs_a_third_review_and_the_closest_pair_decides(
    evaluation_client: Http, admissible: Any, session: Any
) -> None:
    manager = await new_officer(session)
    ada, bruno, carla, dario = [await new_officer(session) for _ in range(4)]
    a = await assigned_and_declared(evaluation_client, manager, admissible.application_id, ada)
    b = await assigned_and_declared(evaluation_client, manager, admissible.application_id, bruno)

    r = await assign(evaluation_client, manager, admissible.application_id, carla)
    assert r.status_code == 409 and r.json()["reason"] == "reviewers_complete", r.text

    await review(evaluation_client, ada, a, 26, 16, 16, 14, 8)  # 80
    await review(evaluation_client, bruno, b, 20, 12, 12, 10, 6)  # 60: 20 points apart
    got = await merit(evaluation_client, manager, admissible.application_id)
    assert got["merit_verdict"] == "third_review_needed" and got["score"] is None
    assert got["consensus"] is None and all(r["total"] is None for r in got["reviews"]), (
        "a third reviewer must not see the first two totals"
    )
    assert await outbox(session, admissible.application_id) == []

    c = await assigned_and_declared(evaluation_client, manager, admissible.application_id, carla)
    await review(evaluation_client, carla, c, 18, 11, 11, 10, 5)  # 55: closest to 60

    got = await merit(evaluation_client, manager, admissible.application_id)
    assert got["score"] == "57.50" and got["merit_verdict"] == "failed"
    assert got["consensus"] == {
        "totals": [80, 60, 55],
        "divergence": 20,
        "divergence_threshold": 15,
        "averaged": ["b", "c"],
    }
    [event] = await outbox(session, admissible.application_id)
    assert event.payload["score"] == "57.50" and event.payload["verdict"] == "failed"
    assert event.payload["reviews"] == 3

    r = await assign(evaluation_client, manager, admissible.application_id, dario)
    assert r.status_code == 409 and r.json()["reason"] == "merit_final"


# ---------------------------------------------------------------- conflicts of interest


async def test_a_declared_conflict_refuses_the_assignment(
    evaluation_client: Http, admissible: Any, session: Any, seeded: Ids
) -> None:
    manager, ada = await new_officer(session), await new_officer(session)
    r = await evaluation_client.post(
        "/v1/reviewers/me/conflicts",
        json={"company_id": str(seeded["company"]), "statement": "Mio cognato è socio dell'impresa."},
        headers=ada.headers,
    )
    assert r.status_code == 201, r.text
    assert r.json()["reviewer"] == ada.id and r.json()["conflict"] is True

    r = await assign(evaluation_client, manager, admissible.application_id, ada)
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["type"] == "/problems/conflict-of-interest" and problem["reason"] == "conflict_of_interest"
    assert r.headers["content-type"] == "application/problem+json"
    assert (
        await session.execute(
            text("SELECT count(*) FROM evaluation.review_assignments WHERE application_id = :a"),
            {"a": admissible.application_id},
        )
    ).scalar_one() == 0

    listed = await evaluation_client.get("/v1/reviewers/me/conflicts", headers=ada.headers)
    assert [(d["company_id"], d["conflict"]) for d in listed.json()["items"]] == [(str(seeded["company"]), True)]
    assert (await evaluation_client.get("/v1/reviewers/me/conflicts", headers=manager.headers)).json()["items"] == []

    again = await evaluation_client.post(
        "/v1/reviewers/me/conflicts",
        json={"company_id": str(seeded["company"]), "statement": "Di nuovo."},
        headers=ada.headers,
    )
    assert again.status_code == 409 and again.json()["type"] == "/problems/already-exists"
    unknown = await evaluation_client.post(
        "/v1/reviewers/me/conflicts", json={"company_id": str(uuid.uuid4()), "statement": "Chi?"}, headers=ada.headers
    )
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["path"] == "/company_id"


async def test_a_conflict_declared_later_cancels_the_open_assignment(
    evaluation_client: Http, admissible: Any, session: Any, seeded: Ids
) -> None:
    manager, ada = await new_officer(session), await new_officer(session)
    a = await assigned_and_declared(evaluation_client, manager, admissible.application_id, ada)
    r = await evaluation_client.post(
        "/v1/reviewers/me/conflicts",
        json={"company_id": str(seeded["company"]), "statement": "Ho scoperto ora."},
        headers=ada.headers,
    )
    assert r.status_code == 201 and r.json()["cancelled_assignments"] == [a["id"]]
    got = (await evaluation_client.get(f"/v1/assignments/{a['id']}", headers=ada.headers)).json()
    assert got["status"] == "cancelled"
    r = await evaluation_client.put(
        f"/v1/assignments/{a['id']}/review",
        json=scores(20, 10, 10, 10, 5),
        headers={**ada.headers, "If-Match": got["etag"]},
    )
    assert r.status_code == 409


async def test_declaring_a_conflict_on_the_assignment_cancels_it_and_bars_the_company(
    evaluation_client: Http, admissible: Any, session: Any, seeded: Ids
) -> None:
    manager, ada, bruno = await new_officer(session), await new_officer(session), await new_officer(session)
    a = (await assign(evaluation_client, manager, admissible.application_id, ada)).json()
    r = await evaluation_client.post(
        f"/v1/assignments/{a['id']}/declaration",
        json={"no_conflict": False, "statement": "Sono stato consulente dell'impresa."},
        headers={**ada.headers, "If-Match": a["etag"]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    declared = (await evaluation_client.get("/v1/reviewers/me/conflicts", headers=ada.headers)).json()["items"]
    assert [(d["company_id"], d["application_id"], d["conflict"]) for d in declared] == [
        (str(seeded["company"]), str(admissible.application_id), True)
    ]

    # a cancelled assignment does not count: two more reviewers may be assigned
    assert (await assign(evaluation_client, manager, admissible.application_id, bruno)).status_code == 201
    # and the conflict bars ada from another application of the same company
    other = await received_application(session, call_id=seeded["call"], company_id=seeded["company"])
    await evaluation_of(session, other)
    r = await assign(evaluation_client, manager, other.application_id, ada)
    assert r.status_code == 409 and r.json()["type"] == "/problems/conflict-of-interest"


async def test_reading_before_declaring_is_403_then_the_snapshot(
    evaluation_client: Http, admissible: Any, session: Any
) -> None:
    manager, ada = await new_officer(session), await new_officer(session)
    a = (await assign(evaluation_client, manager, admissible.application_id, ada)).json()
    assert a["status"] == "assigned"
    r = await evaluation_client.get(f"/v1/assignments/{a['id']}/application", headers=ada.headers)
    assert r.status_code == 403, r.text
    assert r.json()["type"] == "/problems/declaration-required"
    assert r.json()["declaration_url"] == f"/v1/assignments/{a['id']}/declaration"
    r = await evaluation_client.put(
        f"/v1/assignments/{a['id']}/review",
        json=scores(20, 10, 10, 10, 5),
        headers={**ada.headers, "If-Match": a["etag"]},
    )
    assert r.status_code == 403 and r.json()["type"] == "/problems/declaration-required"

    r = await evaluation_client.post(
        f"/v1/assignments/{a['id']}/declaration",
        json={"no_conflict": True, "statement": "Nessun conflitto di interessi."},
        headers={**ada.headers, "If-Match": a["etag"]},
    )
    assert r.status_code == 200
    r = await evaluation_client.get(f"/v1/assignments/{a['id']}/application", headers=ada.headers)
    assert r.status_code == 200, r.text
    assert r.json()["snapshot"] == admissible.snapshot
    assert r.json()["protocol_number"] == admissible.protocol_number

    r = await evaluation_client.post(
        f"/v1/assignments/{a['id']}/declaration",
        json={"no_conflict": True, "statement": "Ancora."},
        headers={**ada.headers, "If-Match": '"2"'},
    )
    assert r.status_code == 409 and r.json()["reason"] == "already_declared"


# ---------------------------------------------------------------- assignment refusals


async def test_assignment_needs_an_admissible_application_and_a_new_reviewer(
    evaluation_client: Http, session: Any, seeded: Ids, intake: IntakeClient
) -> None:
    manager, ada = await new_officer(session), await new_officer(session)
    refused = await received_application(session, call_id=seeded["call"], company_id=seeded["company"])
    await evaluation_of(session, refused, stage="not_admissible")
    r = await assign(evaluation_client, manager, refused.application_id, ada)
    assert r.status_code == 409 and r.json()["reason"] == "not_admissible"

    pending = await received_application(session, call_id=seeded["call"], company_id=seeded["company"])
    r = await assign(evaluation_client, manager, pending.application_id, ada)
    assert r.status_code == 409 and r.json()["reason"] == "not_evaluated"

    assert (await assign(evaluation_client, manager, uuid.uuid4(), ada)).status_code == 404

    ok = await received_application(session, call_id=seeded["call"], company_id=seeded["other_company"])
    await evaluation_of(session, ok)
    assert (await assign(evaluation_client, manager, ok.application_id, ada)).status_code == 201
    r = await assign(evaluation_client, manager, ok.application_id, ada)
    assert r.status_code == 409 and r.json()["reason"] == "already_assigned"
    r = await evaluation_client.post(
        f"/v1/evaluations/{ok.application_id}/assignments", json={"reviewer": "officer-nobody"}, headers=manager.headers
    )
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "/reviewer"

    mine = await evaluation_client.get("/v1/assignments", params={"reviewer": "me"}, headers=ada.headers)
    assert [i["application_id"] for i in mine.json()["items"]] == [str(ok.application_id)]
    assert (await evaluation_client.get("/v1/assignments", params={"reviewer": "me"}, headers=manager.headers)).json()[
        "items"
    ] == []


# ---------------------------------------------------------------- bad scores


async def test_scores_outside_the_grid_are_422_with_a_pointer_per_criterion(
    evaluation_client: Http, admissible: Any, session: Any
) -> None:
    manager, ada = await new_officer(session), await new_officer(session)
    a = await assigned_and_declared(evaluation_client, manager, admissible.application_id, ada)
    headers = {**ada.headers, "If-Match": a["etag"]}
    url = f"/v1/assignments/{a['id']}/review"

    body = scores(31, 10, 10, 10, 5)
    r = await evaluation_client.put(url, json=body, headers=headers)
    assert r.status_code == 422, r.text
    assert [(e["code"], e["path"]) for e in r.json()["errors"]] == [
        ("points_out_of_range", "/scores/plan_quality/points")
    ]

    body = scores(20, 10, 10, 10, 5)
    body["scores"]["innovation"] = {"points": 5, "comment": "Non previsto."}
    del body["scores"]["digital_sustainability"]
    r = await evaluation_client.put(url, json=body, headers=headers)
    assert r.status_code == 422
    assert sorted((e["code"], e["path"]) for e in r.json()["errors"]) == [
        ("criterion_missing", "/scores/digital_sustainability/points"),
        ("criterion_unknown", "/scores/innovation/points"),
    ]

    body = scores(20, 10, 10, 10, -1)
    r = await evaluation_client.put(url, json=body, headers=headers)
    assert [(e["code"], e["path"]) for e in r.json()["errors"]] == [
        ("points_out_of_range", "/scores/digital_sustainability/points")
    ]

    body = scores(20, 10, 10, 10, 5)
    body["scores"]["feasibility"]["points"] = 7.5
    r = await evaluation_client.put(url, json=body, headers=headers)
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "/scores/feasibility/points"

    got = (await evaluation_client.get(f"/v1/assignments/{a['id']}", headers=ada.headers)).json()
    assert got["scores"] is None and got["etag"] == a["etag"], "nothing changed"


async def test_a_reviewer_cannot_score_twice(evaluation_client: Http, admissible: Any, session: Any) -> None:
    manager, ada = await new_officer(session), await new_officer(session)
    a = await assigned_and_declared(evaluation_client, manager, admissible.application_id, ada)
    etag = await review(evaluation_client, ada, a, 20, 10, 10, 10, 5)
    r = await evaluation_client.put(
        f"/v1/assignments/{a['id']}/review", json=scores(30, 20, 20, 20, 10), headers={**ada.headers, "If-Match": etag}
    )
    assert r.status_code == 409 and r.json()["reason"] == "review_submitted", r.text
    r = await evaluation_client.post(
        f"/v1/assignments/{a['id']}/review/submit", headers={**ada.headers, "If-Match": etag}
    )
    assert r.status_code == 409
    got = (await evaluation_client.get(f"/v1/assignments/{a['id']}", headers=ada.headers)).json()
    assert got["total"] == "55.00" and got["etag"] == etag


async def test_submitting_without_scores_is_409(evaluation_client: Http, admissible: Any, session: Any) -> None:
    manager, ada = await new_officer(session), await new_officer(session)
    a = await assigned_and_declared(evaluation_client, manager, admissible.application_id, ada)
    r = await evaluation_client.post(
        f"/v1/assignments/{a['id']}/review/submit", headers={**ada.headers, "If-Match": a["etag"]}
    )
    assert r.status_code == 409 and r.json()["reason"] == "review_empty"


# ---------------------------------------------------------------- who may do what


async def test_a_partner_token_is_refused_with_403(
    evaluation_client: Http, admissible: Any, session: Any, token_factory: Any, seeded: Ids
) -> None:
    manager, ada = await new_officer(session), await new_officer(session)
    a = await assigned_and_declared(evaluation_client, manager, admissible.application_id, ada)
    partner = await token_factory("partner", partner_id=seeded["partner"])
    app_id = admissible.application_id
    calls = [
        evaluation_client.post(f"/v1/evaluations/{app_id}/assignments", json={"reviewer": ada.id}, headers=partner),
        evaluation_client.put(
            f"/v1/assignments/{a['id']}/review",
            json=scores(20, 10, 10, 10, 5),
            headers={**partner, "If-Match": a["etag"]},
        ),
        evaluation_client.get(f"/v1/evaluations/{app_id}/merit", headers=partner),
        evaluation_client.put(
            f"/v1/evaluations/{app_id}/credit-class", json={"class_code": "1"}, headers={**partner, "If-Match": '"1"'}
        ),
        evaluation_client.post(
            "/v1/reviewers/me/conflicts",
            json={"company_id": str(seeded["company"]), "statement": "Io?"},
            headers=partner,
        ),
        evaluation_client.get("/v1/assignments", params={"reviewer": "me"}, headers=partner),
    ]
    for call in calls:
        r = await call
        assert r.status_code == 403, (r.request.url, r.text)
        assert r.json()["type"] == "/problems/forbidden"
    got = (await evaluation_client.get(f"/v1/assignments/{a['id']}", headers=ada.headers)).json()
    assert got["scores"] is None


async def test_another_officer_cannot_see_or_score_an_assignment(
    evaluation_client: Http, admissible: Any, session: Any
) -> None:
    manager, ada, eve = await new_officer(session), await new_officer(session), await new_officer(session)
    a = await assigned_and_declared(evaluation_client, manager, admissible.application_id, ada)
    for r in [
        await evaluation_client.put(
            f"/v1/assignments/{a['id']}/review",
            json=scores(20, 10, 10, 10, 5),
            headers={**eve.headers, "If-Match": a["etag"]},
        ),
        await evaluation_client.post(
            f"/v1/assignments/{a['id']}/review/submit", headers={**manager.headers, "If-Match": a["etag"]}
        ),
        await evaluation_client.get(f"/v1/assignments/{a['id']}", headers=eve.headers),
        await evaluation_client.get(f"/v1/assignments/{a['id']}/application", headers=manager.headers),
    ]:
        assert r.status_code == 404, r.text
        assert r.json()["type"] == "/problems/not-found"
    got = (await evaluation_client.get(f"/v1/assignments/{a['id']}", headers=ada.headers)).json()
    assert got["scores"] is None and got["etag"] == a["etag"]


async def test_a_stale_if_match_is_412_and_a_missing_one_428(
    evaluation_client: Http, admissible: Any, session: Any
) -> None:
    manager, ada = await new_officer(session), await new_officer(session)
    a = await assigned_and_declared(evaluation_client, manager, admissible.application_id, ada)
    url = f"/v1/assignments/{a['id']}/review"
    r = await evaluation_client.put(url, json=scores(20, 10, 10, 10, 5), headers={**ada.headers, "If-Match": a["etag"]})
    assert r.status_code == 200
    fresh = r.headers["etag"]

    r = await evaluation_client.put(url, json=scores(25, 10, 10, 10, 5), headers={**ada.headers, "If-Match": a["etag"]})
    assert r.status_code == 412 and r.json()["current_etag"] == fresh
    r = await evaluation_client.post(f"{url}/submit", headers={**ada.headers, "If-Match": a["etag"]})
    assert r.status_code == 412
    r = await evaluation_client.put(url, json=scores(25, 10, 10, 10, 5), headers=ada.headers)
    assert r.status_code == 428
    got = (await evaluation_client.get(f"/v1/assignments/{a['id']}", headers=ada.headers)).json()
    assert got["total"] == "55.00" and got["status"] == "declared" and got["etag"] == fresh


# ---------------------------------------------------------------- credit-scoring class


async def test_the_credit_class_is_one_of_the_call_and_class_5_excludes_the_loan(
    evaluation_client: Http, admissible: Any, session: Any
) -> None:
    manager = await new_officer(session)
    url = f"/v1/evaluations/{admissible.application_id}/credit-class"
    etag = (await merit(evaluation_client, manager, admissible.application_id))["etag"]

    r = await evaluation_client.put(url, json={"class_code": "9"}, headers={**manager.headers, "If-Match": etag})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["path"] == "/class_code" and r.json()["errors"][0]["allowed"] == list("12345")

    r = await evaluation_client.put(url, json={"class_code": "4"}, headers={**manager.headers, "If-Match": etag})
    assert r.status_code == 200, r.text
    assert r.json()["loan_cap_share"] == "0.50" and r.json()["loan_excluded"] is False
    r = await evaluation_client.put(url, json={"class_code": "5"}, headers={**manager.headers, "If-Match": etag})
    assert r.status_code == 412

    r = await evaluation_client.put(
        url, json={"class_code": "5"}, headers={**manager.headers, "If-Match": r.json()["current_etag"]}
    )
    assert r.status_code == 200
    assert r.json()["loan_excluded"] is True and r.json()["loan_cap_share"] == "0.00" and r.json()["note"]
    got = await merit(evaluation_client, manager, admissible.application_id)
    assert got["credit_class"] == "5" and got["loan_excluded"] is True and got["etag"] == r.headers["etag"]
    audit = (
        await session.execute(
            text(
                "SELECT before, after FROM desk.audit_log WHERE service = 'evaluation' AND resource_id = :a "
                "AND action = 'evaluation.credit_class_set' ORDER BY id"
            ),
            {"a": str(admissible.application_id)},
        )
    ).all()
    assert [(x.before["credit_class"], x.after["credit_class"]) for x in audit] == [(None, "4"), ("4", "5")]
