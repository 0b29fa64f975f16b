"""The browser view end to end: headless Chromium loads the page, shows MJPEG frames, and the figures update.

Skips only where no Chromium executable exists (CI installs Debian's chromium, see .ci/run). All
traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("cv2", reason="the demo needs OpenCV: pip install 'edgeseg[demo]'")
pytest.importorskip("onnxruntime", reason="pip install 'edgeseg[onnx]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install 'edgeseg[dev]' (playwright)")

from tests.helpers import make_checkpoint  # noqa: E402


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    return None


CHROMIUM = os.environ.get("EDGESEG_CHROMIUM") or _chromium()
ARGS = [  # headless itself is Playwright's own launch option
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium executable found (apt-get install chromium)")
def test_browser_shows_frames_and_live_figures(tmp_path: Path):
    from edgeseg.demo import DemoConfig, run_demo

    ckpt = make_checkpoint(tmp_path / "tiny.pt")
    lines: list[object] = []
    stop = threading.Event()
    config = DemoConfig(
        source="synthetic",
        fps=20,  # paced like a camera, so the run lasts until stopped
        frame_size=(96, 72),
        headless=True,
        serve=0,
        threads=1,
        compare=False,
        on_message=lines.append,
    )
    runner = threading.Thread(target=lambda: lines.append(run_demo(ckpt, config, stop=stop)), daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while not any(isinstance(x, str) and "http://" in x for x in lines):
            assert time.monotonic() < deadline and runner.is_alive(), lines
            time.sleep(0.05)
        url = next(x for x in lines if isinstance(x, str)).split(" on ")[-1]
        assert url.startswith("http://127.0.0.1:")
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=ARGS, timeout=30_000
            )
            try:
                page = browser.new_page()
                page.goto(url, timeout=15_000)
                # The <img> has decoded at least one frame of the MJPEG stream.
                page.wait_for_function("document.getElementById('stream').naturalWidth > 0", timeout=15_000)
                assert page.evaluate("document.getElementById('stream').naturalWidth") == 96
                first = page.text_content("#frames")
                # The figures are polled every 0.5 s: the frame counter moves on.
                page.wait_for_function(
                    f"(() => {{ const t = document.getElementById('frames').textContent;"
                    f" return t !== '-' && t !== {first!r}; }})()",
                    timeout=10_000,
                )
                assert int(page.text_content("#frames")) > int(first if first.isdigit() else 0)
                assert float(page.text_content("#fps")) > 0
                assert page.text_content("#backend") == "torch"
                assert page.text_content("#state") == "running"
            finally:
                browser.close()
    finally:
        stop.set()
        runner.join(20)
    summary = lines[-1]
    assert getattr(summary, "ended", None) == "stopped" and summary.frames > 0
