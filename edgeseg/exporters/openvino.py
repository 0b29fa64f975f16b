"""OpenVINO export: the checkpoint's U-Net as an IR pair (`model.xml` + `model.bin`).

The IR is converted from the ONNX graph that edgeseg.exporters.onnx writes (one conversion path
from PyTorch for every target), read with `openvino.Core().read_model` and saved with
`openvino.save_model(..., compress_to_fp16=False)`, so fp32 weights stay fp32 (fp16-compressed
weights belong to the fp16 precision). `read_model` is used rather than `openvino.convert_model`
because the latter, the OVC tool's API, sends usage telemetry by default (consent is assumed when no
opt-out file exists) and writes consent files under ~/intel; both read the ONNX graph with the same
frontend. The manifest's essentials are also stored in the IR's rt_info under "edgeseg".
"""

from __future__ import annotations

from edgeseg.errors import EdgesegRuntimeError, MissingDependencyError
from edgeseg.exporters import Artifact, ExportJob
from edgeseg.exporters.onnx import write_onnx
from edgeseg.manifest import METADATA_PREFIX, onnx_metadata

__all__ = ["MODEL_FILE", "RT_INFO_KEY", "export_artifact"]

MODEL_FILE = "model.xml"  # and model.bin beside it
RT_INFO_KEY = "edgeseg"


def _reason(exc: BaseException) -> str:
    # OpenVINO's messages end with the cause, after lines of source locations.
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


def export_artifact(job: ExportJob) -> Artifact:
    """Write `model.xml` and `model.bin` into the job's bundle folder (via a scratch ONNX graph)."""
    try:
        import openvino as ov
    except ImportError as exc:
        raise MissingDependencyError("openvino", "openvino", "exporting to OpenVINO") from exc

    scratch = job.workdir / ".model.onnx"  # inside the temporary bundle folder; removed below
    try:
        write_onnx(job.model, scratch, job.manifest, opset=job.config.opset)
        try:
            model = ov.Core().read_model(scratch)
        except RuntimeError as exc:
            raise EdgesegRuntimeError(f"OpenVINO could not convert the ONNX graph: {_reason(exc)}") from exc
        for key, value in onnx_metadata(job.manifest).items():
            model.set_rt_info(value, [RT_INFO_KEY, key.removeprefix(METADATA_PREFIX)])
        try:
            ov.save_model(model, job.workdir / MODEL_FILE, compress_to_fp16=False)
        except (RuntimeError, OSError) as exc:
            raise EdgesegRuntimeError(f"OpenVINO could not save the IR: {_reason(exc)}") from exc
    finally:
        scratch.unlink(missing_ok=True)
    return Artifact(MODEL_FILE)
