"""Stack config validation: good configs plan, bad ones are refused naming the key."""

from __future__ import annotations

import pytest

from infra.errors import ConfigError
from infra.plan import plan_rollout
from infra.presets import catalogue
from infra.stack_config import decode_config, parse_stack_config
from tests.conftest import with_cluster


def plan(config: dict):
    return plan_rollout(parse_stack_config(with_cluster(config)), catalogue())


def refused(config: dict) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        plan(config)
    return caught.value


@pytest.mark.parametrize(
    ("preset", "sharing", "replicas", "memory"),
    [
        # The brief's pod counts; arenas lowered where a pod's overhead no longer left room.
        ("gtx-1070", "time-slicing", 2, 3072),
        ("gtx-1660", "time-slicing", 2, 2048),
        ("rtx-3060", "time-slicing", 4, 2304),
        ("rtx-3090", "mps", 8, 2304),
        ("rtx-4090", "mps", 8, 2048),
    ],
)
def test_presets_carry_the_briefs_recommendations(preset, sharing, replicas, memory):
    # installDriver: false: Pascal needs an R580 driver, tested in tests/test_operator_contract.py.
    group = plan({"gpu": {"preset": preset}, "operator": {"installDriver": False}}).groups[0]
    assert (group.sharing, group.replicas_per_device, group.memory_per_pod_mb) == (sharing, replicas, memory)
    assert (
        group.replicas_per_device * (group.memory_per_pod_mb + group.gpu.overhead_mb) + group.gpu.reserve_mb
        <= group.gpu.vram_mb
    )


def test_stack_overrides_any_preset_value():
    group = plan(
        {
            "gpu": {
                "preset": "rtx-3060",
                "vramMb": 16384,
                "reserveMb": 512,
                "overheadMb": 400,
                "replicas": 5,
                "memoryPerPodMb": 2700,
            }
        }
    ).groups[0]
    assert (
        group.gpu.vram_mb,
        group.gpu.reserve_mb,
        group.gpu.overhead_mb,
        group.replicas_per_device,
        group.memory_per_pod_mb,
    ) == (16384, 512, 400, 5, 2700)


def test_replicas_override_keeps_the_presets_memory_while_it_fits():
    assert plan({"gpu": {"preset": "rtx-3060", "replicas": 3}}).groups[0].memory_per_pod_mb == 2304
    assert plan({"gpu": {"preset": "rtx-3060", "replicas": 5}}).groups[0].memory_per_pod_mb == (12288 - 1024) // 5 - 420


def test_inference_replicas_default_to_one_pod_per_slice():
    assert plan({"gpu": {"preset": "rtx-3060", "count": 2}}).groups[0].inference_replicas == 8


@pytest.mark.parametrize(
    ("config", "key", "fragment"),
    [
        ({"gpu": {"preset": "rtx-3060", "replicas": 1}}, "catwatcher:gpu.replicas", ">= 2"),
        (
            {"gpu": {"preset": "rtx-3060", "memoryPerPodMb": 4000}},
            "catwatcher:gpu.memoryPerPodMb",
            "at most 2396 MiB arena per pod",
        ),
        ({"gpu": {"preset": "rtx-3060"}, "app": {"replicas": 5}}, "catwatcher:app.replicas", "at most 4"),
        ({"gpu": {"preset": "rtx-3060", "replicsa": 4}}, "catwatcher:gpu.replicsa", "valid keys here"),
        ({"gpu": {"preset": "rtx-3070"}}, "catwatcher:gpu.preset", "rtx-3060"),
        ({"gpu": {"preset": "rtx-3060", "sharing": "slicing"}}, "catwatcher:gpu.sharing", "time-slicing"),
        ({"gpu": {"preset": "rtx-3060", "replicas": "four"}}, "catwatcher:gpu.replicas", "integer"),
        ({"gpu": {"preset": "rtx-3060"}, "monitorin": {}}, "catwatcher:monitorin", "valid keys here"),
        (
            {"gpu": {"preset": "rtx-3060"}, "app": {"image": "jeefy/cat-watcher:latest"}},
            "catwatcher:app.image",
            "pinned",
        ),
        ({"gpu": {"preset": "rtx-3060"}, "app": {"image": "jeefy/cat-watcher"}}, "catwatcher:app.image", "pinned"),
        ({}, "catwatcher:gpu", "missing"),
        ({"gpu": {"preset": "rtx-3060", "memoryPerPodMb": -5}}, "catwatcher:gpu.memoryPerPodMb", "must be > 0"),
        (
            {"gpu": {"preset": "rtx-3060"}, "operator": {"chartVersion": "26.7.0"}},
            "catwatcher:operator.chartVersion",
            "not a chart version",
        ),
    ],
)
def test_bad_config_is_refused_naming_its_key(config, key, fragment):
    error = refused(config)
    assert key in error.keys, str(error)
    assert fragment in str(error)
    assert all(line.startswith("catwatcher:") for line in str(error).splitlines())


def test_every_problem_is_reported_at_once():
    error = refused({"gpu": {"preset": "rtx-3060", "replicas": 1}, "app": {"image": "x:latest"}})
    assert {"catwatcher:gpu.replicas", "catwatcher:app.image"} <= set(error.keys)


def test_decode_config_reads_engine_values():
    flat = {"catwatcher:gpu": '{"preset": "rtx-3060"}', "catwatcher:plain": "text", "other:key": "1"}
    assert decode_config(flat) == {"gpu": {"preset": "rtx-3060"}, "plain": "text"}


@pytest.mark.parametrize(
    ("text", "value"), [("500m", 0.5), ("2", 2), ("1Gi", 2**30), ("1024Mi", 2**30), ("1.5Ki", 1536)]
)
def test_quantities_compare_as_kubernetes_reads_them(text, value):
    from infra.plan import quantity

    assert quantity(text) == value
