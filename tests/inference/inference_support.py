"""Helpers shared by the inference tests (fixtures live in conftest.py)."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

with warnings.catch_warnings():
    # Starlette now nudges its test client towards the httpx2 fork; httpx behaves the same here.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient  # noqa: F401  (re-exported for the tests)

from inference.contract import ENV_PREFIX
from inference.labels import BEHAVIOURS
from inference.runtime import CPU_PROVIDER, CUDA_PROVIDER, Provider, Session, create_session
from inference.settings import Settings

CAT_NAMES = ("mochi", "luna", "tiger")

# The scripted detector's fixed output, in detector-input pixels (640x640 letterbox).
# Anchor 0: an eating cat; anchor 1 overlaps it (IoU 0.81) with a lower, different behaviour and
# must be suppressed; anchor 2: a cat whose best score (0.3) is only enough for `present`;
# anchor 3: background below the presence threshold.
SCRIPTED_ANCHORS = np.array(
    [
        # cx,  cy,   w,   h, eating, drinking, sleeping, vomiting, waiting, litterbox, yowling
        [200, 300, 100, 80, 0.90, 0.05, 0.01, 0.01, 0.01, 0.01, 0.01],
        [205, 302, 100, 80, 0.10, 0.80, 0.01, 0.01, 0.01, 0.01, 0.01],
        [500, 320, 60, 60, 0.02, 0.02, 0.30, 0.02, 0.02, 0.02, 0.02],
        [100, 100, 50, 50, 0.10, 0.10, 0.10, 0.10, 0.10, 0.10, 0.10],
    ],
    dtype=np.float32,
)


def scripted_detector(path: Path) -> Path:
    """A real ONNX detector graph whose output is SCRIPTED_ANCHORS whatever the image."""
    output = SCRIPTED_ANCHORS.T[None]  # [1, 11, 4]
    assert output.shape[1] == 4 + len(BEHAVIOURS)
    # Output = constant + 0 * mean(image): keeps the input wired in, as a real graph has it.
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["scripted", "nothing"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "scripted_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output.shape))],
        [numpy_helper.from_array(output, "scripted"), numpy_helper.from_array(np.zeros((), np.float32), "zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, path)
    return path


def photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth shapes like a camera frame (noise would make unrealistically large JPEGs)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (max(1, height // 40), max(1, width // 40), 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR)


def encode(image: Image.Image, image_format: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def make_settings(
    model_dir: Path, detector: str = "detector.onnx", identifier: str | None = "identifier.onnx", **inference: object
) -> Settings:
    return Settings.model_validate(
        {
            "inference": {
                "device": "cpu",
                "detector_model_path": model_dir / detector,
                "identifier_model_path": model_dir / identifier if identifier else None,
                **inference,
            }
        }
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_process(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """`catwatcher-inference serve` as a real process on loopback."""
    full_env = {name: value for name, value in os.environ.items() if not name.upper().startswith(ENV_PREFIX)}
    full_env.update({f"{ENV_PREFIX}SERVER__HOST": "127.0.0.1", f"{ENV_PREFIX}SERVER__PORT": str(port), **env})
    command = [sys.executable, "-c", "import sys; from inference.cli import main; sys.exit(main(['serve']))"]
    return subprocess.Popen(command, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def png_header_only_for_api(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but carries almost no data (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


OOM_MESSAGE = (
    "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : CUDA failure "
    "2: out of memory ; GPU=0 ; expr=cudaMalloc((void**)&p, size);"
)


class FakeCudaSession:
    """A real CPU session that claims CUDA; runs after the first `healthy_runs` raise `error`."""

    def __init__(self, inner: Session, error: str, healthy_runs: int) -> None:
        self.inner = inner
        self.error = error
        self.healthy_runs = healthy_runs
        self.runs = 0

    def get_providers(self) -> list[str]:
        return [CUDA_PROVIDER, CPU_PROVIDER]

    def get_inputs(self) -> list[object]:
        return self.inner.get_inputs()

    def get_outputs(self) -> list[object]:
        return self.inner.get_outputs()

    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        self.runs += 1
        if self.runs > self.healthy_runs:
            raise RuntimeError(self.error)
        return self.inner.run(output_names, input_feed)


class FakeCudaFactory:
    """Session factory: "CUDA" sessions fail after `failures_after` good runs; CPU ones are real."""

    def __init__(self, error: str = OOM_MESSAGE, failures_after: int = 0) -> None:
        self.error = error
        self.failures_after = failures_after
        self.created: list[tuple[str, ...]] = []

    def __call__(self, model: bytes, providers: Sequence[Provider], options: ort.SessionOptions) -> Session:
        names = tuple(p if isinstance(p, str) else p[0] for p in providers)
        self.created.append(names)
        session = create_session(model, [CPU_PROVIDER], options)
        return FakeCudaSession(session, self.error, self.failures_after) if CUDA_PROVIDER in names else session
