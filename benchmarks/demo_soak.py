"""Soak test of the camera demo: many synthetic frames headless, watching memory and file descriptors.

    python benchmarks/demo_soak.py [MODEL] [--frames 10000] [--frame-size 160x120] [--save]

Without MODEL a small random U-Net is exported to ONNX in a temporary folder (the soak is about the
pipeline, not the model). Runs the full pipeline (capture thread, model thread, baseline worker,
overlay + HUD, ground-truth scoring, and with --save the video writer) and prints the process's resident
memory (VmRSS) and open descriptors after a warm-up run, at the end, and the growth.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _bench import open_fds, rss_mb  # benchmarks/ is on the path when run as a script

from edgeseg.data import parse_img_size
from edgeseg.demo import DemoConfig, run_demo


def tiny_bundle(folder: Path) -> Path:
    from edgeseg.exporters import ExportConfig, export
    from edgeseg.models.checkpoint import Checkpoint, Normalization, save_checkpoint
    from edgeseg.models.unet import UNet

    model = UNet(3, 4, depth=3, width=8).eval()
    meta = Checkpoint(model.config, ["bg", "a", "b", "c"], Normalization((0.5,) * 3, (0.25,) * 3), (64, 64))
    ckpt = save_checkpoint(folder / "model.pt", meta, model)
    return Path(export(ckpt, ExportConfig(target="onnx", out=str(folder / "bundle"), parity_images=1)).bundle)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", type=Path)
    ap.add_argument("--frames", type=int, default=10_000)
    ap.add_argument("--frame-size", default="160x120")
    ap.add_argument("--save", action="store_true", help="also write the video (to a temporary folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or tiny_bundle(Path(tmp))
        size = parse_img_size(args.frame_size)

        def config(frames: int) -> DemoConfig:
            return DemoConfig(
                headless=True,
                max_frames=frames,
                frame_size=size,
                save=Path(tmp) / "soak.mp4" if args.save else None,
            )

        run_demo(model, config(300))  # warm-up: runtimes, torch (baseline), OpenCV all loaded
        rss0, fds0 = rss_mb(), open_fds()
        print(f"after warm-up: RSS {rss0:.1f} MiB, {fds0} open fds")
        t0 = time.perf_counter()
        summary = run_demo(model, config(args.frames))
        rss1, fds1 = rss_mb(), open_fds()
        print(
            f"{summary.frames} frames in {time.perf_counter() - t0:.0f} s ({summary.fps:.0f} FPS end to end, "
            f"model {summary.model_fps:.0f} FPS), baseline compared "
            f"{(summary.baseline or {}).get('frames_compared', 0)} frames, dropped {summary.dropped}"
        )
        print(f"at the end:    RSS {rss1:.1f} MiB, {fds1} open fds")
        print(f"growth:        RSS {rss1 - rss0:+.1f} MiB, fds {fds1 - fds0:+d}")


if __name__ == "__main__":
    main()
