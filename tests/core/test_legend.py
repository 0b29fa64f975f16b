"""The class key every picture with class colours carries (`predict`, the demo, the training figures)."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from edgeseg.legend import Legend, MaskPictures, legend_entries, legend_layout, render_legend, text_patch
from edgeseg.overlay import Overlay, class_colors

CAMVID = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
          "Pedestrian", "Bicyclist"]  # fmt: skip


def _inside(box: tuple[int, int, int, int], size: tuple[int, int]) -> bool:
    x0, y0, x1, y1 = box
    return 0 <= x0 < x1 <= size[0] and 0 <= y0 < y1 <= size[1]


def test_entries_follow_the_palette_and_the_drawing_of_class_0():
    colours = class_colors(4)
    black = legend_entries(["bg", "a", "b", "c"], ignored="ignored")
    assert [e.name for e in black] == ["bg", "a", "b", "c", "ignored"]
    assert [e.colour for e in black[:4]] == [tuple(int(v) for v in c) for c in colours]
    assert black[-1].colour == (255, 255, 255)  # as colorize draws ignored ids
    clear = legend_entries(["bg", "a"], background="clear")  # Overlay.blend leaves class 0 uncoloured
    assert clear[0].colour is None and clear[1].colour == black[1].colour
    with pytest.raises(ValueError, match="background"):
        legend_entries(["a"], background="white")


@pytest.mark.parametrize(("font_px", "max_height"), [(9, 60), (11, 180), (22, 1000), (9, 1)])
def test_layout_holds_every_name_in_its_box_without_overlap(font_px: int, max_height: int):
    layout = legend_layout(legend_entries(CAMVID), font_px, max_height)
    assert [e.name for e in layout.entries] == CAMVID and len(layout.swatches) == len(CAMVID)
    rows = {y for _, y in layout.labels}
    if max_height >= 60:
        assert layout.size[1] <= max_height  # more columns rather than a taller key
    assert len(rows) >= 1 and all(_inside(box, layout.size) for box in layout.swatches)
    for a, b in itertools.combinations(layout.swatches, 2):  # swatches never overlap
        assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def test_rendered_key_shows_each_colour_in_its_swatch():
    entries = legend_entries(CAMVID, background="clear")
    layout = legend_layout(entries, 14, 400)
    for order in ("rgb", "bgr"):
        patch = render_legend(layout, order)
        assert patch.size == layout.size
        for entry, (x0, y0, x1, y1) in zip(entries, layout.swatches, strict=True):
            centre = patch.rgb[(y0 + y1) // 2, (x0 + x1) // 2].tolist()
            if entry.colour is None:  # an empty, crossed-out frame: the panel shows through
                half = (x1 - x0) // 2  # the cross runs from the bottom left to the top right
                assert patch.alpha[y0 + 2, x0 + 2] < 255 and patch.alpha[y1 - 1 - half, x0 + half] == 255
            else:
                expected = list(entry.colour) if order == "rgb" else list(entry.colour[::-1])
                assert centre == expected and patch.alpha[(y0 + y1) // 2, (x0 + x1) // 2] == 255
        # White text right of each swatch: the names are drawn.
        for x, y in layout.labels:
            assert (patch.rgb[y : y + 14, x : x + 40] > 200).all(axis=2).any()


def test_key_over_a_frame_scales_with_it_and_stays_small():
    key = Legend(legend_entries(CAMVID, background="clear"), order="bgr")
    small, large = key.layout(480, 360), key.layout(960, 720)
    assert large.font_px == 2 * small.font_px
    assert 1.6 < large.size[1] / small.size[1] < 2.4 and 1.6 < large.size[0] / small.size[0] < 2.4
    for w, h in ((480, 360), (640, 480), (1280, 720), (1920, 1080)):
        kw, kh = key.layout(w, h).size
        assert kw * kh <= 0.15 * w * h, (w, h)
    frame = np.full((360, 480, 3), 90, np.uint8)
    key.draw(frame)
    kw, kh = small.size
    assert np.array_equal(frame[: 360 - kh - 10], np.full_like(frame[: 360 - kh - 10], 90))  # above it
    assert not np.array_equal(frame[-kh:, -kw:], np.full((kh, kw, 3), 90, np.uint8))  # drawn bottom right
    thumb = np.full((40, 50, 3), 90, np.uint8)
    assert np.array_equal(key.draw(thumb), np.full((40, 50, 3), 90, np.uint8))  # would cover it: skipped


def test_key_beside_keeps_the_image_and_fits_short_images():
    key = Legend(legend_entries(CAMVID))
    image = np.random.default_rng(0).integers(0, 256, (37, 45, 3), dtype=np.uint8)
    out = key.beside(image)
    assert out.shape[0] >= 37 and out.shape[1] > 45 and np.array_equal(out[:37, :45], image)
    layout = key.layout(45, 37, beside=True)
    assert out.shape[1] == 45 + layout.size[0] and out.shape[0] == max(37, layout.size[1])


def test_text_box_grows_with_its_lines():
    one, three = text_patch(["FPS 30.0"], 12), text_patch(["FPS 30.0", "a longer line of figures", "x"], 12)
    assert three.size[0] > one.size[0] and three.size[1] > 2 * one.size[1] * 0.9
    assert (three.rgb > 200).all(axis=2).any()  # white text


def test_mask_pictures_colour_mask_uses_the_palette_and_carries_the_key():
    names = ["bg", "road", "car"]
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (30, 41, 3), dtype=np.uint8)
    mask = rng.integers(0, 3, (30, 41)).astype(np.uint8)
    pics = MaskPictures(names, 0.5)(image, mask)
    assert list(pics) == list(MaskPictures.SUFFIXES)
    assert np.array_equal(pics["mask"], mask)
    assert np.array_equal(pics["color"][:30, :41], class_colors(3)[mask])
    assert np.array_equal(pics["overlay"][:30, :41], Overlay(3, 0.5).blend(image, mask))
    assert pics["color"].shape[1] > 41 and pics["overlay"].shape[1] > 41  # the key's panel
    # Each class's swatch in the panel, where the layout puts it, in the class's colour.
    layout = Legend(legend_entries(names)).layout(41, 30, beside=True)
    for c, (x0, y0, x1, y1) in enumerate(layout.swatches):
        swatch = pics["color"][(y0 + y1) // 2, 41 + (x0 + x1) // 2]
        assert swatch.tolist() == class_colors(3)[c].tolist()
    bare = MaskPictures(names, 0.5, legend=False)(image, mask)
    assert bare["color"].shape == (30, 41, 3) and bare["overlay"].shape == (30, 41, 3)


def test_mask_pictures_from_several_threads_match_one_thread():
    # predict writes its pictures from a thread pool; one Overlay shared by the threads mixed up its
    # buffers (5 of 8 overlays of this size came out wrong).
    names = [f"c{i}" for i in range(6)]
    rng = np.random.default_rng(2)
    jobs = [
        (rng.integers(0, 256, (360, 480, 3), dtype=np.uint8), rng.integers(0, 6, (360, 480)).astype(np.uint8))
        for _ in range(8)
    ]
    expected = [MaskPictures(names, 0.4, legend=False)(i, m)["overlay"] for i, m in jobs]
    shared = MaskPictures(names, 0.4, legend=False)
    got: list[np.ndarray | None] = [None] * len(jobs)

    def work(k: int) -> None:
        for i in range(k, len(jobs), 4):
            for _ in range(3):
                got[i] = shared(*jobs[i])["overlay"]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
