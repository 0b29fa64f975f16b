"""Training-step overhead of `edgeseg train` versus a bare PyTorch loop, measured in one run.

Both train the same U-Net with the same loss, optimizer, batch size and images. The edgeseg side is
the real training code path (folder dataset, DataLoader, normalisation, progress, scheduler,
loss bookkeeping) with augmentation off, timed from the per-epoch `train_seconds` it records; the
bare side is `for x, y in batches: zero_grad; loss(model(x), y).backward(); step` over tensors
already in memory. The printed ratio is edgeseg step time / bare step time (target <= 1.10).

    python benchmarks/train_overhead.py [--images 128] [--epochs 4] [--size 128] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from edgeseg.data import SYNTHETIC_CLASSES, FolderDataset, SyntheticDataset, default_normalization
from edgeseg.models.unet import UNet
from edgeseg.training import TrainConfig, train
from edgeseg.training.losses import DiceCELoss


def write_folder(root: Path, n: int, size: int, seed: int) -> Path:
    ds = SyntheticDataset(n, img_size=(size, size), seed=seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        img, mask = ds[i]
        Image.fromarray(img).save(root / "images" / f"{i:04d}.png")
        Image.fromarray(mask.astype(np.uint8)).save(root / "masks" / f"{i:04d}.png")
    return root


def bare_step_time(cfg: TrainConfig, data: Path, steps: int) -> float:
    folder = FolderDataset(data, num_classes=len(SYNTHETIC_CLASSES))
    mean, std = default_normalization(3)
    imgs = np.stack([folder[i][0] for i in range(len(folder))])
    masks = np.stack([folder[i][1] for i in range(len(folder))])
    x_all = torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div(255)
    x_all = (x_all - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    x_all = x_all.contiguous(memory_format=torch.channels_last)
    y_all = torch.from_numpy(masks)
    bs = cfg.batch_size
    batches = [(x_all[i : i + bs], y_all[i : i + bs]) for i in range(0, len(folder) - bs + 1, bs)]
    torch.manual_seed(cfg.seed)
    # Same memory format as edgeseg uses, so the ratio is pure framework overhead, not layout gains.
    model = UNet(3, folder.num_classes, cfg.depth, cfg.width).to(memory_format=torch.channels_last).train()
    loss_fn = DiceCELoss(folder.num_classes)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def run(n: int) -> None:
        for i in range(n):
            x, y = batches[i % len(batches)]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opt.step()

    run(len(batches))  # warm-up: allocator, oneDNN primitives
    t0 = time.perf_counter()
    run(steps)
    return (time.perf_counter() - t0) / steps


def edgeseg_step_time(cfg: TrainConfig) -> float:
    result = train(cfg)
    warm = result.history[1:]  # epoch 1 also reads and caches the PNGs
    return sum(r["train_seconds"] for r in warm) / sum(r["steps"] for r in warm)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds; medians are reported")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = write_folder(root / "train", args.images, args.size, seed=0)
        val = write_folder(root / "val", 4, args.size, seed=1)
        ours, bare = [], []
        for r in range(args.rounds):
            cfg = TrainConfig(
                data=str(data), val_data=str(val), img_size=(args.size, args.size), epochs=args.epochs,
                batch_size=16, augment=False, quiet=True, out=str(root / f"run{r}"), device="cpu",
            )  # fmt: skip
            steps = (args.images // cfg.batch_size) * (args.epochs - 1)
            bare.append(bare_step_time(cfg, data, steps))
            ours.append(edgeseg_step_time(cfg))
    o, b = statistics.median(ours), statistics.median(bare)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {cfg.batch_size}, "
          f"{args.size}x{args.size}, UNet(depth={cfg.depth}, width={cfg.width})")  # fmt: skip
    print(
        f"bare PyTorch loop : {b * 1000:8.1f} ms/step  (rounds: {', '.join(f'{v * 1000:.1f}' for v in bare)})"
    )
    print(
        f"edgeseg train     : {o * 1000:8.1f} ms/step  (rounds: {', '.join(f'{v * 1000:.1f}' for v in ours)})"
    )
    print(f"overhead ratio edgeseg / bare = {o / b:.3f}  (target <= 1.10)")


if __name__ == "__main__":
    main()
