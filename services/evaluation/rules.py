"""The call's rules as evaluation reads them: from intake's API (`IntakeClient.get_call`), never its tables.

Calls are kept by `shared.clients.calls.CallVersions`: each version for the life of the process, which version
is current asked again after `CURRENT_VERSION_TTL` seconds (or at once after a `call.amended` event,
`forget_current`), so an amendment reaches evaluation within that time while a burst of scores or approvals
costs one peer call.

An application is judged under the version it was submitted under (`rules_of_application`): the version
intake recorded at submission, carried in its snapshot (`call_version`). The budget, which an amendment may
raise, is the only figure read from the version in force.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from shared.clients.base import NotFoundAtPeer, PeerUnavailable
from shared.clients.calls import CallVersions
from shared.clients.intake import IntakeClient
from shared.domain.call_rules import CallRules
from shared.errors import PEER_UNAVAILABLE, Conflict, DeskError, NotFound

CURRENT_VERSION_TTL = 60.0

CALLS = CallVersions(ttl=CURRENT_VERSION_TTL)


def _unreachable(exc: PeerUnavailable) -> DeskError:
    return DeskError(
        "Il servizio dei bandi (intake) non risponde: riprovare più tardi.",
        "The intake service is unreachable: retry later.",
        kind=PEER_UNAVAILABLE,
        headers={"Retry-After": "30"},
        extra={"peer": exc.peer},
    )


async def rules_of_call(intake: IntakeClient, call_id: uuid.UUID, *, call_in_path: bool = False) -> CallRules:
    """The rules in force for the call. Intake unreachable -> 503 (retry). A call intake does not know is a
    404 when the call is the addressed resource (`call_in_path`), else a 409 (a record points at it)."""
    try:
        return (await CALLS.current(intake, call_id)).rules
    except PeerUnavailable as exc:
        raise _unreachable(exc) from exc
    except NotFoundAtPeer as exc:
        if call_in_path:
            raise NotFound(f"Il bando {call_id} non esiste.", f"Call {call_id} does not exist.") from exc
        raise Conflict(
            f"Il bando {call_id} non esiste presso intake.", f"Call {call_id} is unknown to intake."
        ) from exc


async def window_closes_at(intake: IntakeClient, call_id: uuid.UUID) -> datetime:
    """When the call's window closes, as intake enforces it (its effective window), asked afresh every time: an
    extension by decree must be seen at once, since a ranking may only be allocated after the close."""
    try:
        call = await intake.get_call(call_id)
    except PeerUnavailable as exc:
        raise _unreachable(exc) from exc
    except NotFoundAtPeer as exc:
        raise NotFound(f"Il bando {call_id} non esiste.", f"Call {call_id} does not exist.") from exc
    return call.effective_window.closes_at


def current_version(call_id: uuid.UUID) -> int | None:
    """The version `rules_of_call` last found in force for the call (None if not asked yet, or no longer fresh)."""
    return CALLS.current_version(call_id)


def forget_current(call_id: uuid.UUID) -> None:
    """A new version of the call was published: ask intake which version is current on the next read."""
    CALLS.forget(call_id)


async def rules_of_version(intake: IntakeClient, call_id: uuid.UUID, version: int | None) -> CallRules:
    """The rules of one version of the call (None: the version in force, for a record from before versions
    were tracked)."""
    if version is None or current_version(call_id) in (None, version):
        rules = await rules_of_call(intake, call_id)  # the common case: the version in force, one peer call
        if version is None or current_version(call_id) == version:
            return rules
    try:
        return (await CALLS.version(intake, call_id, version)).rules
    except PeerUnavailable as exc:
        raise _unreachable(exc) from exc
    except NotFoundAtPeer as exc:
        raise Conflict(
            f"La versione {version} del bando {call_id} non esiste presso intake.",
            f"Version {version} of call {call_id} is unknown to intake.",
        ) from exc


def submitted_version(application: Any) -> int | None:
    """The call version an application was submitted under: from intake's ApplicationOut, or from the snapshot
    of a received application."""
    version = getattr(application, "call_version", None)
    if version is None:
        snapshot = getattr(application, "snapshot", None) or {}
        version = snapshot.get("call_version")
    return int(version) if version is not None else None


async def rules_of_application(intake: IntakeClient, application: Any) -> CallRules:
    """The rules an application is checked, evaluated and funded under: those of the version in force when it
    was submitted."""
    return await rules_of_version(intake, application.call_id, submitted_version(application))
