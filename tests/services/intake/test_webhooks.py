"""Webhook subscriptions through HTTP: lifecycle, ownership, URL and event-type checks, secret rotation,
ping, the delivery log and replays."""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from shared.events.signing import new_webhook_secret, sign_headers
from shared.events.worker import publish_pending
from shared.models import Delivery, DeliveryAttempt, OutboxEvent, Subscription
from tests.conftest import make_token
from tests.factories import make_company, make_partner

HOOK = "http://127.0.0.1:9/desk-events"


@dataclass
class Owner:
    partner: Any
    headers: dict[str, str]


@pytest.fixture
async def owner(session) -> Owner:
    partner = await make_partner(session)
    return Owner(partner, await make_token(session, "partner", partner_id=partner.id))


@pytest.fixture
async def stranger(session) -> Owner:
    partner = await make_partner(session, name="Altra Associazione")
    return Owner(partner, await make_token(session, "partner", partner_id=partner.id))


async def subscribe(client, headers: dict[str, str], **kw: Any) -> dict[str, Any]:
    body = {"url": HOOK, "event_types": ["application.submitted"], "description": "CRM", **kw}
    r = await client.post("/v1/webhooks", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def _url_error(r) -> dict[str, Any]:
    assert r.status_code == 422, r.text
    (err,) = r.json()["errors"]
    assert err["code"] == "webhook_url_not_allowed" and err["path"] == "/url"
    return err


# ---------------------------------------------------------------- lifecycle and ownership


async def test_create_read_list_delete_and_secret_only_on_creation(client, owner, session):
    r = await client.post(
        "/v1/webhooks",
        json={"url": HOOK, "event_types": ["application.submitted", "application.submitted"]},
        headers=owner.headers,
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["secret"].startswith("whsec_") and r.headers["etag"] == '"1"'
    assert r.headers["location"] == f"/v1/webhooks/{created['id']}" and r.headers["cache-control"] == "no-store"
    assert created["owner_kind"] == "partner" and created["partner_id"] == str(owner.partner.id)
    assert created["event_types"] == ["application.submitted"]
    stored = await session.get(Subscription, uuid.UUID(created["id"]))
    assert stored is not None and stored.secret == created["secret"]

    r = await client.get(f"/v1/webhooks/{created['id']}", headers=owner.headers)
    assert r.status_code == 200 and r.headers["etag"] == '"1"'
    assert "secret" not in r.json() and r.json()["url"] == HOOK
    r = await client.get("/v1/webhooks", headers=owner.headers)
    assert [w["id"] for w in r.json()["items"]] == [created["id"]]
    assert all("secret" not in w for w in r.json()["items"])

    path = f"/v1/webhooks/{created['id']}"
    assert (await client.delete(path, headers=owner.headers)).status_code == 428
    assert (await client.delete(path, headers={**owner.headers, "If-Match": '"7"'})).status_code == 412
    r = await client.delete(path, headers={**owner.headers, "If-Match": '"1"'})
    assert r.status_code == 204
    assert (await client.get(path, headers=owner.headers)).status_code == 404
    assert (await client.get("/v1/webhooks", headers=owner.headers)).json()["items"] == []
    await session.refresh(stored)
    assert stored.deleted_at is not None and stored.active is False

    audit = (
        await session.execute(
            text(
                "SELECT action, before::text AS b, after::text AS a FROM desk.audit_log WHERE resource_id = "
                ":id ORDER BY id"
            ),
            {"id": created["id"]},
        )
    ).all()
    assert [a.action for a in audit] == ["webhook.created", "webhook.deleted"]
    assert not any("whsec_" in (a.b or "") + (a.a or "") for a in audit), "secrets must never reach the audit"


async def test_creation_is_idempotent(client, owner, session):
    h = {**owner.headers, "Idempotency-Key": f"wh-{uuid.uuid4()}"}
    body = {"url": HOOK, "event_types": ["*"]}
    first = await client.post("/v1/webhooks", json=body, headers=h)
    again = await client.post("/v1/webhooks", json=body, headers=h)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()
    n = (await session.execute(select(Subscription).where(Subscription.partner_id == owner.partner.id))).all()
    assert len(n) == 1


async def test_another_partner_sees_nothing_officers_read_and_auditors_only_read(
    client, owner, stranger, officer, auditor
):
    sub = await subscribe(client, owner.headers)
    path = f"/v1/webhooks/{sub['id']}"
    assert (await client.get(path, headers=stranger.headers)).status_code == 404
    assert (await client.get(f"{path}/deliveries", headers=stranger.headers)).status_code == 404
    assert (await client.post(f"{path}/ping", headers=stranger.headers)).status_code == 404
    r = await client.delete(path, headers={**stranger.headers, "If-Match": '"1"'})
    assert r.status_code == 404
    assert sub["id"] not in [
        w["id"] for w in (await client.get("/v1/webhooks", headers=stranger.headers)).json()["items"]
    ]

    for reader in (officer, auditor):
        r = await client.get(path, headers=reader)
        assert r.status_code == 200 and "secret" not in r.json()
    assert (await client.post(f"{path}/ping", headers=auditor)).status_code == 403
    assert (await client.delete(path, headers={**auditor, "If-Match": '"1"'})).status_code == 403
    r = await client.post("/v1/webhooks", json={"url": HOOK, "event_types": ["*"]}, headers=auditor)
    assert r.status_code == 403


async def test_a_company_owns_its_subscriptions(client, session, owner):
    company = await make_company(session)
    headers = await make_token(session, "company", company_id=company.id)
    sub = await subscribe(client, headers, event_types=["*"])
    assert sub["owner_kind"] == "company" and sub["company_id"] == str(company.id) and sub["partner_id"] is None
    assert (await client.get(f"/v1/webhooks/{sub['id']}", headers=owner.headers)).status_code == 404


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://169.254.10.20/hook", "link-local"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://[fd00:ec2::254]/hook", "cloud metadata"),
        ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://0.0.0.0:8080/hook", "unspecified"),
        ("http://user:secret@127.0.0.1/hook", "credentials"),
        ("http://127.0.0.1/hook#top", "fragment"),
        ("ftp://127.0.0.1/hook", "https"),
        ("http:///no-host", "no host"),
    ],
)
async def test_dangerous_urls_are_refused(client, owner, url, says):
    r = await client.post(
        "/v1/webhooks", json={"url": url, "event_types": ["*"]}, headers={**owner.headers, "Accept-Language": "en"}
    )
    assert says in _url_error(r)["message"]


async def test_production_requires_https_and_public_addresses(client, owner, intake_app, monkeypatch):
    monkeypatch.setattr(intake_app.state.settings, "environment", "production")  # restored after the test
    real = socket.getaddrinfo

    def fake_dns(host: Any, port: Any, *args: Any, **kw: Any) -> Any:
        if host == "hooks.partner.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.20.30.40", port))]
        return real(host, port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
    h = {**owner.headers, "Accept-Language": "en"}

    async def post(url: str) -> Any:
        return await client.post("/v1/webhooks", json={"url": url, "event_types": ["*"]}, headers=h)

    assert "https" in _url_error(await post("http://93.184.216.34/hook"))["message"]
    assert "10.20.30.40, a private" in _url_error(await post("https://hooks.partner.example/hook"))["message"]
    assert "private" in _url_error(await post("https://192.168.1.10/hook"))["message"]
    assert "loopback" in _url_error(await post("https://127.0.0.1/hook"))["message"]
    r = await post("https://93.184.216.34/hook")
    assert r.status_code == 201, r.text


@pytest.fixture
def production(intake_app, monkeypatch) -> Any:
    """Production-mode settings (restored after the test), and a DNS where hooks.partner.example is public
    and tricky.partner.example resolves to a public address and to NAT64 loopback."""
    monkeypatch.setattr(intake_app.state.settings, "environment", "production")
    real = socket.getaddrinfo
    names = {"hooks.partner.example": ["93.184.216.34"], "tricky.partner.example": ["93.184.216.34", "64:ff9b::7f00:1"]}

    def fake_dns(host: Any, port: Any, *args: Any, **kw: Any) -> Any:
        if host in names:
            return [
                (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in names[host]
            ]
        return real(host, port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
    return intake_app


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://[64:ff9b::a9fe:a9fe]/hook", "cloud metadata"),  # NAT64 of 169.254.169.254
        ("https://[64:ff9b::7f00:1]/hook", "loopback"),  # NAT64 of 127.0.0.1
        ("https://[2002:7f00:1::]/hook", "loopback"),  # 6to4 of 127.0.0.1
        ("https://[::127.0.0.1]/hook", "loopback"),  # IPv4-compatible
        ("https://[::ffff:127.0.0.1]/hook", "loopback"),  # IPv4-mapped
        ("https://[64:ff9b:1:a9fe:a9:fe00::]/hook", "cloud metadata"),  # NAT64 local-use
        ("https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook", "loopback"),  # Teredo
        ("https://[fd12:3456::1]/hook", "private"),  # ULA
        ("https://100.64.0.1/hook", "private"),  # CGNAT
        ("https://tricky.partner.example/hook", "64:ff9b::7f00:1, a loopback"),  # one bad address of two
        ("https://93.184.216.34:22/hook", "Port 22 is not allowed"),
        ("https://93.184.216.34:5432/hook", "Port 5432 is not allowed"),
        ("https://hooks.partner.example:5432/hook", "Port 5432 is not allowed"),
    ],
)
async def test_production_refuses_every_form_of_an_internal_target(client, owner, production, url, says):
    r = await client.post(
        "/v1/webhooks", json={"url": url, "event_types": ["*"]}, headers={**owner.headers, "Accept-Language": "en"}
    )
    assert says in _url_error(r)["message"]


async def test_an_officer_allows_another_port_for_one_host(client, owner, officer, production, session):
    h = {**owner.headers, "Accept-Language": "en"}
    url = "https://hooks.partner.example:8443/hook"
    assert (
        "Port 8443"
        in _url_error(await client.post("/v1/webhooks", json={"url": url, "event_types": ["*"]}, headers=h))["message"]
    )
    body = {"host": "Hooks.Partner.Example", "port": 8443, "reason": "gateway of the partner's CRM"}
    assert (await client.post("/v1/webhooks/allowed-ports", json=body, headers=owner.headers)).status_code == 403
    r = await client.post("/v1/webhooks/allowed-ports", json=body, headers=officer)
    assert r.status_code == 201, r.text
    allowance = r.json()
    assert (allowance["host"], allowance["port"]) == ("hooks.partner.example", 8443)
    assert (await client.post("/v1/webhooks/allowed-ports", json=body, headers=officer)).status_code == 409
    r = await client.post("/v1/webhooks/allowed-ports", json={**body, "host": "bad host"}, headers=officer)
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "host_invalid"
    audit = (
        await session.execute(
            text(
                "SELECT action, after FROM desk.audit_log WHERE resource_type = 'webhook_port_allowance' "
                "AND resource_id = :id"
            ),
            {"id": allowance["id"]},
        )
    ).one()
    assert audit.action == "webhook.port_allowed" and audit.after["port"] == 8443

    assert (await client.post("/v1/webhooks", json={"url": url, "event_types": ["*"]}, headers=h)).status_code == 201
    # the allowance is for that host and port only
    other = await client.post(
        "/v1/webhooks", json={"url": "https://93.184.216.34:8443/hook", "event_types": ["*"]}, headers=h
    )
    assert "Port 8443" in _url_error(other)["message"]
    listed = (await client.get("/v1/webhooks/allowed-ports", headers=officer)).json()["items"]
    assert allowance["id"] in [a["id"] for a in listed]

    r = await client.delete(f"/v1/webhooks/allowed-ports/{allowance['id']}", headers=officer)
    assert r.status_code == 204
    assert (
        "Port 8443"
        in _url_error(await client.post("/v1/webhooks", json={"url": url, "event_types": ["*"]}, headers=h))["message"]
    )


async def test_event_types_are_checked_against_the_catalogue(client, owner):
    r = await client.post(
        "/v1/webhooks",
        json={"url": HOOK, "event_types": ["application.submitted", "application.eaten", "decision.made"]},
        headers=owner.headers,
    )
    assert r.status_code == 422
    assert [(e["code"], e["path"]) for e in r.json()["errors"]] == [
        ("event_type_unknown", "/event_types/1"),
        ("event_type_unknown", "/event_types/2"),
    ]
    r = await client.post("/v1/webhooks", json={"url": HOOK, "event_types": []}, headers=owner.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "/event_types"
    sub = await subscribe(client, owner.headers, event_types=["webhook.ping", "*"])
    assert sub["event_types"] == ["*"]


# ---------------------------------------------------------------- secret rotation


async def test_rotation_keeps_both_secrets_valid_during_the_overlap(client, owner, session):
    sub = await subscribe(client, owner.headers)
    old = sub["secret"]
    path = f"/v1/webhooks/{sub['id']}/rotate-secret"
    assert (await client.post(path, json={"overlap_hours": 2}, headers=owner.headers)).status_code == 428
    r = await client.post(path, json={"overlap_hours": 169}, headers={**owner.headers, "If-Match": '"1"'})
    assert r.status_code == 422
    r = await client.post(path, json={"overlap_hours": 2}, headers={**owner.headers, "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    assert new != old and new.startswith("whsec_") and r.headers["etag"] == '"2"'

    stored = await session.get(Subscription, uuid.UUID(sub["id"]))
    assert stored is not None
    await session.refresh(stored)
    assert stored.secret == new and stored.previous_secret == old
    assert stored.previous_secret_expires_at is not None
    expected = datetime.now(UTC) + timedelta(hours=2)
    assert abs((stored.previous_secret_expires_at - expected).total_seconds()) < 60
    assert r.json()["previous_secret_expires_at"] is not None
    assert "secret" not in (await client.get(f"/v1/webhooks/{sub['id']}", headers=owner.headers)).json()

    # what the worker sends during the overlap: signed with the stored secrets, new and previous
    body = '{"id":"evt","type":"webhook.ping"}'
    headers = sign_headers(
        msg_id=str(uuid.uuid4()), at=datetime.now(UTC), body=body, secrets_=[stored.secret, stored.previous_secret]
    )
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_webhook_secret()).verify(body, headers)

    audit = (
        await session.execute(
            text(
                "SELECT after::text AS a, before::text AS b FROM desk.audit_log WHERE resource_id = :id "
                "AND action = 'webhook.secret_rotated'"
            ),
            {"id": sub["id"]},
        )
    ).one()
    assert "whsec_" not in audit.a + audit.b


async def test_rotation_without_body_overlaps_a_day(client, owner, session):
    sub = await subscribe(client, owner.headers)
    r = await client.post(f"/v1/webhooks/{sub['id']}/rotate-secret", headers={**owner.headers, "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    stored = await session.get(Subscription, uuid.UUID(sub["id"]))
    assert stored is not None and stored.previous_secret_expires_at is not None
    hours = (stored.previous_secret_expires_at - datetime.now(UTC)).total_seconds() / 3600
    assert 23.9 < hours <= 24


# ---------------------------------------------------------------- ping, deliveries, replays


async def _deliveries_of(session, subscription_id: str) -> list[Delivery]:
    rows = await session.execute(
        select(Delivery).where(Delivery.subscription_id == uuid.UUID(subscription_id)).order_by(Delivery.id)
    )
    return list(rows.scalars())


async def test_ping_reaches_only_the_pinged_endpoint(client, owner, session):
    pinged = await subscribe(client, owner.headers, event_types=["webhook.ping"])
    sibling = await subscribe(client, owner.headers, event_types=["*"])
    r = await client.post(f"/v1/webhooks/{pinged['id']}/ping", headers=owner.headers)
    assert r.status_code == 202, r.text
    out = r.json()
    event = (
        await session.execute(select(OutboxEvent).where(OutboxEvent.event_id == uuid.UUID(out["event_id"])))
    ).scalar_one()
    assert event.event_type == "webhook.ping" and event.published_at is not None
    assert event.partner_id == owner.partner.id and event.payload["subscription_id"] == pinged["id"]

    await publish_pending(session)  # the worker's fan-out must not pick it up again
    all_for_event = (await session.execute(select(Delivery).where(Delivery.event_id == event.id))).scalars().all()
    assert [(d.id, str(d.subscription_id)) for d in all_for_event] == [(out["delivery_id"], pinged["id"])]
    assert await _deliveries_of(session, sibling["id"]) == []


async def test_delivery_log_filters_pages_and_replays(client, owner, stranger, session):
    sub = await subscribe(client, owner.headers, event_types=["webhook.ping"])
    base = f"/v1/webhooks/{sub['id']}"
    first = (await client.post(f"{base}/ping", headers=owner.headers)).json()["delivery_id"]
    second = (await client.post(f"{base}/ping", headers=owner.headers)).json()["delivery_id"]
    # the worker failed the first one for good
    session.add(DeliveryAttempt(delivery_id=first, attempt=1, status_code=500, latency_ms=42, error="boom"))
    d = await session.get(Delivery, first)
    assert d is not None
    d.status, d.attempts, d.last_status_code, d.last_error = "dead", 1, 500, "boom"
    await session.flush()

    r = await client.get(f"{base}/deliveries", headers=owner.headers)
    items = r.json()["items"]
    assert [i["id"] for i in items] == [second, first]
    dead = items[1]
    assert dead["status"] == "dead" and dead["event_type"] == "webhook.ping" and dead["last_status_code"] == 500
    assert [(a["attempt"], a["status_code"], a["latency_ms"], a["error"]) for a in dead["attempt_log"]] == [
        (1, 500, 42, "boom")
    ]
    r = await client.get(f"{base}/deliveries", params={"status": "dead"}, headers=owner.headers)
    assert [i["id"] for i in r.json()["items"]] == [first]
    page = (await client.get(f"{base}/deliveries", params={"limit": 1}, headers=owner.headers)).json()
    assert [i["id"] for i in page["items"]] == [second] and page["next_cursor"]
    page = (
        await client.get(
            f"{base}/deliveries", params={"limit": 1, "cursor": page["next_cursor"]}, headers=owner.headers
        )
    ).json()
    assert [i["id"] for i in page["items"]] == [first] and page["next_cursor"] is None
    r = await client.get(f"{base}/deliveries", params={"cursor": "garbage"}, headers=owner.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "/cursor"

    r = await client.post(f"{base}/deliveries/{first}/replay", headers=owner.headers)
    assert r.status_code == 202, r.text
    (replay_id,) = r.json()["delivery_ids"]
    replay = await session.get(Delivery, replay_id)
    assert replay is not None and replay.replay_of == first and replay.status == "pending"
    assert replay.event_id == d.event_id and replay.aggregate_key == d.aggregate_key
    assert (await client.post(f"{base}/deliveries/999999999/replay", headers=owner.headers)).status_code == 404
    r = await client.post(f"{base}/deliveries/{first}/replay", headers=stranger.headers)
    assert r.status_code == 404


async def _event(
    session,
    *,
    event_type: str,
    partner_id: uuid.UUID | None,
    at: datetime,
    published: bool = True,
    company_id: uuid.UUID | None = None,
) -> OutboxEvent:
    e = OutboxEvent(
        event_id=uuid.uuid4(),
        event_type=event_type,
        event_version=1,
        source="intake",
        aggregate_type="application",
        aggregate_id=str(uuid.uuid4()),
        partner_id=partner_id,
        company_id=company_id,
        payload={"n": 1},
        occurred_at=at,
        published_at=at if published else None,
    )
    session.add(e)
    await session.flush()
    return e


async def test_replay_since_creates_deliveries_only_for_matching_events(client, owner, stranger, session):
    sub = await subscribe(client, owner.headers, event_types=["application.submitted"])
    now = datetime.now(UTC)
    since = now - timedelta(minutes=30)
    p = owner.partner.id
    await _event(session, event_type="application.submitted", partner_id=p, at=now - timedelta(hours=2))  # before
    wanted = await _event(session, event_type="application.submitted", partner_id=p, at=now - timedelta(minutes=10))
    withdrawn = await _event(
        session, event_type="application.withdrawn", partner_id=p, at=now - timedelta(minutes=5)
    )  # another type
    await _event(
        session, event_type="application.submitted", partner_id=stranger.partner.id, at=now - timedelta(minutes=5)
    )  # someone else's
    await _event(
        session, event_type="application.submitted", partner_id=p, at=now - timedelta(minutes=1), published=False
    )  # the fan-out will deliver it

    r = await client.post(f"/v1/webhooks/{sub['id']}/replay", json={"since": since.isoformat()}, headers=owner.headers)
    assert r.status_code == 202, r.text
    assert r.json()["count"] == 1 and r.json()["truncated"] is False
    deliveries = await _deliveries_of(session, sub["id"])
    assert [(d.id, d.event_id, d.status) for d in deliveries] == [(r.json()["delivery_ids"][0], wanted.id, "pending")]

    # a subscription to everything gets the owner's events, but not a ping aimed at another endpoint
    star = await subscribe(client, owner.headers, event_types=["*"])
    assert (await client.post(f"/v1/webhooks/{sub['id']}/ping", headers=owner.headers)).status_code == 202
    r = await client.post(f"/v1/webhooks/{star['id']}/replay", json={"since": since.isoformat()}, headers=owner.headers)
    assert r.json()["count"] == 2
    assert [d.event_id for d in await _deliveries_of(session, star["id"])] == [wanted.id, withdrawn.id]

    r = await client.post(
        f"/v1/webhooks/{sub['id']}/replay", json={"since": "2025-01-01T10:00:00"}, headers=owner.headers
    )
    assert r.status_code == 422  # an instant needs its offset
    audit = (
        await session.execute(
            text("SELECT count(*) FROM desk.audit_log WHERE resource_id = :id AND action = 'webhook.events_replayed'"),
            {"id": sub["id"]},
        )
    ).scalar_one()
    assert audit == 1
