"""`sharing: hami`: HAMi's device plugin and scheduler share each GPU between pods with a hard
per-pod memory cap (`nvidia.com/gpumem`) and, optionally, an SM share (`nvidia.com/gpucores`).

HAMi-core, preloaded into every GPU container, counts all of a process's device memory (CUDA
context, modules, cuBLAS/cuDNN workspaces, the ONNX Runtime arena) against the cap and answers
an allocation past it with CUDA_ERROR_OUT_OF_MEMORY; the service reads that as a GPU failure and
falls back to the CPU instead of dying. So the cap is the pod's whole GPU budget, and ONNX
Runtime's arena limit stays below it by the per-process overhead: the arena's own limit trips
first, and a cuDNN workspace that outgrows the estimate still fails softly.

HAMi and the GPU Operator's device plugin cannot share a node (both register nvidia.com/gpu):
a group that names no nodes is every GPU node, so the operator's plugin is turned off
cluster-wide; named nodes are labelled `nvidia.com/gpu.deploy.device-plugin=false` (and `gpu=on`
for HAMi's plugin) in their node patch, which the operator honours (it only fills in absent or
empty deploy labels). Facts about HAMi are data:
infra/data/hami_chart.yaml.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from components.gpu_operator import GFD_DAEMONSET
from components.hami import node_labels as hami_node_labels
from infra.distributions import NVIDIA_RUNTIME_CLASS
from infra.hami_chart import facts as hami_facts
from infra.model import GpuPreset, SharingMode
from infra.sharing.base import BaseBackend, DeviceSharing, GroupRequest, NodeGroupPlan, Problems


class Hami(BaseBackend):
    mode: ClassVar[SharingMode] = "hami"
    limits_gpu_cores: ClassVar[bool] = True
    needs_runtime_class: ClassVar[bool] = True
    plan_note: ClassVar[str] = "each pod's nvidia.com/gpumem = its budget, enforced in-process by HAMi-core"

    def check_spec(self, request: GroupRequest, problems: Problems) -> None:
        super().check_spec(request, problems)
        gpu = request.gpu
        minimum = hami_facts().minimum_compute_capability
        if gpu.capability < minimum:
            problems.add(
                (*request.path, "sharing"),
                f"hami {hami_facts().version} is known to run on compute capability "
                f"{minimum[0]}.{minimum[1]} (Pascal) and newer; {gpu.key} has {gpu.compute_capability}: "
                "use time-slicing",
            )
        if request.spec.rename_shared:
            problems.add(
                (*request.path, "renameShared"),
                "renames the NVIDIA device plugin's shared resource; HAMi's pods always ask for nvidia.com/gpu",
            )

    def plan_devices(self, request: GroupRequest, problems: Problems) -> DeviceSharing | None:
        spec, gpu = request.spec, request.gpu
        replicas = spec.replicas if spec.replicas is not None else gpu.recommended.replicas
        split = hami_facts().device_split_count
        if replicas < 1:
            problems.add((*request.path, "replicas"), f"must be >= 1; got {replicas}")
        elif replicas > split:
            problems.add(
                (*request.path, "replicas"),
                f"HAMi places at most {split} pods on one GPU (its deviceSplitCount); got {replicas}",
            )
        cores = spec.gpu_cores_per_pod
        if cores is not None and replicas * cores > 100:
            problems.add(
                (*request.path, "gpuCoresPerPod"),
                f"{replicas} pods x {cores}% = {replicas * cores}% of the GPU's SMs; at most "
                f"{100 // max(replicas, 1)}% per pod with {replicas} pods",
            )
        return DeviceSharing(replicas_per_device=replicas)

    def preferred_memory_mb(self, gpu: GpuPreset) -> int | None:
        # The preset's per-pod figure sizes the model, not the card: keep it while it fits.
        return gpu.recommended.memory_per_pod_mb

    def resource_name(self, group: NodeGroupPlan) -> str:
        return hami_facts().gpu_resource

    def operator_values(self, groups: Sequence[NodeGroupPlan]) -> dict[str, Any]:
        if any(not group.nodes for group in groups):
            # A group without node names is every GPU node: no node keeps the operator's plugin.
            return {"devicePlugin": {"enabled": False}}
        return {}

    def node_labels(self, group: NodeGroupPlan) -> dict[str, str]:
        # One patch per node (SharingConfig's): HAMi's plugin selector, and the operator's off.
        return {**super().node_labels(group), **hami_node_labels()}

    def pod_resources(self, group: NodeGroupPlan) -> dict[str, str]:
        facts = hami_facts()
        resources = {facts.gpu_resource: "1", facts.memory_resource: str(self.memory_cap_mb(group))}
        if group.gpu_cores_per_pod is not None:
            resources[facts.cores_resource] = str(group.gpu_cores_per_pod)
        return resources

    def memory_cap_mb(self, group: NodeGroupPlan) -> int:
        """HAMi's hard cap (MiB): the pod's whole GPU budget (arena + overhead): HAMi-core counts
        the CUDA context and libraries too, so the arena alone would be refused too early."""
        return group.budget_mb

    def config_readers(self, group: NodeGroupPlan) -> tuple[str, ...]:
        # GPU feature discovery still runs on HAMi nodes and labels them from the sharing config;
        # the operator's plugin does not run there, and HAMi's chart rolls its own DaemonSet when
        # its config changes (checksum annotations on the pod template).
        return (GFD_DAEMONSET,)

    def scheduler_name(self, group: NodeGroupPlan) -> str | None:
        # Named in the pod so that a pod created while HAMi's webhook is down waits for HAMi's
        # scheduler instead of being placed by the default one, which cannot assign gpumem.
        return hami_facts().scheduler_name

    def runtime_class(self, group: NodeGroupPlan, distribution_default: str | None) -> str | None:
        # HAMi's device plugin hands the GPU over as NVIDIA_VISIBLE_DEVICES, which only the
        # nvidia runtime turns into devices: under the operator's CDI default (v25.10+) even
        # kubeadm pods need the RuntimeClass. HAMi's webhook would add it too; naming it here
        # makes the pod right without the webhook. (No NRI plugin here: the planner refuses it.)
        return NVIDIA_RUNTIME_CLASS
