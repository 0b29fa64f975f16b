"""Accuracy of TensorRT's engine-ready graphs against PyTorch, measured on CPU, per calibration method.

Exports the checkpoint for `--target tensorrt` at fp16 and at int8 with each calibration method
(minmax, entropy, percentile) into a temporary folder, with parity on the labelled VAL folder, and
prints for each: mIoU vs ground truth of PyTorch and of the graph, the drop in points, pixel agreement
and mIoU vs PyTorch, and the export time. The graphs run on ONNX Runtime's CPU provider, the same
graph TensorRT builds its engine from.

    python benchmarks/tensorrt_graph_accuracy.py CKPT --calib TRAIN_DIR --val VAL_DIR [--methods minmax]
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

from edgeseg.exporters import ExportConfig, export


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--calib", required=True, help="calibration images (a dataset folder works)")
    parser.add_argument("--val", required=True, help="labelled folder for mIoU")
    parser.add_argument("--methods", nargs="+", default=["minmax", "entropy", "percentile"])
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)  # the small-calibration-set hint
    cases = [("fp16", None)] + [("int8", m) for m in args.methods]
    print(f"{'graph':<18} {'PyTorch':>8} {'graph':>8} {'drop pts':>9} {'agree':>8} {'vs PT':>7} {'s':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for precision, method in cases:
            config = ExportConfig(
                target="tensorrt",
                precision=precision,
                calib=args.calib if method else None,
                calib_method=method or "minmax",
                val_data=args.val,
                out=str(Path(tmp) / f"{precision}-{method}"),
            )
            result = export(args.checkpoint, config)
            p = result.parity
            drop = (p.miou_pytorch_vs_gt - p.miou_artifact_vs_gt) * 100
            name = f"{precision} {method or ''}".strip()
            print(
                f"{name:<18} {p.miou_pytorch_vs_gt:8.4f} {p.miou_artifact_vs_gt:8.4f} {drop:9.3f} "
                f"{p.pixel_agreement:8.4%} {p.miou_vs_pytorch:7.4f} {result.seconds:6.1f}"
            )


if __name__ == "__main__":
    main()
