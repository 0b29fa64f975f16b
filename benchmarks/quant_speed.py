"""Latency of every precision edgeseg exports (ONNX Runtime and OpenVINO, fp32/fp16/int8), in one run.

Exports the checkpoint at SIZE x SIZE into a temporary folder (int8 calibrated on synthetic scenes),
loads each artifact through edgeseg's backends and times `backend.infer` on one identical NCHW
input, rounds interleaved across artifacts so machine noise hits all alike. Prints each artifact's
median latency, its speed-up vs the same runtime's FP32 and vs PyTorch eager, and its model size.

    python benchmarks/quant_speed.py [CKPT] [--size 256] [--runs 30] [--rounds 3]

Without CKPT a width-16, depth-4 U-Net with random weights is used (latency does not depend on the
weights; accuracy is what `edgeseg export --val-data` reports).
"""

from __future__ import annotations

import shutil
import statistics
import warnings
from collections.abc import Callable

import numpy as np
import torch
from _bench import latency_setup, timed  # benchmarks/ is on the path when run as a script

from edgeseg.exporters import ExportConfig, export
from edgeseg.runtimes import create_backend

# (target, backend, model file, files whose bytes make up the model)
RUNTIMES = {
    "onnx": ("onnxruntime", "model.onnx", ("model.onnx",)),
    "openvino": ("openvino", "model.xml", ("model.xml", "model.bin")),
}
PRECISIONS = ("fp32", "fp16", "int8")


def main() -> None:
    args, tmp, ckpt_path, ckpt = latency_setup(__doc__.splitlines()[0], "edgeseg-quant-")
    size = (args.size, args.size)
    x = np.random.default_rng(0).standard_normal((1, ckpt.model_config.in_channels, *size[::-1]), np.float32)

    eager = ckpt.build_model().to(memory_format=torch.contiguous_format).eval()
    xt = torch.from_numpy(x)
    calls: dict[str, Callable[[], object]] = {"PyTorch eager": lambda: eager(xt)}
    sizes: dict[str, float] = {"PyTorch eager": ckpt_path.stat().st_size / 2**20}
    backends = []
    for target, (backend_name, model_file, files) in RUNTIMES.items():
        for precision in PRECISIONS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the small-calibration-set warning
                bundle = export(
                    ckpt_path,
                    ExportConfig(target, precision, img_size=size, out=str(tmp / f"{target}-{precision}")),
                ).bundle
            backend = create_backend(backend_name, bundle / model_file).load()
            backends.append(backend)
            feed = {backend.input_specs[0].name: x}
            name = f"{target} {precision}"
            calls[name] = lambda b=backend, feed=feed: b.infer(feed)
            sizes[name] = sum((bundle / f).stat().st_size for f in files) / 2**20

    results: dict[str, list[float]] = {name: [] for name in calls}
    with torch.inference_mode():
        for fn in calls.values():  # warm-up: allocators, oneDNN/OpenVINO kernels
            for _ in range(3):
                fn()
        for _ in range(args.rounds):
            for name, fn in calls.items():
                results[name].append(timed(fn, args.runs))
    for backend in backends:
        backend.close()
    shutil.rmtree(tmp, ignore_errors=True)  # the bundles were only needed to be timed

    ms = {name: statistics.median(vals) for name, vals in results.items()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; UNet{ckpt.model_config.to_dict()}")
    print(f"input 1x{ckpt.model_config.in_channels}x{args.size}x{args.size}, batch 1")
    print(f"{'':16s} {'median ms':>10s} {'vs own fp32':>12s} {'vs eager':>9s} {'size MiB':>9s}")
    for name, value in ms.items():
        fp32 = ms.get(f"{name.split()[0]} fp32", value)
        own = f"{fp32 / value:11.2f}x" if name != "PyTorch eager" else f"{'':>12s}"
        print(f"{name:16s} {value:10.2f} {own} {ms['PyTorch eager'] / value:8.2f}x {sizes[name]:9.2f}")


if __name__ == "__main__":
    main()
