"""The worst-case memory arithmetic (inference/memory_budget.py) against the pod's limit."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from inference.cli import report_memory_budget
from inference.memory_budget import (
    BASELINE_BYTES,
    DETECTOR_INPUT_BYTES,
    MAX_SHARE_OF_POD_LIMIT,
    MiB,
    cgroup_memory_limit,
    quantity_bytes,
    worst_case,
)
from inference.settings import InferenceSettings, ServerSettings, Settings
from infra.model import ResourceSpec


def test_default_worst_case_fits_the_pods_memory_limit_with_room_to_spare() -> None:
    budget = worst_case(Settings())
    # 32 admitted bodies of up to 10 MiB, each possibly twice; 2 decodes of up to 256 MiB each.
    assert budget.bodies == 32 * 10 * MiB * 2
    assert budget.decoding == 2 * (256 * MiB + DETECTOR_INPUT_BYTES)
    assert budget.total == BASELINE_BYTES + budget.bodies + budget.decoding
    pod_limit = quantity_bytes(ResourceSpec().memory_limit)
    assert pod_limit == 2 * 1024 * MiB
    assert budget.total <= pod_limit * MAX_SHARE_OF_POD_LIMIT, budget.describe()


def test_worst_case_follows_the_settings() -> None:
    base = worst_case(Settings())
    more_runs = worst_case(Settings(inference=InferenceSettings(max_concurrent_runs=2)))
    assert more_runs.decoding == 2 * base.decoding
    fewer_bodies = worst_case(Settings(server=ServerSettings(max_pending_requests=8)))
    assert fewer_bodies.bodies == base.bodies // 4


@pytest.mark.parametrize(
    ("quantity", "expected"), [("2Gi", 2 * 1024**3), ("1500Mi", 1500 * MiB), ("2G", 2 * 10**9), ("123", 123)]
)
def test_quantities(quantity: str, expected: int) -> None:
    assert quantity_bytes(quantity) == expected


def test_cgroup_limit_v2_v1_and_unlimited(tmp_path: Path) -> None:
    (tmp_path / "memory.max").write_text("2147483648\n")
    assert cgroup_memory_limit(tmp_path) == 2 * 1024**3
    (tmp_path / "memory.max").write_text("max\n")
    assert cgroup_memory_limit(tmp_path) is None
    (tmp_path / "memory.max").unlink()
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text("1073741824\n")
    assert cgroup_memory_limit(tmp_path) == 1024**3
    assert cgroup_memory_limit(tmp_path / "absent") is None


def test_start_up_warns_when_the_worst_case_does_not_fit(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import inference.memory_budget as memory_budget

    monkeypatch.setattr(memory_budget, "cgroup_memory_limit", lambda: 1024 * MiB)
    with caplog.at_level(logging.INFO, logger="inference.memory"):
        report_memory_budget(Settings())
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and "container limit of 1024 MiB" in record.getMessage()
    assert "CAT_WATCHER__SERVER__MAX_PENDING_REQUESTS" in record.getMessage()
