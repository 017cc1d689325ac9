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
  and a delivery waits while an earlier one for the same subscription and ordering key is still
  pending (the outbox's `ordering_key`: the application's id for every event about an application, so
  one application's events arrive in order whatever their subject). The claim commits before any
  request is sent: no transaction, connection or PgBouncer slot is held while a partner answers. The
  result is recorded afterwards in a new short transaction. A worker killed mid-delivery leaves the
  lease to expire, and the delivery is sent again (receivers deduplicate on `webhook-id`).

Every delivery to a partner's or a company's endpoint resolves the host again, checks every address
by the egress policy (`shared.events.egress`) and connects to the checked address itself, so DNS
rebinding after the subscription was checked gains nothing; a refused address is a failed attempt
(`address_forbidden`) with no request made.

A partner subscription hears the events about the companies the partner acts for *when the event is fanned
out* (`shared.access.partner_hears_sql`): an event written for a partner whose delegation has ended since
goes to the company's current delegates instead, so a revoked partner stops hearing about the company.

Deliveries to the desk's own services (evaluation, monitoring) are claimed apart, up to
`internal_batch_size` at a time, and sent as one request per service (`POST /v1/internal/events/batch`); the
answer has one result per event, recorded per delivery, so a failed event is retried alone with the usual
back-off and the rest are delivered (a service answering the batch route 404, 405 or 413 gets the events one
request each, as before batches). Deliveries yield to intake during a click-day burst: while new
`application.submitted` events arrive in the outbox faster than `pacing_submits_per_second` (counted by a probe
of the outbox's newest rows, measured over `pacing_window_seconds`), the fan-out, the internal batches and the
partners' webhooks wait, for at most `pacing_max_lag_seconds`; then the backlog is published and drained anyway
and the wait may start again. The fan-out waits too because it is most of the worker's share of PostgreSQL
during a burst (every event's deliveries written and checked against their keys); while it waits, the events
are not yet numbered, so the polling feed (`GET /v1/events`) shows them that much later, in the same order.
Nothing is dropped by waiting: the events stay unpublished in the outbox, the deliveries pending in the table.
Outside a burst the desk's services and the partners are served side by side: a running worker (`run`) has one
lane each for the fan-out, for every desk service and for the partners' webhooks, and no lane waits for another,
so evaluation's slow admissibility batches hold back neither monitoring nor the webhooks. Each claim walks its
own queue (the deliveries' `internal` flag and the pending indexes of migration 0032) and stops at its batch,
however long the other queues are.

Deliveries to partners keep their connections alive: one httpx client per checked address (scheme, resolved
address, port and host name, so a connection made for one name, its TLS session included, never serves another
name on the same address), each with at most `webhook_connections_per_host` connections, so that many deliveries
to one receiver go concurrently over a few kept-alive connections. A response body is drained (up to 64 KiB, so
the connection can be reused) and discarded.

Failures back off exponentially with jitter; after `webhook_max_attempts` the delivery is dead
(kept, listed, and replayable). Every attempt is logged with status code, latency and an error code
(`address_forbidden`, `port_not_allowed`, `dns_failed`, `url_invalid`, `timeout`, `connect_failed`,
`transport_error`, `http_error`); the partner's response body is never kept.
Deliveries to a subscription deleted or deactivated meanwhile are not sent: they are dead-lettered
with the reason (a replay after reactivation sends them).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import orjson
import structlog
from sqlalchemy import TextClause, text
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
    SELECT id, event_type, partner_id, company_id, aggregate_type, ordering_key
      FROM desk.outbox WHERE published_at IS NULL ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED
), numbered AS (
    -- a sorted subquery is not flattened: the numbers follow the id order
    SELECT id, nextval('desk.outbox_published_seq') AS seq FROM (SELECT id FROM ev ORDER BY id) ordered
), ins AS (
    INSERT INTO desk.deliveries (event_id, subscription_id, aggregate_key, internal)
    SELECT ev.id, s.id, ev.ordering_key, s.owner_kind = 'service'
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
  FROM numbered WHERE o.id = numbered.id RETURNING o.id, o.event_type
""")

# The arrivals pacing counts: new application.submitted rows in the outbox since the last probe (through the
# primary key), and, at a worker's first probe, those not yet published (through the unpublished index).
ARRIVALS = text("""
SELECT count(*) FILTER (WHERE event_type = 'application.submitted') AS submitted, max(id) AS last
  FROM desk.outbox WHERE id > :after
""")
FIRST_ARRIVALS = text("""
SELECT count(*) FILTER (WHERE event_type = 'application.submitted') AS submitted,
       coalesce(max(id), (SELECT max(id) FROM desk.outbox)) AS last
  FROM desk.outbox WHERE published_at IS NULL
""")

# Deliveries whose subscription was deleted or deactivated after the fan-out: dead, never sent.
# SKIP LOCKED: a delivery in flight at another worker is left to it.
RETIRE_ORPHANS = text("""
UPDATE desk.deliveries d
   SET status = 'dead',
       last_error = CASE WHEN s.deleted_at IS NOT NULL THEN 'subscription deleted' ELSE 'subscription inactive' END
  FROM desk.subscriptions s
 WHERE s.id = d.subscription_id AND d.id IN (
        -- from the (few) removed subscriptions to their pending deliveries, not through every pending delivery
        SELECT p.id FROM desk.subscriptions q JOIN desk.deliveries p ON p.subscription_id = q.id
         WHERE p.status = 'pending' AND (q.deleted_at IS NOT NULL OR NOT q.active)
         ORDER BY p.id LIMIT :n
           FOR UPDATE OF p SKIP LOCKED)
RETURNING d.id
""")
# Removed subscriptions are rare: their leftovers are looked for every few seconds, not at every claim.
RETIRE_EVERY_SECONDS = 5.0


async def publish_pending(conn: AsyncConnection | AsyncSession, limit: int = 500) -> int:
    """Fan out and number up to `limit` unpublished events in the caller's transaction; the advisory
    lock is held until that transaction ends, so commit soon after."""
    return len(await _publish(conn, limit))


async def _publish(conn: AsyncConnection | AsyncSession, limit: int) -> list[str]:
    """`publish_pending`, returning the types of the events published."""
    await conn.execute(FAN_OUT_LOCK, {"key": FAN_OUT_LOCK_KEY})
    return [r.event_type for r in await conn.execute(FAN_OUT, {"n": limit})]


# Internal deliveries (to the desk's services) and external ones (to partners and companies) are claimed apart:
# the first are sent in batches and paced, the second one request each.
# Claim, then commit: the claimed rows get a lease (next_attempt_at in the future, while they stay pending so
# later deliveries of the same aggregate keep waiting) and their attempt is counted now, so the HTTP call
# runs with no transaction open and no connection held. A worker that dies before recording leaves the
# delivery to come due again when its lease ends (at least once); its late record is ignored if another
# worker claimed the delivery meanwhile (the attempt number moved on). A delivery that kills its worker
# every time still runs out of attempts.
_CLAIMED = """
UPDATE desk.deliveries d
   SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => :lease)
  FROM due, desk.subscriptions s, desk.outbox o
 WHERE d.id = due.id AND s.id = d.subscription_id AND o.id = d.event_id
RETURNING d.id, d.attempts, d.subscription_id, s.url, s.secret, s.previous_secret, s.previous_secret_expires_at,
          s.owner_kind, s.service, o.event_id, o.event_type, o.event_version, o.source, o.occurred_at,
          o.aggregate_type, o.aggregate_id, o.payload
"""
# Each claim walks its own queue of pending deliveries in id order (partial indexes of migration 0032) and stops
# at its batch: one desk service's queue (its subscription, passed as a value so the plan is made for it), or the
# partners' and companies'. Only the oldest pending delivery of a (subscription, aggregate) may go, so one
# application's events reach each subscriber in order: checked per candidate by a subquery (the first pending id
# of its aggregate, through the partial index of pending deliveries on (subscription_id, aggregate_key, id) of
# migration 0033, which reads that application's deliveries alone; through the queue's index it walked past every
# delivery sent since the last vacuum), which PostgreSQL cannot turn into a join over every pending delivery.
# Written so that no plan has to read the whole backlog, whatever the statistics say (on a click day they are
# minutes old: the table was analysed before the burst). As `min(e.id)` of the aggregate the check could also be
# answered by walking the queue's own index in id order until a delivery of that aggregate turned up, and once
# PostgreSQL chose that (a CI run, tests/shared/events/test_worker_batches.py::
# test_the_order_check_of_a_claim_reads_only_its_own_aggregate). It asks instead for the first pending delivery at
# or after the aggregate in (aggregate, id) order: the same delivery (the candidate itself is one, so the first is
# of its aggregate, and the oldest of it), an order only the aggregate index gives without sorting, and the claim
# rules sorting out (CUSTOM_PLAN).
_OLDEST_OF_ITS_AGGREGATE = """
       AND d.id = (SELECT e.id FROM desk.deliveries e
                    WHERE e.subscription_id = d.subscription_id AND e.aggregate_key >= d.aggregate_key
                      AND e.status = 'pending'
                    ORDER BY e.aggregate_key, e.id LIMIT 1)
"""


def _claim(queue: str) -> TextClause:
    """The claim of one queue of pending deliveries (`queue`: the condition on `d` that picks it)."""
    return text(
        f"""
WITH due AS (
    SELECT d.id
      FROM desk.deliveries d
      JOIN desk.subscriptions s ON s.id = d.subscription_id
     WHERE {queue} AND d.status = 'pending' AND d.next_attempt_at <= now()
       AND s.active AND s.deleted_at IS NULL{_OLDEST_OF_ITS_AGGREGATE}
     ORDER BY d.id
     LIMIT :n
       FOR UPDATE OF d SKIP LOCKED
){_CLAIMED}"""
    )


# the partners' and companies' queue, and one desk service's (its subscription passed as a value)
CLAIM = _claim("NOT d.internal")
SERVICE_SUBSCRIPTION = text("SELECT id FROM desk.subscriptions WHERE owner_kind = 'service' AND service = :service")
CLAIM_INTERNAL = _claim("d.subscription_id = :subscription")

# How a claim is planned, for its transaction only. Its best plan depends on its parameters (which queue) and on
# how many deliveries are pending: after five runs PostgreSQL may switch a prepared statement to a generic plan,
# which walked every delivery (seconds with a click day's backlog), so each claim is planned for its own values.
# And the plan must walk the queue's index in order and stop at the batch: with statistics older than the
# backlog, PostgreSQL preferred to read every pending delivery of the queue and sort them (tens to hundreds of ms
# per claim after a burst), so sorting and bitmap scans are ruled out for the claim.
CUSTOM_PLAN = text(
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), set_config('enable_sort', 'off', true),"
    " set_config('enable_bitmapscan', 'off', true)"
)

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
# A round's attempts recorded set-based: one INSERT for their log, one UPDATE for the delivered ones, each
# taking its rows as arrays (a round is up to a batch of 200: two statements, not two per delivery).
LOG_ATTEMPTS = text("""
INSERT INTO desk.delivery_attempts (delivery_id, attempt, status_code, latency_ms, error)
SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:attempts AS integer[]), CAST(:codes AS integer[]),
                     CAST(:ms AS integer[]), CAST(:errors AS text[]))
""")
DELIVERED_MANY = text("""
UPDATE desk.deliveries d
   SET status = 'delivered', delivered_at = now(), last_status_code = v.code, last_error = NULL
  FROM unnest(CAST(:ids AS bigint[]), CAST(:attempts AS integer[]), CAST(:codes AS integer[])) AS v(id, attempt, code)
 WHERE d.id = v.id AND d.attempts = v.attempt AND d.status = 'pending'
""")
FAILED = text("""
UPDATE desk.deliveries SET status = :status, next_attempt_at = :next, last_status_code = :code, last_error = :error
 WHERE id = :id AND attempts = :attempt AND status = 'pending'
""")


DRAIN_LIMIT = 64 * 1024  # a partner's answer read (and discarded) up to this, so its connection can be reused
BATCH_ACCEPTED = frozenset({"processed", "duplicate", "ignored"})
# A batch answered with one of these is sent again one event at a time, to the single-event route.
BATCH_UNSUPPORTED = frozenset({404, 405, 413})


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
    # monitoring starts projects from accepted decisions, keeps the application facts of its statistics and the
    # outcomes of B2B meetings (the project's networking results)
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
            "meeting.outcome_recorded",
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
        clock: Callable[[], float] = time.monotonic,
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
        self._injected_http = http is not None  # a test's client: used for every delivery, partners' included
        self._pool: OrderedDict[tuple[str, str, int, str], httpx.AsyncClient] = OrderedDict()
        self.clock = clock  # pacing's time (a test steps it instead of sleeping)
        self._submits: deque[tuple[float, int]] = deque()  # (when seen arriving, how many application.submitted)
        self._seen_up_to: int | None = None  # the newest outbox id the arrivals probe has counted
        self._held_since: float | None = None  # when internal delivery started to wait for the burst to pass
        self._draining = False  # the maximum lag was reached: deliver internal batches until none is left

    # ------------------------------------------------------------ pacing

    async def note_arrivals(self) -> int:
        """Count the `application.submitted` events written to the outbox since the last probe (at the first, the
        unpublished ones) for the pacing rate; returns how many."""
        if self.settings.pacing_submits_per_second <= 0:
            return 0
        async with self.engine.connect() as conn:
            if self._seen_up_to is None:
                row = (await conn.execute(FIRST_ARRIVALS)).one()
            else:
                row = (await conn.execute(ARRIVALS, {"after": self._seen_up_to})).one()
        if row.last is not None:
            self._seen_up_to = max(row.last, self._seen_up_to or 0)
        if row.submitted:
            self._submits.append((self.clock(), row.submitted))
        return int(row.submitted)

    def submit_rate(self) -> float:
        """New `application.submitted` per second over the pacing window, as the arrivals probe counted them."""
        window = self.settings.pacing_window_seconds
        now = self.clock()
        while self._submits and self._submits[0][0] <= now - window:
            self._submits.popleft()
        return sum(n for _, n in self._submits) / window

    def may_deliver(self) -> bool:
        """Whether the fan-out and the deliveries (internal batches and partners' webhooks) go on this round: yes
        unless a burst lasts and has not yet been waited for `pacing_max_lag_seconds`."""
        threshold = self.settings.pacing_submits_per_second
        if self._draining or threshold <= 0:
            return True
        if self.submit_rate() <= threshold:
            self._held_since = None
            return True
        now = self.clock()
        if self._held_since is None:
            self._held_since = now
        if now - self._held_since >= self.settings.pacing_max_lag_seconds:
            self._draining = True
            log.info("internal delivery waited its longest during a burst: delivering anyway")
            return True
        return False

    async def fan_out(self) -> int:
        async with self.engine.begin() as conn:
            return len(await _publish(conn, 500))

    async def fan_out_paced(self) -> int:
        """The fan-out, unless a burst holds it back (the arrivals are counted either way)."""
        await self.note_arrivals()
        return await self.fan_out() if self.may_deliver() else 0

    async def retire_orphans(self) -> int:
        """Dead-letter what deleted or deactivated subscriptions still had pending."""
        async with self.engine.begin() as conn:
            retired = (await conn.execute(RETIRE_ORPHANS, {"n": 1000})).all()
        if retired:
            log.info("deliveries to removed subscriptions dead-lettered", count=len(retired))
        return len(retired)

    async def claim(self) -> tuple[list[Any], frozenset[tuple[str, int]]]:
        """Claim a batch of due deliveries to partners and companies (and read the officers' port allowances) in
        one short transaction, committed before anything is sent."""
        async with self.engine.begin() as conn:
            await conn.execute(CUSTOM_PLAN)
            rows = (await conn.execute(CLAIM, {"n": self.settings.worker_batch, "lease": self.lease_seconds})).all()
            allowances: frozenset[tuple[str, int]] = frozenset()
            if rows and self.production:
                allowances = frozenset((r.host, r.port) for r in await conn.execute(PORT_ALLOWANCES))
        return sorted(rows, key=lambda r: r.id), allowances

    async def claim_internal(self, service: str) -> list[Any]:
        """Claim up to `internal_batch_size` due deliveries to one of the desk's services, committed before
        sending."""
        async with self.engine.begin() as conn:
            subscription = (await conn.execute(SERVICE_SUBSCRIPTION, {"service": service})).scalar_one_or_none()
            if subscription is None:
                return []
            await conn.execute(CUSTOM_PLAN)
            params = {"n": self.settings.internal_batch_size, "lease": self.lease_seconds, "subscription": subscription}
            rows = (await conn.execute(CLAIM_INTERNAL, params)).all()
        return sorted(rows, key=lambda r: r.id)

    async def deliver_due(self) -> int:
        """Claim (and commit), send with no transaction open, then record in a new transaction; returns how
        many deliveries were attempted. The desk's services and the partners are served side by side, so a
        slow inbox batch (evaluation's admissibility) never holds the partners' webhooks back, nor they it."""
        await self.retire_orphans()
        if not self.may_deliver():
            return 0
        return sum(await asyncio.gather(self.deliver_internal(), self.deliver_external()))

    async def deliver_external(self) -> int:
        """One claimed batch of deliveries to partners and companies, sent concurrently, recorded together."""
        rows, allowances = await self.claim()
        if not rows:
            return 0
        await self._trim_pool()
        outcomes = await asyncio.gather(*(self._send(r, allowances) for r in rows))
        async with self.engine.begin() as conn:
            await self._record_all(conn, list(zip(rows, outcomes, strict=True)))
        return len(rows)

    async def deliver_internal(self) -> int:
        """One batch to each desk service, side by side."""
        return sum(await asyncio.gather(*(self.deliver_internal_to(service) for service in INTERNAL_SUBSCRIPTIONS)))

    async def deliver_internal_to(self, service: str) -> int:
        """One batch to one desk service (claimed, sent in one request, recorded per delivery)."""
        rows = await self.claim_internal(service)
        if self._draining and len(rows) < self.settings.internal_batch_size:
            # this backlog is (about to be) empty: pacing may hold again, for at most the maximum lag from now
            self._draining = False
            self._held_since = None
        if not rows:
            return 0
        result = await self._send_batch(rows)
        async with self.engine.begin() as conn:
            await self._record_all(conn, result)
        return len(rows)

    async def _send_batch(self, rows: list[Any]) -> list[tuple[Any, Outcome]]:
        """One request carrying `rows`' events to their service; an outcome per delivery from the per-event
        results (a request that fails as a whole fails every delivery in it)."""
        first = rows[0]
        body = orjson.dumps({"events": [envelope(r) for r in rows]}).decode()
        headers = sign_headers(msg_id=f"batch_{first.id}", at=datetime.now(UTC), body=body, secrets_=[first.secret])
        headers["content-type"] = "application/json"
        headers["user-agent"] = "regional-desk-webhooks/1"
        headers["authorization"] = f"Bearer {self._token()}"
        start = time.perf_counter()
        url = f"{first.url.rstrip('/')}/batch"
        try:
            async with asyncio.timeout(self.send_deadline):
                resp = await self.http.post(url, content=body, headers=headers)
            ms = int((time.perf_counter() - start) * 1000)
            if resp.status_code in BATCH_UNSUPPORTED:  # a service not yet serving batches (a rolling upgrade)
                return [(r, await self._send(r, frozenset())) for r in rows]
            if not 200 <= resp.status_code < 300:
                log.warning("internal batch refused", url=url, status=resp.status_code, body=resp.text[:300])
                return [(r, Outcome(False, resp.status_code, ms, "http_error")) for r in rows]
            results = {str(x["event_id"]): x for x in orjson.loads(resp.content)["results"]}
        except (TimeoutError, httpx.TimeoutException):
            return [(r, Outcome(False, None, int((time.perf_counter() - start) * 1000), "timeout")) for r in rows]
        except httpx.ConnectError:
            return [
                (r, Outcome(False, None, int((time.perf_counter() - start) * 1000), "connect_failed")) for r in rows
            ]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:  # in transit, or not the batch contract
            log.info("internal batch failed", url=url, error=f"{type(e).__name__}: {e}")
            return [
                (r, Outcome(False, None, int((time.perf_counter() - start) * 1000), "transport_error")) for r in rows
            ]
        outcomes = []
        for r in rows:
            result = results.get(str(r.event_id))
            if result is not None and result.get("status") in BATCH_ACCEPTED:
                outcomes.append((r, Outcome(True, resp.status_code, ms, None)))
            else:  # failed, or left out of the answer: sent again later
                status = (result or {}).get("problem", {}) or {}
                outcomes.append((r, Outcome(False, status.get("status"), ms, "http_error")))
        return outcomes

    def _client_for(self, target: egress.PinnedTarget | None) -> httpx.AsyncClient:
        """The client whose kept-alive connections go to this checked address (under this TLS name)."""
        if target is None or self._injected_http:
            return self.http
        parsed = httpx.URL(target.url)
        key = (parsed.scheme, parsed.host, parsed.port or 0, target.headers["host"])
        client = self._pool.get(key)
        if client is None:
            n = self.settings.webhook_connections_per_host
            client = httpx.AsyncClient(
                # waiting for one of the host's connections is bounded by the whole send's deadline, not this
                timeout=httpx.Timeout(self.settings.webhook_timeout_seconds, pool=None),
                follow_redirects=False,
                limits=httpx.Limits(max_connections=n, max_keepalive_connections=n, keepalive_expiry=30),
            )
            self._pool[key] = client
        self._pool.move_to_end(key)
        return client

    async def _trim_pool(self, keep: int = 256) -> None:
        """Close the clients of the addresses least recently delivered to, past `keep` (between rounds, so none
        is in use)."""
        while len(self._pool) > keep:
            _key, client = self._pool.popitem(last=False)
            await client.aclose()

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
                    if not self._injected_http:
                        # this target's pooled client serves only this name at this address: keep it alive
                        headers.pop("connection", None)
                client = self._client_for(target)
                # Streamed: the body is drained up to DRAIN_LIMIT so the connection stays reusable, and never kept;
                # a longer one is abandoned with its connection.
                async with client.stream("POST", url, content=body, headers=headers, extensions=extensions) as resp:
                    status = resp.status_code
                    read = 0
                    if not resp.is_stream_consumed:  # an in-memory answer (a test's transport) has nothing to drain
                        async for chunk in resp.aiter_raw():
                            read += len(chunk)
                            if read > DRAIN_LIMIT:
                                break
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

    async def _record_all(self, conn: AsyncConnection, pairs: list[tuple[Any, Outcome]]) -> None:
        """Record a round's attempts: the log and the delivered ones in two set-based statements, the failed
        ones one by one (each has its own back-off)."""
        if not pairs:
            return
        await conn.execute(
            LOG_ATTEMPTS,
            {
                "ids": [r.id for r, _o in pairs],
                "attempts": [r.attempts for r, _o in pairs],
                "codes": [o.status_code for _r, o in pairs],
                "ms": [o.latency_ms for _r, o in pairs],
                "errors": [o.error for _r, o in pairs],
            },
        )
        delivered = [(r, o) for r, o in pairs if o.ok]
        if delivered:
            await conn.execute(
                DELIVERED_MANY,
                {
                    "ids": [r.id for r, _o in delivered],
                    "attempts": [r.attempts for r, _o in delivered],
                    "codes": [o.status_code for _r, o in delivered],
                },
            )
        for row, out in pairs:
            if not out.ok:
                await self._record_failure(conn, row, out)

    async def _record(self, conn: AsyncConnection, row: Any, out: Outcome) -> None:
        attempt = row.attempts  # counted by the claim
        await conn.execute(
            LOG_ATTEMPT,
            {"id": row.id, "attempt": attempt, "code": out.status_code, "ms": out.latency_ms, "error": out.error},
        )
        if out.ok:
            await conn.execute(DELIVERED, {"id": row.id, "attempt": attempt, "code": out.status_code})
            return
        await self._record_failure(conn, row, out)

    async def _record_failure(self, conn: AsyncConnection, row: Any, out: Outcome) -> None:
        attempt = row.attempts
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
        fanned = await self.fan_out_paced()
        sent = await self.deliver_due()
        return fanned + sent

    async def sweep_expired_keys(self) -> int:
        """Idempotency records past their retention are replaced lazily when a key is reused; the rest are
        removed here, a bounded batch at a time, so the table does not grow for ever."""
        async with self.engine.begin() as conn:
            result = await conn.execute(SWEEP_KEYS)
        return int(result.rowcount or 0)

    async def run(self, stop: asyncio.Event) -> None:
        """Fan out and deliver until `stop` is set, in lanes that do not wait for one another: the fan-out, one
        lane per desk service and one for the partners' and companies' webhooks. A slow inbox (evaluation's
        admissibility on a click day) then holds back neither the webhooks nor the other service. Stopping is
        graceful: each lane sends and records the batch it has in flight first (a delivery is only ever
        interrupted by the process dying, and then resent)."""
        async with self.engine.begin() as conn:
            await ensure_internal_subscriptions(conn, self.settings)
        log.info("delivery worker started")
        lanes = [self._lane(stop, "fan-out", self._fan_out_lane()), self._lane(stop, "partners", self._deliver_paced)]
        lanes += [
            self._lane(stop, service, partial(self._deliver_paced, service)) for service in INTERNAL_SUBSCRIPTIONS
        ]
        await asyncio.gather(*lanes)
        await self.aclose()
        log.info("delivery worker stopped")

    def _fan_out_lane(self) -> Callable[[], Awaitable[int]]:
        """The fan-out, with the housekeeping that is due: removed subscriptions' leftovers, expired keys."""
        due = {"retire": 0.0, "sweep": 0.0}

        async def once() -> int:
            fanned = await self.fan_out_paced()
            now = time.monotonic()
            if now >= due["retire"]:
                await self.retire_orphans()
                due["retire"] = now + RETIRE_EVERY_SECONDS
            if now >= due["sweep"]:
                await self.sweep_expired_keys()
                due["sweep"] = now + SWEEP_EVERY_SECONDS
            return fanned

        return once

    async def _deliver_paced(self, service: str | None = None) -> int:
        """One batch of a delivery lane (a desk service's, or the partners' when `service` is None), unless a
        burst holds deliveries back."""
        if not self.may_deliver():
            return 0
        return await (self.deliver_external() if service is None else self.deliver_internal_to(service))

    async def _lane(self, stop: asyncio.Event, name: str, once: Callable[[], Awaitable[int]]) -> None:
        """Run `once` until `stop` is set, right away again while it finds work, after a poll interval when not."""
        while not stop.is_set():
            try:
                busy = await once()
            except Exception:  # the worker must outlive a database restart
                log.exception("worker lane failed", lane=name)
                busy = 0
            if not busy:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.settings.worker_poll_seconds)
                except TimeoutError:
                    pass

    async def aclose(self) -> None:
        """Close the connections this worker opened (an injected client is its owner's to close)."""
        if self._owns_http:
            await self.http.aclose()
        await self._trim_pool(keep=0)
