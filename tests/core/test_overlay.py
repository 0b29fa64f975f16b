"""The one overlay renderer (`predict` and the demo draw with it) and `colorize`."""

from __future__ import annotations

import numpy as np
import pytest

from edgeseg.overlay import Overlay, class_colors, colorize


def test_colorize_draws_ignored_and_unknown_ids_white():
    mask = np.array([[0, 1, 2], [11, 255, 3]], np.uint8)
    out = colorize(mask, 12, ignore_index=11)
    colours = class_colors(12)
    assert out[0, 1].tolist() == colours[1].tolist() and out[1, 2].tolist() == colours[3].tolist()
    assert out[1, 0].tolist() == [255, 255, 255]  # the ignore id, although it is < 12 classes
    assert out[1, 1].tolist() == [255, 255, 255]  # beyond the classes
    assert colorize(mask, 12)[1, 0].tolist() == colours[11].tolist()  # without ignore_index: a class


def test_overlay_blends_foreground_and_keeps_background():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (9, 13, 3), dtype=np.uint8)
    mask = rng.integers(0, 4, (9, 13)).astype(np.uint8)
    mask[0, 0], mask[0, 1] = 0, 2
    alpha = 0.3
    overlay = Overlay(4, alpha)
    out = overlay._blend_tables(image, mask)  # numpy's path, whether or not OpenCV is loaded
    expected = np.rint((1 - alpha) * image + alpha * class_colors(4)[mask].astype(np.float64)).astype(
        np.uint8
    )
    expected[mask == 0] = image[mask == 0]  # class 0 stays uncoloured
    assert out.dtype == np.uint8 and np.array_equal(out, expected)
    drawn = overlay.blend(image, mask)  # OpenCV's path where it is loaded: within its rounding
    assert np.abs(drawn.astype(np.int16) - expected).max() <= 1 and np.array_equal(
        drawn[mask == 0], image[mask == 0]
    )
    before = image.copy()
    Overlay(4, alpha).blend(image, mask)
    assert np.array_equal(image, before)  # the input is untouched


def test_overlay_orders_gray_images_and_ignored_ids():
    mask = np.array([[1, 5, 9]], np.uint8)
    rgb = Overlay(6, 1.0).blend(np.zeros((1, 3, 3), np.uint8), mask)
    bgr = Overlay(6, 1.0, order="bgr").blend(np.zeros((1, 3, 3), np.uint8), mask)
    assert rgb[0, 0].tolist() == class_colors(6)[1].tolist() and np.array_equal(bgr, rgb[:, :, ::-1])
    assert rgb[0, 2].tolist() == [255, 255, 255]  # beyond the classes: white
    ignored = Overlay(6, 1.0, ignore_index=5).blend(np.zeros((1, 3), np.uint8), mask)  # HxW gray
    assert ignored[0, 1].tolist() == [255, 255, 255]
    gray = np.full((1, 3, 1), 80, np.uint8)
    assert np.array_equal(
        Overlay(6, 0.5).blend(gray, mask), Overlay(6, 0.5).blend(np.repeat(gray, 3, 2), mask)
    )
    wide = Overlay(6, 1.0).colour_mask(np.array([[1, 300]], np.uint16))
    assert wide[0, 0].tolist() == class_colors(6)[1].tolist() and wide[0, 1].tolist() == [255, 255, 255]
    with pytest.raises(ValueError, match="differ in size"):
        Overlay(6).blend(np.zeros((2, 3, 3), np.uint8), mask)


def test_overlay_reuses_its_buffers_across_sizes():
    overlay = Overlay(3, 0.5)
    for h, w in ((4, 5), (4, 5), (7, 2)):
        mask = np.ones((h, w), np.uint8)
        assert overlay.blend(np.zeros((h, w, 3), np.uint8), mask).shape == (h, w, 3)


@pytest.mark.parametrize("alpha", [0.5, 0.3, 0.8])
def test_opencv_path_draws_the_same_overlay(alpha: float):
    """With OpenCV loaded (the demo) the blend runs on it; the pixels are the numpy tables' (class 0
    exact, the rest within OpenCV's rounding)."""
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    mask = rng.integers(0, 14, (24, 32)).astype(np.uint8)
    overlay = Overlay(12, alpha, order="bgr")
    fast, tables = overlay._blend_opencv(cv2, image, mask), overlay._blend_tables(image, mask)
    assert np.abs(fast.astype(np.int16) - tables).max() <= (0 if alpha == 0.5 else 1)
    assert np.array_equal(fast[mask == 0], image[mask == 0])
    assert np.array_equal(overlay.blend(image, mask), fast)  # cv2 is loaded: blend takes that path
