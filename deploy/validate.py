"""Validate the deployment files without Docker or a cluster: the compose file against the Compose
Specification's JSON schema, and every Kubernetes manifest of every overlay against the Kubernetes
schemas (kubernetes-validate, strict: unknown fields are errors), plus the desk's own rules (probes,
limits, non-root, placeholders only in Secrets, proxy body limit = DESK_MAX_BODY_BYTES, the proxy's
timeouts and per-address connection cap against slow clients, ...).

    python deploy/validate.py                   validate everything (exit 1 on any problem)
    python deploy/validate.py --render prod     print an overlay's manifests (| kubectl apply -f -)

kustomize is not needed: the overlays are ordinary kustomizations (`kubectl apply -k` works on them), and
`render` below implements the part of kustomize they use: `resources` (files and directories),
`namespace`, `images` and strategic-merge `patches` (maps merged, lists of named items merged by name,
other lists replaced). Any other kustomization field is refused, so an overlay can never mean one thing
to kubectl and another to this check.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent
ROOT = DEPLOY.parent
K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "prod")
COMPOSE_FILE = DEPLOY / "compose.yaml"
COMPOSE_SCHEMA = DEPLOY / "schemas" / "compose-spec.json"
NGINX_CONF = DEPLOY / "nginx" / "desk.conf"
KUBERNETES_VERSION = "1.33.0"  # the oldest cluster version the manifests must run on
SERVICES = ("intake", "evaluation", "monitoring")
SUPPORTED_KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
CLUSTER_SCOPED = {"Namespace"}
PLACEHOLDER = "REPLACE_ME"


class Problems(list[str]):
    def add(self, where: str, message: str) -> None:
        self.append(f"{where}: {message}")


def load_documents(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


# ---------------------------------------------------------------- kustomize, the part the overlays use


def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and base
        and patch
        and all(isinstance(x, dict) and "name" in x for x in [*base, *patch])
    ):
        out_list = [copy.deepcopy(x) for x in base]
        index = {x["name"]: i for i, x in enumerate(out_list)}
        for item in patch:
            if item["name"] in index:
                out_list[index[item["name"]]] = _merge(out_list[index[item["name"]]], item)
            else:
                out_list.append(copy.deepcopy(item))
        return out_list
    return copy.deepcopy(patch)


def _pod_spec(resource: dict[str, Any]) -> dict[str, Any] | None:
    spec = resource.get("spec", {})
    if resource.get("kind") in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
        return spec.get("template", {}).get("spec")  # type: ignore[no-any-return]
    return None


def _set_image(resource: dict[str, Any], rule: dict[str, Any]) -> None:
    pod = _pod_spec(resource)
    if pod is None:
        return
    for container in [*pod.get("containers", []), *pod.get("initContainers", [])]:
        name, _, tag = container["image"].partition(":")
        if name == rule["name"]:
            container["image"] = f"{rule.get('newName', name)}:{rule.get('newTag', tag or 'latest')}"


def render(directory: Path) -> list[dict[str, Any]]:
    """The manifests a kustomization directory stands for."""
    kfile = directory / "kustomization.yaml"
    kust = yaml.safe_load(kfile.read_text(encoding="utf-8"))
    unknown = set(kust) - SUPPORTED_KUSTOMIZATION_KEYS
    if unknown:
        raise ValueError(f"{kfile.relative_to(ROOT)}: fields this renderer does not implement: {sorted(unknown)}")
    resources: list[dict[str, Any]] = []
    for entry in kust.get("resources", []):
        path = (directory / entry).resolve()
        resources.extend(render(path) if path.is_dir() else load_documents(path))
    for patch_entry in kust.get("patches", []):
        if set(patch_entry) != {"path"}:
            raise ValueError(f"{kfile.relative_to(ROOT)}: only `patches: - path: FILE` is supported")
        for patch in load_documents(directory / patch_entry["path"]):
            matches = [
                r
                for r in resources
                if r["kind"] == patch["kind"] and r["metadata"]["name"] == patch["metadata"]["name"]
            ]
            if len(matches) != 1:
                raise ValueError(
                    f"{patch_entry['path']}: {patch['kind']}/{patch['metadata']['name']} matches "
                    f"{len(matches)} resources"
                )
            i = resources.index(matches[0])
            resources[i] = _merge(matches[0], patch)
    for rule in kust.get("images", []):
        for resource in resources:
            _set_image(resource, rule)
    if "namespace" in kust:
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED:
                resource.setdefault("metadata", {})["namespace"] = kust["namespace"]
    return resources


# ---------------------------------------------------------------- Kubernetes


def _containers(resource: dict[str, Any]) -> list[dict[str, Any]]:
    pod = _pod_spec(resource)
    return [] if pod is None else list(pod.get("containers", []))


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def check_kubernetes(resources: list[dict[str, Any]], where: str, problems: Problems) -> None:
    import kubernetes_validate

    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for r in resources:
        name = f"{where} {r.get('kind')}/{r.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(r, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            problems.add(name, f"{e.message} at {'/'.join(map(str, e.absolute_path))}")
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as e:
            problems.add(name, e.message)
        by_kind.setdefault(r["kind"], {})[r["metadata"]["name"]] = r
        if r["kind"] not in CLUSTER_SCOPED and not r["metadata"].get("namespace"):
            problems.add(name, "no namespace (render an overlay)")

    config = by_kind.get("ConfigMap", {}).get("desk-config", {}).get("data", {})
    for kind in ("Deployment", "StatefulSet", "Job"):
        for name, r in by_kind.get(kind, {}).items():
            label = f"{where} {kind}/{name}"
            pod = _pod_spec(r) or {}
            if pod.get("securityContext", {}).get("runAsNonRoot") is not True:
                problems.add(label, "the pod must set securityContext.runAsNonRoot: true")
            for c in _containers(r):
                res = c.get("resources", {})
                if not res.get("requests") or not res.get("limits"):
                    problems.add(label, f"container {c['name']} needs resource requests and limits")
                if c.get("securityContext", {}).get("allowPrivilegeEscalation") is not False:
                    problems.add(label, f"container {c['name']} must set allowPrivilegeEscalation: false")
                url = str(_env(c).get("DESK_DATABASE_URL", ""))
                if "@pgbouncer:" in url and config.get("DESK_DB_STATEMENT_CACHE") != "false":
                    problems.add(label, "goes through PgBouncer but DESK_DB_STATEMENT_CACHE is not false")
    deployments = by_kind.get("Deployment", {})
    hpas = by_kind.get("HorizontalPodAutoscaler", {})
    for service in SERVICES:
        d = deployments.get(service)
        if d is None:
            problems.add(where, f"no Deployment for {service}")
            continue
        c = _containers(d)[0]
        if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
            problems.add(f"{where} Deployment/{service}", "readiness probe must be GET /readyz")
        if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
            problems.add(f"{where} Deployment/{service}", "liveness probe must be GET /healthz")
        if not c.get("securityContext", {}).get("readOnlyRootFilesystem"):
            problems.add(f"{where} Deployment/{service}", "the root filesystem should be read-only")
        hpa = hpas.get(service)
        if hpa is None or hpa["apiVersion"] != "autoscaling/v2" or hpa["spec"]["scaleTargetRef"]["name"] != service:
            problems.add(where, f"no autoscaling/v2 HorizontalPodAutoscaler targeting Deployment/{service}")
        elif not any(m.get("resource", {}).get("name") == "cpu" for m in hpa["spec"].get("metrics", [])):
            problems.add(f"{where} HorizontalPodAutoscaler/{service}", "needs a CPU target")
    for required in ("worker", "pgbouncer", "desk-proxy"):
        if required not in deployments:
            problems.add(where, f"no Deployment {required}")
    if "desk-migrate" not in by_kind.get("Job", {}):
        problems.add(where, "no migration Job desk-migrate")
    if "Ingress" not in by_kind:
        problems.add(where, "no Ingress")
    pgb = by_kind.get("ConfigMap", {}).get("pgbouncer", {}).get("data", {}).get("pgbouncer.ini", "")
    if not re.search(r"^pool_mode\s*=\s*transaction\s*$", pgb, re.M):
        problems.add(f"{where} ConfigMap/pgbouncer", "pool_mode must be transaction")
    policies = by_kind.get("NetworkPolicy", {})
    deny = policies.get("default-deny", {}).get("spec", {})
    if deny.get("podSelector") != {} or sorted(deny.get("policyTypes", [])) != ["Egress", "Ingress"]:
        problems.add(where, "no default-deny NetworkPolicy (ingress and egress) for the namespace")
    sources = [
        p for rule in policies.get("services", {}).get("spec", {}).get("ingress", []) for p in rule.get("from", [])
    ]
    allowed = {s.get("podSelector", {}).get("matchLabels", {}).get("desk/role") for s in sources}
    if allowed != {"proxy", "worker", "service"}:
        problems.add(where, f"the services must admit only the proxy, the worker and each other (got {allowed})")
    for name, secret in by_kind.get("Secret", {}).items():
        for key, value in {**secret.get("stringData", {}), **secret.get("data", {})}.items():
            if PLACEHOLDER not in str(value) or "PRIVATE KEY" in str(value):
                problems.add(f"{where} Secret/{name}", f"{key} must stay a {PLACEHOLDER} placeholder in git")


def check_base_files(problems: Problems) -> None:
    """The ConfigMaps that carry deploy/ files carry them verbatim."""
    base = {(d["kind"], d["metadata"]["name"]): d for d in render(K8S / "base")}
    pairs = [
        (("ConfigMap", "desk-proxy"), "default.conf", NGINX_CONF),
        (("ConfigMap", "pgbouncer"), "pgbouncer.ini", DEPLOY / "pgbouncer" / "pgbouncer.ini"),
        (("ConfigMap", "pgbouncer"), "databases.ini", DEPLOY / "pgbouncer" / "databases.ini"),
    ]
    for key, data_key, path in pairs:
        data = base.get(key, {}).get("data", {}).get(data_key)
        if data != path.read_text(encoding="utf-8"):
            problems.add(f"k8s/base {key[0]}/{key[1]}", f"{data_key} differs from {path.relative_to(ROOT)}")


# ---------------------------------------------------------------- compose


def _size_bytes(text: str) -> int:
    m = re.fullmatch(r"(\d+)([kKmMgG]?)", text.strip())
    if not m:
        raise ValueError(f"not an nginx size: {text!r}")
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2).lower()]


def nginx_body_limit() -> int:
    m = re.search(r"^\s*client_max_body_size\s+(\S+);", NGINX_CONF.read_text(encoding="utf-8"), re.M)
    if not m:
        raise ValueError(f"{NGINX_CONF.relative_to(ROOT)}: no client_max_body_size")
    return _size_bytes(m.group(1))


def check_compose(compose: dict[str, Any], problems: Problems, where: str = "compose.yaml") -> None:
    import jsonschema

    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    validator_cls = jsonschema.validators.validator_for(schema)
    for error in sorted(validator_cls(schema).iter_errors(compose), key=lambda e: list(e.absolute_path)):
        problems.add(where, f"{error.message} at {'/'.join(map(str, error.absolute_path)) or '(root)'}")
    services = compose.get("services", {})
    for required in ("postgres", "pgbouncer", "migrate", *SERVICES, "worker", "proxy"):
        if required not in services:
            problems.add(where, f"no service {required}")
    limit = nginx_body_limit()
    for name in (*SERVICES, "worker"):
        svc = services.get(name, {})
        env = svc.get("environment", {})
        if "@pgbouncer:" not in str(env.get("DESK_DATABASE_URL", "")):
            problems.add(where, f"{name} must reach PostgreSQL through pgbouncer")
        if str(env.get("DESK_DB_STATEMENT_CACHE")).lower() != "false":
            problems.add(where, f"{name} goes through PgBouncer: DESK_DB_STATEMENT_CACHE must be false")
        if svc.get("depends_on", {}).get("migrate", {}).get("condition") != "service_completed_successfully":
            problems.add(where, f"{name} must wait for the migration to complete")
        if "DESK_SIGNING_KEY" in env:
            problems.add(where, f"{name}: the signing key comes from a secret file, not the environment")
        if int(env.get("DESK_MAX_BODY_BYTES", 1_048_576)) != limit:
            problems.add(where, f"{name}: DESK_MAX_BODY_BYTES differs from nginx's client_max_body_size ({limit})")
    migrate = services.get("migrate", {})
    if migrate.get("depends_on", {}).get("postgres", {}).get("condition") != "service_healthy":
        problems.add(where, "migrate must wait for postgres to be healthy")
    if "healthcheck" not in services.get("postgres", {}):
        problems.add(where, "postgres needs a healthcheck")


# What the proxy must set against slow clients (README "Security"), and the longest each may be.
PROXY_TIMEOUTS = {"client_header_timeout": 60, "client_body_timeout": 60, "send_timeout": 60, "keepalive_timeout": 75}


def _seconds(text: str) -> float:
    m = re.fullmatch(r"(\d+)(ms|s|m)?", text.strip())
    if not m:
        raise ValueError(f"not an nginx time: {text!r}")
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[m.group(2)]


def check_proxy_guards(conf: str, problems: Problems, where: str = "nginx/desk.conf") -> None:
    """Slow clients are the proxy's to cut first: header and body timeouts, a send and a keep-alive timeout,
    and a cap on connections per client address."""
    for directive, longest in PROXY_TIMEOUTS.items():
        m = re.search(rf"^\s*{directive}\s+(\S+?)\s*;", conf, re.M)
        if not m:
            problems.add(where, f"no {directive}: a slow client could hold a connection as long as it likes")
        elif _seconds(m.group(1)) > longest:
            problems.add(where, f"{directive} {m.group(1)} is longer than {longest}s")
    zone = re.search(r"^\s*limit_conn_zone\s+\$binary_remote_addr\s+zone=(\w+):", conf, re.M)
    if not zone or not re.search(rf"^\s*limit_conn\s+{zone.group(1)}\s+\d+\s*;", conf, re.M):
        problems.add(where, "no limit_conn per client address ($binary_remote_addr)")


def check_settings_agree(problems: Problems) -> None:
    sys.path.insert(0, str(ROOT))
    from shared.settings import DeskSettings

    default = DeskSettings.model_fields["max_body_bytes"].default
    if nginx_body_limit() != default:
        problems.add("nginx/desk.conf", f"client_max_body_size differs from DESK_MAX_BODY_BYTES' default {default}")


# ---------------------------------------------------------------- entry points


def validate_all() -> Problems:
    problems = Problems()
    check_compose(yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8")), problems)
    check_settings_agree(problems)
    check_proxy_guards(NGINX_CONF.read_text(encoding="utf-8"), problems)
    check_base_files(problems)
    for overlay in OVERLAYS:
        try:
            resources = render(K8S / "overlays" / overlay)
        except (ValueError, KeyError, OSError) as e:
            problems.add(f"k8s/overlays/{overlay}", f"cannot render: {e}")
            continue
        check_kubernetes(resources, f"k8s/overlays/{overlay}", problems)
    return problems


def _dump(resources: Iterable[dict[str, Any]]) -> str:
    return "---\n".join(yaml.safe_dump(r, sort_keys=False) for r in resources)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--render", choices=OVERLAYS, help="print an overlay's manifests instead")
    args = parser.parse_args(argv)
    if args.render:
        print(_dump(render(K8S / "overlays" / args.render)), end="")
        return 0
    problems = validate_all()
    for p in problems:
        print(f"deploy: {p}", file=sys.stderr)
    if problems:
        print(f"deploy: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    counts = {o: len(render(K8S / "overlays" / o)) for o in OVERLAYS}
    print(
        f"deploy: compose.yaml valid (Compose Specification schema); Kubernetes {KUBERNETES_VERSION} strict: "
        + ", ".join(f"{o} {n} manifests valid" for o, n in counts.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
