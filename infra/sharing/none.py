"""`sharing: none`: each inference pod gets a whole GPU."""

from __future__ import annotations

from typing import ClassVar

from infra.model import SharingMode
from infra.sharing.base import BaseBackend, DeviceSharing, GroupRequest, Problems


class NoSharing(BaseBackend):
    mode: ClassVar[SharingMode] = "none"
    plan_note: ClassVar[str] = "one pod, the whole GPU"

    def plan_devices(self, request: GroupRequest, problems: Problems) -> DeviceSharing | None:
        if request.spec.replicas not in (None, 1):
            problems.add(
                (*request.path, "replicas"),
                "sharing: none gives each pod a whole GPU; remove replicas or pick time-slicing or mps "
                f"(got {request.spec.replicas})",
            )
        return DeviceSharing(replicas_per_device=1)
