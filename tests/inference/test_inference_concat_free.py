"""Concat -> 1x1 Conv made into one 1x1 Conv per Concat input, summed (inference/modelprep.py):
same outputs, no Concat left where the pattern matched, every other graph left alone."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from inference.modelprep import concat_free_convs, cpu_rewrites, split_free_convs, uint8_image_input
from inference.runtime import CPU_PROVIDER


def run(model: bytes, feed: np.ndarray, name: str = "x") -> list[np.ndarray]:
    return ort.InferenceSession(model, providers=[CPU_PROVIDER]).run(None, {name: feed})


def op_counts(model: bytes) -> Counter[str]:
    return Counter(node.op_type for node in onnx.load_from_string(model).graph.node)


def block(
    widths: tuple[int, ...] = (8, 8, 16),
    kernel: int = 1,
    pads: int = 0,
    stride: int = 1,
    group: int = 1,
    axis: int = 1,
    concat_also_returned: bool = False,
    second_consumer: bool = False,
    bias: bool = True,
) -> bytes:
    """x -> one 3x3 Conv per width -> Concat -> Conv(kernel) -> SiLU."""
    rng = np.random.default_rng(0)
    initializers, nodes, parts = [], [], []
    for index, width in enumerate(widths):
        initializers.append(numpy_helper.from_array(rng.standard_normal((width, 4, 3, 3), np.float32), f"w{index}"))
        nodes.append(helper.make_node("Conv", ["x", f"w{index}"], [f"p{index}"], pads=[1, 1, 1, 1]))
        parts.append(f"p{index}")
    nodes.append(helper.make_node("Concat", parts, ["cat"], axis=axis))
    total = sum(widths) if axis == 1 else widths[0]
    weight = rng.standard_normal((6, total // group, kernel, kernel), np.float32)
    initializers.append(numpy_helper.from_array(weight, "head_w"))
    inputs = ["cat", "head_w"]
    if bias:
        initializers.append(numpy_helper.from_array(rng.standard_normal(6).astype(np.float32), "head_b"))
        inputs.append("head_b")
    nodes.append(
        helper.make_node("Conv", inputs, ["y"], pads=[pads] * 4, strides=[stride, stride], group=group, name="head")
    )
    nodes += [helper.make_node("Sigmoid", ["y"], ["s"]), helper.make_node("Mul", ["y", "s"], ["out"])]
    height = 16 if axis == 1 else 16 * len(widths)
    out_size = (height + 2 * pads - kernel) // stride + 1
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 6, out_size, None])]
    if concat_also_returned:
        outputs.append(helper.make_tensor_value_info("cat", TensorProto.FLOAT, ["n", total, height, 16]))
    if second_consumer:
        nodes.append(helper.make_node("Relu", ["cat"], ["r"]))
        outputs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, ["n", total, height, 16]))
    graph = helper.make_graph(
        nodes, "block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 16, 16])], outputs, initializers
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture(scope="module")
def feed() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((2, 4, 16, 16)).astype(np.float32)


@pytest.mark.parametrize(
    "variant",
    [{}, {"widths": (16, 16)}, {"widths": (4, 8, 12, 16)}, {"bias": False}],
    ids=lambda variant: ",".join(f"{k}={v}" for k, v in variant.items()) or "three parts",
)
def test_matched_blocks_lose_their_concat_and_keep_their_outputs(variant: dict[str, Any], feed: np.ndarray) -> None:
    original = block(**variant)
    rewritten = concat_free_convs(original)
    assert rewritten is not None
    onnx.checker.check_model(onnx.load_from_string(rewritten))
    parts = len(variant.get("widths", (8, 8, 16)))
    counts, before = op_counts(rewritten), op_counts(original)
    assert counts["Concat"] == 0
    assert counts["Conv"] == before["Conv"] - 1 + parts and counts["Add"] == parts - 1
    np.testing.assert_allclose(run(rewritten, feed)[0], run(original, feed)[0], rtol=1e-4, atol=1e-4)
    names = {init.name for init in onnx.load_from_string(rewritten).graph.initializer}
    assert "head_w" not in names
    # The bias stays, given to the first part only (the outputs above would differ otherwise).
    assert ("head_b" in names) == (variant.get("bias") is not False)


@pytest.mark.parametrize(
    "variant",
    [
        {"kernel": 3, "pads": 1},
        {"stride": 2},
        {"group": 2},
        {"axis": 2},
        {"concat_also_returned": True},
        {"second_consumer": True},
    ],
    ids=lambda variant: ",".join(f"{k}={v}" for k, v in variant.items()),
)
def test_other_graphs_are_left_alone(variant: dict[str, Any]) -> None:
    assert concat_free_convs(block(**variant)) is None


def test_not_onnx_is_left_to_onnxruntime_to_report() -> None:
    assert concat_free_convs(b"not a model") is None
    assert cpu_rewrites(b"not a model") is None


def test_the_placeholder_detector_as_the_service_runs_it_on_cpu(model_dir: Path) -> None:
    """Both rewrites and the uint8 input together: what `CatWatcherEngine` loads on CPU."""
    original = (model_dir / "detector.onnx").read_bytes()
    rewritten = cpu_rewrites(uint8_image_input(original) or original)
    assert rewritten is not None
    before, after = op_counts(original), op_counts(rewritten)
    assert after["Split"] < before["Split"] and after["Concat"] < before["Concat"]
    assert concat_free_convs(rewritten) is None and split_free_convs(rewritten) is None  # nothing left to do
    frame = np.random.default_rng(5).integers(0, 256, (1, 3, 640, 640), dtype=np.uint8)
    expected = run(original, frame * np.float32(1 / 255), "images")[0]
    np.testing.assert_allclose(run(rewritten, frame, "images")[0], expected, rtol=1e-3, atol=1e-3)
