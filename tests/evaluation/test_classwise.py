"""Per-class and boundary parity (edgeseg.evaluation.classwise) against figures worked out by hand
on small hand-made masks."""

from __future__ import annotations

import numpy as np
import pytest

from edgeseg.evaluation import classwise
from edgeseg.evaluation.classwise import (
    ClassParity,
    boundary_counts,
    boundary_f,
    boundary_pixels,
    judged_classes,
)


def _halves(split: int, size: int = 8) -> np.ndarray:
    """An 8x8 map: class 0 left of column `split`, class 1 from it on."""
    m = np.zeros((size, size), np.int64)
    m[:, split:] = 1
    return m


def test_boundary_pixels_are_both_sides_of_an_edge_and_skip_invalid_pixels():
    b = boundary_pixels(_halves(4))
    assert b.sum() == 16 and b[:, 3].all() and b[:, 4].all()
    valid = np.ones((8, 8), bool)
    valid[:, 4] = False  # an ignored column between the two classes: no edge left
    assert boundary_pixels(_halves(4), valid).sum() == 0


@pytest.mark.parametrize(
    ("split", "tolerance", "counts", "f"),
    [
        (5, 2, [16, 16, 16, 16], 1.0),  # one column off: every edge pixel within 2 px
        (5, 0, [8, 16, 8, 16], 0.5),  # exact matching: only column 4 is shared
        (7, 2, [8, 16, 8, 16], 0.5),  # columns 6|7 vs 3|4: only 6 and 4 are 2 px apart
        (7, 3, [16, 16, 16, 16], 1.0),
    ],
)
def test_boundary_f_against_hand_counts(split: int, tolerance: int, counts: list[int], f: float):
    ref, pred = _halves(4), _halves(split)
    assert boundary_counts(pred, ref, tolerance=tolerance).tolist() == counts
    assert boundary_f(pred, ref, tolerance=tolerance) == pytest.approx(f)


def test_boundary_f_without_edges():
    flat = np.zeros((8, 8), np.int64)
    assert boundary_f(flat, flat) == 1.0  # nothing to disagree about
    assert boundary_f(flat, _halves(4)) == 0.0  # an edge missed entirely


def test_numpy_dilation_matches_opencv(monkeypatch: pytest.MonkeyPatch):
    cv2 = pytest.importorskip("cv2")
    edges = np.random.default_rng(0).random((20, 24)) > 0.95
    with_cv = classwise._dilate(edges, 2)
    monkeypatch.setitem(__import__("sys").modules, "cv2", None)  # import cv2 -> ImportError
    assert (classwise._dilate(edges, 2) == with_cv).all() and cv2 is not None
    # The disk of radius 2: 13 pixels around one point.
    one = np.zeros((7, 7), bool)
    one[3, 3] = True
    assert classwise._dilate(one, 2).sum() == 13


def test_judged_classes_need_enough_ground_truth():
    from edgeseg._evidence import MIN_CLASS_PIXELS as floor

    # 0.1% of 1,000,000 pixels = 1000: 999 pixels is too few, 0 is absent.
    counts = np.array([1_000_000 - 1999, 1000, 999, 0])
    assert judged_classes(counts).tolist() == [True, True, False, False]
    # On few pixels the share alone would judge a class on a handful of them: the floor does not.
    assert judged_classes(np.array([500, floor, floor - 1, 0])).tolist() == [True, True, False, False]


@pytest.fixture
def no_class_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    """The by-hand figures below are on 8x8 maps, under the pixel floor a class needs to be judged
    (edgeseg._evidence.MIN_CLASS_PIXELS, tested on its own above): lifted for them."""
    monkeypatch.setattr(classwise, "MIN_CLASS_PIXELS", 1)


@pytest.mark.usefixtures("no_class_floor")
def test_class_parity_report_by_hand():
    gt = _halves(4)[None]  # 32 pixels of each class
    ref = gt.copy()
    out = _halves(7)[None]  # the artifact gives 24 of the 32 pixels of class 1 to class 0
    cp = ClassParity(3)
    cp.update(ref, out, gt)
    r = cp.report(["road", "pole", "sign"])
    # class 0: inter 32, union 56 -> 4/7; class 1: inter 8, union 32 -> 1/4; class 2 absent everywhere
    assert r["iou_vs_pytorch"] == {"road": pytest.approx(4 / 7, abs=1e-6), "pole": 0.25, "sign": None}
    assert r["iou_artifact_vs_gt"]["pole"] == 0.25 and r["iou_pytorch_vs_gt"]["pole"] == 1.0
    assert r["drop_points"] == {"road": pytest.approx(300 / 7, abs=1e-3), "pole": 75.0}
    assert r["unjudged"] == {"sign": "absent from the data"}
    assert r["worst"][0] == {"class": "pole", "drop_points": 75.0, "iou_pytorch": 1.0, "iou_artifact": 0.25}
    assert r["flips"] == [{"pytorch": "pole", "artifact": "road", "pixels": 24, "share": 0.375}]
    assert r["flip_matrix"] == [[0, 0, 0], [24, 0, 0], [0, 0, 0]]
    # Edges at columns 3|4 vs 6|7: only 6 and 4 are within 2 px of the other side -> P = R = F = 1/2.
    assert r["boundary_f_vs_pytorch"] == 0.5 and r["boundary_f_vs_gt"] == {"pytorch": 1.0, "artifact": 0.5}


@pytest.mark.usefixtures("no_class_floor")
def test_ignored_pixels_count_for_no_class_and_no_edge():
    gt = _halves(4)[None].copy()
    gt[0, :, 5:] = 255  # only columns 4 of class 1 are labelled
    ref = _halves(4)[None]
    out = _halves(5)[None]  # wrong only on column 4
    cp = ClassParity(2, ignore_index=255)
    cp.update(ref, out, gt)
    r = cp.report(["a", "b"])
    assert r["gt_pixels"] == {"a": 32, "b": 8}
    assert r["iou_artifact_vs_gt"] == {"a": 0.8, "b": 0.0} and r["drop_points"]["b"] == 100.0


@pytest.mark.usefixtures("no_class_floor")
def test_without_ground_truth_the_worst_class_is_the_least_like_the_reference():
    cp = ClassParity(2)
    cp.update(_halves(4)[None], _halves(6)[None])
    r = cp.report(["a", "b"])
    assert "drop_points" not in r and r["worst"][0] == {"class": "b", "iou_vs_pytorch": 0.5}
