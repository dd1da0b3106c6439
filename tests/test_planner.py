"""`catwatcher-infra plan` and the model footprint it reads: real ONNX files, real presets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from inference.cli import main as inference_main
from infra import budget
from infra.footprint import ACTIVATION_FACTOR, MIB, WORKSPACE_ALLOWANCE_MB, FootprintError, model_footprint
from infra.planner import PlanInputError, arena_for_models, plan_modes, resolve_gpu
from infra.presets import catalogue
from infra.sharing import BACKENDS
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("models")
    assert inference_main(["make-models", "--out", str(directory)]) == 0
    return directory


def plan_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", "plan", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def _save(tmp_path: Path, nodes, initializers=(), name: str = "m.onnx") -> Path:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / name
    onnx.save(model, path)
    return path


def test_a_chain_holds_two_tensors_at_once_and_its_weights(tmp_path):
    weight = numpy_helper.from_array(np.zeros((1, 1, 512, 512), np.float32), "w")  # 1 MiB
    path = _save(
        tmp_path,
        [
            helper.make_node("Relu", ["x"], ["a"]),
            helper.make_node("Add", ["a", "w"], ["b"]),
            helper.make_node("Relu", ["b"], ["y"]),
        ],
        [weight],
    )
    footprint = model_footprint(path, batch=2, input_size=512)  # every activation: 2 MiB
    assert footprint.input_shape == (2, 1, 512, 512)
    assert (footprint.weights_bytes, footprint.peak_activation_bytes, footprint.unknown_tensors) == (MIB, 4 * MIB, 0)
    expected = 1 + ACTIVATION_FACTOR * 4 + WORKSPACE_ALLOWANCE_MB
    assert footprint.arena_mb == -(-expected // 64) * 64


def test_a_branch_keeps_its_input_alive_until_the_last_consumer(tmp_path):
    path = _save(
        tmp_path,
        [
            helper.make_node("Relu", ["x"], ["a"]),
            helper.make_node("Sigmoid", ["x"], ["b"]),
            helper.make_node("Add", ["a", "b"], ["y"]),
        ],
    )
    footprint = model_footprint(path, batch=1, input_size=1024)  # 4 MiB each
    assert footprint.peak_activation_bytes == 12 * MIB  # x, a and b while Sigmoid runs


def test_activations_grow_with_batch_and_input_size(models):
    small = model_footprint(models / "identifier.onnx", batch=1)
    large = model_footprint(models / "identifier.onnx", batch=8)
    assert large.peak_activation_bytes == pytest.approx(8 * small.peak_activation_bytes, rel=0.01)
    assert large.weights_bytes == small.weights_bytes


def test_make_models_detector_is_sized_from_its_real_graph(models):
    footprint = model_footprint(models / "detector.onnx")
    assert footprint.input_shape == (1, 3, 640, 640)
    # YOLOv8n: ~3M float32 parameters; the first SiLU holds its conv output, sigmoid and product.
    assert 10 * MIB < footprint.weights_bytes < 14 * MIB
    first_conv = 16 * 320 * 320 * 4
    assert footprint.peak_activation_bytes >= 3 * first_conv
    assert footprint.unknown_tensors == 0
    assert footprint.arena_mb < catalogue()["rtx-3060"].recommended.memory_per_pod_mb


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"batch": 0}, "batch must be >= 1"),
        ({"input_size": 320}, "fixed at 640"),
    ],
)
def test_impossible_shapes_are_refused_naming_the_file(models, arguments, message):
    with pytest.raises(FootprintError, match=message):
        model_footprint(models / "detector.onnx", **arguments)


def test_a_file_that_is_not_onnx_is_refused(tmp_path):
    (tmp_path / "x.onnx").write_text("not a model")
    with pytest.raises(FootprintError, match="not an ONNX model"):
        model_footprint(tmp_path / "x.onnx")


def test_two_models_get_the_arena_that_gives_each_session_its_share(models):
    detector = model_footprint(models / "detector.onnx")
    identifier = model_footprint(models / "identifier.onnx", batch=8)
    arena = arena_for_models(detector, identifier)
    assert arena * 0.75 >= detector.arena_mb and arena * 0.25 >= identifier.arena_mb
    assert arena % 64 == 0 and arena - 64 < max(detector.arena_mb / 0.75, identifier.arena_mb / 0.25)


@pytest.mark.parametrize("preset", list(catalogue()))
def test_every_preset_plans_its_recommendation_in_its_recommended_mode(preset):
    gpu = catalogue()[preset]
    rows = plan_modes(gpu, gpu.recommended.memory_per_pod_mb)
    for row in rows:
        if row.fit is not None and row.fit.fits:
            assert row.fit.used_mb <= row.fit.device_mb
            assert row.fit.pod.budget_mb == row.fit.pod.arena_mb + gpu.overhead_mb
    by_mode = {row.mode: row for row in rows if row.device == "GPU"}
    assert by_mode["none"].pods == 1
    if gpu.recommended.sharing in ("time-slicing", "mps"):
        assert by_mode[gpu.recommended.sharing].pods >= gpu.recommended.replicas
    if gpu.mig:
        planned = {row.device: row for row in rows if row.mode == "mig"}
        for profile, count in gpu.mig.recommended_layout.items():
            assert planned[f"MIG {profile}"].pods >= count


def test_time_slicing_and_mps_pods_are_the_most_whole_budgets_that_fit():
    gpu = catalogue()["rtx-3060"]
    rows = {row.mode: row for row in plan_modes(gpu, 2304)}
    assert rows["time-slicing"].pods == 4 == rows["mps"].pods
    fit = rows["time-slicing"].fit
    assert fit.headroom_mb == 12288 - 1024 - 4 * (2304 + 420)
    assert not budget.fit(gpu.key, gpu.vram_mb, gpu.reserve_mb, gpu.overhead_mb, 5, arena_mb=2304).fits


def test_mps_is_capped_at_the_plugins_client_limit_and_refused_before_volta():
    rows = {row.mode: row for row in plan_modes(catalogue()["h200-141gb"], 64)}
    assert rows["mps"].pods == 48 and "capped at 48" in rows["mps"].note
    assert rows["time-slicing"].pods > 48
    pascal = {row.mode: row for row in plan_modes(catalogue()["gtx-1070"], 1024)}
    assert pascal["mps"].pods == 0 and "compute capability >= 7.0" in pascal["mps"].note


def test_a_mode_that_cannot_hold_two_pods_says_so():
    rows = {row.mode: row for row in plan_modes(catalogue()["gtx-1660"], 3000)}
    assert rows["time-slicing"].pods == 0 and "use none" in rows["time-slicing"].note
    assert rows["none"].pods == 1


def test_custom_gpus_and_overrides_are_checked():
    gpu = resolve_gpu(catalogue(), "custom", {"vram_mb": 8192, "compute_capability": "8.9"})
    assert (gpu.vram_mb, gpu.overhead_mb, gpu.reserve_mb) == (8192, 800, 1024)
    assert resolve_gpu(catalogue(), "rtx-3060", {"overhead_mb": 300}).overhead_mb == 300
    for preset, overrides, message in (
        ("custom", {"vram_mb": 8192}, "--compute-capability"),
        ("rtx-3060", {"vram_mb": 0}, "--vram-mb must be > 0"),
        ("rtx-3060", {"compute_capability": "eight"}, "must look like 8.6"),
        ("rtx-9090", {}, "valid: a100-40gb"),
    ):
        with pytest.raises(PlanInputError, match=message):
            resolve_gpu(catalogue(), preset, overrides)


def test_cli_plans_the_issues_example_in_text_and_json(models):
    text = plan_cli("--preset", "rtx-3060", "--model", str(models / "detector.onnx"))
    assert text.returncode == 0, text.stderr
    assert "weights 11." in text.stdout and "arena estimate" in text.stdout
    for mode in ("none", "time-slicing", "mps", "mig"):
        assert any(line.startswith(mode) for line in text.stdout.splitlines())
    result = plan_cli(
        "--preset",
        "rtx-3060",
        "--model",
        str(models / "detector.onnx"),
        "--identifier",
        str(models / "identifier.onnx"),
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["gpu"]["overheadMb"] == 420 and len(report["models"]) == 2
    modes = {row["mode"]: row for row in report["modes"]}
    shared = modes["time-slicing"]
    assert shared["budgetMb"] == shared["arenaMb"] + 420 == report["arenaMb"] + 420
    assert shared["pods"] * shared["budgetMb"] + 1024 + shared["headroomMb"] == 12288
    assert shared["pods"] > 4  # the placeholder models need far less than the preset's arena


def test_cli_without_a_model_uses_the_presets_arena():
    result = plan_cli("--preset", "a100-40gb", "--format", "json")
    report = json.loads(result.stdout)
    assert report["arenaMb"] == 2816
    assert {row["device"] for row in report["modes"] if row["mode"] == "mig"} >= {"MIG 1g.5gb", "MIG 7g.40gb"}


@pytest.mark.parametrize(
    ("arguments", "code", "message"),
    [
        (("--preset", "rtx-9090"), 2, "unknown preset 'rtx-9090'"),
        (("--preset", "custom", "--vram-mb", "8192"), 2, "--compute-capability"),
        (("--preset", "custom", "--vram-mb", "8192", "--compute-capability", "8.6"), 2, "--model or --arena-mb"),
        (("--preset", "rtx-3060", "--arena-mb", "-1"), 2, "--arena-mb must be > 0"),
        (("--preset", "rtx-3060", "--identifier", "x.onnx"), 2, "--identifier needs --model"),
        # A file the command cannot use is a failure (1), not a usage error (2), as elsewhere.
        (("--preset", "rtx-3060", "--model", "/no/such/model.onnx"), 1, "cannot read model /no/such/model.onnx"),
        (("--preset", "rtx-3060", "--model", "README.md"), 1, "README.md is not an ONNX model"),
    ],
)
def test_cli_refuses_bad_input_in_one_line_without_a_traceback(arguments, code, message):
    result = plan_cli(*arguments)
    assert result.returncode == code and result.stdout == ""
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr


def test_a_backend_without_a_counting_rule_is_planned_through_its_own_validation(monkeypatch):
    import infra.planner as planner

    gpu = catalogue()["rtx-3060"]
    counted = {row.mode: row for row in plan_modes(gpu, 1024)}
    monkeypatch.setattr(planner, "MODES", tuple(entry for entry in planner.MODES if entry[0] != "mps"))
    fallback = {row.mode: row for row in plan_modes(gpu, 1024)}
    assert fallback["mps"].pods == counted["mps"].pods == 7 and fallback["mps"].fit == counted["mps"].fit
    # Validation has the last word: MPS before Volta is refused with the backend's own message.
    pascal = {row.mode: row for row in plan_modes(catalogue()["gtx-1070"], 1024)}
    assert pascal["mps"].pods == 0 and "compute capability >= 7.0" in pascal["mps"].note


@pytest.mark.parametrize("preset", ["rtx-3060", "a100-40gb", "gtx-1070"])
def test_every_row_says_what_bounds_its_pods_memory_or_why_it_does_not_fit(preset):
    gpu = catalogue()[preset]
    rows = plan_modes(gpu, gpu.recommended.memory_per_pod_mb)
    assert {row.mode for row in rows} == set(BACKENDS)
    for row in rows:
        assert row.note.strip(), f"{row.mode} on {row.device} has no note"
    hami = next(row for row in rows if row.mode == "hami")
    if hami.fit is not None and hami.fit.fits:
        assert "nvidia.com/gpumem" in hami.note
