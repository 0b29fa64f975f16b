"""Calibration data for quantized exports, shared by every quantizer.

One `CalibrationSet` holds the network inputs a quantizer observes: images from a folder (a plain
folder of images, or a dataset folder whose `images/` sub-folder is used; masks are not needed) or
scenes of the built-in synthetic dataset. Each image goes through `edgeseg.preprocess.prepare_frame`
with the bundle's own preprocessing, so calibration sees exactly what `Segmenter` feeds the deployed
model. The set's size and a sha256 of the preprocessed tensors go into the manifest's
`quantization` field, so two exports can be told apart by what they were calibrated on.

Adapters turn the one set into what each quantizer reads: `ort_reader` (an ONNX Runtime
`CalibrationDataReader`) and `nncf_dataset` (an `nncf.Dataset`). Heavy packages are imported only there.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeseg._guards import recorded_path
from edgeseg._offline import quiet_telemetry
from edgeseg.data import IMAGE_SUFFIXES, SyntheticDataset, list_images, read_image
from edgeseg.errors import InputError, MissingDependencyError
from edgeseg.manifest import Manifest
from edgeseg.preprocess import Preprocessing, prepare_frame

if TYPE_CHECKING:
    from onnxruntime.quantization import CalibrationDataReader

__all__ = [
    "CALIB_METHODS",
    "MIN_RECOMMENDED_IMAGES",
    "CalibrationSet",
    "load_calibration",
    "nncf_dataset",
    "ort_reader",
]

# Below this many images the activation ranges of a segmentation net are noticeably less stable
# (ONNX Runtime's and NNCF's docs both suggest a few hundred); still allowed, but said.
MIN_RECOMMENDED_IMAGES = 100
# Calibration methods `--calib-method` accepts (ONNX Runtime's names; OpenVINO maps them in its exporter).
CALIB_METHODS: tuple[str, ...] = ("minmax", "entropy", "percentile")
SYNTHETIC_IMAGES = 32  # calibration scenes when no folder is given


@dataclass(frozen=True)
class CalibrationSet:
    """Preprocessed calibration inputs: float32 arrays of shape (1, C, H, W), one per image."""

    inputs: tuple[np.ndarray, ...]
    source: str  # "folder: PATH" or "synthetic"
    sha256: str  # of the preprocessed tensors, in order
    choice: str | None = None  # why this source (edgeseg.exporters.calibration)
    coverage: dict[str, Any] | None = None  # what the set covers (edgeseg.exporters.calibration)

    @property
    def size(self) -> int:
        return len(self.inputs)

    def to_manifest(self) -> dict[str, Any]:
        """The entries the manifest's `quantization` field records about the set."""
        entry: dict[str, Any] = {
            "calibration_source": self.source,
            "calibration_images": self.size,
            "calibration_sha256": self.sha256,
        }
        if self.choice is not None:
            entry["calibration_choice"] = self.choice
        if self.coverage is not None:
            entry["calibration_coverage"] = self.coverage
        return entry

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.inputs)


def _image_files(folder: Path) -> list[Path]:

    # A dataset folder (DIR/images + DIR/masks) calibrates on its images; masks are never read.
    root = folder / "images" if (folder / "images").is_dir() else folder
    files = list_images(root)
    if not files:
        raise InputError(f"calibration folder '{folder}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _preprocessing(manifest: Manifest) -> Any:

    inp = manifest.input
    # "stretch" is how training resized images, so calibration ranges match the trained statistics.
    return Preprocessing(
        input_name=inp.name,
        output_name=manifest.output.name,
        channels=inp.channels,
        width=inp.width,
        height=inp.height,
        color_order=inp.color_order,
        mean=tuple(inp.mean),
        std=tuple(inp.std),
        resize="stretch",
        class_names=tuple(manifest.class_names),
    )


def load_calibration(
    source: str | os.PathLike[str] | None,
    manifest: Manifest,
    *,
    max_images: int = 300,
    synthetic_images: int = SYNTHETIC_IMAGES,
) -> CalibrationSet:
    """Read and preprocess the calibration images for the model `manifest` describes.

    `source` is a folder of images or a dataset folder; None uses `synthetic_images` synthetic scenes.
    At most `max_images` images are used (sorted by name, so the set is reproducible). Warns when the
    set is smaller than MIN_RECOMMENDED_IMAGES. Raises InputError for a missing or empty folder or an
    unreadable image (naming the file).
    """

    pre = _preprocessing(manifest)
    frames: Iterator[np.ndarray]
    if source is None:
        count = max(1, min(synthetic_images, max_images))
        ds = SyntheticDataset(count, (pre.width, pre.height), seed=1)  # seed 1: not parity's scenes
        frames, desc = (ds[i][0] for i in range(count)), "synthetic"
    else:
        folder = Path(source)
        if not folder.is_dir():
            raise InputError(f"--calib folder '{folder}' does not exist")
        files = _image_files(folder)[:max_images]
        count, desc = len(files), f"folder: {recorded_path(folder)}"
        # RGB for colour models (prepare_frame converts to the model's order), luma for gray ones.
        frames = (read_image(f, channels=3 if pre.channels == 3 else 1) for f in files)
    digest = hashlib.sha256()
    inputs = []
    for frame in frames:
        x, _ = prepare_frame(frame, pre, "rgb")
        x = np.ascontiguousarray(x[None], dtype=np.float32)
        digest.update(x.tobytes())
        inputs.append(x)
    if count < MIN_RECOMMENDED_IMAGES:
        warnings.warn(
            f"calibrating on {count} images; {MIN_RECOMMENDED_IMAGES}+ representative images give "
            "more reliable INT8 ranges",
            UserWarning,
            stacklevel=2,
        )
    return CalibrationSet(tuple(inputs), desc, digest.hexdigest())


def ort_reader(calib: CalibrationSet, input_name: str) -> CalibrationDataReader:
    """An ONNX Runtime `CalibrationDataReader` over `calib` (rewindable, as entropy calibration needs)."""
    try:
        from onnxruntime.quantization import CalibrationDataReader
    except ImportError as exc:
        raise MissingDependencyError("onnxruntime", "onnx", "INT8 calibration for ONNX Runtime") from exc

    class _Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it: Iterator[np.ndarray] = iter(calib)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._it, None)
            return None if x is None else {input_name: x}

        def rewind(self) -> None:
            self._it = iter(calib)

    return _Reader()


def nncf_dataset(calib: CalibrationSet) -> Any:
    """An `nncf.Dataset` over `calib`; items are the input arrays themselves (one-input models).

    The first edgeseg function to import nncf (the others run after it), so it switches off NNCF's
    usage telemetry first.
    """

    quiet_telemetry()  # NNCF and OpenVINO would otherwise send usage telemetry
    # NNCF imports torch.utils.cpp_extension, which logs a warning line on every import where a CUDA
    # toolkit is installed beside a CPU build of torch: noise in the one-line output of a command.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    try:
        import nncf
    except ImportError as exc:
        raise MissingDependencyError("nncf", "nncf", "INT8 quantization for OpenVINO") from exc
    _route_nncf_logging()
    return nncf.Dataset(list(calib.inputs))


def _route_nncf_logging() -> None:
    """Send NNCF's log records through Python logging like every other library's.

    NNCF binds a handler to the `sys.stdout` of the moment it is imported; once that stream is
    replaced and closed (a notebook cell's capture, a test's), every NNCF message becomes a
    "--- Logging error ---" traceback on stderr. Its INFO lines are also noise beside edgeseg's own
    report. Propagating WARNING and above lets the command line show them as one
    `edgeseg: warning:` line each.
    """
    nncf_log = logging.getLogger("nncf")
    for handler in list(nncf_log.handlers):
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            nncf_log.removeHandler(handler)
    nncf_log.setLevel(logging.WARNING)
    nncf_log.propagate = True
