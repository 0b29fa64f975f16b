"""The browser view under clients that misbehave: hang up mid-stream, never send a request, never
read. None of them may print a traceback, pin a thread for good, or go uncounted."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

pytest.importorskip("cv2", reason="the demo needs OpenCV: pip install 'edgeseg[demo]'")

from edgeseg.demo.config import DemoSummary
from edgeseg.demo.server import StreamServer

TIMEOUT = 0.4


@pytest.fixture
def server() -> Iterator[StreamServer]:
    srv = StreamServer(0, max_fps=1000, max_clients=3, io_timeout=TIMEOUT)
    srv.publish_stats({"frames": 1})
    stop = threading.Event()
    # Noise compresses badly: each JPEG is a few hundred kB, so a client that does not read fills
    # its socket buffers within a few frames.
    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)

    def publish() -> None:
        while not stop.is_set():
            srv.publish_frame(frame)
            time.sleep(0.01)

    pub = threading.Thread(target=publish, daemon=True)
    pub.start()
    yield srv
    stop.set()
    pub.join()
    srv.close()


def _connect(srv: StreamServer, request: bytes | None = None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    if request is not None:
        sock.sendall(request)
    return sock


def _reset(sock: socket.socket) -> None:
    """Hang up abruptly (RST instead of FIN), as a browser tab that is killed does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _wait(cond, seconds: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


STREAM = b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n"


def test_client_hanging_up_mid_stream_is_counted_quietly(server: StreamServer, capfd) -> None:  # type: ignore[no-untyped-def]
    for _ in range(3):
        sock = _connect(server, STREAM)
        assert b"multipart/x-mixed-replace" in sock.recv(4096)
        sock.recv(4096)  # part of a frame: the hang-up comes mid-stream
        _reset(sock)
    assert _wait(lambda: server.counters()["disconnects"] >= 3 and server.active_clients == 0)
    sock = _connect(server, b"GET /stats.json HTTP/1.1\r\nHost: x\r\n\r\n")  # still serving
    assert b"200 OK" in sock.recv(4096)
    sock.close()
    err = capfd.readouterr().err
    assert "Traceback" not in err and err == ""


def test_half_open_clients_are_bounded_and_time_out(server: StreamServer, capfd) -> None:  # type: ignore[no-untyped-def]
    before = threading.active_count()
    silent = [_connect(server) for _ in range(6)]  # connect, never send a request
    assert _wait(lambda: server.counters()["connections"] == 6)
    assert server.active_clients <= server.max_clients
    assert threading.active_count() - before <= server.max_clients
    assert server.counters()["refused"] == 6 - server.max_clients
    # Within the socket timeout every silent client's thread lets go.
    assert _wait(lambda: server.active_clients == 0, seconds=TIMEOUT * 10)
    assert server.counters()["timeouts"] == server.max_clients
    assert _wait(lambda: threading.active_count() <= before)
    for sock in silent:
        sock.close()
    assert capfd.readouterr().err == ""


def test_stream_client_that_never_reads_is_dropped(server: StreamServer, capfd) -> None:  # type: ignore[no-untyped-def]
    sock = _connect(server, STREAM)  # asks for the stream, then reads nothing
    assert _wait(lambda: server.active_clients == 1)
    assert _wait(lambda: server.counters()["timeouts"] == 1, seconds=TIMEOUT * 20)
    assert _wait(lambda: server.active_clients == 0)
    sock.close()
    assert capfd.readouterr().err == ""


def test_summary_reports_the_counts() -> None:
    summary = DemoSummary(
        model="m",
        backend="b",
        precision="fp32",
        source="s",
        clients={"connections": 5, "disconnects": 2, "timeouts": 1, "refused": 0, "bad_requests": 0},
    )
    assert "browser view: 5 connections, 2 hung up, 1 timed out, 0 refused" in "\n".join(summary.lines())
    assert summary.to_dict()["clients"]["disconnects"] == 2
