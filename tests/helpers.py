"""Builders the tests share: small datasets written to folders, tiny checkpoints, the sample data's
location. Imported by test modules (``from tests.helpers import ...``); fixtures live in conftest.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

CAMVID = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid-mini"


def make_dataset(
    root: Path,
    n: int = 8,
    size: tuple[int, int] = (32, 32),
    *,
    gray: bool = False,
    binary_255: bool = False,
    classes: int = 3,
    seed: int = 0,
) -> Path:
    """Write `n` images with masks that are learnable from the image (class = brightness band)."""
    rng = np.random.default_rng(seed)
    w, h = size
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    k = 2 if binary_255 else classes
    for i in range(n):
        mask = np.zeros((h, w), np.uint8)
        for _ in range(3):
            c = int(rng.integers(1, k))
            x0, y0 = rng.integers(0, w // 2), rng.integers(0, h // 2)
            mask[y0 : y0 + h // 3, x0 : x0 + w // 3] = c
        level = (mask.astype(np.float32) * (200 / max(1, k - 1)) + 20 + rng.normal(0, 6, (h, w))).clip(0, 255)
        if gray:
            Image.fromarray(level.astype(np.uint8), "L").save(root / "images" / f"img{i:03d}.png")
        else:
            rgb = np.stack([level, 255 - level, level * 0.5], axis=-1).astype(np.uint8)
            Image.fromarray(rgb, "RGB").save(root / "images" / f"img{i:03d}.png")
        stored = (mask * 255).astype(np.uint8) if binary_255 else mask
        Image.fromarray(stored, "L").save(root / "masks" / f"img{i:03d}.png")
    return root


def make_checkpoint(
    path: Path, channels: int = 3, classes: int = 4, seed: int = 0, size: tuple[int, int] = (64, 48)
) -> Path:
    """Save an untrained tiny U-Net (depth 2, width 4) as an edgeseg checkpoint at `path`."""
    import torch

    from edgeseg.models.checkpoint import Checkpoint, Normalization, save_checkpoint
    from edgeseg.models.unet import UNet

    torch.manual_seed(seed)
    model = UNet(channels, classes, depth=2, width=4)
    mean, std = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)) if channels == 3 else ((0.449,), (0.226,))
    ckpt = Checkpoint(
        model_config=model.config,
        class_names=[f"c{i}" for i in range(classes)],
        normalization=Normalization(mean, std, "RGB" if channels == 3 else "GRAY"),
        img_size=size,
    )
    return save_checkpoint(path, ckpt, model)


def make_foreign_onnx(
    path: Path,
    *,
    size: tuple[int, int] = (48, 32),
    channels: int = 3,
    classes: int = 3,
    dynamic: bool = False,
    opset: int = 17,
    variant: str = "plain",
    seed: int = 0,
) -> Path:
    """An ONNX file as another framework writes it: a small encoder-decoder (not edgeseg's UNet: conv,
    batch norm, max-pool, bilinear upsampling, concat, 1x1 head) exported with plain
    `torch.onnx.export` (TorchScript exporter), input "pixel_values", output "out", no edgeseg
    metadata. `variant` makes a graph edgeseg must refuse: "two_inputs", "nhwc_output" (classes on
    the last axis), "rank3_output"."""
    import warnings

    import torch
    import torch.nn.functional as F
    from torch import nn

    class Foreign(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
            self.down = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
            self.head = nn.Conv2d(24, classes, 1)

        def forward(self, x: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
            a = self.enc(x + extra[0] if extra else x)
            b = F.interpolate(self.down(F.max_pool2d(a, 2)), size=a.shape[-2:], mode="bilinear")
            out = self.head(torch.cat([a, b], 1))
            if variant == "nhwc_output":
                return out.permute(0, 2, 3, 1)
            return out.flatten(2) if variant == "rank3_output" else out

    torch.manual_seed(seed)
    model = Foreign().eval()
    with torch.no_grad():  # a trained-looking BN, so the graph is not an identity there
        model.enc[1].running_mean.uniform_(-0.2, 0.2)
        model.enc[1].running_var.uniform_(0.5, 1.5)
    x = torch.randn(1, channels, size[1], size[0])
    args = (x, x) if variant == "two_inputs" else (x,)
    names = ["pixel_values", "extra"][: len(args)]
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {n: {0: "n", 2: "h", 3: "w"} for n in names} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, args, str(path), input_names=names, output_names=["out"], opset_version=opset,
            dynamo=False, dynamic_axes=axes,
        )  # fmt: skip
    return path


def run_cli(args: list[object], capsys: Any) -> tuple[int, str, str]:
    """`edgeseg ARGS` in this process: (exit code, stdout, stderr); arguments may be paths."""
    from edgeseg.cli import main

    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err
