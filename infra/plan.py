"""Resolve a stack config against the preset catalogue into a rollout plan, checking every rule.

`plan_rollout` is pure: it raises one ConfigError listing every problem, each with its key
path, before anything is registered with Pulumi.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from components.gpu_operator import DEVICE_PLUGIN_DAEMONSET, AllocatableCheck
from inference import contract
from infra import custom_gpu
from infra.distributions import NodeRuntime
from infra.distributions import resolve as resolve_node_runtime
from infra.errors import ConfigError
from infra.hami_chart import hami_value_problems
from infra.model import CredentialsSpec, GpuPreset, GpuSpec, StackConfig, is_image_pinned, parse_quantity
from infra.operator_chart import chart_version_problem, operator_value_problems
from infra.sharing import backend_for
from infra.sharing.base import READER_ORDER, ClusterMigStrategy, GroupRequest, MigPlan, NodeGroupPlan, Problems
from infra.sharing.hami import Hami
from infra.sharing.mig import cluster_mig_strategy, mig_parted_config, mixed_strategy_conflicts

__all__ = ["MigPlan", "NodeGroupPlan", "RolloutPlan", "plan_rollout"]

SINGLE_GROUP = "default"
TURING = (7, 5)


@dataclass(frozen=True)
class RolloutPlan:
    config: StackConfig
    groups: tuple[NodeGroupPlan, ...]
    node_runtime: NodeRuntime  # what the cluster distribution implies

    @property
    def mig_strategy(self) -> ClusterMigStrategy:
        """The operator's cluster-wide MIG strategy (all MIG groups share one)."""
        return cluster_mig_strategy(self.groups)

    @cached_property
    def config_readers(self) -> tuple[str, ...]:
        """The operator DaemonSets reading this sharing config, in restart order."""
        wanted = {reader for group in self.groups for reader in group.backend.config_readers(group)}
        return tuple(reader for reader in READER_ORDER if reader in wanted)

    @cached_property
    def allocatable_checks(self) -> tuple[AllocatableCheck, ...]:
        """What each group's nodes must advertise once the config is live."""
        checks = []
        for group in self.groups:
            if DEVICE_PLUGIN_DAEMONSET not in group.backend.config_readers(group):
                # Another device plugin (HAMi's) advertises these nodes' GPUs, on its own schedule.
                continue
            gpus_per_node = group.gpus // max(len(group.nodes), 1)
            parts = [f"{gpus_per_node} GPU"]
            if group.devices_per_gpu > 1:
                parts.append(f"{group.devices_per_gpu} MIG instances")
            if group.replicas_per_device > 1:
                parts.append(f"{group.replicas_per_device} replicas")
            checks.append(
                AllocatableCheck(
                    resource=group.resource_name,
                    per_node=gpus_per_node * group.devices_per_gpu * group.replicas_per_device,
                    nodes=group.nodes,
                    reason=f"group {group.name}: {' x '.join(parts)}",
                )
            )
        return tuple(checks)

    @cached_property
    def pre_turing_groups(self) -> tuple[NodeGroupPlan, ...]:
        """Groups whose GPUs are older than Turing (compute capability < 7.5): the validator's
        CUDA 13 workload cannot run on them, and the chart's default driver does not drive them."""
        return tuple(group for group in self.groups if group.gpu.capability < TURING)

    @cached_property
    def gpu_resources(self) -> tuple[str, ...]:
        """The extended resource each group's inference pods ask for, in group order."""
        return tuple(group.resource_name for group in self.groups)

    @cached_property
    def shared_gpus(self) -> bool:
        """Whether pods share a device anywhere (time-slicing, MPS, time-sliced MIG)."""
        return any(group.backend.shares_devices(group) for group in self.groups)

    @cached_property
    def device_plugin_configs(self) -> dict[str, dict[str, Any]]:
        """Sharing ConfigMap key -> the device plugin's config for that group. Every config
        names the cluster's MIG strategy: the operator's MIG_STRATEGY env overrides the file's
        flag anyway, so any other value there would be dead and misleading."""
        configs = {}
        for group in self.groups:
            config = group.backend.device_plugin_config(group)
            config["flags"] = {**config.get("flags", {}), "migStrategy": self.mig_strategy}
            configs[group.config_key] = config
        return configs

    @cached_property
    def default_config_key(self) -> str | None:
        """The key nodes without a label use: the (single) group that names no nodes."""
        return next((group.config_key for group in self.groups if not group.nodes), None)

    @cached_property
    def node_labels(self) -> dict[str, dict[str, str]]:
        """Node name -> the labels that point it at its group's configs."""
        return {node: group.backend.node_labels(group) for group in self.groups for node in group.nodes}

    @cached_property
    def mig_layouts(self) -> dict[str, Any] | None:
        return mig_parted_config(self.groups)

    @cached_property
    def sharing_operator_values(self) -> dict[str, Any]:
        """Chart values the sharing modes in use need, merged across modes, and the one
        cluster-wide MIG strategy."""
        values: dict[str, Any] = {"mig": {"strategy": self.mig_strategy}}
        for mode in dict.fromkeys(group.sharing for group in self.groups):
            backend = backend_for(mode)
            values.update(backend.operator_values([g for g in self.groups if g.sharing == mode]))
        return values

    @cached_property
    def hami_groups(self) -> tuple[NodeGroupPlan, ...]:
        """Groups whose GPUs HAMi's device plugin and scheduler own."""
        return tuple(group for group in self.groups if isinstance(group.backend, Hami))

    def runtime_class(self, group: NodeGroupPlan) -> str | None:
        """The RuntimeClass a group's pods name."""
        return group.backend.runtime_class(group, self.node_runtime.runtime_class)

    @cached_property
    def credential_variables(self) -> dict[str, str]:
        return credential_variables(self.config.credentials)

    def workload_name(self, group: NodeGroupPlan) -> str:
        """The inference Deployment's name for a group."""
        app_name = self.config.app.name
        return app_name if group.name == SINGLE_GROUP else f"{app_name}-{group.name}"

    def image_for(self, group: NodeGroupPlan) -> str:
        """The CUDA 13 image, or the CUDA 12 one for GPUs CUDA 13 no longer supports (Pascal)."""
        app = self.config.app
        return app.image if group.gpu.capability >= contract.CUDA13_MIN_COMPUTE_CAPABILITY else app.image_cuda12


def credential_variables(credentials: CredentialsSpec | None) -> dict[str, str]:
    """The service's CAT_WATCHER__MQTT__* / CAT_WATCHER__FRIGATE__* settings (plain values)."""
    if credentials is None:
        return {}
    variables: dict[str, str] = {}
    for section_name in ("mqtt", "frigate"):
        section = getattr(credentials, section_name)
        if section is None:
            continue
        for field_name, value in section:
            if value is None:
                continue
            plain = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
            variables[f"{contract.ENV_PREFIX}{section_name.upper()}__{field_name.upper()}"] = plain
    return variables


class _Problems(Problems):
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
    _check_mixed_strategy_without_mps(config, groups, problems)
    node_runtime = None
    if chart_problem := chart_version_problem(config.operator.chart_version):
        problems.items.append(chart_problem)
    else:
        try:
            node_runtime = resolve_node_runtime(config.cluster, config.operator)
        except ConfigError as error:
            problems.items.extend(error.problems)
    if node_runtime is not None:
        _check_runtime_class(config, groups, node_runtime, problems)
    problems.raise_if_any()
    assert node_runtime is not None
    plan = RolloutPlan(config=config, groups=tuple(groups), node_runtime=node_runtime)
    _check_driver(plan, problems)
    problems.items.extend(operator_value_problems(plan))
    problems.items.extend(hami_value_problems(plan))
    problems.raise_if_any()
    return plan


def _check_runtime_class(
    config: StackConfig, groups: list[NodeGroupPlan], runtime: NodeRuntime, problems: _Problems
) -> None:
    if not runtime.cdi_nri_plugin:
        return
    for group in groups:
        if group.backend.needs_runtime_class:
            problems.add(
                ("cluster", "useNriPlugin"),
                f"sharing: {group.sharing} (node group {group.name}) hands GPUs over as NVIDIA_VISIBLE_DEVICES, "
                "which needs the nvidia RuntimeClass the NRI plugin setup does not create; set useNriPlugin: false",
            )
            return


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


# The model accepts the full quantity grammar; one parser for both.
quantity = parse_quantity


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
                f"duplicate node group '{group.name}' (also "
                f"nodeGroups[{seen_names[group.name]}]); names must be unique",
            )
        seen_names.setdefault(group.name, index)
        if duplicates := sorted({node for node in group.nodes if group.nodes.count(node) > 1}):
            problems.add(
                ("nodeGroups", index, "nodes"), f"lists {', '.join(duplicates)} more than once; list each node once"
            )
        for node in group.nodes:
            if node in seen_nodes and seen_nodes[node] != group.name:
                problems.add(
                    ("nodeGroups", index, "nodes"),
                    f"node '{node}' is already in node group '{seen_nodes[node]}'; a node has one GPU config",
                )
            seen_nodes.setdefault(node, group.name)


def _group_path(config: StackConfig, group: NodeGroupPlan) -> tuple[str | int, ...]:
    if config.node_groups is None:
        return ("gpu",)
    return ("nodeGroups", [spec.name for spec in config.node_groups].index(group.name), "gpu")


def _check_one_mig_strategy(config: StackConfig, groups: list[NodeGroupPlan], problems: _Problems) -> None:
    """The operator sets one MIG strategy on every node: refuse a stack that needs two."""
    mig_groups = [group for group in groups if group.mig]
    strategy = cluster_mig_strategy(groups)
    for group in mig_groups[1:]:
        if group.mig and group.mig.strategy != strategy:
            problems.add(
                (*_group_path(config, group), "mig", "strategy"),
                f"the operator has one MIG strategy per cluster: {mig_groups[0].name} "
                f"uses {strategy}, {group.name} uses {group.mig.strategy}",
            )
    for group in groups:
        if not group.backend.works_with_mig_strategy(strategy):
            problems.add(
                (*_group_path(config, group), "sharing"),
                f"{group.sharing} does not work under the cluster's MIG strategy {strategy} (set by "
                f"{mig_groups[0].name}; the operator applies one strategy to every node): the device plugin "
                f"rejects it; use another sharing mode here or MIG strategy single",
            )


def _check_mixed_strategy_without_mps(config: StackConfig, groups: list[NodeGroupPlan], problems: _Problems) -> None:
    specs = {spec.name: (index, spec) for index, spec in enumerate(config.node_groups or [])}
    for name, message in mixed_strategy_conflicts(groups):
        index, spec = specs[name]
        # Name the key the user set: the sharing mode, or the preset whose recommendation is MPS.
        problems.add(("nodeGroups", index, "gpu", "sharing" if spec.gpu.sharing else "preset"), message)


R580_LAST_FOR = "Maxwell, Pascal and Volta"


def _check_driver(plan: RolloutPlan, problems: _Problems) -> None:
    """The chart's default driver (595) cannot drive pre-Turing GPUs; R580 is their last branch."""
    operator = plan.config.operator
    if operator.driver_version is not None and not plan.node_runtime.install_driver:
        problems.add(
            ("operator", "driverVersion"),
            f"the operator installs no driver here ({plan.node_runtime.distribution}, installDriver false), "
            "so a driver version would be ignored: remove it, or set installDriver: true",
        )
        return
    if not plan.node_runtime.install_driver or not plan.pre_turing_groups:
        return
    if operator.driver_version is not None and operator.driver_version.startswith("580."):
        return
    old = ", ".join(f"{g.gpu.key} ({g.gpu.compute_capability})" for g in plan.pre_turing_groups)
    path = ("operator", "driverVersion") if operator.driver_version is not None else ("operator", "installDriver")
    got = (
        f"driverVersion is {operator.driver_version}"
        if operator.driver_version
        else "the chart's default driver is 595.x"
    )
    problems.add(
        path,
        f"{old}: compute capability below 7.5 needs an R580 driver (the 580 series is the last for "
        f"{R580_LAST_FOR} GPUs) and {got}: set operator.driverVersion to a 580.x driver "
        "(one the driver container image exists for), or installDriver: false with an R580 driver on the host",
    )


def _resolve_preset(spec: GpuSpec, catalogue: Mapping[str, GpuPreset]) -> GpuPreset | None:
    if spec.preset == custom_gpu.CUSTOM:
        return custom_gpu.custom_preset(spec)
    preset = catalogue.get(spec.preset)
    if preset is None:
        return None
    overrides = {
        field: value
        for field in ("vram_mb", "compute_capability", "reserve_mb", "overhead_mb", "display_name", "architecture")
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
    if spec.overhead_mb is not None and spec.overhead_mb < 0:
        problems.add((*path, "overheadMb"), "must be >= 0")
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
    backend = backend_for(sharing)
    gpus = spec.count * max(len(nodes), 1)
    request = GroupRequest(path=path, name=name, nodes=nodes, spec=spec, gpu=gpu, gpus=gpus, catalogue=catalogue)
    before = len(problems.items)

    backend.check_spec(request, problems)
    if spec.gpu_cores_per_pod is not None and not backend.limits_gpu_cores:
        problems.add((*path, "gpuCoresPerPod"), f"only valid with sharing: hami (sharing is {sharing})")
    devices = backend.plan_devices(request, problems)
    if devices is None:
        return None
    # Pods' budgets only mean something for a device plan without problems: don't pile a
    # memory complaint onto, say, too many MPS clients.
    memory_problems = problems if len(problems.items) == before or spec.memory_per_pod_mb is not None else _Problems()
    memory_fit = backend.plan_memory(request, devices, memory_problems)

    per_gpu = devices.devices_per_gpu * devices.replicas_per_device
    slices = gpus * per_gpu
    pods = inference_replicas if inference_replicas is not None else slices
    if pods > slices:
        replicas_key = ("app", "replicas") if not nodes else (*path[:-1], "inferenceReplicas")
        problems.add(
            replicas_key,
            f"{pods} inference pods need {pods} GPU slices but {name} has "
            f"{slices} ({gpus} GPU x {per_gpu} slices); at most {slices}",
        )

    if len(problems.items) > before:
        return None
    return NodeGroupPlan(
        name=name,
        nodes=nodes,
        gpu=gpu,
        gpus=gpus,
        sharing=sharing,
        replicas_per_device=devices.replicas_per_device,
        devices_per_gpu=devices.devices_per_gpu,
        memory_fit=memory_fit,
        rename_shared=spec.rename_shared,
        mig=devices.mig,
        inference_replicas=pods,
        gpu_cores_per_pod=spec.gpu_cores_per_pod,
    )
