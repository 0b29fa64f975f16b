"""Small datasets for the training comparisons, derived from ../shared/data/camvid-mini and from
edgeseg's synthetic scenes, written to a cache folder (never into the source data).

    road      24 train / 12 val frames, grayscale, 128x128, binary: road (CamVid id 3) vs the rest
              (void pixels count as "rest": a binary mask of a road has no unlabelled pixels)
    camvid11  24 train / 12 val frames, RGB, 192x144, the 11 classes, void = ignore id 11
    synthetic 32 train / 16 val scenes of edgeseg's synthetic generator, 96x96, 4 classes
    thin      24 train / 6 val grayscale images, 128x128, 2 classes: thin dark curves (vessel- or
              crack-like, 1-3.5 px wide, branching, uneven contrast) on a textured, unevenly lit
              background with unlabelled dark blobs; drawn here (render_thin), not taken from camvid

The sizes are small on purpose: a 40-epoch run of a depth-4, width-16 U-Net takes a few minutes on
two CPU cores. `make_dataset(name, size=(w, h), n_val=N)` builds a set at another size, or with
another number of validation images (camvid-mini's val/ holds 34 frames), in its own cache folder.

Frames are taken evenly spaced from camvid-mini's train/ and val/ folders, so every run of the
benchmarks sees the same files.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from edgeseg.data import list_images

CAMVID = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "camvid-mini"
DATASETS = ("road", "camvid11", "synthetic", "thin")
# name -> (frames train, frames val, (width, height), ignore index or None)
SPECS = {
    "road": (24, 12, (128, 128), None),
    "camvid11": (24, 12, (192, 144), 11),
    "synthetic": (32, 16, (96, 96), None),
    "thin": (24, 6, (128, 128), None),
}
ROAD_ID = 3  # classes.txt: sky, building, pole, road, ...


def cache_root() -> Path:
    return Path(tempfile.gettempdir()) / "edgeseg-bench-data"


def render_thin(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One grayscale image (uint8 HxW) and its 0/1 mask of thin curves, drawn at 4x and reduced by
    area averaging: the image is antialiased, the mask marks pixels at least half covered."""
    import cv2

    w, h = size
    up = 4
    big_w, big_h = w * up, h * up
    cover = np.zeros((big_h, big_w), np.float32)  # how dark each curve makes a pixel (0..1)
    paths: list[np.ndarray] = []
    for c in range(int(rng.integers(3, 8))):
        if paths and rng.random() < 0.5:  # a branch leaving an earlier curve
            src = paths[int(rng.integers(len(paths)))]
            start = src[int(rng.integers(len(src)))].astype(np.float64)
        else:
            start = rng.uniform([0.1 * big_w, 0.1 * big_h], [0.9 * big_w, 0.9 * big_h])
        angle, turn = rng.uniform(0, 2 * np.pi), 0.0
        steps = int(rng.integers(20, 60))
        step_len = rng.uniform(0.02, 0.04) * max(big_w, big_h)
        points = [start]
        for _ in range(steps):
            turn = 0.8 * turn + rng.normal(0, 0.12)
            angle += turn
            nxt = points[-1] + step_len * np.array([np.cos(angle), np.sin(angle)])
            if not (0 <= nxt[0] < big_w and 0 <= nxt[1] < big_h):  # turn back at the border
                angle, turn = angle + np.pi, 0.0
                nxt = points[-1] + step_len * np.array([np.cos(angle), np.sin(angle)])
            points.append(nxt)
        path = np.array(points)
        paths.append(path)
        width = rng.uniform(1.0, 3.5) * up * (0.6 if c and rng.random() < 0.5 else 1.0)
        layer = np.zeros_like(cover)
        cv2.polylines(layer, [path.round().astype(np.int32)], False, 1.0, max(1, round(width)), cv2.LINE_AA)
        cover = np.maximum(cover, layer * rng.uniform(0.45, 1.0))  # uneven contrast between curves
    mask = cv2.resize((cover > 0.2).astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) >= 0.5
    darkness = cv2.resize(cover, (w, h), interpolation=cv2.INTER_AREA)
    # Background: uneven lighting, smooth texture, unlabelled dark blobs (distractors), noise.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 0.55 + rng.uniform(-0.2, 0.2) * (xx / w - 0.5) + rng.uniform(-0.2, 0.2) * (yy / h - 0.5)
    texture = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), rng.uniform(2, 5))
    image = light + 0.06 * texture / max(1e-6, float(texture.std()))
    for _ in range(int(rng.integers(2, 6))):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(2, 8) * w / 128
        image -= rng.uniform(0.05, 0.2) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
    image -= darkness * rng.uniform(0.15, 0.3)
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 0.9))
    image += rng.normal(0, rng.uniform(0.01, 0.04), (h, w)).astype(np.float32)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), mask.astype(np.uint8)


def _write_thin(dst: Path, n: int, size: tuple[int, int], seed: int) -> None:
    (dst / "images").mkdir(parents=True)
    (dst / "masks").mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        image, mask = render_thin(rng, size)
        Image.fromarray(image, "L").save(dst / "images" / f"{i:04d}.png")
        Image.fromarray(mask).save(dst / "masks" / f"{i:04d}.png")
    (dst / "classes.txt").write_text("background\ncurve\n")


def _evenly(paths: list[Path], n: int) -> list[Path]:
    idx = np.linspace(0, len(paths) - 1, n).round().astype(int)
    return [paths[i] for i in idx]


def _write_camvid(name: str, src: Path, dst: Path, n: int, size: tuple[int, int]) -> None:
    (dst / "images").mkdir(parents=True)
    (dst / "masks").mkdir()
    for image_path in _evenly(list_images(src / "images", (".png",)), n):
        image = Image.open(image_path).convert("L" if name == "road" else "RGB")
        mask = np.asarray(Image.open(src / "masks" / image_path.name))
        if name == "road":
            mask = (mask == ROAD_ID).astype(np.uint8)
        image.resize(size, Image.BILINEAR).save(dst / "images" / image_path.name)
        Image.fromarray(mask.astype(np.uint8)).resize(size, Image.NEAREST).save(
            dst / "masks" / image_path.name
        )
    if name == "camvid11":
        (dst / "classes.txt").write_text((CAMVID / "classes.txt").read_text())
    else:
        (dst / "classes.txt").write_text("rest\nroad\n")


def _write_synthetic(dst: Path, n: int, size: tuple[int, int], seed: int) -> None:
    from edgeseg.data import SYNTHETIC_CLASSES, SyntheticDataset

    ds = SyntheticDataset(n, img_size=size, seed=seed)
    (dst / "images").mkdir(parents=True)
    (dst / "masks").mkdir()
    for i in range(n):
        image, mask = ds[i]
        Image.fromarray(image).save(dst / "images" / f"{i:04d}.png")
        Image.fromarray(mask.astype(np.uint8)).save(dst / "masks" / f"{i:04d}.png")
    (dst / "classes.txt").write_text("\n".join(SYNTHETIC_CLASSES) + "\n")


def make_dataset(
    name: str, root: Path | None = None, size: tuple[int, int] | None = None, n_val: int | None = None
) -> tuple[Path, Path, int | None]:
    """(train folder, val folder, ignore index) of dataset `name` at its SPECS size or `size`
    (width, height), with its SPECS number of validation images or `n_val` (the training images stay
    the same), written once into the cache."""
    n_train, default_val, default_size, ignore = SPECS[name]
    size = tuple(size or default_size)  # type: ignore[assignment]
    n_val = default_val if n_val is None else n_val
    if n_val < 1:
        raise ValueError(f"a validation set needs at least 1 image; got {n_val}")
    if name in ("road", "camvid11") and CAMVID.is_dir():
        # Evenly spaced picks of more frames than there are would repeat some.
        held = len(list_images(CAMVID / "val" / "images", (".png",)))
        if n_val > held:
            raise ValueError(f"{name}: camvid-mini's val/ holds {held} frames; asked for {n_val}")
    folder = name if size == default_size else f"{name}-{size[0]}x{size[1]}"
    folder += "" if n_val == default_val else f"-val{n_val}"
    base = (root or cache_root()) / folder
    train, val = base / "train", base / "val"
    if not (base / "done").exists():
        if name != "synthetic" and not CAMVID.is_dir():
            raise SystemExit(f"{name} needs camvid-mini at {CAMVID.resolve()}")
        import shutil

        shutil.rmtree(base, ignore_errors=True)
        if name == "synthetic":
            _write_synthetic(train, n_train, size, seed=1)
            _write_synthetic(val, n_val, size, seed=2)
        elif name == "thin":
            _write_thin(train, n_train, size, seed=1)
            _write_thin(val, n_val, size, seed=2)
        else:
            _write_camvid(name, CAMVID / "train", train, n_train, size)
            _write_camvid(name, CAMVID / "val", val, n_val, size)
        (base / "done").write_text("")
    return train, val, ignore
