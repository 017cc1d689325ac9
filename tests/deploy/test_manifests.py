"""The deployment files validate (deploy/validate.py, the same check as CI's "deploy manifests" step), and the
check really rejects what it must: an unknown field, a service that skips PgBouncer's settings, a real key."""

from __future__ import annotations

import copy
import importlib.util
import sys
from types import ModuleType
from typing import Any

import pytest
import yaml

from shared.settings import REPO_ROOT


@pytest.fixture(scope="module")
def validate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_validate", REPO_ROOT / "deploy" / "validate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _find(resources: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name)


def test_every_deployment_file_validates(validate: ModuleType) -> None:
    assert list(validate.validate_all()) == []


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_overlays_render_with_their_namespace_images_and_patches(validate: ModuleType, overlay: str) -> None:
    resources = validate.render(REPO_ROOT / "deploy" / "k8s" / "overlays" / overlay)
    namespace = {"dev": "desk-dev", "prod": "desk"}[overlay]
    assert {r["metadata"].get("namespace") for r in resources if r["kind"] != "Namespace"} == {namespace}
    intake = _find(resources, "Deployment", "intake")
    image = intake["spec"]["template"]["spec"]["containers"][0]["image"]
    hpa = _find(resources, "HorizontalPodAutoscaler", "intake")
    statefulsets = [r for r in resources if r["kind"] == "StatefulSet"]
    if overlay == "dev":
        assert image == "regional-desk:dev" and hpa["spec"]["minReplicas"] == 1 and len(statefulsets) == 1
    else:
        assert image == "registry.example.org/regional-desk:0.1.0" and hpa["spec"]["maxReplicas"] == 20
        assert not statefulsets  # a managed PostgreSQL
        ini = _find(resources, "ConfigMap", "pgbouncer")["data"]
        assert "host=desk-db.postgres.example.internal" in ini["databases.ini"]
        assert "pool_mode = transaction" in ini["pgbouncer.ini"]  # the patch replaced one key, not the map
        # the merge kept the container's other settings (envFrom, probes) while replacing its URL
        job = _find(resources, "Job", "desk-migrate")["spec"]["template"]["spec"]["containers"][0]
        assert job["envFrom"] and {e["name"]: e.get("value") for e in job["env"]}["SERVICE"] == "migrate"


def test_strict_schema_refuses_an_unknown_field(validate: ModuleType) -> None:
    resources = validate.render(REPO_ROOT / "deploy" / "k8s" / "overlays" / "prod")
    probe = _find(resources, "Deployment", "intake")["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    probe["httpGet"]["pth"] = "/readyz"
    problems = validate.Problems()
    validate.check_kubernetes(resources, "prod", problems)
    assert any("'pth' was unexpected" in p for p in problems), problems


def test_desk_rules_refuse_a_real_key_and_a_missing_probe(validate: ModuleType) -> None:
    resources = validate.render(REPO_ROOT / "deploy" / "k8s" / "overlays" / "dev")
    _find(resources, "Secret", "desk-secrets")["stringData"]["DESK_SIGNING_KEY"] = "-----BEGIN PRIVATE KEY-----"
    del _find(resources, "Deployment", "evaluation")["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    problems = validate.Problems()
    validate.check_kubernetes(resources, "dev", problems)
    assert any("DESK_SIGNING_KEY must stay" in p for p in problems)
    assert any("Deployment/evaluation" in p and "/readyz" in p for p in problems)


def test_compose_check_refuses_schema_errors_and_a_service_bypassing_pgbouncer(validate: ModuleType) -> None:
    compose = copy.deepcopy(yaml.safe_load((REPO_ROOT / "deploy" / "compose.yaml").read_text()))
    compose["services"]["intake"]["restart_policy"] = "always"  # not a Compose field
    compose["services"]["monitoring"]["environment"] = {
        **compose["services"]["monitoring"]["environment"],
        "DESK_DB_STATEMENT_CACHE": "true",
    }
    problems = validate.Problems()
    validate.check_compose(compose, problems)
    assert any("'restart_policy'" in p for p in problems), problems
    assert any("monitoring goes through PgBouncer" in p for p in problems), problems


def test_the_proxy_body_limit_is_the_desks(validate: ModuleType) -> None:
    from shared.settings import DeskSettings

    assert validate.nginx_body_limit() == DeskSettings.model_fields["max_body_bytes"].default


def test_the_proxy_cuts_slow_clients_and_caps_connections_per_address(validate: ModuleType) -> None:
    conf = (REPO_ROOT / "deploy" / "nginx" / "desk.conf").read_text()
    problems = validate.Problems()
    validate.check_proxy_guards(conf, problems)
    assert list(problems) == []

    weakened = conf.replace("client_header_timeout 10s;", "").replace("send_timeout 30s;", "send_timeout 5m;")
    weakened = weakened.replace("limit_conn desk_per_address 100;", "")
    problems = validate.Problems()
    validate.check_proxy_guards(weakened, problems)
    assert any("no client_header_timeout" in p for p in problems), problems
    assert any("send_timeout 5m is longer than 60s" in p for p in problems), problems
    assert any("no limit_conn per client address" in p for p in problems), problems
    assert len(problems) == 3, problems
