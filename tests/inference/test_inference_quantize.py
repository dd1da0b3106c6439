"""`quantize`: a real int8 model from calibration frames; the CPU path (CPU device or fallback) uses it."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from inference_support import OOM_MESSAGE, FakeCudaSession, TestClient, encode, make_settings, photo_like, wait_until

from inference import contract
from inference.app import create_app
from inference.cli import main as cli_main
from inference.engine import CatWatcherEngine
from inference.errors import ModelLoadError
from inference.modelprep import uint8_image_input
from inference.quantize import calibration_tensor, float_tail, model_kind
from inference.runtime import CPU_PROVIDER, CUDA_PROVIDER, Provider, Session, create_session


@pytest.fixture(scope="module")
def calibration_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("calibration")
    for seed in range(4):
        (directory / f"frame{seed}.jpg").write_bytes(encode(photo_like(1280, 720, seed)))
    (directory / "notes.txt").write_text("not a frame")
    (directory / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return directory


@pytest.fixture(scope="module")
def quantized(
    model_dir: Path, calibration_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str, str]:
    """The CLI run once for the module: (int8 detector, stdout, stderr)."""
    out = tmp_path_factory.mktemp("int8") / "detector.int8.onnx"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        assert (
            cli_main(
                ["quantize", str(model_dir / "detector.onnx"), "--calibration", str(calibration_dir), "--out", str(out)]
            )
            == 0
        )
    return out, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def int8_detector(quantized: tuple[Path, str, str]) -> Path:
    return quantized[0]


def test_quantize_writes_an_int8_detector_that_agrees_with_fp32(model_dir: Path, int8_detector: Path) -> None:
    model = onnx.load(int8_detector)
    ops = [node.op_type for node in model.graph.node]
    assert ops.count("QuantizeLinear") > 50 and ops.count("DequantizeLinear") > 50
    int8_weights = [init for init in model.graph.initializer if init.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 60  # every Conv weight
    # The output is produced in float from float inputs: boxes and scores are not squeezed into one uint8 scale.
    producer = next(node for node in model.graph.node if "output0" in node.output)
    assert producer.op_type == "Concat"
    assert [
        (o.name, [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim]) for o in model.graph.output
    ] == [("output0", ["batch", 11, 8400])]

    frame = calibration_tensor(encode(photo_like(1280, 720, seed=42)), "detector", 640)
    fp32 = ort.InferenceSession(str(model_dir / "detector.onnx"), providers=[CPU_PROVIDER]).run(
        None, {"images": frame}
    )[0]
    int8 = ort.InferenceSession(str(int8_detector), providers=[CPU_PROVIDER]).run(None, {"images": frame})[0]
    assert np.abs(fp32[0, :4] - int8[0, :4]).max() < 2.0  # pixels of a 640 input
    assert np.abs(fp32[0, 4:] - int8[0, 4:]).max() < 0.01
    assert not np.array_equal(fp32, int8)


def test_quantize_reports_frames_used_and_skipped(quantized: tuple[Path, str, str]) -> None:
    out, stdout, stderr = quantized
    assert stdout.strip().startswith(f"{out}: int8 detector, calibrated on 4 frames, ")
    assert stderr.strip().splitlines() == [
        line
        for line in stderr.strip().splitlines()
        if line.startswith("catwatcher-inference quantize: skipped broken.jpg: ")
    ]
    assert len(stderr.strip().splitlines()) == 1


def test_kind_and_float_tail_come_from_the_graph(model_dir: Path) -> None:
    detector = onnx.load(model_dir / "detector.onnx")
    identifier = onnx.load(model_dir / "identifier.onnx")
    assert model_kind(detector, Path("d")) == ("detector", "images", 640)
    assert model_kind(identifier, Path("i")) == ("identifier", "input", 224)
    for index, node in enumerate(detector.graph.node):
        node.name = node.name or f"n{index}"
    tail = set(float_tail(detector))
    ops = {node.name: node.op_type for node in detector.graph.node}
    assert {"Softmax", "ReduceSum", "Concat", "Sigmoid"} <= {ops[name] for name in tail}
    assert "Conv" not in {ops[name] for name in tail}
    # Everything before the head's last convolutions is quantised.
    assert len(tail) < 40


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["{missing}", "--calibration", "{calibration}", "--out", "{out}"],
            "{missing}: model file does not exist or is not a file",
        ),
        (
            ["{detector}", "--calibration", "{missing}", "--out", "{out}"],
            "{missing}: calibration directory does not exist or is not a directory",
        ),
        (
            ["{detector}", "--calibration", "{empty}", "--out", "{out}"],
            "{empty}: no .jpg, .jpeg, .png, .webp frames to calibrate with",
        ),
        (["{frame}", "--calibration", "{calibration}", "--out", "{out}"], "{frame}: not a valid ONNX model"),
        (
            ["{detector}", "--calibration", "{calibration}", "--out", "{missing}/x.onnx"],
            "{missing}: output directory does not exist",
        ),
        (
            ["{detector}", "--calibration", "{calibration}", "--out", "{detector}"],
            "{detector}: would overwrite the fp32 model",
        ),
        (
            ["{detector}", "--calibration", "{broken}", "--out", "{out}"],
            "{broken}: none of the frames could be decoded",
        ),
        (
            ["{detector}", "--calibration", "{calibration}", "--out", "{out}", "--max-frames", "0"],
            "--max-frames 0: must be at least 1",
        ),
    ],
    ids=["no-model", "no-calibration", "no-frames", "not-onnx", "no-out-dir", "overwrite", "undecodable", "max-frames"],
)
def test_bad_quantize_inputs_are_one_line_errors(
    tmp_path: Path,
    model_dir: Path,
    calibration_dir: Path,
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
    message: str,
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.jpg").write_bytes(b"\xff\xd8\xff garbage")
    paths = {
        "missing": str(tmp_path / "missing"),
        "calibration": str(calibration_dir),
        "out": str(tmp_path / "out.onnx"),
        "detector": str(model_dir / "detector.onnx"),
        "empty": str(tmp_path / "empty"),
        "frame": str(calibration_dir / "frame0.jpg"),
        "broken": str(tmp_path / "broken"),
    }
    assert cli_main(["quantize", *(argument.format(**paths) for argument in arguments)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("catwatcher-inference quantize: " + message.format(**paths))
    assert "\n" not in error and "Traceback" not in error
    assert not (tmp_path / "out.onnx").exists()


def test_cpu_device_serves_with_the_int8_detector(model_dir: Path, int8_detector: Path, jpeg_720p: bytes) -> None:
    settings = make_settings(model_dir, identifier=None, cpu_detector_model_path=int8_detector)
    engine = CatWatcherEngine.load(settings.inference)
    frame = engine.prepare(jpeg_720p).tensor
    assert frame.dtype == np.uint8  # the 1/255 scaling is folded into the served model
    int8 = ort.InferenceSession(str(int8_detector), providers=[CPU_PROVIDER]).run(
        None, {"images": frame * np.float32(1 / 255)}
    )[0]
    fp32 = ort.InferenceSession(str(model_dir / "detector.onnx"), providers=[CPU_PROVIDER]).run(
        None, {"images": frame * np.float32(1 / 255)}
    )[0]
    served = engine.runtime.run("detector", {"images": frame})[0]
    np.testing.assert_allclose(served, int8, rtol=1e-5, atol=1e-5)
    assert not np.allclose(served, fp32, rtol=1e-5, atol=1e-5)
    with TestClient(create_app(settings)) as client:
        assert wait_until(lambda: client.get(contract.READY_PATH).status_code == 200, timeout=30)
        response = client.post(contract.DETECT_PATH, content=jpeg_720p, headers={"content-type": "image/jpeg"})
        assert response.status_code == 200 and response.json()["device"] == "cpu"


class RecordingFactory:
    """ "CUDA" sessions run the given model on CPU and fail with OOM; records what CPU sessions load."""

    def __init__(self) -> None:
        self.cpu_models: list[bytes] = []

    def __call__(self, model: bytes, providers: Sequence[Provider], options: ort.SessionOptions) -> Session:
        names = [p if isinstance(p, str) else p[0] for p in providers]
        session = create_session(model, [CPU_PROVIDER], options)
        if CUDA_PROVIDER in names:
            return FakeCudaSession(session, OOM_MESSAGE, healthy_runs=1)  # the warm-up succeeds
        self.cpu_models.append(model)
        return session


def test_the_fallback_after_a_gpu_failure_runs_the_int8_detector(
    model_dir: Path, int8_detector: Path, jpeg_720p: bytes
) -> None:
    factory = RecordingFactory()
    settings = make_settings(model_dir, identifier=None, device="cuda", cpu_detector_model_path=int8_detector).inference
    engine = CatWatcherEngine.load(settings, session_factory=factory, available_providers=[CUDA_PROVIDER, CPU_PROVIDER])
    assert engine.status.device == "cuda"
    # The int8 model as served (input scaling folded in, see modelprep).
    served_int8 = uint8_image_input(int8_detector.read_bytes())
    # At start the int8 model was only checked on CPU (loads, same inputs and outputs).
    assert factory.cpu_models == [served_int8]
    engine.infer(engine.prepare(jpeg_720p))  # OOM on "CUDA" -> every model rebuilt on CPU
    assert engine.status.degraded and factory.cpu_models[-1] == served_int8


def test_a_cpu_model_with_other_outputs_is_refused_at_start(model_dir: Path) -> None:
    settings = make_settings(
        model_dir, identifier=None, cpu_detector_model_path=model_dir / "identifier.onnx"
    ).inference
    with pytest.raises(
        ModelLoadError,
        match="CAT_WATCHER__INFERENCE__CPU_DETECTOR_MODEL_PATH: .*identifier.onnx must have the inputs and outputs of",
    ):
        CatWatcherEngine.load(settings)


def test_a_missing_cpu_model_is_refused_at_start_even_on_a_gpu(model_dir: Path) -> None:
    settings = make_settings(
        model_dir, identifier=None, device="cuda", cpu_detector_model_path=model_dir / "nope.onnx"
    ).inference
    with pytest.raises(ModelLoadError, match="CAT_WATCHER__INFERENCE__CPU_DETECTOR_MODEL_PATH: cannot read model"):
        CatWatcherEngine.load(
            settings, session_factory=RecordingFactory(), available_providers=[CUDA_PROVIDER, CPU_PROVIDER]
        )


@pytest.mark.parametrize(("flag", "expected"), [([], False), (["--reduce-range"], True)])
def test_reduce_range_reaches_onnxruntime(
    monkeypatch: pytest.MonkeyPatch,
    model_dir: Path,
    calibration_dir: Path,
    tmp_path: Path,
    flag: list[str],
    expected: bool,
) -> None:
    import onnxruntime.quantization as quantization

    seen: dict[str, object] = {}

    def record(model: object, output: Path, reader: object, **options: object) -> None:
        seen.update(options)
        onnx.save(onnx.load(model_dir / "detector.onnx"), output)

    monkeypatch.setattr(quantization, "quantize_static", record)
    assert (
        cli_main(
            [
                "quantize",
                str(model_dir / "detector.onnx"),
                "--calibration",
                str(calibration_dir),
                "--out",
                str(tmp_path / "q.onnx"),
                "--max-frames",
                "2",
                *flag,
            ]
        )
        == 0
    )
    assert seen["reduce_range"] is expected and seen["per_channel"] is True
