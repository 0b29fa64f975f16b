"""Drawing the demo's overlay: edgeseg's `Overlay` (shared with `predict`) on its OpenCV path (what the
demo runs) and on its numpy path (no OpenCV loaded), relative to the demo's former drawing (OpenCV's
LUT + addWeighted + copyTo, new buffers every frame), in one run.

    python benchmarks/overlay_speed.py [--size 640x480] [--classes 12] [--runs 200]

Both draw the same BGR frame and mask, rounds interleaved so machine noise hits both alike; prints
the median milliseconds of each, the ratios, and the largest pixel differences (rounding only).
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np

from edgeseg.overlay import Overlay, class_colors


def opencv_blend(lut: np.ndarray, frame: np.ndarray, mask: np.ndarray, alpha: float) -> np.ndarray:
    colours = cv2.LUT(cv2.merge([mask, mask, mask]), lut)
    blend = cv2.addWeighted(frame, 1.0 - alpha, colours, alpha, 0.0)
    out = frame.copy()
    cv2.copyTo(blend, (mask > 0).view(np.uint8), out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--classes", type=int, default=12)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    # Blocky regions, as a segmentation mask is, not per-pixel noise.
    mask = rng.integers(0, args.classes, (h // 8 + 1, w // 8 + 1)).astype(np.uint8).repeat(8, 0).repeat(8, 1)
    mask = np.ascontiguousarray(mask[:h, :w])
    alpha = 0.5
    lut = np.full((256, 1, 3), 255, np.uint8)
    lut[: args.classes, 0] = class_colors(args.classes)[:, ::-1]
    overlay = Overlay(args.classes, alpha, order="bgr")
    draws = {
        "overlay": lambda: overlay.blend(frame, mask),
        "tables": lambda: overlay._blend_tables(frame, mask),
        "former": lambda: opencv_blend(lut, frame, mask, alpha),
    }
    times: dict[str, list[float]] = {name: [] for name in draws}
    for _ in range(args.runs):
        for name, draw in draws.items():
            t0 = time.perf_counter()
            draw()
            times[name].append((time.perf_counter() - t0) * 1000)
    ms = {name: statistics.median(t) for name, t in times.items()}
    former = draws["former"]().astype(np.int16)
    print(f"{w}x{h}, {args.classes} classes, {args.runs} runs each, interleaved")
    for name, value in ms.items():
        print(f"  {name:8s} {value:6.2f} ms (median)")
    for name in ("overlay", "tables"):
        diff = np.abs(draws[name]() - former).max()
        print(f"  {name} / former time ratio {ms[name] / ms['former']:.2f}; max pixel difference {diff}")


if __name__ == "__main__":
    main()
