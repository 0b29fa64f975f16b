"""The export doctor's op checks: heavy ops (Conv, ConvTranspose, MatMul, Gemm) that edgeseg's INT8
for the target keeps in float, with their share of the model's multiply-accumulates (INT8 gains
nothing there); ops the target does not run (TensorRT's refused ops, custom domains) or runs slowly
(control flow)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from edgeseg.exporters.doctor import Finding, node_name
from edgeseg.formats import TARGETS

if TYPE_CHECKING:
    import onnx

__all__ = ["INT8_OPS", "check_int8", "check_ops"]

# The ops edgeseg's INT8 export quantizes per target (each descriptor's `doctor.int8_ops`). A heavy op
# outside its target's set runs in float in the INT8 artifact.
INT8_OPS: dict[str, frozenset[str]] = {
    t.name: t.doctor.int8_ops for t in TARGETS.values() if t.doctor.int8_ops
}
_HEAVY = ("Conv", "ConvTranspose", "MatMul", "Gemm")

# Control flow runs as separate subgraphs on every runtime here: nothing fuses across it.
_SLOW = frozenset({"Loop", "Scan", "If"})
_KNOWN_DOMAINS = ("", "ai.onnx", "com.microsoft")  # ONNX itself; ONNX Runtime's own contrib ops


def _macs(model: onnx.ModelProto) -> dict[str, int]:
    """Multiply-accumulates of each heavy node, from the inferred shapes (0 where unknown)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes: dict[str, list[int]] = {}
    for v in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in v.type.tensor_type.shape.dim]
        shapes[v.name] = dims
    for t in model.graph.initializer:
        shapes[t.name] = list(t.dims)
    macs: dict[str, int] = {}
    for i, node in enumerate(model.graph.node):
        if node.op_type not in _HEAVY:
            continue
        out, x = shapes.get(node.output[0], []), shapes.get(node.input[0], [])
        wt = shapes.get(node.input[1], []) if len(node.input) > 1 else []
        n = 0
        if node.op_type == "Conv" and out and len(wt) >= 3:
            n = _prod(out) * _prod(wt[1:])
        elif node.op_type == "ConvTranspose" and x and len(wt) >= 3:
            n = _prod(x) * _prod(wt[1:])
        elif node.op_type in ("MatMul", "Gemm") and out and x:
            n = _prod(out) * x[-1]
        macs[node_name(node, i)] = n
    return macs


def _prod(dims: Iterable[int]) -> int:
    total = 1
    for d in dims:
        total *= max(int(d), 0)
    return total


def check_int8(model: onnx.ModelProto, target: str) -> list[Finding]:
    """Heavy ops edgeseg's INT8 for `target` keeps in float, with their share of the model's MACs."""
    quantized = INT8_OPS.get(target)
    if quantized is None:
        return []
    macs = _macs(model)
    total = sum(macs.values()) or 1
    by_type: dict[str, list[str]] = {}
    for i, node in enumerate(model.graph.node):
        if node.op_type in _HEAVY and node.op_type not in quantized:
            by_type.setdefault(node.op_type, []).append(node_name(node, i))
    found = []
    for op, names in by_type.items():
        share = sum(macs.get(n, 0) for n in names) / total
        found.append(
            Finding(
                "warning" if share >= 0.05 else "info",
                "int8",
                f"{len(names)} {op} node(s), {share:.1%} of the model's multiply-accumulates, stay in "
                f"float in {target}'s INT8 artifact (it quantizes {', '.join(sorted(quantized))}): INT8 "
                "gains nothing there",
                names[0],
                "expect the INT8 speed-up on the rest only, or use a target that quantizes "
                f"{op} ({', '.join(t for t, ops in INT8_OPS.items() if op in ops) or 'none here'})",
                target,
            )
        )
    return found


def check_ops(model: onnx.ModelProto, target: str) -> list[Finding]:
    """Ops `target` does not run (custom domains, TensorRT's refused ops) or runs slowly."""
    rules = TARGETS[target].doctor
    found: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    for i, node in enumerate(model.graph.node):
        key = (node.domain, node.op_type)
        if key in seen:
            continue
        seen.add(key)
        where = node_name(node, i)
        if node.domain not in _KNOWN_DOMAINS:
            found.append(
                Finding(
                    "error",
                    "ops",
                    f"custom op {node.domain}::{node.op_type}",
                    where,
                    "no target here runs it; replace it with standard ONNX ops",
                    target,
                )
            )
        elif node.domain == "com.microsoft" and not rules.contrib_ops:
            found.append(
                Finding(
                    "error",
                    "ops",
                    f"ONNX Runtime contrib op {node.op_type}",
                    where,
                    f"{target} does not run it; export without ONNX Runtime's optimizer",
                    target,
                )
            )
        elif node.op_type in rules.unsupported_ops:
            found.append(
                Finding(
                    "error",
                    "ops",
                    f"{node.op_type} is not supported by {TARGETS[target].title}'s ONNX parser",
                    where,
                    f"replace it in the model (or add a {TARGETS[target].title} plugin)",
                    target,
                )
            )
        elif node.op_type in _SLOW:
            found.append(
                Finding(
                    "warning",
                    "ops",
                    f"control flow ({node.op_type}) runs as a separate subgraph: nothing fuses across it",
                    where,
                    "export at a fixed size so the exporter unrolls it",
                    target,
                )
            )
    return found
