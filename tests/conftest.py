"""Shared fixtures: run the real program under Pulumi's mock engine, once per stack."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from infra.offline import Recording, available_stacks, run_program
from infra.render import helm_releases, manifests

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"
STACKS = available_stacks(ROOT)


@cache
def render_stack(stack: str) -> Recording:
    return run_program(ROOT, stack)


TEST_KUBE_CONTEXT = "test-cluster"


def with_cluster(config: Mapping[str, Any]) -> dict[str, Any]:
    """Every stack must name its cluster; tests about something else get a placeholder context
    (a config that sets `cluster.kubeContext` itself, or a non-mapping `cluster`, is left alone)."""
    cluster = config.get("cluster", {})
    if isinstance(cluster, dict) and "kubeContext" not in cluster:
        return {**config, "cluster": {"kubeContext": TEST_KUBE_CONTEXT, **cluster}}
    return dict(config)


def render_config(config: Mapping[str, Any], stack: str = "test", secret_keys: tuple[str, ...] = ()) -> Recording:
    """Run the program on an in-memory config: `{"gpu": {...}}` -> `catwatcher:gpu` JSON.
    `secret_keys` names top-level keys the engine would treat as secret (e.g. "credentials").
    A config without `cluster.kubeContext` gets a placeholder one (with_cluster)."""
    flat = {f"catwatcher:{key}": json.dumps(value) for key, value in with_cluster(config).items()}
    return run_program(ROOT, stack, config=flat, secret_keys=[f"catwatcher:{key}" for key in secret_keys])


def objects(recording: Recording, kind: str | None = None) -> list[dict[str, Any]]:
    return [m for m in manifests(recording) if kind is None or m["kind"] == kind]


def one(recording: Recording, kind: str, name: str | None = None) -> dict[str, Any]:
    found = [m for m in objects(recording, kind) if name is None or m["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def operator_values(recording: Recording) -> dict[str, Any]:
    return helm_releases(recording)["gpu-operator"]["values"]


@pytest.fixture(scope="session")
def reference() -> Path:
    """../shared/reference: upstream ground truth, present in CI, absent in a user's clone."""
    if not REFERENCE.is_dir():
        pytest.skip("../shared/reference is not beside the project")
    return REFERENCE


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def rendered(stack: str) -> Recording:
    return render_stack(stack)


RenderConfig = Callable[[Mapping[str, Any]], Recording]
