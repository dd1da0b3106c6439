"""The GPU preset catalogue, loaded from infra/data/gpu_presets.yaml."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

from infra.model import GpuPreset
from infra.sharing import backend_for

PRESETS_FILE = "gpu_presets.yaml"


def _expand_mig(mig: dict[str, Any]) -> dict[str, Any]:
    """Profiles are written compactly as [compute, memory, max count, MiB] rows."""
    profiles = {
        name: {
            "name": name,
            "computeSlices": compute,
            "memorySlices": memory,
            "maxCount": max_count,
            "memoryMb": memory_mb,
        }
        for name, (compute, memory, max_count, memory_mb) in mig["profiles"].items()
    }
    return {**mig, "profiles": profiles}


def parse_catalogue(raw: dict[str, dict[str, Any]]) -> dict[str, GpuPreset]:
    catalogue = {}
    for key, fields in raw.items():
        fields = dict(fields)
        if "mig" in fields:
            fields["mig"] = _expand_mig(fields["mig"])
        catalogue[key] = GpuPreset.model_validate({"key": key, **fields})
    return catalogue


@cache
def catalogue() -> dict[str, GpuPreset]:
    text = resources.files("infra.data").joinpath(PRESETS_FILE).read_text()
    return parse_catalogue(yaml.safe_load(text))


def markdown_table(presets: dict[str, GpuPreset] | None = None) -> str:
    """The README's preset table, generated from the catalogue (a test keeps them in sync)."""
    rows = [
        "| preset | GPU | VRAM (MiB) | compute capability | MPS | MIG profiles | overhead per pod (MiB) | recommended sharing |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, preset in (presets or catalogue()).items():
        advice = backend_for(preset.recommended.sharing).describe_recommendation(preset)
        if preset.recommended.note:
            advice += f" ({preset.recommended.note})"
        mig = ", ".join(preset.mig.profiles) if preset.mig else "-"
        mps = "yes" if preset.mps_capable else "no"
        rows.append(
            f"| `{key}` | {preset.display_name} | {preset.vram_mb} | {preset.compute_capability} | {mps} | {mig} "
            f"| {preset.overhead_mb} | {advice} |"
        )
    return "\n".join(rows) + "\n"
