"""The plain PyTorch recipe edgeseg's trainer must never lose to: edgeseg's UNet, batch 4, AdamW at
2e-3 (constant), random flips and 90-degree rotations, cross-entropy + soft Dice. Scored after every
epoch with edgeseg's confusion matrix, so both sides of train_compare.py are measured alike.

    python benchmarks/train_reference.py TRAIN_DIR VAL_DIR [--epochs 40] [--ignore-index K] [--json OUT]
"""

import argparse
import json

import torch
import torch.nn.functional as F

from edgeseg.data import FolderDataset, default_normalization
from edgeseg.evaluation.metrics import ConfusionMatrix
from edgeseg.models.unet import UNet

p = argparse.ArgumentParser()
for a in ("train", "val"):
    p.add_argument(a)
for a, d in (("--epochs", 40), ("--batch-size", 4), ("--depth", 4), ("--width", 16), ("--seed", 0)):
    p.add_argument(a, type=int, default=d)
p.add_argument("--ignore-index", type=int)
p.add_argument("--json")
args = p.parse_args()
torch.manual_seed(args.seed)
train = FolderDataset(args.train, ignore_index=args.ignore_index)
val = FolderDataset(args.val, ignore_index=args.ignore_index, num_classes=train.num_classes)
k, ign = train.num_classes, -100 if args.ignore_index is None else args.ignore_index
mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in default_normalization(train.channels))


def tensors(ds):  # the whole folder as normalised N x C x H x W floats and N x H x W ids
    x = torch.stack([torch.from_numpy(ds[i][0]) for i in range(len(ds))]).permute(0, 3, 1, 2)
    return (x.float() / 255 - mean) / std, torch.stack([torch.from_numpy(ds[i][1]) for i in range(len(ds))])


(xt, yt), (xv, yv) = tensors(train), tensors(val)
model = UNet(train.channels, k, depth=args.depth, width=args.width).to(memory_format=torch.channels_last)
opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
curve = []
for epoch in range(1, args.epochs + 1):
    model.train()
    for idx in torch.randperm(len(xt)).split(args.batch_size):
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
        prob = logits.softmax(1) * valid
        onehot = F.one_hot(y.where(y != ign, 0), k).permute(0, 3, 1, 2) * valid
        dice = (2 * (prob * onehot).sum((0, 2, 3)) + 1) / (prob.sum((0, 2, 3)) + onehot.sum((0, 2, 3)) + 1)
        loss = F.cross_entropy(logits, y, ignore_index=ign) + (1 - dice).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    cm = ConfusionMatrix(k, args.ignore_index)
    with torch.no_grad():
        for i in range(0, len(xv), 8):
            cm.update(model(xv[i : i + 8]).argmax(1).numpy(), yv[i : i + 8].numpy())
    curve.append(cm.compute().miou)
    print(f"epoch {epoch:>3}  loss {loss.item():.4f}  val mIoU {curve[-1]:.4f}", flush=True)
if args.json:
    with open(args.json, "w") as f:
        json.dump({"miou": curve, "per_class": cm.compute().to_dict(val.class_names)}, f)
