"""DcgmMonitoring: Prometheus scraping of the operator's DCGM exporter and of Cat Watcher."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

DCGM_EXPORTER_SELECTOR = {"app": "nvidia-dcgm-exporter"}
DCGM_EXPORTER_PORT = "gpu-metrics"


@dataclass(frozen=True)
class DcgmMonitoringArgs:
    operator_namespace: pulumi.Input[str]
    app_namespace: pulumi.Input[str]
    app_selector: Mapping[str, str]
    service_monitor: bool = True
    prometheus_labels: Mapping[str, str] = field(default_factory=dict)


def dcgm_service_monitor_spec(namespace: str) -> dict[str, Any]:
    """Scrape the operator-built exporter. honorLabels keeps the exporter's own `pod`,
    `namespace` and `container` labels (the GPU's workload pod) instead of renaming them to
    `exported_pod` etc.: queries like DCGM_FI_DEV_GPU_UTIL{pod=~"cat-watcher.*"} need that."""
    return {
        "selector": {"matchLabels": dict(DCGM_EXPORTER_SELECTOR)},
        "namespaceSelector": {"matchNames": [namespace]},
        "endpoints": [
            {"port": DCGM_EXPORTER_PORT, "path": "/metrics", "interval": "15s", "honorLabels": True}
        ],
    }


def app_service_monitor_spec(namespace: str, selector: Mapping[str, str]) -> dict[str, Any]:
    return {
        "selector": {"matchLabels": dict(selector)},
        "namespaceSelector": {"matchNames": [namespace]},
        "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s"}],
    }


class DcgmMonitoring(pulumi.ComponentResource):
    """Creates ServiceMonitors for the DCGM exporter (which the GpuOperator enables) and for the
    Cat Watcher service's own metrics; nothing when the cluster has no Prometheus operator.

    Outputs: `service_monitors` (names).
    """

    def __init__(self, name: str, args: DcgmMonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("catwatcher:index:DcgmMonitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        monitors: list[str] = []
        if args.service_monitor:
            labels = dict(args.prometheus_labels)
            k8s.apiextensions.CustomResource(
                f"{name}-dcgm-exporter",
                api_version="monitoring.coreos.com/v1",
                kind="ServiceMonitor",
                metadata={"name": "nvidia-dcgm-exporter", "namespace": args.operator_namespace, "labels": labels},
                spec=pulumi.Output.from_input(args.operator_namespace).apply(dcgm_service_monitor_spec),
                opts=child,
            )
            k8s.apiextensions.CustomResource(
                f"{name}-cat-watcher",
                api_version="monitoring.coreos.com/v1",
                kind="ServiceMonitor",
                metadata={"name": "cat-watcher", "namespace": args.app_namespace, "labels": labels},
                spec=pulumi.Output.from_input(args.app_namespace).apply(
                    lambda namespace: app_service_monitor_spec(namespace, args.app_selector)
                ),
                opts=child,
            )
            monitors = ["nvidia-dcgm-exporter", "cat-watcher"]
        self.service_monitors = monitors
        self.register_outputs({"service_monitors": monitors})
