"""The upstream format rules of ../shared/reference/README.md, as checks that list violations.

Derived from NVIDIA's k8s-device-plugin (api/config/v1, v0.20.0) and mig-parted `version: v1`,
so the tests can check generated configs without the reference folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

DEVICE_PLUGIN_TOP_LEVEL = {"version", "flags", "resources", "sharing", "imex"}
MIG_STRATEGIES = {"none", "single", "mixed"}
SHARING_KEYS = {"renameByDefault", "failRequestsGreaterThanOne", "resources"}
SHARED_RESOURCE_KEYS = {"name", "replicas", "devices", "rename"}
RESOURCE_NAME = re.compile(r"^nvidia\.com/(gpu|mig-\d+g\.\d+gb)$")
MPS_MAX_REPLICAS = 48


def device_plugin_violations(config: Mapping[str, Any]) -> list[str]:
    problems = []
    if config.get("version") != "v1":
        problems.append("version must be v1")
    if extra := set(config) - DEVICE_PLUGIN_TOP_LEVEL:
        problems.append(f"unknown top-level keys {sorted(extra)} (silently ignored upstream)")
    flags = config.get("flags", {})
    strategy = flags.get("migStrategy", "none")
    if strategy not in MIG_STRATEGIES:
        problems.append(f"flags.migStrategy {strategy!r} not in {sorted(MIG_STRATEGIES)}")
    for misplaced in ("renameByDefault", "failRequestsGreaterThanOne", "replicas", "memoryGB"):
        if misplaced in flags:
            problems.append(f"flags.{misplaced} is misplaced and ignored")
    sharing = config.get("sharing")
    if sharing is None:
        return problems
    modes = set(sharing) & {"timeSlicing", "mps"}
    if extra := set(sharing) - {"timeSlicing", "mps"}:
        problems.append(f"unknown sharing keys {sorted(extra)}")
    if len(modes) != 1:
        problems.append(f"sharing needs exactly one of timeSlicing, mps; got {sorted(modes)}")
    for mode in modes:
        block = sharing[mode]
        if extra := set(block) - SHARING_KEYS:
            problems.append(f"sharing.{mode}: unknown keys {sorted(extra)}")
        for flag in ("renameByDefault", "failRequestsGreaterThanOne"):
            if flag in block and not isinstance(block[flag], bool):
                problems.append(f"sharing.{mode}.{flag} must be a bool")
        resources = block.get("resources")
        if not isinstance(resources, list) or not resources:
            problems.append(f"sharing.{mode}.resources must be a non-empty list")
            continue
        for index, resource in enumerate(resources):
            where = f"sharing.{mode}.resources[{index}]"
            if extra := set(resource) - SHARED_RESOURCE_KEYS:
                problems.append(f"{where}: unknown keys {sorted(extra)} (memoryGB does not exist upstream)")
            replicas = resource.get("replicas")
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 2:
                problems.append(f"{where}.replicas must be an integer >= 2, got {replicas!r}")
            name = resource.get("name", "")
            if not RESOURCE_NAME.match(name):
                problems.append(f"{where}.name {name!r} is not a GPU resource name")
            if resource.get("devices", "all") != "all":
                problems.append(f"{where}.devices other than all is ignored upstream")
            if mode == "mps":
                if name != "nvidia.com/gpu":
                    problems.append(f"{where}: MPS accepts only nvidia.com/gpu (full GPUs)")
                if isinstance(replicas, int) and replicas > MPS_MAX_REPLICAS:
                    problems.append(f"{where}: MPS replicas capped at {MPS_MAX_REPLICAS}")
            if name.startswith("nvidia.com/mig-") and strategy != "mixed":
                problems.append(f"{where}: MIG resource names need migStrategy mixed")
    if "mps" in modes and strategy == "mixed":
        problems.append("MPS is rejected with migStrategy mixed")
    return problems


def mig_layout_violations(document: Mapping[str, Any], profiles: Mapping[str, Any] | None = None) -> list[str]:
    """mig-parted `version: v1`; `profiles` (name -> MigProfile) also checks fit on one GPU."""
    problems = []
    if document.get("version") != "v1":
        problems.append("version must be v1")
    if extra := set(document) - {"version", "mig-configs"}:
        problems.append(f"unknown top-level keys {sorted(extra)}")
    for name, entries in (document.get("mig-configs") or {}).items():
        if not isinstance(entries, list) or not entries:
            problems.append(f"{name}: must be a non-empty list")
            continue
        for index, entry in enumerate(entries):
            where = f"{name}[{index}]"
            if extra := set(entry) - {"device-filter", "devices", "mig-enabled", "mig-devices"}:
                problems.append(f"{where}: unknown keys {sorted(extra)}")
            devices = entry.get("devices")
            if devices != "all" and not (isinstance(devices, list) and all(isinstance(d, int) for d in devices)):
                problems.append(f"{where}.devices must be all or a list of indices")
            if not isinstance(entry.get("mig-enabled"), bool):
                problems.append(f"{where}.mig-enabled must be a bool")
            mig_devices = entry.get("mig-devices") or {}
            if entry.get("mig-enabled") is False and mig_devices:
                problems.append(f"{where}: mig-devices must be empty when mig-enabled is false")
            if profiles is not None and mig_devices:
                for profile in mig_devices:
                    if profile not in profiles:
                        problems.append(f"{where}: profile {profile} does not exist on this GPU")
    return problems
