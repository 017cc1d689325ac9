"""The one cache of a call's rules in the services that read intake (shared.clients.calls.CallVersions): each
version kept, which version is in force asked again after the TTL or at once after `forget`, driven by a clock."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

from shared.clients.calls import CallVersions


class Intake:
    """Intake as the cache reads it: the call in force (its `current_version`) and single versions, counted."""

    def __init__(self) -> None:
        self.current = 1
        self.calls = 0
        self.versions = 0

    async def get_call(self, call_id: uuid.UUID) -> Any:
        self.calls += 1
        return SimpleNamespace(id=call_id, current_version=self.current, rules=f"rules v{self.current}")

    async def get_call_version(self, call_id: uuid.UUID, version: int) -> Any:
        self.versions += 1
        return SimpleNamespace(call_id=call_id, version=version, rules=f"rules v{version}")


async def test_the_version_in_force_is_asked_again_after_the_ttl_and_each_version_is_kept() -> None:
    now = [0.0]
    cache, intake, call = CallVersions(ttl=60, timer=lambda: now[0]), Intake(), uuid.uuid4()
    first = await cache.current(intake, call)  # type: ignore[arg-type]
    assert (first.rules, intake.calls) == ("rules v1", 1)
    assert await cache.current(intake, call) is first and intake.calls == 1  # fresh: no peer call
    intake.current = 2  # an amendment at intake
    now[0] = 59.9
    assert (await cache.current(intake, call)).rules == "rules v1" and cache.current_version(call) == 1
    now[0] = 60.0  # the TTL has passed: intake is asked which version is in force
    assert (await cache.current(intake, call)).rules == "rules v2" and intake.calls == 2
    assert (await cache.version(intake, call, 1)).rules == "rules v1"  # type: ignore[arg-type]
    assert (await cache.version(intake, call, 1)).rules == "rules v1" and intake.versions == 1  # kept


async def test_forget_asks_intake_at_once() -> None:
    cache, intake, call = CallVersions(ttl=3600, timer=lambda: 0.0), Intake(), uuid.uuid4()
    await cache.current(intake, call)  # type: ignore[arg-type]
    intake.current = 2
    cache.forget(call)  # a call.amended event
    assert cache.current_version(call) is None
    assert (await cache.current(intake, call)).rules == "rules v2" and intake.calls == 2  # type: ignore[arg-type]
