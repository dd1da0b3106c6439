"""`sharing: mig`: Multi-Instance GPU. mig-parted splits each GPU of a group into the layout's
instances (the node's `nvidia.com/mig.config` label names the layout); pods get one instance,
optionally time-sliced. The operator has one MIG strategy per cluster."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from components.sharing_config import GPU_RESOURCE, MIG_ALL_DISABLED, MIG_CONFIG_LABEL
from infra.model import GpuPreset, SharingMode
from infra.sharing.base import (
    BaseBackend,
    ClusterMigStrategy,
    DeviceSharing,
    GroupRequest,
    MigPlan,
    NodeGroupPlan,
    Problems,
    replica_sharing_config,
)

MIG_RESOURCE_PREFIX = "nvidia.com/mig-"


class Mig(BaseBackend):
    mode: ClassVar[SharingMode] = "mig"

    def check_spec(self, request: GroupRequest, problems: Problems) -> None:
        """`mig` is this mode's own section."""

    def plan_devices(self, request: GroupRequest, problems: Problems) -> DeviceSharing | None:
        if not request.nodes:
            problems.add(
                (*request.path, "sharing"),
                "mig layouts reach a node through its nvidia.com/mig.config label: list the MIG nodes "
                "in catwatcher:nodeGroups (name, nodes, gpu) instead of catwatcher:gpu",
            )
        mig = plan_mig(request, problems)
        if mig is None:
            return None
        if request.spec.replicas is not None:
            problems.add(
                (*request.path, "replicas"),
                "with sharing: mig the layout sets the pod count; use mig.timeSlicingReplicas to share MIG devices",
            )
        devices_per_gpu = (
            sum(mig.layout.values()) if mig.strategy == "single" else mig.layout[mig.workload_profile.name]
        )
        return DeviceSharing(
            replicas_per_device=mig.time_slicing_replicas or 1,
            devices_per_gpu=devices_per_gpu,
            device_mb=mig.workload_profile.memory_mb,
            mig=mig,
        )

    def device_noun(self, gpu: GpuPreset, devices: DeviceSharing) -> str:
        return f"MIG instance {devices.mig.workload_profile.name}" if devices.mig else "MIG instance"

    def resource_name(self, group: NodeGroupPlan) -> str:
        assert group.mig is not None
        if group.mig.strategy == "mixed":
            return self._maybe_renamed(f"{MIG_RESOURCE_PREFIX}{group.mig.workload_profile.name}", group)
        return self._maybe_renamed(GPU_RESOURCE, group)

    def device_plugin_config(self, group: NodeGroupPlan) -> dict[str, Any]:
        assert group.mig is not None
        config: dict[str, Any] = {"version": "v1", "flags": {"migStrategy": group.mig.strategy}}
        if group.replicas_per_device >= 2:
            if group.mig.strategy == "mixed":
                # Only Cat Watcher's profile is time-sliced; other MIG devices stay whole.
                names = [f"{MIG_RESOURCE_PREFIX}{group.mig.workload_profile.name}"]
            else:
                names = [GPU_RESOURCE]
            config["sharing"] = replica_sharing_config(group, "timeSlicing", names)
        return config

    def node_labels(self, group: NodeGroupPlan) -> dict[str, str]:
        assert group.mig is not None
        return {**super().node_labels(group), MIG_CONFIG_LABEL: group.mig.layout_name}

    def describe_recommendation(self, preset: GpuPreset) -> str:
        if preset.mig is None:
            return super().describe_recommendation(preset)
        layout = ", ".join(f"{count} x {profile}" for profile, count in preset.mig.recommended_layout.items())
        return f"mig ({layout}), {preset.recommended.memory_per_pod_mb} MiB arena per pod"


def cluster_mig_strategy(groups: Sequence[NodeGroupPlan]) -> ClusterMigStrategy:
    """The operator's cluster-wide MIG strategy: the MIG groups' (validation makes them agree),
    `none` without MIG. The operator sets it as MIG_STRATEGY on every node's device plugin and
    GFD, overriding any per-node config flag."""
    return next((group.mig.strategy for group in groups if group.mig), "none")


def mixed_strategy_conflicts(groups: Sequence[NodeGroupPlan]) -> list[tuple[str, str]]:
    """(group name, why) for each MPS group in a cluster whose MIG strategy is mixed: the operator
    sets one MIG strategy on every node's device plugin, and the plugin refuses MPS with mixed."""
    mixed = next((group for group in groups if group.mig and group.mig.strategy == "mixed"), None)
    if mixed is None:
        return []
    return [
        (
            group.name,
            f"MPS cannot run in a cluster with the mixed MIG strategy (node group {mixed.name}): the operator "
            "applies one MIG strategy to every node's device plugin, which refuses mixed with MPS; use "
            "time-slicing here, or the single MIG strategy there",
        )
        for group in groups
        if group.sharing == "mps"
    ]


def mig_parted_config(groups: Sequence[NodeGroupPlan]) -> dict[str, Any] | None:
    """A mig-parted `version: v1` layout file holding each MIG group's layout, or None."""
    layouts: dict[str, Any] = {MIG_ALL_DISABLED: [{"devices": "all", "mig-enabled": False}]}
    for group in groups:
        if group.mig is None:
            continue
        layouts[group.mig.layout_name] = [
            {
                "devices": "all",
                "mig-enabled": True,
                "mig-devices": {profile: count for profile, count in sorted(group.mig.layout.items())},
            }
        ]
    if len(layouts) == 1:
        return None
    return {"version": "v1", "mig-configs": layouts}


def plan_mig(request: GroupRequest, problems: Problems) -> MigPlan | None:
    gpu, spec, path = request.gpu, request.spec, request.path
    if gpu.mig is None:
        capable = ", ".join(sorted(key for key, preset in request.catalogue.items() if preset.mig_capable))
        problems.add((*path, "sharing"), f"{gpu.key} does not support MIG; MIG presets: {capable}")
        return None
    mig_spec = spec.mig
    strategy = mig_spec.strategy if mig_spec else "single"
    layout = dict(mig_spec.layout) if mig_spec and mig_spec.layout else dict(gpu.mig.recommended_layout)
    mig_path = (*path, "mig")
    before = len(problems.items)
    for profile, count in layout.items():
        known = gpu.mig.profiles.get(profile)
        if known is None:
            problems.add(
                (*mig_path, "layout", profile), f"not a MIG profile of {gpu.key}; valid: {', '.join(gpu.mig.profiles)}"
            )
        elif count > known.max_count:
            problems.add(
                (*mig_path, "layout", profile), f"{gpu.key} fits at most {known.max_count} x {profile}; got {count}"
            )
    if len(problems.items) > before:
        return None
    profiles = [gpu.mig.profiles[p] for p in layout]
    compute = sum(gpu.mig.profiles[p].compute_slices * n for p, n in layout.items())
    memory = sum(gpu.mig.profiles[p].memory_slices * n for p, n in layout.items())
    if compute > gpu.mig.compute_slices or memory > gpu.mig.memory_slices:
        problems.add(
            (*mig_path, "layout"),
            f"does not fit one {gpu.key}: needs {compute}/{gpu.mig.compute_slices} compute and "
            f"{memory}/{gpu.mig.memory_slices} memory slices",
        )
    if strategy == "single" and len(layout) > 1:
        problems.add(
            (*mig_path, "strategy"), f"single needs one profile in the layout (got {', '.join(layout)}); use mixed"
        )
    workload_name = (mig_spec.workload_profile if mig_spec else None) or min(
        profiles, key=lambda p: (p.memory_mb, p.name)
    ).name
    if workload_name not in layout:
        problems.add(
            (*mig_path, "workloadProfile"), f"'{workload_name}' is not in the layout; valid: {', '.join(layout)}"
        )
    ts_replicas = mig_spec.time_slicing_replicas if mig_spec else None
    if ts_replicas is not None and ts_replicas < 2:
        problems.add(
            (*mig_path, "timeSlicingReplicas"), f"must be >= 2 (the device plugin refuses 1); got {ts_replicas}"
        )
    if len(problems.items) > before:
        return None
    return MigPlan(
        strategy=strategy,
        layout=layout,
        workload_profile=gpu.mig.profiles[workload_name],
        time_slicing_replicas=ts_replicas,
    )
