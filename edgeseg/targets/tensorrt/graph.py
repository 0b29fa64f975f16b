"""Engine-ready ONNX for TensorRT: precision written into the graph, and a check that it is.

TensorRT 11 builds strongly typed networks only (10.x does so with the STRONGLY_TYPED flag): there
are no FP16/INT8 builder flags and no calibrators, so every tensor's type comes from the graph.

- fp32: the exported graph as is.
- fp16: float16 weights and activations with float32 input/output (Cast nodes at the boundary), made
  by edgeseg.exporters.onnx_quant.to_fp16 (onnxruntime.transformers.float16, keep_io_types=True).
- int8: explicit quantization with ONNX Runtime's `quantize_static` in QDQ format, in the form
  TensorRT's Q/DQ support asks for: int8 activations and weights, symmetric (zero point 0),
  per-channel weights (Conv on axis 0, ConvTranspose on axis 1, where its output channels are), bias
  left in float (TensorRT fuses it itself), and Q/DQ on the inputs of the weighted ops only (NVIDIA's
  placement advice: TensorRT fuses the following ReLU and propagates the scales through MaxPool and
  Concat). Range estimation is the existing calibration reader with minmax, entropy or percentile.

`check_engine_ready(model, precision)` returns the violations of these properties (an empty list when
the graph is fine); the exporter refuses to write a graph that has any. The same graph executes on
ONNX Runtime's CPU provider (QDQ and fp16 kernels), which is how its accuracy is measured here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeseg.exporters.calibset import CalibrationSet
from edgeseg.exporters.onnx_quant import quantize_qdq
from edgeseg.formats import parse_precision
from edgeseg.targets.tensorrt.fuse import PREFIX

if TYPE_CHECKING:
    import onnx

__all__ = ["INT8_SETTINGS", "QUANTIZED_OPS", "check_engine_ready", "to_engine_int8"]

QUANTIZED_OPS = ("Conv", "ConvTranspose")  # the weighted ops of the U-Net
_WEIGHT_AXIS = {"Conv": 0, "ConvTranspose": 1}  # output-channel axis of each op's weight
_QDQ = ("QuantizeLinear", "DequantizeLinear")

# What the manifest records about the TensorRT INT8 graph (besides calibration set and method).
INT8_SETTINGS: dict[str, Any] = {
    "format": "QDQ (explicit quantization for TensorRT)",
    "activations": "int8 symmetric per-tensor",
    "weights": "int8 symmetric per-channel (Conv axis 0, ConvTranspose axis 1)",
    "bias": "float (not quantized)",
    "op_types": list(QUANTIZED_OPS),
}


def to_engine_int8(
    src: Path,
    dst: Path,
    calib: CalibrationSet,
    *,
    input_name: str,
    method: str,
    metadata: dict[str, str],
    exclude: Sequence[str] = (),
) -> dict[str, Any]:
    """Quantize the float graph at `src` into TensorRT's symmetric Q/DQ form at `dst`.

    `method` is minmax, entropy or percentile; `exclude` names Conv nodes kept in float (they then
    run in fp32 in the strongly typed engine). Returns what the manifest's `quantization` records.
    """

    return quantize_qdq(
        src,
        dst,
        calib,
        input_name=input_name,
        method=method,
        metadata=metadata,
        exclude=exclude,
        op_types=QUANTIZED_OPS,
        activations="QInt8",
        weights="QInt8",
        extra_options={
            "ActivationSymmetric": True,
            "WeightSymmetric": True,
            "QuantizeBias": False,
            # Explicit: older onnxruntime releases used axis 0 for ConvTranspose too.
            "QDQOpTypePerChannelSupportToAxis": dict(_WEIGHT_AXIS),
            # Q/DQ on the inputs of weighted ops only; TensorRT fuses what follows them.
            "OpTypesToExcludeOutputQuantization": list(QUANTIZED_OPS),
        },
        label="onnxruntime static QDQ for TensorRT",
        settings=INT8_SETTINGS,
        purpose="INT8 quantization for TensorRT",
    )


# ------------------------------------------------------------------------------------ structural check
class _Graph:
    """Index of one graph: producers, initializers, value types."""

    def __init__(self, model: onnx.ModelProto) -> None:
        from onnx import numpy_helper

        g = model.graph
        self.graph = g
        self.inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        # Constant nodes hold initializers too (some exporters write scales that way).
        for node in g.node:
            if node.op_type == "Constant" and node.attribute:
                self.inits[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.producer = {out: n for n in g.node for out in n.output}

    def attr(self, node: Any, name: str, default: int) -> int:
        return next((int(a.i) for a in node.attribute if a.name == name), default)

    def dq_of(self, tensor: str) -> Any:
        node = self.producer.get(tensor)
        return node if node is not None and node.op_type == "DequantizeLinear" else None


def _prepost_nodes(model: onnx.ModelProto) -> set[str]:
    """Names of the nodes of a pre/post wrapper (edgeseg.targets.tensorrt.fuse), if any."""

    return {n.name for n in model.graph.node if n.name.startswith(PREFIX)}


def _io_float32(model: onnx.ModelProto) -> list[str]:
    from onnx import TensorProto

    fused = bool(_prepost_nodes(model))
    problems = []
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        for v in values:
            elem = v.type.tensor_type.elem_type
            if elem == TensorProto.FLOAT or (fused and elem == TensorProto.UINT8):
                continue  # a pre/post graph takes uint8 frames and returns uint8 ids besides the logits
            problems.append(f"graph {kind} '{v.name}' is not float32 (callers feed and read float32)")
    return problems


def _check_prepost(model: onnx.ModelProto) -> list[str]:
    """What TensorRT's parser needs of the pre/post wrapper: uint8 only as network input or output
    (so only a Cast reads the frame and only a Cast writes the ids), no antialiased Resize (TensorRT
    has none), ArgMax on float logits."""
    from onnx import TensorProto

    g = _Graph(model)
    problems = []
    uint8_io = [
        v.name for v in [*g.graph.input, *g.graph.output] if v.type.tensor_type.elem_type == TensorProto.UINT8
    ]
    for name in uint8_io:
        readers = [n for n in g.graph.node if name in n.input]
        writer = g.producer.get(name)
        if any(n.op_type != "Cast" for n in readers) or (writer is not None and writer.op_type != "Cast"):
            problems.append(f"uint8 tensor '{name}' is used by a node other than Cast (TensorRT takes uint8 "
                            "only as network input or output)")  # fmt: skip
    for node in g.graph.node:
        if node.op_type == "Resize" and g.attr(node, "antialias", 0):
            problems.append(f"Resize '{node.name}' is antialiased, which TensorRT does not support")
        if node.op_type == "ArgMax" and g.attr(node, "select_last_index", 0):
            problems.append(f"ArgMax '{node.name}' selects the last index, which TensorRT does not support")
    return problems


def _check_qdq_node(g: _Graph, node: Any) -> list[str]:
    import numpy as np

    where = f"{node.op_type} '{node.name}'"
    if len(node.input) < 3 or node.input[2] not in g.inits:
        return [f"{where} has no constant zero point (TensorRT needs an explicit int8 zero point of 0)"]
    zp = g.inits[node.input[2]]
    problems = []
    if zp.dtype != np.int8:
        problems.append(f"{where} quantizes to {zp.dtype}, not int8")
    if np.any(zp != 0):
        problems.append(f"{where} has a non-zero zero point (TensorRT Q/DQ must be symmetric)")
    if node.input[1] not in g.inits:
        problems.append(f"{where} has no constant scale")
    return problems


def _check_weighted(g: _Graph, node: Any, allowed_float: set[str]) -> list[str]:
    where = f"{node.op_type} '{node.name}'"
    act, weight = g.dq_of(node.input[0]), g.dq_of(node.input[1])
    if act is None and weight is None:
        return [] if node.name in allowed_float else [f"{where} is not quantized (float input and weight)"]
    problems = []
    if act is None or g.producer.get(act.input[0]) is None:
        problems.append(f"{where} has a quantized weight but no quantized (Q/DQ) activation input")
    if weight is None or weight.input[0] not in g.inits:
        problems.append(f"{where} has a quantized activation but its weight is not a quantized constant")
    else:
        axis, w = g.attr(weight, "axis", 1), g.inits[weight.input[0]]
        want = _WEIGHT_AXIS[node.op_type]
        scale = g.inits.get(weight.input[1])
        per_channel = scale is not None and scale.size == w.shape[want] and scale.size > 1
        if axis != want or not per_channel:
            problems.append(
                f"{where}: weight must be quantized per channel on axis {want} "
                f"(got axis {axis}, {0 if scale is None else scale.size} scales for shape {list(w.shape)})"
            )
    if len(node.input) > 2 and node.input[2]:
        bias = node.input[2]
        if g.dq_of(bias) is not None or bias not in g.inits or g.inits[bias].dtype.kind != "f":
            problems.append(f"{where}: bias must stay a float constant (quantized bias found)")
    return problems


def _check_int8(model: onnx.ModelProto, allowed_float: set[str]) -> list[str]:
    g = _Graph(model)
    problems = []
    quantized = 0
    for node in g.graph.node:
        if node.op_type in _QDQ:
            problems += _check_qdq_node(g, node)
        elif node.op_type in _WEIGHT_AXIS:
            found = _check_weighted(g, node, allowed_float)
            problems += found
            quantized += g.dq_of(node.input[1]) is not None
    if not quantized:
        problems.append("no Conv/ConvTranspose is quantized: this is not an INT8 graph")
    return problems


def _check_fp16(model: onnx.ModelProto) -> list[str]:
    from onnx import TensorProto

    g = _Graph(model)
    problems = []
    for node in g.graph.node:
        if node.op_type in _QDQ:
            problems.append(f"{node.op_type} '{node.name}' in an FP16 graph")
        if node.op_type in _WEIGHT_AXIS:
            w = g.inits.get(node.input[1])
            if w is None or str(w.dtype) != "float16":
                problems.append(f"{node.op_type} '{node.name}' has a weight that is not float16")
    wrapper = _prepost_nodes(model)
    for name in _network_inputs(g, wrapper):
        casts = [n for n in g.graph.node if name in n.input and n.name not in wrapper]
        if not casts or any(n.op_type != "Cast" or g.attr(n, "to", 0) != TensorProto.FLOAT16 for n in casts):
            problems.append(f"graph input '{name}' is not cast to float16 at the boundary")
    for v in g.graph.output:
        node = g.producer.get(v.name)
        if node is not None and node.name in wrapper:
            continue  # the ids: the wrapper's own output
        if node is None or node.op_type != "Cast" or g.attr(node, "to", 0) != TensorProto.FLOAT:
            problems.append(f"graph output '{v.name}' is not cast back to float32 at the boundary")
    return problems


def _network_inputs(g: _Graph, wrapper: set[str]) -> list[str]:
    """The float inputs of the network itself: the graph inputs, or with a pre/post wrapper the
    tensors it hands to the network."""
    if not wrapper:
        return [v.name for v in g.graph.input]
    made = {out for n in g.graph.node if n.name in wrapper for out in n.output}
    return sorted({t for n in g.graph.node if n.name not in wrapper for t in n.input if t in made})


def check_engine_ready(
    model: onnx.ModelProto | str | Path, precision: str, *, allowed_float: Sequence[str] = ()
) -> list[str]:
    """Violations of what TensorRT's strongly typed build needs of a graph at `precision`.

    All precisions: only standard ONNX ops (TensorRT's parser knows no com.microsoft ops), float32
    graph input and output, or with a pre/post wrapper (edgeseg.targets.tensorrt.fuse) uint8
    frames in and uint8 ids out, touched only by Cast, and no antialiased Resize.
    fp16: float16 Conv weights, Cast to float16 after each input and back to
    float32 before each output, no Q/DQ. int8: every Q/DQ has a constant int8 zero point of 0; every
    Conv/ConvTranspose has a Q/DQ activation input and an int8 weight quantized per channel (axis 0,
    ConvTranspose axis 1); biases stay float; only nodes named in `allowed_float` may stay in float.
    fp32: no Q/DQ. Returns an empty list for a graph that is fine.
    """
    import onnx

    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    precision = parse_precision(precision)
    problems = [
        f"{n.op_type} '{n.name}' is in domain '{n.domain}', which TensorRT's ONNX parser does not know"
        for n in model.graph.node
        if n.domain not in ("", "ai.onnx")
    ]
    problems += _io_float32(model)
    if _prepost_nodes(model):
        problems += _check_prepost(model)
    if precision == "int8":
        problems += _check_int8(model, set(allowed_float))
    elif precision == "fp16":
        problems += _check_fp16(model)
    else:
        problems += [
            f"{n.op_type} '{n.name}' in an FP32 graph" for n in model.graph.node if n.op_type in _QDQ
        ]
    return problems
