"""Security properties of the whole project, checked mechanically.

- No unpickling of untrusted files: the source never calls pickle/marshal loaders, `torch.load` always
  passes `weights_only=True`, `np.load` never allows pickles. That a checkpoint holding pickled objects
  is refused is tested in tests/models/test_checkpoint.py (`test_pickled_code_is_refused`,
  `test_plain_pickle_refused`) and in the catalogue (tests/test_bad_inputs.py, `*-pickled-checkpoint`).
- No shell: no `shell=True`, `os.system`, `os.popen`, and no `eval`/`exec` builtins.
- The demo server binds to 127.0.0.1 by default, serves only its own routes (404 for anything else,
  path traversal included) and refuses methods other than GET and HEAD.
- No network at run time: an export to every CPU target (OpenVINO INT8 through NNCF included) and
  `Segmenter` calls on every backend, in a fresh process whose sockets refuse any non-loopback
  address, try no connection and no name lookup; OpenVINO's and NNCF's telemetry stay off
  (edgeseg._offline) and write nothing under the home folder.
"""

from __future__ import annotations

import http.client
import inspect
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ("edgeseg", "benchmarks", "examples") for p in (ROOT / folder).rglob("*.py"))

FORBIDDEN = {
    "pickle/marshal loader": re.compile(r"\b(pickle|cPickle|dill|marshal|joblib)\.loads?\("),
    "yaml.load (not safe_load)": re.compile(r"\byaml\.(unsafe_)?load\("),
    "np.load with pickles": re.compile(r"allow_pickle\s*=\s*True"),
    "shell=True": re.compile(r"shell\s*=\s*True"),
    "os.system / os.popen": re.compile(r"\bos\.(system|popen)\("),
    "eval/exec builtin": re.compile(r"(?<![\w.])(eval|exec)\("),
}


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the lines that are code, not comments."""
    return [
        (i, line)
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if not line.lstrip().startswith("#")
    ]


def test_sources_were_found() -> None:
    assert len(SOURCES) > 50


@pytest.mark.parametrize("rule", sorted(FORBIDDEN))
def test_no_forbidden_calls(rule: str) -> None:
    pattern = FORBIDDEN[rule]
    hits = [
        f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
        for path in SOURCES
        for i, line in _code_lines(path)
        if pattern.search(line)
    ]
    assert not hits, f"{rule}:\n" + "\n".join(hits)


def test_torch_load_is_always_weights_only() -> None:
    calls = []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"\btorch\.load\(", text):
            call = text[match.start() : text.find(")", match.end()) + 1]
            calls.append((path, call))
    assert calls, "expected the checkpoint loader's torch.load"
    unsafe = [f"{p.relative_to(ROOT)}: {c}" for p, c in calls if "weights_only=True" not in c]
    assert not unsafe, unsafe


# ------------------------------------------------------------------------------- the demo server
@pytest.fixture(scope="module")
def server():  # type: ignore[no-untyped-def]
    """One server for the module's request tests: each request is independent and none changes what
    the server holds (its stats are published here only). Module-scoped because closing a server
    waits for its serve loop's poll (about 0.5 s), which 21 function-scoped servers paid each."""
    pytest.importorskip("cv2", reason="pip install 'edgeseg[demo]'")
    from edgeseg.demo.server import StreamServer

    srv = StreamServer(0)
    srv.publish_stats({"frames": 1})
    yield srv
    srv.close()


def _request(port: int, method: str, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        # skip_host etc. are not needed: the raw path is sent as given (no client-side normalising).
        conn.putrequest(method, path, skip_accept_encoding=True)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read() if method != "HEAD" else b""
    finally:
        conn.close()


def test_server_binds_to_localhost_by_default(server) -> None:  # type: ignore[no-untyped-def]
    from edgeseg.cli.demo import demo
    from edgeseg.demo import DemoConfig
    from edgeseg.demo.server import StreamServer

    assert server.bind == "127.0.0.1"
    assert inspect.signature(StreamServer).parameters["bind"].default == "127.0.0.1"
    assert DemoConfig().bind == "127.0.0.1"
    assert inspect.signature(demo).parameters["bind"].default == "127.0.0.1"


@pytest.mark.parametrize(
    "path",
    [
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2fetc%2fpasswd",
        "//etc/passwd",
        "/stats.json/..",
        "/stats.json/../../etc/passwd",
        "/index.html/../../../etc/passwd",
        "/stream.mjpg/..",
        "/edgeseg/demo/server.py",
        "/favicon.ico",
        "/.git/config",
        "/%00",
    ],
)
def test_server_serves_only_its_routes(server, path: str) -> None:  # type: ignore[no-untyped-def]
    status, body = _request(server.port, "GET", path)
    assert status in (400, 404), (path, status)
    assert b"root:" not in body and b"import" not in body and len(body) < 200


def test_server_routes_still_answer(server) -> None:  # type: ignore[no-untyped-def]
    status, body = _request(server.port, "GET", "/stats.json?x=../../etc/passwd")
    assert status == 200 and json.loads(body) == {"frames": 1}
    assert _request(server.port, "GET", "/")[0] == 200
    assert _request(server.port, "HEAD", "/")[0] == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"])
def test_server_refuses_other_methods(server, method: str) -> None:  # type: ignore[no-untyped-def]
    status, body = _request(server.port, method, "/stats.json")
    assert status in (405, 501), (method, status)
    assert b"frames" not in body


# ----------------------------------------------------------------------------- no network at all
_GUARD = textwrap.dedent(
    """
    import ipaddress, json, socket, sys

    attempts = []

    def _local(host):
        if host in ("localhost", "", None):
            return True
        try:
            return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return False

    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(self, address, *args):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not host.startswith("/") and not _local(host):
            attempts.append(["connect", str(address)])
            raise OSError("network access blocked by the test")
        return real_connect(self, address, *args)

    def getaddrinfo(host, *args, **kwargs):
        if not _local(host):
            attempts.append(["getaddrinfo", str(host)])
            raise socket.gaierror("name lookup blocked by the test")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.getaddrinfo = connect, getaddrinfo

    from pathlib import Path
    import numpy as np
    from edgeseg import Segmenter
    from edgeseg.exporters import ExportConfig, export
    from tests.helpers import make_checkpoint

    work = Path(sys.argv[1])
    ckpt = make_checkpoint(work / "ckpt.pt")
    models = {"torch": ckpt}
    for target, precision, backend in [
        ("onnx", "fp32", "onnxruntime"), ("openvino", "fp32", "openvino"), ("openvino", "int8", None),
        ("onnx", "int8", None), ("tensorrt", "fp32", None),
    ]:
        out = work / f"{target}-{precision}"
        export(ckpt, ExportConfig(target=target, precision=precision, out=str(out), parity_images=1))
        if backend:
            models[backend] = out
    frame = np.zeros((48, 64, 3), np.uint8)
    for backend, model in models.items():
        with Segmenter(model, backend=backend) as seg:
            seg(frame)
    import time
    time.sleep(1.0)  # telemetry senders run in background threads
    print("ATTEMPTS", json.dumps(attempts))
    """
)


def test_no_network_access_at_run_time(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="pip install 'edgeseg[onnx]'")
    pytest.importorskip("openvino", reason="pip install 'edgeseg[openvino]'")
    pytest.importorskip("nncf", reason="pip install 'edgeseg[nncf]'")
    home = tmp_path / "home"
    home.mkdir()
    # A fresh process (NNCF turns its telemetry off by itself under pytest), with an empty home
    # folder: telemetry that decided to run would leave its client id and counters there.
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "NNCF_CI", "NNCF_DEV")}
    env.update(HOME=str(home), OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(ROOT), *sys.path]))
    proc = subprocess.run(
        [sys.executable, "-c", _GUARD, str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("ATTEMPTS "))
    assert json.loads(line[len("ATTEMPTS ") :]) == []
    assert not list(home.rglob("*")), f"written under the home folder: {list(home.rglob('*'))}"
