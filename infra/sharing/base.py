"""The interface every sharing backend implements, and the node-group plan it fills in.

A backend is one sharing mode (`none`, `time-slicing`, `mps`, `mig`, ...). The planner
(infra/plan.py) resolves a node group's preset and count, then asks the group's backend to:
check the mode's own constraints, work out devices and replicas, size the per-pod memory;
afterwards the program asks it for the device-plugin config, the operator's Helm values, node
labels, pod resources and env, the config readers to restart and the monitoring specifics.
Nothing outside infra/sharing/ compares mode strings.

Adding a mode (HAMi, DRA) is one module here plus its registration in infra/sharing/__init__.py,
its value in `SharingMode` (infra/model.py) and its tests. HAMi (infra/sharing/hami.py), for
instance, overrides `node_labels` (`gpu=on`, `nvidia.com/gpu.deploy.device-plugin=false`),
`pod_resources` (`nvidia.com/gpumem`), `operator_values` (the operator's plugin off),
`config_readers` (none), `scheduler_name` and `runtime_class`, and brings its own chart as a
component (components/hami.py) that the program adds when a group uses it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

from components.gpu_operator import DEVICE_PLUGIN_DAEMONSET, GFD_DAEMONSET, MPS_DAEMONSET
from components.sharing_config import DEVICE_PLUGIN_CONFIG_LABEL, GPU_RESOURCE
from inference import contract
from infra import budget
from infra.errors import key_path
from infra.model import GpuPreset, GpuSpec, MigProfile, MigStrategy, SharingMode

KeyPath = tuple[str | int, ...]
# The operator's `mig.strategy` (ClusterPolicy CRD enum).
ClusterMigStrategy = Literal["none", "single", "mixed"]


class Problems:
    """Collects `(key path, message)` pairs; the planner raises them as one ConfigError."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, path: KeyPath, message: str) -> None:
        self.items.append((key_path(*path), message))


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
class GroupRequest:
    """One node group as the user wrote it, with its preset resolved (overrides applied)."""

    path: KeyPath  # key path of the group's `gpu` section
    name: str
    nodes: tuple[str, ...]  # empty: every GPU node
    spec: GpuSpec
    gpu: GpuPreset
    gpus: int  # GPUs in the group
    catalogue: Mapping[str, GpuPreset]


@dataclass(frozen=True)
class DeviceSharing:
    """What a backend decides about a group's devices."""

    replicas_per_device: int  # pods sharing one device (a GPU, or a MIG instance)
    devices_per_gpu: int = 1  # MIG instances per GPU
    device_mb: int | None = None  # memory of one device; None: the whole GPU
    mig: MigPlan | None = None


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
    memory_fit: budget.DeviceFit  # the fit check: replicas_per_device pod budgets + reserve on one device
    rename_shared: bool
    mig: MigPlan | None
    inference_replicas: int
    gpu_cores_per_pod: int | None = None  # SM share per pod, where the mode enforces one

    @property
    def memory_per_pod_mb(self) -> int:
        """ONNX Runtime's arena per pod (memoryPerPodMb)."""
        return self.memory_fit.pod.arena_mb

    @property
    def overhead_mb(self) -> int:
        """What a pod holds outside its arena: CUDA context, cuBLAS/cuDNN (the preset's overheadMb)."""
        return self.memory_fit.pod.overhead_mb

    @property
    def budget_mb(self) -> int:
        """All the GPU memory one pod may hold: arena + overhead. Hard caps get this."""
        return self.memory_fit.pod.budget_mb

    @property
    def backend(self) -> SharingBackend:
        from infra.sharing import backend_for

        return backend_for(self.sharing)

    @property
    def config_key(self) -> str:
        """Key of this group's device-plugin config in the sharing ConfigMap."""
        return self.name

    @property
    def slices(self) -> int:
        return self.gpus * self.devices_per_gpu * self.replicas_per_device

    @property
    def resource_name(self) -> str:
        return self.backend.resource_name(self)


def memory_conflicts(request: GroupRequest, devices: DeviceSharing, fit: budget.DeviceFit) -> list[tuple[KeyPath, str]]:
    """The pods' budgets do not fit the device: one line for each key the user set that takes
    part, quoting the budget arithmetic and saying what would fit if the others stay; the
    preset's figures are not blamed."""
    spec, pod = request.spec, fit.pod
    arena = max(pod.arena_mb, 1)  # a derived arena that came out empty: at least something
    budget_mb = arena + pod.overhead_mb
    usable = fit.device_mb - fit.reserve_mb
    if pod.arena_mb > 0:
        summary = budget.fit(
            fit.device, fit.device_mb, fit.reserve_mb, pod.overhead_mb, fit.pods, arena_mb=arena
        ).arithmetic()
        summary += f" of the {fit.device}"
    else:  # the arena was derived from what is left, and nothing is: quote the overheads alone
        overheads = fit.pods * pod.overhead_mb + fit.reserve_mb
        summary = (
            f"{fit.pods} pod{'' if fit.pods == 1 else 's'} x {pod.overhead_mb} overhead + {fit.reserve_mb} reserve "
            f"= {overheads} MiB "
            f"{'>' if overheads > fit.device_mb else '<='} {fit.device_mb} MiB of the {fit.device}, "
            "leaving no arena"
        )
    replicas_key = ("mig", "timeSlicingReplicas") if devices.mig is not None else ("replicas",)
    replicas_set = (devices.mig.time_slicing_replicas if devices.mig is not None else spec.replicas) is not None
    candidates = [
        (
            spec.memory_per_pod_mb is not None,
            ("memoryPerPodMb",),
            f"at most {max(fit.largest_arena_mb, 0)} MiB arena per pod",
        ),
        (replicas_set, replicas_key, f"at most {max(usable // budget_mb, 0)} pods per device"),
        (
            spec.reserve_mb is not None,
            ("reserveMb",),
            f"at most {max(fit.device_mb - fit.pods * budget_mb, 0)} MiB reserve",
        ),
        (
            spec.vram_mb is not None and devices.device_mb is None,
            ("vramMb",),
            f"at least {fit.pods * budget_mb + fit.reserve_mb} MiB",
        ),
        (
            spec.overhead_mb is not None,
            ("overheadMb",),
            f"at most {max(usable // max(fit.pods, 1) - arena, 0)} MiB overhead",
        ),
    ]
    chosen = [(key, advice) for is_set, key, advice in candidates if is_set]
    if not chosen:  # nothing the user set conflicts: the preset itself cannot share this way
        if pod.arena_mb <= 0:
            summary += f": each pod's {pod.overhead_mb} MiB overhead alone leaves no arena"
        return [((*request.path, "preset"), f"{summary}; pick fewer pods (replicas) or another sharing mode")]
    set_names = ", ".join(".".join(key) for key, _ in chosen)
    return [((*request.path, *key), f"{summary} (you set {set_names}); {advice}") for key, advice in chosen]


class SharingBackend(Protocol):
    """One sharing mode. Every method is pure."""

    mode: ClassVar[SharingMode]

    # --- planning (validation) ---
    def check_spec(self, request: GroupRequest, problems: Problems) -> None:
        """Refuse keys of the group's spec that this mode cannot honour."""

    def plan_devices(self, request: GroupRequest, problems: Problems) -> DeviceSharing | None:
        """Devices and replicas per device; None (with problems added) if the spec is unusable."""

    def plan_memory(self, request: GroupRequest, devices: DeviceSharing, problems: Problems) -> budget.DeviceFit:
        """Each pod's arena and budget on one device (infra.budget.fit); adds a problem, quoting
        the arithmetic, if `replicas x (arena + overhead) + reserve` does not fit the device."""

    # --- what the rollout needs ---
    def resource_name(self, group: NodeGroupPlan) -> str:
        """The extended resource a Cat Watcher pod of this group asks for."""

    def device_plugin_config(self, group: NodeGroupPlan) -> dict[str, Any]:
        """The device plugin's `version: v1` config for this group."""

    def operator_values(self, groups: Sequence[NodeGroupPlan]) -> dict[str, Any]:
        """GPU Operator chart values this mode needs for its groups (merged into the release)."""

    def node_labels(self, group: NodeGroupPlan) -> dict[str, str]:
        """Labels Pulumi sets on each named node of the group."""

    def node_selector(self, group: NodeGroupPlan) -> dict[str, str]:
        """Where the group's inference pods run."""

    def pod_resources(self, group: NodeGroupPlan) -> dict[str, str]:
        """Extended-resource limits of one inference pod."""

    def pod_env(self, group: NodeGroupPlan) -> list[dict[str, str]]:
        """The slice the service must stay in, as env of the inference container."""

    def config_readers(self, group: NodeGroupPlan) -> tuple[str, ...]:
        """Operator DaemonSets that read the sharing config and must restart when it changes."""

    def works_with_mig_strategy(self, strategy: ClusterMigStrategy) -> bool:
        """Whether the device plugin accepts this group's config under the cluster's strategy."""

    def shares_devices(self, group: NodeGroupPlan) -> bool:
        """Whether several pods use one device (per-pod GPU memory is then unknowable)."""

    def describe_recommendation(self, preset: GpuPreset) -> str:
        """The preset table's `recommended sharing` cell."""

    # --- what only some modes need ---
    limits_gpu_cores: ClassVar[bool]  # whether `gpuCoresPerPod` means anything here
    plan_note: ClassVar[str]  # what bounds a pod's GPU memory, for `catwatcher-infra plan`
    needs_runtime_class: ClassVar[bool]  # hands GPUs over as NVIDIA_VISIBLE_DEVICES (nvidia runtime)

    def scheduler_name(self, group: NodeGroupPlan) -> str | None:
        """The scheduler the group's pods name; None: the cluster's default."""

    def runtime_class(self, group: NodeGroupPlan, distribution_default: str | None) -> str | None:
        """The RuntimeClass the group's pods name, given the distribution's."""


GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
# Readers restart in this order: GFD sets `nvidia.com/mps.capable`, which schedules the MPS
# daemon; the device plugin needs a running MPS daemon (GPU-OPERATOR-NOTES.md).
READER_ORDER = (GFD_DAEMONSET, MPS_DAEMONSET, DEVICE_PLUGIN_DAEMONSET)


class BaseBackend:
    """Behaviour most modes share; a backend overrides what differs."""

    mode: ClassVar[SharingMode]
    limits_gpu_cores: ClassVar[bool] = False
    needs_runtime_class: ClassVar[bool] = False
    plan_note: ClassVar[str] = ""  # MIG's notes depend on the layout: the planner writes them

    def check_spec(self, request: GroupRequest, problems: Problems) -> None:
        if request.spec.mig is not None:
            problems.add((*request.path, "mig"), f"only valid with sharing: mig (sharing is {self.mode})")

    def plan_memory(self, request: GroupRequest, devices: DeviceSharing, problems: Problems) -> budget.DeviceFit:
        gpu, spec = request.gpu, request.spec
        device_mb = devices.device_mb if devices.device_mb is not None else gpu.vram_mb
        replicas = devices.replicas_per_device
        fit = budget.fit(
            self.device_noun(gpu, devices),
            device_mb,
            gpu.reserve_mb,
            gpu.overhead_mb,
            replicas,
            arena_mb=spec.memory_per_pod_mb,
            preferred_arena_mb=self.preferred_memory_mb(gpu),
        )
        if not fit.fits:
            for path, message in memory_conflicts(request, devices, fit):
                problems.add(path, message)
        return fit

    def preferred_memory_mb(self, gpu: GpuPreset) -> int | None:
        """None: a pod gets the largest share that fits."""
        return None

    def device_noun(self, gpu: GpuPreset, devices: DeviceSharing) -> str:
        return gpu.key

    def resource_name(self, group: NodeGroupPlan) -> str:
        return self._maybe_renamed(GPU_RESOURCE, group)

    @staticmethod
    def _maybe_renamed(name: str, group: NodeGroupPlan) -> str:
        shared = group.replicas_per_device > 1
        return f"{name}.shared" if shared and group.rename_shared else name

    def device_plugin_config(self, group: NodeGroupPlan) -> dict[str, Any]:
        return {"version": "v1", "flags": {"migStrategy": "none"}}

    def operator_values(self, groups: Sequence[NodeGroupPlan]) -> dict[str, Any]:
        return {}

    def node_labels(self, group: NodeGroupPlan) -> dict[str, str]:
        return {DEVICE_PLUGIN_CONFIG_LABEL: group.config_key}

    def node_selector(self, group: NodeGroupPlan) -> dict[str, str]:
        if group.nodes:
            return {DEVICE_PLUGIN_CONFIG_LABEL: group.config_key}
        return {GPU_PRESENT_LABEL: "true"}

    def pod_resources(self, group: NodeGroupPlan) -> dict[str, str]:
        return {self.resource_name(group): "1"}

    def pod_env(self, group: NodeGroupPlan) -> list[dict[str, str]]:
        # The service gives ONNX Runtime's arenas the budget minus the overhead they cannot see.
        return [
            {"name": contract.GPU_MEMORY_LIMIT_ENV, "value": str(group.budget_mb)},
            {"name": contract.GPU_MEMORY_OVERHEAD_ENV, "value": str(group.overhead_mb)},
            # `cuda`, not `auto`: a pod given a GPU slice that ends up on CPU must report itself
            # degraded (and alert); `auto` treats a machine without usable CUDA as normal.
            {"name": contract.DEVICE_ENV, "value": "cuda"},
        ]

    def config_readers(self, group: NodeGroupPlan) -> tuple[str, ...]:
        # GFD derives the node's sharing labels (gpu.replicas, mps.capable) from the config.
        return (GFD_DAEMONSET, DEVICE_PLUGIN_DAEMONSET)

    def works_with_mig_strategy(self, strategy: ClusterMigStrategy) -> bool:
        return True

    def shares_devices(self, group: NodeGroupPlan) -> bool:
        return group.replicas_per_device > 1

    def scheduler_name(self, group: NodeGroupPlan) -> str | None:
        return None

    def runtime_class(self, group: NodeGroupPlan, distribution_default: str | None) -> str | None:
        return distribution_default

    def describe_recommendation(self, preset: GpuPreset) -> str:
        recommended = preset.recommended
        return f"{recommended.sharing} x{recommended.replicas}, {recommended.memory_per_pod_mb} MiB arena per pod"


def replica_sharing_config(group: NodeGroupPlan, sharing_key: str, resource_names: Sequence[str]) -> dict[str, Any]:
    """The `sharing.<timeSlicing|mps>` section of a device-plugin config."""
    return {
        sharing_key: {
            "renameByDefault": group.rename_shared,
            # A pod asking for two shares would get no more GPU than with one: refuse it.
            "failRequestsGreaterThanOne": True,
            "resources": [{"name": name, "replicas": group.replicas_per_device} for name in resource_names],
        }
    }
