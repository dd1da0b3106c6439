"""The budget end to end: what validation checked is what every rendered pod and its service get."""

from __future__ import annotations

import os

import pytest

from inference import contract
from inference.engine import ARENA_SHARES_WITH_IDENTIFIER
from inference.runtime import cuda_provider_options
from inference.settings import load_settings
from infra.errors import ConfigError
from infra.offline import load_stack_config
from infra.plan import plan_rollout
from infra.presets import catalogue
from infra.stack_config import decode_config, parse_stack_config
from tests.conftest import ROOT, objects, render_config, render_stack, with_cluster

MIB = 1024 * 1024


def stack_plan(stack: str):
    flat, secret_keys = load_stack_config(ROOT, stack)
    values = decode_config(flat)
    values.pop("credentials", None)  # secrets play no part in the memory plan
    return plan_rollout(parse_stack_config(values, secret_keys), catalogue())


def pod_env(deployment: dict) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def service_arena_bytes(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> int:
    """What the service started with this env gives its two sessions' arenas together."""
    for name in list(os.environ):
        if name.startswith(contract.ENV_PREFIX) or name == "CUDA_MODULE_LOADING":
            monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith(contract.ENV_PREFIX):
            monkeypatch.setenv(name, value)
    settings = load_settings().inference
    return sum(
        int(cuda_provider_options(settings, share)["gpu_mem_limit"]) for share in ARENA_SHARES_WITH_IDENTIFIER.values()
    )


def test_every_shipped_stacks_pods_get_the_budget_the_fit_check_used(stack, monkeypatch):
    plan = stack_plan(stack)
    deployments = {
        d["spec"]["template"]["metadata"]["labels"]["catwatcher.io/node-group"]: d
        for d in objects(render_stack(stack), "Deployment")
    }
    assert set(deployments) == {group.name for group in plan.groups}
    for group in plan.groups:
        env = pod_env(deployments[group.name])
        fit = group.memory_fit
        limit = int(env[contract.GPU_MEMORY_LIMIT_ENV])
        overhead = int(env[contract.GPU_MEMORY_OVERHEAD_ENV])
        # The preset's overhead (a stack may override it) is what the pod is told ONNX Runtime
        # cannot see, and arena + overhead is the budget the fit check counted.
        assert overhead == group.gpu.overhead_mb == fit.pod.overhead_mb
        assert limit == fit.pod.budget_mb == group.memory_per_pod_mb + overhead
        # The service's arenas add up to the budget minus the overhead (to within rounding).
        assert service_arena_bytes(monkeypatch, env) == pytest.approx((limit - overhead) * MIB, abs=2)
        # The sum fits the device: the GPU, or the MIG instance the pods share.
        device_mb = group.mig.workload_profile.memory_mb if group.mig else group.gpu.vram_mb
        assert group.replicas_per_device * limit + group.gpu.reserve_mb <= device_mb
        assert fit.pods == group.replicas_per_device and fit.device_mb == device_mb and fit.fits
        if group.sharing == "mps":
            assert env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == f"0={limit}M"
        else:
            assert "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT" not in env


@pytest.mark.parametrize(
    ("gpu", "arena"),
    [
        ({"preset": "rtx-3060", "sharing": "time-slicing"}, 2304),
        ({"preset": "rtx-3060", "sharing": "mps"}, 2304),
        ({"preset": "rtx-3060", "sharing": "none"}, 12288 - 1024 - 420),
        ({"preset": "rtx-3060", "sharing": "time-slicing", "replicas": 5}, (12288 - 1024) // 5 - 420),
        ({"preset": "rtx-3060", "sharing": "mps", "overheadMb": 300, "memoryPerPodMb": 2400}, 2400),
    ],
)
def test_the_service_computes_each_modes_arena_from_the_pod_env(monkeypatch, gpu, arena):
    (deployment,) = objects(render_config({"gpu": gpu}), "Deployment")
    env = pod_env(deployment)
    overhead = gpu.get("overheadMb", 420)
    assert int(env[contract.GPU_MEMORY_OVERHEAD_ENV]) == overhead
    assert int(env[contract.GPU_MEMORY_LIMIT_ENV]) == arena + overhead
    assert service_arena_bytes(monkeypatch, env) == pytest.approx(arena * MIB, abs=2)


def test_a_mig_pods_arena_is_its_instance_after_reserve_and_overhead(monkeypatch):
    (deployment,) = objects(render_stack("a100-mig"), "Deployment")
    env = pod_env(deployment)
    assert (env[contract.GPU_MEMORY_LIMIT_ENV], env[contract.GPU_MEMORY_OVERHEAD_ENV]) == (str(4864 - 1024), "800")
    assert service_arena_bytes(monkeypatch, env) == pytest.approx((4864 - 1024 - 800) * MIB, abs=2)


def plan_error(gpu: dict) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        plan_rollout(parse_stack_config(with_cluster({"gpu": gpu})), catalogue())
    return caught.value


def test_validation_quotes_the_budget_arithmetic():
    error = plan_error({"preset": "rtx-3060", "replicas": 4, "memoryPerPodMb": 2560})
    summary = (
        "4 pods x (2560 arena + 420 overhead) + 1024 reserve = 12944 MiB > 12288 MiB of the rtx-3060 "
        "(you set memoryPerPodMb, replicas)"
    )
    assert error.problems == [
        ("catwatcher:gpu.memoryPerPodMb", f"{summary}; at most 2396 MiB arena per pod"),
        ("catwatcher:gpu.replicas", f"{summary}; at most 3 pods per device"),
    ]


def test_an_overhead_override_counts_in_the_fit_check():
    fits = plan_rollout(
        parse_stack_config(with_cluster({"gpu": {"preset": "rtx-3060", "memoryPerPodMb": 2560, "overheadMb": 250}})),
        catalogue(),
    )
    assert fits.groups[0].memory_fit.used_mb == 4 * (2560 + 250) + 1024
    error = plan_error({"preset": "rtx-3060", "memoryPerPodMb": 2304, "overheadMb": 600})
    assert "4 pods x (2304 arena + 600 overhead)" in str(error)
    assert plan_error({"preset": "rtx-3060", "overheadMb": -1}).keys == ["catwatcher:gpu.overheadMb"]


def test_a_mig_instance_too_small_for_its_time_slices_names_the_replicas():
    gpu = {"preset": "a100-40gb", "sharing": "mig", "mig": {"timeSlicingReplicas": 8}}
    with pytest.raises(ConfigError) as caught:
        plan_rollout(
            parse_stack_config(with_cluster({"nodeGroups": [{"name": "a100", "nodes": ["n1"], "gpu": gpu}]})),
            catalogue(),
        )
    ((key, message),) = caught.value.problems
    assert key == "catwatcher:nodeGroups[0].gpu.mig.timeSlicingReplicas"
    assert message.startswith(
        "8 pods x 800 overhead + 1024 reserve = 7424 MiB > 4864 MiB of the MIG instance 1g.5gb, leaving no arena"
    )
    assert message.endswith("at most 4 pods per device")


def test_the_planner_and_validation_agree_on_the_last_pod_that_fits():
    from infra.planner import plan_modes

    gpu = catalogue()["rtx-3060"]
    for row in plan_modes(gpu, 1024):
        if row.mode in ("time-slicing", "mps"):
            config = {"preset": "rtx-3060", "sharing": row.mode, "replicas": row.pods, "memoryPerPodMb": 1024}
            group = plan_rollout(parse_stack_config(with_cluster({"gpu": config})), catalogue()).groups[0]
            assert group.memory_fit == row.fit
            assert set(plan_error({**config, "replicas": row.pods + 1}).keys) == {
                "catwatcher:gpu.memoryPerPodMb",
                "catwatcher:gpu.replicas",
            }
