"""`FolderDataset`: images and class-id masks from a `ROOT/images` + `ROOT/masks` folder.

All checks run when the dataset is built, so a bad folder fails before training starts, with one
`InputError` that names the offending file and says what to do. Images are only opened lazily for
their size at that point (decoding hundreds of photos up front would be slow); masks are decoded,
because the class-id checks need their values.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from edgeseg._evidence import ClassSet, require_data_classes
from edgeseg._guards import sequence_arg, size_arg
from edgeseg.data.class_ids import refuse_isolated_top_id, warn_if_smeared
from edgeseg.data.files import SkipLog, Skipped, list_images
from edgeseg.data.imageio import (
    IMAGE_SUFFIXES,
    LOSSY_MASK_SUFFIXES,
    UnreadableFile,
    display_size,
    lossy_mask_message,
    read_image,
    read_mask,
    resize_image,
    resize_mask,
)
from edgeseg.errors import InputError

__all__ = ["FolderDataset", "check_declared_classes", "classes_file", "read_class_names"]

_GRAY_HEADER_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
_MAX_LISTED = 3


def _listing(paths: list[Path]) -> str:
    """A few paths for an error message, with a count of the rest."""
    shown = ", ".join(f"'{p}'" for p in paths[:_MAX_LISTED])
    more = len(paths) - _MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def read_class_names(path: str | os.PathLike[str]) -> list[str]:
    """Read a classes.txt: one class name per non-empty line; ids follow the file order."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read class names file '{path}': {exc}") from exc
    names = [line.strip() for line in lines if line.strip()]
    if not names:
        raise InputError(f"class names file '{path}' is empty; write one class name per line")
    return names


def _present_values(mask: np.ndarray) -> np.ndarray:
    """The distinct values in a mask (bincount is much faster than np.unique for 8/16-bit masks)."""
    if mask.dtype in (np.uint8, np.uint16):
        return np.flatnonzero(np.bincount(mask.ravel()))
    return np.unique(mask)


def _labelled_count(mask: np.ndarray, ignore: int | None, classes: int, binary_255: bool) -> int:
    """Pixels of a mask that hold a class id (not the ignore id, not beyond the classes)."""
    m = np.where(mask == 255, 1, mask) if binary_255 else mask
    keep = m < classes
    if ignore is not None:
        keep &= m != ignore
    return int(np.count_nonzero(keep))


def classes_file(root: str | os.PathLike[str]) -> Path | None:
    """The classes.txt that names a dataset folder's classes: in ROOT, else in ROOT's parent."""
    for folder in (Path(root), Path(root).parent):
        if (folder / "classes.txt").is_file():
            return folder / "classes.txt"
    return None


def check_declared_classes(
    root: str | os.PathLike[str], model: ClassSet, fix: str, ignore_index: int | None = None
) -> None:
    """InputError when a folder's classes.txt (`classes_file`) lists another number of classes than
    `model` has (edgeseg._evidence.require_data_classes: one fewer is fine when the model's last class
    is `ignore_index`); nothing to check without one (a folder of images, or masks whose ids say
    nothing about a count). For folders whose masks are not read (calibration images)."""
    found = classes_file(root)
    if found is not None:
        require_data_classes(model, ClassSet.of(f"'{found}'", read_class_names(found)), ignore_index, fix)


class FolderDataset:
    """Image/mask pairs from `ROOT/images/<stem>.<png|jpg|tif|bmp>` and `ROOT/masks/<stem>.png`.

    `dataset[i]` is `(image, mask)`: uint8 HxWxC (C = `channels`) and int64 HxW class ids, both at
    `img_size` = (width, height) (image bilinear, mask nearest). No normalisation or augmentation.

    Args:
        root: the data folder.
        img_size: output (width, height); None keeps the images' own size, which must then be the
            same for all images.
        num_classes: number of classes; default from classes.txt, else the largest id in the masks + 1.
            A `ClassSet` (edgeseg._evidence) is a model's classes: the data must agree with them (a
            classes.txt of another count, or an id beyond them, is refused naming the model).
        ignore_index: mask value for unlabelled pixels, allowed beyond the class ids and kept as is.
        channels: 1 or 3 to force gray or RGB; default 1 only if every image is gray.
        class_names: names for the classes; default from classes.txt, else "class0", "class1", ...
        cache: keep decoded, resized arrays in memory after first use.
        skip_unreadable: an image or mask that cannot be decoded is left out (named in one
            `SkippedFileWarning` line each, listed in `skipped`) instead of refusing the folder: the
            batch rule of `eval`. Every image is then decoded while the dataset is built.

    `ROOT/classes.txt` is looked up in ROOT, then in ROOT's parent (a `train/` and `val/` pair often
    share one). Masks stored as 0/255 are read as 0/1 (`binary_255`). `labelled_pixels` counts the
    masks' labelled pixels (not the ignore id) in their own files, before any resize: the data's
    own evidence for a figure (edgeseg._evidence); `labelled_per_image` counts them per mask and
    `labelled_images` the masks with any.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        img_size: tuple[int, int] | None = None,
        num_classes: int | ClassSet | None = None,
        ignore_index: int | None = None,
        channels: int | None = None,
        class_names: list[str] | None = None,
        cache: bool = True,
        skip_unreadable: bool = False,
    ) -> None:
        self.root = Path(root)
        self.ignore_index = ignore_index
        self.cache = cache
        if channels not in (None, 1, 3):
            raise InputError(f"channels must be 1 or 3; got {channels!r}")
        if img_size is not None:
            img_size = size_arg(img_size)
        if class_names is not None:
            class_names = sequence_arg(class_names, "class_names", 'class_names=["background", "road"]')
        self._model = num_classes if isinstance(num_classes, ClassSet) else None
        if isinstance(num_classes, ClassSet):
            num_classes = num_classes.count
        if num_classes is not None and num_classes < 1:
            raise InputError(f"--classes must be at least 1; got {num_classes}")

        self.items: list[tuple[Path, Path]] = self._find_pairs()
        self._skips = SkipLog(len(self.items), "image") if skip_unreadable else None
        sizes, modes = self._read_headers()
        self.channels: int = channels or (1 if all(m in _GRAY_HEADER_MODES for m in modes) else 3)
        self._raw_masks: dict[int, np.ndarray] = {}
        masks = self._read_masks(sizes)
        self.img_size: tuple[int, int] = self._resolve_img_size(img_size, sizes)
        self.binary_255 = False
        self.num_classes, self.class_names = self._resolve_classes(num_classes, class_names, masks)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if self._skips is not None:
            self._drop_undecodable()

    @property
    def skipped(self) -> list[Skipped]:
        """The image/mask pairs left out as unreadable (`skip_unreadable=True` only)."""
        return list(self._skips.items) if self._skips is not None else []

    # -- construction helpers -------------------------------------------------------------------

    def _find_pairs(self) -> list[tuple[Path, Path]]:
        root = self.root
        if not root.exists():
            raise InputError(f"data folder '{root}' does not exist")
        if not root.is_dir():
            raise InputError(f"data folder '{root}' is not a folder")
        layout = f"expected '{root / 'images'}/<name>.png' and '{root / 'masks'}/<name>.png'"
        for sub in ("images", "masks"):
            if not (root / sub).is_dir():
                raise InputError(f"data folder '{root}' has no '{sub}/' subfolder; {layout}")

        images: dict[str, Path] = {}
        for path in list_images(root / "images"):
            if path.stem in images:
                raise InputError(
                    f"two images share the name '{path.stem}': '{images[path.stem]}' and '{path}'; "
                    "keep one of them"
                )
            images[path.stem] = path
        if not images:
            raise InputError(f"no images (.png/.jpg/.tif...) in '{root / 'images'}'")

        masks = {p.stem: p for p in list_images(root / "masks", (".png",))}
        missing = sorted(stem for stem in images if stem not in masks)
        lossy = [p for p in list_images(root / "masks", LOSSY_MASK_SUFFIXES) if p.stem in missing]
        if lossy:
            raise InputError(lossy_mask_message(lossy[0], "JPEG"))
        if missing:
            stem = missing[0]
            others = f" ({len(missing) - 1} more images have no mask)" if len(missing) > 1 else ""
            raise InputError(
                f"image '{images[stem]}' has no mask: expected '{root / 'masks' / (stem + '.png')}'{others}; "
                "add the mask (a PNG of class ids) or remove the image"
            )
        orphans = sorted(masks[stem] for stem in masks if stem not in images)
        if orphans:
            raise InputError(
                f"mask {_listing(orphans)} has no image in '{root / 'images'}' (same name, any of "
                f"{'/'.join(IMAGE_SUFFIXES)}); add the image or remove the mask"
            )
        return [(images[stem], masks[stem]) for stem in sorted(images)]

    def _read_headers(self) -> tuple[list[tuple[int, int]], list[str]]:
        """(width, height) and mode of every image from its header only."""
        sizes, modes, kept = [], [], []
        for image_path, mask_path in self.items:
            try:
                with Image.open(image_path) as img:
                    sizes.append(display_size(img))  # read_image turns the pixels the same way
                    modes.append(img.mode)
            except Exception as exc:
                error = UnreadableFile(
                    f"cannot read image '{image_path}': not an image (re-export or remove it; "
                    f"{type(exc).__name__}: {exc})"
                )
                if self._skips is None:
                    raise error from exc
                self._skips.add(image_path, error)
                continue
            kept.append((image_path, mask_path))
        self.items = kept
        if self._skips is not None:
            self._skips.check_any_done(len(kept))
        return sizes, modes

    def _read_masks(self, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
        masks = []
        kept, kept_sizes = [], []
        for (image_path, mask_path), (width, height) in zip(self.items, sizes, strict=True):
            try:
                mask = read_mask(mask_path)
            except UnreadableFile as exc:
                if self._skips is None:
                    raise
                self._skips.add(image_path, exc)
                continue
            if mask.shape != (height, width):
                raise InputError(
                    f"mask '{mask_path}' is {mask.shape[1]}x{mask.shape[0]} but its image '{image_path}' "
                    f"is {width}x{height}; a mask must have its image's size"
                )
            if self.cache:
                self._raw_masks[len(masks)] = mask
            masks.append(mask)
            kept.append((image_path, mask_path))
            kept_sizes.append((width, height))
        if self._skips is not None:
            self.items = kept
            sizes[:] = kept_sizes
            self._skips.check_any_done(len(kept))
        return masks

    def _resolve_img_size(
        self, img_size: tuple[int, int] | None, sizes: list[tuple[int, int]]
    ) -> tuple[int, int]:
        if img_size is not None:
            return (int(img_size[0]), int(img_size[1]))
        first = sizes[0]
        for (image_path, _), size in zip(self.items, sizes, strict=True):
            if size != first:
                raise InputError(
                    f"image '{image_path}' is {size[0]}x{size[1]} but '{self.items[0][0]}' is "
                    f"{first[0]}x{first[1]}; give --img-size to resize all images to one size"
                )
        return first

    def _find_classes_file(self) -> Path | None:
        return classes_file(self.root)

    def _resolve_classes(
        self, num_classes: int | None, class_names: list[str] | None, masks: list[np.ndarray]
    ) -> tuple[int, list[str]]:
        ignore = self.ignore_index
        names_file = self._find_classes_file()
        if class_names is not None:
            names: list[str] | None = list(class_names)
            names_source = "the given class names"
        elif names_file is not None:
            names = read_class_names(names_file)
            names_source = f"'{names_file}'"
        else:
            names, names_source = None, ""
        if names is not None and self._model is not None:
            require_data_classes(
                self._model,
                ClassSet.of(names_source, names),
                ignore,
                "give data labelled with the model's classes, or a model trained on these",
            )
            # A model whose last class is the data's ignore label: its name completes the data's.
            names = [*names, *self._model.names[len(names) :]]
        if names is not None and num_classes is not None and len(names) != num_classes:
            raise InputError(
                f"{names_source} lists {len(names)} classes but --classes is {num_classes}; "
                "make them agree (or drop --classes)"
            )
        declared = num_classes if num_classes is not None else (len(names) if names is not None else None)

        values = [_present_values(m) for m in masks]
        labelled = [v[v != ignore] if ignore is not None else v for v in values]
        # 0/255 masks are a common way to store binary masks (viewable as black/white images).
        if (
            ignore != 255
            and declared in (None, 2)
            and any(255 in v for v in labelled)
            and all(np.isin(v, (0, 255)).all() for v in labelled)
        ):
            self.binary_255 = True
            labelled = [np.where(v == 255, 1, v) for v in labelled]
            declared = 2

        if declared is None:
            top = max((int(v.max()) for v in labelled if v.size), default=None)
            if top is None:
                raise InputError(
                    f"every mask in '{self.root / 'masks'}' holds only the ignore index {ignore}; "
                    "there is nothing to learn"
                )
            refuse_isolated_top_id(labelled, top, ignore, self.root / "masks")
            warn_if_smeared(labelled, masks, ignore, self.root / "masks")
            declared = top + 1
        for (_, mask_path), v in zip(self.items, labelled, strict=True):
            bad = v[v >= declared]
            if bad.size and self._model is not None:
                model = self._model
                # One id beyond the model's in every mask (CamVid's 11, VOC's 255): an unlabelled mark.
                beyond = np.unique(np.concatenate([w[w >= declared] for w in labelled]))
                unlabelled = (
                    f"if {int(bad[0])} marks unlabelled pixels, pass --ignore-index {int(bad[0])}; else "
                    if ignore is None and beyond.size == 1
                    else ""
                )
                raise InputError(
                    f"mask '{mask_path}' holds class id {int(bad[0])}, beyond the {model.count} classes of "
                    f"{model.owner} (ids 0..{model.count - 1}"
                    f"{f', ignore index {ignore}' if ignore is not None else ''}); {unlabelled}give data "
                    "labelled with the model's classes, or a model trained on these"
                )
            if bad.size:
                hint = f"--ignore-index {int(bad[0])}" if ignore is None else "a different --ignore-index"
                raise InputError(
                    f"mask '{mask_path}' holds class id {int(bad[0])} but num_classes is {declared} "
                    f"(ids 0..{declared - 1}{f', ignore index {ignore}' if ignore is not None else ''}); "
                    f"set --classes to the number of classes, or {hint} if it marks unlabelled pixels"
                )
        if names is None:
            names = [f"class{i}" for i in range(declared)]
        self.labelled_per_image = [_labelled_count(m, ignore, declared, self.binary_255) for m in masks]
        self.labelled_pixels = sum(self.labelled_per_image)
        self.labelled_images = sum(c > 0 for c in self.labelled_per_image)
        return declared, names

    def _drop_undecodable(self) -> None:
        """Decode every image (a header can be whole while the pixels after it are cut off) and leave
        out the pairs that fail, keeping the decoded arrays when caching."""
        assert self._skips is not None  # skip_unreadable only
        kept, loaded = [], []
        for i, (image_path, mask_path) in enumerate(self.items):
            try:
                pair = self._load(i)
            except UnreadableFile as exc:
                self._skips.add(image_path, exc)
                continue
            kept.append((image_path, mask_path))
            loaded.append(pair)
        self.items = kept
        self._skips.check_any_done(len(kept))
        self._cache = dict(enumerate(loaded)) if self.cache else {}

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image_path, mask_path = self.items[index]
        image = resize_image(read_image(image_path, channels=self.channels), self.img_size)
        raw = self._raw_masks.pop(index, None)
        mask = resize_mask(raw if raw is not None else read_mask(mask_path), self.img_size)
        if self.binary_255:
            mask = np.where(mask == 255, 1, mask).astype(mask.dtype)
        return image, mask

    # -- access ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.items)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} items")
        index %= n
        cached = self._cache.get(index)
        if cached is None:
            cached = self._load(index)
            if self.cache:
                self._cache[index] = cached
        image, mask = cached
        # Copies, so a caller's in-place edits (augmentation) never reach the cache.
        return image.copy(), mask.astype(np.int64)

    def __repr__(self) -> str:
        return (
            f"FolderDataset('{self.root}', items={len(self)}, img_size={self.img_size}, "
            f"num_classes={self.num_classes}, channels={self.channels}, ignore_index={self.ignore_index})"
        )
