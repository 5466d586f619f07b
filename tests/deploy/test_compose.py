"""docker-compose.yml, the Dockerfile, the Prometheus and Grafana files compose mounts, and the
Grafana dashboard, checked without Docker (issue 12)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.postgres.settings import sink_settings_from_env
from streams.worker.settings import worker_from_env
from tests.deploy.compose_support import (
    COMPOSE_FILE,
    ROOT,
    InterpolationError,
    compose_env,
    interpolate,
    interpolate_all,
    load_compose,
    rewrite_hosts,
)
from tests.deploy.dashboard_support import (
    DASHBOARD,
    SCRAPE_METRICS,
    dashboard_metric_names,
    documented_metric_names,
    expr_metric_names,
    iter_panels,
    load_dashboard,
)

PROMETHEUS_CONFIG = ROOT / "helm/recon/files/prometheus/prometheus.yml"
GRAFANA_DATASOURCES = ROOT / "helm/recon/files/grafana/provisioning/datasources/prometheus.yml"
GRAFANA_DASHBOARDS = ROOT / "helm/recon/files/grafana/provisioning/dashboards/recon.yml"

LOCAL_HOSTS = {"kafka:9092": "127.0.0.1:19092", "postgres:5432": "127.0.0.1:55432"}
# The long-running recon services and the port of their /health, /ready and /metrics.
RECON_PORTS = {"worker": 6066, "sink": 6067}
PANEL_UNITS = {"s", "ops", "percentunit", "short"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = interpolate_all(load_compose())
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def recon_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services that run the recon image (built from the Dockerfile)."""
    return {name: spec for name, spec in services.items() if "build" in spec}


def bind_mounts(spec: dict[str, Any]) -> dict[str, Path]:
    """A service's bind mounts: container path -> host path (short syntax, relative sources)."""
    mounts = {}
    for volume in spec.get("volumes", []):
        if isinstance(volume, str) and volume.startswith((".", "/")):
            source, target = volume.split(":")[:2]
            mounts[target] = (ROOT / source).resolve()
    return mounts


# --- docker-compose.yml


def test_compose_file_validates_against_the_compose_specification() -> None:
    tool = Path(sys.executable).parent / "check-jsonschema"
    assert tool.exists(), "check-jsonschema is a dev dependency: pip install -e '.[dev]'"
    result = subprocess.run(
        [str(tool), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_has_no_version_and_the_expected_services(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    assert "version" not in compose  # obsolete in the compose specification
    expected = {"kafka", "postgres", "migrate", "topics", "worker", "sink", "simulate"}
    assert expected | {"prometheus", "grafana"} <= set(services)
    assert set(recon_services(services)) == expected - {"kafka", "postgres"} | {"recon"}
    assert services["simulate"]["profiles"] == ["demo"]
    assert services["recon"]["profiles"] == ["ops"]  # docker compose run --rm recon verify


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    assert services["kafka"]["image"] == "apache/kafka:3.9.1"
    for name, spec in services.items():
        if "build" in spec:
            assert spec["build"]["context"] == "."
            assert (ROOT / spec["build"].get("dockerfile", "Dockerfile")).is_file()
            continue
        image = spec["image"]
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: {image} has no tag"
        assert "/" not in tag, f"{name}: {image} has no tag"
        assert re.match(r"^v?\d+(\.\d+)+", tag), f"{name}: {image} is not pinned to a version"


def test_kafka_is_a_single_kraft_node(services: dict[str, dict[str, Any]]) -> None:
    env = services["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "PLAINTEXT://:9092" in env["KAFKA_LISTENERS"]
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[key] == 1, key
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == 0
    assert services["kafka"]["healthcheck"]["test"]


def test_postgres_credentials_are_written_once(services: dict[str, dict[str, Any]]) -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for variable in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
        assert text.count("${" + variable) == 1, variable
    postgres = services["postgres"]["environment"]
    for service in recon_services(services):
        env = compose_env(service, {})
        assert env["PGUSER"] == postgres["POSTGRES_USER"]
        assert env["PGPASSWORD"] == postgres["POSTGRES_PASSWORD"]
        assert env["PGDATABASE"] == postgres["POSTGRES_DB"]
        assert "@" not in env["DATABASE_URL"], "the password stays out of the URL"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert any(
        str(v).endswith(":/var/lib/postgresql/data") for v in services["postgres"]["volumes"]
    )


def test_recon_services_wait_for_what_they_need(services: dict[str, dict[str, Any]]) -> None:
    """Each recon service starts after its dependencies: a service with a healthcheck when it is
    healthy, a one-shot when it completed; the long-running ones have a healthcheck of their
    own on their port."""
    for name, spec in recon_services(services).items():
        depends = spec.get("depends_on")
        assert isinstance(depends, dict), f"{name}: depends_on with conditions"
        assert depends, f"{name}: depends_on with conditions"
        for dependency, condition in depends.items():
            target = services[dependency]
            if "build" in target:  # a recon one-shot
                assert target["restart"] == "no"
                assert condition["condition"] == "service_completed_successfully"
            else:
                assert "test" in target["healthcheck"], dependency
                assert condition["condition"] == "service_healthy", f"{name} -> {dependency}"
        if name in RECON_PORTS:
            check = spec["healthcheck"]
            assert not check.get("disable")
            assert str(RECON_PORTS[name]) in check["test"], name
            assert spec["restart"] == "unless-stopped"
        else:
            assert spec["restart"] == "no"
    assert {"migrate", "topics", "postgres", "kafka"} <= set(services["sink"]["depends_on"])
    assert {"topics", "kafka"} <= set(services["simulate"]["depends_on"])
    assert "kafka" in services["topics"]["depends_on"]
    assert {"topics", "kafka"} <= set(services["worker"]["depends_on"])
    assert "postgres" in services["migrate"]["depends_on"]


def test_recon_commands(services: dict[str, dict[str, Any]]) -> None:
    commands = {name: spec["command"] for name, spec in recon_services(services).items()}
    assert commands["migrate"] == ["db", "migrate"]
    assert commands["topics"] == ["topics", "create"]
    assert commands["worker"] == ["worker"]
    assert commands["sink"] == ["sink"]
    assert commands["simulate"][0] == "simulate"
    assert commands["recon"] == ["--help"]


def test_worker_is_scalable_with_a_volume_per_replica(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker
    assert "hostname" not in worker
    for port in worker.get("ports", []):
        # a fixed host port would clash between replicas; an ephemeral one or a range would not
        if isinstance(port, dict):
            published = str(port.get("published", ""))
        else:
            published = str(port).rsplit(":", 1)[0] if ":" in str(port) else ""
        assert not published or "-" in published, f"worker publishes a fixed port: {port}"
    env = compose_env("worker", {})
    assert "RECON_TRANSACTIONAL_ID" not in env, "per replica: derived from host name and data dir"
    data_dir = env["RECON_DATA_DIR"]
    targets = [
        volume["target"] if isinstance(volume, dict) else volume.split(":")[-1]
        for volume in worker["volumes"]
    ]
    assert data_dir in targets
    for volume in worker["volumes"]:
        if isinstance(volume, dict) and volume["target"] == data_dir:
            # one volume per replica: a named volume would be shared by every replica
            assert volume["type"] == "volume"
            assert "source" not in volume
    for spec in recon_services(services).values():
        assert "container_name" not in spec


def test_processes_serve_http_on_all_interfaces(services: dict[str, dict[str, Any]]) -> None:
    worker, sink = compose_env("worker", {}), compose_env("sink", {})
    assert worker["RECON_WEB_HOST"] == "0.0.0.0"
    assert worker["RECON_WEB_PORT"] == "6066"
    assert sink["RECON_SINK_HTTP_HOST"] == "0.0.0.0"
    assert sink["RECON_SINK_HTTP_PORT"] == "6067"
    for env in (worker, sink):
        assert env["RECON_LOG_FORMAT"] == "json"
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert services["worker"]["expose"] == ["6066"]
    assert services["sink"]["expose"] == ["6067"]


def test_bind_mounts_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, spec in services.items():
        for target, source in bind_mounts(spec).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) is missing"
            assert source.is_relative_to(ROOT), source


# --- compose_env


def test_interpolation_uses_defaults_only() -> None:
    assert interpolate("${A:-x}/${B-y}/${C}/$D/$$E/${F:+z}") == "x/y///$E/"
    assert interpolate("${A:-${B:-nested}}") == "nested"
    assert interpolate("a $ b") == "a $ b"
    with pytest.raises(InterpolationError):
        interpolate("${A:?must be set}")
    with pytest.raises(InterpolationError):
        interpolate("${A")


def test_rewrite_hosts_replaces_whole_host_names_only() -> None:
    hosts = {"kafka:9092": "127.0.0.1:19092", "postgres": "db.local"}
    assert rewrite_hosts("kafka:9092,kafka2:9092", hosts) == "127.0.0.1:19092,kafka2:9092"
    assert (
        rewrite_hosts("postgresql://u:p@postgres:5432/recon", hosts)
        == "postgresql://u:p@db.local:5432/recon"
    )
    assert rewrite_hosts("mykafka:9092", hosts) == "mykafka:9092"


def test_compose_env_of_a_file(tmp_path: Path) -> None:
    compose_file = tmp_path / "docker-compose.yml"
    compose_file.write_text(
        "x-env: &env\n"
        "  KAFKA_BOOTSTRAP_SERVERS: kafka:9092\n"
        "  DATABASE_URL: postgresql://${U:-recon}@postgres:5432/${DB:-recon}\n"
        "  PORT: 6066\n"
        "  FLAG: true\n"
        "  FROM_SHELL:\n"
        "services:\n"
        "  a:\n"
        "    environment:\n"
        "      <<: *env\n"
        "      EXTRA: $${literal}\n"
        "  b:\n"
        '    environment: ["X=1", "Y=${Y:-two}", "Z"]\n',
        encoding="utf-8",
    )
    assert compose_env("a", LOCAL_HOSTS, compose_file) == {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19092",
        "DATABASE_URL": "postgresql://recon@127.0.0.1:55432/recon",
        "PORT": "6066",
        "FLAG": "true",
        "EXTRA": "${literal}",
    }
    assert compose_env("b", {}, compose_file) == {"X": "1", "Y": "two"}
    with pytest.raises(KeyError):
        compose_env("c", {}, compose_file)


def test_compose_env_is_read_by_the_settings(services: dict[str, dict[str, Any]]) -> None:
    """What the real worker and sink would read from compose's environment, hosts mapped."""
    worker_env = compose_env("worker", LOCAL_HOSTS)
    sink_env = compose_env("sink", LOCAL_HOSTS)
    assert worker_env["DATABASE_URL"] == "postgresql://127.0.0.1:55432"
    worker = worker_from_env(worker_env)
    assert worker.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert worker.web_host == "0.0.0.0"
    assert worker.web_port == 6066
    assert str(worker.data_dir) == worker_env["RECON_DATA_DIR"]
    assert worker.transactional_id is None
    sink = sink_settings_from_env(sink_env)
    assert sink.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert sink.database_url == "postgresql://127.0.0.1:55432"
    assert sink.schema == sink_env["RECON_PG_SCHEMA"]
    # one shared block: every recon service has the same connection and topology settings
    shared = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "RECON_PARTITIONS", "RECON_APP_ID")
    for name in recon_services(services):
        env = compose_env(name, LOCAL_HOSTS)
        assert {key: env[key] for key in shared} == {key: worker_env[key] for key in shared}


# --- Prometheus and Grafana provisioning


def test_prometheus_scrapes_every_worker_replica_and_the_sink(
    services: dict[str, dict[str, Any]],
) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for job_name, service in (("recon-worker", "worker"), ("recon-sink", "sink")):
        (sd,) = jobs[job_name]["dns_sd_configs"]
        assert sd["names"] == [service]
        assert sd["type"] == "A"
        assert sd["port"] == RECON_PORTS[service]
        assert service in services
        assert jobs[job_name].get("metrics_path", "/metrics") == "/metrics"
    prometheus = services["prometheus"]
    mounts = bind_mounts(prometheus)
    assert mounts["/etc/prometheus/prometheus.yml"] == PROMETHEUS_CONFIG
    assert any(
        arg == "--config.file=/etc/prometheus/prometheus.yml" for arg in prometheus["command"]
    )
    assert config["rule_files"]
    for rule_file in config["rule_files"]:
        assert rule_file in mounts, f"{rule_file} is not mounted into prometheus"
        assert mounts[rule_file].is_file(), mounts[rule_file]
        assert mounts[rule_file].parent == PROMETHEUS_CONFIG.parent


def test_grafana_provisioning(services: dict[str, dict[str, Any]]) -> None:
    grafana = services["grafana"]
    mounts = bind_mounts(grafana)
    datasources = yaml.safe_load(GRAFANA_DATASOURCES.read_text(encoding="utf-8"))
    (datasource,) = datasources["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["isDefault"]
    url = re.match(r"^http://([^:/]+):(\d+)$", datasource["url"])
    assert url, datasource["url"]
    host, port = url.groups()
    assert host in services
    assert port == "9090"
    assert mounts["/etc/grafana/provisioning/datasources"] == GRAFANA_DATASOURCES.parent

    providers = yaml.safe_load(GRAFANA_DASHBOARDS.read_text(encoding="utf-8"))
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert mounts["/etc/grafana/provisioning/dashboards"] == GRAFANA_DASHBOARDS.parent
    path = provider["options"]["path"].rstrip("/")
    provided = {t: s for t, s in mounts.items() if t == path or t.startswith(path + "/")}
    assert DASHBOARD.resolve() in provided.values(), f"nothing mounts the dashboard at {path}"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert provided.get(home) == DASHBOARD.resolve()
    anonymous = grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert anonymous
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


# --- Dockerfile and .dockerignore


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    stages = re.findall(r"^FROM\s+(\S+)\s+AS\s+(\S+)", text, re.MULTILINE)
    assert [stage for _, stage in stages] == ["builder", "runtime"]
    base = re.search(r"^ARG PYTHON_IMAGE=python:(\d+)\.(\d+)-slim-bookworm$", text, re.MULTILINE)
    assert base, "both stages on one pinned python slim-bookworm image"
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    minimum = re.search(r'requires-python = ">=(\d+)\.(\d+)"', pyproject)
    assert minimum
    assert tuple(map(int, base.groups())) >= tuple(map(int, minimum.groups()))
    runtime = text.split(" AS runtime", 1)[1]
    assert "python -m streams.native build" in text.split(" AS runtime", 1)[0]
    assert "gcc" not in runtime.lower(), "the runtime stage has no compiler"
    assert re.search(r"^ARG RECON_UID=10001$", runtime, re.MULTILINE)
    assert re.search(r"^USER \$\{RECON_UID\}:\$\{RECON_UID\}$", runtime, re.MULTILINE)
    assert re.search(r"^WORKDIR \S+", runtime, re.MULTILINE)
    assert 'VOLUME ["/var/lib/recon"]' in runtime
    assert "RECON_DATA_DIR=/var/lib/recon" in runtime
    assert re.search(r"^HEALTHCHECK .*CMD \[\"recon-healthcheck\"\]$", runtime, re.MULTILINE)
    assert "/health" in runtime
    assert "urllib.request" in runtime
    assert re.search(r'^ENTRYPOINT \["recon"\]$', runtime, re.MULTILINE)


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".local", ".mypy_cache", ".pytest_cache", "**/__pycache__"} <= patterns
    assert "**/*.so" in patterns  # compiled here for this machine; the image compiles its own
    for needed in ("pyproject.toml", "README.md", "streams", "connectors", "schemas"):
        assert needed not in patterns


# --- the Grafana dashboard


def test_dashboard_is_valid_with_unique_panel_ids(dashboard: dict[str, Any]) -> None:
    json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["schemaVersion"] >= 39
    assert dashboard["uid"]
    assert dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = list(iter_panels(dashboard))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert all(isinstance(i, int) for i in ids)


def test_every_panel_has_a_title_a_description_targets_and_a_unit(
    dashboard: dict[str, Any],
) -> None:
    for panel in iter_panels(dashboard):
        where = f"panel {panel['id']}"
        assert panel.get("title"), where
        assert panel.get("description"), where
        assert panel.get("gridPos"), where
        if panel["type"] == "row":
            continue
        assert panel.get("targets"), where
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
        for target in panel["targets"]:
            assert target.get("expr"), where
            assert target.get("refId"), where
            assert target.get("datasource", panel["datasource"]) == panel["datasource"], where
        assert panel["fieldConfig"]["defaults"]["unit"] in PANEL_UNITS, where


def test_dashboard_covers_what_ops_watch(dashboard: dict[str, Any]) -> None:
    names = dashboard_metric_names(dashboard)
    assert {
        "recon_records_in_total",
        "recon_matches_total",
        "recon_settlements_total",
        "recon_exceptions_total",
        "recon_oldest_open_exception_age_seconds",
        "recon_open_exceptions",
        "recon_open_groups",
        "recon_watermark_lag_seconds",
        "recon_consumer_lag_records",
        "recon_sink_consumer_lag_records",
        "recon_dead_letters_total",
        "recon_sink_dead_letters_total",
        "recon_sink_batch_seconds",
        "recon_sink_retries_total",
        "recon_sink_database_errors_total",
        "recon_sink_rows_written_total",
        "recon_batch_seconds",
        "recon_restore_active_seconds",
        "recon_ready",
        "up",
    } <= names
    exprs = " ".join(t["expr"] for p in iter_panels(dashboard) for t in p.get("targets", []))
    assert "histogram_quantile(0.99" in exprs
    assert "histogram_quantile(0.5" in exprs
    units = {p["fieldConfig"]["defaults"]["unit"] for p in iter_panels(dashboard) if "targets" in p}
    assert units == PANEL_UNITS


def test_dashboard_queries_only_documented_metrics(dashboard: dict[str, Any]) -> None:
    """No recording rule, no metric the processes do not export (docs/observability.md)."""
    documented = documented_metric_names()
    assert {"recon_records_in_total", "recon_sink_batch_seconds", "recon_ready"} <= documented
    assert "recon_schema_registry_retries_total" in documented  # a cell listing several names
    unknown = dashboard_metric_names(dashboard) - documented - SCRAPE_METRICS
    assert not unknown, f"not in docs/observability.md's metric tables: {sorted(unknown)}"


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (topic) (rate(recon_records_in_total{job="recon-worker"}[$__rate_interval]))',
            {"recon_records_in_total"},
        ),
        (
            "histogram_quantile(0.99, sum by (le) (rate(recon_sink_batch_seconds_bucket[5m])))",
            {"recon_sink_batch_seconds"},
        ),
        ("rate(a_sum[5m]) / rate(a_count[5m])", {"a"}),
        ('up{job=~"recon-.*"} == 0 or absent(up{job="x"})', {"up"}),
        ("sum(rate(x_total[1h] offset 1d)) without (instance) > bool 1e3", {"x_total"}),
        ("max_over_time(deriv(lag[10m:1m])[1h:]) and on (job) group_left (x) y", {"lag", "y"}),
        ("time() - max by (instance) (last_seconds) > 26 * 3600", {"last_seconds"}),
        ("recon:match_share:ratio_1h < 0.95", {"recon:match_share:ratio_1h"}),
        ('count(m{a="sum(b)"}) unless ignoring (x) NaN', {"m"}),
    ],
)
def test_expr_metric_names(expr: str, names: set[str]) -> None:
    assert expr_metric_names(expr) == names


def test_dashboard_metric_names_reads_every_panel_and_collapsed_rows() -> None:
    dashboard = {
        "panels": [
            {"id": 1, "type": "timeseries", "targets": [{"expr": "rate(a_total[5m])"}]},
            {
                "id": 2,
                "type": "row",
                "collapsed": True,
                "panels": [{"id": 3, "targets": [{"expr": "b_seconds_bucket"}, {"refId": "B"}]}],
            },
        ]
    }
    assert dashboard_metric_names(dashboard) == {"a_total", "b_seconds"}
