"""Every way to do a Segmenter call's pre/post, against the training-time preprocessing, in one run.

Training resizes images with Pillow's bilinear filter (antialiased: its support widens with the
scale). A deployed call may resize otherwise; what matters is whether the masks stay the same. For
each frame size (camera frames of a 320x240 model: 640x480 and 1280x720 by default) this script
measures, in interleaved rounds, every resize variant:

- pillow: one `Image.resize` call, the training-time preprocessing (the reference);
- strips: Pillow in horizontal strips on the usable cores (`Segmenter`'s default, bit-identical);
- cv2-linear, cv2-area: OpenCV's `INTER_LINEAR` (no antialiasing) and `INTER_AREA` (box average);
- cv2-area+linear: `INTER_AREA` to twice the model's size, then `INTER_LINEAR` to it;
- torch: `resize_kernel="torch"`, PyTorch's vectorised copy of Pillow's filter (imports torch);
- in-graph: ONNX `Resize(linear, antialias=1)` on ONNX Runtime, what a graph that resizes runs;

and for each: its p50 time and ratio to one Pillow call, its largest and mean difference from
Pillow in grey levels, and the agreement of the masks the model gives on its output with the masks
of the Pillow path (`--data` frames: a labelled folder's images brought to the frame size, and the
mIoU change where they have masks). Then, for the Segmenter call itself: pre/post on the host
(`plain` bundle) against normalisation and argmax in the graph (`--fuse-prepost` bundle), with the
default resize and with `resize_kernel="torch"`: model p50, call p50, call/model, mask agreement
with the plain call.

    python benchmarks/prepost_variants.py CKPT [--data DIR] [--frames 640x480,1280x720]
        [--targets onnx:fp32,openvino:int8] [--runs 20] [--rounds 3] [--bundles DIR]

Mask tolerance used for defaults (README, benchmarks/README): a variant may become a default only
where its masks agree with the Pillow path's on at least 99.9 % of the pixels of every frame size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from resize_speed import _onnxruntime as onnxruntime_resize  # benchmarks/ is on the path as a script

from edgeseg import Segmenter
from edgeseg._cpu import usable_cores
from edgeseg.data import parse_img_size
from edgeseg.data.imageio import resize_image
from edgeseg.data.transforms import normalize
from edgeseg.exporters import ExportConfig, export
from edgeseg.manifest import MANIFEST_NAME

TOLERANCE = 0.999  # the least mask agreement with the Pillow path a default may have
Kernel = Callable[[np.ndarray], np.ndarray]


def kernels(size: tuple[int, int]) -> dict[str, Kernel]:
    """The resize variants, each RGB uint8 frame -> RGB uint8 at `size` (width, height)."""
    import cv2

    w, h = size

    def area_linear(frame: np.ndarray) -> np.ndarray:
        mid = cv2.resize(frame, (2 * w, 2 * h), interpolation=cv2.INTER_AREA)
        return cv2.resize(mid, (w, h), interpolation=cv2.INTER_LINEAR)

    out: dict[str, Kernel] = {
        "pillow": lambda f: resize_image(f, size),
        "strips": lambda f: resize_image(f, size, parallel=True),
        "cv2-linear": lambda f: cv2.resize(f, size, interpolation=cv2.INTER_LINEAR),
        "cv2-area": lambda f: cv2.resize(f, size, interpolation=cv2.INTER_AREA),
        "cv2-area+linear": area_linear,
        "torch": lambda f: resize_image(f, size, kernel="torch"),
    }
    graph = onnxruntime_resize(size)
    if graph is not None:
        out["in-graph"] = graph
    return out


def frames_from(data: str | None, frame_size: tuple[int, int], n: int) -> tuple[list[np.ndarray], list]:
    """RGB frames at `frame_size`: a folder's images brought to it with Pillow's Lanczos filter (a
    camera's detail, not a second bilinear pass), or synthetic scenes rendered at that size."""
    from PIL import Image

    if data:
        from edgeseg.data.files import list_images
        from edgeseg.data.imageio import read_image

        files = list_images(Path(data) / "images")[:n]
        imgs = [read_image(p, channels=3) for p in files]
        return [
            np.asarray(Image.fromarray(i).resize(frame_size, Image.Resampling.LANCZOS)) for i in imgs
        ], files
    from edgeseg.data.synthetic import render_scene

    rng = np.random.default_rng(7)
    return [np.ascontiguousarray(render_scene(rng, frame_size)[0]) for _ in range(n)], []


def _p50(samples: list[float]) -> float:
    return statistics.median(samples)


def _bundle(ckpt: Path, folder: Path, target: str, precision: str, fused: bool, calib: str | None) -> Path:
    dest = folder / f"{target}-{precision}-{'fused' if fused else 'plain'}"
    if (dest / MANIFEST_NAME).is_file():
        return dest
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = ExportConfig(
            target, precision, out=str(dest), fuse_prepost=fused, calib=calib if precision == "int8" else None
        )
        return export(ckpt, config).bundle


def resize_table(seg: Segmenter, frames: list[np.ndarray], args: argparse.Namespace) -> None:
    """Every resize variant: time, grey-level difference and mask agreement with the Pillow path."""
    pre = seg.preprocessing
    size = (pre.width, pre.height)
    ks = kernels(size)
    feed_name = pre.input_name

    def masks(images: list[np.ndarray]) -> np.ndarray:
        x = np.stack([normalize(img, pre.mean, pre.std).astype(np.float32) for img in images])
        out = [seg.backend.infer({feed_name: x[i : i + 1]})[pre.output_name] for i in range(len(x))]
        return np.concatenate(out).argmax(1)

    ref_imgs = [ks["pillow"](f) for f in frames]
    ref_masks = masks(ref_imgs)
    figures = {}
    for name, fn in ks.items():
        imgs = [fn(f) for f in frames]
        diff = np.abs(np.stack(imgs).astype(np.int16) - np.stack(ref_imgs).astype(np.int16))
        agree = float((masks(imgs) == ref_masks).mean())
        figures[name] = (int(diff.max()), float(diff.mean()), float((diff > 1).mean()), agree)
    samples: dict[str, list[float]] = {k: [] for k in ks}
    frame = frames[0]
    for _ in range(args.rounds):
        for name, fn in ks.items():
            fn(frame)
            for _ in range(args.runs):
                t = time.perf_counter()
                fn(frame)
                samples[name].append((time.perf_counter() - t) * 1000)
    base = _p50(samples["pillow"])
    print(f"  {'resize':<16} {'p50 ms':>7} {'/pillow':>8} {'max diff':>8} {'mean diff':>9} {'>1 level':>8} "
          f"{'masks agree':>11} {'default ok':>10}")  # fmt: skip
    for name in ks:
        ms = _p50(samples[name])
        top, mean, over, agree = figures[name]
        ok = "yes" if agree >= TOLERANCE else "no"
        print(
            f"  {name:<16} {ms:7.2f} {ms / base:7.2f}x {top:8d} {mean:9.3f} {over:8.2%} {agree:11.4%} "
            f"{ok:>10}"
        )


def call_table(rows: list[tuple[str, dict[str, Segmenter]]], frames: list[np.ndarray], args) -> None:  # type: ignore[no-untyped-def]
    """Plain vs fused calls with each resize kernel Segmenter offers: model p50, call p50, ratios,
    and mask agreement with the plain Pillow call (the default)."""
    from edgeseg.preprocess import prepare_frame

    frame = frames[0]
    model: dict[str, list[float]] = {name: [] for name, _ in rows}
    calls = {f"{name} {kind}": [] for name, segs in rows for kind in segs}  # type: ignore[var-annotated]
    feeds = {}
    for name, segs in rows:
        plain = segs["plain pillow"]
        x, _ = prepare_frame(frame, plain.preprocessing, "rgb")
        feeds[name] = {plain.preprocessing.input_name: x[None]}
        for seg in segs.values():
            for _ in range(2):
                seg(frame)
    for _ in range(args.rounds):
        for name, segs in rows:
            for _ in range(args.runs):
                t = time.perf_counter()
                segs["plain pillow"].backend.infer(feeds[name])
                model[name].append((time.perf_counter() - t) * 1000)
            for kind, seg in segs.items():
                for _ in range(args.runs):
                    t = time.perf_counter()
                    seg(frame)
                    calls[f"{name} {kind}"].append((time.perf_counter() - t) * 1000)
    print(
        f"  {'row':<16} {'model p50':>9} {'call':<14} {'call p50':>8} {'call/model':>10} {'masks agree':>11}"
    )
    for name, segs in rows:
        m = _p50(model[name])
        reference = [segs["plain pillow"](f).mask for f in frames]
        for kind, seg in segs.items():
            got = [seg(f).mask for f in frames]
            agree = float(np.mean([(a == b).mean() for a, b in zip(got, reference, strict=True)]))
            c = _p50(calls[f"{name} {kind}"])
            print(f"  {name:<16} {m:9.2f} {kind:<14} {c:8.2f} {c / m:9.2f}x {agree:11.4%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--data", help="a folder with images/ (and masks/) for the frames; default synthetic")
    ap.add_argument("--frames", default="640x480,1280x720")
    ap.add_argument("--images", type=int, default=8, help="frames per size for the agreement figures")
    ap.add_argument("--targets", default="onnx:fp32,openvino:int8")
    ap.add_argument("--calib", help="int8 calibration images (default: the checkpoint's training folder)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bundles", help="folder to export into and reuse bundles from (default: temporary)")
    args = ap.parse_args()
    ckpt = Path(args.checkpoint)
    folder = Path(args.bundles) if args.bundles else Path(tempfile.mkdtemp(prefix="edgeseg-prepost-"))
    rows = []
    for item in args.targets.split(","):
        target, precision = item.split(":")
        from edgeseg.formats import get_target

        backend = get_target(target).backends[0]
        segs = {}
        for kind, fused in (("plain", False), ("fused", True)):
            bundle = _bundle(ckpt, folder, target, precision, fused, args.calib)
            for kernel in ("pillow", "torch"):
                segs[f"{kind} {kernel}"] = Segmenter(bundle, backend=backend, input_format="rgb",
                                                     resize_kernel=kernel)  # fmt: skip
        rows.append((item, segs))
    pre = rows[0][1]["plain pillow"].preprocessing
    print(f"model {ckpt} at {pre.width}x{pre.height}; {usable_cores()} usable cores; load average "
          f"{os.getloadavg()[0]:.1f}; {args.runs} runs x {args.rounds} rounds, interleaved; mask tolerance "
          f"for a default: {TOLERANCE:.1%} agreement with the Pillow path")  # fmt: skip
    for frame_size in (parse_img_size(s) for s in args.frames.split(",")):
        frames, _ = frames_from(args.data, frame_size, args.images)
        print(
            f"\nframe {frame_size[0]}x{frame_size[1]}: {len(frames)} frames "
            + (f"of {args.data}" if args.data else "(synthetic scenes)")
        )
        resize_table(rows[0][1]["plain pillow"], frames, args)
        call_table(rows, frames, args)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    for _, segs in rows:
        for seg in segs.values():
            seg.close()


if __name__ == "__main__":
    main()
