"""DcgmMonitoring alone: hand-made args in, monitors, rules, dashboards (and exporter) out."""

from __future__ import annotations

from components.dcgm_monitoring import DcgmMonitoring, DcgmMonitoringArgs
from infra.render import helm_releases, manifests
from tests.component_harness import build, kinds


def render(**overrides):
    args = DcgmMonitoringArgs(
        operator_namespace="gpus",
        app_namespace="cats",
        app_selector={"app": "cw"},
        prometheus_labels={"release": "prom"},
        **overrides,
    )
    return build(lambda: DcgmMonitoring("monitoring", args))


def test_operator_exporter_gets_monitors_rules_and_dashboards_labelled_for_prometheus():
    recording = render()
    assert helm_releases(recording) == {}
    monitors = [m for m in manifests(recording) if m["kind"] in ("ServiceMonitor", "PrometheusRule")]
    assert len(monitors) == 3
    assert all(m["metadata"]["labels"] == {"release": "prom"} for m in monitors)
    (app_monitor,) = [m for m in monitors if m["metadata"]["namespace"] == "cats" and m["kind"] == "ServiceMonitor"]
    assert app_monitor["spec"]["selector"] == {"matchLabels": {"app": "cw"}}
    assert ("ConfigMap", "cat-watcher-dashboard") in kinds(recording)


def test_standalone_exporter_is_a_release_told_about_shared_and_renamed_devices():
    recording = render(
        exporter="standalone",
        gpu_resources=("nvidia.com/gpu.shared",),
        shared_gpus=True,
        service_monitor=False,
        dashboards=False,
    )
    release = helm_releases(recording)["dcgm-exporter"]
    assert release["namespace"] == "gpus"
    assert {"name": "NVIDIA_RESOURCE_NAMES", "value": "nvidia.com/gpu.shared"} in release["values"]["extraEnv"]
    assert {"name": "KUBERNETES_VIRTUAL_GPUS", "value": "true"} in release["values"]["extraEnv"]
    assert manifests(recording) == []
