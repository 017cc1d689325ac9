"""The call's rules as evaluation reads them: from intake's API (`IntakeClient.get_call`), never its tables.

A version of a call's rules never changes (an amendment is a new version), so a validated document is
kept per (call id, version) for the life of the process. Which version is current is asked again after
`CURRENT_VERSION_TTL` seconds, so an amendment reaches evaluation within that time while a burst of
scores or approvals costs one peer call.
"""

from __future__ import annotations

import time
import uuid

from shared.clients.base import NotFoundAtPeer, PeerUnavailable
from shared.clients.intake import IntakeClient
from shared.domain.call_rules import CallRules
from shared.errors import PEER_UNAVAILABLE, Conflict, DeskError, NotFound

CURRENT_VERSION_TTL = 60.0

_RULES: dict[tuple[uuid.UUID, int], CallRules] = {}
_CURRENT: dict[uuid.UUID, tuple[int, float]] = {}


async def rules_of_call(intake: IntakeClient, call_id: uuid.UUID, *, call_in_path: bool = False) -> CallRules:
    """The rules in force for the call. Intake unreachable -> 503 (retry). A call intake does not know is a
    404 when the call is the addressed resource (`call_in_path`), else a 409 (a record points at it)."""
    known = _CURRENT.get(call_id)
    if known is not None and time.monotonic() - known[1] < CURRENT_VERSION_TTL:
        cached = _RULES.get((call_id, known[0]))
        if cached is not None:
            return cached
    try:
        call = await intake.get_call(call_id)
    except PeerUnavailable as exc:
        raise DeskError("Il servizio dei bandi (intake) non risponde: riprovare più tardi.",
                        "The intake service is unreachable: retry later.", kind=PEER_UNAVAILABLE,
                        headers={"Retry-After": "30"}, extra={"peer": exc.peer}) from exc
    except NotFoundAtPeer as exc:
        if call_in_path:
            raise NotFound(f"Il bando {call_id} non esiste.", f"Call {call_id} does not exist.") from exc
        raise Conflict(f"Il bando {call_id} non esiste presso intake.",
                       f"Call {call_id} is unknown to intake.") from exc
    rules = _RULES.setdefault((call_id, call.current_version), call.rules)
    _CURRENT[call_id] = (call.current_version, time.monotonic())
    return rules
