"""ONNX export: the FP32 graph of the export source as the bundle's `model.onnx`, or its FP16 /
INT8 (QDQ, ONNX Runtime's quantizer) version. The torch -> ONNX step itself is
edgeseg.exporters.torch_onnx."""

from __future__ import annotations

from dataclasses import replace

from edgeseg.exporters.contract import Artifact, ExportJob
from edgeseg.exporters.onnx_quant import reduced_precision_graph
from edgeseg.exporters.prepost import fused_manifest
from edgeseg.manifest import onnx_metadata
from edgeseg.targets.onnx.fuse import fuse_onnx_file
from edgeseg.targets.onnx.quantize import to_int8

__all__ = ["MODEL_FILE", "export_artifact"]

MODEL_FILE = "model.onnx"


def export_artifact(job: ExportJob) -> Artifact:
    """Write `model.onnx` into the job's bundle folder: the source's float32 graph, or for fp16/int8 the
    graph edgeseg.exporters.onnx_quant makes from it (INT8 with edgeseg.targets.onnx.quantize's
    settings); with `fuse_prepost`, wrapped with pre/post
    (edgeseg.exporters.prepost) once it is quantized (calibration feeds the plain graph)."""
    artifact = _plain_artifact(job)
    if not job.config.fuse_prepost:
        return artifact

    fused = fused_manifest(job.manifest)
    fuse_onnx_file(job.workdir / MODEL_FILE, job.manifest, onnx_metadata(fused))
    return replace(artifact, manifest=fused)


def _plain_artifact(job: ExportJob) -> Artifact:
    quantization = reduced_precision_graph(job, job.workdir / MODEL_FILE, to_int8)
    return Artifact(MODEL_FILE, quantization=quantization)
