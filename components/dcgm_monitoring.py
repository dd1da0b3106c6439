"""DcgmMonitoring: GPU and Cat Watcher monitoring for a cluster with the Prometheus operator.

What it creates (all optional, see DcgmMonitoringArgs):
- the standalone `dcgm-exporter` Helm release, when the stack does not use the operator's exporter;
- ServiceMonitors for the DCGM exporter (operator-built or standalone) and for the service;
- a PrometheusRule with the alerts that matter on shared GPUs;
- two Grafana dashboards as sidecar ConfigMaps (`grafana_dashboard: "1"`): NVIDIA's dashboard
  12239 by reference (a `.url` key: the sidecar downloads it) and the project's own Cat Watcher
  dashboard (components/dashboards/cat-watcher.json).

Pod attribution. The exporter labels a device's series with `pod`/`namespace`/`container` when
the kubelet's pod-resources API maps the device to a pod (DCGM_EXPORTER_KUBERNETES, on by default
in both the operator's and the standalone exporter). A time-sliced or MPS device is handed to
several pods as `<UUID>::<n>` replicas: by default the exporter then labels the device with ONE
of them (whichever it saw last). With KUBERNETES_VIRTUAL_GPUS=true it emits one copy of each
device series per sharing pod (label `vgpu`), so `DCGM_FI_DEV_GPU_UTIL{pod=~"cat-watcher.*"}`
finds every pod, but the values stay those of the whole device: a per-pod split of GPU memory
does not exist for time-slicing. The per-pod memory alert therefore only counts devices that
exactly one pod uses.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from components import dashboards as dashboard_data
from components.sharing_config import GPU_RESOURCE
from inference import contract

ExporterKind = Literal["operator", "standalone"]

# The operator-built exporter (assets/state-dcgm-exporter in NVIDIA/gpu-operator).
DCGM_EXPORTER_SELECTOR = {"app": "nvidia-dcgm-exporter"}
DCGM_EXPORTER_PORT = "gpu-metrics"
DCGM_EXPORTER_SERVICE = "nvidia-dcgm-exporter"
# Our ServiceMonitor for either exporter. Not `nvidia-dcgm-exporter`: the operator owns that name
# in its namespace and, with dcgmExporter.serviceMonitor.enabled false, deletes an object of that
# name at every reconcile (controllers/object_controls.go, ServiceMonitor()).
DCGM_SERVICE_MONITOR = "cat-watcher-dcgm-exporter"

# The standalone chart (NVIDIA/dcgm-exporter, deployment/): release `dcgm-exporter` makes a
# Service of that name, selector labels name+instance, port `metrics`.
STANDALONE_CHART = "dcgm-exporter"
STANDALONE_REPOSITORY = "https://nvidia.github.io/dcgm-exporter/helm-charts"
STANDALONE_CHART_VERSION = "4.8.2"
STANDALONE_RELEASE = "dcgm-exporter"
STANDALONE_SELECTOR = {"app.kubernetes.io/name": STANDALONE_CHART, "app.kubernetes.io/instance": STANDALONE_RELEASE}
STANDALONE_PORT = "metrics"

MIG_RESOURCE_PREFIX = "nvidia.com/mig-"
MIB = 1024 * 1024

# DCGM counters the rules and dashboards use. Each is enabled in the exporter's default
# counters (etc/default-counters.csv; tests/test_monitoring.py checks against the reference).
DCGM_GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"  # gauge, %
DCGM_FB_USED = "DCGM_FI_DEV_FB_USED"  # gauge, MiB
DCGM_FB_FREE = "DCGM_FI_DEV_FB_FREE"  # gauge, MiB
DCGM_XID_ERRORS = "DCGM_FI_DEV_XID_ERRORS"  # gauge, last XID code
DCGM_METRICS: frozenset[str] = frozenset({DCGM_GPU_UTIL, DCGM_FB_USED, DCGM_FB_FREE, DCGM_XID_ERRORS})

# Labels of a DCGM series: the device's own; the workload's when the exporter maps the device to
# a pod (`vgpu` with KUBERNETES_VIRTUAL_GPUS); GPU_I_* on MIG instances.
DCGM_LABELS: frozenset[str] = frozenset(
    {
        "gpu",
        "UUID",
        "device",
        "modelName",
        "Hostname",
        "pci_bus_id",
        "DCGM_FI_DRIVER_VERSION",
        "GPU_I_ID",
        "GPU_I_PROFILE",
        "pod",
        "namespace",
        "container",
        "vgpu",
    }
)
# Labels Prometheus adds to every scraped series (with honorLabels the exporter's own
# pod/namespace/container win over the target's).
TARGET_LABELS: frozenset[str] = frozenset({"job", "instance", "endpoint", "service", "namespace", "pod", "container"})
# Series Prometheus makes itself.
PROMETHEUS_SERIES: Mapping[str, frozenset[str]] = {"up": frozenset()}

# Default thresholds of the alerts.
FB_FULL_RATIO = 0.9
POD_LIMIT_RATIO = 0.9
SATURATION_PERCENT = 95
INFERENCE_P95_SECONDS = 0.5


def service_series() -> dict[str, frozenset[str]]:
    """Every series the Cat Watcher service exposes (inference/contract.py) -> its own labels;
    a histogram also has `_bucket` (with `le`), `_sum` and `_count`."""
    series: dict[str, frozenset[str]] = {
        contract.METRIC_REQUESTS_TOTAL: frozenset({"outcome"}),
        contract.METRIC_DEVICE_INFO: frozenset({"device"}),
        contract.METRIC_DEGRADED: frozenset(),
        contract.METRIC_GPU_MEMORY_LIMIT: frozenset(),
        contract.METRIC_RUNS_IN_FLIGHT: frozenset(),
    }
    for histogram, label in (
        (contract.METRIC_REQUEST_DURATION, "outcome"),
        (contract.METRIC_INFERENCE_DURATION, "stage"),
    ):
        series[f"{histogram}_bucket"] = frozenset({label, "le"})
        series[f"{histogram}_sum"] = frozenset({label})
        series[f"{histogram}_count"] = frozenset({label})
    return series


def known_series() -> dict[str, frozenset[str]]:
    """Every metric a rule or dashboard may query -> every label it may carry."""
    known = {name: DCGM_LABELS | TARGET_LABELS for name in DCGM_METRICS}
    known.update({name: labels | TARGET_LABELS for name, labels in service_series().items()})
    known.update({name: labels | TARGET_LABELS for name, labels in PROMETHEUS_SERIES.items()})
    return known


@dataclass(frozen=True)
class DcgmMonitoringArgs:
    operator_namespace: pulumi.Input[str]
    app_namespace: pulumi.Input[str]
    app_selector: Mapping[str, str]
    service_monitor: bool = True  # ServiceMonitors and the PrometheusRule: need the operator's CRDs
    prometheus_labels: Mapping[str, str] = field(default_factory=dict)
    exporter: ExporterKind = "operator"
    standalone_chart_version: str = STANDALONE_CHART_VERSION
    # GPU resource names the inference pods ask for; a renamed one (`nvidia.com/gpu.shared`)
    # must be named to the exporter or it never maps those devices to pods.
    gpu_resources: Sequence[str] = (GPU_RESOURCE,)
    # Whether pods share a device (time-slicing, MPS): per-pod GPU memory is then unknowable.
    shared_gpus: bool = False
    runtime_class: str | None = None  # for the standalone exporter's pods
    dashboards: bool = True
    dashboard_namespace: pulumi.Input[str] | None = None  # default: the app's namespace
    dcgm_dashboard_revision: int = dashboard_data.DCGM_DASHBOARD_REVISION
    # Resources the standalone exporter waits for (the operator: driver and toolkit).
    exporter_depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


def exporter_env(gpu_resources: Iterable[str], shared_gpus: bool) -> list[dict[str, str]]:
    """Exporter settings that make pod attribution work where it can (both exporters already
    set DCGM_EXPORTER_KUBERNETES=true)."""
    env = []
    if shared_gpus:
        # One series per sharing pod instead of one arbitrary pod per device.
        env.append({"name": "KUBERNETES_VIRTUAL_GPUS", "value": "true"})
    extra = sorted({r for r in gpu_resources if r != GPU_RESOURCE and not r.startswith(MIG_RESOURCE_PREFIX)})
    if extra:
        env.append({"name": "NVIDIA_RESOURCE_NAMES", "value": ",".join(extra)})
    return env


def standalone_values(args: DcgmMonitoringArgs) -> dict[str, Any]:
    """Values of the standalone chart; every key path exists in its values.yaml (a reference
    test checks). Our ServiceMonitor replaces the chart's (labels, honorLabels)."""
    values: dict[str, Any] = {
        "serviceMonitor": {"enabled": False},
        "nodeSelector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
    }
    if env := exporter_env(args.gpu_resources, args.shared_gpus):
        values["extraEnv"] = env
    if args.runtime_class:
        values["runtimeClassName"] = args.runtime_class
    return values


def exporter_target(exporter: ExporterKind) -> tuple[str, dict[str, str], str]:
    """(Service name = Prometheus job, selector labels, port name) of the chosen exporter."""
    if exporter == "standalone":
        return STANDALONE_RELEASE, dict(STANDALONE_SELECTOR), STANDALONE_PORT
    return DCGM_EXPORTER_SERVICE, dict(DCGM_EXPORTER_SELECTOR), DCGM_EXPORTER_PORT


def dcgm_service_monitor_spec(namespace: str, exporter: ExporterKind = "operator") -> dict[str, Any]:
    """Scrape the exporter. honorLabels keeps the exporter's own `pod`, `namespace` and
    `container` labels (the GPU's workload pod) instead of renaming them to `exported_pod` etc.:
    queries like DCGM_FI_DEV_GPU_UTIL{pod=~"cat-watcher.*"} need that."""
    _, selector, port = exporter_target(exporter)
    return {
        "selector": {"matchLabels": selector},
        "namespaceSelector": {"matchNames": [namespace]},
        "endpoints": [{"port": port, "path": "/metrics", "interval": "15s", "honorLabels": True}],
    }


def app_service_monitor_spec(namespace: str, selector: Mapping[str, str]) -> dict[str, Any]:
    return {
        "selector": {"matchLabels": dict(selector)},
        "namespaceSelector": {"matchNames": [namespace]},
        "endpoints": [{"port": contract.PORT_NAME, "path": contract.METRICS_PATH, "interval": "30s"}],
    }


def _alert(name: str, expr: str, for_: str, severity: str, summary: str, description: str) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity},
        "annotations": {"summary": summary, "description": description},
    }


def alert_rules(
    app_namespace: str,
    exporter: ExporterKind = "operator",
) -> list[dict[str, Any]]:
    """The alerts, as PrometheusRule rules. Both exporters are told to split a shared device
    per pod (exporter_env), and the per-pod memory alert leaves out devices several pods share
    (each would show the device's total)."""
    job, _, _ = exporter_target(exporter)
    app = f'namespace="{app_namespace}"'
    device = "Hostname, gpu, UUID, modelName, GPU_I_ID"
    rules = [
        _alert(
            "CatWatcherGpuFramebufferNearlyFull",
            f"max by ({device}) ({DCGM_FB_USED} / ({DCGM_FB_USED} + {DCGM_FB_FREE})) > {FB_FULL_RATIO}",
            "5m",
            "warning",
            "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} has "
            "{{ $value | humanizePercentage }} of its memory in use",
            "Every pod sharing this GPU allocates from the same framebuffer: the next allocation "
            "of any of them may fail with CUDA out-of-memory. Lower replicas or memoryPerPodMb.",
        ),
        _alert(
            "CatWatcherGpuSaturated",
            f"max by (Hostname, gpu, modelName) (avg_over_time({DCGM_GPU_UTIL}[10m])) > {SATURATION_PERCENT}",
            "15m",
            "warning",
            "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} has been busy over "
            f"{SATURATION_PERCENT}% for 15 minutes",
            "Time-slicing contention: the pods on this GPU queue for it, so each inference "
            "waits for the others' slices and latency grows with the number of pods. "
            "Fewer pods per GPU, or MPS (runs kernels of several pods at once).",
        ),
        _alert(
            "CatWatcherInferenceSlow",
            # Per stage: identify runs only when cats are in view, so a mixed quantile would
            # move with how often they are.
            f"histogram_quantile(0.95, sum by (namespace, stage, le) "
            f"(rate({contract.METRIC_INFERENCE_DURATION}_bucket{{{app}}}[5m]))) > {INFERENCE_P95_SECONDS}",
            "10m",
            "warning",
            "Cat Watcher p95 {{ $labels.stage }} time is {{ $value | humanizeDuration }}",
            "Inference is slower than it should be; with a saturated GPU this is time-slicing "
            "contention, with an idle GPU look for pods degraded to CPU.",
        ),
        _alert(
            "CatWatcherGpuXidError",
            # The gauge keeps the last XID until the exporter restarts: alert on a new value,
            # for 10 minutes, not forever after the first one.
            f"max by (Hostname, gpu, UUID) (changes({DCGM_XID_ERRORS}[10m]) > 0 and {DCGM_XID_ERRORS} > 0)",
            "0m",
            "critical",
            "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} reported a new XID error",
            "The driver logged an XID error (e.g. 13/31/43: a program faulted, usually one pod; "
            "48/63/64/74/79: hardware or bus, the whole GPU and every pod on it). "
            "See `dmesg | grep -i xid` on the node.",
        ),
        _alert(
            "CatWatcherDcgmExporterAbsent",
            f'absent(up{{job="{job}"}} == 1)',
            "10m",
            "warning",
            "No DCGM exporter target is up",
            f"Prometheus scrapes no `{job}` target: GPU alerts and dashboards are blind. "
            "Check the exporter DaemonSet and the ServiceMonitor's labels.",
        ),
        _alert(
            "CatWatcherDegradedToCpu",
            f"max by (namespace, pod) ({contract.METRIC_DEGRADED}{{{app}}}) == 1",
            "5m",
            "warning",
            "Cat Watcher pod {{ $labels.pod }} runs inference on the CPU",
            "The pod could not use its GPU slice (CUDA init failed or out of GPU memory) and "
            "fell back to the CPU: it answers, slowly.",
        ),
    ]
    # Devices used by exactly one pod (no sharing, or a MIG instance): their memory is that
    # pod's. On a device shared by several pods every pod would show the device's total.
    shared = f'count by (Hostname, gpu, GPU_I_ID) ({DCGM_FB_USED}{{pod!=""}}) > 1'
    used = (
        f'max by (namespace, pod) ({DCGM_FB_USED}{{{app}, pod!=""}} '
        f"unless on (Hostname, gpu, GPU_I_ID) ({shared})) * {MIB}"
    )
    limit = f"max by (namespace, pod) ({contract.METRIC_GPU_MEMORY_LIMIT}{{{app}}} > 0)"
    rules.insert(
        1,
        _alert(
            "CatWatcherPodNearGpuMemoryLimit",
            f"{used} > on (namespace, pod) ({POD_LIMIT_RATIO} * {limit})",
            "5m",
            "warning",
            f"Cat Watcher pod {{{{ $labels.pod }}}} uses over {POD_LIMIT_RATIO:.0%} of its GPU memory limit",
            "The pod's GPU memory (arena, cuDNN workspaces and CUDA context) is near the limit "
            "it was sized to; its next allocation may fail and degrade it to CPU.",
        ),
    )
    return rules


def prometheus_rule_spec(app_namespace: str, exporter: ExporterKind = "operator") -> dict[str, Any]:
    return {"groups": [{"name": "cat-watcher-gpu", "rules": alert_rules(app_namespace, exporter)}]}


def dcgm_dashboard_data(revision: int) -> dict[str, str]:
    """NVIDIA's dashboard by reference: the Grafana sidecar (kiwigrid/k8s-sidecar) downloads a
    key ending in `.url` and writes it under the key's name without `.url`."""
    return {f"{dashboard_data.DCGM_DASHBOARD_FILE}.url": dashboard_data.dcgm_dashboard_url(revision)}


def cat_watcher_dashboard_data() -> dict[str, str]:
    return {
        dashboard_data.CAT_WATCHER_FILE: json.dumps(dashboard_data.cat_watcher_dashboard(), indent=1, sort_keys=True)
    }


class DcgmMonitoring(pulumi.ComponentResource):
    """Creates the standalone DCGM exporter release (when chosen), ServiceMonitors for the DCGM
    exporter and for Cat Watcher, a PrometheusRule with the GPU-sharing alerts, and Grafana
    sidecar ConfigMaps for dashboard 12239 (by URL) and the Cat Watcher dashboard. No CRD
    objects when the cluster has no Prometheus operator (`service_monitor=False`).

    Outputs: `service_monitors` (names), `prometheus_rules` (names), `dashboards` (ConfigMap
    names), `exporter_release` (name or None).
    """

    def __init__(self, name: str, args: DcgmMonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("catwatcher:index:DcgmMonitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = dict(args.prometheus_labels)

        release_name = None
        if args.exporter == "standalone":
            k8s.helm.v3.Release(
                f"{name}-dcgm-exporter",
                name=STANDALONE_RELEASE,
                chart=STANDALONE_CHART,
                version=args.standalone_chart_version,
                repository_opts={"repo": STANDALONE_REPOSITORY},
                namespace=args.operator_namespace,
                values=standalone_values(args),
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.exporter_depends_on)),
            )
            release_name = STANDALONE_RELEASE

        monitors: list[str] = []
        rules: list[str] = []
        if args.service_monitor:
            # (logical suffix, kind, name, namespace, spec from the resolved namespace)
            prometheus_objects = (
                (
                    "dcgm-exporter",
                    "ServiceMonitor",
                    DCGM_SERVICE_MONITOR,
                    args.operator_namespace,
                    lambda namespace: dcgm_service_monitor_spec(namespace, args.exporter),
                ),
                (
                    "cat-watcher",
                    "ServiceMonitor",
                    "cat-watcher",
                    args.app_namespace,
                    lambda namespace: app_service_monitor_spec(namespace, args.app_selector),
                ),
                (
                    "rules",
                    "PrometheusRule",
                    "cat-watcher-gpu",
                    args.app_namespace,
                    lambda namespace: prometheus_rule_spec(namespace, args.exporter),
                ),
            )
            for suffix, kind, object_name, namespace, spec in prometheus_objects:
                k8s.apiextensions.CustomResource(
                    f"{name}-{suffix}",
                    api_version="monitoring.coreos.com/v1",
                    kind=kind,
                    metadata={"name": object_name, "namespace": namespace, "labels": labels},
                    spec=pulumi.Output.from_input(namespace).apply(spec),
                    opts=child,
                )
            monitors = [DCGM_SERVICE_MONITOR, "cat-watcher"]
            rules = ["cat-watcher-gpu"]

        boards: list[str] = []
        if args.dashboards:
            namespace = args.dashboard_namespace if args.dashboard_namespace is not None else args.app_namespace
            for suffix, board_name, data in (
                ("dcgm-dashboard", "nvidia-dcgm-exporter-dashboard", dcgm_dashboard_data(args.dcgm_dashboard_revision)),
                ("cat-watcher-dashboard", "cat-watcher-dashboard", cat_watcher_dashboard_data()),
            ):
                k8s.core.v1.ConfigMap(
                    f"{name}-{suffix}",
                    metadata={"name": board_name, "namespace": namespace, "labels": dict(dashboard_data.SIDECAR_LABEL)},
                    data=data,
                    opts=child,
                )
                boards.append(board_name)

        self.service_monitors = monitors
        self.prometheus_rules = rules
        self.dashboards = boards
        self.exporter_release = release_name
        self.register_outputs(
            {
                "service_monitors": monitors,
                "prometheus_rules": rules,
                "dashboards": boards,
                "exporter_release": release_name,
            }
        )
