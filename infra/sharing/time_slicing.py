"""`sharing: time-slicing`: the device plugin advertises each GPU `replicas` times; the pods
take turns on it (no memory or fault isolation)."""

from __future__ import annotations

from typing import Any, ClassVar

from components.sharing_config import GPU_RESOURCE
from infra.model import GpuPreset, SharingMode
from infra.sharing.base import (
    BaseBackend,
    DeviceSharing,
    GroupRequest,
    NodeGroupPlan,
    Problems,
    replica_sharing_config,
)


class TimeSlicing(BaseBackend):
    mode: ClassVar[SharingMode] = "time-slicing"
    # The key of the device plugin's `sharing` section (api/config/v1).
    sharing_key: ClassVar[str] = "timeSlicing"
    plan_note: ClassVar[str] = "no memory isolation between pods"

    def plan_devices(self, request: GroupRequest, problems: Problems) -> DeviceSharing | None:
        spec, gpu = request.spec, request.gpu
        replicas = spec.replicas if spec.replicas is not None else gpu.recommended.replicas
        if replicas < 2:
            problems.add(
                (*request.path, "replicas"),
                f"must be >= 2 for {self.mode} (the device plugin refuses 1); got {replicas}; "
                "for one pod per GPU use sharing: none",
            )
        self.check_replicas(request, replicas, problems)
        return DeviceSharing(replicas_per_device=replicas)

    def check_replicas(self, request: GroupRequest, replicas: int, problems: Problems) -> None:
        """Mode-specific limits on the replica count (none for time-slicing)."""

    def preferred_memory_mb(self, gpu: GpuPreset) -> int | None:
        # The preset's per-pod figure sizes the model, not the card: keep it while it fits.
        return gpu.recommended.memory_per_pod_mb

    def device_plugin_config(self, group: NodeGroupPlan) -> dict[str, Any]:
        config = super().device_plugin_config(group)
        if group.replicas_per_device >= 2:
            config["sharing"] = replica_sharing_config(group, self.sharing_key, [GPU_RESOURCE])
        return config
