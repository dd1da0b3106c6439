"""GPU impact of a change: what two renders mean for the GPUs, for a PR reviewer.

Every fact is read from what a render holds, the way the consumer reads it: the node groups are
the keys of the sharing ConfigMap the operator's Helm values name (`devicePlugin.config.name`),
their mode follows the device plugin's own rule (`Sharing.SharingStrategy()`), a group's nodes are
the Node patches whose `nvidia.com/device-plugin.config` label names its key, its MIG layout is the
mig-parted layout their `nvidia.com/mig.config` label names, pods and per-pod GPU memory come from
the Deployment, the restarts from the restart Job's kubectl steps. Only what no object carries (GPU
count, device memory, reserve, slices) comes from the stack's `slices` export, so a render of a
revision without that export still shows everything else ("?" where a number is unknown).

All pure functions; `gpu_impact(base, head)` compares, the `format_*` functions print.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import yaml

from inference.contract import GPU_MEMORY_LIMIT_ENV
from infra.hami_chart import facts as hami_facts

# Upstream names (k8s-device-plugin, gpu-operator, mig-parted): the contract, not our choice.
DEVICE_PLUGIN_CONFIG_LABEL = "nvidia.com/device-plugin.config"
MIG_CONFIG_LABEL = "nvidia.com/mig.config"
MIG_LAYOUT_KEY = "config.yaml"
MPS_CAPABLE_LABEL = "nvidia.com/mps.capable"
OPERATOR_CHART = "gpu-operator"
# The operator's DaemonSets that load the sharing config only at start (GPU-OPERATOR-NOTES.md).
GFD_DAEMONSET = "gpu-feature-discovery"
MPS_DAEMONSET = "nvidia-device-plugin-mps-control-daemon"
# What mig-manager's reconfigure script pauses on a node while it repartitions (mig-parted
# deployments/gpu-operator/reconfigure-mig.sh: gpu.deploy.* labels = paused-for-mig-change).
MIG_PAUSED_DAEMONSETS = ("nvidia-device-plugin-daemonset", "gpu-feature-discovery", "nvidia-dcgm-exporter")
GPU_RESOURCE_PREFIX = "nvidia.com/"
# The operator keeps its device plugin off a node labelled false (controllers/state_manager.go).
DEPLOY_DEVICE_PLUGIN_LABEL = "nvidia.com/gpu.deploy.device-plugin"
# A group whose GPUs HAMi's device plugin and scheduler own (infra/hami_chart.py).
MODE_HAMI = "hami"
NODE_GROUP_LABEL = "catwatcher.io/node-group"
UNLABELLED_NODES = "every unlabelled GPU node"

# Below this, one pod's allocator growth past its limit can starve its neighbours on the GPU.
HEADROOM_WARNING_MB = 512

# The device plugin's SharingStrategy values (api/config/v1/sharing.go), which GFD also writes
# into `<resource>.sharing-strategy`: upstream strings, not our SharingMode.
STRATEGY_MPS = "mps"
STRATEGY_TIME_SLICING = "time-slicing"
STRATEGY_NONE = "none"
MIG = "mig"

ARROW = "->"
UNKNOWN = "?"

# `daemonset/name`, `ds/name`, `daemonsets.apps/name` in a kubectl command line.
_DAEMONSET_REF = re.compile(r"\b(?:daemonsets?|ds)(?:\.apps)?/([a-z0-9](?:[-a-z0-9.]*[a-z0-9])?)")
# kubectl verbs that restart pods (a patch of the pod template, a rollout restart, a delete).
_RESTART_VERBS = {"patch", "restart", "delete", "annotate"}


class RenderLike(Protocol):
    @property
    def objects(self) -> Mapping[tuple[str, str, str], Mapping[str, Any]]: ...
    @property
    def releases(self) -> Mapping[str, Mapping[str, Any]]: ...
    @property
    def outputs(self) -> Mapping[str, Any]: ...


# --- facts of one render ---------------------------------------------------------------------


@dataclass(frozen=True)
class GroupFacts:
    """One node group as the cluster will see it."""

    name: str
    # The device plugin's strategy (none | time-slicing | mps), "mig" or "mig + <strategy>" under
    # MIG, or "hami".
    mode: str
    resource: str | None  # what the pods ask for
    replicas_per_device: int
    slices: int | None  # allocatable the group's nodes advertise, summed
    pods: int | None
    memory_per_pod_mb: int | None
    device_memory_mb: int | None  # a GPU's VRAM, or a MIG instance's memory
    reserve_mb: int | None
    mig_layout: str | None  # "7x1g.5gb"
    nodes: tuple[str, ...]  # labelled nodes; UNLABELLED_NODES for the operator's default config
    deployment: str | None
    gfd_labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def pods_per_device(self) -> int | None:
        """The most pods one device can hold: the kubelet may pack a device's every slice."""
        if self.pods is None:
            return None
        return min(self.pods, self.replicas_per_device)

    @property
    def headroom_mb(self) -> int | None:
        """Device memory left when its fullest share of pods each use their limit."""
        device, reserve, per_pod, pods = (
            self.device_memory_mb,
            self.reserve_mb,
            self.memory_per_pod_mb,
            self.pods_per_device,
        )
        if device is None or reserve is None or per_pod is None or pods is None:
            return None
        return device - reserve - pods * per_pod


@dataclass(frozen=True)
class RestartJob:
    """A Job that restarts operator DaemonSets (the sharing config's readers)."""

    name: str
    rolls: tuple[str, ...]  # DaemonSets it restarts, in order
    verifies_allocatable: bool


@dataclass(frozen=True)
class StackFacts:
    groups: Mapping[str, GroupFacts]
    restart_jobs: Mapping[str, RestartJob]
    deployments: Mapping[str, Mapping[str, Any]]  # "namespace/name" -> spec
    node_labels: Mapping[str, Mapping[str, str]]  # node -> labels we patch
    operator_values: Mapping[str, Any]
    hami_values: Mapping[str, Any] = field(default_factory=dict)  # empty: no HAMi release


def _operator_release(render: RenderLike) -> Mapping[str, Any]:
    return next((r for r in render.releases.values() if r.get("chart") == OPERATOR_CHART), {})


def _hami_release(render: RenderLike) -> Mapping[str, Any]:
    return next((r for r in render.releases.values() if r.get("chart") == hami_facts().chart), {})


def _hami_owns(nodes: Sequence[str], node_labels: Mapping[str, Mapping[str, str]], operator_plugin_off: bool) -> bool:
    """Whether HAMi's device plugin, not the operator's, serves these nodes: the operator's is off
    cluster-wide (for the unlabelled nodes) or by each node's deploy label."""
    return bool(nodes) and all(
        operator_plugin_off
        if node == UNLABELLED_NODES
        else node_labels.get(node, {}).get(DEPLOY_DEVICE_PLUGIN_LABEL) == "false"
        for node in nodes
    )


def _object(render: RenderLike, kind: str, namespace: str, name: str | None) -> Mapping[str, Any]:
    return render.objects.get((kind, namespace, name or ""), {}) if name else {}


def _of_kind(render: RenderLike, kind: str) -> Iterator[Mapping[str, Any]]:
    return (document for (k, _, _), document in sorted(render.objects.items()) if k == kind)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _yaml(text: Any) -> Mapping[str, Any]:
    """An embedded config file; one a consumer could not parse counts as empty (the object
    diff still shows it), so an odd base render never stops the preview."""
    try:
        return _mapping(yaml.safe_load(text)) if isinstance(text, str) else {}
    except yaml.YAMLError:
        return {}


def _resources(section: Any) -> list[Mapping[str, Any]]:
    return [r for r in _mapping(section).get("resources") or [] if isinstance(r, Mapping)]


def _replicas(resource: Mapping[str, Any]) -> int:
    value = resource.get("replicas", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


def sharing_strategy(config: Mapping[str, Any]) -> str:
    """The device plugin's `Sharing.SharingStrategy()`: mps when MPS replicates a resource,
    else time-slicing when time-slicing does, else none."""
    sharing = _mapping(config.get("sharing"))

    def replicated(section: Mapping[str, Any] | None) -> bool:
        return any(_replicas(r) > 1 for r in _resources(section))

    if sharing.get("mps") is not None and replicated(sharing["mps"]):
        return STRATEGY_MPS
    if replicated(sharing.get("timeSlicing")):
        return STRATEGY_TIME_SLICING
    return STRATEGY_NONE


def _replicated_resources(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """`Sharing.ReplicatedResources()`: MPS's section when present, else time-slicing's."""
    sharing = _mapping(config.get("sharing"))
    return _mapping(sharing["mps"] if sharing.get("mps") is not None else sharing.get("timeSlicing"))


def replicas_per_device(config: Mapping[str, Any]) -> int:
    return max((_replicas(r) for r in _resources(_replicated_resources(config))), default=1)


def gfd_sharing_labels(config: Mapping[str, Any], resource: str) -> dict[str, str]:
    """The node labels GPU feature discovery derives from a sharing config (k8s-device-plugin
    `internal/lm/resource.go` baseLabeler, `nvml.go` newSharingLabeler) for one resource."""
    section = _replicated_resources(config)
    entry = next((r for r in _resources(section) if r.get("name") == resource), None)
    replicas = _replicas(entry) if entry else 1
    strategy = sharing_strategy(config) if replicas > 1 else STRATEGY_NONE
    renamed = bool(entry and (entry.get("rename") or section.get("renameByDefault")))
    return {
        f"{resource}.replicas": str(replicas),
        f"{resource}.sharing-strategy": strategy,
        f"{resource}.product": "<model>-SHARED" if replicas > 1 and not renamed else "<model>",
        MPS_CAPABLE_LABEL: "true" if sharing_strategy(config) == STRATEGY_MPS else "false",
    }


def sharing_mode(group: GroupFacts) -> str:
    """The device plugin's sharing strategy of a group, MIG or not."""
    return group.mode.removeprefix(MIG).removeprefix(" + ") or STRATEGY_NONE


def _mig_layout(layouts: Mapping[str, Any], name: str) -> str:
    """`7x1g.5gb` (profiles of every mig-enabled device entry), or the label value itself."""
    entries = layouts.get(name)
    if not isinstance(entries, list):
        return name
    parts = []
    for entry in entries:
        if entry.get("mig-enabled"):
            parts.append(
                " + ".join(f"{count}x{profile}" for profile, count in sorted((entry.get("mig-devices") or {}).items()))
            )
    return "; ".join(parts) or "MIG disabled"


def _containers(pod_spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]


def _gpu_limit(pod_spec: Mapping[str, Any]) -> str | None:
    for container in _containers(pod_spec):
        for name in (container.get("resources") or {}).get("limits") or {}:
            if name.startswith(GPU_RESOURCE_PREFIX):
                return name
    return None


def _memory_limit(pod_spec: Mapping[str, Any]) -> int | None:
    for container in _containers(pod_spec):
        for variable in container.get("env") or []:
            if variable.get("name") == GPU_MEMORY_LIMIT_ENV and str(variable.get("value", "")).isdigit():
                return int(variable["value"])
    return None


def restart_job(document: Mapping[str, Any]) -> RestartJob | None:
    """What a Job's kubectl steps restart, or None if it touches no DaemonSet."""
    pod_spec = ((document.get("spec") or {}).get("template") or {}).get("spec") or {}
    rolls: list[str] = []
    referenced: list[str] = []
    verifies = False
    for container in _containers(pod_spec):
        words = " ".join(str(w) for w in [*(container.get("command") or []), *(container.get("args") or [])])
        targets = _DAEMONSET_REF.findall(words)
        referenced += targets
        if _RESTART_VERBS & set(re.split(r"[\s;&|]+", words)):
            rolls += targets
        verifies = verifies or "allocatable" in words
    if not referenced:
        return None
    # A step whose verb we cannot tell (a shell script) counts as restarting what it names.
    chosen = rolls or referenced
    return RestartJob((document.get("metadata") or {}).get("name", ""), tuple(dict.fromkeys(chosen)), verifies)


def stack_facts(render: RenderLike) -> StackFacts:
    release = _operator_release(render)
    values = release.get("values") or {}
    namespace = release.get("namespace", "")
    plugin_config = (values.get("devicePlugin") or {}).get("config") or {}
    sharing_map = _object(render, "ConfigMap", namespace, plugin_config.get("name"))
    mig_map = _object(
        render, "ConfigMap", namespace, ((values.get("migManager") or {}).get("config") or {}).get("name")
    )
    mig_layouts = _mapping(_yaml((mig_map.get("data") or {}).get(MIG_LAYOUT_KEY, "")).get("mig-configs"))
    exported = (render.outputs or {}).get("slices") or {}
    hami_values = _mapping(_hami_release(render).get("values"))
    operator_plugin_off = _mapping(values.get("devicePlugin")).get("enabled") is False

    node_labels = {
        document["metadata"]["name"]: dict(document["metadata"].get("labels") or {})
        for document in _of_kind(render, "Node")
    }
    deployments = {
        f"{d['metadata'].get('namespace', '')}/{d['metadata']['name']}": d.get("spec") or {}
        for d in _of_kind(render, "Deployment")
    }
    by_group = {
        ((spec.get("template") or {}).get("metadata") or {}).get("labels", {}).get(NODE_GROUP_LABEL): (name, spec)
        for name, spec in deployments.items()
    }

    groups = {}
    for key, text in sorted((sharing_map.get("data") or {}).items()):
        config = _yaml(text)
        nodes = tuple(node for node, labels in node_labels.items() if labels.get(DEVICE_PLUGIN_CONFIG_LABEL) == key)
        if plugin_config.get("default") == key:
            nodes += (UNLABELLED_NODES,)
        layouts = sorted(
            {node_labels[n][MIG_CONFIG_LABEL] for n in nodes if MIG_CONFIG_LABEL in node_labels.get(n, {})}
        )
        mig_layout = ", ".join(_mig_layout(mig_layouts, name) for name in layouts) or None
        strategy = sharing_strategy(config)
        mode = (MIG + ("" if strategy == STRATEGY_NONE else f" + {strategy}")) if mig_layout else strategy
        deployment, spec = by_group.get(key, (None, {}))
        pod_spec = ((spec.get("template") or {}).get("spec")) or {}
        export = exported.get(key) or {}
        resource = _gpu_limit(pod_spec) or export.get("resource")
        replicas = replicas_per_device(config)
        if hami_values and _hami_owns(nodes, node_labels, operator_plugin_off):
            # HAMi's plugin advertises each GPU deviceSplitCount times; pods ask for its count
            # resource (plus gpumem), whatever else their limits name.
            mode, resource = MODE_HAMI, hami_values.get("resourceName", hami_facts().gpu_resource)
            replicas = _mapping(hami_values.get("devicePlugin")).get(
                "deviceSplitCount", hami_facts().device_split_count
            )
        groups[key] = GroupFacts(
            name=key,
            mode=mode,
            resource=resource,
            replicas_per_device=replicas,
            slices=export.get("slices"),
            pods=spec.get("replicas", export.get("pods")) if deployment else export.get("pods"),
            memory_per_pod_mb=_memory_limit(pod_spec) or export.get("gpuMemoryLimitMb"),
            device_memory_mb=export.get("deviceMemoryMb"),
            reserve_mb=export.get("reserveMb"),
            mig_layout=mig_layout,
            nodes=nodes,
            deployment=deployment,
            gfd_labels=gfd_sharing_labels(config, resource.removesuffix(".shared")) if resource else {},
        )
    jobs = {job.name: job for document in _of_kind(render, "Job") if (job := restart_job(document))}
    return StackFacts(groups, jobs, deployments, node_labels, values, hami_values)


# --- comparing two renders -------------------------------------------------------------------


@dataclass(frozen=True)
class GroupImpact:
    name: str
    status: str  # added | removed | changed | unchanged
    before: GroupFacts | None
    after: GroupFacts | None


@dataclass(frozen=True)
class GpuImpact:
    groups: tuple[GroupImpact, ...] = ()
    restarts: tuple[str, ...] = ()
    label_changes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def touches_gpu(self) -> bool:
        return any(g.status != "unchanged" for g in self.groups) or bool(self.restarts or self.label_changes)


# What a reviewer reads per group, in order: label, how to read it off GroupFacts, unit.
ROWS: tuple[tuple[str, str, str], ...] = (
    ("mode", "mode", ""),
    ("resource", "resource", ""),
    ("slices", "slices", ""),
    ("pods", "pods", ""),
    ("GPU memory per pod", "memory_per_pod_mb", " MiB"),
    ("VRAM headroom per GPU", "headroom_mb", " MiB"),
    ("MIG layout", "mig_layout", ""),
)
_COMPARED = (
    "mode",
    "resource",
    "slices",
    "pods",
    "memory_per_pod_mb",
    "headroom_mb",
    "mig_layout",
    "nodes",
    "replicas_per_device",
)


def _show(value: Any) -> str:
    return UNKNOWN if value is None else str(value)


def change(before: Any, after: Any, unit: str = "") -> str:
    """`4` when unchanged, `4 -> 2` when changed: one form for every value."""
    if before == after:
        return f"{_show(after)}{unit}"
    return f"{_show(before)} {ARROW} {_show(after)}{unit}"


def _changed(before: GroupFacts, after: GroupFacts) -> bool:
    return any(getattr(before, name) != getattr(after, name) for name in _COMPARED)


def _nodes(group: GroupFacts | None) -> str:
    return ", ".join(group.nodes if group else ()) or "no node (no node is labelled for it)"


def _deployment_restarts(base: StackFacts, head: StackFacts) -> Iterator[str]:
    for name in sorted(set(base.deployments) | set(head.deployments)):
        old, new = base.deployments.get(name), head.deployments.get(name)
        if old is None and new is not None:
            yield f"Deployment {name} is created: {new.get('replicas', 1)} pods start"
        elif old is not None and new is None:
            yield f"Deployment {name} is deleted: its {old.get('replicas', 1)} pods stop"
        elif old is None or new is None:  # the name came from one of the two
            continue
        elif old.get("template") != new.get("template"):
            before, after = old.get("replicas", 1), new.get("replicas", 1)
            replaced = f"all {after} pods replaced" if before == after else f"its {before} pods replaced by {after}"
            yield (
                f"Deployment {name} rolls: {replaced}, "
                f"{new.get('strategy', {}).get('rollingUpdate', {}).get('maxUnavailable', 1)} at a time"
            )
        elif old.get("replicas") != new.get("replicas"):
            yield f"Deployment {name} scales {change(old.get('replicas'), new.get('replicas'))} pods (no pod replaced)"


def _value_paths(old: Any, new: Any, path: str = "") -> Iterator[str]:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new), key=str):
            yield from _value_paths(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
    elif old != new:
        yield path


def _restarts(base: StackFacts, head: StackFacts) -> list[str]:
    restarts = []
    relayouts = {
        node: labels[MIG_CONFIG_LABEL]
        for node, labels in head.node_labels.items()
        if MIG_CONFIG_LABEL in labels
        and base.node_labels.get(node, {}).get(MIG_CONFIG_LABEL) != labels[MIG_CONFIG_LABEL]
    }
    for node, layout in sorted(relayouts.items()):
        restarts.append(
            f"mig-manager on {node} applies {layout}: it pauses {', '.join(MIG_PAUSED_DAEMONSETS)} "
            "there, repartitions the GPUs, then lets them start again"
        )
    if head.restart_jobs and set(head.restart_jobs) <= set(base.restart_jobs) and not relayouts:
        restarts.append("the sharing restart does not run: the sharing config is unchanged")
    for name, job in sorted(head.restart_jobs.items()):
        if name in base.restart_jobs:
            continue
        check = (
            "then checks each node's new allocatable"
            if job.verifies_allocatable
            else "does not check the nodes' new allocatable (rollout status only)"
        )
        restarts.append(
            f"restart Job {name} rolls DaemonSet{'s' if len(job.rolls) > 1 else ''} {', '.join(job.rolls)}; {check}"
        )
    if not base.operator_values or not head.operator_values:
        if base.operator_values != head.operator_values:
            restarts.append(
                f"Helm release {OPERATOR_CHART} is {'installed' if head.operator_values else 'uninstalled'}: "
                f"the operator's DaemonSets {'start' if head.operator_values else 'stop'} on every GPU node"
            )
    elif paths := list(_value_paths(base.operator_values, head.operator_values)):
        restarts.append(
            f"Helm release {OPERATOR_CHART} values change ({', '.join(paths)}): the operator "
            "updates its ClusterPolicy and rolls each DaemonSet whose spec changes"
        )
    hami = hami_facts().chart
    if bool(base.hami_values) != bool(head.hami_values):
        restarts.append(
            f"Helm release {hami} is installed: HAMi's scheduler, admission webhook and device plugin start; its "
            "plugin registers nvidia.com/gpu where the operator's no longer runs"
            if head.hami_values
            else f"Helm release {hami} is uninstalled: HAMi's scheduler, "
            "webhook and device plugin stop; pods it placed keep "
            "running until the Deployment replaces them"
        )
    elif paths := list(_value_paths(base.hami_values, head.hami_values)):
        restarts.append(
            f"Helm release {hami} values change ({', '.join(paths)}): HAMi's chart rolls its device "
            "plugin and scheduler (checksum annotations on their pod templates)"
        )
    return restarts


def _label_changes(base: StackFacts, head: StackFacts) -> list[str]:
    lines = []
    for node in sorted(set(base.node_labels) | set(head.node_labels)):
        old, new = base.node_labels.get(node, {}), head.node_labels.get(node, {})
        for label in sorted(set(old) | set(new)):
            if old.get(label) != new.get(label):
                lines.append(f"{node}: {label} {change(old.get(label, '(none)'), new.get(label, '(none)'))}")
    # Labels GPU feature discovery rewrites from the sharing config, on each group's nodes.
    for name in sorted(set(base.groups) | set(head.groups)):
        old_group, new_group = base.groups.get(name), head.groups.get(name)
        old, new = (old_group.gfd_labels if old_group else {}), (new_group.gfd_labels if new_group else {})
        if old_group is None or new_group is None:
            continue
        changed = [
            f"{label} {change(old.get(label, '(none)'), new.get(label, '(none)'))}"
            for label in sorted(set(old) | set(new))
            if old.get(label) != new.get(label)
        ]
        if changed:
            lines.append(f"{_nodes(new_group)} (by GPU feature discovery): {'; '.join(changed)}")
    return lines


def _warnings(impacts: Sequence[GroupImpact], rolled: set[str] | None) -> list[str]:
    """`rolled`: the DaemonSets a new restart Job rolls (None: no restart runs)."""
    warnings = []
    for impact in impacts:
        before, after = impact.before, impact.after
        if after is None:
            continue
        headroom = after.headroom_mb
        if (
            headroom is not None
            and headroom < HEADROOM_WARNING_MB
            and (before is None or before.headroom_mb != headroom or before.pods != after.pods)
        ):
            device = "MIG instance" if after.mig_layout else "GPU"
            warnings.append(
                f"{after.name}: VRAM headroom {headroom} MiB per {device}, below {HEADROOM_WARNING_MB} MiB "
                f"({after.device_memory_mb} - {after.reserve_mb} reserve - {after.pods_per_device} x "
                f"{after.memory_per_pod_mb}): only the reserve is left "
                "spare (each pod's budget already counts its CUDA context)"
            )
        if after.slices is not None and after.pods is not None and after.slices < after.pods:
            warnings.append(
                f"{after.name}: {after.pods} pods but {after.slices} slices: "
                f"{after.pods - after.slices} pods stay Pending"
            )
        if before is None:
            continue
        if before.mode != after.mode or before.resource != after.resource:
            what = "; ".join(
                part
                for part in (
                    f"mode {change(before.mode, after.mode)}" if before.mode != after.mode else "",
                    f"resource {change(before.resource, after.resource)}" if before.resource != after.resource else "",
                )
                if part
            )
            warnings.append(
                f"{after.name}: {what}: every Cat Watcher pod on {_nodes(after)} is briefly off the "
                f"GPU while the sharing readers restart and the Deployment replaces its pods"
            )
        if rolled is not None and before.gfd_labels != after.gfd_labels and GFD_DAEMONSET not in rolled:
            consequence = (
                f"{MPS_CAPABLE_LABEL} stays false, so the MPS control daemon never starts and the "
                "device plugin advertises no GPU there"
                if sharing_mode(after) == STRATEGY_MPS != sharing_mode(before)
                else "the labels it derives from the sharing config stay stale"
            )
            warnings.append(
                f"{after.name}: the restart does not roll {GFD_DAEMONSET} (it rolls {', '.join(sorted(rolled))}): "
                f"{consequence}"
            )
        elif (
            rolled is not None
            and sharing_mode(after) == STRATEGY_MPS == sharing_mode(before)
            and before.replicas_per_device != after.replicas_per_device
            and MPS_DAEMONSET not in rolled
        ):
            warnings.append(
                f"{after.name}: the restart does not roll {MPS_DAEMONSET}: the MPS daemon keeps its "
                f"old split of the GPU ({before.replicas_per_device} clients)"
            )
        if before.mig_layout != after.mig_layout and (before.mig_layout or after.mig_layout):
            warnings.append(
                f"{after.name}: MIG layout {change(before.mig_layout, after.mig_layout)} drains the GPUs "
                f"of {_nodes(after)}: mig-manager repartitions them only once every pod using them has stopped"
            )
    return warnings


def gpu_impact(base: RenderLike, head: RenderLike) -> GpuImpact:
    """What merging `head` over `base` does to the GPUs."""
    before, after = stack_facts(base), stack_facts(head)
    groups = []
    for name in sorted(set(before.groups) | set(after.groups)):
        old, new = before.groups.get(name), after.groups.get(name)
        status = (
            "added" if old is None else "removed" if new is None else "changed" if _changed(old, new) else "unchanged"
        )
        groups.append(GroupImpact(name, status, old, new))
    gpu_restarts = _restarts(before, after)
    labels = _label_changes(before, after)
    touched = (
        any(g.status != "unchanged" for g in groups)
        or labels
        or any(name not in before.restart_jobs for name in after.restart_jobs)
        or before.operator_values != after.operator_values
        or before.hami_values != after.hami_values
    )
    # Pod rolls for other reasons (an image, a CPU limit) belong to the object diff alone.
    restarts = [*gpu_restarts, *_deployment_restarts(before, after)] if touched else []
    new_jobs = [job for name, job in after.restart_jobs.items() if name not in before.restart_jobs]
    rolled = {daemonset for job in new_jobs for daemonset in job.rolls} if new_jobs else None
    return GpuImpact(tuple(groups), tuple(restarts), tuple(labels), tuple(_warnings(groups, rolled)))


# --- printing --------------------------------------------------------------------------------

NO_IMPACT = "no GPU fact changes (modes, slices, pods, GPU memory, headroom, MIG layouts, node labels, GPU restarts)"


def _row_value(impact: GroupImpact, attribute: str, unit: str) -> str:
    old = getattr(impact.before, attribute) if impact.before else None
    new = getattr(impact.after, attribute) if impact.after else None
    if impact.before is None:
        return f"{_show(new)}{unit}"
    if impact.after is None:
        return f"{_show(old)}{unit}"
    return change(old, new, unit)


def _rows(impact: GroupImpact) -> list[tuple[str, str]]:
    uses_mig = any(g and g.mig_layout for g in (impact.before, impact.after))
    rows = [
        (label, _row_value(impact, attribute, unit))
        for label, attribute, unit in ROWS
        if attribute != "mig_layout" or uses_mig
    ]
    if uses_mig:
        rows = [(label.replace("per GPU", "per MIG instance"), value) for label, value in rows]
    return rows


def _heading(impact: GroupImpact) -> str:
    facts = impact.after or impact.before
    status = {
        "added": "new node group",
        "removed": "node group removed",
        "changed": "changes",
        "unchanged": "unchanged",
    }[impact.status]
    return f"{impact.name} ({_nodes(facts)}): {status}"


def format_impact_text(stack: str, impact: GpuImpact) -> list[str]:
    if not impact.touches_gpu:
        return [f"  {stack}: {NO_IMPACT}"]
    out = [f"  {stack}"]
    for group in impact.groups:
        out.append(f"    {_heading(group)}")
        out += [f"      {label + ':':<32}{value}" for label, value in _rows(group)]
    out += ["    what restarts when this merges:"] + [f"      - {line}" for line in impact.restarts or ("nothing",)]
    if impact.label_changes:
        out += ["    node labels that change:"] + [f"      - {line}" for line in impact.label_changes]
    if impact.warnings:
        out += ["    warnings:"] + [f"      ! {line}" for line in impact.warnings]
    return out


def format_impact_markdown(stack: str, impact: GpuImpact) -> list[str]:
    if not impact.touches_gpu:
        return [f"- **{stack}**: {NO_IMPACT}."]
    columns = [
        label
        for label, attribute, _ in ROWS
        if attribute != "mig_layout" or any(g.mig_layout for i in impact.groups for g in (i.before, i.after) if g)
    ]
    out = [f"### {stack}", "", "| node group | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for group in impact.groups:
        values = dict(_rows(group))
        cells = [values.get(label, values.get(label.replace("per GPU", "per MIG instance"), "")) for label in columns]
        out.append(f"| {_heading(group)} | " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    out += ["", "**What restarts when this merges**", ""] + [f"- {line}" for line in impact.restarts or ("nothing",)]
    if impact.label_changes:
        out += ["", "**Node labels that change**", ""] + [f"- {line}" for line in impact.label_changes]
    if impact.warnings:
        out += ["", "**Warnings**", ""] + [f"- :warning: {line}" for line in impact.warnings]
    return out
