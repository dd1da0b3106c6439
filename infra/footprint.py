"""What an ONNX model needs of ONNX Runtime's GPU arena, read from the file (no GPU, no runtime).

- weights: every initializer and Constant tensor (ONNX Runtime places them in the arena);
- peak activations: the most bytes of intermediate tensors alive at once, walking the graph's
  nodes in order (ONNX requires topological order) with shapes inferred at the given input size
  and batch;
- the arena estimate: weights + ACTIVATION_FACTOR x peak + WORKSPACE_ALLOWANCE_MB, rounded up.
  Why twice the peak: ONNX Runtime's first run allocates every tensor on its own from the BFC
  arena, later runs use one block planned from that run (memory pattern), and with
  `kSameAsRequested` the arena keeps both. The allowance covers cuDNN's convolution workspace,
  which the CUDA provider also takes from the arena (HEURISTIC search keeps it modest).

An estimate, not a measurement: size a production model's arena on its GPU once (see
notes/readme/budget.md). Needs the `onnx` package (the `inference` extra); imported lazily so the
rest of `infra` works without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
ACTIVATION_FACTOR = 2
WORKSPACE_ALLOWANCE_MB = 64
ROUND_TO_MB = 64


class FootprintError(ValueError):
    """A model that cannot be read or sized; the message names the file and what to change."""


@dataclass(frozen=True)
class ModelFootprint:
    path: str
    input_name: str
    input_shape: tuple[int, ...]
    weights_bytes: int
    peak_activation_bytes: int
    unknown_tensors: int  # intermediate tensors whose shape inference could not size (not counted)

    @property
    def weights_mb(self) -> float:
        return self.weights_bytes / MIB

    @property
    def peak_activation_mb(self) -> float:
        return self.peak_activation_bytes / MIB

    @property
    def arena_mb(self) -> int:
        """The estimated arena this model needs, in whole MiB rounded up to ROUND_TO_MB."""
        needed = (self.weights_bytes + ACTIVATION_FACTOR * self.peak_activation_bytes) / MIB + WORKSPACE_ALLOWANCE_MB
        return math.ceil(needed / ROUND_TO_MB) * ROUND_TO_MB

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "input": {"name": self.input_name, "shape": list(self.input_shape)},
            "weightsMb": round(self.weights_mb, 1),
            "peakActivationMb": round(self.peak_activation_mb, 1),
            "unknownTensors": self.unknown_tensors,
            "estimatedArenaMb": self.arena_mb,
        }


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise FootprintError(
            "reading a model needs the onnx package: pip install 'catwatcher-gpu-slicing[inference]'"
        ) from None
    return onnx


def _load(path: Path) -> Any:
    onnx = _onnx()
    try:
        data = path.read_bytes()
    except OSError as error:
        raise FootprintError(f"cannot read model {path}: {error.strerror or error}") from None
    try:
        model = onnx.load_model_from_string(data)
    except Exception:  # noqa: BLE001 - protobuf's parse errors share no base below Exception
        raise FootprintError(f"{path} is not an ONNX model (protobuf did not parse)") from None
    if not model.graph.node:
        raise FootprintError(f"{path} is not an ONNX model (its graph has no nodes)")
    return model


def _element_bytes(elem_type: int) -> int:
    from onnx import helper

    try:
        return int(helper.tensor_dtype_to_np_dtype(elem_type).itemsize)
    except Exception:  # noqa: BLE001 - onnx raises KeyError or TypeError by version
        return 0  # strings and unknown types: not sized


def _tensor_bytes(tensor: Any) -> int:
    return math.prod(tensor.dims) * _element_bytes(tensor.data_type)


def _fix_input(path: Path, value_info: Any, batch: int, input_size: int | None) -> tuple[int, ...]:
    """Pins the graph input's dynamic dimensions: batch first, then the image size."""
    dims = value_info.type.tensor_type.shape.dim
    shape = []
    for index, dim in enumerate(dims):
        fixed = dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else None
        if index == 0:
            if fixed is not None and fixed != batch:
                raise FootprintError(
                    f"{path}: input {value_info.name} has a fixed batch of {fixed}; got --batch {batch}"
                )
            value = batch
        elif fixed is not None:
            if index >= 2 and input_size is not None and fixed != input_size:
                raise FootprintError(
                    f"{path}: input {value_info.name} is fixed at {fixed}; got --input-size {input_size}"
                )
            value = fixed
        elif index >= 2 and input_size is not None:
            value = input_size
        else:
            raise FootprintError(f"{path}: input {value_info.name} dimension {index} is dynamic; pass --input-size")
        dim.ClearField("dim_param")
        dim.dim_value = value
        shape.append(value)
    return tuple(shape)


def model_footprint(path: Path, batch: int = 1, input_size: int | None = None) -> ModelFootprint:
    """Weights, peak activations at `batch` x `input_size`, and the arena estimate of one model."""
    if batch < 1:
        raise FootprintError(f"{path}: the batch must be >= 1; got {batch}")
    if input_size is not None and input_size < 1:
        raise FootprintError(f"--input-size must be >= 1; got {input_size}")
    onnx = _onnx()
    model = _load(path)
    graph = model.graph
    initializers = {tensor.name for tensor in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    if not inputs:
        raise FootprintError(f"{path}: the graph has no input besides its weights")
    input_shape = _fix_input(path, inputs[0], batch, input_size)
    for extra in inputs[1:]:
        _fix_input(path, extra, batch, input_size)

    weights = sum(_tensor_bytes(tensor) for tensor in graph.initializer)
    constants: set[str] = set()
    for node in graph.node:
        if node.op_type == "Constant":
            constants.update(node.output)
            weights += sum(_tensor_bytes(attribute.t) for attribute in node.attribute if attribute.name == "value")

    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as error:  # noqa: BLE001 - onnx's C++ inference errors arrive as several types
        raise FootprintError(f"{path}: shape inference failed: {str(error).splitlines()[0][:200]}") from None
    sizes: dict[str, int | None] = {}
    for value in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        tensor_type = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in tensor_type.shape.dim]
        known = tensor_type.HasField("shape") and all(d > 0 for d in dims)
        element = _element_bytes(tensor_type.elem_type)
        sizes[value.name] = math.prod(dims) * element if known and element else None

    nodes = list(graph.node)
    end = len(nodes)
    last_use: dict[str, int] = {}
    for index, node in enumerate(nodes):
        for name in node.input:
            if name:
                last_use[name] = index
    for output in graph.output:
        last_use[output.name] = end

    def sized(name: str) -> int:
        return sizes.get(name) or 0

    unknown = {
        name for node in nodes for name in node.output if name and name not in constants and sizes.get(name) is None
    }
    live = {value.name for value in inputs}
    current = sum(sized(name) for name in live)
    peak = current
    for index, node in enumerate(nodes):
        for name in node.output:
            if name and name not in constants and name not in initializers:
                live.add(name)
                current += sized(name)
        peak = max(peak, current)
        for name in [name for name in live if last_use.get(name, -1) <= index]:
            live.discard(name)
            current -= sized(name)
    return ModelFootprint(
        path=str(path),
        input_name=inputs[0].name,
        input_shape=input_shape,
        weights_bytes=weights,
        peak_activation_bytes=peak,
        unknown_tensors=len(unknown),
    )
