"""Frame sources for the demo: camera, video file, stream URL, GStreamer pipeline, image folder, synthetic.

A source yields BGR uint8 frames (OpenCV's order, what `Segmenter` takes by default), with the
ground-truth mask when it has one. `live` sources deliver at their own pace (a camera, a stream, a
paced synthetic feed): the capture thread keeps only the newest of their frames. The others (files,
folders, unpaced synthetic) deliver as fast as they are consumed, so no frame is skipped.
"""

from __future__ import annotations

import sys
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from edgeseg.data.files import SkipLog, Skipped, list_images
from edgeseg.data.folder import classes_file, read_class_names
from edgeseg.data.imageio import IMAGE_SUFFIXES, LOSSY_MASK_SUFFIXES, read_image, read_mask
from edgeseg.data.synthetic import SYNTHETIC_CLASSES, render_scene
from edgeseg.demo._cv import has_gstreamer, load_cv2
from edgeseg.errors import InputError

__all__ = [
    "FolderSource",
    "FrameSource",
    "SourceEnded",
    "SyntheticSource",
    "VideoSource",
    "open_frame_source",
]

Read = tuple[np.ndarray, np.ndarray | None]  # (BGR frame, ground-truth mask or None)


class SourceEnded(Exception):
    """A finite source (video file, folder) has delivered its last frame: a normal end."""


class FrameSource(ABC):
    """Where frames come from. `open` raises InputError when the source cannot be used; `read`
    returns a frame, None on a failed read (a camera unplugged, a stream that dropped), or raises
    SourceEnded. After a failure the capture thread calls `close` then `open` to retry."""

    live: bool = False  # delivers at its own pace (keep the newest frame) rather than on demand
    fps: float | None = None  # its nominal rate, when known
    has_truth: bool = False
    class_names: tuple[str, ...] | None = None  # what the truth ids mean, when the source knows
    # Truth that comes with the frames rather than from the user (the synthetic scenes): a model of
    # other classes just gets no truth figure, where labelled data of other classes is refused.
    incidental_truth: bool = False

    def __init__(self, description: str) -> None:
        self.description = description

    @property
    def skipped(self) -> list[Skipped]:
        """Files the source could not read and left out (a folder's; others skip nothing)."""
        return []

    @abstractmethod
    def open(self) -> None:
        """Open (or reopen) the source."""

    @abstractmethod
    def read(self) -> Read | None:
        """The next frame, None on a failed read; SourceEnded after the last frame."""

    def close(self) -> None:  # noqa: B027 - sources without resources need no close
        """Release the device or file."""


class SyntheticSource(FrameSource):
    """A camera panning smoothly across synthetic scenes (the training data's renderer), with truth.

    Each scene is rendered once at 1.25x the frame size and a frame-sized window glides across it at a
    steady 2 px per frame (bouncing at the edges, 1 px vertically), so shapes move frame to frame; a
    new scene starts once the window has crossed the scene and come back. Deterministic by `seed`.
    With `fps` the feed is paced like a camera (and is live); without, it is on demand.
    The next scene is rendered in a helper thread while the current one plays (a 640x480 scene takes
    ~0.1 s, which would otherwise stall the feed at every cut).
    """

    has_truth = True
    class_names = SYNTHETIC_CLASSES
    incidental_truth = True

    def __init__(
        self, size_wh: tuple[int, int] = (640, 480), fps: float | None = None, seed: int = 0
    ) -> None:
        super().__init__(f"synthetic {size_wh[0]}x{size_wh[1]}" + (f" at {fps:g} FPS" if fps else ""))
        self.size = (int(size_wh[0]), int(size_wh[1]))
        self.fps, self.live = fps, bool(fps)
        self.seed = seed
        self._span = (self.size[0] * 5 // 4 - self.size[0], self.size[1] * 5 // 4 - self.size[1])
        self.scene_frames = max(self._span[0], 12)  # there (2 px a frame) and back
        self._index = 0
        self._scene: tuple[np.ndarray, np.ndarray] | None = None
        self._next_scene: Future[tuple[np.ndarray, np.ndarray]] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._next_due = 0.0

    def open(self) -> None:
        self._pool = self._pool or ThreadPoolExecutor(1, thread_name_prefix="edgeseg-synthetic")
        self._next_due = time.perf_counter()

    def _render(self, scene_no: int) -> tuple[np.ndarray, np.ndarray]:
        w, h = self.size
        rgb, mask = render_scene(np.random.default_rng([self.seed, scene_no]), (w * 5 // 4, h * 5 // 4))
        return np.ascontiguousarray(rgb[..., ::-1]), mask  # the renderer gives RGB; sources give BGR

    def _window(self, index: int) -> Read:
        scene_no, step = divmod(index, self.scene_frames)
        if step == 0 or self._scene is None:
            ahead = self._next_scene
            self._scene = ahead.result() if ahead is not None and step == 0 else self._render(scene_no)
            self._next_scene = self._pool.submit(self._render, scene_no + 1) if self._pool else None
        image, mask = self._scene
        w, h = self.size
        x, y = _bounce(2 * step, self._span[0]), _bounce(step, self._span[1])
        return image[y : y + h, x : x + w].copy(), mask[y : y + h, x : x + w].copy()

    def read(self) -> Read:
        if self.fps:
            self._next_due += 1.0 / self.fps
            delay = self._next_due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                self._next_due = time.perf_counter()  # fell behind: do not burst to catch up
        frame = self._window(self._index)
        self._index += 1
        return frame

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = self._next_scene = None


def _bounce(position: int, span: int) -> int:
    """`position` folded into 0..span and back (a triangle wave)."""
    if span <= 0:
        return 0
    position %= 2 * span
    return position if position <= span else 2 * span - position


class FolderSource(FrameSource):
    """Images of a folder in name order; a dataset folder (DIR/images + DIR/masks) adds the truth.

    The batch rule: an image (or its mask) that cannot be read is left out with one warning line
    naming it, the first time it is met (with `loop`, it is not tried again), and listed in `skipped`;
    a folder none of whose images can be read is an InputError.
    """

    def __init__(self, folder: Path, loop: bool = False) -> None:
        super().__init__(f"folder '{folder}'")
        images = folder / "images"
        root = images if images.is_dir() else folder
        self.files = list_images(root)
        if not self.files:
            raise InputError(
                f"cannot open folder '{folder}': it holds no images ({', '.join(IMAGE_SUFFIXES)})"
            )
        masks = folder / "masks"
        dataset = images.is_dir() and masks.is_dir()
        self.masks = {p.stem: p for p in list_images(masks, (".png",))} if dataset else {}
        lossy = list_images(masks, LOSSY_MASK_SUFFIXES) if dataset else []
        if lossy:  # training refuses these; here they would only be skipped without a word
            warnings.warn(
                f"{len(lossy)} mask(s) in '{masks}' are JPEG (e.g. '{lossy[0].name}'), a lossy format: "
                "not used as ground truth; save masks as PNGs of class ids",
                stacklevel=2,
            )
        self.has_truth = bool(self.masks)
        names_file = classes_file(folder) if self.has_truth else None
        self.class_names = tuple(read_class_names(names_file)) if names_file is not None else None
        self.loop = loop
        self._iter: Iterator[Path] = iter(())
        self._skips = SkipLog(len(self.files))
        self._bad: set[Path] = set()
        self._delivered = 0

    @property
    def skipped(self) -> list[Skipped]:
        return list(self._skips.items)

    def open(self) -> None:
        self._iter = iter(self.files)

    def _next_path(self) -> Path:
        path = next(self._iter, None)
        if path is None:
            if not self.loop:
                self._skips.check_any_done(self._delivered)
                raise SourceEnded
            self.open()
            path = next(self._iter)
        return path

    def read(self) -> Read:
        # One pass over the folder at most: with --loop and every file unreadable this must end.
        for _ in range(len(self.files) + 1):
            path = self._next_path()
            if path in self._bad:
                continue
            try:
                frame = self._read(path)
            except InputError as exc:
                self._bad.add(path)
                self._skips.add(path, exc)
                continue
            self._delivered += 1
            return frame
        self._skips.check_any_done(self._delivered)
        raise SourceEnded  # not reached: a pass over the folder delivered a frame before

    def _read(self, path: Path) -> Read:
        rgb = read_image(path, channels=3)
        truth = None
        if path.stem in self.masks:
            # As stored: whether 255 is a binary mask's 1 or the ignore id is the model's to say.
            truth = read_mask(self.masks[path.stem])
        return np.ascontiguousarray(rgb[..., ::-1]), truth


class VideoSource(FrameSource):
    """Anything `cv2.VideoCapture` opens: a camera index, a video file, a stream URL, a GStreamer
    pipeline. Files are finite; cameras, streams and pipelines are live."""

    def __init__(self, target: int | str, kind: str, loop: bool = False, stall_timeout: float = 5.0) -> None:
        shown = f"camera {target}" if kind == "camera" else f"{kind} '{target}'"
        super().__init__(shown)
        self.target, self.kind, self.loop = target, kind, loop
        self.live = kind in ("camera", "stream", "gstreamer")
        self.stall_timeout = stall_timeout
        self._cap = None
        self._first: np.ndarray | None = None

    def _capture(self):  # type: ignore[no-untyped-def]
        cv = load_cv2()
        if self.kind == "gstreamer":
            return cv.VideoCapture(self.target, cv.CAP_GSTREAMER)
        if self.kind == "stream":
            # Bounded waits, so a dead stream fails a read instead of blocking the capture thread.
            ms = int(self.stall_timeout * 1000)
            params = [
                cv.CAP_PROP_OPEN_TIMEOUT_MSEC,
                max(ms, 1000),
                cv.CAP_PROP_READ_TIMEOUT_MSEC,
                max(ms, 1000),
            ]
            return cv.VideoCapture(self.target, cv.CAP_FFMPEG, params)
        if self.kind == "camera" and sys.platform.startswith("linux"):
            # V4L2 directly: probing every backend for an index (CAP_ANY) prints their complaints.
            return cv.VideoCapture(self.target, cv.CAP_V4L2)
        return cv.VideoCapture(self.target)

    def open(self) -> None:
        self.close()
        cap = self._capture()
        ok, frame = cap.read() if cap.isOpened() else (False, None)
        if not ok or frame is None:
            cap.release()
            raise InputError(self._open_failure())
        self._cap, self._first = cap, frame
        fps = cap.get(load_cv2().CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else None

    def _open_failure(self) -> str:
        if self.kind == "camera":
            return f"cannot open camera {self.target}: no such camera, or it is busy (try another index)"
        if self.kind == "file":
            return f"cannot open video '{self.target}': not a video OpenCV can decode"
        if self.kind == "stream":
            return (
                f"cannot open stream '{self.target}': no answer or no video within {self.stall_timeout:g} s"
            )
        return f"cannot open GStreamer pipeline '{self.target}': check the pipeline with gst-launch-1.0"

    def read(self) -> Read | None:
        if self._first is not None:
            frame, self._first = self._first, None
            return frame, None
        if self._cap is None:
            return None
        ok, frame = self._cap.read()
        if ok and frame is not None:
            return (frame if frame.ndim == 3 else frame[..., None].repeat(3, axis=2)), None
        if self.kind == "file":
            if not self.loop:
                raise SourceEnded
            self._cap.set(load_cv2().CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()
            if not ok:
                raise SourceEnded
            return frame, None
        return None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


_GST_HINT = (
    "this OpenCV has no GStreamer support (PyPI's opencv-python never has): on a Jetson use JetPack's "
    "OpenCV (apt install python3-opencv, and pip uninstall opencv-python), or build OpenCV with "
    "-DWITH_GSTREAMER=ON; or give the camera as an index (--source 0)"
)


def open_frame_source(
    spec: str,
    *,
    frame_size: tuple[int, int] = (640, 480),
    fps: float | None = None,
    seed: int = 0,
    loop: bool = False,
    stall_timeout: float = 5.0,
) -> FrameSource:
    """Build and open the source that `spec` names; InputError (one line) if it cannot be opened.

    `spec`: "synthetic"; a camera index ("0"); a stream URL ("rtsp://...", "http://..."); a GStreamer
    pipeline (contains "!", ends in appsink); an image folder; a video file. `frame_size` and `fps`
    apply to the synthetic source; `loop` replays files and folders.
    """
    text = str(spec).strip()
    source: FrameSource
    if text.lower() == "synthetic":
        source = SyntheticSource(frame_size, fps=fps, seed=seed)
    elif text.isdigit():
        source = VideoSource(int(text), "camera", stall_timeout=stall_timeout)
    elif "://" in text:
        source = VideoSource(text, "stream", stall_timeout=stall_timeout)
    elif "!" in text:
        if not has_gstreamer():
            raise InputError(f"cannot open GStreamer pipeline: {_GST_HINT}")
        source = VideoSource(text, "gstreamer", stall_timeout=stall_timeout)
    elif Path(text).is_dir():
        source = FolderSource(Path(text), loop=loop)
    elif Path(text).is_file():
        source = VideoSource(text, "file", loop=loop)
    else:
        raise InputError(
            f"cannot open source '{text}': it is not 'synthetic', a camera index, a stream URL, a GStreamer "
            "pipeline, an existing folder or an existing video file"
        )
    source.open()
    return source
