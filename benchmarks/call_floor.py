"""The per-call floor: `backend.infer` vs the runtime's own bare call on the same loaded model.

For every backend (onnxruntime, openvino) and precision, one bundle of the quickstart's size (or
CKPT) is loaded once; then, in interleaved rounds so machine noise hits both alike, it times

- bare: the runtime's call on the backend's own objects, `session.run(None, feed)` for ONNX Runtime
  and `compiled_model(feed)` for OpenVINO (a fresh infer request of OpenVINO's, outputs copied);
- infer: `backend.infer(feed)` (input checks, the runtime call, outputs the caller may keep);

and prints both p50s and infer / bare. Goal: within 5 % (ratio <= 1.05).

    python benchmarks/call_floor.py [CKPT] [--runs 200] [--rounds 5] [--precisions fp32,int8]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.exporters import ExportConfig, export
from edgeseg.runtimes import create_backend

BACKENDS = {"onnxruntime": ("onnx", "model.onnx"), "openvino": ("openvino", "model.xml")}


def _bare(backend: Any) -> Callable[[dict[str, np.ndarray]], Any]:
    """The runtime's own call on the objects `backend` loaded."""
    if backend.name == "onnxruntime":
        session = backend._session
        return lambda feed: session.run(None, feed)
    compiled = backend._compiled
    return lambda feed: compiled(feed)


def _time(fn: Callable[[], Any], runs: int, into: list[float]) -> None:
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        into.append((time.perf_counter() - t) * 1000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", nargs="?")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--precisions", default="fp32,int8")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="edgeseg-floor-"))
    try:
        from prepost_speed import quickstart_size_checkpoint

        ckpt = Path(args.checkpoint) if args.checkpoint else quickstart_size_checkpoint(tmp)
        rows = []
        for name, (target, model_file) in BACKENDS.items():
            for precision in args.precisions.split(","):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the small-calibration-set warning
                    config = ExportConfig(target, precision, out=str(tmp / f"{target}-{precision}"))
                    bundle = export(ckpt, config).bundle
                backend = create_backend(name, bundle / model_file).load()
                spec = backend.input_specs[0]
                shape = [d if isinstance(d, int) else 1 for d in spec.shape]
                x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
                rows.append((f"{name}:{precision}", backend, {spec.name: x}))
        print(f"model: {ckpt if args.checkpoint else 'quickstart size, random weights'}; input "
              f"{next(iter(rows[0][2].values())).shape}; {args.runs} runs x {args.rounds} rounds, "
              f"interleaved; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
        times: dict[str, tuple[list[float], list[float]]] = {r[0]: ([], []) for r in rows}
        for _, backend, feed in rows:  # warm up
            for _ in range(10):
                backend.infer(feed)
                _bare(backend)(feed)
        for _ in range(args.rounds):
            for label, backend, feed in rows:
                bare = _bare(backend)
                _time(lambda b=bare, f=feed: b(f), args.runs, times[label][0])
                _time(lambda be=backend, f=feed: be.infer(f), args.runs, times[label][1])
        print(f"{'row':<18} {'bare p50 ms':>11} {'infer p50 ms':>12} {'infer/bare':>10}")
        for label, (bare_ms, infer_ms) in times.items():
            b, i = statistics.median(bare_ms), statistics.median(infer_ms)
            print(f"{label:<18} {b:11.3f} {i:12.3f} {i / b:9.3f}x")
        print(f"load average at the end {os.getloadavg()[0]:.1f}")
        for _, backend, _ in rows:
            backend.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
