"""DcgmMonitoring as rendered: ServiceMonitors, PrometheusRule, dashboards and the exporter,
checked against the CRDs, the exporter's counters and the service's metrics contract."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from components import dashboards
from components.dcgm_monitoring import (
    DCGM_EXPORTER_SELECTOR,
    DCGM_METRICS,
    STANDALONE_SELECTOR,
    DcgmMonitoringArgs,
    alert_rules,
    exporter_env,
    known_series,
    prometheus_rule_spec,
    standalone_values,
)
from infra.operator_chart import value_paths
from infra.render import helm_releases
from tests.conftest import ROOT, objects, one, operator_values, render_config
from tests.monitoring_schema import SCHEMAS, property_paths
from tests.promql_check import dashboard_queries, violations
from tests.promtool import assert_alerts, check_rules, needs_promtool

HOMELAB_3060 = {"gpu": {"preset": "rtx-3060", "sharing": "time-slicing", "replicas": 4}, "app": {"replicas": 4}}
STANDALONE = {**HOMELAB_3060, "monitoring": {"exporter": "standalone"}}
UNSHARED = {"gpu": {"preset": "rtx-3060", "sharing": "none"}, "app": {"replicas": 1}}
KNOWN = known_series()


def crd_schema(reference: Path, plural: str) -> dict:
    crd = yaml.safe_load((reference / f"crd-monitoring.coreos.com_{plural}.yaml").read_text())
    return next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]


def alerts(recording) -> dict[str, dict]:
    rule = one(recording, "PrometheusRule", "cat-watcher-gpu")
    return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}


# --- what every stack renders -------------------------------------------------------------


def test_every_stack_renders_the_monitoring_objects(rendered):
    monitors = {m["metadata"]["name"]: m for m in objects(rendered, "ServiceMonitor")}
    # Not `nvidia-dcgm-exporter`: the operator deletes an object of that name (issue 12).
    # A HAMi stack adds HAMi's own (tests/test_component_hami.py).
    hami = {"hami-device-plugin", "hami-scheduler"} if "hami" in helm_releases(rendered) else set()
    assert set(monitors) == {"cat-watcher-dcgm-exporter", "cat-watcher"} | hami
    assert len(objects(rendered, "PrometheusRule")) == 1 + bool(hami)
    boards = {
        m["metadata"]["name"]: m
        for m in objects(rendered, "ConfigMap")
        if m["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    }
    assert set(boards) == {"nvidia-dcgm-exporter-dashboard", "cat-watcher-dashboard"}
    assert {
        "CatWatcherGpuFramebufferNearlyFull",
        "CatWatcherGpuSaturated",
        "CatWatcherGpuXidError",
        "CatWatcherDcgmExporterAbsent",
        "CatWatcherDegradedToCpu",
    } <= set(alerts(rendered))


def test_monitoring_objects_validate_against_the_derived_schema(rendered):
    for kind, schema in SCHEMAS.items():
        for manifest in objects(rendered, kind):
            jsonschema.validate(manifest, schema)


def test_monitoring_objects_validate_against_the_crds(rendered, reference):
    for kind, plural in (("ServiceMonitor", "servicemonitors"), ("PrometheusRule", "prometheusrules")):
        schema = crd_schema(reference, plural)
        validator = jsonschema.Draft7Validator(schema)  # not validate(): its patterns are Go regexes
        for manifest in objects(rendered, kind):
            validator.validate(manifest)


def test_derived_schema_names_only_fields_the_crds_have(reference):
    for kind, plural in (("ServiceMonitor", "servicemonitors"), ("PrometheusRule", "prometheusrules")):
        ours = {p for p in property_paths(SCHEMAS[kind]) if not p.startswith("metadata.")}
        assert ours <= property_paths(crd_schema(reference, plural)), kind


def test_derived_schema_refuses_what_the_crd_refuses():
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "x", "namespace": "y"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "endpoints": [{"port": "m", "interval": "15 s"}]},
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(monitor, SCHEMAS["ServiceMonitor"])


# --- exporter: scraping and pod attribution -----------------------------------------------


def test_operator_exporter_is_scraped_with_its_own_pod_labels(rendered):
    monitor = one(rendered, "ServiceMonitor", "cat-watcher-dcgm-exporter")
    assert monitor["spec"]["selector"]["matchLabels"] == DCGM_EXPORTER_SELECTOR
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] == "gpu-metrics" and endpoint["honorLabels"] is True
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == ["gpu-operator"]
    assert operator_values(rendered)["dcgmExporter"]["enabled"] is True


def test_the_service_monitor_of_the_service_is_kept(rendered):
    monitor = one(rendered, "ServiceMonitor", "cat-watcher")
    service = one(rendered, "Service", "cat-watcher")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"


def test_standalone_exporter_replaces_the_operators():
    recording = render_config(STANDALONE)
    release = helm_releases(recording)["dcgm-exporter"]
    assert (release["chart"], release["repository"], release["namespace"]) == (
        "dcgm-exporter",
        "https://nvidia.github.io/dcgm-exporter/helm-charts",
        "gpu-operator",
    )
    assert operator_values(recording)["dcgmExporter"]["enabled"] is False
    monitor = one(recording, "ServiceMonitor", "cat-watcher-dcgm-exporter")
    assert monitor["spec"]["selector"]["matchLabels"] == STANDALONE_SELECTOR
    assert monitor["spec"]["endpoints"][0] | {"port": "metrics", "honorLabels": True} == monitor["spec"]["endpoints"][0]
    env = {e["name"]: e["value"] for e in release["values"]["extraEnv"]}
    assert env["KUBERNETES_VIRTUAL_GPUS"] == "true"
    assert alerts(recording)["CatWatcherDcgmExporterAbsent"]["expr"] == 'absent(up{job="dcgm-exporter"} == 1)'


def test_standalone_exporter_uses_the_distributions_runtime_class():
    k3s = render_config({**STANDALONE, "cluster": {"distribution": "k3s"}})
    assert helm_releases(k3s)["dcgm-exporter"]["values"]["runtimeClassName"] == "nvidia"
    kubeadm = helm_releases(render_config(STANDALONE))["dcgm-exporter"]["values"]
    assert "runtimeClassName" not in kubeadm


def test_standalone_values_exist_in_the_chart(reference):
    chart = yaml.safe_load((reference / "dcgm-exporter-values.yaml").read_text())
    chart_paths = set(value_paths(chart))
    args = DcgmMonitoringArgs(
        "gpu-operator",
        "cat-watcher",
        {},
        exporter="standalone",
        shared_gpus=True,
        gpu_resources=("nvidia.com/gpu.shared",),
        runtime_class="nvidia",
    )
    for path in value_paths(standalone_values(args)):
        # A key under a map the chart leaves empty (nodeSelector: {}) is the user's own.
        prefixes = {path.rsplit(".", n)[0] for n in range(path.count(".") + 1)}
        assert prefixes & chart_paths, path


def test_exporter_env_makes_shared_and_renamed_devices_attributable():
    assert exporter_env(["nvidia.com/gpu"], shared_gpus=False) == []
    assert exporter_env(["nvidia.com/gpu.shared", "nvidia.com/mig-1g.5gb"], shared_gpus=True) == [
        {"name": "KUBERNETES_VIRTUAL_GPUS", "value": "true"},
        {"name": "NVIDIA_RESOURCE_NAMES", "value": "nvidia.com/gpu.shared"},
    ]


def test_per_pod_memory_alert_where_pods_can_be_told_apart():
    # Both exporters are told to repeat a shared device per pod (KUBERNETES_VIRTUAL_GPUS), and
    # the alert leaves out devices more than one pod uses.
    for config in (HOMELAB_3060, STANDALONE, UNSHARED):
        assert "CatWatcherPodNearGpuMemoryLimit" in alerts(render_config(config))


def test_operator_exporter_gets_the_attribution_env():
    from tests.conftest import operator_values

    env = operator_values(render_config(HOMELAB_3060))["dcgmExporter"]["env"]
    assert {"name": "KUBERNETES_VIRTUAL_GPUS", "value": "true"} in env


def test_the_briefs_queries_use_labels_the_exporter_has():
    for metric in ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE"):
        assert violations(f'{metric}{{pod=~"cat-watcher.*"}}', KNOWN) == []
    assert violations('DCGM_FI_DEV_GPU_UTIL{exported_pod=~"cat-watcher.*"}', KNOWN) != []


# --- queries: metrics and labels that exist -----------------------------------------------


@pytest.mark.parametrize("rule", alert_rules("cat-watcher"), ids=lambda r: r["alert"])
def test_alert_queries_use_only_known_metrics_and_labels(rule):
    assert violations(rule["expr"], KNOWN) == []


def test_dashboard_queries_use_only_known_metrics_and_labels():
    queries = list(dashboard_queries(dashboards.cat_watcher_dashboard()))
    assert len(queries) >= 10
    problems = {where: found for where, expr, legend in queries if (found := violations(expr, KNOWN, legend))}
    assert problems == {}


def test_the_checker_catches_unknown_metrics_and_labels():
    assert violations("catwatcher_request_total", KNOWN) == ["unknown metric catwatcher_request_total"]
    assert violations('sum by (stage) (catwatcher_requests_total{outcome="ok"})', KNOWN) == [
        "no metric here has label stage"
    ]
    assert violations("rate(x[5m]", KNOWN)[0].startswith("does not parse")


def test_cat_watcher_dashboard_is_what_the_config_map_carries(rendered):
    board = one(rendered, "ConfigMap", "cat-watcher-dashboard")
    assert json.loads(board["data"][dashboards.CAT_WATCHER_FILE]) == dashboards.cat_watcher_dashboard()
    panels = {p["title"] for p in dashboards.cat_watcher_dashboard()["panels"]}
    assert {
        "GPU memory per pod vs its limit",
        "Request latency",
        "Requests per second by outcome",
        "Degraded pods",
    } <= panels


def test_dcgm_dashboard_is_provisioned_by_url_not_copied(rendered):
    board = one(rendered, "ConfigMap", "nvidia-dcgm-exporter-dashboard")
    assert board["data"] == {
        "nvidia-dcgm-exporter-12239.json.url": "https://grafana.com/api/dashboards/12239/revisions/2/download"
    }
    for path in (ROOT / "components" / "dashboards").iterdir():
        assert "Oxed_c6Wz" not in path.read_text(errors="ignore"), path.name


def test_dashboard_12239_reference_needs_no_import_inputs(reference):
    """The sidecar writes the downloaded JSON as is: it must pick its data source through a
    `$datasource` variable, not a `${DS_...}` import input no one fills in."""
    text = (reference / "grafana-dashboard-12239-dcgm-exporter.json").read_text()
    board = json.loads(text)
    assert board["gnetId"] == dashboards.DCGM_DASHBOARD_ID and "__inputs" not in board and "${DS_" not in text
    assert any(v["type"] == "datasource" for v in board["templating"]["list"])


# --- the DCGM counters: a project-owned list, checked against the exporter's ---------------


def enabled_counters(reference: Path) -> dict[str, str]:
    rows = (
        line
        for line in (reference / "dcgm-default-counters.csv").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    return {row[0].strip(): row[1].strip() for row in csv.reader(rows)}


def test_dcgm_metrics_used_are_enabled_by_default(reference):
    counters = enabled_counters(reference)
    assert DCGM_METRICS <= set(counters)
    assert all(counters[m] == "gauge" for m in DCGM_METRICS)


# --- promtool, when Debian's prometheus package is installed -------------------------------


@needs_promtool
def test_promtool_accepts_the_rules(tmp_path):
    for exporter in ("operator", "standalone"):
        path = tmp_path / f"rules-{exporter}.yaml"
        path.write_text(yaml.safe_dump(prometheus_rule_spec("cat-watcher", exporter)))
        check_rules(path)


@needs_promtool
def test_promtool_alerts_fire_on_synthetic_series(tmp_path):
    """A device used by one pod near its limit alerts; a time-sliced device shared by two pods
    does not blame either; a full framebuffer and a degraded pod alert."""
    dev0 = 'Hostname="n1",gpu="0",UUID="GPU-0",modelName="RTX 3060"'
    dev1 = 'Hostname="n1",gpu="1",UUID="GPU-1",modelName="RTX 3060"'
    series = [
        # GPU 0: one pod, 2400 of its 2560 MiB; GPU 1: two pods (vgpu copies), 11500 of 12288 MiB.
        (f'DCGM_FI_DEV_FB_USED{{{dev0},namespace="cat-watcher",pod="cat-watcher-a"}}', "2400x20"),
        (f'DCGM_FI_DEV_FB_FREE{{{dev0},namespace="cat-watcher",pod="cat-watcher-a"}}', "9888x20"),
        (f'DCGM_FI_DEV_FB_USED{{{dev1},namespace="cat-watcher",pod="cat-watcher-b",vgpu="0"}}', "11500x20"),
        (f'DCGM_FI_DEV_FB_FREE{{{dev1},namespace="cat-watcher",pod="cat-watcher-b",vgpu="0"}}', "788x20"),
        (f'DCGM_FI_DEV_FB_USED{{{dev1},namespace="cat-watcher",pod="cat-watcher-c",vgpu="1"}}', "11500x20"),
        (f'DCGM_FI_DEV_FB_FREE{{{dev1},namespace="cat-watcher",pod="cat-watcher-c",vgpu="1"}}', "788x20"),
        ('up{job="nvidia-dcgm-exporter",instance="n1:9400"}', "1x40"),
        # GPU 0 reports XID 43 once at minute 5, and the gauge keeps that value afterwards.
        (f"DCGM_FI_DEV_XID_ERRORS{{{dev0}}}", "0x4 43x35"),
        (f"DCGM_FI_DEV_XID_ERRORS{{{dev1}}}", "0x40"),
    ]
    for pod, degraded in (("cat-watcher-a", 0), ("cat-watcher-b", 0), ("cat-watcher-c", 1)):
        series.append(
            (f'catwatcher_gpu_memory_limit_bytes{{namespace="cat-watcher",pod="{pod}"}}', f"{2560 * 2**20}x20")
        )
        series.append((f'catwatcher_degraded{{namespace="cat-watcher",pod="{pod}"}}', f"{degraded}x20"))
    pod_alert = {"exp_labels": {"severity": "warning", "namespace": "cat-watcher", "pod": "cat-watcher-a"}}
    alert_tests = [
        {"eval_time": "10m", "alertname": "CatWatcherPodNearGpuMemoryLimit", "exp_alerts": [pod_alert]},
        {
            "eval_time": "10m",
            "alertname": "CatWatcherGpuFramebufferNearlyFull",
            "exp_alerts": [
                {
                    "exp_labels": {
                        "severity": "warning",
                        "Hostname": "n1",
                        "gpu": "1",
                        "UUID": "GPU-1",
                        "modelName": "RTX 3060",
                    }
                }
            ],
        },
        {
            "eval_time": "10m",
            "alertname": "CatWatcherDegradedToCpu",
            "exp_alerts": [{"exp_labels": {"severity": "warning", "namespace": "cat-watcher", "pod": "cat-watcher-c"}}],
        },
        {"eval_time": "10m", "alertname": "CatWatcherDcgmExporterAbsent", "exp_alerts": []},
        {"eval_time": "4m", "alertname": "CatWatcherGpuXidError", "exp_alerts": []},
        {
            "eval_time": "6m",
            "alertname": "CatWatcherGpuXidError",
            "exp_alerts": [{"exp_labels": {"severity": "critical", "Hostname": "n1", "gpu": "0", "UUID": "GPU-0"}}],
        },
        # The same stale value 20 minutes later is not a new error: resolved.
        {"eval_time": "25m", "alertname": "CatWatcherGpuXidError", "exp_alerts": []},
    ]
    assert_alerts(tmp_path, prometheus_rule_spec("cat-watcher"), series, alert_tests)
