"""The CLI as deployed: make-models output, and `serve` as a real process (happy path and faults)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
from inference_support import CAT_NAMES, encode, free_port, photo_like, serve_process, wait_until
from onnx import shape_inference

from inference import contract
from inference.cli import main as cli_main


def dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value_info.type.tensor_type.shape.dim]


def conv_gflops(model: onnx.ModelProto) -> float:
    """2 x multiply-accumulates of every Conv and Gemm, from inferred shapes (batch 1)."""
    inferred = shape_inference.infer_shapes(model)
    shapes = {v.name: dims(v) for v in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]}
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    macs = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            c_out, c_in_per_group, k_h, k_w = weights[node.input[1]]
            out = [d if isinstance(d, int) else 1 for d in shapes[node.output[0]]]
            macs += int(np.prod(out)) * c_in_per_group * k_h * k_w
        elif node.op_type == "Gemm":
            macs += int(np.prod(weights[node.input[1]]))
    return 2 * macs / 1e9


def test_make_models_writes_yolov8n_and_efficientnet_b0_class_graphs(model_dir: Path) -> None:
    detector = onnx.load(model_dir / "detector.onnx")
    identifier = onnx.load(model_dir / "identifier.onnx")
    assert [(i.name, dims(i)) for i in detector.graph.input] == [("images", ["batch", 3, 640, 640])]
    assert [(o.name, dims(o)) for o in detector.graph.output] == [("output0", ["batch", 11, 8400])]
    assert [(i.name, dims(i)) for i in identifier.graph.input] == [("input", ["batch", 3, 224, 224])]
    assert [(o.name, dims(o)) for o in identifier.graph.output] == [("logits", ["batch", len(CAT_NAMES)])]
    assert json.loads((model_dir / "cat_names.json").read_text()) == list(CAT_NAMES)
    # YOLOv8n: 8.7 GFLOPs at 640; EfficientNet-B0: 0.39 GMACs = 0.78 GFLOPs at 224.
    assert 7.0 < conv_gflops(detector) < 10.0
    assert 0.6 < conv_gflops(identifier) < 0.9
    ops = {node.op_type for node in detector.graph.node}
    assert {"Conv", "Sigmoid", "Mul", "Split", "Concat", "MaxPool", "Resize", "Softmax"} <= ops
    assert (
        sum(
            1
            for node in identifier.graph.node
            if node.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in node.attribute)
        )
        == 16
    )


def test_make_models_is_deterministic(tmp_path: Path, model_dir: Path) -> None:
    assert cli_main(["make-models", "--out", str(tmp_path), "--cat-names", ",".join(CAT_NAMES)]) == 0
    for name in ("detector.onnx", "identifier.onnx", "cat_names.json"):
        assert (tmp_path / name).read_bytes() == (model_dir / name).read_bytes(), name


def test_serve_answers_over_http_and_stops_cleanly(served: tuple[subprocess.Popen[bytes], int]) -> None:
    process, port = served
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(base + contract.HEALTH_PATH).json()["device"] == "cpu"
    frame = encode(photo_like(1280, 720))
    response = httpx.post(
        base + contract.DETECT_PATH, content=frame, headers={"content-type": "image/jpeg"}, timeout=30
    )
    assert response.status_code == 200 and response.json()["image"] == {"width": 1280, "height": 720}
    assert "catwatcher_requests_total" in httpx.get(base + contract.METRICS_PATH).text
    process.terminate()
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status reports it.
    assert process.wait(timeout=15) in (0, -signal.SIGTERM)
    assert process.stderr is not None and "Finished server process" in process.stderr.read().decode()


def corrupt_model(path: Path) -> Path:
    path.write_bytes(b"\x08\x07" + bytes(range(256)) * 40)
    return path


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"INFERENCE__DETECTOR_MODEL_PATH": "/nonexistent/detector.onnx"},
            "CAT_WATCHER__INFERENCE__DETECTOR_MODEL_PATH: cannot read model /nonexistent/detector.onnx",
        ),
        (
            {"INFERENCE__DETECTOR_MODEL_PATH": "{corrupt}"},
            "CAT_WATCHER__INFERENCE__DETECTOR_MODEL_PATH: {corrupt} is not a usable ONNX model",
        ),
        (
            {"INFERENCE__IDENTIFIER_MODEL_PATH": "{identifier}", "INFERENCE__CAT_NAMES": "only,two"},
            "CAT_WATCHER__INFERENCE__IDENTIFIER_MODEL_PATH: expected logits [N, 2]",
        ),
        (
            {"INFERENCE__DETECTOR_MODEL_PATH": "{identifier}"},
            "CAT_WATCHER__INFERENCE__DETECTOR_MODEL_PATH: expected output [1, 11, anchors]",
        ),
    ],
    ids=["missing", "corrupt", "identifier-names-mismatch", "wrong-model"],
)
def test_unusable_models_exit_non_zero_and_never_become_ready(
    tmp_path: Path, model_dir: Path, variables: dict[str, str], message: str
) -> None:
    paths = {"corrupt": str(corrupt_model(tmp_path / "corrupt.onnx")), "identifier": str(model_dir / "identifier.onnx")}
    env = {
        f"{contract.ENV_PREFIX}INFERENCE__DEVICE": "cpu",
        f"{contract.ENV_PREFIX}INFERENCE__DETECTOR_MODEL_PATH": str(model_dir / "detector.onnx"),
        **{contract.ENV_PREFIX + name: value.format(**paths) for name, value in variables.items()},
    }
    port = free_port()
    process = serve_process(env, port)
    ready_seen: list[int] = []

    def exited() -> bool:
        try:
            ready_seen.append(httpx.get(f"http://127.0.0.1:{port}{contract.READY_PATH}", timeout=1).status_code)
        except httpx.HTTPError:
            pass
        return process.poll() is not None

    try:
        assert wait_until(exited, timeout=30, interval=0.02)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1
    assert 200 not in ready_seen
    assert process.stderr is not None and message.format(**paths) in process.stderr.read().decode()


def test_serve_has_no_connection_cap_but_a_head_deadline(monkeypatch: pytest.MonkeyPatch, model_dir: Path) -> None:
    """uvicorn's limit_concurrency counted idle connections and refused even probes: it must
    stay off. The head deadline and the head size limit come from the settings."""
    import uvicorn

    from inference import cli

    captured: dict[str, object] = {}

    class NoServer:
        def __init__(self, config: uvicorn.Config) -> None:
            captured["config"] = config

        def run(self) -> None:
            pass

    for name in [n for n in os.environ if n.startswith("CAT_WATCHER__")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CAT_WATCHER__INFERENCE__DETECTOR_MODEL_PATH", str(model_dir / "detector.onnx"))
    monkeypatch.setenv("CAT_WATCHER__SERVER__MAX_HEADER_BYTES", "4096")
    monkeypatch.setattr(uvicorn, "Server", NoServer)
    cli.serve()
    config = captured["config"]
    assert isinstance(config, uvicorn.Config)
    assert config.limit_concurrency is None
    assert config.h11_max_incomplete_event_size == 4096
    assert isinstance(config.http, type) and config.http.__name__ == "HeadDeadlineProtocol"
