"""What the non-finite guards cost: loading an ONNX model with and without the weight scan, and
`backend.infer` with and without the finite check of its outputs, interleaved in one run.

    python benchmarks/guard_overhead.py MODEL.onnx [--rounds 5] [--runs 15] [--threads 2]

MODEL.onnx: an exported model (e.g. a bundle's model.onnx). Prints medians and the ratios
with-guard / without-guard (1.00 = free).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

import edgeseg.runtimes.base as base
import edgeseg.targets.onnx.backend as ort_backend
from edgeseg.runtimes import create_backend


def _median_s(fn: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    scan, check = ort_backend._initializers, base.require_finite
    no_scan: Callable[..., object] = lambda path: iter(())  # noqa: E731
    no_check: Callable[..., object] = lambda value, what, **kw: value  # noqa: E731

    def load() -> None:
        create_backend("onnxruntime", args.model, threads=args.threads).load().close()

    backend = create_backend("onnxruntime", args.model, threads=args.threads).load()
    spec = backend.input_specs[0]
    shape = [d if isinstance(d, int) else 1 for d in spec.shape]
    x = {spec.name: np.random.default_rng(0).random(shape, np.float32)}
    load_t: dict[bool, list[float]] = {True: [], False: []}
    infer_t: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.rounds):  # interleaved: background load hits both alike
        for guarded in (True, False):
            ort_backend._initializers = scan if guarded else no_scan  # type: ignore[assignment]
            base.require_finite = check if guarded else no_check  # type: ignore[assignment]
            load_t[guarded].append(_median_s(load, 1))
            infer_t[guarded].append(_median_s(lambda: backend.infer(x), args.runs))
    ort_backend._initializers, base.require_finite = scan, check
    backend.close()
    for what, t in (("load (weight scan)", load_t), ("infer (output check)", infer_t)):
        on, off = statistics.median(t[True]) * 1000, statistics.median(t[False]) * 1000
        print(f"{what:<22} with {on:9.2f} ms  without {off:9.2f} ms  ratio {on / off:.3f}")


if __name__ == "__main__":
    main()
