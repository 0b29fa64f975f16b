"""The export doctor's FP16 check: weights and activation ranges against float16's range.

The graph runs on ONNX Runtime's CPU provider with every float tensor made an output, on a few
calibration images; a tensor beyond float16's largest value (65504) is an error (inf in the fp16
artifact), one within FP16_MARGIN of it a warning (other images can reach it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from edgeseg.exporters.doctor import Finding

if TYPE_CHECKING:
    import onnx

__all__ = ["FP16_MARGIN", "FP16_MAX", "check_fp16"]

FP16_MAX = 65504.0
FP16_MARGIN = 4.0  # activations of other images than the few measured can be this much larger


def _with_all_outputs(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, str]]:
    """A copy of `model` whose every float32 intermediate tensor is also an output, and the node
    that produces each tensor."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    producer = {
        out: (n.name or f"{n.op_type}_{i}") for i, n in enumerate(model.graph.node) for out in n.output
    }
    have = {o.name for o in inferred.graph.output}
    extra = [
        v
        for v in inferred.graph.value_info
        if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        and v.name not in have
        and v.name in producer
    ]
    inferred.graph.output.extend(extra)
    return inferred, producer


def _activation_peaks(
    model: onnx.ModelProto, inputs: Sequence[np.ndarray]
) -> tuple[dict[str, float], dict[str, str]]:
    """The largest |value| of every float tensor over `inputs` (inf where a value is not finite)."""
    import onnxruntime as ort

    probed, producer = _with_all_outputs(model)
    opts = ort.SessionOptions()
    # Unoptimised: fusions would hide the very tensors an FP16 graph keeps (a Conv's output before
    # its fused ReLU).
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    session = ort.InferenceSession(probed.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]
    peaks: dict[str, float] = {}
    for x in inputs:
        for tensor, value in zip(names, session.run(names, {name: x}), strict=True):
            arr = np.asarray(value)
            if arr.dtype.kind != "f" or arr.size == 0:
                continue
            peak = float(np.max(np.abs(arr))) if np.all(np.isfinite(arr)) else float("inf")
            peaks[tensor] = max(peaks.get(tensor, 0.0), peak)
    return peaks, producer


def check_fp16(model: onnx.ModelProto, inputs: Sequence[np.ndarray], limit: int = 10) -> list[Finding]:
    """Weights and activations (measured on `inputs`) beyond float16's range, or within
    FP16_MARGIN of it; at most `limit` activation findings, the largest first."""
    from onnx import numpy_helper

    found = []
    for t in model.graph.initializer:
        w = numpy_helper.to_array(t)
        if w.dtype.kind == "f" and w.size and float(np.max(np.abs(w))) > FP16_MAX:
            found.append(
                Finding(
                    "error",
                    "fp16",
                    f"weight '{t.name}' holds |w| = {float(np.max(np.abs(w))):.3g} > "
                    f"{FP16_MAX:g}, which float16 stores as inf",
                    t.name,
                    "keep the model in fp32, or retrain with weight decay",
                    "",
                )
            )
    peaks, producer = _activation_peaks(model, inputs)
    risky = sorted(((v, t) for t, v in peaks.items() if v > FP16_MAX / FP16_MARGIN), reverse=True)
    for value, tensor in risky[:limit]:
        where = producer.get(tensor, tensor)
        if value == float("inf"):
            found.append(
                Finding(
                    "error",
                    "fp16",
                    f"'{tensor}' is NaN or Inf already in fp32 on the measured images",
                    where,
                    "fix the model (or its input normalisation) first",
                    "",
                )
            )
        elif value > FP16_MAX:
            found.append(
                Finding(
                    "error",
                    "fp16",
                    f"activation '{tensor}' reaches |x| = {value:.3g} on "
                    f"{len(inputs)} image(s), beyond float16's {FP16_MAX:g}: inf in the fp16 "
                    "artifact",
                    where,
                    "use fp32 or int8 for this model, or scale the values "
                    "down before this node (normalise the input, add a normalisation layer)",
                    "",
                )
            )
        else:
            found.append(
                Finding(
                    "warning",
                    "fp16",
                    f"activation '{tensor}' reaches |x| = {value:.3g} on "
                    f"{len(inputs)} image(s), within {FP16_MARGIN:g}x of float16's {FP16_MAX:g}",
                    where,
                    "check the fp16 artifact's parity on real images (--val-data)",
                    "",
                )
            )
    if len(risky) > limit:
        found.append(
            Finding(
                "info",
                "fp16",
                f"{len(risky) - limit} more tensors near or beyond float16's range",
                "",
                "see the largest ones above",
                "",
            )
        )
    return found
