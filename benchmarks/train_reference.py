"""The plain PyTorch recipe edgeseg's trainer must never lose to, as the U-Net-from-scratch tutorials
write it: edgeseg's UNet, batch 4, AdamW at 2e-3 (constant), random flips and 90-degree rotations,
cross-entropy + soft Dice over the foreground classes (all but class 0, MONAI's
`include_background=False`). Scored after every epoch with edgeseg's confusion matrix, so both sides
of train_compare.py are measured alike.

    python benchmarks/train_reference.py TRAIN_DIR VAL_DIR [--epochs 40] [--seed 0] [--ignore-index K]
                                         [--json OUT]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def train_reference(
    train_dir: str | Path,
    val_dir: str | Path,
    *,
    epochs: int = 40,
    seed: int = 0,
    ignore_index: int | None = None,
    batch_size: int = 4,
    lr: float = 2e-3,
    depth: int = 4,
    width: int = 16,
    log: bool = True,
) -> dict[str, Any]:
    """Train the plain loop; returns its per-epoch val mIoU (`miou`) and the last epoch's scores."""
    import torch
    import torch.nn.functional as F

    from edgeseg.data import FolderDataset, default_normalization
    from edgeseg.evaluation.metrics import ConfusionMatrix
    from edgeseg.models.unet import UNet

    torch.manual_seed(seed)
    train = FolderDataset(train_dir, ignore_index=ignore_index)
    val = FolderDataset(val_dir, ignore_index=ignore_index, num_classes=train.num_classes)
    k, ign = train.num_classes, -100 if ignore_index is None else ignore_index
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in default_normalization(train.channels))

    def tensors(ds):  # type: ignore[no-untyped-def]  # normalised N x C x H x W floats, N x H x W ids
        x = torch.stack([torch.from_numpy(ds[i][0]) for i in range(len(ds))]).permute(0, 3, 1, 2)
        y = torch.stack([torch.from_numpy(ds[i][1]).long() for i in range(len(ds))])
        return (x.float() / 255 - mean) / std, y

    (xt, yt), (xv, yv) = tensors(train), tensors(val)
    model = UNet(train.channels, k, depth=depth, width=width).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    curve: list[float] = []
    for epoch in range(1, epochs + 1):
        model.train()
        for idx in torch.randperm(len(xt)).split(batch_size):
            x, y = xt[idx], yt[idx]
            if torch.rand(()) < 0.5:
                x, y = x.flip(-1), y.flip(-1)
            if torch.rand(()) < 0.5:
                x, y = x.flip(-2), y.flip(-2)
            if x.shape[-1] == x.shape[-2]:
                r = int(torch.randint(4, ()))
                x, y = x.rot90(r, (-2, -1)), y.rot90(r, (-2, -1))
            logits = model(x.contiguous(memory_format=torch.channels_last))
            valid = (y != ign).unsqueeze(1)
            prob = (logits.softmax(1) * valid)[:, 1:]
            onehot = (F.one_hot(y.where(y != ign, 0), k).permute(0, 3, 1, 2) * valid)[:, 1:]
            inter, card = (prob * onehot).sum((0, 2, 3)), prob.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
            dice = (2 * inter + 1) / (card + 1)
            loss = F.cross_entropy(logits, y, ignore_index=ign) + (1 - dice).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        cm = ConfusionMatrix(k, ignore_index)
        with torch.no_grad():
            for i in range(0, len(xv), 8):
                cm.update(model(xv[i : i + 8]).argmax(1).numpy(), yv[i : i + 8].numpy())
        curve.append(cm.compute().miou)
        if log:
            print(f"epoch {epoch:>3}  loss {loss.item():.4f}  val mIoU {curve[-1]:.4f}", flush=True)
    return {"miou": curve, "per_class": cm.compute().to_dict(val.class_names)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for a in ("train", "val"):
        p.add_argument(a)
    for a, d in (("--epochs", 40), ("--batch-size", 4), ("--depth", 4), ("--width", 16), ("--seed", 0)):
        p.add_argument(a, type=int, default=d)
    p.add_argument("--ignore-index", type=int)
    p.add_argument("--json")
    args = p.parse_args()
    result = train_reference(
        args.train,
        args.val,
        epochs=args.epochs,
        seed=args.seed,
        ignore_index=args.ignore_index,
        batch_size=args.batch_size,
        depth=args.depth,
        width=args.width,
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
