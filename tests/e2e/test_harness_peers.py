"""The suite's settings never address the default ports: a desk started with `dev.py up` beside the suite
serves them, and a test's worker would deliver the test's events to it (it answers 401 to their tokens)."""

from __future__ import annotations

from urllib.parse import urlsplit

from shared.settings import DeskSettings, EvaluationSettings, IntakeSettings, MonitoringSettings
from tests.conftest import _settings
from tests.e2e.harness import QUIET, worker_settings

DEFAULT_PORTS = {8001, 8002, 8003}


def _peer_ports(settings: DeskSettings) -> set[int]:
    return {urlsplit(getattr(settings, f"{p}_url")).port or 80 for p in ("intake", "evaluation", "monitoring")}


def test_the_desks_defaults_are_the_ports_a_local_desk_serves() -> None:
    fields = DeskSettings.model_fields
    defaults = {urlsplit(fields[f"{p}_url"].default).port for p in ("intake", "evaluation", "monitoring")}
    assert defaults == DEFAULT_PORTS


def test_no_settings_the_suite_builds_address_a_local_desk() -> None:
    built = [
        worker_settings(),
        worker_settings(evaluation_url="http://127.0.0.1:9"),
        *(_settings(cls) for cls in (IntakeSettings, EvaluationSettings, MonitoringSettings)),
        *(cls(**QUIET) for cls in (IntakeSettings, EvaluationSettings, MonitoringSettings)),
    ]
    for settings in built:
        assert not _peer_ports(settings) & DEFAULT_PORTS, settings
