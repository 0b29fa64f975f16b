"""Train/validation splits: `split_indices` and the `DatasetView` that applies augmentation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from edgeseg.data.transforms import Augment
from edgeseg.errors import InputError

__all__ = ["DatasetView", "SegmentationDataset", "split_indices"]


class SegmentationDataset(Protocol):
    """What training and evaluation need from a dataset (FolderDataset and SyntheticDataset have it)."""

    class_names: list[str]
    num_classes: int
    channels: int
    ignore_index: int | None
    img_size: tuple[int, int]

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]: ...


def split_indices(n: int, val_fraction: float = 0.2, seed: int = 0) -> tuple[list[int], list[int]]:
    """Split range(n) into (train, val) index lists, each sorted, by a shuffle seeded with `seed`.

    Validation gets round(n * val_fraction) items, at least 1 and at most n - 1.
    """
    if n < 2:
        raise InputError(
            f"need at least 2 samples to split into training and validation; got {n} "
            "(add data or give a separate validation folder)"
        )
    if not 0.0 < val_fraction < 1.0:
        raise InputError(f"validation fraction must be between 0 and 1; got {val_fraction}")
    n_val = min(n - 1, max(1, round(n * val_fraction)))
    order = np.random.default_rng(seed).permutation(n)
    return sorted(int(i) for i in order[n_val:]), sorted(int(i) for i in order[:n_val])


class DatasetView:
    """The items `indices` of `base`, optionally augmented by `transform`.

    Item j is `base[indices[j]]` passed through `transform` with a generator seeded by
    (seed, epoch, indices[j]): reproducible, different every epoch, and independent of which
    DataLoader worker draws it. Call `set_epoch` at the start of each epoch. (With persistent
    DataLoader workers, each worker holds its own copy, so the epoch must reach them another way.)
    """

    def __init__(
        self,
        base: SegmentationDataset,
        indices: Sequence[int],
        transform: Augment | None = None,
        seed: int = 0,
    ) -> None:
        if seed < 0:
            raise ValueError(f"seed must be non-negative; got {seed}")
        n = len(base)
        bad = [i for i in indices if not 0 <= i < n]
        if bad:
            raise IndexError(f"indices {bad[:3]} out of range for a dataset of {n} items")
        self.base = base
        self.indices = [int(i) for i in indices]
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose augmentations `__getitem__` draws."""
        if epoch < 0:
            raise ValueError(f"epoch must be non-negative; got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        index = self.indices[j]
        image, mask = self.base[index]
        if self.transform is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image, mask = self.transform(image, mask, rng)
        return image, mask

    @property
    def class_names(self) -> list[str]:
        return self.base.class_names

    @property
    def num_classes(self) -> int:
        return self.base.num_classes

    @property
    def channels(self) -> int:
        return self.base.channels

    @property
    def ignore_index(self) -> int | None:
        return self.base.ignore_index

    @property
    def img_size(self) -> tuple[int, int]:
        return self.base.img_size

    def __repr__(self) -> str:
        return (
            f"DatasetView({self.base!r}, items={len(self)}, transform={self.transform!r}, seed={self.seed})"
        )
