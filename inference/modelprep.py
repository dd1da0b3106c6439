"""Folds the detector's 0..255 -> 0..1 input scaling into the model itself.

The service then hands onnxruntime the letterboxed frame as uint8 (1.2 MB instead of a 4.9 MB
float tensor): no float conversion pass in Python, a quarter of the memory per queued frame and
per batch. The graph gets a Cast to float, and the 1/255 goes where it costs nothing:

* into the weights of the Conv layers that read the image (YOLOv8 exports start with one):
  conv(W, x / 255) = conv(W / 255, x), zero padding included;
* into the scale of a QuantizeLinear reading it (int8 models from `quantize`):
  round(x / 255 / s) = round(x / (255 s));
* otherwise into an explicit Mul after the Cast.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

UNIT_SCALE = np.float32(1 / 255)


def uint8_image_input(model_bytes: bytes) -> bytes | None:
    """The model with a uint8 [N, 3, H, W] 0..255 input, or None if it has no float image input
    (then it is used unchanged: fed 0..1 floats as before)."""
    try:
        model = onnx.load_from_string(model_bytes)
    except Exception:  # noqa: BLE001 - any parse failure: onnxruntime reports what is wrong with it
        return None
    initializers = {init.name: init for init in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    if len(inputs) != 1:
        return None
    image = inputs[0]
    tensor_type = image.type.tensor_type
    if tensor_type.elem_type != TensorProto.FLOAT or len(tensor_type.shape.dim) != 4:
        return None
    name = image.name
    as_float = f"{name}__float"
    consumers = [node for node in model.graph.node if name in node.input]
    uses = {init_name: sum(init_name in node.input for node in model.graph.node) for init_name in initializers}

    def foldable(node: onnx.NodeProto) -> str | None:
        """The initializer that can absorb 1/255 for this consumer, if any."""
        if node.op_type == "Conv" and list(node.input).index(name) == 0 and len(node.input) > 1:
            weight = node.input[1]
        elif node.op_type == "QuantizeLinear" and list(node.input).index(name) == 0:
            weight = node.input[1]
        else:
            return None
        if weight not in initializers or uses[weight] != 1 or initializers[weight].data_type != TensorProto.FLOAT:
            return None
        return weight

    targets = [foldable(node) for node in consumers]
    nodes = [helper.make_node("Cast", [name], [as_float], to=TensorProto.FLOAT, name=f"{name}__cast")]
    if consumers and all(targets):
        for node, weight in zip(consumers, targets, strict=True):
            assert weight is not None
            values = numpy_helper.to_array(initializers[weight]).astype(np.float32)
            scaled = values * UNIT_SCALE if node.op_type == "Conv" else values * np.float32(255)
            initializers[weight].CopyFrom(numpy_helper.from_array(scaled.astype(np.float32), weight))
        source = as_float
    else:
        scale = f"{name}__unit_scale"
        model.graph.initializer.append(numpy_helper.from_array(np.array(UNIT_SCALE, dtype=np.float32), scale))
        nodes.append(helper.make_node("Mul", [as_float, scale], [f"{name}__unit"], name=f"{name}__to_unit"))
        source = f"{name}__unit"
    for node in consumers:
        for index, value in enumerate(node.input):
            if value == name:
                node.input[index] = source
    for node in reversed(nodes):
        model.graph.node.insert(0, node)
    tensor_type.elem_type = TensorProto.UINT8
    return model.SerializeToString()


# Elementwise ops that act on each channel alone: Split can move above them unchanged.
_CHANNELWISE_UNARY = frozenset({"Relu", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "HardSwish", "Elu", "Selu"})


def split_free_convs(model_bytes: bytes) -> bytes | None:
    """The model with every `Conv -> activation -> Split(channels)` made into one Conv and
    activation per part, or None if it has no such pattern (then it is used unchanged).

    YOLOv8's C2f blocks split a Conv's output in two. onnxruntime's CPU provider runs
    convolutions in a blocked channel layout (NCHWc) but has no Split in that layout, so every
    Split costs a conversion back to plain NCHW, and the residual Adds and Concats fed by its
    halves follow it out of the fast layout, each with its own conversions. Convolving with each
    part's rows of the weights gives the same values (each output channel is computed from its
    own weights alone) and keeps the whole block in NCHWc.

    Matched: a Conv with initializer weights (and bias), group 1, whose output goes only through
    SiLU (x * sigmoid(x)) or a one-input activation into a Split on axis 1 with known sizes.
    """
    try:
        model = onnx.load_from_string(model_bytes)
    except Exception:  # noqa: BLE001 - any parse failure: onnxruntime reports what is wrong with it
        return None
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}
    consumers = _consumers(graph)
    graph_outputs = {value.name for value in graph.output}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)

    def only_consumer(value: str) -> onnx.NodeProto | None:
        users = consumers.get(value, [])
        return users[0] if len(users) == 1 and value not in graph_outputs else None

    def activation_chain(conv_output: str, split_input: str) -> list[onnx.NodeProto] | None:
        """The nodes between the Conv and the Split, if they are SiLU, one activation or none."""
        if conv_output == split_input:
            return [] if only_consumer(conv_output) is not None else None
        users = consumers.get(conv_output, [])
        if conv_output in graph_outputs:
            return None
        last = producers.get(split_input)
        if last is None:
            return None
        if len(users) == 1 and users[0] is last and last.op_type in _CHANNELWISE_UNARY:
            return [last]
        if len(users) == 2 and last.op_type == "Mul" and last in users:
            sigmoid = next((user for user in users if user is not last), None)
            if (
                sigmoid is not None
                and sigmoid.op_type == "Sigmoid"
                and sorted(last.input) == sorted([conv_output, sigmoid.output[0]])
                and only_consumer(sigmoid.output[0]) is last
            ):
                return [sigmoid, last]
        return None

    def split_sizes(split: onnx.NodeProto, channels: int) -> list[int] | None:
        attributes = _attributes(split)
        if attributes.get("axis", 0) != 1:
            return None
        if len(split.input) > 1 and split.input[1]:
            if split.input[1] not in initializers:
                return None
            sizes = [int(size) for size in numpy_helper.to_array(initializers[split.input[1]])]
        elif "split" in attributes:
            sizes = [int(size) for size in attributes["split"]]
        else:
            parts = len(split.output)
            if opset >= 18:  # the last part takes the remainder
                size = -(-channels // parts)
                sizes = [size] * (parts - 1) + [channels - size * (parts - 1)]
            else:
                sizes = [channels // parts] * parts
        if sum(sizes) != channels or any(size < 1 for size in sizes) or len(sizes) != len(split.output):
            return None
        return sizes

    unique = _FreshNames(graph)

    rewritten = False
    refused: set[str] = set()
    while True:
        # Rewriting rebuilds graph.node (protobuf copies the nodes), so each pass looks again.
        split = next((node for node in graph.node if node.op_type == "Split" and node.output[0] not in refused), None)
        if split is None:
            break
        refused.add(split.output[0])
        conv = producers.get(split.input[0])
        while conv is not None and conv.op_type != "Conv":
            conv = producers.get(conv.input[0]) if conv.op_type in (*_CHANNELWISE_UNARY, "Mul") else None
        if conv is None or len(conv.input) < 2 or conv.input[1] not in initializers:
            continue
        chain = activation_chain(conv.output[0], split.input[0])
        attributes = _attributes(conv)
        if chain is None or attributes.get("group", 1) != 1:
            continue
        bias = conv.input[2] if len(conv.input) > 2 and conv.input[2] else None
        if bias is not None and bias not in initializers:
            continue
        weights = numpy_helper.to_array(initializers[conv.input[1]])
        sizes = split_sizes(split, weights.shape[0])
        if sizes is None:
            continue
        biases = numpy_helper.to_array(initializers[bias]) if bias is not None else None
        new_nodes: list[onnx.NodeProto] = []
        start = 0
        for index, (size, part_output) in enumerate(zip(sizes, split.output, strict=True)):
            prefix = unique(f"{conv.name or conv.output[0]}__part{index}")
            weight_name = unique(f"{prefix}__w")
            graph.initializer.append(numpy_helper.from_array(weights[start : start + size].copy(), weight_name))
            inputs = [conv.input[0], weight_name]
            if biases is not None:
                bias_name = unique(f"{prefix}__b")
                graph.initializer.append(numpy_helper.from_array(biases[start : start + size].copy(), bias_name))
                inputs.append(bias_name)
            start += size
            renamed = {conv.output[0]: part_output if not chain else unique(f"{prefix}__conv")}
            part_conv = helper.make_node("Conv", inputs, [renamed[conv.output[0]]], name=unique(f"{prefix}__conv_node"))
            part_conv.attribute.extend(conv.attribute)
            new_nodes.append(part_conv)
            for link in chain:
                last = link is chain[-1]
                output = part_output if last else unique(f"{prefix}__{link.op_type.lower()}")
                renamed[link.output[0]] = output
                part = helper.make_node(
                    link.op_type,
                    [renamed.get(value, value) for value in link.input],
                    [output],
                    name=unique(f"{prefix}__{link.op_type.lower()}_node"),
                )
                part.attribute.extend(link.attribute)
                new_nodes.append(part)
        removed = {id(conv), id(split), *(id(link) for link in chain)}
        position = min(index for index, node in enumerate(graph.node) if id(node) in removed)
        kept = [node for node in graph.node if id(node) not in removed]
        del graph.node[:]
        graph.node.extend(kept[:position] + new_nodes + kept[position:])
        stale = {conv.output[0], *(link.output[0] for link in chain), *split.output}
        kept_info = [info for info in graph.value_info if info.name not in stale]
        del graph.value_info[:]
        graph.value_info.extend(kept_info)
        producers = {output: node for node in graph.node for output in node.output}
        consumers = _consumers(graph)
        rewritten = True
    if not rewritten:
        return None
    _drop_unused_initializers(graph)
    return model.SerializeToString()


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    """Every value's consuming nodes."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for value in node.input:
            consumers.setdefault(value, []).append(node)
    return consumers


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    return {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}


class _FreshNames:
    """Hands out names no initializer, value, node or input of `graph` has yet."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self._taken = {init.name for init in graph.initializer} | {value.name for value in graph.input}
        self._taken |= {value for node in graph.node for value in node.output} | {node.name for node in graph.node}

    def __call__(self, name: str) -> str:
        candidate, number = name, 1
        while candidate in self._taken:
            number += 1
            candidate = f"{name}_{number}"
        self._taken.add(candidate)
        return candidate


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {value for node in graph.node for value in node.input} | {value.name for value in graph.output}
    unused = {init.name for init in graph.initializer if init.name not in used}
    kept_initializers = [init for init in graph.initializer if init.name not in unused]
    del graph.initializer[:]
    graph.initializer.extend(kept_initializers)
    # Models before IR 4 also list initializers as graph inputs; a dropped one must go there too.
    kept_inputs = [value for value in graph.input if value.name not in unused]
    del graph.input[:]
    graph.input.extend(kept_inputs)


def concat_free_convs(model_bytes: bytes) -> bytes | None:
    """The model with every `Concat(channels) -> 1x1 Conv` made into one 1x1 Conv per Concat
    input, summed, or None if it has no such pattern (then it is used unchanged).

    A 1x1 convolution of concatenated channels is the sum of the convolutions of each part with
    its columns of the weights (bias added once). YOLOv8 ends every C2f block, SPPF and neck
    stage this way. onnxruntime's CPU provider folds each Add into the convolution that precedes
    it (the blocked layout's fused sum), so the concatenated tensor is never written and read
    back: about 2-3 % of a detector run (paired runs).

    Matched: a Concat on axis 1 whose inputs have known channel counts and whose only consumer
    is a 1x1, stride 1, unpadded, ungrouped Conv with initializer weights (and bias).
    """
    try:
        model = onnx.load_from_string(model_bytes)
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - any failure: the model is used as it is
        return None
    graph = model.graph
    channels: dict[str, int] = {}
    for info in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        dims = info.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[1].HasField("dim_value"):
            channels[info.name] = dims[1].dim_value
    initializers = {init.name: init for init in graph.initializer}
    graph_outputs = {value.name for value in graph.output}
    consumers = _consumers(graph)
    unique = _FreshNames(graph)

    replacements: dict[str, list[onnx.NodeProto]] = {}  # Conv output -> its parts and sums
    dropped: set[str] = set()  # outputs of the Concats that go
    for concat in graph.node:
        attributes = _attributes(concat)
        users = consumers.get(concat.output[0], [])
        if concat.op_type != "Concat" or attributes.get("axis") != 1 or len(concat.input) < 2:
            continue
        if len(users) != 1 or concat.output[0] in graph_outputs or users[0].op_type != "Conv":
            continue
        conv = users[0]
        conv_attributes = _attributes(conv)
        if (
            conv.input[0] != concat.output[0]
            or len(conv.input) < 2
            or conv.input[1] not in initializers
            or conv_attributes.get("group", 1) != 1
            or any(value != 1 for value in conv_attributes.get("strides", [1, 1]))
            or any(value != 1 for value in conv_attributes.get("dilations", [1, 1]))
            or any(value != 0 for value in conv_attributes.get("pads", [0, 0, 0, 0]))
            or conv_attributes.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID", "NOTSET", "VALID")
        ):
            continue
        bias = conv.input[2] if len(conv.input) > 2 and conv.input[2] else None
        if bias is not None and bias not in initializers:
            continue
        weights = numpy_helper.to_array(initializers[conv.input[1]])
        known = [channels.get(name) for name in concat.input]
        sizes = [size for size in known if size is not None]
        if (
            weights.ndim != 4
            or weights.shape[2:] != (1, 1)
            or len(sizes) != len(known)
            or sum(sizes) != weights.shape[1]
        ):
            continue
        prefix = conv.name or conv.output[0]
        parts: list[onnx.NodeProto] = []
        start, total = 0, None
        for index, (source, size) in enumerate(zip(concat.input, sizes, strict=True)):
            weight_name = unique(f"{prefix}__in{index}__w")
            graph.initializer.append(numpy_helper.from_array(weights[:, start : start + size].copy(), weight_name))
            start += size
            inputs: list[str] = [source, weight_name] + ([bias] if index == 0 and bias is not None else [])
            last = index == len(concat.input) - 1
            partial = unique(f"{prefix}__in{index}")
            part = helper.make_node("Conv", inputs, [partial], name=unique(f"{prefix}__in{index}__conv"))
            part.attribute.extend(conv.attribute)
            parts.append(part)
            if total is None:
                total = partial
            else:
                summed = conv.output[0] if last else unique(f"{prefix}__sum{index}")
                parts.append(
                    helper.make_node("Add", [total, partial], [summed], name=unique(f"{prefix}__sum{index}_node"))
                )
                total = summed
        replacements[conv.output[0]] = parts
        dropped.add(concat.output[0])
    if not replacements:
        return None
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.op_type == "Concat" and node.output[0] in dropped:
            continue
        if node.op_type == "Conv" and node.output[0] in replacements:
            nodes.extend(replacements[node.output[0]])
            continue
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    kept_info = [info for info in graph.value_info if info.name not in dropped]
    del graph.value_info[:]
    graph.value_info.extend(kept_info)
    _drop_unused_initializers(graph)
    return model.SerializeToString()


def cpu_rewrites(model_bytes: bytes) -> bytes | None:
    """Both rewrites for onnxruntime's CPU layout (Split-free, then Concat-free), or None if
    neither applies."""
    split_free = split_free_convs(model_bytes)
    concat_free = concat_free_convs(split_free or model_bytes)
    return concat_free or split_free
