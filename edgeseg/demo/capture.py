"""The capture thread: reads a source on its own and holds exactly one frame, always the newest.

A slow model therefore never builds latency: while it works, a live source's newer frames replace the
held one (each replaced frame is counted as dropped). On-demand sources (files, folders, unpaced
synthetic) wait until their frame is taken instead, so none is skipped.

A lost source is retried for a bounded time: a failed read closes and reopens it (with back-off) for
up to `retry_seconds`; a source that delivers nothing for `stall_timeout` seconds is marked stalled
and asked to reopen, and is given up `retry_seconds` later. Then `ended` says why the frames stopped.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from edgeseg.demo.sources import FrameSource, SourceEnded
from edgeseg.errors import InputError

__all__ = ["Capture", "Frame"]


@dataclass
class Frame:
    """One captured frame. `index` counts every frame read, dropped ones included."""

    index: int
    image: np.ndarray  # HxWx3 uint8 BGR
    truth: np.ndarray | None  # HxW class ids, when the source has ground truth
    captured_at: float  # time.perf_counter() when read


class Capture:
    """Runs `source.read()` in a daemon thread; `next_frame` hands out the newest frame."""

    def __init__(
        self, source: FrameSource, *, stall_timeout: float = 5.0, retry_seconds: float = 10.0
    ) -> None:
        self.source = source
        self.stall_timeout, self.retry_seconds = stall_timeout, retry_seconds
        self.captured = 0
        self.dropped = 0
        self.reopens = 0
        self.stalled = False
        self.ended: str | None = None  # "source_ended" | "source_lost", once no frame will follow
        self.error: BaseException | None = None
        self._frame: Frame | None = None
        self._cond = threading.Condition()
        self._stop = False
        self._reopen_requested = False
        self._last_frame_at = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="edgeseg-capture", daemon=True)

    def start(self) -> Capture:
        self._last_frame_at = time.perf_counter()
        self._thread.start()
        return self

    def reset_counters(self, taken: int = 0) -> None:
        """Start counting the run (after warm-up): frames read and dropped so far are forgotten, but
        the `taken` frames already handed out for the run and a frame held for it count as read."""
        with self._cond:
            self.captured = taken + (self._frame is not None)
            self.dropped = 0

    def counters(self) -> tuple[int, int]:
        """(frames read and then handed out or dropped, frames dropped) since `reset_counters`, read
        together: handed out = the first minus the second. A frame read but still held, which no one
        may take any more when a run ends, is left out."""
        with self._cond:
            return self.captured - (self._frame is not None), self.dropped

    # -- capture thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop:
                if self._reopen_requested:
                    self._reopen_requested = False
                    if not self._recover():
                        return self._finish("source_lost")
                try:
                    item = self.source.read()
                except SourceEnded:
                    return self._finish("source_ended")
                if item is None:  # a failed read: the device went away or the stream dropped
                    if not self._recover():
                        return self._finish("source_lost")
                    continue
                self._publish(*item)
        except BaseException as exc:  # handed to the pipeline, which reports it
            self.error = exc
            self._finish("error")

    def _recover(self) -> bool:
        """Close and reopen the source until it opens or `retry_seconds` have passed."""
        deadline = time.perf_counter() + self.retry_seconds
        delay = 0.1
        while not self._stop and time.perf_counter() < deadline:
            self.source.close()
            try:
                self.source.open()
            except InputError:
                time.sleep(max(0.0, min(delay, deadline - time.perf_counter())))
                delay = min(2 * delay, 1.0)
                continue
            self.reopens += 1
            return True
        return False

    def _publish(self, image: np.ndarray, truth: np.ndarray | None) -> None:
        with self._cond:
            if self.source.live:
                if self._frame is not None:
                    self.dropped += 1
            else:
                self._cond.wait_for(lambda: self._frame is None or self._stop)
            self._frame = Frame(self.captured, image, truth, time.perf_counter())
            self.captured += 1
            self._last_frame_at = self._frame.captured_at
            self.stalled = False
            self._cond.notify_all()

    def _finish(self, reason: str) -> None:
        with self._cond:
            self.ended = self.ended or reason
            self._cond.notify_all()

    # -- consumer side ----------------------------------------------------------------------------

    def next_frame(self, stop: threading.Event) -> Frame | None:
        """The newest frame; None once the source has ended or been given up, or `stop` is set."""
        while not stop.is_set():
            with self._cond:
                self._cond.wait_for(lambda: self._frame is not None or self.ended is not None, timeout=0.1)
                frame, self._frame = self._frame, None
                if frame is not None:
                    self._cond.notify_all()
                    return frame
                if self.ended is not None:
                    return None
                idle = time.perf_counter() - self._last_frame_at
            if idle > self.stall_timeout and not self.stalled:
                # The thread may be blocked in a read that never returns; ask it to reopen when it can.
                self.stalled = True
                self._reopen_requested = True
            if idle > self.stall_timeout + self.retry_seconds:
                self._finish("source_lost")
        return None

    def stop(self) -> None:
        """Stop the thread and release the source (unless a read still blocks it: then it is left to
        end with the process, since releasing a capture under a pending read can crash OpenCV)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        if not self._thread.is_alive():
            self.source.close()
