"""Use cases on calls: publish, amend (new version), read, the public register, the seed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.calls import repository
from services.intake.models import Call, CallCounter, CallVersion
from shared.audit import record_audit
from shared.domain.call_rules import CallRules
from shared.domain.receipts import GENESIS
from shared.errors import ALREADY_EXISTS, VALIDATION, DeskError, NotFound
from shared.routing import Actor, etag_of


def effective_window(call: Any) -> tuple[datetime, datetime]:
    """The window the server enforces: a local demo's, else the published one (a Call or a row with its columns)."""
    return (call.demo_opens_at or call.opens_at, call.demo_closes_at or call.closes_at)


def status_of(call: Call, now: datetime) -> str:
    opens, closes = effective_window(call)
    return "upcoming" if now < opens else "open" if now < closes else "closed"


def to_out(call: Call, rules: CallRules | None = None, *, now: datetime | None = None) -> dict[str, Any]:
    opens, closes = effective_window(call)
    out: dict[str, Any] = {
        "id": call.id, "code": call.code, "title": call.title, "procedure": call.procedure,
        "current_version": call.current_version, "budget_total": call.budget_total,
        "window": {"opens_at": call.opens_at, "closes_at": call.closes_at},
        "effective_window": {"opens_at": opens, "closes_at": closes},
        "demo_window": call.demo_opens_at is not None,
        "status": status_of(call, now or datetime.now(UTC)), "etag": etag_of(call.version),
    }
    if rules is not None:
        out["rules"] = rules
    return out


_RULES_CACHE: dict[tuple[uuid.UUID, int], CallRules] = {}


async def rules_of(session: AsyncSession, call: Call, version: int | None = None) -> CallRules:
    return await rules_for(session, call.id, version or call.current_version)


def cached_rules(call_id: uuid.UUID, version: int) -> CallRules | None:
    return _RULES_CACHE.get((call_id, version))


def remember_rules(call_id: uuid.UUID, version: int, document: dict[str, Any]) -> CallRules:
    rules = _RULES_CACHE[(call_id, version)] = CallRules.model_validate(document)
    return rules


async def rules_for(session: AsyncSession, call_id: uuid.UUID, version: int) -> CallRules:
    """The rules of a version of the call. Versions never change once written, so each is validated once
    per process (the submit path would otherwise re-validate the whole document on every request)."""
    key = (call_id, version)
    cached = _RULES_CACHE.get(key)
    if cached is None:
        v = await repository.get_version(session, *key)
        assert v is not None
        cached = _RULES_CACHE[key] = CallRules.model_validate(v.rules)
    return cached


async def create_call(*, session: AsyncSession, actor: Actor, rules: CallRules) -> Call:
    if await repository.get_by_code(session, rules.code) is not None:
        raise DeskError(f"Esiste già un bando con codice {rules.code}.",
                        f"A call with code {rules.code} already exists.", kind=ALREADY_EXISTS)
    call = Call(id=uuid.uuid4(), code=rules.code, title=rules.title, procedure=rules.procedure, current_version=1,
                opens_at=rules.window.opens_at, closes_at=rules.window.closes_at,
                budget_total=rules.budget_total, version=1)
    session.add(call)
    await session.flush()
    session.add(CallVersion(call_id=call.id, version=1, rules=rules.model_dump(mode="json"), reason=None,
                            created_by=actor.principal.client_id))
    session.add(CallCounter(call_id=call.id, last_protocol=0, last_chain_hash=GENESIS))
    await session.flush()
    await record_audit(session, actor, action="call.published", resource_type="call", resource_id=call.id,
                       after={"code": rules.code, "version": 1})
    return call


async def add_version(*, session: AsyncSession, actor: Actor, call: Call, rules: CallRules, reason: str) -> Call:
    """A new version of the rules. Before the window opens it simply replaces the rules in force; once it
    has opened, earlier versions stay frozen and this one is recorded as an amendment."""
    if rules.code != call.code:
        raise DeskError("Il codice del bando non può cambiare.", "The call's code cannot change.",
                        kind=VALIDATION)
    before = {"version": call.current_version}
    call.current_version += 1
    call.version += 1
    call.title = rules.title
    call.procedure = rules.procedure
    call.opens_at = rules.window.opens_at
    call.closes_at = rules.window.closes_at
    call.budget_total = rules.budget_total
    call.updated_at = datetime.now(UTC)
    session.add(CallVersion(call_id=call.id, version=call.current_version, rules=rules.model_dump(mode="json"),
                            reason=reason, created_by=actor.principal.client_id))
    await session.flush()
    await record_audit(session, actor, action="call.amended", resource_type="call", resource_id=call.id,
                       before=before, after={"version": call.current_version, "reason": reason})
    return call


async def get_call(session: AsyncSession, call_id: uuid.UUID) -> Call:
    call = await repository.get(session, call_id)
    if call is None:
        raise NotFound()
    return call


def load_rules_file(path: Path) -> CallRules:
    return CallRules.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


async def seed_call(*, session: AsyncSession, actor: Actor, path: Path, open_now_days: int | None = None) -> Call:
    """Seed a call from its rules file (idempotent on the call's code). With `open_now_days`, a local demo
    opens its copy now for that many days; the rules document keeps the published dates."""
    rules = load_rules_file(path)
    call = await repository.get_by_code(session, rules.code)
    if call is None:
        call = await create_call(session=session, actor=actor, rules=rules)
    if open_now_days is not None:
        now = datetime.now(UTC)
        if not (call.demo_opens_at and call.demo_opens_at <= now < (call.demo_closes_at or now)):
            call.demo_opens_at = now
            call.demo_closes_at = now + timedelta(days=open_now_days)
            call.version += 1
            await session.flush()
            await record_audit(session, actor, action="call.demo_window_opened", resource_type="call",
                               resource_id=call.id, after={"opens_at": now, "closes_at": call.demo_closes_at})
    return call
