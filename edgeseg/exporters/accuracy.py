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
`quantize_with_accuracy_control`) lives in edgeseg.targets.openvino.export and uses the same meter.

`--max-class-drop P` (`Bound.max_class_drop`) adds a per-class bound: no judged class may lose more
than P IoU points vs the reference on the val data (judged: at least 0.1% of the labelled pixels
and 64 of them, see edgeseg.evaluation.classwise; absent and tiny classes cannot fail the export).
The remedies are the same; candidates are then ranked by how far they exceed the tighter of the two
bounds, so the sensitivity pass keeps in float the convs that cost the thin classes most.

A bound without evidence does not pass: `DropMeter.build` refuses (InputError, before anything is
quantized) val data with fewer labelled pixels than edgeseg._evidence asks for, and a per-class
bound on data where no class is judged; the figures a bound is checked against go through the same
evidence check (`DropMeter.miou`), so a NaN is refused, never read as "within the bound".
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeseg._evidence import labelled_hint
from edgeseg._guards import require_finite
from edgeseg.data import normalize
from edgeseg.errors import EdgesegRuntimeError
from edgeseg.evaluation.classwise import ClassParity, require_judged
from edgeseg.evaluation.metrics import ConfusionMatrix, SegMetrics
from edgeseg.evaluation.parity import parity_backend, parity_batches
from edgeseg.exporters.calibset import CALIB_METHODS

if TYPE_CHECKING:
    from edgeseg.evaluation.parity import Reference

__all__ = [
    "MAX_SENSITIVE",
    "SENSITIVITY_IMAGES",
    "Bound",
    "DropMeter",
    "Score",
    "fail_message",
    "onnx_int8_within",
]

MAX_SENSITIVE = 4  # convs the sensitivity pass may keep in float (beyond the first and last)
SENSITIVITY_IMAGES = 4  # val images the per-layer pass scores on: ranking needs no full evaluation


def _confusion(
    preds: Sequence[np.ndarray], masks: Sequence[np.ndarray], classes: int, ignore: int | None
) -> ConfusionMatrix:
    cm = ConfusionMatrix(classes, ignore)
    for pred, mask in zip(preds, masks, strict=True):
        cm.update(pred, mask)
    return cm


@dataclass(frozen=True)
class Score:
    """How much a candidate lost vs the FP32 reference: mIoU points and, when a class bound is set,
    IoU points per judged class (name -> points)."""

    drop: float
    class_drops: dict[str, float] = field(default_factory=dict)

    @property
    def worst(self) -> tuple[str, float] | None:
        """The judged class that lost most, and its drop; None without per-class figures."""
        if not self.class_drops:
            return None
        name = max(self.class_drops, key=self.class_drops.__getitem__)
        return name, self.class_drops[name]

    def record(self, what: str) -> dict[str, Any]:
        """One entry of the manifest's `attempts`."""
        entry: dict[str, Any] = {"what": what, "miou_drop_points": round(self.drop, 4)}
        if self.worst is not None:
            entry["worst_class"], entry["worst_class_drop_points"] = self.worst[0], round(self.worst[1], 4)
            entry["class_drop_points"] = {k: round(v, 4) for k, v in self.class_drops.items()}
        return entry

    def describe(self) -> str:
        text = f"mIoU drop {self.drop:.2f} points"
        if self.worst is not None:
            text += f", worst class {self.worst[0]} {self.worst[1]:.2f} points"
        return text


@dataclass(frozen=True)
class Bound:
    """What an accuracy-aware INT8 export must keep: `max_drop` mIoU points and/or `max_class_drop`
    IoU points per judged class (None: no such bound)."""

    max_drop: float | None = None
    max_class_drop: float | None = None

    @classmethod
    def of(cls, config: Any) -> Bound | None:
        """The bound an ExportConfig asks for; None when it sets neither."""
        if config.max_drop is None and config.max_class_drop is None:
            return None
        return cls(config.max_drop, config.max_class_drop)

    @property
    def per_class(self) -> bool:
        return self.max_class_drop is not None

    def excess(self, score: Score) -> float:
        """Points by which `score` exceeds the bound (<= 0: met); ranks candidates, lower is better."""
        over = []
        if self.max_drop is not None:
            over.append(score.drop - self.max_drop)
        if self.max_class_drop is not None and score.worst is not None:
            over.append(score.worst[1] - self.max_class_drop)
        return max(over) if over else float("-inf")

    def met(self, score: Score) -> bool:
        return self.excess(score) <= 0

    def to_manifest(self) -> dict[str, float]:
        entry = {} if self.max_drop is None else {"max_drop_points": self.max_drop}
        if self.max_class_drop is not None:
            entry["max_class_drop_points"] = self.max_class_drop
        return entry


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
    class_names: tuple[str, ...] = ()
    val_data: str = ""
    labelled_pixels: int | None = None  # in the val data's own mask files

    @classmethod
    def build(
        cls,
        ref: Reference,
        target: str,
        img_size: tuple[int, int],
        val_data: str | os.PathLike[str],
        class_names: Sequence[str] = (),
        bound: Bound | None = None,
    ) -> DropMeter:
        """Read `val_data` at `img_size` as parity does and run the FP32 reference on it once.

        Raises InputError when the data's classes are not the reference's, when it holds too few
        labelled pixels for an mIoU drop (edgeseg._evidence), or, for a per-class `bound`, when no
        class is judged on it: a gate with nothing to measure does not pass."""

        data = parity_batches(ref, img_size, val_data=val_data, batch_size=1)
        inputs, masks, refs = [], [], []
        for imgs, mask in data.batches:
            x = normalize(imgs, ref.mean, ref.std)
            inputs.append(x)
            masks.append(mask)
            refs.append(ref.run(x).argmax(1))
        names = tuple(class_names) or tuple(str(i) for i in range(ref.classes))
        meter = cls(target, tuple(inputs), tuple(masks), tuple(refs), ref.classes, ref.ignore_index,
                    names, str(val_data), data.labelled_pixels)  # fmt: skip
        meter.miou(meter.reference)  # the reference's own figure: refused without evidence
        if bound is not None and bound.per_class:
            gt = _confusion(meter.reference, meter.masks, meter.classes, meter.ignore_index)
            require_judged(gt.matrix.sum(axis=1), names, "--max-class-drop", f"--val-data '{val_data}'")
        return meter

    def metrics(self, preds: Sequence[np.ndarray], count: int | None = None) -> SegMetrics:
        """Scores of `preds` against the ground truth of the first `count` images (default all).

        On every image the figures go through the evidence check (edgeseg._evidence; InputError
        without enough labelled pixels or for a figure that is not finite): they decide a gate. On
        the first `count` only (the sensitivity pass's ranking, which decides nothing) a figure
        without evidence is 0."""
        cm = _confusion(preds, self.masks[:count], self.classes, self.ignore_index)
        if count is None or count >= len(self.masks):
            return cm.checked(
                f"on --val-data '{self.val_data}'",
                "labelled pixels",
                data_pixels=self.labelled_pixels,
                hint=labelled_hint(self.ignore_index),
            )
        metrics = cm.compute()
        return metrics if metrics.miou == metrics.miou else SegMetrics(0.0, 0.0, 0.0)

    def miou(self, preds: Sequence[np.ndarray], count: int | None = None) -> float:
        """mIoU (0..1) of `preds` against the ground truth of the first `count` images (default all);
        see `metrics` for the evidence it needs."""
        return self.metrics(preds, count).miou

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

        with parity_backend(self.target, artifact) as backend:
            inp, out = backend.input_specs[0].name, backend.output_specs[0].name
            return self.drop_of(lambda x: backend.infer({inp: x})[out], count)

    def score_preds(self, preds: Sequence[np.ndarray], count: int | None = None) -> Score:
        """mIoU drop and per-class drops (judged classes, edgeseg.evaluation.classwise) of `preds`."""

        cp = ClassParity(self.classes, self.ignore_index)
        for ref, pred, mask in zip(self.reference[:count], preds, self.masks[:count], strict=True):
            cp.ref_gt.update(ref, mask)
            cp.art_gt.update(pred, mask)
        drops, judged = cp.drops()
        names = self.class_names or tuple(str(i) for i in range(self.classes))
        require_finite(drops[judged], "the per-class IoU drops on --val-data")
        fp32 = self.miou(self.reference[:count], count)
        per_class = {names[c]: float(drops[c]) for c in np.flatnonzero(judged)}
        return Score((fp32 - self.miou(preds, count)) * 100, per_class)

    def score(self, artifact: str | os.PathLike[str], count: int | None = None) -> Score:
        """`score_preds` of the artifact file, run by parity's backend for the target (on CPU)."""

        with parity_backend(self.target, artifact) as backend:
            inp, out = backend.input_specs[0].name, backend.output_specs[0].name
            preds = [backend.infer({inp: x})[out].argmax(1) for x in self.inputs[:count]]
        return self.score_preds(preds, count)

    def measure(self, artifact: str | os.PathLike[str], bound: Bound, count: int | None = None) -> Score:
        """What `bound` needs to judge the artifact: the mIoU drop, plus per-class drops for a class bound."""
        if bound.per_class:
            return self.score(artifact, count)
        return Score(self.drop(artifact, count))


def _score_of(attempt: dict[str, Any]) -> Score:
    """The score an `attempts` entry records."""
    return Score(attempt["miou_drop_points"], attempt.get("class_drop_points", {}))


def fail_message(bound: Bound | float, attempts: Sequence[dict[str, Any]]) -> str:
    """The one line an export that cannot meet `bound` fails with: the best figure and how."""
    if not isinstance(bound, Bound):
        bound = Bound(max_drop=float(bound))
    best = min(attempts, key=lambda a: bound.excess(_score_of(a)))
    advice = "no bundle written (try --precision fp16, more --calib images, or a larger bound)"
    if bound.max_class_drop is not None and "worst_class" in best:
        kept = f"every class within --max-class-drop {bound.max_class_drop:g} points"
        if bound.max_drop is not None:
            kept += f" and the mIoU drop within --max-drop {bound.max_drop:g}"
        figure = (
            f"still loses {best['worst_class_drop_points']:.2f} IoU points on class {best['worst_class']} "
            f"(mIoU {best['miou_drop_points']:.2f})"
        )
        return f"INT8 could not keep {kept}: the best attempt ({best['what']}) {figure} after " + (
            f"{len(attempts)} attempts; {advice}"
        )
    return (
        f"INT8 could not keep the mIoU drop within --max-drop {bound.max_drop:g} points: best "
        f"{best['miou_drop_points']:.2f} points ({best['what']}) after {len(attempts)} attempts; "
        "no bundle written (try --precision fp16, more --calib images, or a larger --max-drop)"
    )


class _Search:
    """Quantizes candidates beside `dest`, keeps the best file so far, records every attempt."""

    def __init__(
        self, quantize: Callable[..., dict[str, Any]], dest: Path, meter: DropMeter, bound: Bound
    ) -> None:
        self.quantize, self.dest, self.meter, self.bound = quantize, dest, meter, bound
        self.attempts: list[dict[str, Any]] = []
        self.best: tuple[float, Path, dict[str, Any]] | None = None  # (excess, file, entry)
        self.rank: dict[str, float] = {}  # conv -> excess with it in float (the sensitivity pass)

    def candidate(self, method: str, exclude: Sequence[str], name: str) -> tuple[Path, dict[str, Any]]:
        path = self.dest.with_name(f".candidate-{name}{self.dest.suffix}")
        return path, self.quantize(path, method=method, exclude=list(exclude))

    def attempt(self, what: str, method: str, exclude: Sequence[str]) -> Score:
        path, entry = self.candidate(method, exclude, str(len(self.attempts)))
        score = self.meter.measure(path, self.bound)
        excess = self.bound.excess(score)
        self.attempts.append(score.record(what))
        if self.best is None or excess < self.best[0]:
            if self.best is not None:
                self.best[1].unlink(missing_ok=True)
            self.best = (excess, path, entry)
        else:
            path.unlink(missing_ok=True)
        return score

    def sensitivity(self, method: str, base: Sequence[str], convs: Sequence[str]) -> dict[str, Any]:
        """Score on a few val images with each conv (besides `base`) also kept in float: the mIoU drop,
        or with a class bound {"miou_drop_points", "worst_class", "worst_class_drop_points"}."""
        count = min(SENSITIVITY_IMAGES, len(self.meter.inputs))
        scores: dict[str, Any] = {}
        for conv in convs:
            path, _ = self.candidate(method, [*base, conv], "sensitivity")
            try:
                score = self.meter.measure(path, self.bound, count)
            finally:
                path.unlink(missing_ok=True)
            rec = score.record("")
            rec.pop("what"), rec.pop("class_drop_points", None)
            scores[conv] = rec if self.bound.per_class else rec["miou_drop_points"]
            self.rank[conv] = self.bound.excess(score)
        return scores


def onnx_int8_within(
    quantize: Callable[..., dict[str, Any]],
    dest: Path,
    *,
    meter: DropMeter,
    max_drop: float | None,
    method: str,
    convs: Sequence[str],
    log: Callable[[str], None] = lambda _: None,
    max_class_drop: float | None = None,
) -> dict[str, Any]:
    """Write to `dest` the first INT8 graph within `max_drop` mIoU points and `max_class_drop` IoU
    points per judged class (either may be None), trying the remedies in order.

    `quantize(path, method=..., exclude=[...])` writes one candidate and returns its manifest entry;
    `convs` are the float graph's Conv node names in order. Returns the chosen candidate's entry with
    the bounds (`max_drop_points`, `max_class_drop_points`), `attempts` and, if the sensitivity pass
    ran, `sensitivity` added. Raises EdgesegRuntimeError (the best figure reached) when no remedy
    meets the bound.
    """

    bound = Bound(max_drop, max_class_drop)
    search = _Search(quantize, dest, meter, bound)

    def met(what: str, m: str, exclude: Sequence[str]) -> bool:
        score = search.attempt(what, m, exclude)
        log(f"int8 attempt: {what}: {score.describe()}")
        return bound.met(score)

    def excess_of(attempt: dict[str, Any]) -> float:
        return bound.excess(_score_of(attempt))

    extra: dict[str, Any] = {}
    done = met(f"ptq {method}", method, [])
    methods = {method: excess_of(search.attempts[-1])}
    for other in CALIB_METHODS:
        if done:
            break
        if other != method:
            done = met(f"ptq {other}", other, [])
            methods[other] = excess_of(search.attempts[-1])
    best_method = min(methods, key=methods.__getitem__)
    ends = list(dict.fromkeys([convs[0], convs[-1]])) if convs else []
    if not done and ends:
        done = met(f"ptq {best_method}, first and last conv in float", best_method, ends)
    rest = [c for c in convs if c not in ends]
    if not done and rest:
        extra["sensitivity"] = search.sensitivity(best_method, ends, rest)
        exclude = list(ends)
        # Lowest excess with a conv in float = the conv whose quantization costs the most.
        for conv in sorted(search.rank, key=search.rank.__getitem__)[:MAX_SENSITIVE]:
            exclude.append(conv)
            what = f"ptq {best_method}, first/last + {len(exclude) - len(ends)} most sensitive convs in float"
            if done := met(what, best_method, exclude):
                break
    if search.best is None or search.best[0] > 0:
        raise EdgesegRuntimeError(fail_message(bound, search.attempts))
    os.replace(search.best[1], dest)
    return {**search.best[2], **bound.to_manifest(), "attempts": search.attempts, **extra}
