"""The sharing backends: one per mode behind one interface, each checked on its own."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any, get_args

import pytest

from infra import budget
from infra.model import SharingMode
from infra.plan import plan_rollout
from infra.presets import catalogue
from infra.sharing import BACKENDS, backend_for
from infra.sharing.base import BaseBackend, SharingBackend
from infra.stack_config import parse_stack_config
from tests.conftest import with_cluster

ROOT = Path(__file__).resolve().parents[1]
MODES = list(get_args(SharingMode))


def group(gpu: dict):
    if gpu.get("sharing") == "mig":
        config: dict[str, Any] = {"nodeGroups": [{"name": "mig", "nodes": ["gpu-node-1"], "gpu": gpu}]}
    else:
        config = {"gpu": gpu}
    return plan_rollout(parse_stack_config(with_cluster(config)), catalogue()).groups[0]


def test_every_mode_of_the_config_schema_has_exactly_one_backend():
    assert sorted(BACKENDS) == sorted(MODES)
    for mode, backend in BACKENDS.items():
        assert backend.mode == mode
        assert isinstance(backend, BaseBackend)
        # Every method of the interface is implemented (BaseBackend or the backend itself).
        for name, _ in inspect.getmembers(SharingBackend, inspect.isfunction):
            assert callable(getattr(backend, name, None)), (mode, name)


def is_mode_comparison(node: ast.Compare, modes: set[str]) -> bool:
    """`x == "mps"`, `x != "mig"`, `x in ("time-slicing", "mps")`; not `"mig" in fields`."""
    operands = [node.left, *node.comparators]
    for op, right in zip(node.ops, node.comparators, strict=True):
        if isinstance(op, (ast.Eq, ast.NotEq)):
            if any(isinstance(o, ast.Constant) and o.value in modes for o in operands):
                return True
        elif isinstance(op, (ast.In, ast.NotIn)) and isinstance(right, (ast.Tuple, ast.List, ast.Set)):
            if any(isinstance(e, ast.Constant) and e.value in modes for e in right.elts):
                return True
    return False


def test_is_mode_comparison_sees_what_it_must():
    def check(source: str) -> bool:
        node = ast.parse(source, mode="eval").body
        return isinstance(node, ast.Compare) and is_mode_comparison(node, set(MODES))

    assert check('sharing == "mps"') and check('"mig" != x') and check('s in ("time-slicing", "mps")')
    assert not check('"mig" in fields') and not check('x == "other"')


def test_no_module_outside_the_backends_compares_sharing_mode_strings():
    """A new mode is a new module: the planner, program and components ask the backend."""
    modes = set(MODES)
    offenders = []
    for folder in ("infra", "components"):
        for path in (ROOT / folder).rglob("*.py"):
            if "sharing" in path.relative_to(ROOT).parts[:2]:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Compare) and is_mode_comparison(node, modes):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


@pytest.mark.parametrize(
    ("device_mb", "reserve_mb", "overhead_mb", "replicas", "requested", "preferred", "arena", "fits"),
    [
        (12288, 1024, 420, 4, None, 2304, 2304, True),  # the preset's arena fits beside the overhead: kept
        (12288, 1024, 420, 5, None, 2304, 11264 // 5 - 420, True),  # it does not: the largest fit
        (12288, 1024, 420, 5, 3000, 2304, 3000, False),  # asked for: kept, and refused
        (4864, 0, 800, 1, None, None, 4064, True),  # one pod on a MIG instance: all of it but the overhead
    ],
)
def test_per_pod_memory_arithmetic(device_mb, reserve_mb, overhead_mb, replicas, requested, preferred, arena, fits):
    fit = budget.fit(
        "device", device_mb, reserve_mb, overhead_mb, replicas, arena_mb=requested, preferred_arena_mb=preferred
    )
    assert (fit.pod.arena_mb, fit.pod.budget_mb, fit.fits) == (arena, arena + overhead_mb, fits)


def test_every_backend_sizes_memory_with_the_budget():
    for mode, preset in (("none", "rtx-3060"), ("time-slicing", "rtx-3060"), ("mps", "rtx-3060"), ("mig", "a100-40gb")):
        plan = group({"preset": preset, "sharing": mode})
        assert plan.budget_mb == plan.memory_per_pod_mb + plan.gpu.overhead_mb == plan.memory_fit.pod.budget_mb
        assert plan.memory_fit.fits


def test_none_gives_whole_gpus():
    plan = group({"preset": "rtx-3060", "sharing": "none"})
    backend = backend_for("none")
    assert backend.resource_name(plan) == "nvidia.com/gpu"
    assert "sharing" not in backend.device_plugin_config(plan)
    assert backend.shares_devices(plan) is False
    assert backend.pod_resources(plan) == {"nvidia.com/gpu": "1"}


def test_time_slicing_shares_the_gpu_in_its_device_plugin_section():
    plan = group({"preset": "rtx-3060", "sharing": "time-slicing", "replicas": 3})
    backend = backend_for("time-slicing")
    section = backend.device_plugin_config(plan)["sharing"]["timeSlicing"]
    assert section["resources"] == [{"name": "nvidia.com/gpu", "replicas": 3}]
    assert backend.shares_devices(plan)
    assert backend.operator_values([plan]) == {}
    assert backend.node_selector(plan) == {"nvidia.com/gpu.present": "true"}


def test_mps_caps_the_client_memory_and_uses_the_mps_section():
    plan = group({"preset": "rtx-3090", "sharing": "mps", "replicas": 4})
    backend = backend_for("mps")
    assert list(backend.device_plugin_config(plan)["sharing"]) == ["mps"]
    env = {item["name"]: item["value"] for item in backend.pod_env(plan)}
    # A hard cap counts the CUDA context and libraries too: it gets the whole budget.
    assert env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == f"0={plan.budget_mb}M"


def test_mig_accepts_its_strategy_labels_the_layout_and_names_the_profile():
    plan = group(
        {"preset": "a100-40gb", "sharing": "mig", "mig": {"strategy": "mixed", "layout": {"3g.20gb": 1, "1g.5gb": 4}}}
    )
    backend = backend_for("mig")
    assert backend.works_with_mig_strategy("mixed")
    assert not backend_for("mps").works_with_mig_strategy("mixed")
    assert backend.resource_name(plan) == "nvidia.com/mig-1g.5gb"
    assert backend.node_labels(plan)["nvidia.com/mig.config"] == plan.mig.layout_name
    assert plan.slices == 4 and plan.budget_mb == plan.mig.workload_profile.memory_mb - plan.gpu.reserve_mb
    assert plan.memory_per_pod_mb == plan.budget_mb - plan.gpu.overhead_mb
