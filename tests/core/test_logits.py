"""Logits at a fraction of the input's size: the one rule that finds them and the NumPy upsampling
`Segmenter` applies to a bare graph's output, equal to the step an export puts in the graph."""

from __future__ import annotations

import numpy as np
import pytest

from edgeseg._logits import logits_scale, upsample_logits


@pytest.mark.parametrize(
    ("out_hw", "in_hw", "scale"),
    [((30, 46), (30, 46), 1), ((8, 12), (30, 46), 4), ((7, 11), (30, 46), 4), ((15, 23), (30, 46), 2),
     ((28, 44), (30, 46), None), ((1, 1), (512, 512), None), ((16, 16), (512, 512), 32)],
)  # fmt: skip
def test_logits_scale(out_hw: tuple[int, int], in_hw: tuple[int, int], scale: int | None):
    assert logits_scale(out_hw, in_hw) == scale


@pytest.mark.parametrize("size", [(30, 46), (32, 48), (31, 45)])
def test_upsample_logits_is_pytorchs_bilinear_without_corner_alignment(size: tuple[int, int]):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 12)).astype(np.float32)
    expected = torch.nn.functional.interpolate(torch.from_numpy(x), size=size, mode="bilinear",
                                               align_corners=False).numpy()  # fmt: skip
    got = upsample_logits(x, size)
    assert got.shape == (2, 3, *size) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)
