"""Monitoring's inbox (shared.events.inbox) and the names its handlers use.

A package registers its handlers when it is imported (`register_handler("decision.accepted", start_project)`);
the inbox runs every handler of the type, in registration order, in the request's transaction.
"""

from __future__ import annotations

from services.monitoring.models import InboxEvent
from shared.events.inbox import Inbox, InboxContext, event_data

__all__ = ["INBOX", "InboxContext", "event_data", "register_handler"]

INBOX = Inbox("monitoring", InboxEvent)
register_handler = INBOX.register
