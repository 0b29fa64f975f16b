"""Per-class and boundary parity: where an artifact's masks differ from its reference, not just how much.

A mean over classes hides the failure users meet most with INT8: one thin class (poles, signs, lane
marks) destroyed while the mIoU barely moves. `ClassParity` accumulates, batch by batch:

- per-class IoU of the artifact's masks against the reference's masks, and, with labelled data, of
  both against the ground truth; a class's *drop* is the reference's IoU vs truth minus the
  artifact's, in IoU points (x100; positive = accuracy lost);
- the boundary F-score (Martin et al. 2004, the boundary F measure of DAVIS and Cityscapes-style
  evaluations): boundary pixels of each label map, a predicted boundary pixel counts as matched when
  a reference boundary pixel lies within `tolerance` pixels (Euclidean disk), and F is the harmonic
  mean of the matched shares of both sides, summed over all images;
- the class-flip matrix: pixels the reference labels as class a and the artifact as class b != a.

Which classes are *judged* (for the worst class and for `--max-class-drop`): classes with at least
`CLASS_MIN_SHARE` of the labelled pixels in the ground truth, and at least `MIN_CLASS_PIXELS` of them
(edgeseg._evidence). A class absent from the data has no IoU to lose, and a class on a handful of
pixels swings by many points when a few of them change, so neither can fail an export; both are
listed as unjudged with the reason. A per-class gate with no judged class at all has no evidence
and is refused (`require_judged`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgeseg._evidence import MIN_CLASS_PIXELS
from edgeseg.errors import InputError
from edgeseg.evaluation.metrics import ConfusionMatrix

__all__ = [
    "BOUNDARY_TOLERANCE",
    "CLASS_MIN_SHARE",
    "ClassParity",
    "boundary_counts",
    "boundary_f",
    "boundary_pixels",
    "judged_classes",
    "require_judged",
]

BOUNDARY_TOLERANCE = 2  # pixels: the tolerance of the boundary F measure at these image sizes
CLASS_MIN_SHARE = 0.001  # a class is judged with at least 0.1% of the labelled pixels
TOP_FLIPS = 5  # class pairs the report lists


def boundary_pixels(mask: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Boolean map of the pixels of a 2-D label map with a 4-neighbour of another class (both sides of
    an edge). With `valid`, pixels outside it are no boundary and do not make one."""
    m = np.asarray(mask)
    ok = np.ones(m.shape, bool) if valid is None else np.asarray(valid, bool)
    out = np.zeros(m.shape, bool)
    horizontal = (m[:, 1:] != m[:, :-1]) & ok[:, 1:] & ok[:, :-1]
    vertical = (m[1:, :] != m[:-1, :]) & ok[1:, :] & ok[:-1, :]
    out[:, 1:] |= horizontal
    out[:, :-1] |= horizontal
    out[1:, :] |= vertical
    out[:-1, :] |= vertical
    return out


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2 <= radius**2).astype(np.uint8)


def _dilate(edges: np.ndarray, radius: int) -> np.ndarray:
    """`edges` grown by a disk of `radius` pixels: OpenCV when installed, else shifted ORs in NumPy."""
    if radius <= 0:
        return edges.copy()
    kernel = _disk(radius)
    try:
        import cv2
    except ImportError:
        cv2 = None
    if cv2 is not None:
        return cv2.dilate(edges.astype(np.uint8), kernel).astype(bool)
    h, w = edges.shape
    padded = np.pad(edges, radius)
    out = np.zeros_like(edges)
    for dy, dx in zip(*np.nonzero(kernel), strict=True):
        out |= padded[dy : dy + h, dx : dx + w]
    return out


def boundary_counts(
    pred: np.ndarray,
    ref: np.ndarray,
    *,
    tolerance: int = BOUNDARY_TOLERANCE,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """[matched predicted, predicted, matched reference, reference] boundary pixels of two label maps."""
    pb, rb = boundary_pixels(pred, valid), boundary_pixels(ref, valid)
    matched_pred = int((pb & _dilate(rb, tolerance)).sum())
    matched_ref = int((rb & _dilate(pb, tolerance)).sum())
    return np.array([matched_pred, int(pb.sum()), matched_ref, int(rb.sum())], np.int64)


def _f_of(counts: np.ndarray) -> float:
    mp, tp, mr, tr = (int(v) for v in counts)
    if tp == 0 and tr == 0:
        return 1.0  # neither map has an edge: nothing to disagree about
    if tp == 0 or tr == 0:
        return 0.0
    precision, recall = mp / tp, mr / tr
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def boundary_f(
    pred: np.ndarray, ref: np.ndarray, *, tolerance: int = BOUNDARY_TOLERANCE, valid: np.ndarray | None = None
) -> float:
    """Boundary F-score (0..1) of a predicted label map against a reference one, within `tolerance` px."""
    return _f_of(boundary_counts(pred, ref, tolerance=tolerance, valid=valid))


def judged_classes(gt_pixels: np.ndarray, min_share: float = CLASS_MIN_SHARE) -> np.ndarray:
    """Boolean per class: enough ground-truth pixels (at least `min_share` of all, and at least
    `MIN_CLASS_PIXELS`)."""
    counts = np.asarray(gt_pixels, np.int64)
    total = int(counts.sum())
    return (counts >= max(MIN_CLASS_PIXELS, 1)) & (counts >= min_share * total)


def unjudged_reason(pixels: int) -> str:
    """Why a class with `pixels` labelled pixels is not judged."""
    if pixels == 0:
        return "absent from the data"
    if pixels < MIN_CLASS_PIXELS:
        return f"{pixels} pixels, under the {MIN_CLASS_PIXELS} a class needs"
    return f"{pixels} pixels, under {CLASS_MIN_SHARE:.1%} of the labelled ones"


def require_judged(gt_pixels: np.ndarray, names: Sequence[str], option: str, data: str) -> None:
    """InputError when no class is judged on data with `gt_pixels` labelled pixels per class: a
    per-class bound (`option`) would then pass with nothing measured."""
    counts = np.asarray(gt_pixels, np.int64)
    if judged_classes(counts).any():
        return
    present = ", ".join(f"{n} {int(c)}" for n, c in zip(names, counts, strict=True) if c) or "none"
    raise InputError(
        f"{option} has no evidence on {data}: no class has the {MIN_CLASS_PIXELS} labelled pixels and "
        f"{CLASS_MIN_SHARE:.1%} of them a class needs to be judged (labelled pixels per class: {present}); "
        "give data where the classes that matter are visible"
    )


def _clean(v: float) -> float | None:
    return None if v != v else round(float(v), 6)  # NaN (class absent everywhere) is JSON null


class ClassParity:
    """Accumulates per-class, boundary and flip figures of an artifact vs its reference (see module)."""

    def __init__(
        self, classes: int, ignore_index: int | None = None, *, tolerance: int = BOUNDARY_TOLERANCE
    ) -> None:
        self.classes, self.ignore_index, self.tolerance = classes, ignore_index, tolerance
        self.vs_ref = ConfusionMatrix(classes)  # rows: reference class, columns: artifact class
        self.ref_gt = ConfusionMatrix(classes, ignore_index)
        self.art_gt = ConfusionMatrix(classes, ignore_index)
        self.edges_vs_ref = np.zeros(4, np.int64)
        self.edges_ref_gt = np.zeros(4, np.int64)
        self.edges_art_gt = np.zeros(4, np.int64)
        self.labelled = False

    def update(self, ref: np.ndarray, out: np.ndarray, gt: np.ndarray | None = None) -> None:
        """Add (N, H, W) class-id maps of the reference and the artifact, and the ground truth if any."""
        ref, out = np.asarray(ref).reshape(-1, *ref.shape[-2:]), np.asarray(out).reshape(-1, *out.shape[-2:])
        self.vs_ref.update(out, ref)
        for i in range(ref.shape[0]):
            self.edges_vs_ref += boundary_counts(out[i], ref[i], tolerance=self.tolerance)
        if gt is None:
            return
        gt = np.asarray(gt).reshape(ref.shape)
        self.labelled = True
        self.ref_gt.update(ref, gt)
        self.art_gt.update(out, gt)
        for i in range(ref.shape[0]):
            valid = (gt[i] >= 0) & (gt[i] < self.classes)
            if self.ignore_index is not None:
                valid &= gt[i] != self.ignore_index
            self.edges_ref_gt += boundary_counts(ref[i], gt[i], tolerance=self.tolerance, valid=valid)
            self.edges_art_gt += boundary_counts(out[i], gt[i], tolerance=self.tolerance, valid=valid)

    def drops(self) -> tuple[np.ndarray, np.ndarray]:
        """(per-class drop in IoU points vs the reference on the ground truth, judged mask)."""
        ref_iou = np.asarray(self.ref_gt.compute().iou_per_class)
        art_iou = np.asarray(self.art_gt.compute().iou_per_class)
        return (ref_iou - art_iou) * 100, judged_classes(self.ref_gt.matrix.sum(axis=1))

    def report(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        """The manifest's `parity.classes` section (JSON-ready; NaN as null)."""
        names = list(class_names or [str(i) for i in range(self.classes)])
        iou_ref = self.vs_ref.compute().iou_per_class
        flips = self.vs_ref.matrix.copy()
        np.fill_diagonal(flips, 0)
        total = max(int(self.vs_ref.matrix.sum()), 1)
        order = np.argsort(flips, axis=None)[::-1][:TOP_FLIPS]
        top = [
            {"pytorch": names[a], "artifact": names[b], "pixels": int(flips[a, b]),
             "share": round(float(flips[a, b]) / total, 6)}
            for a, b in (np.unravel_index(i, flips.shape) for i in order) if flips[a, b] > 0
        ]  # fmt: skip
        data: dict[str, Any] = {
            "iou_vs_pytorch": {n: _clean(v) for n, v in zip(names, iou_ref, strict=True)},
            "boundary_tolerance_px": self.tolerance,
            "boundary_f_vs_pytorch": _clean(_f_of(self.edges_vs_ref)),
            "flips": top,
            "flip_matrix": flips.tolist(),
        }
        if self.labelled:
            drops, judged = self.drops()
            gt_pixels = self.ref_gt.matrix.sum(axis=1)
            ref_gt, art_gt = self.ref_gt.compute().iou_per_class, self.art_gt.compute().iou_per_class
            data.update(
                iou_pytorch_vs_gt={n: _clean(v) for n, v in zip(names, ref_gt, strict=True)},
                iou_artifact_vs_gt={n: _clean(v) for n, v in zip(names, art_gt, strict=True)},
                drop_points={names[c]: round(float(drops[c]), 4) for c in np.flatnonzero(judged)},
                gt_pixels={n: int(v) for n, v in zip(names, gt_pixels, strict=True)},
                unjudged={names[c]: unjudged_reason(int(gt_pixels[c])) for c in np.flatnonzero(~judged)},
                boundary_f_vs_gt={"pytorch": _clean(_f_of(self.edges_ref_gt)),
                                  "artifact": _clean(_f_of(self.edges_art_gt))},
            )  # fmt: skip
            ranked = sorted(np.flatnonzero(judged), key=lambda c: -drops[c])
            data["worst"] = [
                {"class": names[c], "drop_points": round(float(drops[c]), 4),
                 "iou_pytorch": data["iou_pytorch_vs_gt"][names[c]],
                 "iou_artifact": data["iou_artifact_vs_gt"][names[c]]}
                for c in ranked[:3]
            ]  # fmt: skip
        else:
            # Without truth: the classes whose masks agree least with the reference's, among those
            # the reference predicts on enough pixels.
            judged = judged_classes(self.vs_ref.matrix.sum(axis=1))
            ranked = sorted(np.flatnonzero(judged), key=lambda c: iou_ref[c])
            data["worst"] = [{"class": names[c], "iou_vs_pytorch": _clean(iou_ref[c])} for c in ranked[:3]]
        return data
