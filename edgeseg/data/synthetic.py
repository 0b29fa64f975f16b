"""A procedural segmentation dataset: textured scenes with discs, boxes and triangles.

It is the default training data when the user gives none, so `edgeseg quickstart` runs on a fresh
machine with no downloads. Each class draws its colour from its own hue family (discs red, boxes
green, triangles blue, jittered in hue, saturation and value) on a desaturated background; textured
backgrounds, occlusion, uneven lighting, noise and blur keep the task from being trivial.

Measured on 2 CPU cores, a small U-Net learning the class from the outline alone (random colours)
reached only ~0.35 mIoU after 600 steps, hence a colour cue. Scenes are rendered on the fly (a few
ms each), deterministic per (seed, index).
"""

from __future__ import annotations

import colorsys
import functools
from dataclasses import dataclass

import numpy as np

from edgeseg._guards import size_arg

__all__ = ["SYNTHETIC_CLASSES", "SyntheticDataset", "render_scene"]

SYNTHETIC_CLASSES = ("background", "disc", "box", "triangle")


@dataclass(frozen=True)
class _Style:
    """The knobs that set how hard the scenes are (all intensities on a 0..1 scale)."""

    shapes: tuple[int, int] = (2, 6)  # min, max shapes per scene
    size: tuple[float, float] = (0.10, 0.35)  # shape diameter as a fraction of the shorter side
    max_overlap: float = 0.35  # most of a new shape that may cover earlier ones (re-placed otherwise)
    hue_jitter: float = 0.07  # hue spread around each class's hue (0..1 = full circle)
    saturation: tuple[float, float] = (0.55, 1.0)  # shapes
    value: tuple[float, float] = (0.45, 1.0)  # shapes
    background_saturation: tuple[float, float] = (0.0, 0.4)  # fraction of the background's colour kept
    gradient: float = 0.35  # background colour change across the frame
    texture: tuple[float, float] = (0.03, 0.15)  # stripe/grid amplitude
    texture_period: tuple[float, float] = (9.0, 40.0)  # stripe/grid period in pixels
    shading: float = 0.15  # colour change across a shape
    speckle: float = 0.05  # per-pixel texture inside shapes
    gain: tuple[float, float] = (0.7, 1.3)  # global brightness
    light_slope: float = 0.4  # illumination change across the frame
    noise: tuple[float, float] = (0.005, 0.04)  # Gaussian pixel noise sigma
    blur_probability: float = 0.3
    blur_sigma: tuple[float, float] = (0.3, 1.2)


_STYLE = _Style()
_PLACEMENT_TRIES = 6


@functools.lru_cache(maxsize=8)
def _grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (row, col) as float32 broadcastable grids; cached, never mutated."""
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    ys.flags.writeable = False
    xs.flags.writeable = False
    return ys, xs


def _background(rng: np.random.Generator, ys: np.ndarray, xs: np.ndarray, style: _Style) -> np.ndarray:
    """Low-frequency colour gradient plus a sinusoidal stripe or grid texture, HxWx3 float32."""
    height, width = ys.shape[0], xs.shape[1]
    v, u = ys / height, xs / width  # 0..1
    base = rng.uniform(0.1, 0.9, 3).astype(np.float32)
    grad_u = rng.uniform(-style.gradient, style.gradient, 3).astype(np.float32)
    grad_v = rng.uniform(-style.gradient, style.gradient, 3).astype(np.float32)
    img = base + grad_u * (u[..., None] - 0.5) + grad_v * (v[..., None] - 0.5)

    theta = rng.uniform(0.0, np.pi)
    phase = rng.uniform(0.0, 2 * np.pi)
    along = np.float32(np.cos(theta)) * xs + np.float32(np.sin(theta)) * ys
    texture = np.sin(along * np.float32(2 * np.pi / rng.uniform(*style.texture_period)) + np.float32(phase))
    if rng.random() < 0.4:  # a grid: a second, perpendicular wave
        across = np.float32(-np.sin(theta)) * xs + np.float32(np.cos(theta)) * ys
        texture = 0.5 * (
            texture + np.sin(across * np.float32(2 * np.pi / rng.uniform(*style.texture_period)))
        )
    tint = rng.uniform(*style.texture, 3).astype(np.float32) * rng.choice([-1.0, 1.0], 3).astype(np.float32)
    img = img + texture[..., None] * tint
    grey = (img[..., :1] + img[..., 1:2] + img[..., 2:]) * np.float32(1 / 3)  # 10x faster than mean(-1)
    return grey + np.float32(rng.uniform(*style.background_saturation)) * (img - grey)


def _shape_mask(
    kind: int, rng: np.random.Generator, ys: np.ndarray, xs: np.ndarray, cy: float, cx: float, diameter: float
) -> np.ndarray:
    """Boolean mask of one disc (1), rotated box (2) or rotated triangle (3) on the given grid window."""
    dy, dx = ys - np.float32(cy), xs - np.float32(cx)
    if kind == 1:
        radius = diameter / 2
        return dy * dy + dx * dx <= np.float32(radius * radius)
    angle = rng.uniform(0.0, 2 * np.pi)
    cos, sin = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    if kind == 2:
        # An elongated box stays a box; aspect down to 0.5 also keeps it distinct from a disc's outline.
        half_w, half_h = diameter / 2, diameter / 2 * rng.uniform(0.5, 1.0)
        along, across = cos * dx + sin * dy, -sin * dx + cos * dy
        return (np.abs(along) <= np.float32(half_w)) & (np.abs(across) <= np.float32(half_h))
    # Triangle: three vertices at jittered angles on a circle, inside = left of every edge.
    radius = diameter * 0.6  # a triangle covers less of its circle; this keeps areas comparable
    angles = angle + np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3]) + rng.uniform(-0.3, 0.3, 3)
    vx, vy = radius * np.cos(angles), radius * np.sin(angles)
    inside = np.ones(np.broadcast_shapes(dy.shape, dx.shape), dtype=bool)
    for i in range(3):
        j = (i + 1) % 3
        ex, ey = np.float32(vx[j] - vx[i]), np.float32(vy[j] - vy[i])
        inside &= ex * (dy - np.float32(vy[i])) - ey * (dx - np.float32(vx[i])) >= 0
    return inside


_CLASS_HUE = {1: 0.0, 2: 1 / 3, 3: 2 / 3}  # disc red, box green, triangle blue


def _class_colour(rng: np.random.Generator, kind: int, style: _Style) -> np.ndarray:
    """An RGB colour from the class's hue family."""
    hue = (_CLASS_HUE[kind] + rng.uniform(-style.hue_jitter, style.hue_jitter)) % 1.0
    rgb = colorsys.hsv_to_rgb(hue, rng.uniform(*style.saturation), rng.uniform(*style.value))
    return np.array(rgb, dtype=np.float32)


def _gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of an HxWxC float image with reflected borders."""
    radius = max(1, int(np.ceil(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    height, width = img.shape[:2]
    padded = np.pad(img, ((radius, radius), (0, 0), (0, 0)), mode="reflect")
    out = sum(t * padded[k : k + height] for k, t in enumerate(taps))
    padded = np.pad(out, ((0, 0), (radius, radius), (0, 0)), mode="reflect")
    return sum(t * padded[:, k : k + width] for k, t in enumerate(taps))


def render_scene(rng: np.random.Generator, size_wh: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Render one random scene at `size_wh` = (width, height).

    Returns `(image, mask)`: uint8 HxWx3 RGB and uint8 HxW class ids indexing `SYNTHETIC_CLASSES`.
    Later shapes occlude earlier ones, in the image and in the mask alike.
    """
    style = _STYLE
    width, height = int(size_wh[0]), int(size_wh[1])
    ys, xs = _grid(width, height)
    img = _background(rng, ys, xs, style)
    mask = np.zeros((height, width), dtype=np.uint8)
    short = min(width, height)

    for _ in range(rng.integers(style.shapes[0], style.shapes[1] + 1)):
        kind = int(rng.integers(1, len(SYNTHETIC_CLASSES)))
        diameter = rng.uniform(*style.size) * short
        reach = diameter * 0.72 + 1  # covers a square box's half-diagonal and the triangle
        # Mostly-hidden shapes teach nothing about shape: re-place a shape that would cover much of
        # the earlier ones (it is dropped if no place is found).
        for _ in range(_PLACEMENT_TRIES):
            cy = rng.uniform(0.1, 0.9) * height
            cx = rng.uniform(0.1, 0.9) * width
            # Evaluate the shape only inside its bounding box: cheaper than the full frame.
            y0, y1 = max(0, int(cy - reach)), min(height, int(np.ceil(cy + reach)) + 1)
            x0, x1 = max(0, int(cx - reach)), min(width, int(np.ceil(cx + reach)) + 1)
            inside = _shape_mask(kind, rng, ys[y0:y1], xs[:, x0:x1], cy, cx, diameter)
            area = np.count_nonzero(inside)
            if area and np.count_nonzero(mask[y0:y1, x0:x1][inside]) <= style.max_overlap * area:
                break
        else:
            continue
        colour = _class_colour(rng, kind, style)
        # Mild shading and a speckle texture, so a shape is not a flat colour patch.
        shade_y, shade_x = rng.uniform(-style.shading, style.shading, 2) / max(diameter, 1.0)
        shading = np.float32(shade_y) * (ys[y0:y1] - np.float32(cy)) + np.float32(shade_x) * (
            xs[:, x0:x1] - np.float32(cx)
        )
        speckle = rng.standard_normal(inside.shape, dtype=np.float32)
        speckle *= np.float32(rng.uniform(0.0, style.speckle))
        patch = colour + (shading + speckle)[..., None]
        window = img[y0:y1, x0:x1]
        window[inside] = patch[inside]
        mask[y0:y1, x0:x1][inside] = kind

    # Global lighting: overall gain and a linear illumination gradient across the frame.
    gain = rng.uniform(*style.gain)
    light_y, light_x = rng.uniform(-style.light_slope, style.light_slope, 2)
    light = np.float32(gain) * (
        1.0 + np.float32(light_y) * (ys / height - 0.5) + np.float32(light_x) * (xs / width - 0.5)
    )
    img *= light[..., None]
    # Uniform noise with the drawn standard deviation: several times cheaper to draw than Gaussian.
    sigma = np.float32(rng.uniform(*style.noise) * np.sqrt(12.0))
    img += (rng.random(img.shape, dtype=np.float32) - np.float32(0.5)) * sigma
    if rng.random() < style.blur_probability:
        img = _gaussian_blur(img, rng.uniform(*style.blur_sigma))
    img *= np.float32(255.0)
    img += np.float32(0.5)
    image = np.clip(img, 0.0, 255.0, out=img).astype(np.uint8)
    return image, mask


class SyntheticDataset:
    """`length` procedural scenes of `img_size` = (width, height); item i is the same for every run.

    `dataset[i]` is `(image, mask)`: uint8 HxWx3 and int64 HxW ids of `SYNTHETIC_CLASSES`.
    """

    def __init__(self, length: int = 1000, img_size: tuple[int, int] = (128, 128), seed: int = 0) -> None:
        if length < 1:
            raise ValueError(f"length must be at least 1; got {length}")
        if seed < 0:
            raise ValueError(f"seed must be non-negative; got {seed}")
        self.length = int(length)
        self.img_size: tuple[int, int] = size_arg(img_size)
        self.seed = int(seed)
        self.class_names: list[str] = list(SYNTHETIC_CLASSES)
        self.num_classes: int = len(SYNTHETIC_CLASSES)
        self.channels: int = 3
        self.ignore_index: int | None = None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of {self.length} items")
        index %= self.length
        image, mask = render_scene(np.random.default_rng([self.seed, index]), self.img_size)
        return image, mask.astype(np.int64)

    def __repr__(self) -> str:
        return f"SyntheticDataset(length={self.length}, img_size={self.img_size}, seed={self.seed})"
