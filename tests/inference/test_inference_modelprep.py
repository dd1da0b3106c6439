"""The 1/255 input scaling folded into the detector: same outputs from uint8 frames, every path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from inference.modelprep import uint8_image_input
from inference.runtime import CPU_PROVIDER


def outputs(model: bytes, feed: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model, providers=[CPU_PROVIDER]).run(None, {"images": feed})[0]


def first_ops(model: bytes, count: int = 2) -> list[str]:
    return [node.op_type for node in onnx.load_from_string(model).graph.node[:count]]


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (2, 3, 640, 640), dtype=np.uint8)


def test_placeholder_detector_folds_the_scale_into_its_first_conv(model_dir: Path, frames: np.ndarray) -> None:
    original = (model_dir / "detector.onnx").read_bytes()
    folded = uint8_image_input(original)
    assert folded is not None and first_ops(folded) == ["Cast", "Conv"]
    model = onnx.load_from_string(folded)
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.UINT8
    np.testing.assert_allclose(
        outputs(folded, frames), outputs(original, frames * np.float32(1 / 255)), rtol=1e-4, atol=1e-3
    )


def test_a_model_that_does_not_start_with_conv_gets_an_explicit_mul(model_dir: Path) -> None:
    original = (model_dir / "scripted_detector.onnx").read_bytes()
    folded = uint8_image_input(original)
    assert folded is not None and first_ops(folded) == ["Cast", "Mul"]
    frame = np.full((1, 3, 640, 640), 200, np.uint8)
    np.testing.assert_array_equal(outputs(folded, frame), outputs(original, frame * np.float32(1 / 255)))


def test_a_quantize_linear_input_absorbs_the_scale(frames: np.ndarray) -> None:
    scale = numpy_helper.from_array(np.array(0.004, np.float32), "scale")
    zero = numpy_helper.from_array(np.array(0, np.uint8), "zero")
    dq_scale = numpy_helper.from_array(np.array(0.004, np.float32), "dq_scale")
    graph = helper.make_graph(
        [
            helper.make_node("QuantizeLinear", ["images", "scale", "zero"], ["q"]),
            helper.make_node("DequantizeLinear", ["q", "dq_scale", "zero"], ["out"]),
        ],
        "qdq",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 640, 640])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 3, 640, 640])],
        [scale, zero, dq_scale],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    original = model.SerializeToString()
    folded = uint8_image_input(original)
    assert folded is not None and first_ops(folded) == ["Cast", "QuantizeLinear"]
    np.testing.assert_array_equal(outputs(folded, frames), outputs(original, frames * np.float32(1 / 255)))


def test_models_without_a_float_image_input_are_left_alone(model_dir: Path) -> None:
    folded = uint8_image_input((model_dir / "detector.onnx").read_bytes())
    assert folded is not None and uint8_image_input(folded) is None  # already uint8
    assert uint8_image_input(b"\x08\x07 not a model") is None
