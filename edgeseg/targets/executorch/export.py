"""ExecuTorch export: the bundle's `model.pte`, an ExecuTorch program lowered to the XNNPACK delegate.

From the export source's PyTorch module (ExecuTorch programs are made by `torch.export`, so an ONNX
source cannot be exported here): captured with `torch.export`, for int8 quantized by PT2E first
(edgeseg.targets.executorch.quantize), lowered with `to_edge_transform_and_lower` and
`XnnpackPartitioner`, and serialized with `to_executorch`. The manifest's essentials are stored in
the program as the constant method `edgeseg_metadata` (read by the backend), so a bare `.pte`
still says how to feed it. Ops the partitioner leaves outside XNNPACK run on ExecuTorch's portable
kernels, much slower: the export names them in its notes.

`--dynamic`: ExecuTorch plans the memory of a program's inputs and outputs for the largest shape it
accepts, so the axes vary up to bounds: a batch of up to DYNAMIC_MAX_BATCH (the backend runs larger
batches in chunks) and sides up to DYNAMIC_MAX_SCALE times the export size, in steps of the model's
size multiple.
"""

from __future__ import annotations

import importlib.metadata
import json
import operator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeseg.errors import EdgesegRuntimeError, InputError, first_line
from edgeseg.exporters.accuracy import Bound, onnx_int8_within
from edgeseg.exporters.contract import Artifact, ExportJob
from edgeseg.manifest import Manifest, onnx_metadata
from edgeseg.targets.executorch.backend import METADATA_METHOD, SEAL_KEY, UNSEALED, seal
from edgeseg.targets.executorch.quantize import OBSERVERS, SCHEME, conv_modules, quantize_module, quiet

if TYPE_CHECKING:
    import torch

__all__ = ["DYNAMIC_MAX_BATCH", "DYNAMIC_MAX_SCALE", "MODEL_FILE", "export_artifact", "write_program"]

MODEL_FILE = "model.pte"
DYNAMIC_MAX_BATCH = 4
DYNAMIC_MAX_SCALE = 2
_OUTSIDE = "outside_xnnpack"  # quantization entry: ops the partitioner left to the portable kernels


def _example(manifest: Manifest) -> torch.Tensor:
    import torch

    inp = manifest.input
    # torch.export specialises a dimension whose example size is 1, so a dynamic batch needs 2.
    batch = 2 if 0 in manifest.dynamic_axes.get(inp.name, {}) else 1
    return torch.randn(batch, inp.channels, inp.height, inp.width)


def _dynamic_shapes(manifest: Manifest) -> tuple[dict[int, Any]] | None:
    """torch.export's bounded dims for the manifest's dynamic axes (see the module notes)."""
    import torch

    inp = manifest.input
    axes = manifest.dynamic_axes.get(inp.name, {})
    if not axes:
        return None
    step = max(1, inp.size_multiple)
    dims: dict[int, Any] = {}
    for axis, name in axes.items():
        if axis == 0:
            dims[0] = torch.export.Dim(str(name), min=1, max=DYNAMIC_MAX_BATCH)
        elif axis in (2, 3):
            side = inp.height if axis == 2 else inp.width
            steps = torch.export.Dim(f"{name}_steps", min=1, max=DYNAMIC_MAX_SCALE * side // step)
            dims[axis] = steps * step if step > 1 else steps
    return (dims,)


def _outside_delegate(edge: Any) -> list[str]:
    """The ops of a lowered program that XNNPACK does not run, by name."""
    left: list[str] = []
    for node in edge.exported_program().graph.nodes:
        if node.op != "call_function" or node.target is operator.getitem:
            continue
        name = getattr(node.target, "__name__", str(node.target))
        if "executorch_call_delegate" not in name and name not in left:
            left.append(name)
    return left


def write_program(module: torch.nn.Module, manifest: Manifest, path: Path) -> list[str]:
    """Capture `module` for `manifest`'s input, lower it to XNNPACK and write the `.pte` to `path`
    with the manifest's essentials inside; returns the ops left outside the delegate."""
    import torch

    metadata = json.dumps({**onnx_metadata(manifest), SEAL_KEY: UNSEALED}, separators=(",", ":"))
    try:
        with quiet():
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
            from executorch.exir import to_edge_transform_and_lower

            program = torch.export.export(
                module, (_example(manifest),), dynamic_shapes=_dynamic_shapes(manifest)
            )
            edge = to_edge_transform_and_lower(
                program, partitioner=[XnnpackPartitioner()], constant_methods={METADATA_METHOD: metadata}
            )
            left = _outside_delegate(edge)
            buffer = edge.to_executorch().buffer
    except Exception as exc:
        raise EdgesegRuntimeError(f"ExecuTorch could not lower the model: {first_line(exc)}") from exc
    path.write_bytes(seal(buffer))
    return left


def _versions() -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in ("executorch", "torchao")}


def _int8(module: torch.nn.Module, job: ExportJob, dest: Path) -> dict[str, Any]:
    """Write the INT8 program to `dest`, within the job's accuracy bound if it sets one; returns the
    manifest's quantization entry (with the ops left outside XNNPACK, if any)."""

    manifest, config = job.manifest, job.config
    calib = job.calibration_set()
    example, shapes = _example(manifest), _dynamic_shapes(manifest)

    def quantize(path: Path, method: str, exclude: list[str]) -> dict[str, Any]:
        graph = quantize_module(
            module, example, calib.inputs, method=method, exclude=exclude, dynamic_shapes=shapes
        )
        left = write_program(graph, manifest, path)
        entry = {"method": "pt2e XNNPACKQuantizer", "scheme": SCHEME, "calib_method": method,
                 "observer": OBSERVERS[method], **calib.to_manifest()}  # fmt: skip
        if exclude:
            entry["float_modules"] = list(exclude)
        if left:
            entry[_OUTSIDE] = left
        return entry

    bound = Bound.of(config)
    if job.meter is None or bound is None:
        return quantize(dest, config.calib_method, [])

    return onnx_int8_within(
        quantize,
        dest,
        meter=job.meter,
        max_drop=config.max_drop,
        max_class_drop=config.max_class_drop,
        method=config.calib_method,
        convs=conv_modules(module, example, shapes),
        log=job.log,
    )


def export_artifact(job: ExportJob) -> Artifact:
    """Write `model.pte` into the job's bundle folder: the source's PyTorch module lowered to
    XNNPACK, in float32 or quantized to int8."""
    module = job.source.torch_module()
    if module is None:
        raise InputError(
            f"target executorch exports from a PyTorch model: '{job.source.path}' is an ONNX file, and "
            "ExecuTorch programs are made by torch.export; export its checkpoint, or use --target onnx "
            "or openvino"
        )
    module.eval()
    dest = job.workdir / MODEL_FILE
    quantization: dict[str, Any] | None = None
    if job.config.precision == "int8":
        quantization = _int8(module, job, dest)
        left = list(quantization.get(_OUTSIDE, []))
    else:
        left = write_program(module, job.manifest, dest)
    notes: tuple[str, ...] = ()
    if left:
        notes = (
            f"{len(left)} op kind(s) run outside XNNPACK, on ExecuTorch's portable kernels (slower): "
            f"{', '.join(left)}",
        )
    return Artifact(MODEL_FILE, tools=_versions(), quantization=quantization, notes=notes)
