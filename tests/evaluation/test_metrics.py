from __future__ import annotations

import math

import numpy as np
import pytest

from edgeseg.evaluation.metrics import ConfusionMatrix, mask_agreement


def test_hand_computed_values():
    target = np.array([[0, 0, 1], [1, 2, 2]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    cm = ConfusionMatrix(3)
    cm.update(pred, target)
    m = cm.compute()
    # class 0: tp1 fp1 fn1 -> IoU 1/3, Dice 2/4; class 1: tp2 fp1 fn0 -> 2/3, 4/5;
    # class 2: tp1 fp0 fn1 -> 1/2, 2/3
    assert m.iou_per_class == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert m.dice_per_class == pytest.approx([0.5, 0.8, 2 / 3])
    assert m.miou == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert m.dice == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m.pixel_accuracy == pytest.approx(4 / 6)
    assert m.pixels == 6


def test_ignore_index_pixels_are_skipped():
    target = np.array([0, 1, 255, 255])
    pred = np.array([0, 1, 0, 1])
    cm = ConfusionMatrix(2, ignore_index=255)
    cm.update(pred, target)
    m = cm.compute()
    assert m.pixels == 2 and m.miou == 1.0 and m.pixel_accuracy == 1.0


def test_absent_class_is_nan_and_excluded_from_mean():
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 1]), np.array([0, 1]))
    m = cm.compute()
    assert math.isnan(m.iou_per_class[2])
    assert m.miou == 1.0
    assert m.to_dict(["a", "b", "c"])["iou_per_class"]["c"] is None


def test_accumulating_batches_equals_one_update():
    rng = np.random.default_rng(1)
    t, p = rng.integers(0, 4, (5, 8, 8)), rng.integers(0, 4, (5, 8, 8))
    whole, parts = ConfusionMatrix(4), ConfusionMatrix(4)
    whole.update(p, t)
    for i in range(5):
        part = ConfusionMatrix(4)
        part.update(p[i], t[i])
        parts += part
    assert (whole.matrix == parts.matrix).all()


def test_shape_mismatch_and_agreement():
    with pytest.raises(ValueError, match="shape"):
        ConfusionMatrix(2).update(np.zeros((2, 2)), np.zeros((2, 3)))
    assert mask_agreement(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 4])) == 0.75


def test_a_class_at_the_ignore_index_is_not_scored():
    """A model's own void class (id 3) that the labels mark as unlabelled: its truth is never counted,
    so predicting it on labelled pixels costs the true class, and the void class itself is no IoU 0."""
    truth = np.array([[0, 1, 2, 3]])
    pred = np.array([[0, 1, 3, 3]])
    cm = ConfusionMatrix(4, ignore_index=3)
    cm.update(pred, truth)
    m = cm.compute()
    assert np.isnan(m.iou_per_class[3]) and np.isnan(m.dice_per_class[3])
    assert m.iou_per_class[2] == 0.0  # the pixel of class 2 predicted as void: an error for class 2
    assert m.miou == pytest.approx((1 + 1 + 0) / 3)
    assert m.pixel_accuracy == pytest.approx(2 / 3)
