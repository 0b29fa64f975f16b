"""Pre/post in the graph vs in numpy: model alone, whole `Segmenter` call and their ratio, in one run.

Exports the checkpoint to onnx, openvino and tensorrt at fp32, fp16 and int8, each twice: plain
(numpy does resize, normalisation, argmax) and with `fuse_prepost` (the graph does them). For every
frame size it times, in interleaved rounds so machine noise hits every row alike:

- model p50: `backend.infer` of the plain graph on one preprocessed NCHW input (the network alone);
- call p50: the whole `Segmenter` call on one frame of that size, plain and fused (the frame resized
  on the host by Pillow in strips), and fused with `resize_kernel="torch"` (PyTorch's copy of
  Pillow's filter), with the fused call's pre/infer/post split;
- agreement: pixels whose class is the same in the fused and the plain masks, on synthetic scenes.

    python benchmarks/prepost_speed.py [CKPT] [--frames 640x480,1280x720] [--runs 30] [--rounds 3]
        [--targets onnx,openvino,tensorrt] [--precisions fp32,fp16,int8] [--bundles DIR]

Without CKPT a U-Net of the quickstart's size (depth 4, width 16, 128x128, 4 classes) with random
weights is used: latency does not depend on the weights. Goal: fused call <= 1.3x the model alone
for INT8 at 1280x720.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from edgeseg import Segmenter
from edgeseg.data import SyntheticDataset, parse_img_size
from edgeseg.exporters import ExportConfig, export
from edgeseg.manifest import MANIFEST_NAME
from edgeseg.models.checkpoint import Checkpoint, Normalization, save_checkpoint
from edgeseg.preprocess import prepare_frame

# The TensorRT graphs run on ONNX Runtime's CPU provider here (no GPU): their rows show what the
# wrapper costs on CPU and that fused and plain masks agree, not TensorRT's speed.
TARGETS = {"onnx": "onnxruntime", "openvino": "openvino", "tensorrt": "onnxruntime"}
PRECISIONS = ("fp32", "fp16", "int8")


def quickstart_size_checkpoint(folder: Path) -> Path:
    """The quickstart's U-Net (depth 4, width 16, 128x128, 4 classes) with random weights."""
    from edgeseg.models.unet import UNet

    model = UNet(3, 4, depth=4, width=16).eval()
    norm = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "RGB")
    meta = Checkpoint(model.config, ["bg", "disc", "box", "triangle"], norm, (128, 128))
    return save_checkpoint(folder / "model.pt", meta, model)


def _export(ckpt: Path, tmp: Path, target: str, precision: str, fused: bool) -> Path:
    name = f"{target}-{precision}-{'fused' if fused else 'plain'}"
    if (tmp / name / MANIFEST_NAME).is_file():  # --bundles: exported by an earlier run
        return tmp / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small-calibration-set warning
        config = ExportConfig(target, precision, out=str(tmp / name), fuse_prepost=fused)
        return export(ckpt, config).bundle


def _frames(size: tuple[int, int], n: int) -> list[np.ndarray]:
    """Synthetic scenes at `size`, BGR as a camera through OpenCV gives them."""
    ds = SyntheticDataset(n, size, seed=7)
    return [np.ascontiguousarray(ds[i][0][:, :, ::-1]) for i in range(n)]


def _p50(samples: list[float]) -> float:
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", nargs="?")
    ap.add_argument("--frames", default="640x480,1280x720", help="frame sizes WxH, comma-separated")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--agreement-frames", type=int, default=4)
    ap.add_argument("--targets", default=",".join(TARGETS), help="targets, comma-separated")
    ap.add_argument("--bundles", help="folder to export into and reuse bundles from (default: temporary)")
    ap.add_argument("--precisions", default=",".join(PRECISIONS), help="precisions, comma-separated")
    args = ap.parse_args()
    sizes = [parse_img_size(s) for s in args.frames.split(",")]
    tmp = Path(args.bundles) if args.bundles else Path(tempfile.mkdtemp(prefix="edgeseg-prepost-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        ckpt = Path(args.checkpoint) if args.checkpoint else tmp / "model.pt"
        if not ckpt.is_file():
            ckpt = quickstart_size_checkpoint(tmp)
        rows = []
        for target in args.targets.split(","):
            backend = TARGETS[target]
            for precision in args.precisions.split(","):
                plain = Segmenter(_export(ckpt, tmp, target, precision, False), backend=backend)
                bundle = _export(ckpt, tmp, target, precision, True)
                fused = Segmenter(bundle, backend=backend)
                fast = Segmenter(bundle, backend=backend, resize_kernel="torch")
                rows.append((f"{target}:{precision}", plain, fused, fast))
        print(f"model: {ckpt if args.checkpoint else 'quickstart size, random weights'}; "
              f"input {rows[0][1].preprocessing.width}x{rows[0][1].preprocessing.height}; "
              f"{args.runs} runs x {args.rounds} rounds, interleaved; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
        for size in sizes:
            _measure(rows, size, args)
        print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
        for _, *segmenters in rows:
            for seg in segmenters:
                seg.close()
    finally:
        if not args.bundles:
            shutil.rmtree(tmp, ignore_errors=True)


def _measure(
    rows: list[tuple[str, Segmenter, Segmenter, Segmenter]], size: tuple[int, int], args: argparse.Namespace
) -> None:
    frames = _frames(size, args.agreement_frames)
    frame = frames[0]
    kinds = ("plain", "fused", "torch")
    model: dict[str, list[float]] = {row[0]: [] for row in rows}
    calls: dict[str, list[float]] = {f"{row[0]} {kind}": [] for row in rows for kind in kinds}
    stages: dict[str, list[tuple[float, float, float]]] = {row[0]: [] for row in rows}
    feeds = {}
    for name, plain, fused, fast in rows:
        x, _ = prepare_frame(frame, plain.preprocessing, "bgr")
        feeds[name] = {plain.preprocessing.input_name: x[None]}
        for seg in (plain, fused, fast):
            for _ in range(3):  # warm up at this frame size (a dynamic graph specialises per shape)
                seg(frame)
    for _ in range(args.rounds):
        for name, plain, fused, fast in rows:
            for _ in range(args.runs):
                t = time.perf_counter()
                plain.backend.infer(feeds[name])
                model[name].append((time.perf_counter() - t) * 1000)
            for kind, seg in zip(kinds, (plain, fused, fast), strict=True):
                for _ in range(args.runs):
                    t = time.perf_counter()
                    result = seg(frame)
                    calls[f"{name} {kind}"].append((time.perf_counter() - t) * 1000)
                    if kind == "fused":
                        tm = result.timings
                        stages[name].append((tm["pre"], tm["infer"], tm["post"]))
    print(f"\nframe {size[0]}x{size[1]}")
    header = f"{'row':<14} {'model p50':>9} {'plain call':>10} {'ratio':>6} {'fused call':>10} {'ratio':>6}"
    header += f" {'fused pre/infer/post ms':>24} {'torch call':>10} {'ratio':>6}"
    print(header + f" {'agree %':>8} {'torch %':>8}")
    for name, plain, fused, fast in rows:
        m = _p50(model[name])
        p, f, q = (_p50(calls[f"{name} {kind}"]) for kind in kinds)
        split = "/".join(f"{_p50([s[i] for s in stages[name]]):.2f}" for i in range(3))
        agree = np.mean([(plain(fr).mask == fused(fr).mask).mean() for fr in frames]) * 100
        agree_t = np.mean([(plain(fr).mask == fast(fr).mask).mean() for fr in frames]) * 100
        print(f"{name:<14} {m:9.2f} {p:10.2f} {p / m:5.2f}x {f:10.2f} {f / m:5.2f}x {split:>24} "
              f"{q:10.2f} {q / m:5.2f}x {agree:8.3f} {agree_t:8.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
