"""Soak test of `Segmenter`: many calls per backend, watching resident memory and file descriptors.

    python benchmarks/segmenter_soak.py [--calls 10000] [--frame-size 160x120] [--backends torch,...]

A small random U-Net (64x64 input, depth 3, width 8) is saved and exported to ONNX and OpenVINO IR in a
temporary folder. For each backend a `Segmenter` runs `--calls` frames (a few distinct frames in turn,
half of them with `return_probs=True`), after a warm-up of 200 calls; the process's resident memory
(VmRSS) and open descriptors (/proc/self/fd) are read after the warm-up and at the end. Every backend
is also opened and closed 50 times, to catch what leaks per load rather than per call. Passes when each
backend grows by less than 20 MiB and 0 descriptors (exit code 1 otherwise).
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _bench import open_fds, rss_mb  # benchmarks/ is on the path when run as a script

from edgeseg import Segmenter
from edgeseg.data import parse_img_size

MAX_RSS_GROWTH_MIB = 20.0
WARMUP = 200
REOPENS = 50


def models(folder: Path) -> dict[str, Path]:
    """backend name -> the model file it runs."""
    from edgeseg.exporters import ExportConfig, export
    from edgeseg.models.checkpoint import Checkpoint, Normalization, save_checkpoint
    from edgeseg.models.unet import UNet

    model = UNet(3, 4, depth=3, width=8).eval()
    meta = Checkpoint(model.config, ["bg", "a", "b", "c"], Normalization((0.5,) * 3, (0.25,) * 3), (64, 64))
    ckpt = save_checkpoint(folder / "model.pt", meta, model)
    bundles = {
        target: export(ckpt, ExportConfig(target=target, out=str(folder / target), parity_images=1)).bundle
        for target in ("onnx", "openvino")
    }
    return {"torch": ckpt, "onnxruntime": bundles["onnx"], "openvino": bundles["openvino"]}


def soak(backend: str, model: Path, calls: int, frames: list[np.ndarray]) -> dict[str, float]:
    with Segmenter(model, backend=backend) as seg:
        for i in range(WARMUP):
            seg(frames[i % len(frames)])
        gc.collect()
        rss0, fds0 = rss_mb(), open_fds()
        t0 = time.perf_counter()
        for i in range(calls):
            seg(frames[i % len(frames)], return_probs=i % 2 == 1)
        seconds = time.perf_counter() - t0
        gc.collect()
        rss1, fds1 = rss_mb(), open_fds()
    gc.collect()
    rss_closed, fds_closed = rss_mb(), open_fds()
    for _ in range(REOPENS):
        Segmenter(model, backend=backend).close()
    gc.collect()
    rss2, fds2 = rss_mb(), open_fds()
    return {
        "rss0": rss0,
        "rss1": rss1,
        "fds0": fds0,
        "fds1": fds1,
        "ms": seconds * 1000 / calls,
        "reopen_rss": rss2 - rss_closed,
        "reopen_fds": fds2 - fds_closed,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=10_000)
    ap.add_argument("--frame-size", default="160x120")
    ap.add_argument("--backends", default="torch,onnxruntime,openvino")
    args = ap.parse_args()
    w, h = parse_img_size(args.frame_size)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(4)]
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        paths = models(Path(tmp))
        print(f"{args.calls} calls per backend on {w}x{h} frames, 64x64 model, after {WARMUP} warm-up calls")
        print(
            "| backend | RSS after warm-up (MiB) | RSS at end (MiB) | growth (MiB) | fds after warm-up | "
            "fds at end | fd growth | ms/call | 50 reopens: RSS / fds |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for backend in args.backends.split(","):
            r = soak(backend, paths[backend], args.calls, frames)
            growth, fd_growth = r["rss1"] - r["rss0"], r["fds1"] - r["fds0"]
            ok &= growth < MAX_RSS_GROWTH_MIB and fd_growth == 0 and r["reopen_fds"] == 0
            print(
                f"| {backend} | {r['rss0']:.1f} | {r['rss1']:.1f} | {growth:+.1f} | {r['fds0']:.0f} | "
                f"{r['fds1']:.0f} | {fd_growth:+.0f} | {r['ms']:.2f} | "
                f"{r['reopen_rss']:+.1f} / {r['reopen_fds']:+.0f} |",
                flush=True,
            )
    print("PASS" if ok else f"FAIL: RSS growth must stay under {MAX_RSS_GROWTH_MIB:.0f} MiB and fds constant")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
