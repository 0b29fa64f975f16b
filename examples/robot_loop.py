"""A robot-style control loop that embeds `Segmenter`: read a frame, segment it, decide from the mask.

    python examples/robot_loop.py MODEL [--source synthetic|0|video.mp4] [--frames 50] [--free-class road]

MODEL is a bundle folder, .onnx, .xml or checkpoint. The decision looks at the region just ahead of
the robot (the lower-centre of the frame) and measures the share of its pixels that are free space
(class `--free-class`, a name or id; by default the first of the model's classes named like free
space: road, floor, ground, ..., background): mostly free -> go, partly -> slow, else stop.
Frames come from the demo's sources (synthetic scenes by default, or a camera / video with OpenCV).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from edgeseg import Segmenter
from edgeseg.demo import SourceEnded, open_frame_source

GO, SLOW = 0.85, 0.6  # free-space shares ahead above which the robot goes, or goes slowly
# Class names that mean "the robot may drive here", most specific first (CamVid's road before a
# generic background, which on CamVid does not exist and elsewhere is everything else).
FREE_NAMES = ("road", "drivable", "floor", "ground", "free", "path", "lane", "background")


def free_class_id(names: tuple[str, ...], wanted: str | None) -> int:
    """The id of the free-space class: `wanted` as an id or a name, else the first of the model's
    classes named in FREE_NAMES. SystemExit naming the classes when there is none."""
    lowered = [n.lower() for n in names]
    if wanted is not None:
        if wanted.isdigit() and int(wanted) < len(names):
            return int(wanted)
        if wanted.lower() in lowered:
            return lowered.index(wanted.lower())
        raise SystemExit(f"--free-class '{wanted}' is not one of the model's classes: {', '.join(names)}")
    for name in FREE_NAMES:
        if name in lowered:
            return lowered.index(name)
    raise SystemExit(f"no class looks like free space; pass --free-class (one of: {', '.join(names)})")


def free_space_ahead(mask: np.ndarray, free_class: int) -> float:
    """Share of free pixels in the region ahead: the bottom third, middle half of the frame."""
    h, w = mask.shape
    ahead = mask[2 * h // 3 :, w // 4 : 3 * w // 4]
    return float((ahead == free_class).mean())


def decide(free: float) -> str:
    return "go" if free >= GO else "slow" if free >= SLOW else "stop"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--source", default="synthetic", help="synthetic, a camera index, a video file, a folder")
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument(
        "--free-class", default=None, help="name or id of the free-space class (default: by name)"
    )
    args = ap.parse_args()

    source = open_frame_source(args.source, frame_size=(320, 240))
    decisions: dict[str, int] = {}
    with Segmenter(args.model) as seg:  # frames are BGR, as OpenCV delivers them
        free_class = free_class_id(seg.class_names, args.free_class)
        print(f"free space: class {free_class} ({seg.class_names[free_class]})")
        seg.warmup()
        start = time.perf_counter()
        for i in range(args.frames):
            try:
                read = source.read()
            except SourceEnded:
                break
            if read is None:  # a camera that dropped a frame: a robot would slow down and retry
                continue
            frame, _truth = read
            result = seg(frame)
            free = free_space_ahead(result.mask, free_class)
            action = decide(free)
            decisions[action] = decisions.get(action, 0) + 1
            print(f"frame {i:4d}: free ahead {free:6.1%} -> {action:4s} ({result.timings['total']:.1f} ms)")
        elapsed = time.perf_counter() - start
    source.close()
    done = sum(decisions.values())
    print(
        f"{done} frames, {done / elapsed:.1f} FPS; decisions: "
        + ", ".join(f"{k} {v}" for k, v in decisions.items())
    )


if __name__ == "__main__":
    main()
