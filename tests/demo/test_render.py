"""What the demo draws over each frame: the class key and the HUD, sized to the frame, switchable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeseg.demo.render import Renderer, hud_font_px
from edgeseg.demo.stats import DemoState, hud_lines, live_stats
from edgeseg.evaluation.metrics import SegMetrics

CAMVID = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
          "Pedestrian", "Bicyclist"]  # fmt: skip


def _hud() -> list[str]:
    """A full HUD: every line the demo can show, with wide figures."""
    state = DemoState(
        model=Path("m"),
        backend="openvino",
        device="openvino",
        precision="int8",
        source="camera 0",
        frames=123456,
        fps=1234.5,
        stages_recent={"pre": 10.1, "infer": 120.4, "post": 10.2, "total": 140.0, "render": 12.3},
        baseline={
            "pixel_agreement": 0.9987,
            "miou": 0.9876,
            "frames_compared": 1234,
            "flicker_pytorch": 0.0012,
            "flicker_artifact": 0.0034,
        },
        truth=SegMetrics(miou=0.5, dice=0.6, pixel_accuracy=0.9),
        latency_pcts={"p50": 110.0, "p95": 220.0, "p99": 330.0},
        flicker=0.0125,
        dropped=12345,
        stalled=True,
    )
    lines = hud_lines(live_stats(state))
    assert len(lines) == 8  # every line there is
    return lines


def _drawn(width: int, height: int, **kw: bool) -> np.ndarray:
    """Pixels the HUD and the key changed on a uniform frame with a class-0 mask (left uncoloured)."""
    frame = np.full((height, width, 3), 128, np.uint8)
    mask = np.zeros((height, width), np.uint8)
    out = Renderer(len(CAMVID), class_names=CAMVID, **kw).draw(frame, mask, _hud())
    return (out != frame).any(axis=2)


def test_hud_and_key_cover_well_under_a_third_of_a_480x360_frame():
    drawn = _drawn(480, 360)
    assert drawn.mean() < 1 / 4
    assert drawn[:60, :60].any() and drawn[-60:, -60:].any()  # HUD top left, key bottom right


def test_hud_and_key_scale_with_the_frame():
    small, large = _drawn(480, 360).sum(), _drawn(960, 720).sum()
    assert 3.0 < large / small < 5.0  # twice the height: about four times the area, same share
    assert hud_font_px(720) == 2 * hud_font_px(360)


@pytest.mark.parametrize(("hud", "legend"), [(False, True), (True, False), (False, False)])
def test_hud_and_key_are_switched_separately(hud: bool, legend: bool):
    drawn = _drawn(480, 360, hud=hud, legend=legend)
    assert drawn[:60, :60].any() == hud and drawn[-60:, -60:].any() == legend
    renderer = Renderer(len(CAMVID), class_names=CAMVID, hud=hud, legend=legend)
    renderer.toggle("hud")
    renderer.toggle("legend")
    assert (renderer.hud, renderer.legend) == (not hud, not legend)


def test_long_hud_lines_shrink_to_fit_a_narrow_frame():
    frame = np.full((480, 320, 3), 128, np.uint8)
    drawn = (Renderer(3).draw(frame, np.zeros((480, 320), np.uint8), _hud()) != frame).any(axis=2)
    columns = np.flatnonzero(drawn[:40].any(axis=0))
    assert columns.max() < 0.65 * 320
