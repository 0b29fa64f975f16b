"""The real-time demo: camera or other source -> Segmenter -> overlay, FPS and live agreement with PyTorch.

    from edgeseg.demo import DemoConfig, run_demo

    summary = run_demo("runs/train/unet-openvino-int8", DemoConfig(source="synthetic", headless=True,
                                                                  max_frames=300, save=Path("out.mp4")))
    print(summary.fps, summary.model_fps, summary.baseline)

OpenCV (the `demo` extra) is imported when a demo runs, not when this package is imported.
"""

from __future__ import annotations

from edgeseg.demo.config import DemoConfig, DemoSummary
from edgeseg.demo.pipeline import run_demo
from edgeseg.demo.sources import (
    FolderSource,
    FrameSource,
    SourceEnded,
    SyntheticSource,
    VideoSource,
    open_frame_source,
)

__all__ = [
    "DemoConfig",
    "DemoSummary",
    "FolderSource",
    "FrameSource",
    "SourceEnded",
    "SyntheticSource",
    "VideoSource",
    "open_frame_source",
    "run_demo",
]
