"""The GPU preset catalogue, loaded from infra/data/gpu_presets.yaml."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

from infra.custom_gpu import CUSTOM, DEFAULT_OVERHEAD_MB, DEFAULT_RESERVE_MB, REQUIRED_KEYS
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
        "| preset | GPU | VRAM (MiB) | compute capability | MPS | "
        "MIG profiles | overhead per pod (MiB) | recommended sharing |",
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


def catalogue_document(presets: dict[str, GpuPreset] | None = None) -> dict[str, Any]:
    """Every preset with every value it sets (as a stack file spells the keys), plus what the
    plan derives from them (MPS client cap, MIG), and what `preset: custom` needs."""
    listed = {
        key: {
            **preset.model_dump(mode="json", by_alias=True, exclude={"key"}, exclude_none=True),
            "mpsCapable": preset.mps_capable,
            "mpsMaxClients": preset.mps_max_replicas if preset.mps_capable else 0,
            "migCapable": preset.mig_capable,
        }
        for key, preset in (presets or catalogue()).items()
    }
    custom = {
        "required": [key for _, key, _ in REQUIRED_KEYS],
        "optional": ["architecture", "reserveMb", "overheadMb"],
        "defaults": {
            "reserveMb": DEFAULT_RESERVE_MB,
            "overheadMb": DEFAULT_OVERHEAD_MB,
            "architecture": "from computeCapability",
        },
        "migCapable": False,
    }
    return {"presets": listed, CUSTOM: custom}


def catalogue_text(presets: dict[str, GpuPreset] | None = None) -> str:
    """The catalogue as an aligned table, with how to override a value or describe another GPU."""
    header = (
        "preset",
        "GPU",
        "VRAM MiB",
        "reserve MiB",
        "overhead MiB",
        "compute",
        "arch",
        "MPS clients",
        "MIG profiles",
        "recommended",
    )
    rows = [header]
    for key, preset in (presets or catalogue()).items():
        rows.append(
            (
                key,
                preset.display_name,
                str(preset.vram_mb),
                str(preset.reserve_mb),
                str(preset.overhead_mb),
                preset.compute_capability,
                preset.architecture,
                str(preset.mps_max_replicas) if preset.mps_capable else "no MPS",
                " ".join(preset.mig.profiles) if preset.mig else "-",
                backend_for(preset.recommended.sharing).describe_recommendation(preset),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in rows
    ]
    lines += [
        "",
        "Every value may be overridden under catwatcher:gpu (vramMb, reserveMb, overheadMb, computeCapability,",
        "sharing, replicas, memoryPerPodMb): start from the nearest preset and override what differs.",
        "A pod's budget is its arena (memoryPerPodMb) + overhead (CUDA context, libraries); `catwatcher-infra plan`",
        "shows how many fit in each mode.",
        f"A GPU not listed: preset: {CUSTOM} with displayName, vramMb and computeCapability (optional: architecture,",
        f"reserveMb, default {DEFAULT_RESERVE_MB}, overheadMb, default {DEFAULT_OVERHEAD_MB}); MPS follows from",
        "computeCapability, no MIG.",
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"
