"""Live accuracy against the FP32 source: a background worker that never slows the main loop.

The worker runs the model the artifact was exported from, as export's parity does: a checkpoint on
PyTorch, a foreign ONNX file on ONNX Runtime (`ExportSource.reference_backend`, fed as
`ExportSource.segmenter_options` says), on a sample of frames: when it is idle the
pipeline offers it the frame just segmented together with the artifact's mask for that same frame;
when it is busy the offer is declined at once (nothing queues). It runs at a low CPU priority and
within a CPU budget (`duty`: the share of one core it may use), since on a small device its model
would otherwise compete with the one being demonstrated.

Figures: pixel agreement (the share of pixels where both masks hold the same class) and mIoU with
PyTorch's masks as the truth, from one confusion matrix; with ground truth, PyTorch's own mIoU too;
mask flicker (edgeseg.demo.stats.FlickerMeter) of PyTorch's masks and of the artifact's on the same
compared frames, so that the two stability figures are like for like.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeseg._evidence import ClassSet, require_same_classes
from edgeseg._guards import recorded_path
from edgeseg._paths import CHECKPOINT_FILES, folder_not_file
from edgeseg._reuse import find_source
from edgeseg.demo.stats import FlickerMeter
from edgeseg.errors import InputError
from edgeseg.evaluation.metrics import ConfusionMatrix
from edgeseg.exporters.source_open import open_export_source
from edgeseg.manifest import Manifest
from edgeseg.runtimes import get_backend_class
from edgeseg.segmenter import Segmenter

if TYPE_CHECKING:
    from edgeseg.exporters.source import SourceFacts

__all__ = ["BaselineWorker", "resolve_baseline"]

# The worker's niceness: the demonstrated model wins the CPU when both want it, yet a busy 2-core
# machine does not starve the comparison of every sample (at 19, or even 10, it got ~1 sample per
# second there); its CPU use is bounded by `duty` in any case.
_NICE = 5
BASELINE_FILES = (*CHECKPOINT_FILES, ".onnx")


def resolve_baseline(
    explicit: str | os.PathLike[str] | None, manifest: Manifest | None, model: Path
) -> tuple[Path | None, str]:
    """(the source model to compare with or None, a note saying which and why).

    An explicit path (a checkpoint or an .onnx file) must exist (InputError otherwise). By default
    the bundle manifest's source, a checkpoint or the ONNX file it was exported from, is used when a
    file with the sha256 the manifest records is found (as recorded, or beside the bundle, as
    `export` writes it: edgeseg._reuse.find_source); otherwise there is no baseline, and the note
    says why. Either way the caller checks that its classes are the model's (`BaselineWorker`).
    """
    if explicit is not None:
        path = Path(explicit)
        if path.is_dir():
            raise InputError(
                folder_not_file(
                    path, "--baseline", "a checkpoint (.pt) or an .onnx file", BASELINE_FILES, bundles=False
                )
            )
        if not path.is_file():
            raise InputError(f"baseline '{path}' does not exist")
        return path, f"baseline {path}"
    if manifest is not None and manifest.target == "checkpoint":
        return None, "no baseline: the model is the PyTorch checkpoint itself"
    source = (manifest.source if manifest else None) or {}
    found, why = find_source(source, model)
    if found is None:
        return None, f"no baseline: {why} (pass --baseline with the checkpoint or .onnx it was exported from)"
    return found, f"baseline {found} (from the manifest, {why})"


class BaselineWorker:
    """Compares the artifact's masks with its FP32 source's on sampled frames, in a thread.

    Args:
        checkpoint: the source: an edgeseg checkpoint (run on PyTorch) or an ONNX file (run on ONNX
            Runtime, as export's parity runs it; edgeseg.exporters.source_open decides which).
        img_size: (width, height) the artifact runs at, so both models see the same input.
        num_classes: the artifact's classes; given as a `ClassSet` (edgeseg._evidence), the
            checkpoint's classes must agree with them (InputError naming both otherwise).
        input_format: the frames' channel order ("bgr").
        duty: the share of one core the worker may use (it sleeps in between).
        model_package: the runtime package of the model being demonstrated (`Backend.package`).
            torch's thread count is process-wide, so the worker limits torch to one thread only
            when that model runs on another runtime; limiting it would otherwise slow the model.
        facts: what an ONNX source without edgeseg metadata does not say (classes, normalisation,
            channel order): the artifact's own preprocessing, so both see the same input.
    `label` names the baseline in reports ("PyTorch", "source ONNX").
    """

    def __init__(
        self,
        checkpoint: Path,
        *,
        img_size: tuple[int, int],
        num_classes: int | ClassSet,
        input_format: str = "bgr",
        duty: float = 0.25,
        model_package: str = "",
        facts: SourceFacts | None = None,
    ) -> None:

        src = open_export_source(checkpoint, facts if Path(checkpoint).suffix.lower() == ".onnx" else None)
        backend = src.reference_backend
        shared = model_package == get_backend_class(backend).package
        self.checkpoint = checkpoint
        self.label = "PyTorch" if backend == "torch" else f"source {src.kind.upper()}"
        self._seg = Segmenter(
            checkpoint,
            backend=backend,
            input_format=input_format,
            threads=None if shared else 1,
            **src.segmenter_options(img_size),
        )
        if isinstance(num_classes, ClassSet):
            try:
                require_same_classes(
                    num_classes,
                    ClassSet.of(f"the baseline '{checkpoint}'", self._seg.class_names),
                    "pass --baseline with the checkpoint this model was exported from, or --no-compare",
                )
            except InputError:
                self._seg.close()
                raise
            num_classes = num_classes.count
        self.duty = min(max(duty, 0.01), 1.0)
        self.vs_baseline = ConfusionMatrix(num_classes)  # rows: PyTorch's mask, columns: the artifact's
        self.baseline_truth = ConfusionMatrix(num_classes)
        self.flicker_pytorch, self.flicker_artifact = FlickerMeter(), FlickerMeter()
        self.frames = 0
        self.truth_frames = 0
        self.ms_total = 0.0
        self.error: BaseException | None = None
        self._slot: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None
        self._busy = False
        self._next_at = 0.0
        self._stop = False
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._run, name="edgeseg-baseline", daemon=True)

    def start(self) -> BaselineWorker:
        self._seg.warmup(1)
        self._thread.start()
        return self

    def offer(self, image: np.ndarray, mask: np.ndarray, truth: np.ndarray | None) -> bool:
        """Hand over a frame and the artifact's mask of it if the worker is idle and within its CPU
        budget; returns at once either way (True if taken). The arrays must not change afterwards."""
        with self._lock:
            if self._busy or self._stop or time.perf_counter() < self._next_at:
                return False
            self._slot, self._busy = (image, mask, truth), True
            self._cond.notify_all()
            return True

    def _run(self) -> None:
        # A lower priority for this thread alone (Linux schedules threads as tasks); best effort.
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _NICE)
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._slot is not None or self._stop)
                if self._stop:
                    return
                assert self._slot is not None
                image, mask, truth = self._slot
            t0 = time.perf_counter()
            try:
                reference = self._seg(image).mask
            except BaseException as exc:  # reported in the summary; the demo itself goes on
                self.error = exc
                with self._cond:
                    self._stop = True
                return
            elapsed = time.perf_counter() - t0
            with self._lock:
                self.vs_baseline.update(mask, reference)
                self.flicker_pytorch.add(reference)
                self.flicker_artifact.add(mask)
                if truth is not None and truth.shape == reference.shape:
                    self.baseline_truth.update(reference, truth)
                    self.truth_frames += 1
                self.frames += 1
                self.ms_total += elapsed * 1000.0
                self._next_at = time.perf_counter() + elapsed * (1.0 / self.duty - 1.0)
                self._slot, self._busy = None, False
                self._cond.notify_all()

    def drain(self, timeout: float = 5.0) -> None:
        """Wait (up to `timeout` s) for a comparison in progress, so that a short run counts it."""
        with self._cond:
            self._cond.wait_for(lambda: not self._busy or self._stop, timeout=timeout)

    def figures(self) -> dict[str, Any]:
        """Running figures: frames compared, pixel agreement, mIoU vs PyTorch, PyTorch's mIoU vs truth.

        Agreement and mIoU are reported once they stand on the minimum of evidence
        (edgeseg._evidence); until then they are None and `missing` says what is missing. A figure
        that is not finite raises InputError: it is never shown."""
        with self._lock:
            frames, truth_frames, ms = self.frames, self.truth_frames, self.ms_total
            vs, missing = None, None
            if frames:
                evidence = self.vs_baseline.evidence("pixels compared with the baseline")
                missing = evidence.refusal("agreement with the baseline")
                if missing is None:
                    vs = self.vs_baseline.checked("vs the baseline", "pixels compared with the baseline")
            else:
                missing = "agreement with the baseline: no frame was compared"
            truth = None
            if truth_frames and self.baseline_truth.evidence("labelled pixels").missing() is None:
                truth = self.baseline_truth.checked("of the baseline vs ground truth", "labelled pixels")
            flicker = self.flicker_pytorch.share, self.flicker_artifact.share, self.flicker_pytorch.pairs
        return {
            "checkpoint": recorded_path(self.checkpoint),
            "label": self.label,
            "frames_compared": frames,
            "pixel_agreement": vs.pixel_accuracy if vs else None,
            "miou": vs.miou if vs else None,
            "pytorch_miou_vs_truth": truth.miou if truth else None,
            "pytorch_ms": ms / frames if frames else None,
            "flicker_pytorch": flicker[0],
            "flicker_artifact": flicker[1],
            "flicker_pairs": flicker[2],
            "missing": None if self.error else missing,
            "error": str(self.error) if self.error else None,
        }

    def close(self) -> None:
        """Stop the worker (waiting for a frame in progress) and release the model."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=10.0)
        self._seg.close()
