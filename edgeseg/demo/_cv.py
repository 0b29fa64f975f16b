"""OpenCV, imported on first use with its own logging quietened.

OpenCV and its FFmpeg backend print warnings of their own (a camera index that is absent, a file it
cannot decode) to stderr; the demo reports those failures itself as one line, so their chatter is
turned down before the first import. The variables are only defaults: a user who sets them keeps them.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from edgeseg.errors import MissingDependencyError


@functools.cache
def load_cv2() -> Any:
    """The `cv2` module; MissingDependencyError naming the `demo` extra when it is not installed."""
    user_level = "OPENCV_LOG_LEVEL" in os.environ
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    os.environ.setdefault("OPENCV_VIDEOIO_DEBUG", "0")
    try:
        import cv2 as module
    except ImportError:
        raise MissingDependencyError("opencv-python", "demo", "the camera demo") from None
    if not user_level:
        # cv2 may have been imported before us (by the application), when the variable could not
        # take effect any more; the runtime setting still can.
        module.utils.logging.setLogLevel(module.utils.logging.LOG_LEVEL_ERROR)
    return module


@functools.cache
def has_gstreamer() -> bool:
    """Whether this OpenCV build can open GStreamer pipelines (PyPI's wheels cannot)."""
    for line in load_cv2().getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line.split(":", 1)[1]
    return False
