"""Checks of the project's derived data against NVIDIA's files in ../shared/reference."""

from __future__ import annotations

import yaml

from infra.operator_chart import template_value_refs, value_paths, values_yaml_paths
from infra.presets import catalogue
from tests.upstream_rules import mig_layout_violations


def test_known_value_paths_match_the_chart(reference):
    values = yaml.safe_load((reference / "gpu-operator-values.yaml").read_text())
    assert values_yaml_paths() == frozenset(value_paths(values))


def test_rendered_values_exist_in_the_reference_chart(reference):
    from infra.offline import available_stacks
    from infra.render import helm_releases
    from tests.conftest import ROOT, render_stack

    paths = frozenset(value_paths(yaml.safe_load((reference / "gpu-operator-values.yaml").read_text())))
    # The chart also passes on what its ClusterPolicy template reads (validator.cuda.env).
    paths |= template_value_refs((reference / "gpu-operator-v26.7.0" / "chart-template-clusterpolicy.yaml").read_text())
    for stack in available_stacks(ROOT):
        for release in helm_releases(render_stack(stack)).values():
            if release["chart"] == "gpu-operator":
                assert set(value_paths(release["values"])) <= paths, stack


def fits(preset, devices: dict[str, int]) -> bool:
    profiles = preset.mig.profiles
    compute = sum(profiles[p].compute_slices * n for p, n in devices.items())
    memory = sum(profiles[p].memory_slices * n for p, n in devices.items())
    return (
        compute <= preset.mig.compute_slices
        and memory <= preset.mig.memory_slices
        and all(n <= profiles[p].max_count for p, n in devices.items())
    )


def test_reference_mig_layouts_fit_our_presets(reference):
    """Each layout NVIDIA ships whose profiles we model fits at least one preset having them:
    our slice geometry and instance limits agree with NVIDIA's valid combinations."""
    configmap = yaml.safe_load((reference / "mig-manager-default-configmap.yaml").read_text())
    document = yaml.safe_load(configmap["data"]["config.yaml"])
    assert mig_layout_violations(document) == []
    presets = [p for p in catalogue().values() if p.mig]
    checked = []
    for name, entries in document["mig-configs"].items():
        for entry in entries:
            devices = entry.get("mig-devices") or {}
            device_filter = entry.get("device-filter")
            if device_filter is not None:
                ids = {device_filter} if isinstance(device_filter, str) else set(device_filter)
                candidates = [p for p in presets if devices and ids & set(p.mig.pci_device_ids)]
                for preset in candidates:
                    assert set(devices) <= set(preset.mig.profiles) or any("+" in d for d in devices), (
                        name,
                        preset.key,
                    )
                candidates = [p for p in candidates if set(devices) <= set(p.mig.profiles)]
            else:
                candidates = [p for p in presets if devices and set(devices) <= set(p.mig.profiles)]
            if candidates:
                assert any(fits(p, devices) for p in candidates), (name, devices)
                checked.append(name)
    assert len(set(checked)) >= 15


def test_reference_has_every_single_profile_layout_we_recommend(reference):
    configmap = yaml.safe_load((reference / "mig-manager-default-configmap.yaml").read_text())
    document = yaml.safe_load(configmap["data"]["config.yaml"])
    shipped = [entry.get("mig-devices") for entries in document["mig-configs"].values() for entry in entries]
    for preset in catalogue().values():
        if preset.mig:
            assert dict(preset.mig.recommended_layout) in shipped, preset.key
