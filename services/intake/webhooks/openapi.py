"""The event catalogue as the `webhooks` of intake's OpenAPI 3.1 document.

One webhook operation per catalogue entry, whose body is the envelope with `data` typed as that
event's data model, so generated clients get a typed receiver per event and its version.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field, create_model

from shared.events.catalogue import CATALOGUE, SUBJECTS, Envelope, EventType, noun
from shared.schemas import decimals_as_strings

RECEIVER_RESPONSES: dict[int | str, dict[str, Any]] = {
    204: {"description": "Received. Any 2xx acknowledges the delivery."},
    "default": {
        "description": "Anything else (or no answer within the timeout) is retried with exponential "
        "back-off; after the last attempt the delivery is dead and can be replayed."
    },
}


@functools.cache
def envelope_model(event: EventType) -> type[BaseModel]:
    """The envelope of one event type: `type`, `version` and `data` pinned to the catalogue entry."""
    camel = "".join(part.capitalize() for part in event.name.replace("_", ".").split("."))
    name_type: Any = Literal[event.name]
    version_type: Any = Literal[event.version]
    model: type[BaseModel] = create_model(
        f"{camel}Event",
        __base__=Envelope,
        __doc__=f"{event.summary} (source: {event.source}, version {event.version}; subject: the "
        f"{noun(event.name)}, read at {SUBJECTS[noun(event.name)].href}).",
        type=(name_type, Field(description="The event type.")),
        version=(version_type, Field(description="Version of the type's data schema.")),
        data=(event.data, ...),
    )
    return model


def _receiver(model: type[BaseModel]) -> Any:
    async def receive(body: Any) -> None:  # documentation only: the partner implements it
        return None

    receive.__annotations__ = {"body": model, "return": None}
    return receive


def document_event_webhooks(app: FastAPI) -> None:
    """Declare every catalogue entry under `app.webhooks` and add them to the app's OpenAPI document."""
    for event in CATALOGUE.values():
        app.webhooks.add_api_route(
            event.name,
            _receiver(envelope_model(event)),
            methods=["POST"],
            tags=["events"],
            operation_id=f"events-receive_{event.name.replace('.', '_')}",
            summary=event.summary,
            description=f"Event `{event.name}` version {event.version}, emitted by {event.source}. POSTed as "
            "JSON and signed per Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature); "
            "delivered at least once: deduplicate on `id` (= webhook-id).",
            status_code=204,
            responses=RECEIVER_RESPONSES,
        )
    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = base()
        hooks = get_openapi(title=app.title, version=app.version, routes=[], webhooks=app.webhooks.routes)
        schema["webhooks"] = hooks.get("webhooks", {})
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, definition in decimals_as_strings(hooks.get("components", {}).get("schemas", {})).items():
            if schemas.setdefault(name, definition) != definition:
                raise RuntimeError(f"schema {name} of an event clashes with an API schema of the same name")
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
