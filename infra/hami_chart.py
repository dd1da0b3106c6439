"""What we know about HAMi's chart `hami` 2.10.0 (infra/data/hami_chart.yaml and
hami_value_paths.txt, read from Project-HAMi/HAMi at tag v2.10.0), and the check of the values
we set against it. Helm ignores unknown values silently, so every key is checked before
anything is registered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import pulumi
import yaml

from components.hami import HamiArgs, hami_values
from infra.errors import key_path
from infra.operator_chart import value_paths

if TYPE_CHECKING:
    from infra.plan import RolloutPlan

DATA_PACKAGE = "infra.data"
NAMESPACE = "hami-system"
RELEASE_NAME = "hami"


@dataclass(frozen=True)
class HamiFacts:
    chart: str
    version: str
    repository: str
    gpu_resource: str
    memory_resource: str
    cores_resource: str
    scheduler_name: str
    device_split_count: int
    node_selector: Mapping[str, str]
    minimum_compute_capability: tuple[int, int]
    value_paths: frozenset[str]  # values.yaml leaves, plus keys only the templates read
    template_only_paths: frozenset[str]
    free_form_maps: tuple[str, ...]
    components: Mapping[str, str]
    metrics_ports: Mapping[str, str]
    device_plugin_metrics: Mapping[str, frozenset[str]]
    scheduler_metrics: Mapping[str, frozenset[str]]


@cache
def facts() -> HamiFacts:
    data_dir = resources.files(DATA_PACKAGE)
    data = yaml.safe_load(data_dir.joinpath("hami_chart.yaml").read_text())
    paths_text = data_dir.joinpath("hami_value_paths.txt").read_text()
    listed = {line for line in paths_text.splitlines() if line and not line.startswith("#")}
    template_only = frozenset(data["templateOnlyPaths"])
    major, minor = data["minimumComputeCapability"].split(".")
    return HamiFacts(
        chart=data["chart"],
        version=str(data["version"]),
        repository=data["repository"],
        gpu_resource=data["resources"]["gpu"],
        memory_resource=data["resources"]["memory"],
        cores_resource=data["resources"]["cores"],
        scheduler_name=data["schedulerName"],
        device_split_count=data["deviceSplitCount"],
        node_selector=dict(data["nodeSelector"]),
        minimum_compute_capability=(int(major), int(minor)),
        value_paths=frozenset(listed) | template_only,
        template_only_paths=template_only,
        free_form_maps=tuple(data["freeFormMaps"]),
        components=dict(data["components"]),
        metrics_ports=dict(data["metricsPorts"]),
        device_plugin_metrics={k: frozenset(v) for k, v in data["devicePluginMetrics"].items()},
        scheduler_metrics={k: frozenset(v) for k, v in data["schedulerMetrics"].items()},
    )


def unknown_value_paths(values: Mapping[str, Any]) -> list[str]:
    """Keys the chart neither lists nor reads (keys under a free-form map are the user's)."""
    known = facts()
    return sorted(
        path
        for path in value_paths(values)
        if path not in known.value_paths and not any(path.startswith(f"{m}.") for m in known.free_form_maps)
    )


def hami_args(plan: RolloutPlan, depends_on: Sequence[pulumi.Resource] = ()) -> HamiArgs:
    """The plan mapped onto the Hami component's args (the program and validation share it)."""
    config, known = plan.config, facts()
    groups = plan.hami_groups
    return HamiArgs(
        namespace=NAMESPACE,
        chart_version=known.version,
        repository=known.repository,
        device_split_count=known.device_split_count,
        runtime_class=plan.runtime_class(groups[0]),
        nodes=tuple(node for group in groups for node in group.nodes),
        release_name=RELEASE_NAME,
        service_monitor=config.monitoring.enabled and config.monitoring.service_monitor,
        prometheus_labels=dict(config.monitoring.prometheus_labels),
        app_namespace=config.app.namespace,
        depends_on=tuple(depends_on),
    )


def hami_value_problems(plan: RolloutPlan) -> list[tuple[str, str]]:
    """The HAMi chart values this plan would set, checked against the chart's keys."""
    if not plan.hami_groups:
        return []
    if unknown := unknown_value_paths(hami_values(hami_args(plan))):
        path = plan.hami_groups[0]
        return [
            (
                key_path("gpu", "sharing") if not path.nodes else key_path("nodeGroups"),
                f"hami {facts().version} has no values {', '.join(unknown)}; this stack needs them",
            )
        ]
    return []
