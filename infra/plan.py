"""Resolve a stack config against the preset catalogue into a rollout plan, checking every rule.

`plan_rollout` is pure: it raises one ConfigError listing every problem, each with its key
path, before anything is registered with Pulumi.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from infra import custom_gpu
from infra.distributions import NodeRuntime
from infra.distributions import resolve as resolve_node_runtime
from infra.errors import ConfigError, key_path
from infra.model import (
    GpuPreset,
    GpuSpec,
    MigProfile,
    MigStrategy,
    SharingMode,
    StackConfig,
    is_image_pinned,
)

GPU_RESOURCE = "nvidia.com/gpu"
SINGLE_GROUP = "default"


@dataclass(frozen=True)
class MigPlan:
    strategy: MigStrategy
    layout: Mapping[str, int]  # profile -> instances per GPU
    workload_profile: MigProfile
    time_slicing_replicas: int | None

    @property
    def layout_name(self) -> str:
        return "catwatcher-" + "-".join(f"{count}x{profile}" for profile, count in sorted(self.layout.items()))


@dataclass(frozen=True)
class NodeGroupPlan:
    """One kind of GPU node, fully resolved: every number the components need."""

    name: str
    nodes: tuple[str, ...]  # empty: every GPU node (the operator's default config)
    gpu: GpuPreset  # with the stack's overrides applied
    gpus: int  # GPUs in the group
    sharing: SharingMode
    replicas_per_device: int  # pods sharing one device (a GPU, or a MIG instance)
    devices_per_gpu: int  # MIG instances per GPU, 1 otherwise
    memory_per_pod_mb: int
    rename_shared: bool
    mig: MigPlan | None
    inference_replicas: int

    @property
    def config_key(self) -> str:
        """Key of this group's device-plugin config in the sharing ConfigMap."""
        return self.name

    @property
    def slices(self) -> int:
        return self.gpus * self.devices_per_gpu * self.replicas_per_device

    @property
    def resource_name(self) -> str:
        if self.mig and self.mig.strategy == "mixed":
            name = f"nvidia.com/mig-{self.mig.workload_profile.name}"
        else:
            name = GPU_RESOURCE
        shared = self.replicas_per_device > 1
        return f"{name}.shared" if shared and self.rename_shared else name


@dataclass(frozen=True)
class RolloutPlan:
    config: StackConfig
    groups: tuple[NodeGroupPlan, ...]
    node_runtime: NodeRuntime  # what the cluster distribution implies

    @property
    def mig_strategy(self) -> MigStrategy | None:
        """The operator's cluster-wide MIG strategy (all MIG groups share one)."""
        return next((group.mig.strategy for group in self.groups if group.mig), None)


class _Problems:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, path: tuple[str | int, ...], message: str) -> None:
        self.items.append((key_path(*path), message))

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError(self.items)


def plan_rollout(config: StackConfig, catalogue: Mapping[str, GpuPreset]) -> RolloutPlan:
    problems = _Problems()
    _check_images(config, problems)
    _check_app(config, problems)
    groups = [
        group
        for path, name, nodes, spec, inference_replicas in _group_specs(config, problems)
        if (group := _plan_group(path, name, nodes, spec, inference_replicas, catalogue, problems))
    ]
    _check_groups(config, problems)
    _check_one_mig_strategy(config, groups, problems)
    node_runtime = None
    try:
        node_runtime = resolve_node_runtime(config.cluster, config.operator)
    except ConfigError as error:
        problems.items.extend(error.problems)
    problems.raise_if_any()
    return RolloutPlan(config=config, groups=tuple(groups), node_runtime=node_runtime)


def _group_specs(
    config: StackConfig, problems: _Problems
) -> Iterator[tuple[tuple[str | int, ...], str, tuple[str, ...], GpuSpec, int | None]]:
    if config.gpu is not None and config.node_groups is not None:
        problems.add(("nodeGroups",), "set either gpu (one kind of GPU node) or nodeGroups, not both")
        return
    if config.gpu is not None:
        yield ("gpu",), SINGLE_GROUP, (), config.gpu, config.app.replicas
        return
    if not config.node_groups:
        problems.add(("gpu",), "missing: set gpu (with a preset) or a non-empty nodeGroups list")
        return
    if config.app.replicas is not None:
        problems.add(("app", "replicas"), "with nodeGroups, set inferenceReplicas per node group instead")
    for index, group in enumerate(config.node_groups):
        yield ("nodeGroups", index, "gpu"), group.name, tuple(group.nodes), group.gpu, group.inference_replicas


QUANTITY_SUFFIXES = {"m": 1e-3, "": 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(text: str) -> float:
    """A Kubernetes quantity as a number ("500m" -> 0.5, "2Gi" -> 2147483648)."""
    number, suffix = re.fullmatch(r"(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti)?", text).groups()
    return float(number) * QUANTITY_SUFFIXES[suffix or ""]


def _check_app(config: StackConfig, problems: _Problems) -> None:
    if config.app.namespace == config.operator.namespace:
        problems.add(
            ("app", "namespace"),
            f"'{config.app.namespace}' is the operator's namespace too: Cat Watcher needs its own "
            "(it enforces Pod Security restricted, the operator's is privileged)",
        )
    resources = config.app.resources
    for resource in ("cpu", "memory"):
        request, limit = getattr(resources, f"{resource}_request"), getattr(resources, f"{resource}_limit")
        if quantity(request) > quantity(limit):
            problems.add(
                ("app", "resources", f"{resource}Request"),
                f"{request} is more than {resource}Limit {limit}; Kubernetes refuses a request above its limit",
            )


def _check_images(config: StackConfig, problems: _Problems) -> None:
    images = (
        (("app", "image"), config.app.image),
        (("app", "imageCuda12"), config.app.image_cuda12),
        (("operator", "restartImage"), config.operator.restart_image),
    )
    for path, image in images:
        if not is_image_pinned(image):
            problems.add(path, f"'{image}' is not pinned: name a tag other than latest, or a digest")


def _check_groups(config: StackConfig, problems: _Problems) -> None:
    seen_names: dict[str, int] = {}
    seen_nodes: dict[str, str] = {}
    for index, group in enumerate(config.node_groups or []):
        if group.name in seen_names:
            problems.add(
                ("nodeGroups", index, "name"),
                f"duplicate node group '{group.name}' (also nodeGroups[{seen_names[group.name]}]); names must be unique",
            )
        seen_names.setdefault(group.name, index)
        if duplicates := sorted({node for node in group.nodes if group.nodes.count(node) > 1}):
            problems.add(("nodeGroups", index, "nodes"), f"lists {', '.join(duplicates)} more than once; list each node once")
        for node in group.nodes:
            if node in seen_nodes and seen_nodes[node] != group.name:
                problems.add(
                    ("nodeGroups", index, "nodes"),
                    f"node '{node}' is already in node group '{seen_nodes[node]}'; a node has one GPU config",
                )
            seen_nodes.setdefault(node, group.name)


def _check_one_mig_strategy(config: StackConfig, groups: list[NodeGroupPlan], problems: _Problems) -> None:
    mig_groups = [group for group in groups if group.mig]
    if not mig_groups:
        return
    first = mig_groups[0].mig.strategy
    for group in mig_groups[1:]:
        if group.mig.strategy != first:
            index = [spec.name for spec in config.node_groups or []].index(group.name)
            problems.add(
                ("nodeGroups", index, "gpu", "mig", "strategy"),
                f"the operator has one MIG strategy per cluster: {mig_groups[0].name} uses {first}, {group.name} uses {group.mig.strategy}",
            )


def _resolve_preset(spec: GpuSpec, catalogue: Mapping[str, GpuPreset]) -> GpuPreset | None:
    if spec.preset == custom_gpu.CUSTOM:
        return custom_gpu.custom_preset(spec)
    preset = catalogue.get(spec.preset)
    if preset is None:
        return None
    overrides = {
        field: value
        for field in ("vram_mb", "compute_capability", "reserve_mb", "display_name", "architecture")
        if (value := getattr(spec, field)) is not None
    }
    return preset.model_copy(update=overrides) if overrides else preset


def _plan_group(
    path: tuple[str | int, ...],
    name: str,
    nodes: tuple[str, ...],
    spec: GpuSpec,
    inference_replicas: int | None,
    catalogue: Mapping[str, GpuPreset],
    problems: _Problems,
) -> NodeGroupPlan | None:
    if spec.vram_mb is not None and spec.vram_mb <= 0:
        problems.add((*path, "vramMb"), "must be > 0")
        return None
    if spec.reserve_mb is not None and spec.reserve_mb < 0:
        problems.add((*path, "reserveMb"), "must be >= 0")
        return None
    if spec.preset == custom_gpu.CUSTOM and (missing := custom_gpu.missing_keys(spec)):
        for key, hint in missing:
            problems.add((*path, key), f"required with preset: custom; {hint}")
        return None
    gpu = _resolve_preset(spec, catalogue)
    if gpu is None:
        problems.add(
            (*path, "preset"),
            f"unknown preset '{spec.preset}'; valid: {', '.join(sorted(catalogue))}, "
            f"or {custom_gpu.CUSTOM} for an unlisted GPU (`catwatcher-infra presets` lists them)",
        )
        return None
    sharing = spec.sharing or gpu.recommended.sharing
    gpus = spec.count * max(len(nodes), 1)
    before = len(problems.items)

    if spec.mig is not None and sharing == "mps":
        problems.add(
            (*path, "mig"),
            "MPS runs on full GPUs only: the device plugin rejects MPS on MIG devices and with the mixed MIG strategy",
        )
    elif spec.mig is not None and sharing != "mig":
        problems.add((*path, "mig"), f"only valid with sharing: mig (sharing is {sharing})")

    mig: MigPlan | None = None
    devices_per_gpu = 1
    device_mb = gpu.vram_mb
    if sharing == "none":
        if spec.replicas not in (None, 1):
            problems.add((*path, "replicas"), f"sharing: none gives each pod a whole GPU; remove replicas or pick time-slicing or mps (got {spec.replicas})")
        replicas = 1
    elif sharing == "mig":
        if not nodes:
            problems.add(
                (*path, "sharing"),
                "mig layouts reach a node through its nvidia.com/mig.config label: list the MIG nodes "
                "in catwatcher:nodeGroups (name, nodes, gpu) instead of catwatcher:gpu",
            )
        mig = _plan_mig(path, spec, gpu, catalogue, problems)
        if mig is None:
            return None
        if spec.replicas is not None:
            problems.add((*path, "replicas"), "with sharing: mig the layout sets the pod count; use mig.timeSlicingReplicas to share MIG devices")
        replicas = mig.time_slicing_replicas or 1
        devices_per_gpu = sum(mig.layout.values()) if mig.strategy == "single" else mig.layout[mig.workload_profile.name]
        device_mb = mig.workload_profile.memory_mb
    else:
        replicas = spec.replicas if spec.replicas is not None else gpu.recommended.replicas
        if replicas < 2:
            problems.add((*path, "replicas"), f"must be >= 2 for {sharing} (the device plugin refuses 1); got {replicas}; for one pod per GPU use sharing: none")
        if sharing == "mps":
            if not gpu.mps_capable:
                problems.add(
                    (*path, "sharing"),
                    f"mps needs compute capability >= 7.0 (Volta or newer); {gpu.key} has {gpu.compute_capability}: use time-slicing",
                )
            elif replicas > gpu.mps_max_replicas:
                problems.add(
                    (*path, "replicas"),
                    f"MPS allows at most {gpu.mps_max_replicas} clients per GPU on compute capability {gpu.compute_capability}; got {replicas}",
                )

    memory_per_pod = _plan_memory(path, spec, gpu, sharing, replicas, device_mb, problems)

    slices = gpus * devices_per_gpu * replicas
    pods = inference_replicas if inference_replicas is not None else slices
    if pods > slices:
        key = ("app", "replicas") if not nodes else (*path[:-1], "inferenceReplicas")
        problems.add(key, f"{pods} inference pods need {pods} GPU slices but {name} has {slices} ({gpus} GPU x {devices_per_gpu * replicas} slices); at most {slices}")

    if len(problems.items) > before:
        return None
    return NodeGroupPlan(
        name=name,
        nodes=nodes,
        gpu=gpu,
        gpus=gpus,
        sharing=sharing,
        replicas_per_device=replicas,
        devices_per_gpu=devices_per_gpu,
        memory_per_pod_mb=memory_per_pod,
        rename_shared=spec.rename_shared,
        mig=mig,
        inference_replicas=pods,
    )


def _plan_memory(
    path: tuple[str | int, ...],
    spec: GpuSpec,
    gpu: GpuPreset,
    sharing: SharingMode,
    replicas: int,
    device_mb: int,
    problems: _Problems,
) -> int:
    """Per-pod GPU memory: `replicas x per-pod + reserve` must fit the device (GPU or MIG instance)."""
    usable = device_mb - gpu.reserve_mb
    largest_fit = usable // max(replicas, 1)
    if spec.memory_per_pod_mb is not None:
        memory = spec.memory_per_pod_mb
    elif sharing in ("time-slicing", "mps"):
        # The preset's per-pod figure sizes the model, not the card: keep it while it fits.
        memory = min(gpu.recommended.memory_per_pod_mb, largest_fit)
    else:
        memory = largest_fit
    if memory <= 0:
        problems.add((*path, "memoryPerPodMb"), f"must be > 0 MiB; got {memory}")
    elif replicas * memory + gpu.reserve_mb > device_mb:
        fit = max(largest_fit, 0)
        device = "MIG instance" if sharing == "mig" else gpu.key
        problems.add(
            (*path, "memoryPerPodMb"),
            f"{replicas} pods x {memory} MiB + {gpu.reserve_mb} MiB reserve = {replicas * memory + gpu.reserve_mb} MiB "
            f"exceeds the {device_mb} MiB of the {device}; at most {fit} MiB per pod",
        )
    return memory


def _plan_mig(
    path: tuple[str | int, ...],
    spec: GpuSpec,
    gpu: GpuPreset,
    catalogue: Mapping[str, GpuPreset],
    problems: _Problems,
) -> MigPlan | None:
    if gpu.mig is None:
        capable = ", ".join(sorted(key for key, preset in catalogue.items() if preset.mig_capable))
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
            problems.add((*mig_path, "layout", profile), f"not a MIG profile of {gpu.key}; valid: {', '.join(gpu.mig.profiles)}")
        elif count > known.max_count:
            problems.add((*mig_path, "layout", profile), f"{gpu.key} fits at most {known.max_count} x {profile}; got {count}")
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
        problems.add((*mig_path, "strategy"), f"single needs one profile in the layout (got {', '.join(layout)}); use mixed")
    workload_name = (mig_spec.workload_profile if mig_spec else None) or min(profiles, key=lambda p: (p.memory_mb, p.name)).name
    if workload_name not in layout:
        problems.add((*mig_path, "workloadProfile"), f"'{workload_name}' is not in the layout; valid: {', '.join(layout)}")
    ts_replicas = mig_spec.time_slicing_replicas if mig_spec else None
    if ts_replicas is not None and ts_replicas < 2:
        problems.add((*mig_path, "timeSlicingReplicas"), f"must be >= 2 (the device plugin refuses 1); got {ts_replicas}")
    if len(problems.items) > before:
        return None
    return MigPlan(
        strategy=strategy,
        layout=layout,
        workload_profile=gpu.mig.profiles[workload_name],
        time_slicing_replicas=ts_replicas,
    )


