"""ONNX export: the FP32 graph of the export source as the bundle's `model.onnx`, or its FP16 /
INT8 (QDQ, ONNX Runtime's quantizer) version. The torch -> ONNX step itself is
edgeseg.exporters.torch_onnx."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from edgeseg.exporters import Artifact, ExportJob
from edgeseg.manifest import onnx_metadata

__all__ = ["MODEL_FILE", "export_artifact"]

MODEL_FILE = "model.onnx"


def export_artifact(job: ExportJob) -> Artifact:
    """Write `model.onnx` into the job's bundle folder: the source's float32 graph, or for fp16/int8 the
    graph edgeseg.exporters.onnx_quant makes from it; with `fuse_prepost`, wrapped with pre/post
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
        job.write_fp32_onnx(dest)
        return Artifact(MODEL_FILE)
    from edgeseg.exporters import onnx_quant

    scratch = job.workdir / ".fp32.onnx"  # inside the temporary bundle folder; removed below
    metadata = onnx_metadata(job.manifest)
    try:
        job.write_fp32_onnx(scratch)
        if job.config.precision == "fp16":
            quantization = onnx_quant.to_fp16(scratch, dest, metadata)
        else:
            calib = job.calibration_set()

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

            if job.meter is None or (job.config.max_drop is None and job.config.max_class_drop is None):
                quantization = quantize(dest, job.config.calib_method, [])
            else:
                from edgeseg.exporters.accuracy import onnx_int8_within

                quantization = onnx_int8_within(
                    quantize,
                    dest,
                    meter=job.meter,
                    max_drop=job.config.max_drop,
                    max_class_drop=job.config.max_class_drop,
                    method=job.config.calib_method,
                    convs=onnx_quant.conv_nodes(scratch),
                    log=job.log,
                )
    finally:
        scratch.unlink(missing_ok=True)
    return Artifact(MODEL_FILE, quantization=quantization)
