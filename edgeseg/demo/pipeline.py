"""The demo's engine: capture, model, drawing and comparison overlapped in threads.

    capture thread   source.read() -> one-frame slot (the newest; live sources drop what is not taken)
    model thread     slot -> Segmenter (pre, infer, post) -> one-result queue; offers frames to the baseline
    baseline thread  PyTorch on a sample of frames, low priority, within a CPU budget
    calling thread   result -> metrics vs truth -> overlay + HUD -> video / browser / window, keys

The model thread never waits on drawing unless drawing is slower than the model (then it waits for the
one-slot queue: every frame segmented is drawn, and the wait shows as "wait_out" in the stages). The
window and the keys live in the calling thread, which GUI toolkits require and which also receives
Ctrl-C: every way of ending (frames done, source ended or lost, q, Ctrl-C, `stop`) writes the summary.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg._evidence import ClassSet, labelled_hint, require_same_classes
from edgeseg._io import write_json
from edgeseg._text import shown
from edgeseg.demo.baseline import BaselineWorker, resolve_baseline
from edgeseg.demo.capture import Capture, Frame
from edgeseg.demo.config import DemoConfig, DemoSummary
from edgeseg.demo.model import load_segmenter, model_threads, time_alone
from edgeseg.demo.render import Renderer, VideoSink, Window, display_problem, write_snapshot
from edgeseg.demo.server import StreamServer
from edgeseg.demo.sources import FrameSource, open_frame_source
from edgeseg.demo.stats import (
    DemoState,
    FlickerMeter,
    RateMeter,
    StageTimes,
    build_summary,
    hud_lines,
    latency_percentiles,
    live_stats,
    update_confusion,
)
from edgeseg.errors import EdgesegError, EdgesegRuntimeError, InputError, first_line
from edgeseg.evaluation.metrics import ConfusionMatrix
from edgeseg.exporters.source import SourceFacts

__all__ = ["run_demo"]

_LATENCY_SAMPLES = 100_000  # the percentiles cover the last this many frames (about an hour at 30 FPS)
_LIVE_LATENCY = 300  # frames the live percentiles cover
_TOGGLES = {"h": "hud", "l": "legend"}  # keys that show or hide a part of the picture


@dataclass(frozen=True)
class _Parts:
    """What a run is made of, opened by `run_demo` before the run starts."""

    seg: Any
    capture: Capture
    threads: int | None = None
    baseline: BaselineWorker | None = None
    baseline_note: str = "comparison with PyTorch turned off"
    server: StreamServer | None = None
    sink: VideoSink | None = None
    window: Window | None = None


class _Demo:
    """One run: the model thread's loop, the calling thread's drawing, and the figures of both."""

    def __init__(self, model: Path, config: DemoConfig, stop: threading.Event, parts: _Parts) -> None:
        self.model, self.config, self.stop = model, config, stop
        self.seg, self.capture, self.threads = parts.seg, parts.capture, parts.threads
        self.baseline, self.baseline_note = parts.baseline, parts.baseline_note
        self.server, self.sink, self.window = parts.server, parts.sink, parts.window
        self.say = config.on_message or (lambda line: print(shown(line), file=sys.stderr))
        self.times = StageTimes()
        self.results: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
        self.k = len(self.seg.class_names)
        manifest = self.seg.manifest
        self.precision = manifest.precision if manifest else "fp32"
        self.ignore_index = manifest.ignore_index if manifest else None
        self.truth = ConfusionMatrix(self.k, ignore_index=self.ignore_index)
        self.truth_frames = 0
        self.score_truth, self.truth_note = _truth_plan(self.capture.source, model, self.seg.class_names)
        self.renderer = Renderer(
            self.k,
            config.alpha,
            config.show_mask,
            class_names=self.seg.class_names,
            hud=config.hud,
            legend=config.legend,
        )
        self.frames = 0
        self.rate = RateMeter()  # the HUD's FPS: frames done over the last seconds
        self.latency_ms, self.latency_count = 0.0, 0  # sum and count over the whole run
        self.latencies: deque[float] = deque(maxlen=_LATENCY_SAMPLES)
        self.flicker = FlickerMeter()
        self.paused_s = 0.0
        self.snapshots: list[str] = []
        self.isolated_fps = 0.0
        self.pending: Frame | None = None  # a frame taken before the run started, processed first
        self._paused_at = 0.0
        self._stats: dict[str, Any] = {}
        self._stats_at = 0.0
        self.started = self.finished = time.perf_counter()

    # -- model thread ------------------------------------------------------------------------------

    def _put(self, item: tuple[str, Any]) -> None:
        while not self.stop.is_set():
            try:
                return self.results.put(item, timeout=0.1)
            except queue.Full:
                continue

    def model_loop(self) -> None:
        cfg, taken = self.config, 0
        try:
            while not self.stop.is_set():
                if cfg.max_frames is not None and taken >= cfg.max_frames:
                    return self._put(("end", "max_frames"))
                t0 = time.perf_counter()
                frame, self.pending = self.pending or self.capture.next_frame(self.stop), None
                if frame is None:
                    if self.capture.error is not None:
                        raise self.capture.error
                    return self._put(("end", self.capture.ended or "stopped"))
                t1 = time.perf_counter()
                result = self.seg(frame.image)
                t2 = time.perf_counter()
                if self.baseline is not None:
                    self.baseline.offer(frame.image, result.mask, frame.truth)
                self._put(("frame", (frame, result)))
                taken += 1
                self.times.add(
                    wait_in=(t1 - t0) * 1000,
                    wait_out=(time.perf_counter() - t2) * 1000,
                    **{k: result.timings[k] for k in ("pre", "infer", "post", "total")},
                )
        except BaseException as exc:
            self._put(("error", exc))

    # -- calling thread ----------------------------------------------------------------------------

    def consume(self) -> str:
        """Draw and deliver results until the run ends; returns why it ended."""
        paused, last = False, None
        while True:
            if self.stop.is_set():
                return "stopped"
            if paused:
                key = self.window.show(last, 30) if self.window and last is not None else ""
                paused, reason = self._key(key, last, paused)
                if reason:
                    return reason
                continue
            try:
                kind, payload = self.results.get(timeout=0.1)
            except queue.Empty:
                if self.window and last is not None:
                    paused, reason = self._key(self.window.show(last, 1), last, paused)
                    if reason:
                        return reason
                continue
            if kind == "end":
                return str(payload)
            if kind == "error":
                if isinstance(payload, (EdgesegError, KeyboardInterrupt)):
                    raise payload
                raise EdgesegRuntimeError(f"the demo failed mid-run: {first_line(payload)}") from payload
            frame, result = payload
            last = self._deliver(frame, result)
            reason = None
            if self.window and last is not None:
                t0 = time.perf_counter()
                paused, reason = self._key(self.window.show(last, 1), last, paused)
                self.times.add(display=(time.perf_counter() - t0) * 1000)
            self._displayed(frame)
            if reason:
                return reason

    def _key(self, key: str, shown: Any, paused: bool) -> tuple[bool, str | None]:
        if key == "q" or key == "\x1b":
            return paused, "quit"
        if key == " ":
            if paused:
                self.paused_s += time.perf_counter() - self._paused_at
            self._paused_at = time.perf_counter()
            return not paused, None
        if key == "o":
            self.renderer.show_mask = not self.renderer.show_mask
        if key in _TOGGLES:
            self.renderer.toggle(_TOGGLES[key])
        if key == "s" and shown is not None:
            stem = f"edgeseg-snapshot-{time.strftime('%Y%m%d-%H%M%S')}-{len(self.snapshots):03d}"
            path = write_snapshot(shown, self.config.snapshot_dir, stem)
            self.snapshots.append(str(path))
            self.say(f"snapshot {path}")
        return paused, None

    def _deliver(self, frame: Frame, result: Any) -> Any:
        t0 = time.perf_counter()
        if self.score_truth and frame.truth is not None and frame.truth.shape == result.mask.shape:
            truth = _truth_ids(frame.truth, self.k, self.ignore_index, self.model)
            update_confusion(self.truth, result.mask, truth)
            self.truth_frames += 1
        self.flicker.add(result.mask)
        t1 = time.perf_counter()
        self.frames += 1  # this frame counts in the figures it is drawn with
        if t1 - self._stats_at >= 0.1 or self.frames == 1:  # 10 Hz is as fast as anyone reads figures
            self._stats, self._stats_at = self.live_stats(), t1
            if self.server is not None:
                self.server.publish_stats(self._stats)
        stats = self._stats
        canvas = None
        streaming = self.server is not None and self.server.wants_frame()
        if self.sink is not None or self.window is not None or streaming:
            canvas = self.renderer.draw(frame.image, result.mask, hud_lines(stats))
        t2 = time.perf_counter()
        if self.sink is not None:
            self.sink.write(canvas)
        t3 = time.perf_counter()
        if streaming and self.server is not None:
            self.server.publish_frame(canvas)
        now = time.perf_counter()
        self.rate.tick(now)
        self.finished = now
        self.times.add(
            truth=(t1 - t0) * 1000, render=(t2 - t1) * 1000, encode=(t3 - t2) * 1000, stream=(now - t3) * 1000
        )
        return canvas

    def _displayed(self, frame: Frame) -> None:
        """The frame is out (written, streamed, shown): its capture-to-display latency."""
        ms = (time.perf_counter() - frame.captured_at) * 1000
        self.latency_ms += ms
        self.latency_count += 1
        self.latencies.append(ms)

    # -- figures -----------------------------------------------------------------------------------

    def state(self, *, final: bool = False) -> DemoState:
        """A snapshot of the run's figures (over the whole run when `final`, else the recent ones)."""
        capture, base = self.capture, self.baseline
        truth, truth_note = None, self.truth_note
        if self.truth_frames:
            # Shown only once it stands on the minimum of evidence (edgeseg._evidence).
            hint = labelled_hint(self.ignore_index)
            refusal = self.truth.evidence("labelled pixels", hint=hint).refusal("mIoU vs ground truth")
            if refusal is None:
                truth = self.truth.checked("vs ground truth", "labelled pixels", hint=hint)
            truth_note = refusal or ""
        captured, dropped = capture.counters()
        return DemoState(
            model=self.model,
            backend=self.seg.backend_name,
            device=self.seg.backend.description,
            precision=self.precision,
            source=capture.source.description,
            frames=self.frames,
            fps=self.rate.rate(),
            stages_recent=self.times.means(recent=True),
            stages=self.times.means() if final else {},
            baseline=base.figures() if base is not None else None,
            baseline_note=self.baseline_note,
            truth=truth,
            truth_frames=self.truth_frames,
            truth_note=truth_note,
            duration_s=self.finished - self.started - self.paused_s,
            latency_ms=self.latency_ms / self.latency_count if self.latency_count else 0.0,
            latency_pcts=latency_percentiles(
                list(self.latencies)
                if final
                else list(itertools.islice(reversed(self.latencies), _LIVE_LATENCY))
            ),
            flicker=self.flicker.share,
            flicker_pairs=self.flicker.pairs,
            isolated_fps=self.isolated_fps,
            threads=self.threads,
            captured=captured,
            dropped=dropped,
            reopens=capture.reopens,
            stalled=capture.stalled,
            snapshots=tuple(self.snapshots),
            url=self.server.url if self.server is not None else None,
            clients=self.server.counters() if self.server is not None else None,
        )

    def live_stats(self) -> dict[str, Any]:
        return live_stats(self.state())

    def summary(self, ended: str) -> DemoSummary:
        """Finish the video and the comparison, build the summary and write `config.json_path`."""
        video = self.sink.close() if self.sink is not None else None
        if self.baseline is not None:
            self.baseline.drain()
        summary = build_summary(
            self.state(final=True), ended, video, self.sink.frames if self.sink is not None else 0
        )
        summary.skipped = [s.to_dict() for s in self.capture.source.skipped]
        if self.config.json_path is not None:
            write_json(self.config.json_path, summary.to_dict())
        return summary


def run_demo(
    model: str | os.PathLike[str], config: DemoConfig | None = None, *, stop: threading.Event | None = None
) -> DemoSummary:
    """Run the camera demo on `model` (bundle folder, .onnx, .xml, .engine or checkpoint) and return its
    summary (also written to `config.json_path`). Ends after `max_frames`, when a finite source ends or
    a lost one is given up, on q, on Ctrl-C, or when `stop` is set (from another thread).

    Raises InputError for a source that cannot be opened, a port in use, no display without
    `headless`; EdgesegRuntimeError when the model fails mid-run (the video is then discarded).
    """
    config = config or DemoConfig()
    config.check()
    stop = stop or threading.Event()
    path = Path(model)
    if not config.headless and (problem := display_problem()):
        raise InputError(
            f"{problem}: add --headless (with --serve PORT to watch in a browser, or --save out.mp4)"
        )
    with contextlib.ExitStack() as stack:
        capture = Capture(
            _open(config), stall_timeout=config.stall_timeout, retry_seconds=config.retry_seconds
        )
        stack.callback(capture.stop)  # also closes the source, unless a read is still blocked in it
        server = StreamServer(config.serve, config.bind) if config.serve is not None else None
        if server is not None:
            stack.callback(server.close)
        threads = model_threads(config.threads)
        seg = stack.enter_context(
            load_segmenter(path, config.backend, config.device, threads, config.resize_kernel)
        )
        baseline, note = _baseline(config, seg, path) if config.compare else (None, _Parts.baseline_note)
        if baseline is not None:
            stack.callback(baseline.close)
        fps = config.video_fps or capture.source.fps or 30.0
        sink = VideoSink(Path(config.save), fps) if config.save is not None else None
        window = None
        if not config.headless:
            window = Window(f"edgeseg: {path.name}")
            stack.callback(window.close)
        parts = _Parts(seg, capture, threads, baseline, note, server, sink, window)
        return _run(_Demo(path, config, stop, parts))
    raise AssertionError("unreachable")  # pragma: no cover


def _open(config: DemoConfig) -> FrameSource:
    """The configured source, opened."""
    if isinstance(config.source, FrameSource):
        config.source.open()
        return config.source
    return open_frame_source(
        config.source,
        frame_size=config.frame_size,
        fps=config.fps,
        seed=config.seed,
        loop=config.loop,
        stall_timeout=config.stall_timeout,
    )


def _truth_plan(source: FrameSource, model: Path, class_names: Any) -> tuple[bool, str]:
    """(whether the source's ground truth is scored, why not). Truth whose classes the source names
    must have the model's count: a labelled folder of other classes is refused (InputError naming
    both); truth that merely comes with the frames (`incidental_truth`, the synthetic scenes) is
    not scored, and the note says why."""
    if not source.has_truth:
        return False, ""
    names = source.class_names
    if names is None or len(names) == len(class_names):
        return True, ""
    model_set = ClassSet.of(f"the model '{model}'", class_names)
    truth_set = ClassSet.of(f"the ground truth of {source.description}", names)
    if source.incidental_truth:
        return False, f"ground truth not scored: {model_set.describe()} but {truth_set.describe()}"
    require_same_classes(model_set, truth_set, "give a --source labelled with the model's classes")
    return False, ""


def _truth_ids(truth: Any, classes: int, ignore: int | None, model: Path) -> Any:
    """A ground-truth mask as the model's class ids: a binary mask stored as 0/255 read as 0/1 for a
    two-class model whose ignore id is not 255 (as training reads it). InputError when it holds a
    class id beyond the model's (not the ignore id): its pixels would silently leave the figures."""
    top = int(truth.max()) if truth.size else 0
    if top < classes:
        return truth
    if top == 255 and classes == 2 and ignore != 255 and np.isin(truth, (0, 255)).all():
        return (truth // 255).astype(np.uint8)
    labelled = truth[truth != ignore] if ignore is not None else truth
    if labelled.size and int(labelled.max()) >= classes:
        raise InputError(
            f"a ground-truth mask of the source holds class id {int(labelled.max())}, beyond the {classes} "
            f"classes of the model '{model}'; give a --source labelled with the model's classes"
        )
    return truth


def _baseline(config: DemoConfig, seg: Any, path: Path) -> tuple[BaselineWorker | None, str]:
    """(the comparison worker or None, the note saying which baseline or why there is none)."""
    checkpoint, note = resolve_baseline(config.baseline, seg.manifest, path)
    if checkpoint is None:
        return None, note
    if Path(checkpoint).resolve() == seg.backend.path.resolve():
        return None, "no baseline: the model is its own source"

    pre = seg.preprocessing
    worker = BaselineWorker(
        checkpoint,
        img_size=(pre.width, pre.height),
        num_classes=ClassSet.of(f"the model '{path}'", seg.class_names),
        input_format=seg.input_format,
        duty=config.baseline_duty,
        model_package=seg.backend.package,
        # An ONNX source is fed as the artifact is (its file may not say how).
        facts=SourceFacts(classes=pre.class_names, mean=pre.mean, std=pre.std, color_order=pre.color_order),
    )
    return worker, note


def _run(demo: _Demo) -> DemoSummary:
    seg, capture = demo.seg, demo.capture
    seg.warmup(3)
    capture.start()
    first = capture.next_frame(demo.stop)
    if first is None:
        if capture.error is not None:
            raise capture.error
        if demo.stop.is_set():
            return demo.summary("stopped")
        raise InputError(f"{capture.source.description} delivered no frame ({capture.ended})")
    demo.isolated_fps = time_alone(seg, first.image)
    if demo.baseline is not None:
        demo.baseline.start()
    capture.reset_counters(taken=1)
    demo.pending = first  # the frame used for timing is also the run's first
    worker = threading.Thread(target=demo.model_loop, name="edgeseg-model", daemon=True)
    demo.started = demo.finished = time.perf_counter()
    if demo.server is not None:
        demo.server.publish_stats(demo.live_stats())
        demo.say(f"serving the live view on {demo.server.url}")
    worker.start()
    try:
        ended = demo.consume()
    except KeyboardInterrupt:
        ended = "interrupted"
    except BaseException:
        demo.stop.set()
        if demo.sink is not None:
            demo.sink.discard()
        raise
    finally:
        demo.stop.set()
        worker.join(timeout=10.0)
    return demo.summary(ended)
