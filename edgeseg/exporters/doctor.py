"""The export doctor: known traps of an FP32 ONNX graph, per target and precision, found before
anything is built (`edgeseg doctor`, and inside every `export`).

Each check reads the graph and returns `Finding`s: how bad it is, what it is, the node it is at and
what to do. This module holds the finding and the shape checks:

- Resize/Upsample: sizes or scales computed at run time, and attributes the target's ONNX parser does
  not take or that runtimes round differently (each target's `DoctorRules.resize` in its descriptor,
  e.g. TensorRT's restrictions from onnx-tensorrt's operator matrix).
- The input size against the graph's total stride (strided Conv and pooling, followed through the
  ops that keep the NCHW layout): an error only where the graph cannot run at the size (its skips
  no longer line up), with a size it runs at, phrased as the caller's source accepts it.

edgeseg.exporters.doctor_ops checks ops (INT8 kernels, unsupported or slow ops per target),
edgeseg.exporters.doctor_fp16 measures activation ranges for FP16, and edgeseg.exporters.doctor_run
opens a checkpoint, an ONNX file or a bundle and runs them all (`diagnose`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from edgeseg.formats import TARGETS

if TYPE_CHECKING:
    import onnx

__all__ = [
    "SEVERITIES",
    "Finding",
    "attr_text",
    "check_resize",
    "check_stride",
    "constants",
    "fixed_dims",
    "node_attrs",
    "node_name",
    "size_failure",
    "total_stride",
]

SEVERITIES = ("error", "warning", "info")  # error: the artifact would be wrong or not build
_KNOWN_DOMAINS = ("", "ai.onnx", "com.microsoft")  # ONNX itself; ONNX Runtime's own contrib ops


@dataclass(frozen=True)
class Finding:
    """One trap found in a graph.

    Attributes:
        severity: "error" (the artifact would be wrong or would not build), "warning" (it may be
            wrong or slow on the target) or "info".
        check: the check's name (resize, stride, int8, fp16, ops).
        what: what was found. where: the node's name ("" for the whole graph). fix: what to do.
        target: the target it applies to ("" for every target).
    """

    severity: str
    check: str
    what: str
    where: str
    fix: str
    target: str = ""

    def line(self) -> str:
        """The finding as one line: `warning [tensorrt] resize at 'node': what; fix`."""
        at = f" at '{self.where}'" if self.where else ""
        tgt = f" [{self.target}]" if self.target else ""
        return f"{self.severity}{tgt} {self.check}{at}: {self.what}; {self.fix}"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def node_name(node: onnx.NodeProto, index: int) -> str:
    return node.name or f"{node.op_type}_{index}"


def node_attrs(node: onnx.NodeProto) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def attr_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def constants(graph: onnx.GraphProto) -> dict[str, Any]:
    """Tensors known before the run: initializers and Constant node outputs, as numpy arrays."""
    from onnx import numpy_helper

    known = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            value = next((a for a in node.attribute if a.name == "value"), None)
            if value is not None:
                known[node.output[0]] = numpy_helper.to_array(value.t)
    return known


def fixed_dims(value: onnx.ValueInfoProto) -> list[int] | None:
    """A graph input's dimensions when every one is a fixed number, else None."""
    dims = [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]
    return None if not dims or None in dims else [int(d) for d in dims if d is not None]


def check_resize(model: onnx.ModelProto, target: str) -> list[Finding]:
    """Resize/Upsample nodes whose sizes are computed at run time, or whose attributes `target`
    does not take or rounds differently."""
    rules, title = TARGETS[target].doctor.resize, TARGETS[target].title
    graph = model.graph
    known = constants(graph)
    fixed = all(fixed_dims(v) for v in graph.input if v.name not in known)
    found: list[Finding] = []

    def add(severity: str, what: str, where: str, fix: str) -> None:
        found.append(Finding(severity, "resize", what, where, fix, target))

    for i, node in enumerate(graph.node):
        if node.op_type not in ("Resize", "Upsample"):
            continue
        where, attrs = node_name(node, i), node_attrs(node)
        mode = attr_text(attrs.get("mode", "nearest"))
        if node.op_type == "Upsample":
            add(
                "warning",
                "Upsample is deprecated since opset 10",
                where,
                "export with opset 11 or later so that it becomes Resize",
            )
        # Resize(X, roi, scales, sizes) and Upsample(X, scales); empty names are absent inputs.
        shape_inputs = (
            [n for n in node.input[2:4] if n] if node.op_type == "Resize" else list(node.input[1:2])
        )
        dynamic = [n for n in shape_inputs if n not in known]
        # With a fixed input size the runtimes fold a size computed from shapes when they build; only
        # a dynamic input leaves it to run time.
        if dynamic and not fixed and rules.needs_constant_sizes:
            add(
                "warning",
                f"{mode} resize whose output size is computed at run time (from '{dynamic[0]}')",
                where,
                "export at a fixed size (no --dynamic), or resize by constant scale factors, so the "
                "size folds into a constant the engine's fusions can use",
            )
        coord = attr_text(attrs.get("coordinate_transformation_mode", "half_pixel"))
        if rules.modes is not None and mode not in rules.modes:
            add(
                "warning",
                f"mode '{mode}': {title}'s ONNX parser takes {' and '.join(rules.modes)} only",
                where,
                "use linear (bilinear) interpolation in the model",
            )
        if rules.coordinates is not None and coord not in rules.coordinates:
            add(
                "error",
                f"coordinate_transformation_mode '{coord}' is not one {title}'s parser takes",
                where,
                f"use one of {', '.join(rules.coordinates)}",
            )
        if mode == "nearest" and coord == "align_corners" and rules.rounds_nearest_its_way:
            add(
                "warning",
                "nearest resize with align_corners: source coordinates land on .5 at many pixels and "
                f"the rounding ({attr_text(attrs.get('nearest_mode', 'round_prefer_floor'))}) decides them; "
                "runtimes that round otherwise shift mask edges by a pixel",
                where,
                "use linear, or nearest with asymmetric coordinates (PyTorch's own nearest)",
            )
        if mode == "linear" and coord == "align_corners":
            add(
                "info",
                "linear resize with align_corners (F.interpolate(align_corners=True))",
                where,
                "every target implements it; parity at export shows whether this runtime agrees",
            )
    return found


def _spatial_strides(node: onnx.NodeProto, known: dict[str, Any]) -> tuple[float, float] | None:
    """How much `node` shrinks (>1) or grows (<1) height and width; None for no spatial change."""
    attrs = node_attrs(node)
    if node.op_type in ("Conv", "MaxPool", "AveragePool", "LpPool"):
        s = list(attrs.get("strides", [1, 1])) or [1, 1]
        return (float(s[0]), float(s[-1])) if len(s) >= 2 else None
    if node.op_type == "ConvTranspose":
        s = list(attrs.get("strides", [1, 1])) or [1, 1]
        return (1 / s[0], 1 / s[-1]) if len(s) >= 2 else None
    if node.op_type in ("Resize", "Upsample"):
        slot = 2 if node.op_type == "Resize" else 1
        scales = known.get(node.input[slot]) if len(node.input) > slot and node.input[slot] else None
        if scales is not None and getattr(scales, "size", 0) >= 4:
            return (1 / float(scales[2]), 1 / float(scales[3]))
    return None


# Ops whose output keeps its input's N x C x H x W layout (elementwise, convolution, pooling, resize,
# normalisation, concatenation, padding): the stride is followed through them only. A Reshape,
# Flatten, Transpose or MatMul turns the map into tokens (a transformer's attention); a stride
# followed through those would multiply along every stage (SegFormer's spatial-reduction convs
# gave 131072 instead of 32).
_KEEPS_LAYOUT = frozenset(
    [
        "Abs",
        "Add",
        "AveragePool",
        "BatchNormalization",
        "Cast",
        "Ceil",
        "Clip",
        "Concat",
        "Conv",
        "ConvTranspose",
        "Div",
        "Dropout",
        "Elu",
        "Erf",
        "Exp",
        "Floor",
        "Gelu",
        "HardSigmoid",
        "HardSwish",
        "Identity",
        "InstanceNormalization",
        "LRN",
        "LeakyRelu",
        "Log",
        "LpPool",
        "Max",
        "MaxPool",
        "Mean",
        "Min",
        "Mish",
        "Mul",
        "Neg",
        "Pad",
        "Pow",
        "PRelu",
        "QuantizeLinear",
        "DequantizeLinear",
        "Reciprocal",
        "Relu",
        "Resize",
        "Round",
        "Selu",
        "Sigmoid",
        "Sign",
        "Softplus",
        "Softsign",
        "Sqrt",
        "Sub",
        "Sum",
        "Tanh",
        "ThresholdedRelu",
        "Upsample",
        "Where",
    ]
)


def total_stride(model: onnx.ModelProto) -> tuple[int, int, dict[str, tuple[float, float]]]:
    """The graph's total stride (height, width): the largest factor by which any activation is
    smaller than the input, followed through every branch of ops that keep the NCHW layout (a
    tensor's stride is its inputs' largest times its node's), and each strided node's stride at its
    input."""
    graph = model.graph
    known = constants(graph)
    strides: dict[str, tuple[float, float]] = {v.name: (1.0, 1.0) for v in graph.input if v.name not in known}
    at_input: dict[str, tuple[float, float]] = {}
    for i, node in enumerate(graph.node):
        ins = [strides[n] for n in node.input if n in strides]
        if not ins or node.op_type not in _KEEPS_LAYOUT:
            continue
        s_in = (max(s[0] for s in ins), max(s[1] for s in ins))
        step = _spatial_strides(node, known)
        if step is not None and step != (1.0, 1.0):
            at_input[node_name(node, i)] = s_in
        s_out = s_in if step is None else (s_in[0] * step[0], s_in[1] * step[1])
        for out in node.output:
            strides[out] = s_out
    h = max((s[0] for s in strides.values()), default=1.0)
    w = max((s[1] for s in strides.values()), default=1.0)
    return max(1, round(h)), max(1, round(w)), at_input


def _image_input(model: onnx.ModelProto) -> onnx.ValueInfoProto | None:
    known = constants(model.graph)
    return next((v for v in model.graph.input if v.name not in known), None)


def size_failure(model: onnx.ModelProto, size: tuple[int, int]) -> str | None:
    """Why the graph cannot run at `size` = (width, height), or None when it can: its input fixed to
    1 x C x H x W, shapes inferred strictly (a skip that no longer lines up with its decoder map is
    a Concat or Add of two sizes), and, where ONNX Runtime is installed, a failure confirmed by
    running it (shape inference may not know every op)."""
    import onnx

    inp = _image_input(model)
    dims = inp.type.tensor_type.shape.dim if inp is not None else []
    if inp is None or len(dims) != 4:
        return None
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    channels = dims[1].dim_value if dims[1].HasField("dim_value") else 3
    shape = (1, channels, size[1], size[0])
    for dim, value in zip(_image_input(fixed).type.tensor_type.shape.dim, shape, strict=True):  # type: ignore[union-attr]
        dim.Clear()
        dim.dim_value = value
    del fixed.graph.value_info[:]  # shapes of another size; inferred again below
    for out in fixed.graph.output:
        for dim in out.type.tensor_type.shape.dim:
            dim.Clear()
    try:
        onnx.shape_inference.infer_shapes(fixed, strict_mode=True, data_prop=True)
        return None
    except Exception as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError:
        return reason
    try:
        session = ort.InferenceSession(fixed.SerializeToString(), providers=["CPUExecutionProvider"])
        session.run(None, {inp.name: np.zeros((1, channels, size[1], size[0]), np.float32)})
    except Exception as exc:
        text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", str(exc).strip())
        return text.splitlines()[0] if text else reason
    return None


SizeAdvice = Callable[[tuple[int, int]], "str | None"]


def _default_advice(model: onnx.ModelProto) -> SizeAdvice:
    inp = _image_input(model)
    dims = inp.type.tensor_type.shape.dim if inp is not None else []
    dynamic = len(dims) == 4 and not (dims[2].HasField("dim_value") and dims[3].HasField("dim_value"))
    if dynamic:
        return lambda s: f"--img-size {s[0]}x{s[1]}"
    return lambda s: f"export the graph again with a {s[0]}x{s[1]} input"


def check_stride(
    model: onnx.ModelProto, size: tuple[int, int] | None, advice: SizeAdvice | None = None
) -> list[Finding]:
    """An error when the graph cannot run at its input size (`size` = (width, height), else the
    graph's fixed one) because a node floors a side that does not divide by the total stride, so its
    decoder's maps no longer line up with their skips. A graph that handles any size (it pads, crops
    or resizes its maps to their skips, or has no skips) gives nothing: the size is its own business.
    The fix names a size the graph runs at, phrased by `advice` (what the caller's source accepts for
    that size, or None when it accepts none; default: --img-size for a dynamic input)."""
    if size is None:
        inp = _image_input(model)
        dims = (
            [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
            if inp
            else []
        )
        if len(dims) != 4 or dims[2] is None or dims[3] is None:
            return []  # a dynamic input: the size is checked where it is chosen (export --img-size)
        size = (int(dims[3]), int(dims[2]))
    w, h = size
    sh, sw, at_input = total_stride(model)
    if h % sh == 0 and w % sw == 0:
        return []
    failure = size_failure(model, size)
    if failure is None:
        return []
    known = constants(model.graph)
    where = ""
    for i, node in enumerate(model.graph.node):
        name = node_name(node, i)
        step = _spatial_strides(node, known)
        if name in at_input and step is not None and step[0] >= 1:
            ph, pw = h / at_input[name][0], w / at_input[name][1]
            if ph % step[0] or pw % step[1]:
                where = name
                break
    from edgeseg.models.registry import round_to_stride

    phrase = advice or _default_advice(model)
    fix = "make the model pad or crop its upsampled maps to their skips' size, so that it runs at any size"
    for k in (1, 2, 4, 8):  # the stride read from the graph, then coarser ones
        candidate = (round_to_stride(w, sw * k), round_to_stride(h, sh * k))
        text = phrase(candidate) if size_failure(model, candidate) is None else None
        if text:
            fix = f"use a size that divides by the stride, {candidate[0]}x{candidate[1]}: {text}"
            break
    return [
        Finding(
            "error",
            "stride",
            f"the graph does not run at {w}x{h} ({failure}): the size does not divide by its total "
            f"stride {sw}x{sh}, this node floors it and the decoder's maps no longer line up with "
            "their skips",
            where,
            fix,
        )
    ]
