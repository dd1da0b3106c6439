"""`gpu.preset: custom`: a GPU the catalogue does not list, described in the stack file itself.

The stack gives what a preset would (`displayName`, `vramMb`, `computeCapability`; optionally
`architecture`, `reserveMb`, `overheadMb`); everything else follows from those, and the result is an ordinary
GpuPreset, so the plan checks it exactly as it checks a listed card.
"""

from __future__ import annotations

from infra.model import GpuPreset, GpuSpec, Recommendation

CUSTOM = "custom"
# What every shipped preset reserves for the driver, CUDA context and display.
DEFAULT_RESERVE_MB = 1024
# The per-pod arena most shipped presets recommend: what one Cat Watcher model set is sized to.
DEFAULT_MEMORY_PER_POD_MB = 2304
# A card nobody measured, whose SM count the stack does not say: the catalogue's largest
# per-process overhead (the H200's measured figure; infra/data/gpu_presets.yaml has the sources).
DEFAULT_OVERHEAD_MB = 800

# GpuSpec field, stack-file key, how to find the value.
REQUIRED_KEYS = (
    ("display_name", "displayName", 'the card\'s name, e.g. "NVIDIA GeForce RTX 4070"'),
    ("vram_mb", "vramMb", "MiB, as `nvidia-smi --query-gpu=memory.total --format=csv` prints it"),
    ("compute_capability", "computeCapability", 'e.g. "8.9" (`nvidia-smi --query-gpu=compute_cap --format=csv`)'),
)


def missing_keys(spec: GpuSpec) -> list[tuple[str, str]]:
    """(stack-file key, hint) for each value a custom GPU must give and this spec does not."""
    return [(key, hint) for field, key, hint in REQUIRED_KEYS if getattr(spec, field) is None]


def architecture_of(compute_capability: str) -> str:
    """NVIDIA's architecture name for a compute capability (CUDA programming guide's table)."""
    major, minor = (int(part) for part in compute_capability.split("."))
    if major == 7:
        return "turing" if minor >= 5 else "volta"
    if major == 8:
        return "ada" if minor >= 9 else "ampere"
    return {3: "kepler", 5: "maxwell", 6: "pascal", 9: "hopper", 10: "blackwell", 12: "blackwell"}.get(major, "unknown")


def default_recommendation(vram_mb: int, reserve_mb: int, overhead_mb: int = DEFAULT_OVERHEAD_MB) -> Recommendation:
    """Time-slicing 2-4 ways (the catalogue's advice for consumer cards), arenas of up to
    DEFAULT_MEMORY_PER_POD_MB, each pod's budget (arena + overhead) fitting the card."""
    usable = vram_mb - reserve_mb
    replicas = min(max(usable // (DEFAULT_MEMORY_PER_POD_MB + overhead_mb), 2), 4)
    # A card too small for two pods still gets a positive figure; the plan's fit check refuses it.
    per_pod = max(min(DEFAULT_MEMORY_PER_POD_MB, usable // replicas - overhead_mb), 1)
    return Recommendation.model_validate({"sharing": "time-slicing", "replicas": replicas, "memoryPerPodMb": per_pod})


def custom_preset(spec: GpuSpec) -> GpuPreset:
    """The preset a complete custom spec describes (call `missing_keys` first). No MIG: its
    profiles and PCI ids cannot be derived, and every MIG-capable card has a preset."""
    if spec.compute_capability is None or spec.vram_mb is None:
        raise ValueError(f"custom GPU spec is incomplete: {missing_keys(spec)}")
    reserve = spec.reserve_mb if spec.reserve_mb is not None else DEFAULT_RESERVE_MB
    overhead = spec.overhead_mb if spec.overhead_mb is not None else DEFAULT_OVERHEAD_MB
    return GpuPreset.model_validate(
        {
            # Messages name the device by its key: for a custom GPU that is its name.
            "key": spec.display_name,
            "displayName": spec.display_name,
            "architecture": spec.architecture or architecture_of(spec.compute_capability),
            "vramMb": spec.vram_mb,
            "computeCapability": spec.compute_capability,
            "reserveMb": reserve,
            "overheadMb": overhead,
            "recommended": default_recommendation(spec.vram_mb, reserve, overhead),
        }
    )
