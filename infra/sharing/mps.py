"""`sharing: mps`: like time-slicing, but the operator's MPS control daemon runs the pods'
kernels concurrently and splits the GPU's memory between them."""

from __future__ import annotations

from typing import ClassVar

from components.gpu_operator import DEVICE_PLUGIN_DAEMONSET, GFD_DAEMONSET, MPS_DAEMONSET
from infra.model import SharingMode
from infra.sharing.base import ClusterMigStrategy, GroupRequest, NodeGroupPlan, Problems
from infra.sharing.time_slicing import TimeSlicing


class Mps(TimeSlicing):
    mode: ClassVar[SharingMode] = "mps"
    sharing_key: ClassVar[str] = "mps"
    plan_note: ClassVar[str] = "each pod's pinned-memory cap = its budget"

    def check_spec(self, request: GroupRequest, problems: Problems) -> None:
        if request.spec.mig is not None:
            problems.add(
                (*request.path, "mig"),
                "MPS runs on full GPUs only: the device plugin rejects "
                "MPS on MIG devices and with the mixed MIG strategy",
            )

    def check_replicas(self, request: GroupRequest, replicas: int, problems: Problems) -> None:
        gpu = request.gpu
        if not gpu.mps_capable:
            problems.add(
                (*request.path, "sharing"),
                "mps needs compute capability >= 7.0 (Volta or newer); "
                f"{gpu.key} has {gpu.compute_capability}: use time-slicing",
            )
        elif replicas > gpu.mps_max_replicas:
            problems.add(
                (*request.path, "replicas"),
                f"MPS allows at most {gpu.mps_max_replicas} clients per GPU on "
                f"compute capability {gpu.compute_capability}; got {replicas}",
            )

    def pod_env(self, group: NodeGroupPlan) -> list[dict[str, str]]:
        # The MPS daemon already splits memory evenly (total / replicas); this caps the client
        # lower still, at its whole budget: the cap counts the CUDA context and libraries too.
        return [
            *super().pod_env(group),
            {"name": "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", "value": f"0={group.budget_mb}M"},
        ]

    def config_readers(self, group: NodeGroupPlan) -> tuple[str, ...]:
        # The MPS control daemon splits memory and client count by the config's replicas.
        return (GFD_DAEMONSET, MPS_DAEMONSET, DEVICE_PLUGIN_DAEMONSET)

    def works_with_mig_strategy(self, strategy: ClusterMigStrategy) -> bool:
        # The device plugin rejects MPS with the mixed strategy (api/config/v1).
        return strategy != "mixed"
