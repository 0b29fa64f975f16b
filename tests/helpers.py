"""Builders the tests share: small datasets written to folders, tiny checkpoints, the sample data's
location. Imported by test modules (``from tests.helpers import ...``); fixtures live in conftest.py."""

from __future__ import annotations

from pathlib import Path

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
