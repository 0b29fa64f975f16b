"""Small datasets for the training comparisons, derived from ../shared/data/camvid-mini and from
edgeseg's synthetic scenes, written to a cache folder (never into the source data).

    road      24 train / 12 val frames, grayscale, 128x128, binary: road (CamVid id 3) vs the rest
              (void pixels count as "rest": a binary mask of a road has no unlabelled pixels)
    camvid11  24 train / 12 val frames, RGB, 192x144, the 11 classes, void = ignore id 11
    synthetic 32 train / 16 val scenes of edgeseg's synthetic generator, 96x96, 4 classes

The sizes are small on purpose: a 40-epoch run of a depth-4, width-16 U-Net takes a few minutes on
two CPU cores.

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
DATASETS = ("road", "camvid11", "synthetic")
# name -> (frames train, frames val, (width, height), ignore index or None)
SPECS = {
    "road": (24, 12, (128, 128), None),
    "camvid11": (24, 12, (192, 144), 11),
    "synthetic": (32, 16, (96, 96), None),
}
ROAD_ID = 3  # classes.txt: sky, building, pole, road, ...


def cache_root() -> Path:
    return Path(tempfile.gettempdir()) / "edgeseg-bench-data"


def _evenly(paths: list[Path], n: int) -> list[Path]:
    idx = np.linspace(0, len(paths) - 1, n).round().astype(int)
    return [paths[i] for i in idx]


def _write_camvid(name: str, src: Path, dst: Path, n: int) -> None:
    _, _, size, _ = SPECS[name]
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


def _write_synthetic(dst: Path, n: int, seed: int) -> None:
    from edgeseg.data import SYNTHETIC_CLASSES, SyntheticDataset

    ds = SyntheticDataset(n, img_size=SPECS["synthetic"][2], seed=seed)
    (dst / "images").mkdir(parents=True)
    (dst / "masks").mkdir()
    for i in range(n):
        image, mask = ds[i]
        Image.fromarray(image).save(dst / "images" / f"{i:04d}.png")
        Image.fromarray(mask.astype(np.uint8)).save(dst / "masks" / f"{i:04d}.png")
    (dst / "classes.txt").write_text("\n".join(SYNTHETIC_CLASSES) + "\n")


def make_dataset(name: str, root: Path | None = None) -> tuple[Path, Path, int | None]:
    """(train folder, val folder, ignore index) of dataset `name`, written once into the cache."""
    n_train, n_val, _, ignore = SPECS[name]
    base = (root or cache_root()) / name
    train, val = base / "train", base / "val"
    if not (base / "done").exists():
        if name != "synthetic" and not CAMVID.is_dir():
            raise SystemExit(f"{name} needs camvid-mini at {CAMVID.resolve()}")
        import shutil

        shutil.rmtree(base, ignore_errors=True)
        if name == "synthetic":
            _write_synthetic(train, n_train, seed=1)
            _write_synthetic(val, n_val, seed=2)
        else:
            _write_camvid(name, CAMVID / "train", train, n_train)
            _write_camvid(name, CAMVID / "val", val, n_val)
        (base / "done").write_text("")
    return train, val, ignore
