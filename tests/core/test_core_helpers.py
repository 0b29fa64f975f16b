"""The core's shared rules: one core count, one exception-to-one-line helper, one RGB-to-gray."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeseg._cpu import usable_cores
from edgeseg.data import read_image, rgb_to_gray
from edgeseg.errors import first_line


def test_usable_cores_respects_affinity(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0, 2, 5}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert usable_cores() == 3
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    assert usable_cores() == 64
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert usable_cores() == 1


def test_demo_keeps_a_core_for_capture_and_drawing(monkeypatch: pytest.MonkeyPatch):
    from edgeseg.demo.model import model_threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0, 1, 2, 3}, raising=False)
    assert model_threads(None) == 3 and model_threads(2) == 2 and model_threads(0) == 0
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0}, raising=False)
    assert model_threads(None) == 1


@pytest.mark.parametrize(
    ("message", "line"),
    [
        ("Exception from src/inference/src/cpp/core.cpp:112:\nException from src/x.cpp:9:\n[ IR ] bad xml",
         "[ IR ] bad xml"),  # OpenVINO: the cause comes last, after source locations
        ("[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model failed\nmore", "[ONNXRuntimeError] : 7 : "
         "INVALID_PROTOBUF : Load model failed"),
        ("Error(s) in loading state_dict for UNet:\n\tMissing key(s)",
         "Error(s) in loading state_dict for UNet:"),
        ("", "RuntimeError"),
        ("A" * 160 + ". The rest of a long paragraph.", "A" * 160),
    ],
)  # fmt: skip
def test_first_line(message: str, line: str):
    assert first_line(RuntimeError(message)) == line


def test_rgb_to_gray_is_training_luma(tmp_path: Path):
    rgb = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "x.png")
    gray = rgb_to_gray(rgb)
    assert gray.shape == (7, 9, 1) and gray.dtype == np.uint8
    assert np.array_equal(gray, read_image(tmp_path / "x.png", channels=1))  # what training reads
    as_float = rgb_to_gray(rgb.astype(np.float32))
    assert as_float.dtype == np.float32 and np.abs(as_float - gray).max() <= 0.5 + 1e-3


def test_benchmark_synthetic_frames_use_the_same_luma():
    from edgeseg.bench.rows import to_channels as _channels

    rgb = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert np.array_equal(_channels(rgb, 1), rgb_to_gray(rgb))  # not a plain mean of the channels
    assert not np.array_equal(_channels(rgb, 1), rgb.mean(axis=2).astype(np.uint8)[..., None])
    assert _channels(rgb, 3) is rgb
