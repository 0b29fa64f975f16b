"""Export a checkpoint or an ONNX file to a deployment target as a self-describing bundle directory.

`export(source, ExportConfig(target=...))` is file in, bundle out. The steps every target shares
live here: validate the options against the format table, open the source (edgeseg.exporters.source:
a checkpoint, or an ONNX file from elsewhere), draft the manifest, let the target's module write its
files from the source's FP32 ONNX graph, measure parity against the source's FP32 reference (PyTorch,
or the source ONNX on ONNX Runtime), write `edgeseg.json`. Each
target's module (named by `Target.exporter` in edgeseg.formats) only writes its files:

    def export_artifact(job: ExportJob) -> Artifact

Everything is written into a temporary folder beside the destination and renamed into place at the
end, so a failed or interrupted export leaves no partial bundle. Heavy packages (torch, onnx,
openvino) are imported when an export runs, not when this package is imported.
"""

from edgeseg.exporters.contract import (
    INPUT_NAME,
    MAX_OPSET,
    MIN_OPSET,
    OUTPUT_NAME,
    Artifact,
    ExportConfig,
    ExportJob,
    ExportResult,
)
from edgeseg.exporters.run import check_data, export, export_settings

__all__ = [
    "INPUT_NAME",
    "MAX_OPSET",
    "MIN_OPSET",
    "OUTPUT_NAME",
    "Artifact",
    "ExportConfig",
    "ExportJob",
    "ExportResult",
    "check_data",
    "export",
    "export_settings",
]
