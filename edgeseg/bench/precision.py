"""The precision a benchmark row's kernels ran at, read back from the runtime, and what follows from it.

A row's name says what was exported ("onnx:fp16"); what the runtime computes can differ: ONNX Runtime's
CPU provider has no fp16 convolutions on x86 and computes an fp16 graph in fp32 (its weights cast at
load), and OpenVINO's CPU plugin computes in bf16 where the CPU has it unless told otherwise. The
benchmark labels every row with `executed_precision` and measures its share of the ceiling of that
precision, never of the name's.

`executed_precision` is the one place the benchmark asks: it takes the backend's own
`executed_precision` where the backend reports one, else reads the runtime's compiled graph here.
Labels: "fp32", "bf16", "int8+fp32" (int8 layers, the rest fp32), "fp32 (fp16 weights upcast)".
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["compute_precision", "executed_precision", "label", "runs_as_named"]

_ORDER = ("int8", "fp16", "bf16", "fp32")
# onnx.TensorProto element types of float weights -> precision names.
_ONNX_FLOATS = {1: "fp32", 10: "fp16", 16: "bf16"}
_ORT_INT8 = {"QLinearConv", "ConvInteger", "MatMulInteger", "QLinearMatMul", "QGemm", "QLinearConvTranspose"}
_ORT_FLOAT = {
    "Conv",
    "ConvTranspose",
    "MatMul",
    "Gemm",
    "FusedConv",
    "FusedGemm",
    "FusedMatMul",
    "NhwcFusedConv",
}


def label(layers: Counter[str] | dict[str, int], upcast_from: str | None = None) -> str:
    """ "int8+fp32" from {precision: compute layers}; `upcast_from` adds that stored weights of that
    precision were computed in the precision shown."""
    names = [p for p in _ORDER if layers.get(p)] + sorted(p for p in layers if p not in _ORDER and layers[p])
    if not names:
        return "unknown"
    text = "+".join(names)
    return f"{text} ({upcast_from} weights upcast)" if upcast_from else text


def compute_precision(executed: str | None, named: str) -> str:
    """The precision whose ceiling a row is measured against: the lowest precision its compute layers
    ran at ("int8+fp32" -> "int8", "fp32 (fp16 weights upcast)" -> "fp32"); the row's named precision
    when the runtime could not tell."""
    if not executed or executed.startswith("unknown"):
        return named
    ran = executed.split(" ")[0].split("+")
    return next((p for p in _ORDER if p in ran), named)


def runs_as_named(executed: str | None, named: str) -> bool:
    """Whether the row's kernels ran at the precision its name says (fp16 that computes in fp32 does
    not; int8 with a few layers in fp32 does)."""
    return compute_precision(executed, named) == named


def executed_precision(backend: Any) -> str:
    """What `backend` (loaded) computes its model in. The backend's own `executed_precision` where it
    has one; otherwise read here from the compiled graph of the runtimes edgeseg ships (a stand-in
    for the backends' own reading, kept to this one function)."""
    own = getattr(type(backend), "executed_precision", None)
    if own is not None:
        return str(backend.executed_precision)
    compiled = getattr(backend, "_compiled", None)
    if compiled is not None and hasattr(compiled, "get_runtime_model"):  # OpenVINO's compiled model
        from edgeseg.targets.openvino.backend import runtime_layers

        layers = runtime_layers(compiled)
        ran = Counter(p for p, _, _ in layers)
        upcast = next((w for p, _, w in layers if w in ("fp16", "bf16") and w != p and p == "fp32"), None)
        return label(ran, upcast_from=upcast)
    session = getattr(backend, "_session", None)
    if session is not None and hasattr(session, "get_providers"):  # an ONNX Runtime session
        return _onnxruntime_precision(backend)
    if hasattr(backend, "autocast"):  # the torch backend: autocast's dtype, else the weights'
        return backend.autocast or "fp32"
    return "unknown"


def _onnxruntime_precision(backend: Any) -> str:
    """From the graph ONNX Runtime runs after its optimisations (written by a second session with the
    same providers and options): integer kernels are int8, a float operator computes in its weights'
    type (the CPU provider casts the weights of kernels it lacks, e.g. fp16 on x86)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgeseg-ort-") as folder:
        options = backend._session_options(ort)
        options.optimized_model_filepath = str(Path(folder) / "optimized.onnx")
        try:
            ort.InferenceSession(str(backend.path), sess_options=options, providers=backend.providers)
            optimized = onnx.load(options.optimized_model_filepath)
        except Exception:  # a provider that compiles the graph and writes none
            return "unknown"
    ran = _onnx_layers(optimized.graph)
    stored = _onnx_layers(onnx.load(str(backend.path), load_external_data=False).graph)
    upcast = next((p for p in ("fp16", "bf16") if stored.get(p) and not ran.get(p)), None)
    return label(ran, upcast_from=upcast)


def _onnx_layers(graph: Any) -> Counter[str]:
    types = {t.name: t.data_type for t in graph.initializer}
    for node in graph.node:  # weights made by a node: DequantizeLinear gives fp32, Cast its `to`
        if node.op_type == "DequantizeLinear":
            types[node.output[0]] = 1
        elif node.op_type == "Cast":
            types[node.output[0]] = next((a.i for a in node.attribute if a.name == "to"), 0)
    found: Counter[str] = Counter()
    for node in graph.node:
        if node.op_type in _ORT_INT8:
            found["int8"] += 1
        elif node.op_type in _ORT_FLOAT and len(node.input) > 1:
            found[_ONNX_FLOATS.get(types.get(node.input[1], 0), "fp32")] += 1
    return found
