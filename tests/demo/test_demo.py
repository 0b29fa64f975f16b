"""The camera demo: sources, the capture thread, the pipeline end to end, lost sources, the CLI."""

from __future__ import annotations

import _thread
import itertools
import json
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import make_dataset, run_cli

cv2 = pytest.importorskip("cv2", reason="the demo needs OpenCV: pip install 'edgeseg[demo]'")
pytest.importorskip("onnxruntime", reason="pip install 'edgeseg[onnx]'")

from edgeseg.demo import DemoConfig, FrameSource, SourceEnded, SyntheticSource, run_demo  # noqa: E402
from edgeseg.demo.capture import Capture  # noqa: E402
from edgeseg.errors import InputError  # noqa: E402

SIZE = (96, 72)  # small frames keep every run well under a second


@pytest.fixture(scope="module")
def bundle(tiny_bundle) -> Path:
    """A tiny FP32 ONNX bundle whose manifest records its checkpoint (the default baseline): the
    session's (conftest.py), 64x48. Read-only."""
    return tiny_bundle("onnx")


def config(**kw) -> DemoConfig:
    base = {
        "headless": True,
        "frame_size": SIZE,
        "backend": "onnxruntime",
        "threads": 1,
        "on_message": lambda s: None,
    }
    return DemoConfig(**{**base, **kw})


def video_frames(path: Path) -> tuple[int, tuple[int, int]]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    count, size = 0, (0, 0)
    while True:
        ok, img = cap.read()
        if not ok:
            break
        count, size = count + 1, (img.shape[1], img.shape[0])
    cap.release()
    return count, size


def test_synthetic_run_writes_a_playable_video_and_the_summary(bundle: Path, tmp_path: Path):
    out, js = tmp_path / "out.mp4", tmp_path / "s.json"
    summary = run_demo(bundle, config(max_frames=30, save=out, json_path=js, baseline_duty=1.0))
    assert summary.frames == 30 and summary.ended == "max_frames"
    assert video_frames(out) == (30, SIZE)
    data = json.loads(js.read_text())
    assert data["frames"] == 30 and data["video_frames"] == 30 and data["dropped"] == 0
    assert data["captured"] == 30  # an on-demand source: every frame read is segmented, the first too
    assert data["fps"] > 0 and data["model_fps"] > 0 and data["model_fps_isolated"] > 0
    assert {"pre", "infer", "post", "render", "encode"} <= set(data["stages_ms"])
    assert data["truth"]["frames"] == 30 and 0 <= data["truth"]["miou"] <= 1
    base = data["baseline"]
    assert base["frames_compared"] >= 1 and base["pixel_agreement"] >= 0.98  # FP32 vs its own checkpoint
    assert "from the manifest" in data["baseline_note"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "s.json"]  # no temporary left


def test_video_file_and_image_folder_sources(bundle: Path, tmp_path: Path):
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (80, 64))
    source = SyntheticSource((80, 64))
    source.open()
    for _ in range(12):
        writer.write(source.read()[0])
    writer.release()
    source.close()
    s = run_demo(bundle, config(source=str(clip), save=tmp_path / "v.mp4", compare=False))
    assert (s.frames, s.ended, s.truth) == (12, "source_ended", None)
    assert video_frames(tmp_path / "v.mp4") == (12, (80, 64))

    data = make_dataset(tmp_path / "data", n=5, size=(40, 32))
    s = run_demo(bundle, config(source=str(data), compare=False, json_path=tmp_path / "f.json"))
    assert (s.frames, s.ended) == (5, "source_ended")
    assert s.truth is not None and s.truth["frames"] == 5  # a dataset folder's masks are the truth
    assert json.loads((tmp_path / "f.json").read_text())["frames"] == 5


def test_synthetic_source_moves_smoothly_and_is_deterministic():
    a, b = SyntheticSource((64, 48), seed=3), SyntheticSource((64, 48), seed=3)
    a.open(), b.open()
    frames = [a.read() for _ in range(3)]
    again = [b.read() for _ in range(3)]
    a.close(), b.close()
    for (img, mask), (img2, mask2) in zip(frames, again, strict=True):
        assert img.shape == (48, 64, 3) and mask.shape == (48, 64)
        assert np.array_equal(img, img2) and np.array_equal(mask, mask2)
    step = np.abs(frames[1][0].astype(int) - frames[0][0].astype(int)).mean()
    assert 0 < step < 40  # consecutive frames differ, but only by a small pan


class _Scripted(FrameSource):
    """`frames` frames, then `then`: "stall" (read blocks), "fail" (read fails, reopening fails)."""

    def __init__(self, frames: int, then: str, reopen_ok: bool = False, live: bool = False) -> None:
        super().__init__("scripted")
        self.frames, self.then, self.reopen_ok = frames, then, reopen_ok
        self.opens, self.read_count, self.closed = 0, 0, threading.Event()
        self.live = live  # on demand by default, so that frame counts are exact

    def open(self) -> None:
        self.opens += 1
        if self.opens > 1 and not self.reopen_ok:
            raise InputError("gone")
        self.closed.clear()
        self.read_count = 0 if self.reopen_ok else self.read_count

    def read(self):
        time.sleep(0.005)
        if self.read_count < self.frames:
            self.read_count += 1
            return np.full((48, 64, 3), 40 * (self.read_count % 5), np.uint8), None
        if self.then == "stall":
            self.closed.wait(30)  # a stream that hangs: the read returns only once closed
            return None
        if self.then == "end":
            raise SourceEnded
        return None

    def close(self) -> None:
        self.closed.set()


def test_a_stalled_source_ends_the_demo_within_the_bounds_with_the_summary(bundle: Path, tmp_path: Path):
    t0 = time.perf_counter()
    s = run_demo(
        bundle,
        config(
            source=_Scripted(4, "stall"),
            stall_timeout=0.3,
            retry_seconds=0.4,
            json_path=tmp_path / "s.json",
            compare=False,
        ),
    )
    assert s.ended == "source_lost" and s.frames == 4
    assert time.perf_counter() - t0 < 8
    assert json.loads((tmp_path / "s.json").read_text())["ended"] == "source_lost"


def test_a_lost_camera_is_retried_then_given_up_or_recovered(bundle: Path):
    lost = _Scripted(3, "fail")
    s = run_demo(bundle, config(source=lost, stall_timeout=0.3, retry_seconds=0.3, compare=False))
    assert (s.ended, s.frames) == ("source_lost", 3) and lost.opens >= 2  # reopening was tried

    back = _Scripted(3, "fail", reopen_ok=True)
    s = run_demo(bundle, config(source=back, max_frames=8, retry_seconds=2, compare=False))
    assert (s.ended, s.frames) == ("max_frames", 8) and s.reopens >= 1


def test_capture_keeps_only_the_newest_frame_of_a_live_source():
    source = _Scripted(10_000, "end", live=True)
    source.open()
    capture = Capture(source).start()
    stop = threading.Event()
    seen = []
    for _ in range(4):
        time.sleep(0.05)  # a slow model: the source delivers ~10 frames meanwhile
        seen.append(capture.next_frame(stop).index)
    capture.stop()
    assert capture.dropped > 0 and all(b - a > 1 for a, b in itertools.pairwise(seen))


def test_captured_is_frames_plus_dropped_on_a_live_source(bundle: Path, monkeypatch: pytest.MonkeyPatch):
    from edgeseg.segmenter import Segmenter

    call = Segmenter.__call__

    def slow(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(0.03)  # a model slower than the 5 ms camera on any machine: frames must drop
        return call(self, *args, **kwargs)

    monkeypatch.setattr(Segmenter, "__call__", slow)
    s = run_demo(bundle, config(source=_Scripted(10_000, "end", live=True), max_frames=12, compare=False))
    assert s.frames == 12 and s.dropped > 0 and s.captured == s.frames + s.dropped


def test_ctrl_c_ends_cleanly_with_video_and_summary(bundle: Path, tmp_path: Path):
    out, js = tmp_path / "out.mp4", tmp_path / "s.json"
    # Ctrl-C arrives in the main thread. A process started in the background by a shell
    # inherits SIGINT ignored, and then `interrupt_main` does nothing: take Python's handler here.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(1.0, _thread.interrupt_main)
    timer.start()
    try:
        s = run_demo(bundle, config(source="synthetic", fps=30, save=out, json_path=js, compare=False))
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert s.ended == "interrupted" and s.frames > 0
    count, size = video_frames(out)  # a complete, playable file
    # Ctrl-C may land between drawing a frame and counting it: the two may differ by that one frame.
    assert size == SIZE and abs(count - s.frames) <= 1 and abs(count - s.video_frames) <= 1
    assert json.loads(js.read_text())["ended"] == "interrupted"


def test_server_endpoints_and_port_in_use(bundle: Path):
    stop, lines = threading.Event(), []
    cfg = config(source="synthetic", fps=30, serve=0, compare=False, on_message=lines.append)
    runner = threading.Thread(target=lambda: lines.append(run_demo(bundle, cfg, stop=stop)))
    runner.start()
    try:
        deadline = time.time() + 10
        while not any(isinstance(x, str) and "http://" in x for x in lines) and time.time() < deadline:
            time.sleep(0.05)
        url = next(x for x in lines if isinstance(x, str)).split(" on ")[-1]
        assert url.startswith("http://127.0.0.1:")
        assert b"/stream.mjpg" in urllib.request.urlopen(url, timeout=5).read()
        for bad in ("x", "../edgeseg.json", "etc/passwd"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(url + bad, timeout=5)
            assert err.value.code == 404
        with urllib.request.urlopen(url + "stream.mjpg", timeout=5) as stream:
            assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace")
            chunk = stream.read(4096)
            assert b"Content-Type: image/jpeg" in chunk and b"\xff\xd8" in chunk  # a JPEG starts
        stats, deadline = {"frames": 0}, time.time() + 5
        while stats["frames"] == 0 and time.time() < deadline:  # the figures refresh 10 times a second
            stats = json.loads(urllib.request.urlopen(url + "stats.json", timeout=5).read())
            time.sleep(0.05)
        assert stats["frames"] > 0 and stats["backend"] == "onnxruntime" and stats["state"] == "running"
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        with pytest.raises(InputError, match="in use"):
            run_demo(bundle, config(serve=port, max_frames=1))
    finally:
        stop.set()
        runner.join(20)
    assert lines[-1].ended == "stopped"


def test_cli_runs_and_bad_sources_fail_in_one_line(bundle: Path, tmp_path: Path, capsys, monkeypatch):
    js = tmp_path / "s.json"
    rc, out, _ = run_cli(
        ["demo", str(bundle), "--headless", "--max-frames", "5", "--frame-size", "64x48", "--json", str(js)],
        capsys,
    )
    assert rc == 0 and "5 frames" in out and json.loads(js.read_text())["frames"] == 5
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    cases = [
        (["--source", str(tmp_path / "bad.mp4")], "cannot open video"),
        (["--source", str(tmp_path / "missing.mp4")], "cannot open source"),
        (["--source", "videotestsrc ! videoconvert ! appsink"], "GStreamer"),
        (["--source", "7"], "cannot open camera 7"),
        ([], "no display"),  # no --headless and no screen
    ]
    for extra, message in cases:
        headless = [] if not extra else ["--headless"]
        args = [
            "demo",
            str(bundle),
            *headless,
            *extra,
            "--save",
            str(tmp_path / "o.mp4"),
            "--json",
            str(tmp_path / "x.json"),
        ]
        rc, _, err = run_cli(args, capsys)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert rc == 2 and message in err and lines[-1].startswith("edgeseg: error:"), err
        assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4", "s.json"]  # nothing half-written


def test_help_and_import_stay_light():
    import subprocess
    import sys

    code = (
        "import sys; from edgeseg.cli import main; rc = main(['demo', '--help']); "
        "import edgeseg.demo; heavy = [m for m in ('torch', 'cv2') if m in sys.modules]; "
        "assert not heavy, heavy; sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "--source" in proc.stdout and "--serve" in proc.stdout


def test_fast_confusion_update_matches_the_metric():
    from edgeseg.demo.stats import update_confusion
    from edgeseg.evaluation.metrics import ConfusionMatrix

    rng = np.random.default_rng(0)
    for k, ignore in ((4, None), (11, 11), (12, 255), (20, None)):
        pred = rng.integers(0, k, (30, 40)).astype(np.uint8)
        truth = rng.integers(0, k + 2, (30, 40)).astype(np.uint8)
        truth[::4] = 255
        a, b = ConfusionMatrix(k, ignore), ConfusionMatrix(k, ignore)
        a.update(pred, truth)
        update_confusion(b, pred, truth)
        assert np.array_equal(a.matrix, b.matrix)


def test_overlay_colours_only_foreground():
    from edgeseg.demo.render import Renderer

    frame = np.full((20, 30, 3), 100, np.uint8)
    mask = np.zeros((20, 30), np.uint8)
    mask[10:, 15:] = 2
    out = Renderer(4, alpha=0.5).draw(frame, mask, [])
    assert np.array_equal(out[:10], frame[:10]) and not np.array_equal(out[10:, 15:], frame[10:, 15:])
    assert np.array_equal(frame, np.full((20, 30, 3), 100, np.uint8))  # the input is untouched
    shown = Renderer(4, show_mask=True).draw(frame, mask, ["hud"])
    assert shown.shape == frame.shape and shown[15, 20].tolist() != shown[5, 5].tolist()


def test_window_keys_toggle_snapshot_pause_and_quit(bundle: Path, tmp_path: Path, monkeypatch):
    import edgeseg.demo.pipeline as pipeline

    keys = iter(["", "o", "s", " ", "", " ", "", "l", "q"])
    shown: list[np.ndarray] = []

    class FakeWindow:  # stands in for the OpenCV window, which needs a screen
        def __init__(self, title: str) -> None:
            self.title = title

        def show(self, img: np.ndarray, wait_ms: int = 1) -> str:
            shown.append(img)
            return next(keys, "q")

        def close(self) -> None:
            pass

    monkeypatch.setattr(pipeline, "Window", FakeWindow)
    monkeypatch.setattr(pipeline, "display_problem", lambda: None)
    cfg = config(headless=False, compare=False, snapshot_dir=tmp_path, max_frames=100, frame_size=(320, 240))
    s = run_demo(bundle, cfg)
    assert s.ended == "quit" and 1 <= s.frames < 100
    (snap,) = s.snapshots
    assert cv2.imread(snap).shape == (240, 320, 3)
    # Below the HUD, the overlay shows the scene through the colours; after "o", only class colours
    # (and after "l" without the class key).
    from edgeseg.overlay import class_colors

    palette = {tuple(c) for c in class_colors(4)[:, ::-1].tolist()}
    assert not {tuple(c) for c in shown[0][120:].reshape(-1, 3).tolist()} <= palette
    assert {tuple(c) for c in shown[-1][120:].reshape(-1, 3).tolist()} <= palette


def test_a_failure_mid_run_is_a_runtime_error_and_leaves_no_video(bundle: Path, tmp_path: Path):
    from edgeseg.errors import EdgesegRuntimeError

    class Crashing(_Scripted):
        def read(self):
            if self.read_count >= 3:
                raise RuntimeError("driver crashed")
            return super().read()

    with pytest.raises(EdgesegRuntimeError, match="driver crashed"):
        run_demo(bundle, config(source=Crashing(10, "end"), save=tmp_path / "o.mp4", compare=False))
    assert list(tmp_path.iterdir()) == []  # neither the video nor its temporary file


def test_a_stream_url_source_and_its_loss(bundle: Path):
    """A real MJPEG stream over HTTP (another demo's --serve) as the source; when it goes away the
    demo retries, gives up, and ends with its summary."""
    upstream_stop, msgs = threading.Event(), []
    upstream_cfg = config(source="synthetic", fps=20, serve=0, compare=False, on_message=msgs.append)
    upstream = threading.Thread(
        target=lambda: msgs.append(run_demo(bundle, upstream_cfg, stop=upstream_stop))
    )
    upstream.start()
    try:
        deadline = time.time() + 10
        while not msgs and time.time() < deadline:
            time.sleep(0.05)
        url = str(msgs[0]).split(" on ")[-1] + "stream.mjpg"
        threading.Timer(1.5, upstream_stop.set).start()  # the camera on the other end goes away
        s = run_demo(bundle, config(source=url, stall_timeout=1.0, retry_seconds=1.0, compare=False))
    finally:
        upstream_stop.set()
        upstream.join(20)
    assert s.ended == "source_lost" and s.frames > 5 and s.source.startswith("stream 'http://127.0.0.1:")


class _Static(FrameSource):
    """The same frame, on demand, for ever: a camera on a tripod in front of a still scene."""

    def __init__(self) -> None:
        super().__init__("static")
        self.image = np.random.default_rng(3).integers(0, 255, (48, 64, 3), dtype=np.uint8)

    def open(self) -> None:
        pass

    def read(self):
        return self.image.copy(), None


def test_static_source_has_no_flicker_and_latency_percentiles_in_the_summary(bundle: Path, tmp_path: Path):
    out = tmp_path / "s.json"
    summary = run_demo(bundle, config(source=_Static(), max_frames=12, json_path=out, baseline_duty=1.0))
    data = json.loads(out.read_text())
    assert summary.frames == 12
    assert data["flicker"]["artifact"] == 0.0 and data["flicker"]["artifact_pairs"] == 11  # FP32: no flip
    lat = data["latency_percentiles_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"]
    base = data["baseline"]
    if base["flicker_pairs"]:  # PyTorch sampled at least two frames: its masks do not flicker either
        assert base["flicker_pytorch"] == 0.0 and data["flicker"]["artifact_on_compared"] == 0.0


def test_a_foreign_onnx_bundle_is_compared_with_its_source_on_onnx_runtime(tmp_path: Path, capsys):
    """The default baseline of a bundle exported from an ONNX file is that file, run as export's
    parity runs it (ONNX Runtime, fed with the bundle's preprocessing); --baseline takes an .onnx too."""
    from edgeseg.exporters import ExportConfig, export
    from edgeseg.exporters.source import SourceFacts
    from tests.helpers import make_foreign_onnx

    src = make_foreign_onnx(tmp_path / "foreign.onnx", size=(48, 32))
    facts = SourceFacts(classes=3, mean=(0.5, 0.4, 0.3), std=(0.25, 0.2, 0.3), color_order="RGB")
    bundle = export(src, ExportConfig(target="onnx", parity_images=1), facts=facts).bundle
    out = tmp_path / "s.json"
    summary = run_demo(bundle, config(max_frames=10, json_path=out, baseline_duty=1.0))
    base = json.loads(out.read_text())["baseline"]
    assert base is not None and base["label"] == "source ONNX" and base["error"] is None
    assert base["checkpoint"].endswith("foreign.onnx")
    assert base["frames_compared"] >= 1  # drained at the end: a full-duty worker compares some
    assert any(line.startswith("vs source ONNX on ") for line in summary.lines())
    rc, stdout, err = run_cli(["demo", bundle, "--baseline", src, "--headless", "--max-frames", "5",
                               "--frame-size", "96x72"], capsys)  # fmt: skip
    assert rc == 0, err
    assert "torch" not in err and "vs source ONNX on " in stdout
