"""The frame resize every Segmenter call makes: the kernels available for it, timed in one run.

A camera frame (640x480 .. 1920x1080) is shrunk to the model's input with Pillow's bilinear filter
(antialiased: its support widens with the scale), the kernel training used. On a small model this
resize costs more than the network, so this script measures, on the same uint8 BGR frames, in
interleaved rounds:

- pillow: one `Image.resize` call (what edgeseg did before strips);
- strips: `resize_image(..., parallel=True)`, the same Pillow resize split into horizontal strips
  on the usable cores (what `Segmenter` does now; bit-identical to pillow, checked here);
- onnxruntime: ONNX `Resize(linear, antialias=1)` on uint8, the kernel a fused graph could run;
- torch: `interpolate(bilinear, antialias=True)` on uint8 channels-last (AVX2 code written to match
  Pillow), for reference only: the ONNX Runtime / OpenVINO path of edgeseg does not import torch.

    python benchmarks/resize_speed.py [--frames 640x480,1280x720,1920x1080] [--sizes 128x128,320x240]
        [--runs 40] [--rounds 3]

Prints p50 ms per kernel, its ratio to pillow, and its largest difference from pillow in grey levels.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np

from edgeseg._cpu import usable_cores
from edgeseg.data import parse_img_size
from edgeseg.data.imageio import resize_image

Kernel = Callable[[np.ndarray], np.ndarray]


def _onnxruntime(size: tuple[int, int]) -> Kernel | None:
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    sizes = numpy_helper.from_array(np.array([size[1], size[0]], np.int64), "sizes")
    node = helper.make_node(
        "Resize", ["x", "", "", "sizes"], ["y"], mode="linear", antialias=1, exclude_outside=1,
        axes=[1, 2], coordinate_transformation_mode="half_pixel",
    )  # fmt: skip
    graph = helper.make_graph(
        [node], "resize",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, "h", "w", 3])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], initializer=[sizes],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return lambda frame: session.run(None, {"x": frame[None]})[0][0]


def _torch(size: tuple[int, int]) -> Kernel | None:
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None

    def run(frame: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(frame).permute(2, 0, 1)[None]  # a channels-last view, no copy
        y = F.interpolate(x, size=(size[1], size[0]), mode="bilinear", antialias=True)
        return y[0].permute(1, 2, 0).numpy()

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", default="640x480,1280x720,1920x1080")
    ap.add_argument("--sizes", default="128x128,320x240", help="model input sizes WxH")
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print(f"{usable_cores()} usable cores; load average {os.getloadavg()[0]:.1f}; "
          f"{args.runs} runs x {args.rounds} rounds, interleaved")  # fmt: skip
    rng = np.random.default_rng(0)
    for frame_size in (parse_img_size(s) for s in args.frames.split(",")):
        # Smooth content with edges and noise, as a camera gives (pure noise would favour no kernel).
        w, h = frame_size
        yy, xx = np.mgrid[0:h, 0:w]
        base = (128 + 100 * np.sin(xx / 37.0) * np.cos(yy / 23.0))[..., None] + rng.normal(0, 12, (h, w, 3))
        frame = np.ascontiguousarray(np.clip(base, 0, 255).astype(np.uint8))
        for size in (parse_img_size(s) for s in args.sizes.split(",")):
            kernels: dict[str, Kernel | None] = {
                "pillow": lambda f, s=size: resize_image(f, s),
                "strips": lambda f, s=size: resize_image(f, s, parallel=True),
                "onnxruntime": _onnxruntime(size),
                "torch": _torch(size),
            }
            ready = {k: fn for k, fn in kernels.items() if fn is not None}
            reference = ready["pillow"](frame).astype(np.int16)
            diffs = {k: int(np.abs(fn(frame).astype(np.int16) - reference).max()) for k, fn in ready.items()}
            samples: dict[str, list[float]] = {k: [] for k in ready}
            for _ in range(args.rounds):
                for name, fn in ready.items():
                    fn(frame)
                    for _ in range(args.runs):
                        t = time.perf_counter()
                        fn(frame)
                        samples[name].append((time.perf_counter() - t) * 1000)
            base_ms = statistics.median(samples["pillow"])
            print(f"\n{w}x{h} -> {size[0]}x{size[1]}")
            for name in kernels:
                if name not in ready:
                    print(f"  {name:<12} not installed")
                    continue
                ms = statistics.median(samples[name])
                print(f"  {name:<12} {ms:7.2f} ms  {ms / base_ms:5.2f}x pillow  max diff {diffs[name]}")


if __name__ == "__main__":
    main()
