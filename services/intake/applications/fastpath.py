"""The click-day path: `POST /v1/applications/{id}/submit` served straight from ASGI.

On click day thousands of partners submit at the announced minute, and most of a submit's cost was the
framework around it (routing through every router, dependency solving, a session and its pool checkout)
rather than its own work. This middleware answers that one route with the same service functions as the
FastAPI route (`service.submit`; for a pre-checked draft the same commit statement, grouped with the
submits arriving together by `CommitBatcher`), the same authentication, rate limit, idempotency and
problem details, on a dedicated asyncpg pool in autocommit mode. Every other request, and this one when no
pool is configured (tests bound to one transaction), goes on to FastAPI, whose route stays the documented
contract.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import structlog
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from services.intake.applications import service
from services.intake.applications.endpoints import submit_key_of, submitter
from shared.errors import DeskError, desk_error_handler, http_error_handler, unhandled_handler
from shared.routing import Actor

log = structlog.get_logger("desk.submit")
SUBMIT_PATH = re.compile(
    r"^/v1/applications/([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{12})/submit$"
)


@asynccontextmanager
async def _connection(app_state: Any, pool: Any) -> AsyncIterator[Any]:
    """A connection of the submit pool, waited for in arrival order (services.intake.fairness)."""
    async with app_state.submit_gate, pool.acquire() as conn:
        yield conn


class _Route:
    """What the metrics middleware labels the request with (as FastAPI's route would)."""

    path = "/v1/applications/{application_id}/submit"


class CommitBatcher:
    """Commits the pre-checked submits that arrive together in one transaction (application-level group
    commit).

    A submit holds its call's counter row from its number to its commit, so one call's submits are serial,
    and under a burst most of that serial time was the hand-over of the row lock from one PostgreSQL backend
    to the next. Submits queue here in arrival order; a committer takes everything queued (up to
    `max_batch`) and commits them with `intake.commit_submission_group`: one statement, one round trip and one
    transaction for the whole group, each step of `intake.commit_submission` run once for all of its submits
    (per submit, PostgreSQL had spent more in starting and ending that function's statements than in their
    work), one lock hand-over and one commit, the numbers still following the queue's order. A group of one
    runs `intake.commit_submission` itself. At most `in_flight` groups are out at once, so the next group forms
    while one is in PostgreSQL.

    A full-path submit (a draft with no current verdict, checked by `service.submit_grouped`) joins the next
    group with its checked arguments, so it too shares the group's lock hand-over and commit.

    If the group's transaction fails (one submit's error aborts them all), each of its submits is answered
    None, and commits alone by the ordinary path, which gives it its own answer.
    """

    def __init__(self, pool: Any, gate: Any, *, max_batch: int = 64, in_flight: int = 2) -> None:
        self._pool, self._gate = pool, gate
        self._max_batch, self._in_flight = max_batch, in_flight
        self._queue: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._committers = 0

    async def commit(self, args: tuple[Any, ...]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((args, future))
        if self._committers < self._in_flight:
            self._committers += 1
            _background.add(task := asyncio.create_task(self._run()))
            task.add_done_callback(_background.discard)
        return await future

    async def _run(self) -> None:
        group: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        try:
            while self._queue:
                group, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                try:
                    async with self._gate, self._pool.acquire() as conn:
                        if len(group) == 1:
                            rows = [await conn.fetchrow(service.PRECHECKED_SQL, *group[0][0])]
                        else:
                            arrays = service.group_arguments([args for args, _ in group])
                            rows = await conn.fetch(service.GROUP_SQL, *arrays)
                except Exception:  # noqa: BLE001 - each submit retries alone and gets its own answer
                    log.info("submit group refused, its submits commit one by one", size=len(group))
                    rows = [None] * len(group)
                if len(rows) != len(group):  # cannot happen: the functions answer one row per submit
                    failure = RuntimeError(f"the group commit answered {len(rows)} rows for {len(group)} submits")
                    for _, future in group:
                        if not future.done():
                            future.set_exception(failure)
                else:
                    for (_, future), row in zip(group, rows, strict=True):
                        if not future.done():
                            future.set_result(row)
                group = []
        finally:
            self._committers -= 1
            for _, future in group:  # cancelled mid-group (shutdown): nobody is left waiting forever
                if not future.done():
                    future.cancel()


_background: set[asyncio.Task[None]] = set()


class SubmitFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = SUBMIT_PATH.match(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        pool = getattr(scope["app"].state, "submit_pool", None) if match else None
        if pool is None or match is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = _Route
        request = Request(scope, receive)
        try:
            response = await self._submit(request, pool, uuid.UUID(match.group(1)))
        except DeskError as exc:
            response = await desk_error_handler(request, exc)
        except StarletteHTTPException as exc:  # the body-size guard's 413, raised while the body is read
            response = await http_error_handler(request, exc)
        except ClientDisconnect:  # gone before its body arrived: nothing was done, and no one is left to answer
            log.info("client disconnected before its submit was read", path=scope["path"])
            return
        except Exception as exc:  # noqa: BLE001 - a database outage becomes a 503 problem, anything else a 500
            response = await unhandled_handler(request, exc)
        await response(scope, receive, send)

    async def _submit(self, request: Request, pool: Any, application_id: uuid.UUID) -> Response:
        principal = await submitter(request)  # the route's own authentication and key building
        app_state = request.app.state
        submit_key = await submit_key_of(request, principal)
        actor = Actor(principal, request.scope.get("state", {}).get("request_id"), app_state.settings.service_name)
        if_match = request.headers.get("if-match")
        args = service.prechecked_args(
            actor=actor, application_id=application_id, keyring=app_state.keyring, key=submit_key, if_match=if_match
        )
        committed = None if args is None else await app_state.submit_batcher.commit(args)
        if committed is not None and committed["outcome"] != "not_prechecked":
            out, replayed = await service.settle(
                committed, app_state.keyring, application_id, lambda: _connection(app_state, pool)
            )
        elif committed is not None:  # no current verdict: the draft came back; checked here, committed in a group
            out, replayed = await service.submit_grouped(
                attempt=committed,
                actor=actor,
                keyring=app_state.keyring,
                key=submit_key,
                commit=app_state.submit_batcher.commit,
                connection=lambda: _connection(app_state, pool),
            )
        else:  # its group failed, or it cannot take the pre-checked path: alone, in arrival order for a connection
            async with _connection(app_state, pool) as conn:
                out, replayed = await service.submit(
                    conn=conn,
                    actor=actor,
                    application_id=application_id,
                    keyring=app_state.keyring,
                    key=submit_key,
                    if_match=if_match,
                    durable=False,
                    prechecked=args is not None,
                )
        # The connection is back in the pool; wait for the commit's WAL flush (shared with the submits
        # committed meanwhile) on the flush pool's connection, then answer.
        await service.wait_durable(app_state.flush_pool.acquire)
        headers = {"Location": f"/v1/applications/{application_id}/receipt"}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return Response(orjson.dumps(out), status_code=201, media_type="application/json", headers=headers)
