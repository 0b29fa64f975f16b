"""What the demo shows and writes: the mask overlay, the HUD, the video file, snapshots, the window."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgeseg._io import atomic_open, disk_has_no_room
from edgeseg.demo._cv import load_cv2
from edgeseg.errors import EdgesegRuntimeError, InputError
from edgeseg.legend import Legend, Patch, font_px_over, legend_entries, text_patch
from edgeseg.overlay import Overlay

__all__ = [
    "VIDEO_FORMATS",
    "Renderer",
    "VideoSink",
    "Window",
    "display_problem",
    "hud_font_px",
    "write_snapshot",
]

VIDEO_FORMATS = {".mp4": "mp4v", ".avi": "MJPG"}  # container -> a codec every OpenCV build can write


class Renderer:
    """Draws class colours over a frame (class 0, usually background, stays uncoloured) or the mask
    alone, the class key (bottom right) and the HUD's text lines (top left), both on shaded panels
    whose font follows the frame's height (`font_px_over`): with every HUD line and 11 classes they
    keep to about a quarter of any frame.

    Args:
        num_classes: the model's classes. class_names: their names for the key (default "class i").
        alpha: overlay opacity. show_mask: draw the mask alone instead of the overlay.
        hud, legend: draw the HUD text / the class key (`toggle` switches them while running).
    """

    def __init__(
        self,
        num_classes: int,
        alpha: float = 0.5,
        show_mask: bool = False,
        *,
        class_names: Sequence[str] | None = None,
        hud: bool = True,
        legend: bool = True,
    ) -> None:
        self.alpha, self.show_mask = float(alpha), show_mask
        self.hud, self.legend = hud, legend
        self._overlay = Overlay(num_classes, alpha, order="bgr")  # the renderer `predict` uses too
        names = list(class_names) if class_names is not None else [f"class {i}" for i in range(num_classes)]
        # Over the overlay class 0 is left uncoloured; in the mask view it is black.
        self._keys = {
            shown: Legend(legend_entries(names, background="black" if shown else "clear"), order="bgr")
            for shown in (False, True)
        }
        self._text: tuple[tuple[str, ...], int, Patch] | None = None  # the last HUD rendered

    def toggle(self, part: str) -> None:
        """Show or hide "hud" or "legend"."""
        setattr(self, part, not getattr(self, part))

    def draw(self, frame: np.ndarray, mask: np.ndarray, hud: list[str]) -> np.ndarray:
        """A new BGR image: the overlay (or the mask) with the key and the HUD; `frame` is left
        untouched."""
        out = self._overlay.colour_mask(mask) if self.show_mask else self._overlay.blend(frame, mask)
        if self.legend:
            self._keys[self.show_mask].draw(out)
        if self.hud and hud:
            self._hud(out, hud)
        return out

    def _hud(self, img: np.ndarray, lines: list[str]) -> None:
        h, w = img.shape[:2]
        px = hud_font_px(h)
        key = tuple(lines)
        if self._text is None or self._text[:2] != (key, px):
            # The figures change ten times a second at most: render the text then, not every frame.
            patch = text_patch(lines, px, order="bgr")
            while patch.size[0] > 0.6 * w and px > _MIN_HUD_PX:  # long lines on a narrow frame
                px -= 1
                patch = text_patch(lines, px, order="bgr")
            self._text = (key, hud_font_px(h), patch)
        margin = max(2, h // 80)
        self._text[2].paste(img, margin, margin)


_MIN_HUD_PX = 8


def hud_font_px(height: int) -> int:
    """The HUD's and the key's font size on a frame `height` pixels high."""
    return font_px_over(height)


class VideoSink:
    """Writes the rendered stream to `path` (.mp4 or .avi) atomically: frames go to a temporary file
    beside it, renamed into place by `close()`; `discard()` (or a run without frames) leaves nothing.
    The size is the first frame's; later frames of another size are resized to it."""

    def __init__(self, path: Path, fps: float) -> None:
        suffix = path.suffix.lower()
        if suffix not in VIDEO_FORMATS:
            raise InputError(f"--save '{path}': use a .mp4 or .avi file name")
        self.path, self.fps = path, float(fps)
        self.frames = 0
        self._writer = None
        self._size: tuple[int, int] | None = None
        self._tmp: Path | None = None

    def write(self, img: np.ndarray) -> None:
        cv = load_cv2()
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # OpenCV picks the container from the name's suffix, so the temporary name keeps it.
            fd, tmp = tempfile.mkstemp(
                prefix=f".{self.path.stem}.", suffix=f".partial{self.path.suffix}", dir=self.path.parent
            )
            os.close(fd)
            self._tmp = Path(tmp)
            self._size = (img.shape[1], img.shape[0])
            fourcc = cv.VideoWriter_fourcc(*VIDEO_FORMATS[self.path.suffix.lower()])
            self._writer = cv.VideoWriter(str(self._tmp), fourcc, self.fps, self._size)
            if not self._writer.isOpened():
                self.discard()
                raise EdgesegRuntimeError(f"OpenCV cannot write video '{self.path}' with this build's codecs")
        if (img.shape[1], img.shape[0]) != self._size:
            img = cv.resize(img, self._size, interpolation=cv.INTER_AREA)
        self._writer.write(img)
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the file and move it into place; the path, or None if no frame was written."""
        if self._writer is None or self._tmp is None:
            return None
        self._writer.release()
        self._writer = None
        if not self.frames:
            self.discard()
            return None
        if disk_has_no_room(self._tmp.parent):
            # OpenCV's writer drops what does not fit without a word: a disk left full holds a cut video.
            self.discard()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
        os.chmod(self._tmp, 0o666 & ~_umask())
        os.replace(self._tmp, self.path)
        self._tmp = None
        return self.path

    def discard(self) -> None:
        """Drop the partial file."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_snapshot(img: np.ndarray, folder: Path, stem: str) -> Path:
    """Write `img` as `folder/<stem>.png` atomically; returns the path."""
    ok, data = load_cv2().imencode(".png", img)
    if not ok:
        raise EdgesegRuntimeError("OpenCV could not encode the snapshot as PNG")
    path = folder / f"{stem}.png"
    with atomic_open(path, "wb") as fh:
        fh.write(data.tobytes())
    return path


def display_problem() -> str | None:
    """Why no window can be shown here, or None when one can."""
    cv = load_cv2()
    gui = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in cv.getBuildInformation().splitlines()
            if ln.strip().startswith("GUI:")
        ),
        "",
    )
    if gui.upper() == "NONE":
        return "this OpenCV build has no GUI (opencv-python-headless?)"
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return "no display found (DISPLAY is not set)"
    return None


class Window:
    """An OpenCV window; `show` returns the key pressed (lower-case character) or ""."""

    def __init__(self, title: str) -> None:
        self.title = title
        cv = load_cv2()
        try:
            cv.namedWindow(title, cv.WINDOW_NORMAL)
        except cv.error as exc:
            raise InputError(f"cannot open a window: {str(exc).strip().splitlines()[-1]}") from None

    def show(self, img: np.ndarray, wait_ms: int = 1) -> str:
        cv = load_cv2()
        cv.imshow(self.title, img)
        key = cv.waitKey(wait_ms)
        closed = cv.getWindowProperty(self.title, cv.WND_PROP_VISIBLE) < 1
        if closed:
            return "q"  # the window's close button quits like q
        return chr(key & 0xFF).lower() if key >= 0 else ""

    def close(self) -> None:
        with contextlib.suppress(Exception):
            load_cv2().destroyWindow(self.title)
