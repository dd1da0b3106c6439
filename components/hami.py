"""Hami: HAMi (Project-HAMi, chart `hami`) as the device plugin and scheduler of some or all GPU
nodes, with hard per-pod GPU memory caps (`nvidia.com/gpumem`).

The GPU Operator keeps the driver, the toolkit and DCGM; its own device plugin must not run
where HAMi's does (both register `nvidia.com/gpu` with the kubelet). The caller turns it off
cluster-wide (operator value `devicePlugin.enabled: false`) or labels each HAMi node with
`node_labels()`: `gpu=on` for HAMi's plugin and `nvidia.com/gpu.deploy.device-plugin=false`, which
the operator keeps (it only fills in absent or empty deploy labels: NVIDIA/gpu-operator
controllers/state_manager.go, addGPUStateLabels).

The chart's facts (version, value paths, resource names) are data the planner checks against
(infra/data/hami_chart.yaml); tests check this module's constants against the same data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

DEPLOY_DEVICE_PLUGIN_LABEL = "nvidia.com/gpu.deploy.device-plugin"
# Set by the GPU Operator on every node with an NVIDIA GPU (controllers/state_manager.go).
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
# Where the GPU Operator's validator marks the toolkit ready; the chart's init container waits on it.
TOOLKIT_READY_DIR = "/run/nvidia/validations"
# kube-scheduler from the Kubernetes project's registry. The chart's default mirror
# (registry.cn-hangzhou.aliyuncs.com) is slow or unreachable outside China; the tag stays the
# chart's choice: the cluster's own version without a `+k3s1`-style suffix (strippedKubeVersion).
KUBE_SCHEDULER_IMAGE = {"registry": "registry.k8s.io", "repository": "kube-scheduler"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

# Alert threshold: share of the pod's gpumem cap in use.
CAP_RATIO = 0.9


CHART = "hami"
SCHEDULER_NAME = "hami-scheduler"
# The chart's device-plugin node selector (values.yaml devicePlugin.nvidiaNodeSelector).
NODE_SELECTOR = {"gpu": "on"}
# The chart's component labels and metrics ports (templates/device-plugin/monitorservice.yaml,
# templates/scheduler/service.yaml); selector labels add app.kubernetes.io/name and /instance.
COMPONENT_LABELS = {"devicePlugin": "hami-device-plugin", "scheduler": "hami-scheduler"}
METRICS_PORTS = {"devicePlugin": "monitorport", "scheduler": "monitor"}
# vGPUmonitor's per-container series (cmd/vGPUmonitor/metrics.go), bytes.
VGPU_MEMORY_USED = "hami_vgpu_memory_used_bytes"
VGPU_MEMORY_LIMIT = "hami_vgpu_memory_limit_bytes"


def node_labels() -> dict[str, str]:
    """Labels of a HAMi node: the chart's device-plugin selector, and the operator's own device
    plugin kept off it."""
    return {**NODE_SELECTOR, DEPLOY_DEVICE_PLUGIN_LABEL: "false"}


@dataclass(frozen=True)
class HamiArgs:
    namespace: str
    chart_version: str
    repository: str
    device_split_count: int  # the most pods HAMi places on one GPU
    runtime_class: str | None
    # The named HAMi nodes (mixed stacks), which the caller labels with node_labels() and lists
    # in depends_on. Empty: HAMi runs on every GPU node, and the caller has turned the
    # operator's device plugin off cluster-wide.
    nodes: Sequence[str] = ()
    release_name: str = "hami"
    timeout_seconds: int = 600
    service_monitor: bool = True
    prometheus_labels: Mapping[str, str] = field(default_factory=dict)
    app_namespace: str = "cat-watcher"  # whose pods the gpumem-cap alert watches
    # The GPU Operator's release and the node labels that keep its device plugin off HAMi's nodes.
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


def hami_values(args: HamiArgs) -> dict[str, Any]:
    """The chart values we set (validation checks every key path against the chart's:
    infra/hami_chart.py)."""
    if args.nodes:
        selector: dict[str, Any] = dict(NODE_SELECTOR)
    else:
        # Every GPU node; null removes the chart's default `gpu: "on"` key in Helm's merge.
        selector = {key: None for key in NODE_SELECTOR} | {GPU_PRESENT_LABEL: "true"}
    device_plugin: dict[str, Any] = {
        "deviceSplitCount": args.device_split_count,
        "nvidiaNodeSelector": selector,
        "tolerations": [dict(GPU_TOLERATION)],
        # Start only once the operator's toolkit works on the node (the validator's marker).
        "gpuOperatorToolkitReady": {"enabled": True, "hostPath": TOOLKIT_READY_DIR},
        # Metrics stay inside the cluster: our ServiceMonitor scrapes the Service.
        "service": {"type": "ClusterIP"},
        # The operator owns the `nvidia` RuntimeClass.
        "createRuntimeClass": False,
    }
    if args.runtime_class:
        # HAMi hands a GPU over as NVIDIA_VISIBLE_DEVICES; the nvidia runtime turns that into
        # devices. Under the operator's CDI default that takes the `nvidia` RuntimeClass, for the
        # plugin itself and (added by HAMi's webhook) for every GPU pod.
        device_plugin["runtimeClassName"] = args.runtime_class
    return {
        "devicePlugin": device_plugin,
        "scheduler": {
            "kubeScheduler": {"image": dict(KUBE_SCHEDULER_IMAGE)},
            # The webhook is reached through the Service; nothing needs the default NodePorts.
            "service": {"type": "ClusterIP"},
        },
    }


def selector_labels(release_name: str, component: str) -> dict[str, str]:
    """The chart's Service selector labels of one component (templates/_helpers.tpl)."""
    return {
        "app.kubernetes.io/component": COMPONENT_LABELS[component],
        "app.kubernetes.io/name": CHART,
        "app.kubernetes.io/instance": release_name,
    }


def service_monitor_spec(namespace: str, release_name: str, component: str) -> dict[str, Any]:
    """Scrape one HAMi component. honorLabels: the device plugin's series name the workload's
    `namespace`, `pod` and `container`; without it Prometheus renames them `exported_*`."""
    return {
        "selector": {"matchLabels": selector_labels(release_name, component)},
        "namespaceSelector": {"matchNames": [namespace]},
        "endpoints": [{"port": METRICS_PORTS[component], "path": "/metrics", "interval": "15s", "honorLabels": True}],
    }


def monitor_job(release_name: str) -> str:
    """The Prometheus job of the device plugin's metrics: its Service's name."""
    fullname = release_name if CHART in release_name else f"{release_name}-{CHART}"
    return f"{fullname}-device-plugin-monitor"


def alert_rules(app_namespace: str, release_name: str) -> list[dict[str, Any]]:
    app = f'namespace="{app_namespace}"'
    used, limit = VGPU_MEMORY_USED, VGPU_MEMORY_LIMIT
    job = monitor_job(release_name)
    return [
        {
            "alert": "CatWatcherPodNearGpuMemCap",
            # A zero limit means uncapped (HAMi-core reads 0 as no limit): leave those out.
            "expr": f"max by (namespace, pod, container) ({used}{{{app}}} / ({limit}{{{app}}} > 0)) > {CAP_RATIO}",
            "for": "5m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "Cat Watcher pod {{ $labels.pod }} uses over "
                f"{CAP_RATIO:.0%} of its HAMi GPU memory cap",
                "description": "HAMi refuses any allocation past the pod's nvidia.com/gpumem: the CUDA "
                "context, cuDNN workspaces and the ONNX Runtime arena all count. The next one may fail "
                "and degrade the pod to CPU. Raise memoryPerPodMb or lower the load.",
            },
        },
        {
            "alert": "CatWatcherHamiMetricsAbsent",
            "expr": f'absent(up{{job="{job}"}} == 1)',
            "for": "10m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "No HAMi device-plugin metrics target is up",
                "description": f"Prometheus scrapes no `{job}` target: the gpumem-cap alert is blind. "
                "Check the hami-device-plugin DaemonSet and the ServiceMonitor's labels.",
            },
        },
    ]


def prometheus_rule_spec(app_namespace: str, release_name: str) -> dict[str, Any]:
    return {"groups": [{"name": "cat-watcher-hami", "rules": alert_rules(app_namespace, release_name)}]}


class Hami(pulumi.ComponentResource):
    """Creates HAMi's namespace (Pod Security privileged: its device plugin is privileged with
    hostPID), the pinned `hami` Helm release (its device plugin on the named nodes, which carry
    `node_labels()`, or on every GPU node) and, with `service_monitor`, ServiceMonitors for
    the device plugin's and the scheduler's metrics plus a PrometheusRule (in HAMi's namespace)
    alerting when a pod of the app's namespace nears its gpumem cap.

    Outputs: `release_name`, `scheduler_name` (pods name it so the webhook cannot be bypassed),
    `namespace`. `ready` lists what GPU workloads must wait for.
    """

    def __init__(self, name: str, args: HamiArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("catwatcher:index:Hami", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        values = hami_values(args)

        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": args.namespace,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "privileged",
                    # HAMi's own pods are not GPU workloads for its webhook.
                    "hami.io/webhook": "ignore",
                },
            },
            opts=child,
        )
        release = k8s.helm.v3.Release(
            name,
            name=args.release_name,
            chart=CHART,
            version=args.chart_version,
            repository_opts={"repo": args.repository},
            namespace=namespace.metadata["name"],
            values=values,
            timeout=args.timeout_seconds,
            # The operator's plugin must be gone from HAMi nodes before HAMi's registers there.
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )

        monitors: list[str] = []
        if args.service_monitor:
            release_name = args.release_name
            # (logical suffix, kind, name, namespace, spec from the resolved namespace)
            objects: list[tuple[str, str, str, pulumi.Input[str], Any]] = [
                (
                    f"{component}-monitor",
                    "ServiceMonitor",
                    COMPONENT_LABELS[component],
                    namespace.metadata["name"],
                    lambda ns, component=component: service_monitor_spec(ns, release_name, component),
                )
                for component in ("devicePlugin", "scheduler")
            ]
            # The rule lives beside HAMi (the app's namespace may not exist yet); Prometheus
            # operator's default ruleNamespaceSelector ({}) reads every namespace.
            objects.append(
                (
                    "rules",
                    "PrometheusRule",
                    "cat-watcher-hami",
                    namespace.metadata["name"],
                    lambda _: prometheus_rule_spec(args.app_namespace, release_name),
                )
            )
            for suffix, kind, object_name, object_namespace, spec in objects:
                k8s.apiextensions.CustomResource(
                    f"{name}-{suffix}",
                    api_version="monitoring.coreos.com/v1",
                    kind=kind,
                    metadata={
                        "name": object_name,
                        "namespace": object_namespace,
                        "labels": dict(args.prometheus_labels),
                    },
                    spec=pulumi.Output.from_input(object_namespace).apply(spec),
                    opts=child,
                )
                if kind == "ServiceMonitor":
                    monitors.append(object_name)

        self.release_name: pulumi.Output[str] = release.name
        self.scheduler_name: str = SCHEDULER_NAME
        self.namespace: pulumi.Output[str] = namespace.metadata["name"]
        self.service_monitors: list[str] = monitors
        self.ready: list[pulumi.Resource] = [release]
        self.register_outputs(
            {
                "release_name": self.release_name,
                "scheduler_name": self.scheduler_name,
                "namespace": self.namespace,
                "service_monitors": monitors,
            }
        )
