"""Placeholder models: real ONNX graphs with the shapes and compute cost of the production ones.

Nothing can be downloaded where this runs, so `make-models` builds a YOLOv8n-like detector and an
EfficientNet-B0-like identifier with fixed, seeded random weights. They exercise the same loading,
pre/post-processing and runtime paths (and cost the same FLOPs) as trained models, which are
mounted over /models. Their predictions are meaningless: random weights in a deep SiLU network
shrink activations layer by layer, so the placeholder detector scores every anchor far below any
threshold and reports no cats.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from inference.labels import BEHAVIOURS

OPSET = 17
# IR version 9 is readable by every onnxruntime >= 1.16.
IR_VERSION = 9
DETECTOR_FILE = "detector.onnx"
IDENTIFIER_FILE = "identifier.onnx"
CAT_NAMES_FILE = "cat_names.json"
DETECTOR_INPUT = "images"
DETECTOR_OUTPUT = "output0"
IDENTIFIER_INPUT = "input"
IDENTIFIER_OUTPUT = "logits"
DETECTOR_SIZE = 640
IDENTIFIER_SIZE = 224
DETECTOR_STRIDES = (8, 16, 32)
DFL_BINS = 16
PLACEHOLDER_CAT_NAMES = ("mochi", "luna", "tiger")
CLASS_BIAS = -6.0
BATCH_AXIS = "batch"


class _GraphBuilder:
    """Accumulates nodes and seeded random initializers; conv weights are BatchNorm-folded."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def constant(self, array: np.ndarray, hint: str = "const") -> str:
        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(
        self,
        op_type: str,
        inputs: Sequence[str],
        outputs: int = 1,
        output_names: Sequence[str] | None = None,
        **attrs: Any,
    ) -> list[str]:
        names = list(output_names) if output_names else [self._name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, **attrs))
        return names

    def silu(self, x: str) -> str:
        # SiLU as exported by PyTorch at this opset: x * sigmoid(x).
        return self.op("Mul", [x, self.op("Sigmoid", [x])[0]])[0]

    def conv(
        self,
        x: str,
        c_in: int,
        c_out: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: bool = True,
        gain: float = 1.0,
        bias: float = 0.0,
    ) -> str:
        fan_in = c_in // groups * kernel * kernel
        weight = self.rng.standard_normal((c_out, c_in // groups, kernel, kernel), dtype=np.float32) * np.float32(
            gain / np.sqrt(fan_in)
        )
        bias_array = np.full(c_out, bias, dtype=np.float32) + self.rng.standard_normal(
            c_out, dtype=np.float32
        ) * np.float32(0.01)
        pad = kernel // 2
        y = self.op(
            "Conv",
            [x, self.constant(weight, "w"), self.constant(bias_array, "b")],
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=[pad, pad, pad, pad],
            group=groups,
        )[0]
        return self.silu(y) if act else y

    def concat(self, inputs: Sequence[str], axis: int = 1) -> str:
        return self.op("Concat", inputs, axis=axis)[0]

    def split(self, x: str, sizes: Sequence[int], axis: int = 1) -> list[str]:
        return self.op(
            "Split", [x, self.constant(np.array(sizes, dtype=np.int64), "split")], outputs=len(sizes), axis=axis
        )

    def reshape(self, x: str, shape: Sequence[int]) -> str:
        return self.op("Reshape", [x, self.constant(np.array(shape, dtype=np.int64), "shape")])[0]

    def model(
        self, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto], name: str
    ) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="catwatcher-make-models"
        )
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model)
        return model


def _c2f(g: _GraphBuilder, x: str, c_in: int, c_out: int, repeats: int, shortcut: bool) -> str:
    """YOLOv8's C2f: split, a chain of 3x3 bottlenecks, concatenate every intermediate."""
    hidden = c_out // 2
    first, current = g.split(g.conv(x, c_in, 2 * hidden), [hidden, hidden])
    outputs = [first, current]
    for _ in range(repeats):
        y = g.conv(g.conv(current, hidden, hidden, 3), hidden, hidden, 3, gain=0.5)
        current = g.op("Add", [current, y])[0] if shortcut else y
        outputs.append(current)
    return g.conv(g.concat(outputs), (2 + repeats) * hidden, c_out)


def _sppf(g: _GraphBuilder, x: str, channels: int) -> str:
    hidden = channels // 2
    pooled = [g.conv(x, channels, hidden)]
    for _ in range(3):
        pooled.append(g.op("MaxPool", [pooled[-1]], kernel_shape=[5, 5], strides=[1, 1], pads=[2, 2, 2, 2])[0])
    return g.conv(g.concat(pooled), 4 * hidden, channels)


def _upsample(g: _GraphBuilder, x: str) -> str:
    scales = g.constant(np.array([1, 1, 2, 2], dtype=np.float32), "scales")
    return g.op(
        "Resize", [x, "", scales], mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"
    )[0]


def _anchor_grid(size: int, strides: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre anchors in cell units ([1, 2, N]) and the stride of each anchor ([1, 1, N])."""
    centres, stride_per_anchor = [], []
    for stride in strides:
        cells = size // stride
        ys, xs = np.meshgrid(np.arange(cells) + 0.5, np.arange(cells) + 0.5, indexing="ij")
        centres.append(np.stack([xs.ravel(), ys.ravel()]))
        stride_per_anchor.append(np.full(cells * cells, stride))
    return (
        np.concatenate(centres, axis=1)[None].astype(np.float32),
        np.concatenate(stride_per_anchor)[None, None].astype(np.float32),
    )


def build_detector(num_classes: int = len(BEHAVIOURS), seed: int = 0) -> onnx.ModelProto:
    """YOLOv8n layout (widths 16..256, C2f, SPPF, PAN neck, decoupled DFL head): [N, 3, 640, 640] -> [N, 4+nc, 8400].

    The batch axis is dynamic (as `yolo export dynamic=True` writes it), so frames can be batched.
    """
    g = _GraphBuilder(seed)
    x = g.conv(DETECTOR_INPUT, 3, 16, 3, 2)  # 320
    x = _c2f(g, g.conv(x, 16, 32, 3, 2), 32, 32, 1, True)  # 160
    p3 = _c2f(g, g.conv(x, 32, 64, 3, 2), 64, 64, 2, True)  # 80
    p4 = _c2f(g, g.conv(p3, 64, 128, 3, 2), 128, 128, 2, True)  # 40
    p5 = _sppf(g, _c2f(g, g.conv(p4, 128, 256, 3, 2), 256, 256, 1, True), 256)  # 20
    h4 = _c2f(g, g.concat([_upsample(g, p5), p4]), 384, 128, 1, False)
    n3 = _c2f(g, g.concat([_upsample(g, h4), p3]), 192, 64, 1, False)
    n4 = _c2f(g, g.concat([g.conv(n3, 64, 64, 3, 2), h4]), 192, 128, 1, False)
    n5 = _c2f(g, g.concat([g.conv(n4, 128, 128, 3, 2), p5]), 384, 256, 1, False)

    box_channels = 4 * DFL_BINS
    per_scale = []
    for feature, channels in ((n3, 64), (n4, 128), (n5, 256)):
        box = g.conv(g.conv(g.conv(feature, channels, 64, 3), 64, 64, 3), 64, box_channels, act=False)
        # A strongly negative class bias (as YOLOv8 initialises it) keeps random-weight scores low,
        # so the placeholder reports no cats instead of thousands of boxes.
        cls = g.conv(g.conv(g.conv(feature, channels, 64, 3), 64, 64, 3), 64, num_classes, act=False, bias=CLASS_BIAS)
        # 0 keeps the batch axis as it comes (dynamic), -1 flattens the grid.
        per_scale.append(g.reshape(g.concat([box, cls]), [0, box_channels + num_classes, -1]))
    box, cls = g.split(g.concat(per_scale, axis=2), [box_channels, num_classes])

    # Distribution focal loss decoding: expected value of a 16-bin softmax per box side.
    bins = g.op("Softmax", [g.reshape(box, [0, 4, DFL_BINS, -1])], axis=2)[0]
    projection = g.constant(np.arange(DFL_BINS, dtype=np.float32).reshape(1, 1, DFL_BINS, 1), "dfl")
    distances = g.op(
        "ReduceSum", [g.op("Mul", [bins, projection])[0], g.constant(np.array([2], dtype=np.int64), "axes")], keepdims=0
    )[0]
    left_top, right_bottom = g.split(distances, [2, 2])
    anchors, strides = _anchor_grid(DETECTOR_SIZE, DETECTOR_STRIDES)
    anchor_name, stride_name = g.constant(anchors, "anchors"), g.constant(strides, "strides")
    top_left = g.op("Sub", [anchor_name, left_top])[0]
    bottom_right = g.op("Add", [anchor_name, right_bottom])[0]
    centre = g.op("Mul", [g.op("Add", [top_left, bottom_right])[0], g.constant(np.array(0.5, dtype=np.float32))])[0]
    size = g.op("Sub", [bottom_right, top_left])[0]
    boxes = g.op("Mul", [g.concat([centre, size]), stride_name])[0]
    g.op("Concat", [boxes, g.op("Sigmoid", [cls])[0]], output_names=[DETECTOR_OUTPUT], axis=1)

    anchors_total = anchors.shape[2]
    return g.model(
        [
            helper.make_tensor_value_info(
                DETECTOR_INPUT, TensorProto.FLOAT, [BATCH_AXIS, 3, DETECTOR_SIZE, DETECTOR_SIZE]
            )
        ],
        [
            helper.make_tensor_value_info(
                DETECTOR_OUTPUT, TensorProto.FLOAT, [BATCH_AXIS, 4 + num_classes, anchors_total]
            )
        ],
        "catwatcher_detector_yolov8n_like",
    )


# EfficientNet-B0 stages: (expansion, output channels, repeats, first stride, kernel).
_B0_STAGES = (
    (1, 16, 1, 1, 3),
    (6, 24, 2, 2, 3),
    (6, 40, 2, 2, 5),
    (6, 80, 3, 2, 3),
    (6, 112, 3, 1, 5),
    (6, 192, 4, 2, 5),
    (6, 320, 1, 1, 3),
)


def _mbconv(g: _GraphBuilder, x: str, c_in: int, c_out: int, expansion: int, kernel: int, stride: int) -> str:
    """Inverted residual: 1x1 expand, depthwise kxk, squeeze-and-excitation, 1x1 project."""
    hidden = c_in * expansion
    h = g.conv(x, c_in, hidden) if expansion != 1 else x
    h = g.conv(h, hidden, hidden, kernel, stride, groups=hidden)
    squeezed = g.conv(g.op("GlobalAveragePool", [h])[0], hidden, max(1, c_in // 4))
    excitation = g.op("Sigmoid", [g.conv(squeezed, max(1, c_in // 4), hidden, act=False)])[0]
    h = g.conv(g.op("Mul", [h, excitation])[0], hidden, c_out, act=False, gain=0.5)
    return g.op("Add", [x, h])[0] if stride == 1 and c_in == c_out else h


def build_identifier(num_cats: int, seed: int = 1) -> onnx.ModelProto:
    """EfficientNet-B0 layout: [N, 3, 224, 224] ImageNet-normalised crops -> [N, num_cats] logits."""
    g = _GraphBuilder(seed)
    x, channels = g.conv(IDENTIFIER_INPUT, 3, 32, 3, 2), 32
    for expansion, c_out, repeats, stride, kernel in _B0_STAGES:
        for index in range(repeats):
            x = _mbconv(g, x, channels, c_out, expansion, kernel, stride if index == 0 else 1)
            channels = c_out
    pooled = g.op("Flatten", [g.op("GlobalAveragePool", [g.conv(x, channels, 1280)])[0]])[0]
    weight = g.rng.standard_normal((num_cats, 1280), dtype=np.float32) * np.float32(1 / np.sqrt(1280))
    g.op(
        "Gemm",
        [pooled, g.constant(weight, "fc_w"), g.constant(np.zeros(num_cats, np.float32), "fc_b")],
        output_names=[IDENTIFIER_OUTPUT],
        transB=1,
    )
    return g.model(
        [
            helper.make_tensor_value_info(
                IDENTIFIER_INPUT, TensorProto.FLOAT, [BATCH_AXIS, 3, IDENTIFIER_SIZE, IDENTIFIER_SIZE]
            )
        ],
        [helper.make_tensor_value_info(IDENTIFIER_OUTPUT, TensorProto.FLOAT, [BATCH_AXIS, num_cats])],
        "catwatcher_identifier_efficientnet_b0_like",
    )


def write_models(out_dir: Path, cat_names: Sequence[str] = PLACEHOLDER_CAT_NAMES, seed: int = 0) -> dict[str, Path]:
    """Writes detector.onnx, identifier.onnx and cat_names.json (the identifier's label order)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "detector": out_dir / DETECTOR_FILE,
        "identifier": out_dir / IDENTIFIER_FILE,
        "cat_names": out_dir / CAT_NAMES_FILE,
    }
    onnx.save(build_detector(seed=seed), paths["detector"])
    onnx.save(build_identifier(len(cat_names), seed=seed + 1), paths["identifier"])
    paths["cat_names"].write_text(json.dumps(list(cat_names)) + "\n")
    return paths
