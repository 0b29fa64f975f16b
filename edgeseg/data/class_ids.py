"""Checks on the class ids a folder's masks hold, when the class count is inferred from them.

An inferred count is only as good as the ids: a lossy mask adds an id per edge shade, and an
"unlabelled" mark such as VOC's 255 becomes the highest class. Both would silently make a model of
the wrong number of classes, so they are caught here, before anything is trained.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from edgeseg.errors import InputError

__all__ = ["refuse_isolated_top_id", "warn_if_smeared"]

_SLIVER = 0.005  # share of the labelled pixels below which an id looks like compression noise
_GAP_CLASSES = 8  # unused ids below an isolated top id that still pass as classes absent from the data


def warn_if_smeared(
    labelled: list[np.ndarray], masks: list[np.ndarray], ignore: int | None, folder: Path
) -> None:
    """Warn when the class count is about to be inferred from masks that look smeared: many ids
    that each cover a sliver of the pixels are what a mask saved lossily (or resized bilinearly)
    and converted back to PNG holds, and each of them would silently become a class."""
    ids = np.unique(np.concatenate([v for v in labelled if v.size] or [np.zeros(0, np.int64)]))
    if ids.size < 8:
        return
    counts: dict[int, int] = {}
    for m in masks:
        values, n = np.unique(m, return_counts=True)
        for v, c in zip(values.tolist(), n.tolist(), strict=True):
            if v != ignore:
                counts[v] = counts.get(v, 0) + c
    total = sum(counts.values())
    slivers = [v for v, c in counts.items() if c < total * _SLIVER]
    if len(slivers) * 2 >= len(counts):
        warnings.warn(
            f"the masks in '{folder}' hold {len(counts)} distinct ids, {len(slivers)} of them on under "
            f"{_SLIVER:.2%} of the pixels each, as masks once saved lossily (JPEG) or resized smoothly "
            "do; each becomes a class: pass --classes (ids beyond it are then reported) or re-save the "
            "masks as PNGs of class ids",
            stacklevel=4,
        )


def refuse_isolated_top_id(labelled: list[np.ndarray], top: int, ignore: int | None, folder: Path) -> None:
    """Refuse to infer the class count from an id that stands apart from all others.

    Masks whose ids are 0..k plus one far larger value (255 around the objects in VOC-style masks,
    0/1/255 binary masks, 65535 in 16-bit ones) mark unlabelled pixels with that value: inferred as
    a class, it would make a model of top+1 classes of which most never occur. Refused when the ids
    left unused between the others and it outnumber both the ids up to the others' largest and
    _GAP_CLASSES (a few classes absent from a small dataset are normal: ids 0, 1 and 7 stay 8
    classes)."""
    below = [v[v < top] for v in labelled]
    rest = max((int(v.max()) for v in below if v.size), default=-1)
    if rest < 0 or top - rest - 1 <= max(rest + 1, _GAP_CLASSES):  # one id, or no wide gap below the top
        return
    raise InputError(
        f"the masks in '{folder}' hold ids up to {rest}, then {top}: counting {top} as a class would make a "
        f"{top + 1}-class model whose ids {rest + 1}..{top - 1} never occur; if {top} marks unlabelled "
        f"pixels (VOC-style borders), pass --ignore-index {top}"
        + (f" (the ignore index given, {ignore}, is another value)" if ignore is not None else "")
        + f"; if it is a class, give the class count with --classes {top + 1} or a classes.txt"
    )
