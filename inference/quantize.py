"""`catwatcher-inference quantize`: an fp32 ONNX model -> int8 for the CPU path.

ONNX Runtime static quantisation (QDQ format, per-channel int8 weights, uint8 activations),
calibrated on frames from a directory, preprocessed exactly as the service preprocesses them.
Post-processing after the last Conv/MatMul/Gemm (YOLOv8's DFL decoding and the concatenation of
box coordinates with scores, an identifier's final reshape) stays float: one uint8 scale cannot
cover 0..640 pixel coordinates and 0..1 scores at once.

The speed-up needs int8 dot-product instructions: AVX512-VNNI or AVX-VNNI (x86), or the Arm
dot-product extension. Without them int8 convolutions are barely faster than fp32.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from inference.errors import ClientError
from inference.imaging import crop_batch, decode_pixels, imagenet_batch, letterbox_geometry, letterbox_tensor
from inference.labels import BEHAVIOURS

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
HEAVY_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})
MAX_CALIBRATION_PIXELS = 40_000_000


class QuantizeError(Exception):
    """A one-line problem with the command's inputs (the CLI prints it and exits 2)."""


@dataclass(frozen=True)
class QuantizeReport:
    kind: str  # "detector" or "identifier"
    frames: int
    skipped: list[str]
    float_nodes: int
    output: Path


def model_kind(model: onnx.ModelProto, path: Path) -> tuple[str, str, int]:
    """("detector" | "identifier", input name, input size) from the model's shapes."""
    inputs = [value for value in model.graph.input if value.name not in {init.name for init in model.graph.initializer}]
    if len(inputs) != 1 or len(model.graph.output) != 1:
        raise QuantizeError(
            f"{path}: expected one image input and one output, got "
            f"{len(inputs)} inputs and {len(model.graph.output)} outputs"
        )
    shape = [dim.dim_value if dim.HasField("dim_value") else None for dim in inputs[0].type.tensor_type.shape.dim]
    if len(shape) != 4 or shape[1] != 3 or shape[2] is None or shape[2] != shape[3]:
        raise QuantizeError(
            f"{path}: expected a square [N, 3, S, S] image input with a fixed S, got {inputs[0].name} {shape}"
        )
    output = [
        dim.dim_value if dim.HasField("dim_value") else None for dim in model.graph.output[0].type.tensor_type.shape.dim
    ]
    if len(output) == 3 and output[1] == 4 + len(BEHAVIOURS):
        return "detector", inputs[0].name, shape[2]
    if len(output) == 2:
        return "identifier", inputs[0].name, shape[2]
    raise QuantizeError(
        f"{path}: output {output} is neither a detector's [N, "
        f"{4 + len(BEHAVIOURS)}, anchors] nor an identifier's [N, cats]"
    )


def calibration_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise QuantizeError(f"{directory}: calibration directory does not exist or is not a directory")
    try:
        files = sorted(path for path in directory.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())
    except OSError as error:
        raise QuantizeError(f"{directory}: cannot list the calibration directory ({error.strerror or error})") from None
    if not files:
        raise QuantizeError(f"{directory}: no {', '.join(IMAGE_SUFFIXES)} frames to calibrate with")
    return files


def calibration_tensor(data: bytes, kind: str, size: int) -> np.ndarray:
    """A frame as the service feeds it: letterboxed 0..1 for the detector, a whole-frame
    ImageNet-normalised square for the identifier (its crops are squashed the same way)."""
    if kind == "detector":
        pixels, (width, height) = decode_pixels(
            data, MAX_CALIBRATION_PIXELS, target_size=lambda w, h: _resized(w, h, size)
        )
        return letterbox_tensor(pixels, letterbox_geometry(width, height, size), size)
    decoded, _ = decode_pixels(data, MAX_CALIBRATION_PIXELS, target_size=lambda w, h: (size, size))
    pixels = np.asarray(decoded)
    whole = np.array([[0, 0, pixels.shape[1], pixels.shape[0]]], dtype=np.float32)
    return imagenet_batch(crop_batch(pixels, whole, size))


def _resized(width: int, height: int, size: int) -> tuple[int, int]:
    box = letterbox_geometry(width, height, size)
    return box.resized_width, box.resized_height


def float_tail(model: onnx.ModelProto) -> list[str]:
    """Names of nodes with no Conv/MatMul/Gemm after them: the post-processing kept in float."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    heavy_after: dict[int, bool] = {}

    def has_heavy_after(node: onnx.NodeProto) -> bool:
        key = id(node)
        if key not in heavy_after:
            heavy_after[key] = False  # a graph is acyclic; this guards malformed input
            heavy_after[key] = any(
                nxt.op_type in HEAVY_OPS or has_heavy_after(nxt)
                for out in node.output
                for nxt in consumers.get(out, [])
            )
        return heavy_after[key]

    # Topological order from the back keeps the recursion shallow.
    for node in reversed(model.graph.node):
        has_heavy_after(node)
    return [node.name for node in model.graph.node if node.op_type not in HEAVY_OPS and not has_heavy_after(node)]


def _named(model: onnx.ModelProto) -> onnx.ModelProto:
    for index, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{index}"
    return model


class _FrameReader:
    """onnxruntime's CalibrationDataReader protocol over decoded frames."""

    def __init__(self, tensors: list[np.ndarray], input_name: str) -> None:
        self._feeds: Iterator[dict[str, np.ndarray]] = iter({input_name: tensor} for tensor in tensors)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def quantize_model(
    model_path: Path, calibration_dir: Path, output_path: Path, max_frames: int = 64, reduce_range: bool = False
) -> QuantizeReport:
    """Writes the int8 model to `output_path`. Raises QuantizeError naming the bad input.

    `reduce_range` quantises weights to 7 bits, for x86 CPUs without VNNI: their u8 x s8
    instruction (VPMADDUBSW) can saturate with full 8-bit weights (onnxruntime's guidance).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quant_pre_process, quantize_static

    if max_frames < 1:
        raise QuantizeError(f"--max-frames {max_frames}: must be at least 1")
    if not model_path.is_file():
        raise QuantizeError(f"{model_path}: model file does not exist or is not a file")
    if output_path.resolve() == model_path.resolve():
        raise QuantizeError(f"{output_path}: would overwrite the fp32 model; choose another --out")
    if not output_path.parent.is_dir():
        raise QuantizeError(f"{output_path.parent}: output directory does not exist")
    try:
        model = onnx.load(model_path)
        onnx.checker.check_model(model)
    except Exception as error:  # noqa: BLE001 - onnx's loader and checker raise many types; all mean not valid
        raise QuantizeError(
            f"{model_path}: not a valid ONNX model "
            f"({str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__})"
        ) from None
    kind, input_name, size = model_kind(model, model_path)

    tensors, skipped = [], []
    for path in calibration_files(calibration_dir)[:max_frames]:
        try:
            tensors.append(calibration_tensor(path.read_bytes(), kind, size))
        except (ClientError, OSError) as error:
            skipped.append(f"{path.name}: {getattr(error, 'detail', None) or error}")
    if not tensors:
        raise QuantizeError(f"{calibration_dir}: none of the frames could be decoded (first: {skipped[0]})")

    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        try:
            # Shape inference and graph optimisation, as ONNX Runtime recommends before quantising.
            quant_pre_process(model_path, prepared, skip_symbolic_shape=True)
            model = onnx.load(prepared)
        except Exception:  # noqa: BLE001 - pre-processing is optional: quantise the model as it is
            pass
        model = _named(model)
        tail = float_tail(model)
        try:
            quantize_static(
                model,
                output_path,
                _FrameReader(tensors, input_name),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                nodes_to_exclude=tail,
                reduce_range=reduce_range,
            )
        except Exception as error:  # noqa: BLE001 - whatever onnxruntime's quantiser raises is reported
            raise QuantizeError(
                f"{model_path}: quantisation failed "
                f"({str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__})"
            ) from None
    return QuantizeReport(kind, len(tensors), skipped, len(tail), output_path)
