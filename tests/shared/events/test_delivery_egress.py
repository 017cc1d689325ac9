"""Deliveries to partners' endpoints, end to end through the API and the worker: the address is checked again
at every delivery (DNS rebinding) and the request goes to the checked address under the original name; the
port policy holds at delivery too; nothing the partner answers reaches the delivery log; no transaction or
connection is held while a partner answers; a claim lost with its worker comes due again."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_engine, make_sessionmaker
from shared.events.worker import DeliveryWorker, Outcome
from tests.conftest import KEYRING, make_token
from tests.e2e.harness import settle_deliveries, worker_settings
from tests.factories import make_partner

PUBLIC = "93.184.216.34"


def resolving_to(*addresses: str) -> Any:
    """A resolver the test controls: every name resolves to these addresses."""

    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


@dataclass
class Partner:
    headers: dict[str, str]


@pytest.fixture
async def partner(engine: AsyncEngine) -> Partner:
    await settle_deliveries(engine)  # this test's worker sends only this test's deliveries
    async with make_sessionmaker(engine)() as s:
        p = await make_partner(s)
        headers = await make_token(s, "partner", partner_id=p.id)
        await s.commit()
    return Partner(headers)


@pytest.fixture
def public_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """At subscription time every *.partner.example name is public."""
    real = socket.getaddrinfo

    def fake(host: Any, port: Any, *args: Any, **kw: Any) -> Any:
        if str(host).endswith(".partner.example"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC, port))]
        return real(host, port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


class Recorder:
    """A partner endpoint (httpx MockTransport) that records what reaches it and answers `status`/`body`."""

    def __init__(self, status: int = 204, body: bytes = b"") -> None:
        self.requests: list[httpx.Request] = []
        self.status, self.body = status, body

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, content=self.body)


async def subscribe_and_ping(client: httpx.AsyncClient, partner: Partner, url: str) -> tuple[str, int]:
    r = await client.post("/v1/webhooks", json={"url": url, "event_types": ["webhook.ping"]}, headers=partner.headers)
    assert r.status_code == 201, r.text
    sub_id = r.json()["id"]
    r = await client.post(f"/v1/webhooks/{sub_id}/ping", headers=partner.headers)
    assert r.status_code == 202, r.text
    return sub_id, r.json()["delivery_id"]


async def delivery(engine: AsyncEngine, delivery_id: int) -> Any:
    async with engine.connect() as conn:
        return (
            await conn.execute(
                text(
                    "SELECT status, attempts, last_status_code, last_error, next_attempt_at > now() AS leased "
                    "FROM desk.deliveries WHERE id = :d"
                ),
                {"d": delivery_id},
            )
        ).one()


async def attempts(engine: AsyncEngine, delivery_id: int) -> list[tuple[int, int | None, str | None]]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT attempt, status_code, error FROM desk.delivery_attempts WHERE delivery_id = :d ORDER BY id"
                ),
                {"d": delivery_id},
            )
        ).all()
    return [(r.attempt, r.status_code, r.error) for r in rows]


async def make_due(engine: AsyncEngine, delivery_id: int) -> None:
    """The back-off (or the lease) has run out."""
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE desk.deliveries SET next_attempt_at = now() - interval '1 second' WHERE id = :d"),
            {"d": delivery_id},
        )


async def test_dns_rebinding_to_loopback_is_refused_at_delivery_with_no_request(
    committing_client, engine, partner, public_dns, monkeypatch
):
    app = committing_client._transport.app  # type: ignore[attr-defined]
    monkeypatch.setattr(app.state.settings, "environment", "production")
    # public when the subscription is checked ...
    sub_id, delivery_id = await subscribe_and_ping(committing_client, partner, "https://rebind.partner.example/hook")

    endpoint = Recorder()
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as http:
        # ... loopback when the worker delivers
        worker = DeliveryWorker(
            engine, KEYRING, worker_settings(environment="production"), http=http, resolver=resolving_to("127.0.0.1")
        )
        assert await worker.deliver_due() == 1
        assert endpoint.requests == []
        row = await delivery(engine, delivery_id)
        assert (row.status, row.attempts, row.last_status_code, row.last_error) == (
            "pending",
            1,
            None,
            "address_forbidden",
        )
        log = (await committing_client.get(f"/v1/webhooks/{sub_id}/deliveries", headers=partner.headers)).json()
        assert [(a["attempt"], a["status_code"], a["error"]) for a in log["items"][0]["attempt_log"]] == [
            (1, None, "address_forbidden")
        ]

        # a name resolving to a public address and to a NAT64 form of loopback is refused as well
        await make_due(engine, delivery_id)
        worker.resolver = resolving_to(PUBLIC, "64:ff9b::7f00:1")
        assert await worker.deliver_due() == 1
        assert endpoint.requests == []

        # back to public only: the request goes to the checked address, under the subscribed name
        await make_due(engine, delivery_id)
        worker.resolver = resolving_to(PUBLIC)
        assert await worker.deliver_due() == 1

    (sent,) = endpoint.requests
    assert str(sent.url) == f"https://{PUBLIC}/hook"
    assert sent.headers["host"] == "rebind.partner.example"
    assert sent.extensions["sni_hostname"] == "rebind.partner.example"  # TLS name and certificate check
    assert await attempts(engine, delivery_id) == [
        (1, None, "address_forbidden"),
        (2, None, "address_forbidden"),
        (3, 204, None),
    ]
    assert (await delivery(engine, delivery_id)).status == "delivered"


async def test_the_port_is_checked_at_delivery_against_the_officers_allowances(
    committing_client, engine, partner, public_dns, monkeypatch
):
    app = committing_client._transport.app  # type: ignore[attr-defined]
    async with make_sessionmaker(engine)() as s:
        officer = await make_token(s, "officer")
        await s.commit()
    host = f"gw-{uuid.uuid4().hex[:8]}.partner.example"
    r = await committing_client.post(
        "/v1/webhooks/allowed-ports", headers=officer, json={"host": host, "port": 8443, "reason": "partner gateway"}
    )
    assert r.status_code == 201, r.text
    monkeypatch.setattr(app.state.settings, "environment", "production")
    _sub, delivery_id = await subscribe_and_ping(committing_client, partner, f"https://{host}:8443/hook")
    # the officer withdraws the allowance after the subscription was accepted
    assert (
        await committing_client.delete(f"/v1/webhooks/allowed-ports/{r.json()['id']}", headers=officer)
    ).status_code == 204

    endpoint = Recorder()
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as http:
        worker = DeliveryWorker(
            engine, KEYRING, worker_settings(environment="production"), http=http, resolver=resolving_to(PUBLIC)
        )
        assert await worker.deliver_due() == 1
    assert endpoint.requests == []
    assert await attempts(engine, delivery_id) == [(1, None, "port_not_allowed")]


async def test_the_partners_answer_is_not_kept_or_shown(committing_client, engine, partner):
    # local mode: a receiver on this machine is fine; the status code and timing are all that is kept
    sub_id, delivery_id = await subscribe_and_ping(committing_client, partner, "http://127.0.0.1:8999/hook")
    secret_page = b"<h1>Internal admin</h1> db_password=hunter2"
    endpoint = Recorder(status=500, body=secret_page)
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as http:
        worker = DeliveryWorker(engine, KEYRING, worker_settings(), http=http)
        assert await worker.deliver_due() == 1
    assert len(endpoint.requests) == 1
    row = await delivery(engine, delivery_id)
    assert (row.status, row.last_status_code, row.last_error) == ("pending", 500, "http_error")
    assert await attempts(engine, delivery_id) == [(1, 500, "http_error")]
    r = await committing_client.get(f"/v1/webhooks/{sub_id}/deliveries", headers=partner.headers)
    assert r.status_code == 200
    (item,) = r.json()["items"]
    assert item["last_status_code"] == 500 and item["attempt_log"][0]["latency_ms"] is not None
    assert "hunter2" not in r.text and "Internal admin" not in r.text


@pytest.fixture
async def worker_engine(database_url: str) -> AsyncIterator[tuple[AsyncEngine, str]]:
    """An engine of the worker's own, with its own application_name, so what it holds can be seen."""
    name = f"desk-worker-{uuid.uuid4().hex[:8]}"
    eng = create_engine(database_url, pool_size=2, max_overflow=0, application_name=name)
    yield eng, name
    await eng.dispose()


async def test_no_transaction_or_connection_is_held_while_the_partner_answers(
    committing_client, engine, partner, worker_engine
):
    own, name = worker_engine
    _sub, delivery_id = await subscribe_and_ping(committing_client, partner, "http://127.0.0.1:8999/hook")
    seen: list[tuple[int, list[str]]] = []

    async def slow_partner(request: httpx.Request) -> httpx.Response:
        # while the partner handles the request: what does the worker hold in the database?
        async with engine.connect() as conn:
            states = (
                (
                    await conn.execute(
                        text("SELECT state FROM pg_stat_activity WHERE application_name = :n AND state <> 'idle'"),
                        {"n": name},
                    )
                )
                .scalars()
                .all()
            )
        seen.append((own.pool.checkedout(), list(states)))  # type: ignore[attr-defined]
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(slow_partner)) as http:
        worker = DeliveryWorker(own, KEYRING, worker_settings(), http=http)
        # the partners' lane alone: the desk services' lanes run beside it and claim on their own connections
        assert await worker.deliver_external() == 1
    assert seen == [(0, [])], "no connection checked out, no session idle in transaction"
    assert (await delivery(engine, delivery_id)).status == "delivered"


async def test_a_claim_lost_with_its_worker_comes_due_again_when_the_lease_ends(committing_client, engine, partner):
    _sub, delivery_id = await subscribe_and_ping(committing_client, partner, "http://127.0.0.1:8999/hook")
    endpoint = Recorder()
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as http:
        crashed = DeliveryWorker(engine, KEYRING, worker_settings(), http=http)
        (claimed,), _ = await crashed.claim()  # committed; the worker then dies before sending or recording
        assert claimed.id == delivery_id and claimed.attempts == 1
        row = await delivery(engine, delivery_id)
        assert (row.status, row.attempts, row.leased) == ("pending", 1, True)

        other = DeliveryWorker(engine, KEYRING, worker_settings(), http=http)
        assert await other.deliver_due() == 0  # leased: nobody sends it meanwhile
        await make_due(engine, delivery_id)  # the lease ends
        assert await other.deliver_due() == 1
        assert len(endpoint.requests) == 1
        assert (await delivery(engine, delivery_id)).status == "delivered"
        assert await attempts(engine, delivery_id) == [(2, 204, None)]

        # had the first worker come back late, its record would not undo the later one
        async with engine.begin() as conn:
            await crashed._record(conn, claimed, Outcome(False, None, 5, "timeout"))
    row = await delivery(engine, delivery_id)
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 2, 204)


# ---------------------------------------------------------------- TLS to the checked address, under the name


def _self_signed(name: str) -> tuple[bytes, bytes]:
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


async def test_tls_goes_to_the_checked_address_with_the_names_sni_and_certificate(
    committing_client, engine, partner, public_dns, tmp_path
):
    import asyncio
    import ssl

    name = "tls.partner.example"
    cert_pem, key_pem = _self_signed(name)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    sni_seen: list[str | None] = []
    server_ctx.sni_callback = lambda sock, server_name, ctx: sni_seen.append(server_name)  # type: ignore[assignment]
    hosts_seen: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            headers = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
            hosts_seen.append(headers.get("host", ""))
            await reader.readexactly(int(headers.get("content-length", "0")))
            writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        _sub, good = await subscribe_and_ping(committing_client, partner, f"https://{name}:{port}/hook")
        # a name the certificate does not cover, on the same address: the check is against the name
        _sub, bad = await subscribe_and_ping(committing_client, partner, f"https://other.partner.example:{port}/hook")
        client_ctx = ssl.create_default_context(cadata=cert_pem.decode())
        async with httpx.AsyncClient(verify=client_ctx, timeout=5) as http:
            worker = DeliveryWorker(engine, KEYRING, worker_settings(), http=http, resolver=resolving_to("127.0.0.1"))
            assert await worker.deliver_due() == 2
    finally:
        server.close()
        await server.wait_closed()
    assert await attempts(engine, good) == [(1, 204, None)]
    assert await attempts(engine, bad) == [(1, None, "connect_failed")]
    assert name in sni_seen and "other.partner.example" in sni_seen
    assert hosts_seen == [f"{name}:{port}"]
