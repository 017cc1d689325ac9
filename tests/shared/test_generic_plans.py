"""plan_cache_mode=force_generic_plan is intake's click-day tuning: on for intake's engine only."""

from __future__ import annotations

from typing import Any

import pytest

from shared import db
from shared.settings import EvaluationSettings, IntakeSettings, MonitoringSettings


def test_only_intake_plans_generically_by_default() -> None:
    assert IntakeSettings().db_generic_plans is True
    assert EvaluationSettings().db_generic_plans is False
    assert MonitoringSettings().db_generic_plans is False


def test_the_engine_asks_for_generic_plans_only_when_told(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(db, "create_async_engine", lambda url, **kw: seen.append(kw["connect_args"]))
    db.create_engine("postgresql://u@127.0.0.1/d", application_name="evaluation")
    db.create_engine("postgresql://u@127.0.0.1/d", application_name="intake", generic_plans=True)
    assert seen[0]["server_settings"] == {"application_name": "evaluation"}
    assert seen[1]["server_settings"] == {"application_name": "intake", "plan_cache_mode": "force_generic_plan"}
