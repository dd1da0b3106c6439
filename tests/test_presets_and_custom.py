"""`catwatcher-infra presets` and `gpu.preset: custom` (a GPU the catalogue does not list)."""

from __future__ import annotations

import json

import pytest

from infra.custom_gpu import architecture_of, default_recommendation
from infra.errors import ConfigError
from infra.plan import plan_rollout
from infra.presets import catalogue
from infra.stack_config import parse_stack_config
from tests.conftest import ROOT, one, render_config, render_stack, with_cluster
from tests.newcomer import cli

RTX_4070 = {"preset": "custom", "displayName": "NVIDIA GeForce RTX 4070", "vramMb": 12282, "computeCapability": "8.9"}


def plan(gpu: dict):
    return plan_rollout(parse_stack_config(with_cluster({"gpu": gpu})), catalogue())


def problems(gpu: dict) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        plan(gpu)
    return dict(caught.value.problems)


# --- the presets command -------------------------------------------------------------------------


def test_presets_text_shows_every_value_each_preset_sets(tmp_path):
    # Works outside the project: the catalogue ships with the package.
    result = cli("presets", project=ROOT, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    header = rows["preset"]
    assert "reserve MiB" in header and "VRAM MiB" in header and "recommended" in header
    for key, preset in catalogue().items():
        row = rows[key]
        cells = row.split()
        assert preset.display_name in row
        assert str(preset.vram_mb) in cells and str(preset.reserve_mb) in cells and preset.compute_capability in cells
        assert preset.recommended.sharing in row
        assert ("no MPS" in row) == (not preset.mps_capable)
    assert "preset: custom" in result.stdout and "displayName, vramMb and computeCapability" in result.stdout


def test_presets_json_carries_the_catalogue_values_and_what_follows_from_them():
    result = cli("presets", "--format", "json", project=ROOT)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert list(document["presets"]) == list(catalogue())
    for key, preset in catalogue().items():
        listed = document["presets"][key]
        assert listed["vramMb"] == preset.vram_mb and listed["reserveMb"] == preset.reserve_mb
        assert listed["computeCapability"] == preset.compute_capability
        assert listed["recommended"]["memoryPerPodMb"] == preset.recommended.memory_per_pod_mb
        assert listed["mpsMaxClients"] == (preset.mps_max_replicas if preset.mps_capable else 0)
        assert listed["migCapable"] == (preset.mig is not None)
        if preset.mig:
            assert set(listed["mig"]["profiles"]) == set(preset.mig.profiles)
    assert document["custom"]["required"] == ["displayName", "vramMb", "computeCapability"]
    assert document["custom"]["defaults"]["reserveMb"] == 1024


def test_custom_is_not_a_catalogue_key():
    assert "custom" not in catalogue()


# --- custom GPUs -------------------------------------------------------------------------------------


def test_a_custom_gpu_is_planned_like_a_preset():
    (group,) = plan({**RTX_4070, "sharing": "mps", "replicas": 4}).groups
    assert (group.gpu.vram_mb, group.gpu.compute_capability, group.gpu.reserve_mb) == (12282, "8.9", 1024)
    assert group.gpu.architecture == "ada" and group.gpu.mps_max_replicas == 48
    # 4 x (2014 arena + 800 overhead, the unmeasured-card default) + 1024 reserve <= 12282 MiB
    assert (group.sharing, group.replicas_per_device, group.memory_per_pod_mb, group.overhead_mb) == (
        "mps",
        4,
        2014,
        800,
    )


def test_a_custom_gpu_without_sharing_gets_the_consumer_card_default():
    (group,) = plan(dict(RTX_4070)).groups
    assert (group.sharing, group.replicas_per_device, group.memory_per_pod_mb) == ("time-slicing", 3, 2304)


def test_custom_names_each_missing_description_key():
    said = problems({"preset": "custom", "sharing": "time-slicing"})
    assert set(said) == {"catwatcher:gpu.displayName", "catwatcher:gpu.vramMb", "catwatcher:gpu.computeCapability"}
    assert all(message.startswith("required with preset: custom") for message in said.values())


@pytest.mark.parametrize(
    ("overrides", "key", "fragment"),
    [
        (
            {"computeCapability": "6.1", "sharing": "mps"},
            "catwatcher:gpu.sharing",
            "mps needs compute capability >= 7.0",
        ),
        ({"sharing": "mig"}, "catwatcher:gpu.sharing", "does not support MIG"),
        (
            {"replicas": 4, "memoryPerPodMb": 3000},
            "catwatcher:gpu.memoryPerPodMb",
            "> 12282 MiB of the NVIDIA GeForce RTX 4070",
        ),
        ({"sharing": "mps", "replicas": 49}, "catwatcher:gpu.replicas", "at most 48 clients"),
        ({"vramMb": 0}, "catwatcher:gpu.vramMb", "must be > 0"),
    ],
)
def test_custom_gpus_get_the_same_checks_as_presets(overrides, key, fragment):
    said = problems({**RTX_4070, **overrides})
    assert fragment in said[key], said


def test_an_unknown_preset_mentions_custom():
    assert "or custom for an unlisted GPU" in problems({"preset": "rtx-4070"})["catwatcher:gpu.preset"]


def test_custom_in_node_groups_with_a_listed_preset_beside_it():
    config = {
        "nodeGroups": [
            {"name": "old", "nodes": ["box-a"], "gpu": {"preset": "gtx-1070"}},
            {"name": "new", "nodes": ["box-b"], "gpu": {**RTX_4070, "reserveMb": 512, "replicas": 2}},
        ],
        # Pascal needs an R580 driver: the host brings its own here.
        "operator": {"installDriver": False},
    }
    groups = {g.name: g for g in plan_rollout(parse_stack_config(with_cluster(config)), catalogue()).groups}
    assert groups["new"].gpu.reserve_mb == 512 and groups["new"].replicas_per_device == 2


def test_the_shipped_custom_stack_renders_four_time_sliced_slices():
    recording = render_stack("homelab-4070-custom")
    sharing = one(recording, "ConfigMap", "cat-watcher-sharing-config")
    assert "replicas: 4" in next(iter(sharing["data"].values()))
    deployment = one(recording, "Deployment")
    assert deployment["spec"]["replicas"] == 4
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["CAT_WATCHER__INFERENCE__GPU_MEMORY_LIMIT"] == str(2014 + 800)  # the budget: arena + overhead


def test_a_pascal_custom_gpu_gets_the_cuda12_image_like_the_pascal_preset():
    custom = render_config(
        {
            "gpu": {
                "preset": "custom",
                "displayName": "Quadro P4000",
                "vramMb": 8192,
                "computeCapability": "6.1",
                "replicas": 2,
            },
            "operator": {"installDriver": False},
        }
    )
    listed = render_config({"gpu": {"preset": "gtx-1070", "replicas": 2}, "operator": {"installDriver": False}})
    image = lambda recording: one(recording, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]  # noqa: E731
    assert image(custom) == image(listed) and image(custom).endswith("-cuda12")


@pytest.mark.parametrize(
    ("capability", "architecture"),
    [
        ("6.1", "pascal"),
        ("7.0", "volta"),
        ("7.5", "turing"),
        ("8.6", "ampere"),
        ("8.9", "ada"),
        ("9.0", "hopper"),
        ("12.0", "blackwell"),
    ],
)
def test_architecture_follows_from_compute_capability_as_in_the_catalogue(capability, architecture):
    assert architecture_of(capability) == architecture
    for preset in catalogue().values():
        if preset.compute_capability == capability:
            assert preset.architecture == architecture


@pytest.mark.parametrize(("vram", "replicas", "per_pod"), [(12282, 3, 2304), (6144, 2, 1760), (4096, 2, 736)])
def test_default_recommendation_fits_the_card(vram, replicas, per_pod):
    recommended = default_recommendation(vram, 1024)
    assert (recommended.sharing, recommended.replicas, recommended.memory_per_pod_mb) == (
        "time-slicing",
        replicas,
        per_pod,
    )
    assert recommended.replicas * (recommended.memory_per_pod_mb + 800) + 1024 <= vram


def test_nearest_preset_plus_overrides_describes_an_unlisted_card():
    # An RTX A2000 12 GB from the RTX 3060 preset (same compute capability), as the guide shows.
    (group,) = plan(
        {
            "preset": "rtx-3060",
            "displayName": "NVIDIA RTX A2000 12GB",
            "vramMb": 12282,
            "sharing": "time-slicing",
            "replicas": 4,
        }
    ).groups
    assert (group.gpu.display_name, group.gpu.vram_mb, group.gpu.compute_capability) == (
        "NVIDIA RTX A2000 12GB",
        12282,
        "8.6",
    )
    assert (group.replicas_per_device, group.memory_per_pod_mb) == (4, 2304)
