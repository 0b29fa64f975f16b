"""What a benchmark row's executed precision means for its figures.

A row's name says what was exported ("onnx:fp16"); what the runtime computes can differ: ONNX Runtime's
CPU provider has no fp16 convolutions on x86 and computes an fp16 graph in fp32 (its weights cast at
load), and OpenVINO's CPU plugin computes a bf16 row's fp32 IR in f32 on CPUs without bf16. Every
row records what its runtime read back (`Backend.executed_precision`, the one reading that parity,
`edgeseg info`, the card and the benchmark share: "fp32", "bf16", "int8+fp32", "fp32 (fp16 weights
upcast)") and is measured against the ceiling of that precision, never of the name's.
"""

from __future__ import annotations

__all__ = ["compute_precision", "runs_as_named"]

_ORDER = ("int8", "fp16", "bf16", "tf32", "fp32")


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
