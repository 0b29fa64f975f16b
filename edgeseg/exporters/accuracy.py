"""Accuracy-aware INT8: keep the mIoU drop vs the FP32 reference within `--max-drop` points.

The reference is the model the export started from (edgeseg.evaluation.parity.Reference): the
checkpoint's PyTorch model, or a source ONNX file run on ONNX Runtime. `DropMeter` scores an
artifact file on the labelled `--val-data` against the reference's mIoU on the same images (the
figure the manifest records as `miou_drop_points`); the reference's masks are computed once.
`onnx_int8_within` runs the ONNX remedies in order, each attempt recorded with the drop it reached,
and stops at the first that meets the bound:

1. plain PTQ with the requested calibration method, then the other methods (entropy, percentile);
2. the first conv (raw pixels in) and the last 1x1 conv (class logits out) kept in float, on the
   best method so far: the usual most sensitive layers of a segmentation net;
3. a per-layer sensitivity pass: each other conv kept in float alone, scored on a few val images;
   the most sensitive ones are then kept in float greedily, at most `MAX_SENSITIVE` of them, since
   every float layer costs speed.

When nothing meets the bound, EdgesegRuntimeError names the best figure reached; the caller's
temporary bundle folder is removed, so no bundle is left. OpenVINO's remedy (NNCF's
`quantize_with_accuracy_control`) lives in edgeseg.exporters.openvino and uses the same meter.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeseg._guards import require_finite
from edgeseg.errors import EdgesegRuntimeError
from edgeseg.evaluation.metrics import ConfusionMatrix

if TYPE_CHECKING:
    from edgeseg.evaluation.parity import Reference

__all__ = ["MAX_SENSITIVE", "SENSITIVITY_IMAGES", "DropMeter", "fail_message", "onnx_int8_within"]

MAX_SENSITIVE = 4  # convs the sensitivity pass may keep in float (beyond the first and last)
SENSITIVITY_IMAGES = 4  # val images the per-layer pass scores on: ranking needs no full evaluation


def _miou(
    preds: Sequence[np.ndarray], masks: Sequence[np.ndarray], classes: int, ignore: int | None
) -> float:
    cm = ConfusionMatrix(classes, ignore)
    for pred, mask in zip(preds, masks, strict=True):
        cm.update(pred, mask)
    miou = cm.compute().miou
    return 0.0 if miou != miou else miou  # NaN (every pixel ignored) scores as nothing kept


@dataclass(frozen=True)
class DropMeter:
    """Scores artifacts by their mIoU drop (points) vs the FP32 reference on labelled data.

    `inputs` are normalised (1, C, H, W) float32 images, `masks` their (1, H, W) ground truth and
    `reference` the FP32 reference's (1, H, W) predictions, one entry per val image.
    """

    target: str
    inputs: tuple[np.ndarray, ...]
    masks: tuple[np.ndarray, ...]
    reference: tuple[np.ndarray, ...]
    classes: int
    ignore_index: int | None

    @classmethod
    def build(
        cls, ref: Reference, target: str, img_size: tuple[int, int], val_data: str | os.PathLike[str]
    ) -> DropMeter:
        """Read `val_data` at `img_size` as parity does and run the FP32 reference on it once."""
        from edgeseg.data import normalize
        from edgeseg.evaluation.parity import parity_batches

        _, _, batches = parity_batches(ref, img_size, val_data=val_data, batch_size=1)
        inputs, masks, refs = [], [], []
        for imgs, mask in batches:
            x = normalize(imgs, ref.mean, ref.std)
            inputs.append(x)
            masks.append(mask)
            refs.append(ref.run(x).argmax(1))
        return cls(target, tuple(inputs), tuple(masks), tuple(refs), ref.classes, ref.ignore_index)

    def miou(self, preds: Sequence[np.ndarray], count: int | None = None) -> float:
        """mIoU (0..1) of `preds` against the ground truth of the first `count` images (default all)."""
        return _miou(preds, self.masks[:count], self.classes, self.ignore_index)

    def drop_of(self, predict: Callable[[np.ndarray], np.ndarray], count: int | None = None) -> float:
        """Drop in points of `predict` (logits of one input) on the first `count` images."""
        preds = [
            require_finite(predict(x), "the logits of an INT8 candidate").argmax(1)
            for x in self.inputs[:count]
        ]
        fp32 = self.miou(self.reference[:count], count)
        # A NaN drop would compare as neither within nor beyond --max-drop: refuse it as a figure.
        return float(
            require_finite(
                (fp32 - self.miou(preds, count)) * 100,
                "the mIoU drop on --val-data (every labelled pixel ignored?)",
            )
        )

    def drop(self, artifact: str | os.PathLike[str], count: int | None = None) -> float:
        """Drop in points of the artifact file, run by parity's backend for the target (on CPU)."""
        from edgeseg.evaluation.parity import parity_backend

        with parity_backend(self.target, artifact) as backend:
            inp, out = backend.input_specs[0].name, backend.output_specs[0].name
            return self.drop_of(lambda x: backend.infer({inp: x})[out], count)


def fail_message(max_drop: float, attempts: Sequence[dict[str, Any]]) -> str:
    """The one line an export that cannot meet `max_drop` fails with: the best figure and how."""
    best = min(attempts, key=lambda a: a["miou_drop_points"])
    return (
        f"INT8 could not keep the mIoU drop within --max-drop {max_drop:g} points: best "
        f"{best['miou_drop_points']:.2f} points ({best['what']}) after {len(attempts)} attempts; "
        "no bundle written (try --precision fp16, more --calib images, or a larger --max-drop)"
    )


class _Search:
    """Quantizes candidates beside `dest`, keeps the best file so far, records every attempt."""

    def __init__(self, quantize: Callable[..., dict[str, Any]], dest: Path, meter: DropMeter) -> None:
        self.quantize, self.dest, self.meter = quantize, dest, meter
        self.attempts: list[dict[str, Any]] = []
        self.best: tuple[float, Path, dict[str, Any]] | None = None

    def candidate(self, method: str, exclude: Sequence[str], name: str) -> tuple[Path, dict[str, Any]]:
        path = self.dest.with_name(f".candidate-{name}.onnx")
        return path, self.quantize(path, method=method, exclude=list(exclude))

    def attempt(self, what: str, method: str, exclude: Sequence[str]) -> float:
        path, entry = self.candidate(method, exclude, str(len(self.attempts)))
        drop = self.meter.drop(path)
        self.attempts.append({"what": what, "miou_drop_points": round(drop, 4)})
        if self.best is None or drop < self.best[0]:
            if self.best is not None:
                self.best[1].unlink(missing_ok=True)
            self.best = (drop, path, entry)
        else:
            path.unlink(missing_ok=True)
        return drop

    def sensitivity(self, method: str, base: Sequence[str], convs: Sequence[str]) -> dict[str, float]:
        """Drop on a few val images with each conv (besides `base`) also kept in float."""
        count = min(SENSITIVITY_IMAGES, len(self.meter.inputs))
        scores = {}
        for conv in convs:
            path, _ = self.candidate(method, [*base, conv], "sensitivity")
            try:
                scores[conv] = round(self.meter.drop(path, count), 4)
            finally:
                path.unlink(missing_ok=True)
        return scores


def onnx_int8_within(
    quantize: Callable[..., dict[str, Any]],
    dest: Path,
    *,
    meter: DropMeter,
    max_drop: float,
    method: str,
    convs: Sequence[str],
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Write to `dest` the first INT8 graph whose drop is within `max_drop`, trying the remedies in order.

    `quantize(path, method=..., exclude=[...])` writes one candidate and returns its manifest entry;
    `convs` are the float graph's Conv node names in order. Returns the chosen candidate's entry with
    `max_drop_points`, `attempts` and, if the sensitivity pass ran, `sensitivity` added. Raises
    EdgesegRuntimeError (the best figure reached) when no remedy meets the bound.
    """
    from edgeseg.exporters.quantize import CALIB_METHODS

    search = _Search(quantize, dest, meter)

    def met(what: str, m: str, exclude: Sequence[str]) -> bool:
        drop = search.attempt(what, m, exclude)
        log(f"int8 attempt: {what}: mIoU drop {drop:.2f} points")
        return drop <= max_drop

    extra: dict[str, Any] = {}
    done = met(f"ptq {method}", method, [])
    methods = {method: search.attempts[-1]["miou_drop_points"]}
    for other in CALIB_METHODS:
        if done:
            break
        if other != method:
            done = met(f"ptq {other}", other, [])
            methods[other] = search.attempts[-1]["miou_drop_points"]
    best_method = min(methods, key=methods.__getitem__)
    ends = list(dict.fromkeys([convs[0], convs[-1]])) if convs else []
    if not done and ends:
        done = met(f"ptq {best_method}, first and last conv in float", best_method, ends)
    rest = [c for c in convs if c not in ends]
    if not done and rest:
        scores = search.sensitivity(best_method, ends, rest)
        extra["sensitivity"] = scores
        exclude = list(ends)
        # Lowest drop with a conv in float = the conv whose quantization costs the most.
        for conv in sorted(scores, key=scores.__getitem__)[:MAX_SENSITIVE]:
            exclude.append(conv)
            what = f"ptq {best_method}, first/last + {len(exclude) - len(ends)} most sensitive convs in float"
            if done := met(what, best_method, exclude):
                break
    if search.best is None or search.best[0] > max_drop:
        raise EdgesegRuntimeError(fail_message(max_drop, search.attempts))
    os.replace(search.best[1], dest)
    return {**search.best[2], "max_drop_points": max_drop, "attempts": search.attempts, **extra}
