"""FP32 latency of every runtime backend relative to PyTorch eager, on the same input, in one run.

Exports the checkpoint to ONNX and OpenVINO at the given size (into a temporary folder), loads each
artifact through edgeseg's backends, and times `backend.infer` on one identical NCHW batch, rounds
interleaved across backends so machine noise hits all alike. Also times the whole `Segmenter` call
(preprocess + infer + postprocess) on a 640x480 BGR frame. "PyTorch eager (contiguous)" is a plain
`model(x)` on a default-layout module, what a user's own loop runs; edgeseg's torch backend uses
channels_last.

    python benchmarks/runtime_speed.py [CKPT] [--size 256] [--runs 30] [--rounds 3]

Without CKPT a width-16, depth-4 U-Net with random weights is used (latency does not depend on the
weights).
"""

from __future__ import annotations

import statistics

import numpy as np
import torch
from _bench import latency_setup, timed  # benchmarks/ is on the path when run as a script

from edgeseg.exporters import ExportConfig, export
from edgeseg.runtimes import create_backend
from edgeseg.segmenter import Segmenter


def main() -> None:
    args, tmp, ckpt_path, ckpt = latency_setup(__doc__.splitlines()[0], "edgeseg-speed-")
    size = (args.size, args.size)
    bundles = {
        t: export(ckpt_path, ExportConfig(target=t, img_size=size, out=str(tmp / t), parity_images=2)).bundle
        for t in ("onnx", "openvino")
    }
    x = np.random.default_rng(0).standard_normal((1, ckpt.model_config.in_channels, *size[::-1]), np.float32)

    eager = ckpt.build_model().to(memory_format=torch.contiguous_format)
    xt = torch.from_numpy(x)
    backends = {
        "torch (edgeseg, channels_last)": create_backend("torch", ckpt_path).load(),
        "onnxruntime": create_backend("onnxruntime", bundles["onnx"] / "model.onnx").load(),
        "openvino (.xml)": create_backend("openvino", bundles["openvino"] / "model.xml").load(),
    }
    calls = {"PyTorch eager (contiguous)": lambda: eager(xt)}
    for name, b in backends.items():
        feed = {b.input_specs[0].name: x}
        calls[name] = lambda b=b, feed=feed: b.infer(feed)
    frame = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    segs = {
        "Segmenter torch": Segmenter(ckpt_path, backend="torch"),
        "Segmenter onnxruntime": Segmenter(bundles["onnx"], backend="onnxruntime"),
        "Segmenter openvino": Segmenter(bundles["openvino"], backend="openvino"),
    }
    for name, seg in segs.items():
        calls[name] = lambda seg=seg: seg(frame)

    results: dict[str, list[float]] = {name: [] for name in calls}
    with torch.inference_mode():
        for fn in calls.values():  # warm-up: allocators, oneDNN/OpenVINO kernels
            for _ in range(3):
                fn()
        for _ in range(args.rounds):
            for name, fn in calls.items():
                results[name].append(timed(fn, args.runs))

    base = statistics.median(results["PyTorch eager (contiguous)"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; UNet{ckpt.model_config.to_dict()}")
    print(
        f"model input 1x{ckpt.model_config.in_channels}x{args.size}x{args.size}; Segmenter on a 640x480 frame"
    )
    print(f"{'':34s} {'median ms':>10s} {'speed-up vs eager':>18s}")
    for name, vals in results.items():
        ms = statistics.median(vals)
        print(f"{name:34s} {ms:10.2f} {base / ms:17.2f}x")
    for b in backends.values():
        b.close()
    for seg in segs.values():
        seg.close()


if __name__ == "__main__":
    main()
