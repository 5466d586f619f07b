"""The Helm chart (helm/recon): lint, render, the Kubernetes schemas, and what the objects promise.

helm v3.22.0 comes from `.ci/helm.sh` (built from the Go module proxy into a cache outside git;
`make test` builds it first). Without it the tests skip locally and fail under CI=true.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.ci_support import ci_tool

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "recon"
RULES_FILE = CHART / "files" / "prometheus" / "recon-rules.yml"
DASHBOARD_FILE = CHART / "files" / "grafana" / "recon-dashboard.json"

# The values files of the chart; None: the chart's defaults alone.
ENVIRONMENTS: dict[str, Path | None] = {
    "default": None,
    "staging": CHART / "values-staging.yaml",
    "production": CHART / "values-production.yaml",
}
# Every optional object on, with SASL, a CA and a schema registry: the defaults' blind spots.
EVERYTHING_ON = {
    "topics.create": "true",
    "verify.enabled": "true",
    "backup.enabled": "true",
    "monitoring.serviceMonitor.enabled": "true",
    "monitoring.prometheusRule.enabled": "true",
    "monitoring.grafanaDashboard.enabled": "true",
    "networkPolicy.enabled": "true",
    "kafka.securityProtocol": "SASL_SSL",
    "kafka.saslMechanism": "SCRAM-SHA-512",
    "kafka.saslUsername": "recon",
    "kafka.saslPassword": "kafka-sasl-password-for-tests",
    "kafka.caCert.secretName": "kafka-ca",
    "schemaRegistry.url": "https://registry:8081",
    "schemaRegistry.basicAuthUserInfo": "user:registry-password-for-tests",
}
# The chart's oldest supported Kubernetes (Chart.yaml kubeVersion) and the one helm renders for.
KUBE_VERSIONS = ("1.27.0", "1.37.0")
# Custom resources: not in the Kubernetes schemas, checked structurally below.
CRD_GROUPS = ("monitoring.coreos.com/",)
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job", "CronJob"}
HOOK_KINDS = {"Job", "Secret", "ConfigMap"}


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm from .ci/helm.sh (it builds it when missing: minutes, once per cache)."""
    path = ci_tool("helm.sh")
    home = tmp_path_factory.mktemp("helm-home")
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    return Helm(path, env)


@dataclass(frozen=True)
class Helm:
    path: str
    env: Mapping[str, str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.path, *args],
            check=False,
            capture_output=True,
            text=True,
            env=dict(self.env),
            timeout=120,
        )

    def render_args(self, environment: str, overrides: Mapping[str, str]) -> list[str]:
        args = ["--namespace", "recon"]
        values = ENVIRONMENTS[environment]
        if values is not None:
            args += ["--values", str(values)]
        for key, value in overrides.items():
            args += ["--set-string" if key in _STRING_KEYS else "--set", f"{key}={value}"]
        return args

    def template(
        self, environment: str = "default", **overrides: str
    ) -> subprocess.CompletedProcess[str]:
        return self.run("template", "recon", str(CHART), *self.render_args(environment, overrides))

    def render(self, environment: str = "default", **overrides: str) -> Manifests:
        done = self.template(environment, **overrides)
        assert done.returncode == 0, done.stderr
        return Manifests([d for d in yaml.safe_load_all(done.stdout) if d])


# Values passed with --set-string (they would otherwise parse as numbers or booleans).
_STRING_KEYS = {"database.url", "kafka.saslPassword", "schemaRegistry.basicAuthUserInfo"}


class Manifests(list[dict[str, Any]]):
    def of(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self if d["kind"] == kind]

    def one(self, kind: str, component: str | None = None) -> dict[str, Any]:
        found = [
            d
            for d in self.of(kind)
            if component is None or _labels(d).get("app.kubernetes.io/component") == component
        ]
        assert len(found) == 1, f"expected one {kind} {component or ''}, got {len(found)}"
        return found[0]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        found = [d for d in self.of(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} named {name}, got {len(found)}"
        return found[0]

    def config(self) -> dict[str, str]:
        """Every key of every non-hook ConfigMap, merged."""
        merged: dict[str, str] = {}
        for cm in self.of("ConfigMap"):
            if "grafana_dashboard" not in _labels(cm):
                merged.update(cm.get("data") or {})
        return merged

    def workloads(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """(object, pod spec) of every Deployment, StatefulSet, Job and CronJob."""
        for d in self:
            if d["kind"] in WORKLOAD_KINDS:
                yield d, _pod_template(d)["spec"]


def _pod_template(d: Mapping[str, Any]) -> dict[str, Any]:
    if d["kind"] == "CronJob":
        return dict(d["spec"]["jobTemplate"]["spec"]["template"])
    return dict(d["spec"]["template"])


def _labels(d: Mapping[str, Any]) -> dict[str, str]:
    return dict(d.get("metadata", {}).get("labels") or {})


def _annotations(d: Mapping[str, Any]) -> dict[str, str]:
    return dict(d.get("metadata", {}).get("annotations") or {})


def _container(pod: Mapping[str, Any], name: str) -> dict[str, Any]:
    found = [dict(c) for c in pod["containers"] if c["name"] == name]
    assert len(found) == 1, f"no container {name}"
    return found[0]


def _port(container: Mapping[str, Any], name_or_number: str | int) -> int:
    if isinstance(name_or_number, int):
        return name_or_number
    for port in container.get("ports", []):
        if port.get("name") == name_or_number:
            return int(port["containerPort"])
    raise AssertionError(f"container {container['name']} has no port {name_or_number}")


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@cache
def _pyproject_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


ALL_ENVIRONMENTS = pytest.mark.parametrize("environment", list(ENVIRONMENTS))


# --- helm lint, helm template, the Kubernetes schemas ------------------------------------------


@ALL_ENVIRONMENTS
def test_helm_lint_strict_is_clean(helm: Helm, environment: str) -> None:
    values = ENVIRONMENTS[environment]
    done = helm.run("lint", "--strict", str(CHART), *(["--values", str(values)] if values else []))
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "0 chart(s) failed" in output
    assert "[WARNING]" not in output
    assert "[ERROR]" not in output


@ALL_ENVIRONMENTS
def test_helm_template_is_clean(helm: Helm, environment: str) -> None:
    done = helm.template(environment)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert docs
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), doc
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"]), doc
        assert len(doc["metadata"]["name"]) <= 63


def _validate_custom_resource(doc: Mapping[str, Any]) -> None:
    """ServiceMonitor and PrometheusRule: the fields the Prometheus Operator requires."""
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert doc["metadata"]["name"]
    spec = doc["spec"]
    if doc["kind"] == "ServiceMonitor":
        assert spec["selector"]["matchLabels"]
        assert spec["endpoints"]
        for endpoint in spec["endpoints"]:
            assert isinstance(endpoint["port"], str)
            assert endpoint["path"] == "/metrics"
            assert re.fullmatch(r"\d+(ms|s|m|h)", endpoint["interval"])
        assert spec["namespaceSelector"]["matchNames"]
    elif doc["kind"] == "PrometheusRule":
        assert isinstance(spec["groups"], list)
        for group in spec["groups"]:
            assert isinstance(group["name"], str)
            for rule in group["rules"]:
                assert ("alert" in rule) != ("record" in rule), rule
                assert isinstance(rule["expr"], str | int | float), rule
    else:
        raise AssertionError(f"unexpected custom resource {doc['kind']}")


@pytest.mark.parametrize("variant", [*ENVIRONMENTS, "everything-on"])
def test_rendered_manifests_validate_against_the_kubernetes_schemas(
    helm: Helm, variant: str
) -> None:
    if variant == "everything-on":
        manifests = helm.render("default", **EVERYTHING_ON)
    else:
        manifests = helm.render(variant)
    validated = set()
    for doc in manifests:
        if doc["apiVersion"].startswith(CRD_GROUPS):
            _validate_custom_resource(doc)
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(
                    f"{doc['kind']}/{doc['metadata']['name']} is not valid for Kubernetes "
                    f"{version}: {exc.message} at {'.'.join(map(str, exc.path))}"
                )
        validated.add(doc["kind"])
    assert {"StatefulSet", "Deployment", "Service", "ConfigMap", "Job"} <= validated
    if variant == "everything-on":
        assert {"CronJob", "NetworkPolicy", "PersistentVolumeClaim", "Secret"} <= validated


def test_chart_app_version_is_the_project_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "recon"
    assert chart["appVersion"] == _pyproject_version()


def test_values_schema_is_json_schema_and_rejects_unknown_keys(helm: Helm) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    done = helm.template("default", **{"worker.replicaz": "2"})
    assert done.returncode != 0
    assert "replicaz" in done.stderr
    done = helm.template("default", **{"recon.logFormat": "xml"})
    assert done.returncode != 0
    assert "logFormat" in done.stderr


# --- the worker ---------------------------------------------------------------------------------


@ALL_ENVIRONMENTS
def test_the_worker_is_a_statefulset_with_its_rocksdb_on_a_volume_claim_template(
    helm: Helm, environment: str
) -> None:
    m = helm.render(environment)
    sts = m.one("StatefulSet", "worker")
    assert not [
        d for d in m.of("Deployment") if _labels(d).get("app.kubernetes.io/component") == "worker"
    ]
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"]
    worker = _container(sts["spec"]["template"]["spec"], "worker")
    assert worker["args"] == ["worker"]
    mounts = {v["name"]: v["mountPath"] for v in worker["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == m.config()["RECON_DATA_DIR"]
    # The governing Service exists and is headless.
    headless = m.named("Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    # Long enough for the batch in flight to finish and commit after SIGTERM.
    assert sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 60


@ALL_ENVIRONMENTS
def test_worker_replicas_never_exceed_the_partitions(helm: Helm, environment: str) -> None:
    m = helm.render(environment)
    partitions = int(m.config()["RECON_PARTITIONS"])
    assert 1 <= m.one("StatefulSet", "worker")["spec"]["replicas"] <= partitions


def test_a_render_with_more_workers_than_partitions_fails(helm: Helm) -> None:
    done = helm.template("default", **{"recon.partitions": "4", "worker.replicas": "5"})
    assert done.returncode != 0
    assert "worker.replicas (5) exceeds recon.partitions (4)" in done.stderr
    assert "recon scale" in done.stderr
    done = helm.template("production", **{"worker.replicas": "25"})
    assert done.returncode != 0
    # As many workers as partitions is fine.
    m = helm.render("default", **{"recon.partitions": "4", "worker.replicas": "4"})
    assert m.one("StatefulSet", "worker")["spec"]["replicas"] == 4


def test_each_worker_has_a_stable_transactional_id_from_its_pod_name(helm: Helm) -> None:
    m = helm.render("default")
    pod = m.one("StatefulSet", "worker")["spec"]["template"]["spec"]
    env = {e["name"]: e for e in _container(pod, "worker")["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    names = [e["name"] for e in _container(pod, "worker")["env"]]
    # $(POD_NAME) expands only from variables defined before it.
    assert names.index("POD_NAME") < names.index("RECON_TRANSACTIONAL_ID")
    assert "$(POD_NAME)" in env["RECON_TRANSACTIONAL_ID"]["value"]


def test_static_membership_is_off_by_default_and_uses_the_pod_name_when_on(helm: Helm) -> None:
    def worker_env(**overrides: str) -> dict[str, Any]:
        m = helm.render("default", **overrides)
        pod = m.one("StatefulSet", "worker")["spec"]["template"]["spec"]
        return {e["name"]: e for e in _container(pod, "worker")["env"]}

    assert "RECON_GROUP_INSTANCE_ID" not in worker_env()
    env = worker_env(**{"worker.staticMembership": "true"})
    assert env["RECON_GROUP_INSTANCE_ID"]["value"] == "$(POD_NAME)"
    names = list(env)
    assert names.index("POD_NAME") < names.index("RECON_GROUP_INSTANCE_ID")


@ALL_ENVIRONMENTS
def test_a_pod_disruption_budget_selects_the_worker_pods(helm: Helm, environment: str) -> None:
    m = helm.render(environment)
    pdb = m.one("PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    selector = pdb["spec"]["selector"]["matchLabels"]
    worker_labels = _labels(m.one("StatefulSet", "worker")["spec"]["template"])
    sink_labels = _labels(m.one("Deployment", "sink")["spec"]["template"])
    assert _selects(selector, worker_labels)
    assert not _selects(selector, sink_labels)


# --- the sink -----------------------------------------------------------------------------------


@ALL_ENVIRONMENTS
def test_the_sink_hpa_targets_the_sink_deployment(helm: Helm, environment: str) -> None:
    m = helm.render(environment)
    hpa = m.one("HorizontalPodAutoscaler")
    sink = m.one("Deployment", "sink")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": sink["metadata"]["name"],
    }
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    # More sinks than output partitions idle.
    assert hpa["spec"]["maxReplicas"] <= int(m.config()["RECON_PARTITIONS"])
    # The HPA owns the replica count.
    assert "replicas" not in sink["spec"]
    assert _container(sink["spec"]["template"]["spec"], "sink")["args"] == ["sink"]


def test_without_autoscaling_the_sink_has_its_replicas_and_no_hpa(helm: Helm) -> None:
    m = helm.render("default", **{"sink.autoscaling.enabled": "false", "sink.replicas": "2"})
    assert not m.of("HorizontalPodAutoscaler")
    assert m.one("Deployment", "sink")["spec"]["replicas"] == 2


# --- probes, ports, services and monitoring -----------------------------------------------------


@ALL_ENVIRONMENTS
def test_probes_hit_health_and_ready_on_the_http_ports(helm: Helm, environment: str) -> None:
    m = helm.render(environment)
    config = m.config()
    for kind, component, port_key in (
        ("StatefulSet", "worker", "RECON_WEB_PORT"),
        ("Deployment", "sink", "RECON_SINK_HTTP_PORT"),
    ):
        pod = m.one(kind, component)["spec"]["template"]["spec"]
        container = _container(pod, component)
        port = int(config[port_key])
        assert port == {"worker": 6066, "sink": 6067}[component]
        for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
            get = container[probe]["httpGet"]
            assert get["path"] == path, (component, probe)
            assert _port(container, get["port"]) == port, (component, probe)
        if component == "worker":
            startup = container["startupProbe"]
            assert startup["httpGet"]["path"] == "/health"
            assert _port(container, startup["httpGet"]["port"]) == port
            # A restore can take a while: minutes before liveness counts.
            assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
        host_key = {"worker": "RECON_WEB_HOST", "sink": "RECON_SINK_HTTP_HOST"}[component]
        assert config[host_key] == "0.0.0.0"


@ALL_ENVIRONMENTS
def test_services_reach_the_http_ports(helm: Helm, environment: str) -> None:
    m = helm.render(environment)
    pods = {
        "worker": m.one("StatefulSet", "worker")["spec"]["template"],
        "sink": m.one("Deployment", "sink")["spec"]["template"],
    }
    for service in m.of("Service"):
        component = _labels(service)["app.kubernetes.io/component"]
        assert _selects(service["spec"]["selector"], _labels(pods[component]))
        container = _container(pods[component]["spec"], component)
        for port in service["spec"]["ports"]:
            assert _port(container, port["targetPort"]) == {"worker": 6066, "sink": 6067}[component]


def test_service_monitors_scrape_metrics_as_jobs_recon_worker_and_recon_sink(helm: Helm) -> None:
    m = helm.render("production")
    jobs = {}
    for monitor in m.of("ServiceMonitor"):
        selected = [
            s
            for s in m.of("Service")
            if _selects(monitor["spec"]["selector"]["matchLabels"], _labels(s))
        ]
        assert len(selected) == 1, monitor["metadata"]["name"]
        (service,) = selected
        port_names = {p["name"] for p in service["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= port_names
        # Prometheus' job label is the value of the Service label that jobLabel names.
        job = _labels(service)[monitor["spec"]["jobLabel"]]
        jobs[_labels(service)["app.kubernetes.io/component"]] = job
        assert monitor["spec"]["namespaceSelector"]["matchNames"] == ["recon"]
        assert _labels(monitor)["release"] == "kube-prometheus-stack"
    assert jobs == {"worker": "recon-worker", "sink": "recon-sink"}


def test_monitoring_objects_follow_their_toggles(helm: Helm) -> None:
    off = helm.render("default")
    assert not off.of("ServiceMonitor")
    assert not off.of("PrometheusRule")
    assert not [c for c in off.of("ConfigMap") if "grafana_dashboard" in _labels(c)]
    on = helm.render("production")
    assert len(on.of("ServiceMonitor")) == 2
    assert len(on.of("PrometheusRule")) == 1
    assert len([c for c in on.of("ConfigMap") if "grafana_dashboard" in _labels(c)]) == 1


def test_the_prometheus_rule_holds_the_groups_of_the_rules_file(helm: Helm) -> None:
    rule = helm.render("default", **{"monitoring.prometheusRule.enabled": "true"}).one(
        "PrometheusRule"
    )
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    expected = yaml.safe_load(RULES_FILE.read_text())["groups"]
    assert rule["spec"]["groups"] == expected
    _validate_custom_resource(rule)


def test_the_dashboard_configmap_holds_the_dashboard_json(helm: Helm) -> None:
    m = helm.render("default", **{"monitoring.grafanaDashboard.enabled": "true"})
    (cm,) = [c for c in m.of("ConfigMap") if "grafana_dashboard" in _labels(c)]
    assert _labels(cm)["grafana_dashboard"] == "1"
    (name,) = cm["data"]
    assert name.endswith(".json")
    assert json.loads(cm["data"][name]) == json.loads(DASHBOARD_FILE.read_text())


def test_the_network_policy_admits_only_the_http_ports_and_needed_egress(helm: Helm) -> None:
    m = helm.render("production")
    policy = m.one("NetworkPolicy")
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    selector = policy["spec"]["podSelector"]["matchLabels"]
    for obj, _ in m.workloads():
        template_labels = _pod_template(obj)["metadata"]["labels"]
        assert _selects(selector, template_labels), obj["metadata"]["name"]
    (ingress,) = policy["spec"]["ingress"]
    assert {p["port"] for p in ingress["ports"]} == {6066, 6067}
    assert ingress["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    egress_ports = {
        (p["port"], p["protocol"]) for rule in policy["spec"]["egress"] for p in rule["ports"]
    }
    assert {(53, "UDP"), (53, "TCP"), (9093, "TCP"), (5432, "TCP")} <= egress_ports
    assert helm.render("default").of("NetworkPolicy") == []


# --- security -----------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", [*ENVIRONMENTS, "everything-on"])
def test_every_pod_is_non_root_with_a_read_only_root_filesystem(helm: Helm, variant: str) -> None:
    m = (
        helm.render("default", **EVERYTHING_ON)
        if variant == "everything-on"
        else helm.render(variant)
    )
    workloads = list(m.workloads())
    assert len(workloads) >= 3
    for obj, pod in workloads:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["runAsUser"] == 10001, where
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        assert pod["automountServiceAccountToken"] is False, where
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True, where
            assert sc["runAsUser"] == 10001, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", where
            assert "limits" in container["resources"], where
            assert "requests" in container["resources"], where
            (tmp,) = [v for v in container["volumeMounts"] if v["mountPath"] == "/tmp"]
            assert "emptyDir" in volumes[tmp["name"]], where


# --- configuration and secrets -------------------------------------------------------------------

SECRETS = {
    "database.url": "postgresql://recon:db-password-for-tests@pg:5432/recon",
    "kafka.saslPassword": "kafka-sasl-password-for-tests",
    "schemaRegistry.basicAuthUserInfo": "user:registry-password-for-tests",
}
SECRET_MARKERS = (
    "db-password-for-tests",
    "kafka-sasl-password-for-tests",
    "registry-password-for-tests",
)


def test_no_secret_value_appears_outside_a_secret(helm: Helm) -> None:
    done = helm.template("default", **{**EVERYTHING_ON, **SECRETS})
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    secrets = [d for d in docs if d["kind"] == "Secret"]
    for doc in docs:
        if doc["kind"] == "Secret":
            continue
        text = yaml.safe_dump(doc)
        for marker in SECRET_MARKERS:
            assert marker not in text, f"{doc['kind']}/{doc['metadata']['name']} holds a secret"
    for cm in (d for d in docs if d["kind"] == "ConfigMap"):
        assert not {"DATABASE_URL", "KAFKA_SASL_PASSWORD"} & set(cm.get("data") or {})
    # Each Secret holds them, base64-encoded (stringData would show them in plain text).
    assert secrets
    for secret in secrets:
        assert "stringData" not in secret
        decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        assert decoded == {
            "DATABASE_URL": SECRETS["database.url"],
            "KAFKA_SASL_PASSWORD": SECRETS["kafka.saslPassword"],
            "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": SECRETS["schemaRegistry.basicAuthUserInfo"],
        }


def _secret_refs(pod: Mapping[str, Any]) -> set[str]:
    refs = set()
    for container in pod["containers"]:
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                refs.add(source["secretRef"]["name"])
        for var in container.get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs.add(ref["name"])
    return refs


def test_existing_secret_renders_no_secret_and_every_pod_reads_it(helm: Helm) -> None:
    m = helm.render("default", **{**EVERYTHING_ON, "existingSecret": "my-recon-credentials"})
    assert m.of("Secret") == []
    for obj, pod in m.workloads():
        assert _secret_refs(pod) == {"my-recon-credentials"}, obj["metadata"]["name"]
    production = helm.render("production")
    assert production.of("Secret") == []
    for _, pod in production.workloads():
        assert _secret_refs(pod) == {"recon-credentials"}


def test_without_existing_secret_pods_read_the_charts_secret(helm: Helm) -> None:
    m = helm.render("default", **EVERYTHING_ON)
    secrets = {s["metadata"]["name"]: s for s in m.of("Secret")}
    for obj, pod in m.workloads():
        (ref,) = _secret_refs(pod)
        assert ref in secrets, obj["metadata"]["name"]


def test_a_database_is_required(helm: Helm) -> None:
    done = helm.template("default", **{"database.url": ""})
    assert done.returncode != 0
    assert "existingSecret" in done.stderr


def test_settings_reach_the_environment_of_the_processes(helm: Helm) -> None:
    m = helm.render("production")
    config = m.config()
    assert config["KAFKA_BOOTSTRAP_SERVERS"] == "kafka-prod-bootstrap.kafka.svc:9093"
    assert config["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert config["RECON_PARTITIONS"] == "24"
    assert config["RECON_LOG_FORMAT"] == "json"
    assert config["RECON_PG_SCHEMA"] == "recon"
    assert config["RECON_PROCESSING_GUARANTEE"] == "at_least_once"
    # The CA file named in KAFKA_SSL_CAFILE is mounted into the pods that read it.
    ca = Path(config["KAFKA_SSL_CAFILE"])
    for obj, pod in m.workloads():
        if obj["metadata"]["name"].endswith("-backup"):
            continue
        mounts = {v["mountPath"] for c in pod["containers"] for v in c.get("volumeMounts", [])}
        assert str(ca.parent) in mounts, obj["metadata"]["name"]
    # Every long-running pod reads every ConfigMap it needs.
    names = {c["metadata"]["name"] for c in m.of("ConfigMap")}
    for obj, pod in m.workloads():
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in names, obj["metadata"]["name"]


# --- jobs ---------------------------------------------------------------------------------------


def _hook_weight(d: Mapping[str, Any]) -> int:
    return int(_annotations(d).get("helm.sh/hook-weight", "0"))


@ALL_ENVIRONMENTS
def test_the_migration_job_is_a_pre_install_and_pre_upgrade_hook(
    helm: Helm, environment: str
) -> None:
    m = helm.render(environment)
    job = m.one("Job", "migrate")
    annotations = _annotations(job)
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert set(annotations["helm.sh/hook-delete-policy"].split(",")) == {
        "before-hook-creation",
        "hook-succeeded",
    }
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert _container(pod, "migrate")["args"] == ["db", "migrate"]


@pytest.mark.parametrize("existing_secret", ["", "my-recon-credentials"])
def test_hook_jobs_need_nothing_the_release_creates_after_them(
    helm: Helm, existing_secret: str
) -> None:
    """A pre-install hook runs before the release's ConfigMaps, Secret and ServiceAccount exist:
    it may only use hooks of a lower weight, or what the user made beforehand."""
    m = helm.render("default", **{**EVERYTHING_ON, "existingSecret": existing_secret})
    hooks = {(d["kind"], d["metadata"]["name"]): d for d in m if "helm.sh/hook" in _annotations(d)}
    jobs = [d for d in hooks.values() if d["kind"] == "Job"]
    assert {_labels(j)["app.kubernetes.io/component"] for j in jobs} == {"migrate", "topics"}
    for job in jobs:
        assert "pre-install" in _annotations(job)["helm.sh/hook"]
        pod = job["spec"]["template"]["spec"]
        assert "serviceAccountName" not in pod
        (container,) = pod["containers"]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["RECON_PG_SCHEMA"] == "recon"
        for source in container.get("envFrom", []):
            kind, ref = (
                ("ConfigMap", source["configMapRef"])
                if "configMapRef" in source
                else (
                    "Secret",
                    source["secretRef"],
                )
            )
            if existing_secret and kind == "Secret":
                assert ref["name"] == existing_secret
                continue
            used = hooks.get((kind, ref["name"]))
            assert used is not None, f"{job['metadata']['name']} reads {kind} {ref['name']}"
            assert kind in HOOK_KINDS
            assert _hook_weight(used) < _hook_weight(job)
            assert set(_annotations(used)["helm.sh/hook"].split(",")) >= {
                "pre-install",
                "pre-upgrade",
            }
        for volume in pod.get("volumes", []):
            assert set(volume) & {"emptyDir", "secret"}, volume


def test_optional_jobs_follow_their_toggles(helm: Helm) -> None:
    off = helm.render("default")
    assert off.of("CronJob") == []
    assert [_labels(j)["app.kubernetes.io/component"] for j in off.of("Job")] == ["migrate"]
    assert off.of("PersistentVolumeClaim") == []
    on = helm.render("default", **EVERYTHING_ON)
    verify = on.one("CronJob", "verify")
    pod = verify["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert _container(pod, "verify")["args"][0] == "verify"
    assert verify["spec"]["concurrencyPolicy"] == "Forbid"
    backup = on.one("CronJob", "backup")
    pod = backup["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (dump,) = pod["containers"]
    assert dump["image"].startswith("postgres:")
    assert "pg_dump --format=custom" in dump["command"][-1]
    claim = {v["name"]: v for v in pod["volumes"]}["backup"]["persistentVolumeClaim"]["claimName"]
    pvc = on.named("PersistentVolumeClaim", claim)
    assert _annotations(pvc)["helm.sh/resource-policy"] == "keep"
    assert _container(on.one("Job", "topics")["spec"]["template"]["spec"], "topics")["args"] == [
        "topics",
        "create",
    ]
    assert on.one("Job", "migrate")
    existing = helm.render(
        "default", **{"backup.enabled": "true", "backup.persistence.existingClaim": "dumps"}
    )
    assert existing.of("PersistentVolumeClaim") == []
    pod = existing.one("CronJob", "backup")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert {v["name"]: v for v in pod["volumes"]}["backup"]["persistentVolumeClaim"] == {
        "claimName": "dumps"
    }


def test_production_turns_on_what_production_needs(helm: Helm) -> None:
    production = helm.render("production")
    default = helm.render("default")
    assert int(production.config()["RECON_PARTITIONS"]) > int(default.config()["RECON_PARTITIONS"])
    assert (
        production.one("StatefulSet", "worker")["spec"]["replicas"]
        > default.one("StatefulSet", "worker")["spec"]["replicas"]
    )
    assert production.of("Secret") == []
    assert production.one("CronJob", "backup")
    assert production.one("CronJob", "verify")
    assert production.one("PrometheusRule")

    def storage_gi(m: Manifests) -> int:
        (claim,) = m.one("StatefulSet", "worker")["spec"]["volumeClaimTemplates"]
        size = claim["spec"]["resources"]["requests"]["storage"]
        assert size.endswith("Gi")
        return int(size[:-2])

    assert storage_gi(production) > storage_gi(default)
