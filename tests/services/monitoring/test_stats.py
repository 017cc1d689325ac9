"""Statistics through HTTP: exact counts and sums per dimension (continent included) on a small dataset, the
call's budget against what is committed, the public view's suppression, the SVG charts, and who may read what."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pycountry
import pytest_asyncio

from shared.domain.continents import COUNTRY_CONTINENT, continent_of, continents_of
from tests.services.monitoring.builders import FakeIntake, make_fact

SVG = "{http://www.w3.org/2000/svg}"


@pytest_asyncio.fixture(loop_scope="session")
async def fake_intake(monitoring_app: Any) -> AsyncIterator[FakeIntake]:
    fake = FakeIntake()
    monitoring_app.state.intake_client = fake
    yield fake
    monitoring_app.state.intake_client = None


def at(hh: int, mm: int, day: int = 3) -> datetime:
    return datetime(2025, 6, day, hh, mm, tzinfo=UTC)


async def small_dataset(session: Any, fake: FakeIntake) -> uuid.UUID:
    """Five applications: three funded (one revoked), one admitted only, one not admitted."""
    call_id = fake.add_call(budget_total="1000000.00", opens_at=at(8, 0), closes_at=at(12, 0))
    await make_fact(
        session,
        call_id=call_id,
        province="MI",
        ateco_section="C",
        size_class="small",
        markets=["JP", "VN"],
        submitted_at=at(8, 10),
        admitted=True,
        funded=True,
        committed="85000.00",
        paid="20000.00",
        baseline="20.00",
        latest="26.50",
    )
    await make_fact(
        session,
        call_id=call_id,
        province="MI",
        ateco_section="C",
        size_class="micro",
        markets=["BR"],
        submitted_at=at(8, 40),
        admitted=True,
        funded=True,
        committed="50000.50",
        baseline="10.00",
        latest="12.00",
    )
    await make_fact(
        session,
        call_id=call_id,
        province="BG",
        ateco_section="G",
        size_class="small",
        markets=["CA", "US"],
        submitted_at=at(9, 5),
        admitted=True,
    )
    await make_fact(
        session,
        call_id=call_id,
        province="BS",
        ateco_section="C",
        size_class="medium",
        markets=["VN"],
        submitted_at=at(9, 30),
    )
    # 22:30 UTC is 00:30 of the next day in Rome
    await make_fact(
        session,
        call_id=call_id,
        province="MI",
        ateco_section=None,
        size_class="small",
        markets=["DE"],
        submitted_at=at(22, 30),
        admitted=True,
        funded=True,
        committed="0.00",
        paid="10000.00",
        revoked=True,
    )
    return call_id


def figures(g: dict[str, Any]) -> tuple[Any, ...]:
    return (g["applications"], g["admitted"], g["funded"], g["committed"], g["paid"], g["revoked"])


def groups(body: dict[str, Any]) -> dict[Any, tuple[Any, ...]]:
    return {g["key"]: figures(g) for g in body["groups"]}


async def test_totals_budget_and_export_growth(monitoring_client, session, fake_intake, officer):
    call_id = await small_dataset(session, fake_intake)
    r = await monitoring_client.get("/v1/stats", params={"call_id": str(call_id)}, headers=officer)
    assert r.status_code == 200, r.text
    body = r.json()
    assert figures(body["totals"]) == (5, 4, 3, "135000.50", "30000.00", 1)
    # (6.50 + 2.00) / 2 percentage points over the two funded beneficiaries that reported their share
    assert body["totals"]["export_growth_beneficiaries"] == 2 and body["totals"]["export_growth_points"] == "4.25"
    assert body["call"]["budget"] == "1000000.00" and body["call"]["committed"] == "135000.50"
    assert body["call"]["available"] == "864999.50" and body["call"]["committed_percent"] == "13.50"
    assert body["groups"] == [] and body["group_by"] is None
    assert body["call"]["code"] == fake_intake.calls[call_id].code and body["call"]["title"] == "Verso Nuovi Mercati"


async def test_groups_per_dimension_are_exact(monitoring_client, session, fake_intake, auditor):
    call_id = await small_dataset(session, fake_intake)

    async def by(dim: str) -> dict[str, Any]:
        r = await monitoring_client.get("/v1/stats", params={"call_id": str(call_id), "group_by": dim}, headers=auditor)
        assert r.status_code == 200, r.text
        assert figures(r.json()["totals"]) == (5, 4, 3, "135000.50", "30000.00", 1)
        return r.json()

    province = await by("province")
    assert groups(province) == {
        "MI": (3, 3, 3, "135000.50", "30000.00", 1),
        "BG": (1, 1, 0, "0.00", "0.00", 0),
        "BS": (1, 0, 0, "0.00", "0.00", 0),
    }
    assert {g["key"]: g["label"] for g in province["groups"]} == {"MI": "Milano", "BG": "Bergamo", "BS": "Brescia"}
    mi = next(g for g in province["groups"] if g["key"] == "MI")
    assert mi["export_growth_points"] == "4.25" and mi["export_growth_beneficiaries"] == 2

    assert groups(await by("ateco_section")) == {
        "C": (3, 2, 2, "135000.50", "20000.00", 0),
        "G": (1, 1, 0, "0.00", "0.00", 0),
        None: (1, 1, 1, "0.00", "10000.00", 1),
    }
    assert groups(await by("size_class")) == {
        "small": (3, 3, 2, "85000.00", "30000.00", 1),
        "micro": (1, 1, 1, "50000.50", "0.00", 0),
        "medium": (1, 0, 0, "0.00", "0.00", 0),
    }
    market = await by("market")
    assert groups(market) == {
        "VN": (2, 1, 1, "85000.00", "20000.00", 0),
        "JP": (1, 1, 1, "85000.00", "20000.00", 0),
        "BR": (1, 1, 1, "50000.50", "0.00", 0),
        "CA": (1, 1, 0, "0.00", "0.00", 0),
        "US": (1, 1, 0, "0.00", "0.00", 0),
        "DE": (1, 1, 1, "0.00", "10000.00", 1),
    }
    assert market["groups"][0]["key"] == "VN"  # most applications first
    assert {g["key"]: g["label"] for g in market["groups"]}["VN"] == pycountry.countries.get(alpha_2="VN").name
    # Japan and Vietnam are one application for Asia, not two
    continent = await by("continent")
    assert groups(continent) == {
        "AS": (2, 1, 1, "85000.00", "20000.00", 0),
        "SA": (1, 1, 1, "50000.50", "0.00", 0),
        "NA": (1, 1, 0, "0.00", "0.00", 0),
        "EU": (1, 1, 1, "0.00", "10000.00", 1),
    }
    assert {g["key"]: g["label"] for g in continent["groups"]}["SA"] == "South America"
    # hours and days in Europe/Rome (UTC+2 in June)
    assert groups(await by("hour")) == {
        "2025-06-03T10:00:00+02:00": (2, 2, 2, "135000.50", "20000.00", 0),
        "2025-06-03T11:00:00+02:00": (2, 1, 0, "0.00", "0.00", 0),
        "2025-06-04T00:00:00+02:00": (1, 1, 1, "0.00", "10000.00", 1),
    }
    assert groups(await by("day")) == {
        "2025-06-03": (4, 3, 2, "135000.50", "20000.00", 0),
        "2025-06-04": (1, 1, 1, "0.00", "10000.00", 1),
    }


async def test_who_may_read_the_statistics(monitoring_client, session, fake_intake, token_factory):
    call_id = await small_dataset(session, fake_intake)
    params = {"call_id": str(call_id), "group_by": "province"}
    partner = await token_factory("partner", partner_id=uuid.uuid4())
    r = await monitoring_client.get("/v1/stats", params=params, headers=partner)
    assert r.status_code == 403
    company = await token_factory("company", company_id=uuid.uuid4())
    assert (await monitoring_client.get("/v1/stats", params=params, headers=company)).status_code == 403
    assert (await monitoring_client.get("/v1/stats", params=params)).status_code == 401
    service = await token_factory("service")
    assert (await monitoring_client.get("/v1/stats", params=params, headers=service)).status_code == 200
    r = await monitoring_client.get("/v1/stats", params={"call_id": str(uuid.uuid4())}, headers=service)
    assert r.status_code == 404
    r = await monitoring_client.get("/v1/stats", params={**params, "group_by": "planet"}, headers=service)
    assert r.status_code == 422


async def public_dataset(session: Any, fake: FakeIntake) -> uuid.UUID:
    """MI 4 applications, BG 3, CO 2, BS 1."""
    call_id = fake.add_call(budget_total="500000.00", opens_at=at(8, 0), closes_at=at(10, 0))
    rows = [
        ("MI", ["VN"], True, "10000.00", "5.00"),
        ("MI", ["VN"], True, "20000.00", "1.00"),
        ("MI", ["VN", "US"], True, "30000.00", "3.00"),
        ("MI", ["US"], False, "0.00", None),
        ("BG", ["VN"], True, "5000.00", None),
        ("BG", ["US"], False, "0.00", None),
        ("BG", ["BR"], False, "0.00", None),
        ("CO", ["BR"], False, "0.00", None),
        ("CO", ["CN"], True, "7000.00", "2.00"),
        ("BS", ["IN"], True, "9000.00", None),
    ]
    for i, (province, markets, funded, committed, growth) in enumerate(rows):
        await make_fact(
            session,
            call_id=call_id,
            province=province,
            markets=markets,
            funded=funded,
            admitted=funded,
            committed=committed,
            submitted_at=at(8, 5 * i),
            baseline="10.00" if growth else None,
            latest=str(10 + float(growth)) if growth else None,
        )
    return call_id


async def test_public_stats_suppress_small_groups(monitoring_client, session, fake_intake):
    call_id = await public_dataset(session, fake_intake)
    r = await monitoring_client.get("/v1/public/stats", params={"call_id": str(call_id), "group_by": "province"})
    assert r.status_code == 200, r.text
    body = r.json()
    # BS (1) and CO (2) hidden: together 3, so they cannot be told apart by subtraction
    assert [g["key"] for g in body["groups"]] == ["BG", "MI"]
    assert body["suppressed_groups"] == 2 and body["min_group_size"] == 3
    assert figures(body["totals"]) == (10, 6, 6, "81000.00", "0.00", 0)
    mi = next(g for g in body["groups"] if g["key"] == "MI")
    assert figures(mi) == (4, 3, 3, "60000.00", "0.00", 0) and mi["export_growth_points"] == "3.00"
    bg = next(g for g in body["groups"] if g["key"] == "BG")
    assert bg["export_growth_beneficiaries"] == 0 and bg["export_growth_points"] is None
    assert "company_id" not in r.text and "application_id" not in r.text

    # by market groups overlap: only those under three applications are hidden (BR 2, CN 1, IN 1)
    r = await monitoring_client.get("/v1/public/stats", params={"call_id": str(call_id), "group_by": "market"})
    assert {g["key"]: g["applications"] for g in r.json()["groups"]} == {"VN": 4, "US": 3}
    assert r.json()["suppressed_groups"] == 3


async def test_public_stats_hide_a_lone_small_group_with_the_next_smallest(monitoring_client, session, fake_intake):
    call_id = fake_intake.add_call()
    for province, n in (("MI", 4), ("BG", 3), ("LC", 1)):
        for _ in range(n):
            await make_fact(
                session,
                call_id=call_id,
                province=province,
                funded=True,
                committed="100.00",
                baseline="10.00",
                latest="11.00",
            )
    r = await monitoring_client.get("/v1/public/stats", params={"call_id": str(call_id), "group_by": "province"})
    body = r.json()
    # LC alone would be totals - MI - BG: BG is hidden with it
    assert [g["key"] for g in body["groups"]] == ["MI"] and body["suppressed_groups"] == 2
    assert body["totals"]["applications"] == 8 and body["totals"]["export_growth_points"] == "1.00"


def bars(svg: bytes) -> dict[str, dict[str, str]]:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    out = {}
    for g in root.iter(f"{SVG}g"):
        if g.get("class") == "bar":
            texts = {t.get("class"): t.text for t in g.iter(f"{SVG}text")}
            out[g.attrib["data-label"]] = {
                "value": g.get("data-value"),
                "suppressed": g.get("data-suppressed"),
                "label": texts["label"],
                "text": texts.get("value") or texts.get("value muted"),
                "rect": g.find(f"{SVG}rect") is not None,
            }
    return out


async def test_charts_are_valid_svg_with_their_bars(monitoring_client, session, fake_intake):
    call_id = await public_dataset(session, fake_intake)
    detail = fake_intake.calls[call_id]
    fake_intake.calls[call_id] = detail.model_copy(update={"title": 'Verso <Nuovi> & "Mercati"'})
    params = {"call_id": str(call_id)}

    r = await monitoring_client.get("/v1/public/stats/charts/funds-by-province.svg", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("image/svg+xml")
    found = bars(r.content)
    assert len(found) == 12  # every province of Lombardy, with or without applications
    assert found["Milano (MI)"] == {
        "value": "60000.00",
        "suppressed": None,
        "label": "Milano (MI)",
        "text": "60.000,00 €",
        "rect": True,
    }
    assert found["Bergamo (BG)"]["value"] == "5000.00"
    assert found["Brescia (BS)"]["suppressed"] == "true" and found["Brescia (BS)"]["rect"] is False
    assert found["Como (CO)"]["suppressed"] == "true" and found["Como (CO)"]["value"] is None
    assert found["Sondrio (SO)"]["value"] == "0.00"
    title = ET.fromstring(r.content).find(f"{SVG}title")
    assert title is not None and title.text is not None and 'Verso <Nuovi> & "Mercati"' in title.text
    assert b"&lt;Nuovi&gt; &amp;" in r.content

    r = await monitoring_client.get("/v1/public/stats/charts/markets-targeted.svg", params=params)
    found = bars(r.content)
    assert {k: v["value"] for k, v in found.items()} == {
        f"{pycountry.countries.get(alpha_2='VN').name} (VN)": "4",
        "United States (US)": "3",
    }

    r = await monitoring_client.get("/v1/public/stats/charts/applications-per-hour.svg", params=params)
    root = ET.fromstring(r.content)
    line = next(e for e in root.iter(f"{SVG}polyline"))
    # the window 10:00-12:00 Rome hour by hour (10:00, 11:00, 12:00); all ten arrived in the first hour
    assert line.get("data-points") == "3" and line.get("data-total") == "10"
    ymax = next(e for e in root.iter(f"{SVG}text") if e.get("class") == "tick y-max")
    assert ymax.get("data-value") == "10"

    etag = r.headers["etag"]
    again = await monitoring_client.get(
        "/v1/public/stats/charts/applications-per-hour.svg", params=params, headers={"If-None-Match": etag}
    )
    assert again.status_code == 304 and again.content == b""
    assert (await monitoring_client.get("/v1/public/stats/charts/pie.svg", params=params)).status_code == 404


def test_every_country_has_one_continent():
    assert {c.alpha_2 for c in pycountry.countries} <= set(COUNTRY_CONTINENT)
    assert continent_of("it") == "EU" and continent_of("RU") == "EU" and continent_of("TR") == "AS"
    assert continent_of("MX") == "NA" and continent_of("AU") == "OC" and continent_of("ZZ") is None
    assert continents_of(["VN", "JP", "XX"]) == frozenset({"AS"})


def test_cache_freshness_rule():
    from services.monitoring.stats.cache import Entry, is_fresh

    entry = Entry(at=100.0, changes=5, value="view")
    rule = {"max_age": 60.0, "min_fresh": 2.0}
    assert is_fresh(entry, now=101.0, changes=9, **rule)  # young: served whatever was written since
    assert not is_fresh(entry, now=103.0, changes=9, **rule)  # facts changed and older than min_fresh
    assert is_fresh(entry, now=159.0, changes=5, **rule)  # nothing written since
    assert not is_fresh(entry, now=160.0, changes=5, **rule)  # too old in any case
    assert not is_fresh(entry, now=103.0, changes=None, **rule)  # no statistics: only min_fresh holds


async def test_cache_computes_a_view_once_until_the_facts_change():
    import asyncio

    from services.monitoring.stats.cache import StatsCache

    now = [0.0]
    cache = StatsCache(max_age=60.0, min_fresh=2.0, clock=lambda: now[0])
    computed = []

    async def compute() -> str:
        computed.append(1)
        await asyncio.sleep(0)
        return f"view {len(computed)}"

    # a burst of concurrent readers: one computation
    views = await asyncio.gather(*(cache.get(("call", "province"), 7, compute) for _ in range(5)))
    assert views == ["view 1"] * 5 and len(computed) == 1
    now[0] = 30.0
    assert await cache.get(("call", "province"), 7, compute) == "view 1"
    assert await cache.get(("call", "province"), 8, compute) == "view 2"  # a write was seen
    assert await StatsCache(max_age=0, min_fresh=0).get("k", 1, compute) == "view 3"  # cache off


async def test_an_amended_budget_reaches_the_statistics_on_call_amended(
    monitoring_client, session, fake_intake, officer
):
    """The statistics keep no budget of their own: they read the call's version in force, and `call.amended`
    makes them read the new one at once (not after the cache's few minutes)."""
    from tests.services.monitoring.builders import deliver, envelope

    call_id = await small_dataset(session, fake_intake)
    before = (await monitoring_client.get("/v1/stats", params={"call_id": str(call_id)}, headers=officer)).json()
    assert before["call"]["budget"] == "1000000.00"
    amended = fake_intake.calls[call_id]
    from decimal import Decimal

    fake_intake.calls[call_id] = amended.model_copy(
        update={"current_version": 2, "budget_total": Decimal("1500000.00")}
    )
    stale = (await monitoring_client.get("/v1/stats", params={"call_id": str(call_id)}, headers=officer)).json()
    assert stale["call"]["budget"] == "1000000.00", "the version in force is cached until told otherwise"

    r = await deliver(
        monitoring_client,
        envelope(
            "call.amended",
            {
                "call_id": str(call_id),
                "code": amended.code,
                "version": 2,
                "previous_version": 1,
                "opened": True,
                "changed_fields": ["budget_total"],
                "budget_total": "1500000.00",
                "previous_budget_total": "1000000.00",
                "closes_at": "2025-06-03T12:00:00Z",
                "previous_closes_at": "2025-06-03T12:00:00Z",
                "decree": {"number": "Decreto n. 9012", "date": "2025-07-15"},
                "reason": "Rifinanziamento",
                "amended_at": "2025-07-16T10:00:00Z",
            },
            source="intake",
        ),
    )
    assert r.status_code == 200 and r.json()["status"] == "processed", r.text
    after = (await monitoring_client.get("/v1/stats", params={"call_id": str(call_id)}, headers=officer)).json()
    # 1,500,000.00 - 135,000.50 committed = 1,364,999.50; 135,000.50 / 1,500,000 = 9.00 %
    assert after["call"]["budget"] == "1500000.00" and after["call"]["available"] == "1364999.50"
    assert after["call"]["committed_percent"] == "9.00"
