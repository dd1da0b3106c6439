"""onnxruntime CPU-layout rewrites (inference/modelprep.py): `Conv -> activation -> Split` made
into one Conv per part, and `Concat -> 1x1 Conv` into one 1x1 Conv per input, summed. Same
outputs, the pattern gone where it matched, every other graph left alone."""

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


def small_model(
    nodes: list[onnx.NodeProto],
    outputs: list[onnx.ValueInfoProto],
    initializers: list[onnx.TensorProto],
    opset: int = 17,
) -> bytes:
    """A checked model over x: [n, 4, 16, 16]."""
    graph = helper.make_graph(
        nodes, "block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 16, 16])], outputs, initializers
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture(scope="module")
def feed() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((2, 4, 16, 16)).astype(np.float32)


# Split-free


def split_block(
    activation: str = "silu",
    split_axis: int = 1,
    sizes: tuple[int, ...] = (8, 8),
    group: int = 1,
    conv_output_also_returned: bool = False,
    opset: int = 17,
    split_as: str = "input",
    bias: bool = True,
) -> bytes:
    """x -> Conv(3x3, 4 -> 16) -> activation -> Split -> each part + a 1x1 Conv -> Concat."""
    rng = np.random.default_rng(0)
    channels = sum(sizes) if split_axis == 1 else 16
    initializers = [numpy_helper.from_array(rng.standard_normal((channels, 4 // group, 3, 3), np.float32), "w")]
    conv_inputs = ["x", "w"]
    if bias:
        initializers.append(numpy_helper.from_array(rng.standard_normal(channels).astype(np.float32), "b"))
        conv_inputs.append("b")
    nodes = [helper.make_node("Conv", conv_inputs, ["c"], pads=[1, 1, 1, 1], group=group, name="stem")]
    if activation == "silu":
        nodes += [helper.make_node("Sigmoid", ["c"], ["s"]), helper.make_node("Mul", ["c", "s"], ["a"])]
    elif activation == "none":
        nodes += [helper.make_node("Identity", ["c"], ["a"])]
    else:
        nodes += [helper.make_node(activation, ["c"], ["a"])]
    split_input = "c" if activation == "none" else "a"
    parts = [f"p{i}" for i in range(len(sizes))]
    if split_as == "input":
        initializers.append(numpy_helper.from_array(np.array(sizes, np.int64), "sizes"))
        nodes.append(helper.make_node("Split", [split_input, "sizes"], parts, axis=split_axis))
    elif split_as == "attribute":
        nodes.append(helper.make_node("Split", [split_input], parts, axis=split_axis, split=list(sizes)))
    else:  # equal parts
        attributes: dict[str, Any] = {"num_outputs": len(sizes)} if opset >= 18 else {}
        nodes.append(helper.make_node("Split", [split_input], parts, axis=split_axis, **attributes))
    heads = []
    for index, (part, size) in enumerate(zip(parts, sizes, strict=True)):
        weight = f"h{index}"
        width = size if split_axis == 1 else channels
        initializers.append(numpy_helper.from_array(rng.standard_normal((4, width, 1, 1), np.float32), weight))
        nodes.append(helper.make_node("Conv", [part, weight], [f"y{index}"]))
        heads.append(f"y{index}")
    nodes.append(helper.make_node("Concat", heads, ["out"], axis=1))
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 4 * len(sizes), 16, 16])]
    if conv_output_also_returned:
        outputs.append(helper.make_tensor_value_info("c", TensorProto.FLOAT, ["n", channels, 16, 16]))
    return small_model(nodes, outputs, initializers, opset)


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"activation": "Relu"},
        {"activation": "LeakyRelu"},
        {"sizes": (4, 12)},
        {"sizes": (4, 4, 8)},
        {"split_as": "attribute", "opset": 12},
        {"split_as": "equal", "sizes": (8, 8)},
        {"split_as": "equal", "sizes": (8, 8), "opset": 18},
        {"bias": False},
    ],
    ids=lambda variant: ",".join(f"{k}={v}" for k, v in variant.items()) or "silu",
)
def test_matched_blocks_lose_their_split_and_keep_their_outputs(variant: dict[str, object], feed: np.ndarray) -> None:
    original = split_block(**variant)  # type: ignore[arg-type]
    rewritten = split_free_convs(original)
    assert rewritten is not None
    onnx.checker.check_model(onnx.load_from_string(rewritten))
    counts = op_counts(rewritten)
    parts = len(variant.get("sizes", (8, 8)))  # type: ignore[arg-type]
    assert counts["Split"] == 0
    assert counts["Conv"] == op_counts(original)["Conv"] - 1 + parts
    np.testing.assert_allclose(run(rewritten, feed)[0], run(original, feed)[0], rtol=1e-5, atol=1e-5)
    # The original weights are gone, not kept beside their parts.
    names = {init.name for init in onnx.load_from_string(rewritten).graph.initializer}
    assert "w" not in names and "b" not in names


@pytest.mark.parametrize(
    "variant",
    [
        {"split_axis": 2},
        {"group": 2},
        {"conv_output_also_returned": True},
        {"activation": "none"},  # an Identity between Conv and Split is not an activation it knows
    ],
    ids=lambda variant: ",".join(f"{k}={v}" for k, v in variant.items()),
)
def test_other_splits_are_left_alone(variant: dict[str, object]) -> None:
    assert split_free_convs(split_block(**variant)) is None  # type: ignore[arg-type]


def test_a_split_straight_after_a_conv_is_rewritten(feed: np.ndarray) -> None:
    model = onnx.load_from_string(split_block(activation="none"))
    nodes = [node for node in model.graph.node if node.op_type != "Identity"]
    for node in nodes:
        if node.op_type == "Split":
            node.input[0] = "c"
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    original = model.SerializeToString()
    rewritten = split_free_convs(original)
    assert rewritten is not None and op_counts(rewritten)["Split"] == 0
    np.testing.assert_allclose(run(rewritten, feed)[0], run(original, feed)[0], rtol=1e-5, atol=1e-5)


def test_not_onnx_is_left_to_onnxruntime_to_report() -> None:
    assert split_free_convs(b"not a model") is None
    assert concat_free_convs(b"not a model") is None
    assert cpu_rewrites(b"not a model") is None


def test_the_placeholder_detector_loses_every_c2f_split_and_keeps_its_outputs(model_dir: Path) -> None:
    original = (model_dir / "detector.onnx").read_bytes()
    rewritten = split_free_convs(original)
    assert rewritten is not None
    assert op_counts(original)["Split"] > 0 and op_counts(rewritten)["Split"] == op_counts(original)["Split"] - 8
    frame = np.random.default_rng(5).integers(0, 256, (1, 3, 640, 640), dtype=np.uint8)
    both = uint8_image_input(rewritten)
    assert both is not None
    expected = run(original, frame * np.float32(1 / 255), "images")[0]
    np.testing.assert_allclose(run(both, frame, "images")[0], expected, rtol=1e-4, atol=1e-3)
    assert split_free_convs(rewritten) is None  # nothing left to rewrite


# Concat-free


def concat_block(
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
    return small_model(nodes, outputs, initializers)


@pytest.mark.parametrize(
    "variant",
    [{}, {"widths": (16, 16)}, {"widths": (4, 8, 12, 16)}, {"bias": False}],
    ids=lambda variant: ",".join(f"{k}={v}" for k, v in variant.items()) or "three parts",
)
def test_matched_blocks_lose_their_concat_and_keep_their_outputs(variant: dict[str, Any], feed: np.ndarray) -> None:
    original = concat_block(**variant)
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
def test_other_concats_are_left_alone(variant: dict[str, Any]) -> None:
    assert concat_free_convs(concat_block(**variant)) is None


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


def optimised_ops(model: bytes, directory: Path) -> Counter[str]:
    """The op types of the graph onnxruntime's CPU provider really runs (ORT_ENABLE_ALL)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(directory / "optimised.onnx")
    ort.InferenceSession(model, sess_options=options, providers=[CPU_PROVIDER])
    return Counter(node.op_type for node in onnx.load(directory / "optimised.onnx").graph.node)


def test_onnxruntime_keeps_the_rewritten_detector_in_its_blocked_layout(model_dir: Path, tmp_path: Path) -> None:
    """The point of the rewrites, asked of the consumer itself: onnxruntime's NCHWc transformer
    leaves the blocked layout around every Split and reads Concats back; after the rewrites only
    the head's outputs are converted, and the Concat-free sums are fused into their Convs."""
    original = (model_dir / "detector.onnx").read_bytes()
    before = optimised_ops(original, tmp_path)
    conversions = before["ReorderInput"] + before["ReorderOutput"]
    if conversions == 0:
        pytest.skip("this CPU's onnxruntime does not use the blocked NCHWc layout")
    rewritten = cpu_rewrites(original)
    assert rewritten is not None
    after = optimised_ops(rewritten, tmp_path)
    assert after["ReorderInput"] + after["ReorderOutput"] <= 6 < conversions
    # Each Concat-free sum became the fused-sum input of a blocked Conv, not an Add of its own.
    assert after["Add"] == before["Add"]
