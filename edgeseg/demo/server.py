"""The browser view for devices without a screen: a tiny HTTP server with an MJPEG stream and live figures.

    /             a page showing /stream.mjpg and the HUD figures, refreshed from /stats.json every 0.5 s
    /stream.mjpg  the rendered frames as multipart/x-mixed-replace JPEGs
    /stats.json   the live figures
Anything else is 404: the server serves no files, so no path can reach the disk. It binds to
127.0.0.1 unless told otherwise. Frames are JPEG-encoded only while a client watches, at most
`max_fps` times a second, so an unwatched server costs nothing. Every connection has a socket
timeout and at most `max_clients` are served at once (one thread each); clients that hang up, stop
reading or never send a request are dropped quietly and counted (`counters()`, in the summary).
"""

from __future__ import annotations

import contextlib
import errno
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from edgeseg.demo._cv import load_cv2
from edgeseg.errors import InputError

__all__ = ["StreamServer"]

_BOUNDARY = "edgesegframe"
_COUNTERS = ("connections", "disconnects", "timeouts", "refused", "bad_requests")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgeseg demo</title>
<style>
body { font: 14px system-ui, sans-serif; background: #111; color: #eee; margin: 1em; }
img { max-width: 100%; border: 1px solid #444; }
table { border-collapse: collapse; margin-top: .5em; } td { padding: 2px 12px 2px 0; }
td:first-child { color: #999; }
</style></head><body>
<h3>edgeseg demo</h3>
<img id="stream" src="/stream.mjpg" alt="live segmentation">
<table>
<tr><td>model</td><td id="model">-</td></tr>
<tr><td>backend</td><td id="backend">-</td></tr>
<tr><td>precision</td><td id="precision">-</td></tr>
<tr><td>source</td><td id="source">-</td></tr>
<tr><td>frames</td><td id="frames">-</td></tr>
<tr><td>FPS (end to end)</td><td id="fps">-</td></tr>
<tr><td>model FPS</td><td id="model_fps">-</td></tr>
<tr><td>stages (ms)</td><td id="stages">-</td></tr>
<tr><td>agreement vs PyTorch</td><td id="agreement">-</td></tr>
<tr><td>mIoU vs PyTorch</td><td id="miou_baseline">-</td></tr>
<tr><td>mIoU vs truth</td><td id="miou_truth">-</td></tr>
<tr><td>capture to display p50 / p95 / p99 (ms)</td><td id="latency">-</td></tr>
<tr><td>mask flicker (pixels changing class per frame)</td><td id="flicker">-</td></tr>
<tr><td>flicker on compared frames: model / PyTorch</td><td id="flicker_pair">-</td></tr>
<tr><td>dropped frames</td><td id="dropped">-</td></tr>
<tr><td>state</td><td id="state">-</td></tr>
</table>
<script>
const pct = v => v == null ? "-" : (100 * v).toFixed(2) + " %";
const num = (v, d) => v == null ? "-" : v.toFixed(d);
async function refresh() {
  try {
    const s = await (await fetch("/stats.json", {cache: "no-store"})).json();
    const set = (id, text) => { document.getElementById(id).textContent = text; };
    set("model", s.model); set("backend", s.backend); set("precision", s.precision); set("source", s.source);
    set("frames", String(s.frames)); set("fps", num(s.fps, 1)); set("model_fps", num(s.model_fps, 1));
    set("stages", Object.entries(s.stages_ms).map(([k, v]) => k + " " + v.toFixed(1)).join(", "));
    set("agreement", pct(s.agreement)); set("miou_baseline", num(s.miou_vs_baseline, 4));
    set("miou_truth", num(s.miou_vs_truth, 4)); set("dropped", String(s.dropped)); set("state", s.state);
    const lat = s.latency_ms || {};
    set("latency", [lat.p50, lat.p95, lat.p99].map(v => num(v, 1)).join(" / "));
    set("flicker", pct(s.flicker));
    set("flicker_pair", pct(s.flicker_artifact_compared) + " / " + pct(s.flicker_pytorch));
  } catch (e) { document.getElementById("state").textContent = "disconnected"; }
}
refresh(); setInterval(refresh, 500);
</script></body></html>
"""


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # stream handlers end with the demo, never hold the process open
    owner: StreamServer

    def process_request(self, request: Any, client_address: Any) -> None:
        # One thread per connection, but never more than max_clients: a flood of (half-open)
        # connections is closed at once instead of each pinning a thread.
        if not self.owner._admit():
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.owner._leave()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.owner._leave()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints a traceback here; a client hanging up is routine for a live view.
        exc = sys.exc_info()[1]
        self.owner._count("timeouts" if isinstance(exc, TimeoutError) else "disconnects")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.timeout = self.server.owner.io_timeout  # read and write: a silent peer cannot hold us
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the HUD is the log
        pass

    def log_error(self, format: str, *args: Any) -> None:
        # http.server calls this for a request that never came ("Request timed out") and for the
        # error replies it sends; count them instead of writing to stderr.
        self.server.owner._count("timeouts" if "timed out" in format else "bad_requests")

    def _send(self, status: int, ctype: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        owner = self.server.owner
        if path in ("/", "/index.html"):
            self._send(200, "text/html; charset=utf-8", _PAGE.encode())
        elif path == "/stats.json":
            self._send(200, "application/json", json.dumps(owner.stats()).encode())
        elif path == "/stream.mjpg" and self.command == "GET":
            self._stream(owner)
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found\n")

    def _stream(self, owner: StreamServer) -> None:
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        seen = -1
        with owner.watching():
            while True:
                jpeg, seen = owner.wait_jpeg(seen)
                if jpeg is None:
                    return
                head = f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                try:
                    self.wfile.write(head.encode() + jpeg + b"\r\n")
                    self.wfile.flush()
                except TimeoutError:
                    owner._count("timeouts")  # connected but not reading: let the thread go
                    return
                except OSError:
                    owner._count("disconnects")  # the browser went away
                    return


class StreamServer:
    """Serves the page, the MJPEG stream and the figures on `bind`:`port` (port 0: any free one)."""

    def __init__(
        self,
        port: int,
        bind: str = "127.0.0.1",
        max_fps: float = 25.0,
        *,
        max_clients: int = 8,
        io_timeout: float = 10.0,
    ) -> None:
        self.max_clients, self.io_timeout = max_clients, io_timeout
        self._counter_lock = threading.Lock()
        self._active = 0
        self._counts = dict.fromkeys(_COUNTERS, 0)
        try:
            self._httpd = _Server((bind, port), _Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise InputError(f"port {port} on {bind} is in use: pick another --serve port") from None
            raise InputError(f"cannot serve on {bind}:{port}: {exc.strerror or exc}") from None
        self._httpd.owner = self
        self.bind, self.port = bind, self._httpd.server_address[1]
        self.max_fps = max_fps
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._seq = 0
        self._clients = 0
        self._closed = False
        self._last_encode = 0.0
        self._stats: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="edgeseg-serve", daemon=True)
        self._thread.start()

    def _admit(self) -> bool:
        with self._counter_lock:
            self._counts["connections"] += 1
            if self._active >= self.max_clients:
                self._counts["refused"] += 1
                return False
            self._active += 1
            return True

    def _leave(self) -> None:
        with self._counter_lock:
            self._active -= 1

    def _count(self, what: str) -> None:
        with self._counter_lock:
            self._counts[what] += 1

    @property
    def active_clients(self) -> int:
        """Connections being served now (each holds one thread)."""
        return self._active

    def counters(self) -> dict[str, int]:
        """connections accepted, disconnects (clients that hung up mid-reply), timeouts (clients
        silent or not reading for `io_timeout` s), refused (beyond `max_clients`), bad_requests."""
        with self._counter_lock:
            return dict(self._counts)

    @property
    def url(self) -> str:
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        return f"http://{host}:{self.port}/"

    @contextlib.contextmanager
    def watching(self):  # type: ignore[no-untyped-def]
        with self._cond:
            self._clients += 1
        try:
            yield
        finally:
            with self._cond:
                self._clients -= 1

    def wait_jpeg(self, seen: int) -> tuple[bytes | None, int]:
        """The next frame after sequence number `seen`; (None, _) once the server closes."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or (self._jpeg is not None and self._seq != seen))
            return (None, seen) if self._closed else (self._jpeg, self._seq)

    def wants_frame(self) -> bool:
        """Whether a client watches and the stream's frame interval has passed."""
        return self._clients > 0 and time.perf_counter() - self._last_encode >= 1.0 / self.max_fps

    def publish_frame(self, img: np.ndarray) -> None:
        """Encode a rendered BGR frame as JPEG and hand it to every watching client."""
        cv = load_cv2()
        self._last_encode = time.perf_counter()
        ok, data = cv.imencode(".jpg", img, [cv.IMWRITE_JPEG_QUALITY, 80])
        if ok:
            with self._cond:
                self._jpeg, self._seq = data.tobytes(), self._seq + 1
                self._cond.notify_all()

    def publish_stats(self, stats: dict[str, Any]) -> None:
        self._stats = stats  # replaced whole, never mutated: readers see one consistent dict

    def stats(self) -> dict[str, Any]:
        return self._stats

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()
