"""The outbox delivery worker: fan-out of events to subscriptions, then at-least-once delivery.

Why not a job library (procrastinate): events must be recorded in the *same* transaction as the
change (the transactional outbox), which our SQLAlchemy/asyncpg sessions already do with one
INSERT; a library deferring jobs through its own connection could not join that transaction.
Two plain SQL statements give what we need on top of it:

* fan-out: each new outbox row becomes one `desk.deliveries` row per matching subscription, and
  is numbered (`published_seq`, the cursor of `GET /v1/events`) from a sequence while the fan-out
  holds a transaction-level advisory lock: fan-outs never interleave, so a poller that has seen
  number n has already been able to see every lower number (publication order = commit order);
* delivery: due deliveries are claimed with `FOR UPDATE SKIP LOCKED` and leased (their next attempt
  moved past the longest a send may take), so several workers never send the same delivery at once,
  and a delivery waits while an earlier one for the same subscription and aggregate is still
  pending (order per application). The claim commits before any request is sent: no transaction,
  connection or PgBouncer slot is held while a partner answers. The result is recorded afterwards
  in a new short transaction. A worker killed mid-delivery leaves the lease to expire, and the
  delivery is sent again (receivers deduplicate on `webhook-id`).

Every delivery to a partner's or a company's endpoint resolves the host again, checks every address
by the egress policy (`shared.events.egress`) and connects to the checked address itself, so DNS
rebinding after the subscription was checked gains nothing; a refused address is a failed attempt
(`address_forbidden`) with no request made.

A partner subscription hears the events about the companies the partner acts for *when the event is fanned
out* (`shared.access.partner_hears_sql`): an event written for a partner whose delegation has ended since
goes to the company's current delegates instead, so a revoked partner stops hearing about the company.

Failures back off exponentially with jitter; after `webhook_max_attempts` the delivery is dead
(kept, listed, and replayable). Every attempt is logged with status code, latency and an error code
(`address_forbidden`, `port_not_allowed`, `dns_failed`, `url_invalid`, `timeout`, `connect_failed`,
`transport_error`, `http_error`); the partner's response body is never read or kept.
Deliveries to a subscription deleted or deactivated meanwhile are not sent: they are dead-lettered
with the reason (a replay after reactivation sends them).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from tenacity import RetryCallState, Retrying, wait_exponential_jitter

from shared.access import partner_hears_sql
from shared.auth import DEFAULT_SCOPES, KeyRing, mint_token
from shared.events import egress
from shared.events.catalogue import envelope
from shared.events.signing import new_webhook_secret, sign_headers
from shared.settings import DeskSettings

log = structlog.get_logger("desk.worker")

# Any constant bigint: the key of the advisory lock that serialises fan-outs (across every worker).
FAN_OUT_LOCK_KEY = 0x6465736B_6F757462  # "deskoutb"

FAN_OUT_LOCK = text("SELECT pg_advisory_xact_lock(:key)")

FAN_OUT = text(f"""
WITH ev AS (
    SELECT id, event_type, partner_id, company_id, aggregate_type, aggregate_id
      FROM desk.outbox WHERE published_at IS NULL ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED
), numbered AS (
    -- a sorted subquery is not flattened: the numbers follow the id order
    SELECT id, nextval('desk.outbox_published_seq') AS seq FROM (SELECT id FROM ev ORDER BY id) ordered
), ins AS (
    INSERT INTO desk.deliveries (event_id, subscription_id, aggregate_key)
    SELECT ev.id, s.id, ev.aggregate_type || ':' || ev.aggregate_id
      FROM ev JOIN desk.subscriptions s
        ON s.active AND s.deleted_at IS NULL
       AND (ev.event_type = ANY (s.event_types) OR '*' = ANY (s.event_types))
       AND (s.owner_kind = 'service'
            OR (s.owner_kind = 'partner' AND {partner_hears_sql("ev", "s.partner_id")})
            OR (s.owner_kind = 'company' AND s.company_id = ev.company_id))
     ORDER BY ev.id, s.id
    RETURNING 1
)
UPDATE desk.outbox o SET published_at = now(), published_seq = numbered.seq
  FROM numbered WHERE o.id = numbered.id RETURNING o.id
""")

# Deliveries whose subscription was deleted or deactivated after the fan-out: dead, never sent.
# SKIP LOCKED: a delivery in flight at another worker is left to it.
RETIRE_ORPHANS = text("""
UPDATE desk.deliveries d
   SET status = 'dead',
       last_error = CASE WHEN s.deleted_at IS NOT NULL THEN 'subscription deleted' ELSE 'subscription inactive' END
  FROM desk.subscriptions s
 WHERE s.id = d.subscription_id AND d.id IN (
        SELECT p.id FROM desk.deliveries p JOIN desk.subscriptions q ON q.id = p.subscription_id
         WHERE p.status = 'pending' AND (q.deleted_at IS NOT NULL OR NOT q.active)
         ORDER BY p.id LIMIT :n
           FOR UPDATE OF p SKIP LOCKED)
RETURNING d.id
""")


async def publish_pending(conn: AsyncConnection | AsyncSession, limit: int = 500) -> int:
    """Fan out and number up to `limit` unpublished events in the caller's transaction; the advisory
    lock is held until that transaction ends, so commit soon after."""
    await conn.execute(FAN_OUT_LOCK, {"key": FAN_OUT_LOCK_KEY})
    return len((await conn.execute(FAN_OUT, {"n": limit})).all())


# Claim, then commit: the claimed rows get a lease (next_attempt_at in the future, while they stay pending so
# later deliveries of the same aggregate keep waiting) and their attempt is counted now, so the HTTP call
# runs with no transaction open and no connection held. A worker that dies before recording leaves the
# delivery to come due again when its lease ends (at least once); its late record is ignored if another
# worker claimed the delivery meanwhile (the attempt number moved on). A delivery that kills its worker
# every time still runs out of attempts.
CLAIM = text("""
WITH due AS (
    SELECT d.id
      FROM desk.deliveries d
      JOIN desk.subscriptions s ON s.id = d.subscription_id
     WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND s.active AND s.deleted_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM desk.deliveries e
                        WHERE e.subscription_id = d.subscription_id AND e.aggregate_key = d.aggregate_key
                          AND e.status = 'pending' AND e.id < d.id)
     ORDER BY d.id
     LIMIT :n
       FOR UPDATE OF d SKIP LOCKED
)
UPDATE desk.deliveries d
   SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => :lease)
  FROM due, desk.subscriptions s, desk.outbox o
 WHERE d.id = due.id AND s.id = d.subscription_id AND o.id = d.event_id
RETURNING d.id, d.attempts, d.subscription_id, s.url, s.secret, s.previous_secret, s.previous_secret_expires_at,
          s.owner_kind, s.service, o.event_id, o.event_type, o.event_version, o.source, o.occurred_at,
          o.aggregate_type, o.aggregate_id, o.payload
""")

PORT_ALLOWANCES = text("SELECT host, port FROM desk.webhook_port_allowances")

SWEEP_EVERY_SECONDS = 600.0
SWEEP_KEYS = text("""
DELETE FROM desk.idempotency_keys WHERE ctid IN (
    SELECT ctid FROM desk.idempotency_keys WHERE expires_at < now() LIMIT 10000)
""")

LOG_ATTEMPT = text("""
INSERT INTO desk.delivery_attempts (delivery_id, attempt, status_code, latency_ms, error)
VALUES (:id, :attempt, :code, :ms, :error)
""")
# Only while the claim is still this worker's: pending, and no later claim (attempt number) since.
DELIVERED = text("""
UPDATE desk.deliveries SET status = 'delivered', delivered_at = now(), last_status_code = :code, last_error = NULL
 WHERE id = :id AND attempts = :attempt AND status = 'pending'
""")
FAILED = text("""
UPDATE desk.deliveries SET status = :status, next_attempt_at = :next, last_status_code = :code, last_error = :error
 WHERE id = :id AND attempts = :attempt AND status = 'pending'
""")


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None
    latency_ms: int
    error: str | None


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """The delay before the next attempt after `attempt` failed: tenacity's exponential back-off with jitter,
    the same as the peer clients' retries (stamina, built on it): base * 2^(attempt-1) plus up to `base`, at most
    `cap`. Deliveries are rescheduled in the database rather than retried in place, so the delay is computed
    here and stored."""
    state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = max(attempt, 1)
    return float(wait_exponential_jitter(multiplier=base, max=cap, exp_base=2, jitter=base)(state))


INTERNAL_SUBSCRIPTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    # service -> (settings attribute with its base URL, the event types it consumes)
    "evaluation": (
        "evaluation_url",
        (
            "application.submitted",
            "application.withdrawn",
            "application.form_signed",
            "call.amended",
            "company.delegation_changed",
        ),
    ),
    # monitoring starts projects from accepted decisions and keeps the application facts of its statistics
    "monitoring": (
        "monitoring_url",
        (
            "application.submitted",
            "application.withdrawn",
            "evaluation.admissibility_completed",
            "decision.issued",
            "decision.accepted",
            "decision.renounced",
            "call.amended",
            "company.delegation_changed",
        ),
    ),
}


async def ensure_internal_subscriptions(conn: AsyncConnection, settings: DeskSettings) -> None:
    """The desk's own services subscribe like partners do; their URLs come from settings."""
    for service, (attr, types) in INTERNAL_SUBSCRIPTIONS.items():
        url = f"{getattr(settings, attr).rstrip('/')}/v1/internal/events"
        await conn.execute(
            text("""
            INSERT INTO desk.subscriptions (id, owner_kind, service, url, event_types, description, active, secret,
                                            created_by)
            VALUES (gen_random_uuid(), 'service', :service, :url, :types, :descr, true, :secret, 'desk-worker')
            ON CONFLICT (service) DO UPDATE SET url = EXCLUDED.url, event_types = EXCLUDED.event_types
        """),
            {
                "service": service,
                "url": url,
                "types": list(types),
                "descr": f"internal: {service}",
                "secret": new_webhook_secret(),
            },
        )


class DeliveryWorker:
    def __init__(
        self,
        engine: AsyncEngine,
        keyring: KeyRing,
        settings: DeskSettings,
        http: httpx.AsyncClient | None = None,
        resolver: egress.Resolver = egress.system_resolver,
    ) -> None:
        self.engine = engine
        self.keyring = keyring
        self.settings = settings
        self._owns_http = http is None
        self.http = http or httpx.AsyncClient(timeout=settings.webhook_timeout_seconds, follow_redirects=False)
        self.resolver = resolver  # how partners' host names are resolved at each delivery
        self.production = settings.environment == "production"
        # The whole of one delivery (resolution, connection, request, status line) is bounded, and the claim's
        # lease outlasts it, so a live worker always records before its claim could pass to another one.
        self.send_deadline = 3 * settings.webhook_timeout_seconds + 5
        self.lease_seconds = self.send_deadline + 30
        self._service_token: tuple[str, float] | None = None

    async def fan_out(self) -> int:
        async with self.engine.begin() as conn:
            return await publish_pending(conn, 500)

    async def retire_orphans(self) -> int:
        """Dead-letter what deleted or deactivated subscriptions still had pending."""
        async with self.engine.begin() as conn:
            retired = (await conn.execute(RETIRE_ORPHANS, {"n": 1000})).all()
        if retired:
            log.info("deliveries to removed subscriptions dead-lettered", count=len(retired))
        return len(retired)

    async def claim(self) -> tuple[list[Any], frozenset[tuple[str, int]]]:
        """Claim a batch of due deliveries (and read the officers' port allowances) in one short transaction,
        committed before anything is sent."""
        async with self.engine.begin() as conn:
            rows = (await conn.execute(CLAIM, {"n": self.settings.worker_batch, "lease": self.lease_seconds})).all()
            allowances: frozenset[tuple[str, int]] = frozenset()
            if rows and self.production:
                allowances = frozenset((r.host, r.port) for r in await conn.execute(PORT_ALLOWANCES))
        return sorted(rows, key=lambda r: r.id), allowances

    async def deliver_due(self) -> int:
        """Claim (and commit), send with no transaction open, then record in a new transaction; returns how
        many deliveries were attempted."""
        await self.retire_orphans()
        rows, allowances = await self.claim()
        if not rows:
            return 0
        outcomes = await asyncio.gather(*(self._send(r, allowances) for r in rows))
        async with self.engine.begin() as conn:
            for row, out in zip(rows, outcomes, strict=True):
                await self._record(conn, row, out)
        return len(rows)

    async def _target(self, row: Any, allowances: frozenset[tuple[str, int]]) -> egress.PinnedTarget | None:
        """Where to send: for a partner's or a company's endpoint, the address checked now (None for the
        desk's own services, whose URLs come from the operator's settings and are used as they are)."""
        if row.owner_kind == "service":
            return None
        host = egress.parse_url(row.url, production=self.production).host
        allowed = [port for h, port in allowances if h == host]
        return await egress.pin(row.url, production=self.production, allowed_ports=allowed, resolver=self.resolver)

    async def _send(self, row: Any, allowances: frozenset[tuple[str, int]]) -> Outcome:
        """One attempt. What a subscriber later reads is the status code, the latency and an error code: never
        the response's body or a transport message, which would let it read what the desk can reach."""
        body = orjson.dumps(envelope(row)).decode()
        now = datetime.now(UTC)
        secrets_ = [row.secret]
        if row.previous_secret and row.previous_secret_expires_at and row.previous_secret_expires_at > now:
            secrets_.append(row.previous_secret)
        headers = sign_headers(msg_id=str(row.event_id), at=now, body=body, secrets_=secrets_)
        headers["content-type"] = "application/json"
        headers["user-agent"] = "regional-desk-webhooks/1"
        if row.owner_kind == "service":
            headers["authorization"] = f"Bearer {self._token()}"
        start = time.perf_counter()

        def elapsed() -> int:
            return int((time.perf_counter() - start) * 1000)

        try:
            async with asyncio.timeout(self.send_deadline):
                target = await self._target(row, allowances)
                url, extensions = (row.url, {}) if target is None else (target.url, target.extensions)
                if target is not None:
                    headers.update(target.headers)
                # Streamed and closed unread: the body is neither needed nor kept, however large.
                async with self.http.stream("POST", url, content=body, headers=headers, extensions=extensions) as resp:
                    status = resp.status_code
        except egress.EgressRefused as e:
            log.warning("delivery refused by the egress policy", delivery=row.id, code=e.code, reason=e.message_en)
            return Outcome(False, None, elapsed(), e.code)
        except (TimeoutError, httpx.TimeoutException):
            return Outcome(False, None, elapsed(), "timeout")
        except httpx.ConnectError as e:
            log.info("delivery could not connect", delivery=row.id, error=f"{type(e).__name__}: {e}")
            return Outcome(False, None, elapsed(), "connect_failed")
        except httpx.HTTPError as e:
            log.info("delivery failed in transit", delivery=row.id, error=f"{type(e).__name__}: {e}")
            return Outcome(False, None, elapsed(), "transport_error")
        except Exception:  # anything else still ends as a recorded attempt, not as a claim left to expire
            log.exception("delivery failed unexpectedly", delivery=row.id)
            return Outcome(False, None, elapsed(), "transport_error")
        if 200 <= status < 300:
            return Outcome(True, status, elapsed(), None)
        return Outcome(False, status, elapsed(), "http_error")

    async def _record(self, conn: AsyncConnection, row: Any, out: Outcome) -> None:
        attempt = row.attempts  # counted by the claim
        await conn.execute(
            LOG_ATTEMPT,
            {"id": row.id, "attempt": attempt, "code": out.status_code, "ms": out.latency_ms, "error": out.error},
        )
        if out.ok:
            await conn.execute(DELIVERED, {"id": row.id, "attempt": attempt, "code": out.status_code})
            return
        dead = attempt >= self.settings.webhook_max_attempts
        delay = backoff_seconds(
            attempt, self.settings.webhook_backoff_base_seconds, self.settings.webhook_backoff_max_seconds
        )
        await conn.execute(
            FAILED,
            {
                "id": row.id,
                "attempt": attempt,
                "status": "dead" if dead else "pending",
                "next": datetime.now(UTC) + timedelta(seconds=delay),
                "code": out.status_code,
                "error": out.error,
            },
        )
        log.warning(
            "delivery failed", delivery=row.id, attempt=attempt, dead=dead, status=out.status_code, error=out.error
        )

    def _token(self) -> str:
        """A short-lived service token for internal subscribers, minted with the desk's key."""
        now = time.time()
        if self._service_token is None or self._service_token[1] < now + 60:
            tok = mint_token(
                self.keyring,
                sub="desk-worker",
                kind="service",
                scopes=list(DEFAULT_SCOPES["service"]),
                issuer=self.settings.token_issuer,
                ttl=600,
            )
            self._service_token = (tok, now + 600)
        return self._service_token[0]

    async def run_once(self) -> int:
        fanned = await self.fan_out()
        sent = await self.deliver_due()
        return fanned + sent

    async def sweep_expired_keys(self) -> int:
        """Idempotency records past their retention are replaced lazily when a key is reused; the rest are
        removed here, a bounded batch at a time, so the table does not grow for ever."""
        async with self.engine.begin() as conn:
            result = await conn.execute(SWEEP_KEYS)
        return int(result.rowcount or 0)

    async def run(self, stop: asyncio.Event) -> None:
        """Fan out and deliver until `stop` is set. Stopping is graceful: the batch in flight is sent and
        recorded first (a delivery is only ever interrupted by the process dying, and then resent)."""
        async with self.engine.begin() as conn:
            await ensure_internal_subscriptions(conn, self.settings)
        log.info("delivery worker started")
        next_sweep = 0.0
        while not stop.is_set():
            try:
                busy = await self.run_once()
                if time.monotonic() >= next_sweep:
                    await self.sweep_expired_keys()
                    next_sweep = time.monotonic() + SWEEP_EVERY_SECONDS
            except Exception:  # the worker must outlive a database restart
                log.exception("worker iteration failed")
                busy = 0
            if not busy:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.settings.worker_poll_seconds)
                except TimeoutError:
                    pass
        if self._owns_http:
            await self.http.aclose()
        log.info("delivery worker stopped")
