"""ONNX export: the checkpoint's U-Net as one self-contained `.onnx` file.

Uses torch's dynamo exporter (`torch.onnx.export(..., dynamo=True)`), which on torch 2.13 gives the
cleaner graph of the two: 27 nodes of five op types for a depth-2 U-Net (batch norm folded into the
convolutions by its optimizer, no Identity nodes), while the legacy TorchScript exporter is
deprecated and leaves Identity nodes behind. An external graph simplifier was measured and skipped:
onnxslim left the same 27 nodes and ONNX Runtime ran the graph no faster.

The graph carries the manifest's essentials in `metadata_props` ("edgeseg.*" keys), so a bare
`.onnx` still says how to preprocess its input.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeseg.errors import EdgesegRuntimeError, MissingDependencyError, first_line
from edgeseg.exporters import Artifact, ExportJob
from edgeseg.manifest import Manifest, onnx_metadata

if TYPE_CHECKING:
    import torch

__all__ = ["MODEL_FILE", "export_artifact", "write_onnx"]

MODEL_FILE = "model.onnx"


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Silence torch's exporter chatter the user cannot act on (deprecation notes from torch's own
    internals, 'torchvision is not installed' warnings); errors still surface as exceptions."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)


def write_onnx(model: torch.nn.Module, path: Path, manifest: Manifest, *, opset: int) -> None:
    """Export `model` for the input `manifest` describes to a single-file ONNX graph at `path`.

    Dynamic axes come from `manifest.dynamic_axes`; the graph is checked with `onnx.checker` (with
    shape inference) before it is written.
    """
    try:
        import onnx
        import torch
    except ImportError as exc:
        raise MissingDependencyError("onnx", "onnx", "exporting to ONNX") from exc

    inp, out = manifest.input, manifest.output
    axes = manifest.dynamic_axes.get(inp.name, {})
    # torch.export specialises a dimension whose example size is 1, so a dynamic batch needs 2.
    example = torch.randn(2 if 0 in axes else 1, inp.channels, inp.height, inp.width)
    dynamic_shapes = ({a: torch.export.Dim(n) for a, n in axes.items()},) if axes else None
    model.eval()
    try:
        with _quiet_export():
            program = torch.onnx.export(
                model,
                (example,),
                input_names=[inp.name],
                output_names=[out.name],
                opset_version=opset,
                dynamo=True,
                external_data=False,
                dynamic_shapes=dynamic_shapes,
                verbose=False,
            )
    except Exception as exc:
        raise EdgesegRuntimeError(f"torch.onnx.export failed: {first_line(exc)}") from exc
    if program is None:
        raise EdgesegRuntimeError("torch.onnx.export returned no program")
    proto = program.model_proto
    # The exporter annotates every node with source stack traces (absolute paths of this machine) and
    # FX details: they would leak local paths and double the file; the graph needs none of them.
    for node in proto.graph.node:
        del node.metadata_props[:]
    onnx.helper.set_model_props(proto, onnx_metadata(manifest))
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise EdgesegRuntimeError(f"the exported ONNX graph is invalid: {first_line(exc)}") from exc
    try:
        onnx.save_model(proto, str(path))
    except OSError:
        raise  # a full disk or unwritable folder: the CLI names the path and what to do
    except ValueError as exc:  # a graph over protobuf's 2 GB limit
        raise EdgesegRuntimeError(f"cannot write '{path}': {first_line(exc)}") from exc


def export_artifact(job: ExportJob) -> Artifact:
    """Write `model.onnx` into the job's bundle folder: the float32 graph, or for fp16/int8 the graph
    edgeseg.exporters.onnx_quant makes from it; with `fuse_prepost`, wrapped with pre/post
    (edgeseg.exporters.prepost) once it is quantized (calibration feeds the plain graph)."""
    artifact = _plain_artifact(job)
    if not job.config.fuse_prepost:
        return artifact
    from edgeseg.exporters.prepost import fuse_onnx_file, fused_manifest

    fused = fused_manifest(job.manifest)
    fuse_onnx_file(job.workdir / MODEL_FILE, job.manifest, onnx_metadata(fused))
    return replace(artifact, manifest=fused)


def _plain_artifact(job: ExportJob) -> Artifact:
    dest = job.workdir / MODEL_FILE
    if job.config.precision == "fp32":
        write_onnx(job.model, dest, job.manifest, opset=job.config.opset)
        return Artifact(MODEL_FILE)
    from edgeseg.exporters import onnx_quant
    from edgeseg.exporters.quantize import load_calibration

    scratch = job.workdir / ".fp32.onnx"  # inside the temporary bundle folder; removed below
    metadata = onnx_metadata(job.manifest)
    try:
        write_onnx(job.model, scratch, job.manifest, opset=job.config.opset)
        if job.config.precision == "fp16":
            quantization = onnx_quant.to_fp16(scratch, dest, metadata)
        else:
            calib = load_calibration(job.config.calib, job.manifest)

            def quantize(path: Path, method: str, exclude: list[str]) -> dict[str, Any]:
                return onnx_quant.to_int8(
                    scratch,
                    path,
                    calib,
                    input_name=job.manifest.input.name,
                    method=method,
                    metadata=metadata,
                    exclude=exclude,
                )

            if job.meter is None or job.config.max_drop is None:
                quantization = quantize(dest, job.config.calib_method, [])
            else:
                from edgeseg.exporters.accuracy import onnx_int8_within

                quantization = onnx_int8_within(
                    quantize,
                    dest,
                    meter=job.meter,
                    max_drop=job.config.max_drop,
                    method=job.config.calib_method,
                    convs=onnx_quant.conv_nodes(scratch),
                    log=job.log,
                )
    finally:
        scratch.unlink(missing_ok=True)
    return Artifact(MODEL_FILE, quantization=quantization)
