"""`catwatcher-infra plan`: how many Cat Watcher pods fit one GPU, in each sharing mode.

Given a GPU (a preset, or `custom`) and the arena one pod needs (a model's estimate, or the
preset's recommendation), every mode answers with pods per GPU, each pod's arena and budget, and
the headroom left. The numbers come from the mode's own backend (`plan_devices` and
`plan_memory`, which call `infra.budget.fit`), given the config a user would write for that
many pods: the arithmetic validation uses. Pure, except for reading model files through
`infra.footprint`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from inference import contract
from infra import budget
from infra.custom_gpu import CUSTOM, custom_preset
from infra.footprint import ROUND_TO_MB, ModelFootprint
from infra.model import GpuPreset, GpuSpec
from infra.sharing import BACKENDS, backend_for
from infra.sharing.base import GroupRequest, Problems


class PlanInputError(ValueError):
    """Bad planner input; the message names the option and what would be valid."""


@dataclass(frozen=True)
class ModeFit:
    """One sharing mode on one GPU: `devices` devices (1, or MIG instances) of `fit.pods` pods."""

    mode: str
    device: str  # "GPU" or "MIG 1g.5gb"
    devices: int
    fit: budget.DeviceFit | None  # None: the mode cannot run on this GPU at all
    note: str = ""

    @property
    def pods(self) -> int:
        return self.devices * self.fit.pods if self.fit and self.fit.fits else 0

    def as_dict(self) -> dict[str, Any]:
        fit = self.fit
        return {
            "mode": self.mode,
            "device": self.device,
            "devicesPerGpu": self.devices,
            "podsPerDevice": fit.pods if fit and fit.fits else 0,
            "pods": self.pods,
            "arenaMb": fit.pod.arena_mb if fit and fit.fits else None,
            "overheadMb": fit.pod.overhead_mb if fit else None,
            "budgetMb": fit.pod.budget_mb if fit and fit.fits else None,
            "headroomMb": fit.headroom_mb if fit and fit.fits else None,
            "arithmetic": fit.arithmetic() if fit and fit.fits else None,
            "note": self.note,
        }


def custom_gpu(vram_mb: int | None, compute_capability: str | None) -> GpuPreset:
    """`--preset custom`: built as the stack's `preset: custom` is (infra.custom_gpu)."""
    if vram_mb is None or compute_capability is None:
        raise PlanInputError(
            "--preset custom needs --vram-mb and --compute-capability (e.g. --vram-mb 12288 --compute-capability 8.6)"
        )
    spec = GpuSpec.model_validate(
        {"preset": CUSTOM, "displayName": "custom GPU", "vramMb": vram_mb, "computeCapability": compute_capability}
    )
    return custom_preset(spec).model_copy(update={"key": CUSTOM})


def resolve_gpu(catalogue: Mapping[str, GpuPreset], preset: str, overrides: Mapping[str, Any]) -> GpuPreset:
    """The preset (or a custom GPU) with `--vram-mb`-style overrides applied, validated."""
    checks = {
        "vram_mb": (1, "--vram-mb must be > 0"),
        "reserve_mb": (0, "--reserve-mb must be >= 0"),
        "overhead_mb": (0, "--overhead-mb must be >= 0"),
    }
    for field, (least, message) in checks.items():
        value = overrides.get(field)
        if value is not None and value < least:
            raise PlanInputError(f"{message}; got {value}")
    capability = overrides.get("compute_capability")
    if capability is not None and not _is_capability(capability):
        raise PlanInputError(f"--compute-capability must look like 8.6; got '{capability}'")
    if preset == CUSTOM:
        gpu = custom_gpu(overrides.get("vram_mb"), capability)
    elif preset in catalogue:
        gpu = catalogue[preset]
    else:
        raise PlanInputError(f"--preset: unknown preset '{preset}'; valid: {', '.join([*sorted(catalogue), CUSTOM])}")
    update = {field: value for field, value in overrides.items() if value is not None}
    return gpu.model_copy(update=update) if update else gpu


def _is_capability(text: str) -> bool:
    major, dot, minor = text.partition(".")
    return bool(dot) and major.isdigit() and minor.isdigit()


def arena_for_models(detector: ModelFootprint, identifier: ModelFootprint | None = None) -> int:
    """The pod arena that gives each session its estimate, split as the service splits it."""
    if identifier is None:
        return detector.arena_mb
    share = contract.DETECTOR_ARENA_SHARE
    needed = max(detector.arena_mb / share, identifier.arena_mb / (1 - share))
    return math.ceil(needed / ROUND_TO_MB) * ROUND_TO_MB


def validated_fit(gpu: GpuPreset, spec: dict[str, Any]) -> tuple[budget.DeviceFit | None, list[str]]:
    """What validation makes of one node group with this `gpu` section: the pods' fit on one
    device, or the problems it would report."""
    try:
        gpu_spec = GpuSpec.model_validate({"preset": gpu.key, **spec})
    except ValidationError as error:  # beyond what a stack may ask for (e.g. the most time slices)
        return None, [f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors()]
    request = GroupRequest(
        path=("gpu",), name="plan", nodes=("planned-node",), spec=gpu_spec, gpu=gpu, gpus=1, catalogue={gpu.key: gpu}
    )
    backend = backend_for(gpu_spec.sharing or gpu.recommended.sharing)
    problems = Problems()
    backend.check_spec(request, problems)
    devices = backend.plan_devices(request, problems)
    fit = backend.plan_memory(request, devices, problems) if devices is not None else None
    messages = [message for _, message in problems.items]
    return (fit if not messages else None), messages


def _none(gpu: GpuPreset, arena_mb: int) -> ModeFit:
    # Validation gives the single pod everything the GPU leaves.
    fit, problems = validated_fit(gpu, {"sharing": "none"})
    if fit is None:
        return ModeFit("none", "GPU", 1, None, problems[0])
    if fit.pod.arena_mb < arena_mb:
        return ModeFit(
            "none", "GPU", 1, None, f"the GPU leaves {max(fit.pod.arena_mb, 0)} MiB arena, the model needs {arena_mb}"
        )
    return ModeFit("none", "GPU", 1, fit, BACKENDS["none"].plan_note)


def _shared(mode: str, gpu: GpuPreset, arena_mb: int, most: int | None, note: str, least: int = 2) -> ModeFit:
    """The most pods of `arena_mb` + overhead that fit the GPU (at most `most`), as validated."""
    pods = budget.pods_that_fit(gpu.vram_mb, gpu.reserve_mb, arena_mb + gpu.overhead_mb)
    if most is not None and pods > most:
        pods, note = most, f"capped at {most} MPS clients per GPU (compute capability {gpu.compute_capability})"
    if pods < least:
        why = " (the device plugin refuses 1); use none" if least == 2 else ""
        return ModeFit(mode, "GPU", 1, None, f"fewer than {least} pods of {arena_mb} + {gpu.overhead_mb} MiB fit{why}")
    fit, problems = validated_fit(gpu, {"sharing": mode, "replicas": pods, "memoryPerPodMb": arena_mb})
    return ModeFit(mode, "GPU", 1, fit, problems[0] if problems else note)


def _time_slicing(gpu: GpuPreset, arena_mb: int) -> list[ModeFit]:
    return [_shared("time-slicing", gpu, arena_mb, None, BACKENDS["time-slicing"].plan_note)]


def _mps(gpu: GpuPreset, arena_mb: int) -> list[ModeFit]:
    if not gpu.mps_capable:
        return [
            ModeFit("mps", "GPU", 1, None, f"needs compute capability >= 7.0; {gpu.key} has {gpu.compute_capability}")
        ]
    return [_shared("mps", gpu, arena_mb, gpu.mps_max_replicas, BACKENDS["mps"].plan_note)]


def _mig(gpu: GpuPreset, arena_mb: int) -> list[ModeFit]:
    if gpu.mig is None:
        return [ModeFit("mig", "GPU", 1, None, f"{gpu.key} has no MIG")]
    rows = []
    for profile in gpu.mig.profiles.values():
        per_instance = budget.pods_that_fit(profile.memory_mb, gpu.reserve_mb, arena_mb + gpu.overhead_mb)
        if per_instance == 0:
            rows.append(
                ModeFit(
                    "mig",
                    f"MIG {profile.name}",
                    profile.max_count,
                    None,
                    f"{profile.memory_mb} MiB instance: one pod of {arena_mb} + "
                    f"{gpu.overhead_mb} MiB + {gpu.reserve_mb} reserve does not fit",
                )
            )
            continue
        # Validation splits the instance's memory evenly between its pods.
        mig: dict[str, object] = {"strategy": "single", "layout": {profile.name: profile.max_count}}
        if per_instance > 1:
            mig["timeSlicingReplicas"] = per_instance
        fit, problems = validated_fit(gpu, {"sharing": "mig", "mig": mig})
        note = f"{profile.max_count} x {profile.name} per GPU" + (
            f", each time-sliced {per_instance} ways (mig.timeSlicingReplicas)" if per_instance > 1 else ""
        )
        rows.append(ModeFit("mig", f"MIG {profile.name}", profile.max_count, fit, problems[0] if problems else note))
    return rows


# How each mode counts its pods; a backend without an entry is asked, like time-slicing, for the
# most pods of `replicas` x `memoryPerPodMb` that fit (its own validation then has the last word).
MODES: tuple[tuple[str, Callable[[GpuPreset, int], list[ModeFit]]], ...] = (
    ("none", lambda gpu, arena: [_none(gpu, arena)]),
    ("time-slicing", _time_slicing),
    ("mps", _mps),
    ("mig", _mig),
)


def plan_modes(gpu: GpuPreset, arena_mb: int) -> list[ModeFit]:
    """Every mode's fit on one GPU for pods that each need `arena_mb` of ONNX Runtime arena."""
    if arena_mb <= 0:
        raise PlanInputError(f"--arena-mb must be > 0; got {arena_mb}")
    counted = dict(MODES)
    rows = [row for _, mode in MODES for row in mode(gpu, arena_mb)]
    rows += [
        _shared(mode, gpu, arena_mb, None, BACKENDS[mode].plan_note, least=1)
        for mode in BACKENDS
        if mode not in counted
    ]
    return rows


@dataclass(frozen=True)
class PlanReport:
    gpu: GpuPreset
    arena_mb: int
    arena_source: str
    models: Sequence[ModelFootprint]
    modes: Sequence[ModeFit]

    def as_dict(self) -> dict[str, Any]:
        gpu = self.gpu
        return {
            "gpu": {
                "preset": gpu.key,
                "name": gpu.display_name,
                "vramMb": gpu.vram_mb,
                "reserveMb": gpu.reserve_mb,
                "overheadMb": gpu.overhead_mb,
                "computeCapability": gpu.compute_capability,
            },
            "arenaMb": self.arena_mb,
            "arenaSource": self.arena_source,
            "models": [model.as_dict() for model in self.models],
            "modes": [row.as_dict() for row in self.modes],
        }

    def text(self) -> str:
        gpu = self.gpu
        lines = [
            f"{gpu.key} ({gpu.display_name}): {gpu.vram_mb} MiB, {gpu.reserve_mb} MiB reserve, "
            f"{gpu.overhead_mb} MiB overhead per pod (CUDA context + libraries, outside the arena)",
        ]
        for model in self.models:
            shape = "x".join(str(d) for d in model.input_shape)
            lines.append(
                f"model {model.path} at {shape}: weights {model.weights_mb:.1f} MiB, peak activations "
                f"{model.peak_activation_mb:.1f} MiB -> arena estimate {model.arena_mb} MiB"
                + (f" ({model.unknown_tensors} tensors of unknown size not counted)" if model.unknown_tensors else "")
            )
        lines.append(f"arena per pod: {self.arena_mb} MiB ({self.arena_source}); budget = arena + overhead")
        lines.append("")
        header = f"{'mode':<14} {'device':<20} {'pods/GPU':>8} {'arena':>7} {'budget':>7} {'headroom':>9}  note"
        lines.append(header)
        for row in self.modes:
            fit = row.fit
            if fit is None or not fit.fits:
                lines.append(f"{row.mode:<14} {row.device:<20} {0:>8} {'-':>7} {'-':>7} {'-':>9}  {row.note}")
                continue
            lines.append(
                f"{row.mode:<14} {row.device:<20} {row.pods:>8} {fit.pod.arena_mb:>7} {fit.pod.budget_mb:>7} "
                f"{fit.headroom_mb:>9}  {row.note}"
            )
        lines.append("")
        lines.append("MiB; headroom per device (GPU or MIG instance) after every pod's budget and the reserve.")
        lines.append(
            "Memory only: pods on one GPU or instance also share its SMs (see the README's throughput figures)."
        )
        return "\n".join(lines) + "\n"
