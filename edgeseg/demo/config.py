"""The demo's typed configuration and its summary."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeseg._guards import check_number
from edgeseg.demo.sources import FrameSource
from edgeseg.errors import InputError
from edgeseg.preprocess import resize_kernel_choice

__all__ = ["DemoConfig", "DemoSummary"]


@dataclass
class DemoConfig:
    """How to run the demo. Every field has a working default: `DemoConfig(headless=True)` runs the
    synthetic source without a window.

    Attributes:
        source: "synthetic", a camera index ("0"), a video file, a stream URL, a GStreamer pipeline, an
            image folder (a dataset folder's masks add ground truth), or a FrameSource object.
        backend, device: as for `Segmenter` ("auto" picks the best installed runtime).
        threads: threads the model may use. None: all cores but one, leaving a core to capture and
            draw in parallel (pipelining beats intra-op threads on small CPUs); 0: the runtime's default.
        resize_kernel: as for `Segmenter`: "pillow" (default) or "torch" (faster on colour camera
            frames; imports torch).
        baseline: the source to compare with (a checkpoint, or an .onnx run on ONNX Runtime); None:
            the one recorded in the bundle's manifest
            when it can be found. `compare` False turns the comparison off.
        baseline_duty: share of one core the comparison may use.
        headless: no window. save: write the rendered stream to this .mp4/.avi. serve: serve the
            browser view on this port (0: any free port) at `bind`.
        max_frames: stop after this many frames. json_path: write the summary here.
        frame_size, fps, seed: the synthetic source's frame size, pace (None: as fast as consumed)
            and seed. loop: replay video files and folders.
        stall_timeout: seconds without a frame before a source counts as stalled and is reopened;
            retry_seconds: how long reopening is tried before the demo ends.
        alpha: overlay opacity. show_mask: start showing the mask instead of the overlay.
        hud, legend: start with the HUD's figures / the class key drawn (keys h and l switch them).
        video_fps: frame rate written into --save (default: the source's, else 30).
        snapshot_dir: where the s key writes PNGs.
        on_message: called with each line meant for the user (the URL being served, notes).
    """

    source: str | FrameSource = "synthetic"
    backend: str = "auto"
    device: str | None = None
    threads: int | None = None
    resize_kernel: str = "pillow"
    baseline: str | os.PathLike[str] | None = None
    compare: bool = True
    baseline_duty: float = 0.25
    headless: bool = False
    save: Path | None = None
    serve: int | None = None
    bind: str = "127.0.0.1"
    max_frames: int | None = None
    json_path: Path | None = None
    frame_size: tuple[int, int] = (640, 480)
    fps: float | None = None
    seed: int = 0
    loop: bool = False
    stall_timeout: float = 5.0
    retry_seconds: float = 10.0
    alpha: float = 0.5
    show_mask: bool = False
    hud: bool = True
    legend: bool = True
    video_fps: float | None = None
    snapshot_dir: Path = field(default_factory=lambda: Path("."))
    on_message: Callable[[str], None] | None = None

    def check(self) -> None:
        """InputError (one line) for a value that cannot work."""
        for name in ("alpha", "baseline_duty", "fps", "video_fps", "stall_timeout", "retry_seconds"):
            if getattr(self, name) is not None:  # NaN passes every range check below: refuse it first
                check_number(getattr(self, name), name)
        problems = [
            (self.max_frames is not None and self.max_frames < 1, "max_frames must be >= 1"),
            (self.threads is not None and self.threads < 0, "threads must be >= 0"),
            (not 0.0 <= self.alpha <= 1.0, "alpha must be within 0..1"),
            (not 0.0 < self.baseline_duty <= 1.0, "baseline_duty must be within (0, 1]"),
            (self.fps is not None and self.fps <= 0, "fps must be > 0"),
            (self.video_fps is not None and self.video_fps <= 0, "video_fps must be > 0"),
            (
                self.stall_timeout <= 0 or self.retry_seconds < 0,
                "stall_timeout must be > 0, retry_seconds >= 0",
            ),
            (
                self.serve is not None and not 0 <= self.serve <= 65535,
                "the serve port must be within 0..65535",
            ),
            (min(self.frame_size) < 16, "frame_size must be at least 16x16"),
        ]
        for bad, message in problems:
            if bad:
                raise InputError(message)

        self.resize_kernel = resize_kernel_choice(self.resize_kernel)


@dataclass
class DemoSummary:
    """What a demo run measured (also the `--json` file).

    FPS: `fps` is end to end (frames through capture, model and drawing/writing, per second of the
    run, pauses excluded); `model_fps` is 1000 / mean(pre + infer + post) of the `Segmenter` calls in
    the same run, `infer_fps` 1000 / mean(infer); `model_fps_isolated` is the same model timed alone
    on the first frame before the run. `fps_ratio` = fps / model_fps.
    """

    model: str
    backend: str
    precision: str
    source: str
    frames: int = 0
    duration_s: float = 0.0
    fps: float = 0.0
    model_fps: float = 0.0
    infer_fps: float = 0.0
    model_fps_isolated: float = 0.0
    fps_ratio: float = 0.0
    threads: int | None = None
    stages_ms: dict[str, float] = field(default_factory=dict)
    latency_ms: float = 0.0  # capture to display, mean
    latency_percentiles_ms: dict[str, float | None] = field(default_factory=dict)  # p50, p95, p99
    # Share of pixels whose class flipped between consecutive masks: the artifact's over the run, and
    # the artifact's and PyTorch's on the frames the baseline compared; None without two frames.
    flicker: dict[str, Any] | None = None
    # Frames read from the source during the run, the first included: `frames` + `dropped` (after q,
    # Ctrl-C or stop, plus the one or two being segmented then, which were not drawn).
    captured: int = 0
    dropped: int = 0
    reopens: int = 0
    baseline: dict[str, Any] | None = None  # figures vs PyTorch, or None
    baseline_note: str = ""
    truth: dict[str, Any] | None = None  # mIoU and pixel accuracy vs ground truth, or None
    truth_note: str = ""  # why there is no truth figure, when the source has truth
    # Figures the run measured that stand on too little evidence (edgeseg._evidence), each with what
    # is missing: not reported, and `edgeseg demo` exits with code 2 after the summary.
    missing: list[str] = field(default_factory=list)
    ended: str = ""  # max_frames | source_ended | source_lost | quit | interrupted | stopped
    video: str | None = None
    video_frames: int = 0
    snapshots: list[str] = field(default_factory=list)
    url: str | None = None
    # --serve: connections, disconnects, timeouts, refused, bad_requests (StreamServer.counters())
    clients: dict[str, int] | None = None
    # Files a folder source could not read and left out: path and reason each.
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """A short human-readable report."""
        out = [
            f"{self.frames} frames in {self.duration_s:.1f} s ({self.ended}): {self.fps:.1f} FPS end to end, "
            f"model {self.model_fps:.1f} FPS (ratio {self.fps_ratio:.2f}), model alone "
            f"{self.model_fps_isolated:.1f} FPS, dropped {self.dropped}",
            "stages (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in self.stages_ms.items()),
        ]
        b = self.baseline
        if b and b.get("pixel_agreement") is not None:
            out.append(
                f"vs {b.get('label') or 'PyTorch'} on {b['frames_compared']} frames: pixel agreement "
                f"{b['pixel_agreement']:.4%}, "
                f"mIoU {b['miou']:.4f}"
            )
        elif b and b.get("missing"):
            out.append(b["missing"])
        else:
            out.append(self.baseline_note or "no comparison with PyTorch")
        lat = self.latency_percentiles_ms
        if lat.get("p50") is not None:
            out.append(
                f"capture to display (ms): p50 {lat['p50']:.1f}, p95 {lat['p95']:.1f}, p99 {lat['p99']:.1f}"
            )
        f = self.flicker
        if f:
            pairs = f["artifact_pairs"]
            line = f"mask flicker: {f['artifact']:.4%} of pixels change class per frame ({pairs} pairs)"
            if f.get("pytorch_on_compared") is not None and f.get("artifact_on_compared") is not None:
                line += (
                    f"; on the {f['compared_pairs']} compared pairs: model {f['artifact_on_compared']:.4%}, "
                    f"PyTorch {f['pytorch_on_compared']:.4%}"
                )
            out.append(line)
        if self.truth:
            out.append(f"vs ground truth on {self.truth['frames']} frames: mIoU {self.truth['miou']:.4f}")
        elif self.truth_note:
            out.append(self.truth_note)
        if self.clients is not None:
            c = self.clients
            out.append(
                f"browser view: {c['connections']} connections, {c['disconnects']} hung up, "
                f"{c['timeouts']} timed out, {c['refused']} refused (over the client limit)"
            )
        if self.skipped:
            out.append(f"skipped {len(self.skipped)} unreadable file(s) of the source")
        if self.video:
            out.append(f"wrote {self.video} ({self.video_frames} frames)")
        return out
