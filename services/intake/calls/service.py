"""Use cases on calls: publish, amend (new version), read, the public register, the seed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from cachetools import LRUCache
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.calls import repository
from services.intake.calls.schemas import DecreeIn
from services.intake.models import Call, CallCounter, CallVersion
from shared.audit import record_audit, record_event
from shared.domain.amendments import check_amendment
from shared.domain.call_rules import CallRules
from shared.domain.receipts import GENESIS
from shared.errors import ALREADY_EXISTS, CALL_FROZEN, VALIDATION, DeskError, NotFound, ProblemError, ValidationFailed
from shared.events.catalogue import CATALOGUE
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
        "id": call.id,
        "code": call.code,
        "title": call.title,
        "procedure": call.procedure,
        "current_version": call.current_version,
        "budget_total": call.budget_total,
        "window": {"opens_at": call.opens_at, "closes_at": call.closes_at},
        "effective_window": {"opens_at": opens, "closes_at": closes},
        "demo_window": call.demo_opens_at is not None,
        "status": status_of(call, now or datetime.now(UTC)),
        "etag": etag_of(call.version),
    }
    if rules is not None:
        out["rules"] = rules
    return out


# a version of a call's rules never changes once written: validated once per process
_RULES_CACHE: LRUCache[tuple[uuid.UUID, int], CallRules] = LRUCache(4096)


async def rules_of_call(session: AsyncSession, call: Call, version: int | None = None) -> CallRules:
    return await rules_of_version(session, call.id, version or call.current_version)


def cached_rules(call_id: uuid.UUID, version: int) -> CallRules | None:
    return _RULES_CACHE.get((call_id, version))


def remember_rules(call_id: uuid.UUID, version: int, document: dict[str, Any]) -> CallRules:
    rules = _RULES_CACHE[(call_id, version)] = CallRules.model_validate(document)
    return rules


async def rules_of_version(session: AsyncSession, call_id: uuid.UUID, version: int) -> CallRules:
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
        raise DeskError(
            f"Esiste già un bando con codice {rules.code}.",
            f"A call with code {rules.code} already exists.",
            kind=ALREADY_EXISTS,
        )
    call = Call(
        id=uuid.uuid4(),
        code=rules.code,
        title=rules.title,
        procedure=rules.procedure,
        current_version=1,
        opens_at=rules.window.opens_at,
        closes_at=rules.window.closes_at,
        budget_total=rules.budget_total,
        version=1,
    )
    session.add(call)
    await session.flush()
    session.add(
        CallVersion(
            call_id=call.id,
            version=1,
            rules=rules.model_dump(mode="json"),
            reason=None,
            created_by=actor.principal.client_id,
        )
    )
    session.add(CallCounter(call_id=call.id, last_protocol=0, last_chain_hash=GENESIS))
    await session.flush()
    await record_audit(
        session,
        actor,
        action="call.published",
        resource_type="call",
        resource_id=call.id,
        after={"code": rules.code, "version": 1},
    )
    return call


def _pointer(field: str) -> str:
    """`expense_categories[2].cap.of` -> `/rules/expense_categories/2/cap/of`."""
    return "/rules/" + field.replace("[", ".").replace("]", "").replace(".", "/")


def _frozen(refused: tuple[str, ...]) -> DeskError:
    names = ", ".join(refused)
    return DeskError(
        f"Lo sportello è aperto: le regole del bando sono congelate. Campi non modificabili: {names}. Dopo "
        "l'apertura si può solo posticipare la chiusura o aumentare la dotazione, con decreto.",
        f"The window has opened: the call's rules are frozen. Fields that cannot change: {names}. After opening "
        "only a later close or a higher budget is allowed, by decree.",
        kind=CALL_FROZEN,
        extra={"refused_fields": list(refused)},
        errors=[
            ProblemError(
                "field_frozen",
                _pointer(f),
                f"Campo congelato dall'apertura dello sportello: {f}.",
                f"Field frozen since the window opened: {f}.",
            )
            for f in refused
        ],
    )


async def add_version(
    *,
    session: AsyncSession,
    actor: Actor,
    call: Call,
    rules: CallRules,
    reason: str,
    decree: DecreeIn | None = None,
    now: datetime | None = None,
) -> Call:
    """A new version of the rules. Before the window opens anything may change. Once it has opened the rules in
    force are frozen: only a later close or a higher budget, each with its decree (`shared.domain.amendments`).
    Emits `call.amended` in the same transaction (evaluation's budget ledger applies it)."""
    if rules.code != call.code:
        raise DeskError("Il codice del bando non può cambiare.", "The call's code cannot change.", kind=VALIDATION)
    current = await rules_of_call(session, call)
    opened = (now or datetime.now(UTC)) >= effective_window(call)[0]
    check = check_amendment(current, rules, opened=opened)
    if check.refused:
        raise _frozen(check.refused)
    if opened and check.needs_decree and decree is None:
        raise ValidationFailed(
            "Dopo l'apertura una proroga o un aumento della dotazione richiede il decreto che lo dispone.",
            "After opening, an extension or a budget increase needs the decree that orders it.",
            errors=[
                ProblemError(
                    "decree_required",
                    "/decree",
                    "Indicare numero e data del decreto.",
                    "Give the decree's number and date.",
                )
            ],
        )
    before = {"version": call.current_version, "budget_total": call.budget_total, "closes_at": call.closes_at}
    previous_version = call.current_version
    call.current_version += 1
    call.version += 1
    call.title = rules.title
    call.procedure = rules.procedure
    call.opens_at = rules.window.opens_at
    call.closes_at = rules.window.closes_at
    if call.demo_closes_at is not None and check.extends_window:
        # a local demo's window moves by the same extension as the published one
        call.demo_closes_at += rules.window.closes_at - current.window.closes_at
    call.budget_total = rules.budget_total
    call.updated_at = datetime.now(UTC)
    decree_json = {"number": decree.number, "date": decree.date.isoformat()} if decree is not None else None
    session.add(
        CallVersion(
            call_id=call.id,
            version=call.current_version,
            rules=rules.model_dump(mode="json"),
            reason=reason,
            decree=decree_json,
            created_by=actor.principal.client_id,
        )
    )
    await session.flush()
    await record_audit(
        session,
        actor,
        action="call.amended",
        resource_type="call",
        resource_id=call.id,
        before=before,
        after={
            "version": call.current_version,
            "reason": reason,
            "decree": decree_json,
            "changed_fields": list(check.changed),
            "budget_total": call.budget_total,
            "closes_at": call.closes_at,
        },
    )
    await record_event(
        session,
        actor,
        event_type="call.amended",
        subject_type="call",
        subject_id=call.id,
        version=CATALOGUE["call.amended"].version,
        payload={
            "call_id": call.id,
            "code": call.code,
            "version": call.current_version,
            "previous_version": previous_version,
            "opened": opened,
            "changed_fields": list(check.changed),
            "budget_total": rules.budget_total,
            "previous_budget_total": current.budget_total,
            "closes_at": rules.window.closes_at,
            "previous_closes_at": current.window.closes_at,
            "decree": decree_json,
            "reason": reason,
            "amended_at": call.updated_at,
        },
    )
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
            await record_audit(
                session,
                actor,
                action="call.demo_window_opened",
                resource_type="call",
                resource_id=call.id,
                after={"opens_at": now, "closes_at": call.demo_closes_at},
            )
    return call
