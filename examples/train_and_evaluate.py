"""Train a U-Net from Python, then score and use the best checkpoint.

python examples/train_and_evaluate.py                      # built-in synthetic data
python examples/train_and_evaluate.py --data DIR --val-data VAL --img-size 320x240 --epochs 20
"""

from __future__ import annotations

import argparse

import numpy as np

from edgeseg import evaluate_checkpoint, load_checkpoint, train
from edgeseg.data import SyntheticDataset, parse_img_size
from edgeseg.evaluation.evaluate import predict_masks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data")
    ap.add_argument("--val-data")
    ap.add_argument("--img-size")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--out", default="runs/example")
    args = ap.parse_args()

    result = train(
        data=args.data,
        val_data=args.val_data,
        img_size=parse_img_size(args.img_size) if args.img_size else None,
        epochs=args.epochs,
        width=args.width,
        out=args.out,
        exist_ok=True,
    )
    print(f"best val mIoU {result.best_miou:.4f} at epoch {result.best_epoch}: {result.best_checkpoint}")

    ckpt = load_checkpoint(result.best_checkpoint)
    if args.val_data:
        report = evaluate_checkpoint(ckpt, args.val_data)
        print(f"eval on {args.val_data}: mIoU {report.metrics.miou:.4f}")

    # Use the model on a new image (here a fresh synthetic scene at the training size).
    image, _ = SyntheticDataset(1, img_size=ckpt.img_size, seed=123)[0]
    mask = predict_masks(ckpt.build_model(), image[None], ckpt.normalization)[0]
    shares = np.bincount(mask.ravel(), minlength=len(ckpt.class_names)) / mask.size
    print("class shares:", {n: round(float(s), 3) for n, s in zip(ckpt.class_names, shares, strict=True)})


if __name__ == "__main__":
    main()
