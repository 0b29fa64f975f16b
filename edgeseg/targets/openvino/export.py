"""OpenVINO export: the source model as an IR pair (`model.xml` + `model.bin`).

The IR is converted from the FP32 ONNX graph the export source gives (one conversion path
for every source and target), read with `openvino.Core().read_model` and saved with
`openvino.save_model`: fp32 keeps fp32 weights (`compress_to_fp16=False`); fp16 stores them
compressed to float16 (`compress_to_fp16=True`; the CPU plugin decompresses them and runs at its
default inference precision); int8 is the fp32 model quantized by `nncf.quantize` on the shared
calibration set (edgeseg.exporters.calibset), NNCF's default mixed preset and range estimators.
With `--max-drop`, a plain INT8 model that loses more mIoU than allowed is redone with
`nncf.quantize_with_accuracy_control` (mIoU on --val-data as its metric, the bound as an absolute
drop on the 0..1 scale), which reverts the quantizers that cost most back to float until it fits.
`read_model` is used rather than `openvino.convert_model`
because the latter, the OVC tool's API, sends usage telemetry by default (consent is assumed when no
opt-out file exists) and writes consent files under ~/intel; both read the ONNX graph with the same
frontend. The manifest's essentials are also stored in the IR's rt_info under "edgeseg".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgeseg._io import disk_full_as_oserror
from edgeseg._offline import quiet_telemetry
from edgeseg._progress import silenced_stdout
from edgeseg.errors import EdgesegRuntimeError, InputError, MissingDependencyError, first_line
from edgeseg.evaluation.classwise import ClassParity
from edgeseg.evaluation.metrics import ConfusionMatrix
from edgeseg.exporters.accuracy import Bound, fail_message
from edgeseg.exporters.calibset import nncf_dataset
from edgeseg.exporters.contract import Artifact, ExportJob
from edgeseg.exporters.prepost import fused_manifest
from edgeseg.formats import module_version
from edgeseg.manifest import METADATA_PREFIX, onnx_metadata
from edgeseg.targets.openvino.fuse import fuse_openvino

if TYPE_CHECKING:
    from edgeseg.exporters.accuracy import Bound, Score

__all__ = ["MODEL_FILE", "RT_INFO_KEY", "export_artifact", "quantize_int8"]

MODEL_FILE = "model.xml"  # and model.bin beside it
RT_INFO_KEY = "edgeseg"


def quantize_int8(model: Any, job: ExportJob) -> tuple[Any, dict[str, Any]]:
    """The OpenVINO model quantized to INT8 by NNCF on the job's calibration set, and its manifest entry."""

    if job.config.calib_method != "minmax":
        raise InputError(
            "--calib-method applies to target onnx; OpenVINO INT8 uses NNCF's own range estimators"
        )
    calib = job.calibration_set()
    dataset = nncf_dataset(calib)  # raises MissingDependencyError naming the extra without nncf
    import nncf

    try:
        with silenced_stdout():  # NNCF's own progress bars: edgeseg's export stage stands for them
            quantized = nncf.quantize(model, dataset, subset_size=calib.size)
    except Exception as exc:
        raise EdgesegRuntimeError(f"NNCF quantization failed: {first_line(exc)}") from exc
    entry = {"method": "nncf.quantize", "preset": "mixed (default)", **calib.to_manifest()}
    bound = Bound.of(job.config)
    if job.meter is None or bound is None:
        return quantized, entry
    return _within_bound(model, quantized, entry, dataset, calib.size, job, bound)


def _score(model: Any, job: ExportJob, bound: Bound) -> Score:
    """What `bound` judges of an in-memory model, saved as a scratch IR in the bundle folder."""
    quiet_telemetry()
    import openvino as ov

    assert job.meter is not None  # callers check
    path = job.workdir / ".candidate.xml"
    try:
        with disk_full_as_oserror(job.workdir, _ir_bytes(job), job.dest):
            ov.save_model(model, path, compress_to_fp16=False)
        return job.meter.measure(path, bound)
    finally:
        path.unlink(missing_ok=True)
        path.with_suffix(".bin").unlink(missing_ok=True)


def _within_bound(
    fp32: Any,
    quantized: Any,
    entry: dict[str, Any],
    dataset: Any,
    calib_size: int,
    job: ExportJob,
    bound: Bound,
) -> tuple[Any, dict[str, Any]]:
    """Plain INT8 if it meets the bound, else NNCF's accuracy-controlled INT8; raises when neither does.

    NNCF controls one metric against one absolute drop. With only --max-drop that is the mIoU; with
    --max-class-drop it is the worst judged class's IoU change against the FP32 reference's (0 for a
    model as good as the reference), bounded by --max-class-drop; a --max-drop given with it is
    checked on the result.
    """
    import nncf

    meter = job.meter
    assert meter is not None  # quantize_int8 checks
    score = _score(quantized, job, bound)
    attempts = [score.record("nncf.quantize")]
    job.log(f"int8 attempt: nncf.quantize: {score.describe()}")
    best = (bound.excess(score), quantized, entry)
    if best[0] > 0:
        index = {id(x): i for i, x in enumerate(meter.inputs)}  # NNCF may pass any subset of items

        def validate(compiled: Any, items: Any) -> float:
            # NNCF compares this metric between the float and the quantized model.
            pairs = [(x, mask, compiled(x)[0].argmax(1)) for x, mask in items]
            if bound.per_class:
                cp = ClassParity(meter.classes, meter.ignore_index)
                for x, mask, pred in pairs:
                    cp.ref_gt.update(meter.reference[index[id(x)]], mask)
                    cp.art_gt.update(pred, mask)
                drops, judged = cp.drops()
                return -float(drops[judged].max()) / 100 if judged.any() else 0.0
            cm = ConfusionMatrix(meter.classes, meter.ignore_index)
            for _, mask, pred in pairs:
                cm.update(pred, mask)
            miou = cm.compute().miou
            return 0.0 if miou != miou else miou

        limit = bound.max_class_drop if bound.per_class else bound.max_drop
        validation = nncf.Dataset(list(zip(meter.inputs, meter.masks, strict=True)), lambda item: item[0])
        try:
            with silenced_stdout():
                controlled = nncf.quantize_with_accuracy_control(
                    fp32,
                    dataset,
                    validation,
                    validate,
                    max_drop=float(limit or 0.0) / 100,  # NNCF's metric is on the 0..1 scale
                    drop_type=nncf.DropType.ABSOLUTE,
                    subset_size=calib_size,
                )
        except Exception as exc:
            raise EdgesegRuntimeError(f"NNCF accuracy control failed: {first_line(exc)}") from exc
        score = _score(controlled, job, bound)
        what = "nncf.quantize_with_accuracy_control"
        attempts.append(score.record(what))
        job.log(f"int8 attempt: {what}: {score.describe()}")
        if bound.excess(score) < best[0]:
            best = (bound.excess(score), controlled, {**entry, "method": what, "drop_type": "absolute"})
    if best[0] > 0:
        raise EdgesegRuntimeError(fail_message(bound, attempts))
    return best[1], {**best[2], **bound.to_manifest(), "attempts": attempts}


def _ir_bytes(job: ExportJob) -> int:
    """About what an IR of the model takes on disk: its FP32 ONNX graph's size (OpenVINO removes a
    half-written IR, so the room it lacked is judged against this)."""
    graph = job.workdir / ".model.onnx"
    return graph.stat().st_size if graph.is_file() else 0


def export_artifact(job: ExportJob) -> Artifact:
    """Write `model.xml` and `model.bin` into the job's bundle folder (via a scratch ONNX graph)."""
    try:
        quiet_telemetry()
        import openvino as ov
    except ImportError as exc:
        raise MissingDependencyError("openvino", "openvino", "exporting to OpenVINO") from exc

    scratch = job.workdir / ".model.onnx"  # inside the temporary bundle folder; removed below
    try:
        job.write_fp32_onnx(scratch)
        try:
            model = ov.Core().read_model(scratch)
        except RuntimeError as exc:
            raise EdgesegRuntimeError(
                f"OpenVINO could not convert the ONNX graph: {first_line(exc)}"
            ) from exc
        quantization: dict[str, Any] | None = None
        tools: dict[str, str] = {}
        if job.config.precision == "int8":
            model, quantization = quantize_int8(model, job)
            tools["nncf"] = module_version("nncf")
        elif job.config.precision == "fp16":
            quantization = {"method": "fp16-compressed IR weights (openvino.save_model compress_to_fp16)"}
        manifest = job.manifest
        if job.config.fuse_prepost:  # after quantization: calibration feeds the plain graph
            model = fuse_openvino(model, job.manifest)
            manifest = fused_manifest(job.manifest)
        for key, value in onnx_metadata(manifest).items():
            model.set_rt_info(value, [RT_INFO_KEY, key.removeprefix(METADATA_PREFIX)])
        try:
            fp16 = job.config.precision == "fp16"
            with disk_full_as_oserror(job.workdir, _ir_bytes(job), job.dest):
                ov.save_model(model, job.workdir / MODEL_FILE, compress_to_fp16=fp16)
        except OSError:
            raise  # a full disk or unwritable folder: the CLI names the path and what to do
        except RuntimeError as exc:
            raise EdgesegRuntimeError(f"OpenVINO could not save the IR: {first_line(exc)}") from exc
    finally:
        scratch.unlink(missing_ok=True)
    fused = manifest if job.config.fuse_prepost else None
    return Artifact(MODEL_FILE, tools=tools, quantization=quantization, manifest=fused)
