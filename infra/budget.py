"""A pod's GPU memory budget, and whether a number of pods fits one device.

ONNX Runtime's `gpu_mem_limit` bounds only its arenas. Every Cat Watcher process also holds a
CUDA context and cuBLAS/cuDNN state that no arena limit sees: the per-process overhead, a figure
per GPU in the preset data (`overheadMb`, sources beside each figure). So:

    budget                 = arena + overhead         (what one pod holds on the GPU)
    fit check              : pods x budget + reserve <= the device's MiB
    ONNX Runtime's limit   = budget - overhead        (= the arena, split across its sessions)
    hard caps              = budget                   (MPS pinned memory, HAMi gpumem count it all)

Validation, the rendered pod env and `catwatcher-infra plan` all take their numbers from `fit`.
Pure: no Pulumi, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PodBudget:
    """What one pod may hold on its GPU: the arena ONNX Runtime may fill plus what it cannot see."""

    arena_mb: int
    overhead_mb: int

    @property
    def budget_mb(self) -> int:
        return self.arena_mb + self.overhead_mb


@dataclass(frozen=True)
class DeviceFit:
    """`pods` pods with one budget each on one device (a whole GPU, or one MIG instance)."""

    device: str  # what the MiB belong to, for messages: "rtx-3060", "MIG instance 1g.5gb"
    device_mb: int
    reserve_mb: int
    pods: int
    pod: PodBudget

    @property
    def used_mb(self) -> int:
        return self.pods * self.pod.budget_mb + self.reserve_mb

    @property
    def headroom_mb(self) -> int:
        return self.device_mb - self.used_mb

    @property
    def fits(self) -> bool:
        return self.pod.arena_mb > 0 and self.headroom_mb >= 0

    @property
    def largest_arena_mb(self) -> int:
        """The biggest arena each of these pods could have on this device."""
        return largest_arena_mb(self.device_mb, self.reserve_mb, self.pods, self.pod.overhead_mb)

    def arithmetic(self) -> str:
        """`4 pods x (2560 arena + 420 overhead) + 1024 reserve = 12944 MiB > 12288 MiB`."""
        pods = f"{self.pods} pod" if self.pods == 1 else f"{self.pods} pods"
        relation = "<=" if self.headroom_mb >= 0 else ">"
        return (
            f"{pods} x ({self.pod.arena_mb} arena + {self.pod.overhead_mb} overhead) + {self.reserve_mb} reserve"
            f" = {self.used_mb} MiB {relation} {self.device_mb} MiB"
        )

    def problem(self) -> str | None:
        """Why these pods do not fit, quoting the arithmetic and what would; None when they fit."""
        if self.fits:
            return None
        largest = self.largest_arena_mb
        if largest <= 0:
            return (
                f"{self.arithmetic()} of the {self.device}: even an empty arena does not fit, each pod's "
                f"{self.pod.overhead_mb} MiB overhead alone leaves nothing; run fewer pods per device"
            )
        if self.pod.arena_mb <= 0:
            return f"the arena must be > 0 MiB; got {self.pod.arena_mb}; at most {largest} MiB arena per pod"
        return f"{self.arithmetic()} of the {self.device}; at most {largest} MiB arena per pod"


def largest_arena_mb(device_mb: int, reserve_mb: int, pods: int, overhead_mb: int) -> int:
    """The biggest arena per pod with `pods` pods on the device (can be <= 0: nothing fits)."""
    return (device_mb - reserve_mb) // max(pods, 1) - overhead_mb


def fit(
    device: str,
    device_mb: int,
    reserve_mb: int,
    overhead_mb: int,
    pods: int,
    arena_mb: int | None = None,
    preferred_arena_mb: int | None = None,
) -> DeviceFit:
    """The one per-pod memory arithmetic.

    `arena_mb` is what the stack asks for (memoryPerPodMb) and is kept even when it does not fit,
    so the caller can report it. Without it, the arena is `preferred_arena_mb` (a preset's figure,
    which sizes the model rather than the card) while that fits, else everything the device
    leaves each pod.
    """
    if arena_mb is None:
        largest = largest_arena_mb(device_mb, reserve_mb, pods, overhead_mb)
        arena_mb = largest if preferred_arena_mb is None else min(preferred_arena_mb, largest)
    return DeviceFit(device, device_mb, reserve_mb, pods, PodBudget(arena_mb, overhead_mb))


def pods_that_fit(device_mb: int, reserve_mb: int, budget_mb: int) -> int:
    """How many pods of `budget_mb` each one device holds besides its reserve."""
    if budget_mb <= 0:
        raise ValueError(f"a pod's budget must be > 0 MiB; got {budget_mb}")
    return max((device_mb - reserve_mb) // budget_mb, 0)
