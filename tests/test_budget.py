"""The per-pod GPU budget: arena + overhead, and the fit check every mode uses."""

from __future__ import annotations

import pytest

from infra import budget
from infra.presets import catalogue


def test_the_issues_example_does_not_fit_and_says_so_with_the_arithmetic():
    fit = budget.fit("rtx-3060", 12288, 1024, 420, pods=4, arena_mb=2560)
    assert (fit.pod.budget_mb, fit.used_mb, fit.headroom_mb, fit.fits) == (2980, 12944, -656, False)
    assert fit.arithmetic() == "4 pods x (2560 arena + 420 overhead) + 1024 reserve = 12944 MiB > 12288 MiB"
    assert fit.problem() == (
        "4 pods x (2560 arena + 420 overhead) + 1024 reserve = 12944 MiB > 12288 MiB of the rtx-3060; "
        "at most 2396 MiB arena per pod"
    )


def test_a_fitting_plan_has_no_problem_and_reports_its_headroom():
    fit = budget.fit("rtx-3060", 12288, 1024, 420, pods=4, arena_mb=2304)
    assert fit.fits and fit.problem() is None
    assert fit.arithmetic() == "4 pods x (2304 arena + 420 overhead) + 1024 reserve = 11920 MiB <= 12288 MiB"
    assert fit.headroom_mb == 368


def test_the_largest_arena_is_what_the_device_leaves_each_pod_after_its_overhead():
    assert budget.largest_arena_mb(12288, 1024, 4, 420) == 2396
    fit = budget.fit("rtx-3060", 12288, 1024, 420, pods=4, arena_mb=2396)
    assert fit.fits and fit.headroom_mb == 0
    assert not budget.fit("rtx-3060", 12288, 1024, 420, pods=4, arena_mb=2397).fits


def test_without_an_arena_the_preferred_one_is_kept_while_it_fits_else_the_largest():
    assert budget.fit("x", 12288, 1024, 420, pods=3, preferred_arena_mb=2304).pod.arena_mb == 2304
    assert budget.fit("x", 12288, 1024, 420, pods=5, preferred_arena_mb=2304).pod.arena_mb == (12288 - 1024) // 5 - 420
    assert budget.fit("x", 4864, 1024, 800, pods=1).pod.arena_mb == 4864 - 1024 - 800


def test_an_overhead_that_leaves_nothing_is_refused_with_its_cause():
    fit = budget.fit("MIG instance 1g.5gb", 4864, 1024, 800, pods=8)
    assert fit.pod.arena_mb <= 0 and not fit.fits
    assert "800 MiB overhead alone leaves nothing" in fit.problem()


def test_a_non_positive_arena_is_refused_even_with_room_left():
    fit = budget.fit("rtx-3060", 12288, 1024, 420, pods=2, arena_mb=0)
    assert not fit.fits and fit.problem().startswith("the arena must be > 0 MiB")


@pytest.mark.parametrize(("budget_mb", "pods"), [(2724, 4), (2980, 3), (11264, 1), (11265, 0)])
def test_pods_that_fit_count_whole_budgets(budget_mb, pods):
    assert budget.pods_that_fit(12288, 1024, budget_mb) == pods


def test_pods_that_fit_refuses_an_empty_budget():
    with pytest.raises(ValueError):
        budget.pods_that_fit(12288, 1024, 0)


@pytest.mark.parametrize(
    "preset", [key for key, p in catalogue().items() if p.recommended.sharing in ("time-slicing", "mps")]
)
def test_every_shared_presets_recommendation_fits_its_full_budget(preset):
    gpu = catalogue()[preset]
    fit = budget.fit(
        gpu.key,
        gpu.vram_mb,
        gpu.reserve_mb,
        gpu.overhead_mb,
        gpu.recommended.replicas,
        arena_mb=gpu.recommended.memory_per_pod_mb,
    )
    assert fit.fits, fit.problem()


@pytest.mark.parametrize("preset", [key for key, p in catalogue().items() if p.mig])
def test_every_mig_presets_recommended_layout_leaves_an_arena_after_overhead(preset):
    gpu = catalogue()[preset]
    for profile in gpu.mig.recommended_layout:
        instance_mb = gpu.mig.profiles[profile].memory_mb
        fit = budget.fit(f"MIG instance {profile}", instance_mb, gpu.reserve_mb, gpu.overhead_mb, pods=1)
        assert fit.fits and fit.pod.arena_mb >= 1024, fit.arithmetic()


def test_every_preset_names_an_overhead_no_smaller_than_the_measured_floor_scaled_down():
    # The smallest per-process figure any source reports with lazy loading is a bare 256 MiB
    # context (RTX 3090); cuBLAS/cuDNN and a first run come on top.
    assert all(gpu.overhead_mb > 256 for gpu in catalogue().values())
    # Where measured (H200: 764 MiB after a small model ran), the figure covers the measurement.
    assert catalogue()["h200-141gb"].overhead_mb >= 764
