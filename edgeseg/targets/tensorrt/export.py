"""TensorRT export: a bundle with the engine-ready ONNX and, where TensorRT and a GPU are, the engine.

The bundle's model file is `model.onnx`, the engine-ready graph (edgeseg.targets.tensorrt.graph):
the portable source of every engine, checked structurally before it is written and verified for
accuracy on CPU (parity runs the same graph with ONNX Runtime's CPU provider and says so in the
manifest's `parity.measured_on`). The engine is built by edgeseg.targets.tensorrt.build where
TensorRT and a CUDA device exist, here at export or later on the device (first load, or
`edgeseg build-engine BUNDLE`); the manifest's `engine` record holds the profile, the ONNX's sha256
and, once built, the TensorRT version, GPU, compute capability and CUDA version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeseg.errors import EdgesegRuntimeError, InputError
from edgeseg.exporters.contract import Artifact, ExportJob
from edgeseg.exporters.onnx_quant import reduced_precision_graph
from edgeseg.exporters.prepost import fused_manifest
from edgeseg.manifest import onnx_metadata, sha256_file
from edgeseg.targets.tensorrt.build import build_engine, engine_unavailable_reason, profile_of
from edgeseg.targets.tensorrt.fuse import ENGINE_STEPS, fuse_engine_onnx_file
from edgeseg.targets.tensorrt.graph import check_engine_ready, to_engine_int8

__all__ = ["MEASURED_ON", "MODEL_FILE", "export_artifact"]

MODEL_FILE = "model.onnx"
MEASURED_ON = "CPU execution of the same engine-ready ONNX graph (onnxruntime), not the TensorRT engine"


def _engine_ready_graph(job: ExportJob, dest: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """Write the graph for the job's precision to `dest`; returns (quantization entry, float nodes)."""
    entry = reduced_precision_graph(job, dest, to_engine_int8)
    if entry is not None and job.config.precision == "fp16":
        entry = {**entry, "tensorrt": "strongly typed: float16 in the graph, no builder flag"}
    return entry, list((entry or {}).get("float_nodes", []))


def export_artifact(job: ExportJob) -> Artifact:
    """Write the engine-ready `model.onnx` (checked), and the engine when this machine can build one."""

    config = job.config
    if config.batch is not None and not config.dynamic:
        raise InputError("--batch needs --dynamic: a static TensorRT engine takes batch 1")
    dest = job.workdir / MODEL_FILE
    quantization, float_nodes = _engine_ready_graph(job, dest)
    manifest = job.manifest
    if config.fuse_prepost:  # after quantization: calibration feeds the plain graph
        manifest = fused_manifest(job.manifest, ENGINE_STEPS)
        fuse_engine_onnx_file(dest, job.manifest, onnx_metadata(manifest))
    problems = check_engine_ready(dest, config.precision, allowed_float=float_nodes)
    if problems:
        raise EdgesegRuntimeError(
            f"the {config.precision} graph is not ready for TensorRT ({len(problems)} problems): "
            + "; ".join(problems[:3])
        )
    profile = profile_of(manifest, config.batch)
    record: dict[str, Any] = {
        "onnx_file": MODEL_FILE,
        "onnx_sha256": sha256_file(dest),
        "precision": config.precision,
        "profile": profile.to_dict(),
        "built": None,
    }
    tools: dict[str, str] = {}
    bundle = job.dest or Path("BUNDLE")
    reason = engine_unavailable_reason()
    if reason is None:
        _, built = build_engine(
            dest,
            job.workdir,
            precision=config.precision,
            profile=profile if config.dynamic or config.fuse_prepost else None,
            log=job.log,
        )
        record["built"] = built
        tools["tensorrt"] = built["tensorrt"]
        note = (
            f"engine: built {built['file']} for {built['gpu']} (compute capability "
            f"{built['compute_capability']}, TensorRT {built['tensorrt']}) in {built['build_seconds']} s"
        )
    else:
        note = (
            f"engine: not built here ({reason}); TensorRT builds it on the device from the bundled ONNX "
            f"on first load, or ahead of time with 'edgeseg build-engine {bundle}' there"
        )
    return Artifact(
        MODEL_FILE,
        tools=tools,
        quantization=quantization,
        engine=record,
        notes=(note,),
        measured_on=MEASURED_ON,
        manifest=manifest if config.fuse_prepost else None,
    )
