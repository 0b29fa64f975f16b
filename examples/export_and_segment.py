"""Export a checkpoint to every FP32 target and run one frame through each.

    python examples/export_and_segment.py runs/train/best.pt [--frame image.png] [--out runs/export-demo]

Prints, per artifact, the export's parity against PyTorch and the same frame's mask agreement and
latency through `Segmenter`. A target whose runtime is not installed here (TensorRT on a machine
without it) runs its bundle on the runtime its parity check uses, and says so.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edgeseg import Segmenter
from edgeseg.data import SyntheticDataset, read_image
from edgeseg.evaluation.metrics import mask_agreement
from edgeseg.exporters import ExportConfig, export
from edgeseg.formats import exportable_targets, get_target, missing_packages
from edgeseg.runtimes import available_backends


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--frame", type=Path, help="an image; default a synthetic scene")
    ap.add_argument("--out", type=Path, default=Path("runs/export-demo"))
    args = ap.parse_args()

    if args.frame:
        frame = read_image(args.frame)[..., ::-1]  # Segmenter takes BGR frames, as OpenCV delivers them
    else:
        frame = SyntheticDataset(1, img_size=(641, 479), seed=7)[0][0][..., ::-1]
    frame = np.ascontiguousarray(frame)

    with Segmenter(args.checkpoint) as seg:
        seg.warmup()
        reference = seg(frame)
    print(f"pytorch      {reference.timings['total']:7.1f} ms  (reference)")
    for target in exportable_targets():
        if missing := missing_packages(target):
            print(f"{target:12s} skipped: pip install {' '.join(missing)}")
            continue
        result = export(
            args.checkpoint, ExportConfig(target=target, out=str(args.out / target), overwrite=True)
        )
        runtime, backend, note = get_target(target).backends[0], "auto", ""
        if runtime not in available_backends():
            backend = get_target(target).reference_backend or runtime
            note = f" (on {backend}: {runtime} is not installed here)"
        with Segmenter(result.bundle, backend=backend) as seg:
            seg.warmup()
            out = seg(frame)
        print(
            f"{target:12s} {out.timings['total']:7.1f} ms  agreement with PyTorch on this frame "
            f"{mask_agreement(out.mask, reference.mask):.4%}{note}  | export {result.parity.summary()}"
        )


if __name__ == "__main__":
    main()
