"""Monitoring's inbox: events from the other services, received once and dispatched to the handlers registered
for their type (projects from accepted decisions; the application facts of the statistics)."""
