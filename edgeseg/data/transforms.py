"""Augmentation and normalisation on numpy arrays (uint8 HxWxC images, integer HxW masks).

Augmentation is explicit about its randomness: the caller passes a `np.random.Generator`, so a
sample's augmentation is reproducible from (seed, epoch, index) no matter which worker process draws it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgeseg.data.imageio import resize_image, resize_mask
from edgeseg.errors import InputError

__all__ = [
    "AUGMENT_OPS",
    "DEFAULT_AUGMENT_OPS",
    "DEFAULT_MEAN_GRAY",
    "DEFAULT_MEAN_RGB",
    "DEFAULT_STD_GRAY",
    "DEFAULT_STD_RGB",
    "Augment",
    "AugmentConfig",
    "default_normalization",
    "normalize",
]

# ImageNet statistics; gray uses their channel average so RGB and gray models see similar ranges.
DEFAULT_MEAN_RGB = (0.485, 0.456, 0.406)
DEFAULT_STD_RGB = (0.229, 0.224, 0.225)
DEFAULT_MEAN_GRAY = (0.449,)
DEFAULT_STD_GRAY = (0.226,)

# The augmentations by name (`edgeseg train --augment-ops`), each switched on with its
# AugmentConfig default strength: flip (left-right), vflip (up-down), rot90, zoom (scale/crop),
# color (brightness/contrast).
AUGMENT_OPS = ("flip", "vflip", "rot90", "zoom", "color")
DEFAULT_AUGMENT_OPS = "flip,rot90"


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation settings.

    Attributes:
        hflip: probability of a left-right flip.
        vflip: probability of an up-down flip (off by default: most camera scenes have an "up").
        rot90: rotate by a random multiple of 90 degrees (only 0/180 when the image is not square).
        scale: zoom range; a factor > 1 enlarges the image and crops a random window of the
            original size, so outputs keep their shape.
        brightness: max relative brightness change (factor drawn from [1 - b, 1 + b]).
        contrast: max relative contrast change around the image mean (factor from [1 - c, 1 + c]).
    """

    hflip: float = 0.5
    vflip: float = 0.0
    rot90: bool = True
    scale: tuple[float, float] = (1.0, 1.5)
    brightness: float = 0.2
    contrast: float = 0.2

    def __post_init__(self) -> None:
        for name in ("hflip", "vflip"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(
                    f"augmentation {name} must be a probability in [0, 1]; got {getattr(self, name)}"
                )
        for name in ("brightness", "contrast"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise InputError(f"augmentation {name} must be in [0, 1); got {getattr(self, name)}")
        low, high = self.scale
        if not 1.0 <= low <= high:
            raise InputError(
                f"augmentation scale must be (low, high) with 1 <= low <= high; got {self.scale}"
            )

    @classmethod
    def from_ops(cls, ops: str) -> AugmentConfig:
        """The config that applies exactly the named augmentations (comma-separated AUGMENT_OPS,
        or "none"), each at its default strength; the others are off."""
        names = [n.strip().lower() for n in ops.split(",") if n.strip()]
        if names == ["none"]:
            names = []
        unknown = [n for n in names if n not in AUGMENT_OPS]
        if unknown:
            raise InputError(
                f"unknown augmentation '{unknown[0]}'; choose none or a comma-separated list of "
                f"{', '.join(AUGMENT_OPS)}"
            )
        on = set(names)
        return cls(
            hflip=0.5 if "flip" in on else 0.0,
            vflip=0.5 if "vflip" in on else 0.0,
            rot90="rot90" in on,
            scale=(1.0, 1.5) if "zoom" in on else (1.0, 1.0),
            brightness=0.2 if "color" in on else 0.0,
            contrast=0.2 if "color" in on else 0.0,
        )


class Augment:
    """Random geometric (image and mask alike) and photometric (image only) augmentation.

    `augment(image, mask, rng)` returns new contiguous arrays of the input shapes and dtypes.
    """

    def __init__(self, cfg: AugmentConfig = AugmentConfig()) -> None:
        self.cfg = cfg

    def __call__(
        self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.cfg
        height, width = mask.shape[:2]
        if image.shape[:2] != (height, width):
            raise ValueError(f"image {image.shape[:2]} and mask {mask.shape[:2]} differ in size")
        # Every random number is drawn in the same order whatever the settings, so changing one
        # option does not reshuffle the others for the same seed.
        factor = rng.uniform(cfg.scale[0], cfg.scale[1])
        crop_u, crop_v = rng.random(2)
        hflip = rng.random() < cfg.hflip
        vflip = rng.random() < cfg.vflip
        k = int(rng.integers(0, 4)) if height == width else 2 * int(rng.integers(0, 2))
        bright = 1.0 + rng.uniform(-cfg.brightness, cfg.brightness)
        contrast = 1.0 + rng.uniform(-cfg.contrast, cfg.contrast)

        if factor > 1.0:
            big_w, big_h = max(width, round(width * factor)), max(height, round(height * factor))
            if (big_w, big_h) != (width, height):
                x0 = int(crop_u * (big_w - width + 1))
                y0 = int(crop_v * (big_h - height + 1))
                image = resize_image(image, (big_w, big_h))[y0 : y0 + height, x0 : x0 + width]
                mask = resize_mask(mask, (big_w, big_h))[y0 : y0 + height, x0 : x0 + width]
        if hflip:
            image, mask = image[:, ::-1], mask[:, ::-1]
        if vflip:
            image, mask = image[::-1], mask[::-1]
        if cfg.rot90 and k:
            image, mask = np.rot90(image, k, axes=(0, 1)), np.rot90(mask, k, axes=(0, 1))

        if cfg.brightness > 0 or cfg.contrast > 0:
            image = _photometric(image, bright, contrast)
        return np.ascontiguousarray(image), np.ascontiguousarray(mask)


def _photometric(image: np.ndarray, bright: float, contrast: float) -> np.ndarray:
    """Scale brightness, then stretch contrast around the mean, on a uint8 (or float 0..255) image."""
    x = image.astype(np.float32) * np.float32(bright)
    mean = x.mean()
    x = (x - mean) * np.float32(contrast) + mean
    if image.dtype == np.uint8:
        return np.clip(x + 0.5, 0, 255).astype(np.uint8)
    return x.astype(image.dtype)


def default_normalization(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) used for `channels` = 3 (RGB) or 1 (gray) images, on the 0..1 scale."""
    if channels == 3:
        return DEFAULT_MEAN_RGB, DEFAULT_STD_RGB
    if channels == 1:
        return DEFAULT_MEAN_GRAY, DEFAULT_STD_GRAY
    raise ValueError(f"channels must be 1 or 3; got {channels}")


def normalize(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 HxWxC -> float32 CxHxW, or NxHxWxC -> NxCxHxW, computing (x / 255 - mean) / std."""
    if images.ndim not in (3, 4):
        raise ValueError(f"expected HxWxC or NxHxWxC images; got shape {images.shape}")
    channels = images.shape[-1]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(
            f"mean/std have {len(mean)}/{len(std)} values but the images have {channels} channels"
        )
    std_arr = np.asarray(std, dtype=np.float32)
    # One multiply-add: x * (1 / (255 std)) - mean / std.
    scale = 1.0 / (255.0 * std_arr)
    offset = np.asarray(mean, dtype=np.float32) / std_arr
    out = images.astype(np.float32) * scale - offset
    axes = (2, 0, 1) if images.ndim == 3 else (0, 3, 1, 2)
    return np.ascontiguousarray(out.transpose(axes))
