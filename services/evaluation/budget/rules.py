"""The call's rules as evaluation reads them: from intake's API (`IntakeClient.get_call`), cached.

A version of a call's rules never changes (an amendment is a new version), so a document is cached
per (call id, version) for the life of the process. Which version is current is asked again after
`CURRENT_VERSION_TTL` seconds, so an amendment is seen within that time without asking intake on
every request (approvals come in bursts).
"""

from __future__ import annotations

import time
import uuid

from shared.clients.base import NotFoundAtPeer, PeerUnavailable
from shared.clients.intake import IntakeClient
from shared.domain.call_rules import CallRules
from shared.errors import PEER_UNAVAILABLE, DeskError, NotFound

CURRENT_VERSION_TTL = 300.0

_RULES: dict[tuple[uuid.UUID, int], CallRules] = {}
_CURRENT: dict[uuid.UUID, tuple[int, float]] = {}


async def call_rules(intake: IntakeClient, call_id: uuid.UUID) -> CallRules:
    """The rules in force for the call. Unknown call -> NotFound; intake unreachable -> 503 problem."""
    current = _CURRENT.get(call_id)
    if current is not None and time.monotonic() - current[1] < CURRENT_VERSION_TTL:
        cached = _RULES.get((call_id, current[0]))
        if cached is not None:
            return cached
    try:
        call = await intake.get_call(call_id)
    except PeerUnavailable as exc:
        raise DeskError("Il servizio dei bandi (intake) non risponde: riprovare più tardi.",
                        "The intake service is unreachable: retry later.", kind=PEER_UNAVAILABLE,
                        headers={"Retry-After": "30"}, extra={"peer": exc.peer}) from exc
    except NotFoundAtPeer as exc:
        raise NotFound(f"Il bando {call_id} non esiste.", f"Call {call_id} does not exist.") from exc
    _RULES.setdefault((call_id, call.current_version), call.rules)
    _CURRENT[call_id] = (call.current_version, time.monotonic())
    return _RULES[(call_id, call.current_version)]
