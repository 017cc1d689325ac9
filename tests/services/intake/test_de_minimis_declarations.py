"""The applicant's de minimis self-declaration, through HTTP: stored with the application, validated (dates in the
current and the two previous fiscal years, amounts as decimal strings, a regulation of the list, an enterprise of
the single undertaking), and counted by the pre-check: headroom shown, the estimated aid cut to it with a warning,
or blocked when nothing is left.

Figures: the complete draft's estimate is grant 24,396.00 + loan 79,287.00 (test_funding_computation)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import make_token
from tests.factories import declare_stamp_duty, delegate, make_company, make_partner, open_call, vat_number
from tests.services.intake.test_applications import World, create

ROME = ZoneInfo("Europe/Rome")


def today() -> date:
    return datetime.now(ROME).date()


def declared(vat: str, amount: str, granted_on: date | None = None, **kw: Any) -> dict[str, Any]:
    return {
        "vat_number": vat,
        "granting_authority": "Camera di commercio di Milano",
        "granted_on": (granted_on or today() - timedelta(days=10)).isoformat(),
        "amount": amount,
        "regulation": "Reg. (UE) 2023/2831",
        **kw,
    }


@pytest.fixture
async def world(session) -> World:
    call = await open_call(session)
    partner = await make_partner(session)
    linked = vat_number()
    company = await make_company(
        session,
        related_enterprises=[
            {
                "vat_number": linked,
                "name": "Controllata S.r.l.",
                "relation": "linked",
                "share": "0.60",
                "headcount_awu": "2",
                "turnover": "100000.00",
                "balance_sheet_total": "100000.00",
            }
        ],
    )
    await delegate(session, partner, company)
    headers = await make_token(session, "partner", partner_id=partner.id)
    w = World(call, partner, company, headers)
    w.linked = linked  # type: ignore[attr-defined]
    return w


async def check(client: Any, w: World, app: dict[str, Any]) -> dict[str, Any]:
    r = await client.post(f"/v1/applications/{app['id']}/check", headers={**w.headers, "Accept-Language": "en"})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_declared_aid_leaves_headroom_and_the_estimate_fits(client, world):
    app = await create(
        client,
        world,
        de_minimis_declarations=[
            declared(world.company.vat_number, "60000.00"),
            declared(world.linked, "40000.00", reference="1234567"),
        ],
    )
    assert [d["amount"] for d in app["de_minimis_declarations"]] == ["60000.00", "40000.00"]
    assert app["de_minimis_declarations"][1]["reference"] == "1234567"
    got = await check(client, world, app)
    dm = got["de_minimis"]
    # 300,000.00 - (60,000.00 + 40,000.00) = 200,000.00: the estimate (grant 24,396.00) fits
    assert (dm["declared_total"], dm["headroom"], dm["reduced"], dm["refused"]) == (
        "100000.00",
        "200000.00",
        False,
        False,
    )
    assert (got["estimate"]["grant"], got["estimate"]["loan"]) == ("24396.00", "79287.00")
    assert got["submittable"] is True


async def test_aid_over_the_headroom_is_cut_with_a_warning(client, world):
    app = await create(client, world, de_minimis_declarations=[declared(world.company.vat_number, "290000.00")])
    got = await check(client, world, app)
    # headroom 300,000.00 - 290,000.00 = 10,000.00 < the grant 24,396.00: grant cut to 10,000.00, no loan
    dm = got["de_minimis"]
    assert (dm["headroom"], dm["allowed_equivalent"], dm["reduced"], dm["refused"]) == (
        "10000.00",
        "10000.00",
        True,
        False,
    )
    assert (got["estimate"]["grant"], got["estimate"]["loan"], got["estimate"]["total_aid"]) == (
        "10000.00",
        "0.00",
        "10000.00",
    )
    (warning,) = [p for p in got["problems"] if p["code"] == "de_minimis_aid_reduced"]
    assert warning["blocking"] is False and warning["path"] == "/de_minimis_declarations"
    assert "EUR 10,000.00" in warning["message_en"] and "10.000,00 €" in warning["message_it"]
    assert got["submittable"] is True


async def test_no_headroom_blocks(client, world):
    app = await create(
        client,
        world,
        de_minimis_declarations=[declared(world.company.vat_number, "150000.00"), declared(world.linked, "150000.00")],
    )
    got = await check(client, world, app)
    assert got["de_minimis"]["refused"] is True and got["de_minimis"]["headroom"] == "0.00"
    (blocking,) = [p for p in got["problems"] if p["code"] == "de_minimis_ceiling_reached"]
    assert blocking["blocking"] is True and got["submittable"] is False
    await declare_stamp_duty(client, app["id"], world.headers)
    r = await client.post(f"/v1/applications/{app['id']}/submit", headers=world.headers)
    assert r.status_code == 422, r.text


async def test_bad_declarations_are_refused_and_change_nothing(client, world):
    app = await create(client, world)
    first = date(today().year - 2, 1, 1)
    cases = [
        (
            declared(world.company.vat_number, "1000.00", first - timedelta(days=1)),
            "de_minimis_date_out_of_period",
            "/de_minimis_declarations/0/granted_on",
        ),
        (
            declared(world.company.vat_number, "1000.00", today() + timedelta(days=1)),
            "de_minimis_date_out_of_period",
            "/de_minimis_declarations/0/granted_on",
        ),
        (
            declared(vat_number(), "1000.00"),
            "de_minimis_not_single_undertaking",
            "/de_minimis_declarations/0/vat_number",
        ),
    ]
    body = {k: app[k] for k in ("title", "action_plan", "flat_rates", "network")}
    body["expense_lines"] = [
        {k: ln[k] for k in ("category", "description", "amount", "target_market", "supplier")}
        for ln in app["expense_lines"]
    ]
    for declaration, code, path in cases:
        r = await client.put(
            f"/v1/applications/{app['id']}",
            json={**body, "de_minimis_declarations": [declaration]},
            headers={**world.headers, "If-Match": app["etag"]},
        )
        assert r.status_code == 422, r.text
        assert (r.json()["errors"][0]["code"], r.json()["errors"][0]["path"]) == (code, path)
    for bad in ({"amount": 1000.5}, {"regulation": "Reg. (UE) 651/2014"}):
        r = await client.put(
            f"/v1/applications/{app['id']}",
            headers={**world.headers, "If-Match": app["etag"]},
            json={**body, "de_minimis_declarations": [{**declared(world.company.vat_number, "1000.00"), **bad}]},
        )
        assert r.status_code == 422, (bad, r.text)
    # the first day of the three fiscal years is accepted; nothing of the refused bodies was kept
    r = await client.get(f"/v1/applications/{app['id']}", headers=world.headers)
    assert r.json()["de_minimis_declarations"] == [] and r.headers["etag"] == app["etag"]
    r = await client.put(
        f"/v1/applications/{app['id']}",
        headers={**world.headers, "If-Match": app["etag"]},
        json={**body, "de_minimis_declarations": [declared(world.linked, "1000.00", first)]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["de_minimis_declarations"][0]["granted_on"] == first.isoformat()
