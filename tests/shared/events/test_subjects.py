"""The event subject convention: `<noun>.<verb>` is about the object the noun names, by its UUID, read at the
path `SUBJECTS` gives on the service that sends the event. Unit and contract checks (no database)."""

from __future__ import annotations

import ast
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.audit import SubjectMismatch, event_params
from shared.auth import Principal
from shared.events.catalogue import CATALOGUE, SUBJECTS, envelope, noun, subject_href
from shared.routing import Actor
from shared.settings import REPO_ROOT

ACTOR = Actor(Principal("subjects-test", "service", frozenset()), None, "evaluation")


def _get_paths(service: str) -> set[str]:
    doc: dict[str, Any] = json.loads((REPO_ROOT / "openapi" / f"{service}.json").read_text(encoding="utf-8"))
    return {path for path, ops in doc["paths"].items() if "get" in ops}


def test_every_catalogued_type_names_a_subject_owned_by_the_service_that_sends_it() -> None:
    assert CATALOGUE, "the catalogue is loaded"
    for name, event in CATALOGUE.items():
        assert noun(name) in SUBJECTS, f"{name}: its noun {noun(name)!r} is not in SUBJECTS"
        # the href is a path on the event's `source`: the subject's owner sends its events
        assert SUBJECTS[noun(name)].service == event.source, name


def test_every_subject_href_is_a_get_route_of_its_owning_service() -> None:
    for kind, subject in SUBJECTS.items():
        template = subject.href
        assert template.count("{id}") == 1 and template.endswith("{id}"), kind
        prefix = template.removesuffix("{id}")
        routes = [p for p in _get_paths(subject.service) if p.startswith(prefix) and p.count("/") == prefix.count("/")]
        assert any(p.endswith("}") and "{" in p[len(prefix) :] for p in routes), (kind, subject)


def test_event_params_takes_the_noun_and_a_uuid_and_orders_by_the_given_key() -> None:
    decision, application = uuid.uuid4(), uuid.uuid4()
    params = event_params(
        ACTOR,
        event_type="decision.accepted",
        subject_type="decision",
        subject_id=decision,
        ordering_key=application,
        payload={"decision_id": decision, "application_id": application},
    )
    assert (params["atype"], params["aid"], params["okey"]) == ("decision", str(decision), str(application))
    # without an ordering key, the subject's own id
    call = uuid.uuid4()
    params = event_params(ACTOR, event_type="call.amended", subject_type="call", subject_id=str(call), payload={})
    assert (params["aid"], params["okey"]) == (str(call), str(call))


@pytest.mark.parametrize(
    ("event_type", "subject_type", "subject_id", "ordering_key"),
    [
        # the application is not the decision's subject (what decision.* carried before)
        ("decision.accepted", "application", uuid.uuid4(), None),
        ("payment.paid", "project", uuid.uuid4(), None),
        ("training.enrolled", "enrolment", uuid.uuid4(), None),
        ("webhook.ping", "subscription", uuid.uuid4(), None),
        # an id that is not a UUID
        ("decision.accepted", "decision", "DDS-1", None),
        ("decision.accepted", "decision", None, None),
        # an ordering key that is not a UUID
        ("decision.accepted", "decision", uuid.uuid4(), "application:1"),
        # a noun outside SUBJECTS
        ("invoice.sent", "invoice", uuid.uuid4(), None),
    ],
)
def test_event_params_refuses_a_subject_that_breaks_the_convention(
    event_type: str, subject_type: str, subject_id: Any, ordering_key: Any
) -> None:
    with pytest.raises(SubjectMismatch):
        event_params(
            ACTOR,
            event_type=event_type,
            subject_type=subject_type,
            subject_id=subject_id,
            ordering_key=ordering_key,
            payload={},
        )


def test_the_envelope_links_the_subject_on_its_service() -> None:
    payment = uuid.uuid4()

    class Row:
        event_id = uuid.uuid4()
        event_type = "payment.paid"
        event_version = 1
        source = "monitoring"
        occurred_at = datetime(2026, 12, 4, tzinfo=UTC)
        aggregate_type = "payment"
        aggregate_id = str(payment)
        payload: dict[str, Any] = {}

    assert envelope(Row)["subject"] == {"type": "payment", "id": str(payment), "href": f"/v1/payments/{payment}"}
    assert subject_href("decision", "x") == "/v1/decisions/x" and subject_href("invoice", "x") is None


def _publisher_calls() -> list[tuple[str, int, dict[str, ast.expr]]]:
    """Every `record_event(...)` and `event_params(...)` call in the services, with its keyword arguments."""
    calls = []
    for path in sorted((REPO_ROOT / "services").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("record_event", "event_params"):
                where = str(path.relative_to(REPO_ROOT))
                calls.append((where, node.lineno, {k.arg: k.value for k in node.keywords if k.arg}))
    return calls


def test_every_publisher_names_a_catalogued_subject_that_matches_its_literal_type() -> None:
    """Statically, so a publisher no test runs cannot break the convention unnoticed: each call names its subject
    type as a literal noun of SUBJECTS, the noun of its event type when that is a literal too."""
    calls = _publisher_calls()
    assert len(calls) >= 20, "the scan finds the publishers"
    for where, line, kw in calls:
        subject = kw.get("subject_type")
        assert isinstance(subject, ast.Constant) and subject.value in SUBJECTS, (where, line)
        event_type = kw.get("event_type")
        if isinstance(event_type, ast.Constant):
            assert event_type.value in CATALOGUE and noun(event_type.value) == subject.value, (where, line)
