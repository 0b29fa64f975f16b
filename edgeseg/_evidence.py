"""What an accuracy figure or gate stands on, checked in one place for every command.

Two rules, each enforced by one function that every figure and every gate goes through:

- **Evidence** (`require_evidence`): a figure (mIoU, Dice, pixel accuracy, an mIoU drop, pixel
  agreement) is only reported, and a gate (`--max-drop`, `--max-class-drop`) only passes, when it is
  measured on at least `MIN_IMAGES` image and `MIN_PIXELS` pixels (labelled pixels for figures
  against ground truth, compared pixels for agreement between two models), counted both at the
  resolution the figure was computed at and in the data's own files (a 1x1 mask upscaled to the
  model's size is still one pixel of evidence), and when it is a finite number. A per-class gate
  needs at least one judged class (`MIN_CLASS_PIXELS` labelled pixels of it, see
  edgeseg.evaluation.classwise). Otherwise InputError names what is missing (exit code 2): a gate
  without evidence does not pass, and a figure without evidence is not a figure.
- **Classes** (`require_same_classes`): where two models, or a model and labelled data, meet (eval,
  export's --val-data and --calib, parity, benchmark --data, the demo's baseline and ground truth),
  their class counts must agree; InputError names both sides and what to do. Labelled data may
  name one class fewer than a model whose last class is the data's ignore label (a "void" class
  trained as a class, as CamVid's 11 + void models are: `require_data_classes`).

NumPy only (no torch), so every layer can use it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from edgeseg.errors import InputError

__all__ = [
    "MIN_CLASS_PIXELS",
    "MIN_IMAGES",
    "MIN_PIXELS",
    "ClassSet",
    "Evidence",
    "labelled_hint",
    "require_data_classes",
    "require_evidence",
    "require_same_classes",
]

MIN_IMAGES = 1  # images with at least one counted pixel
MIN_PIXELS = 1024  # counted pixels behind any figure: one 32x32 image's worth
MIN_CLASS_PIXELS = 64  # labelled pixels of a class before its IoU can be judged (an 8x8 patch)


@dataclass(frozen=True)
class Evidence:
    """What a figure is measured on.

    Attributes:
        what: the pixels counted, in words: "labelled pixels", "pixels compared with PyTorch".
        pixels: pixels counted at the resolution the figure was computed at.
        images: images with at least one counted pixel.
        data_pixels: the same pixels counted in the data's own files, when known (None: not known,
            e.g. synthetic frames, which are made at the model's size).
        hint: what the user can do, appended to a refusal (e.g. "is every pixel --ignore-index 11?").
    """

    what: str
    pixels: int
    images: int
    data_pixels: int | None = None
    hint: str = ""

    def missing(self) -> str | None:
        """What is missing, in words, or None when the evidence meets the minimum."""
        if self.images < MIN_IMAGES or self.pixels == 0:
            return f"no {self.what} in any image (at least {MIN_PIXELS} needed)"
        if self.pixels < MIN_PIXELS:
            return f"{self.pixels} {self.what} (at least {MIN_PIXELS} needed)"
        if self.data_pixels is not None and self.data_pixels < MIN_PIXELS:
            return (
                f"{self.data_pixels} {self.what} in the data's own files, resized to {self.pixels} "
                f"(at least {MIN_PIXELS} needed)"
            )
        return None

    def refusal(self, figure: str) -> str | None:
        """The one line that refuses `figure` (what is missing and the hint), or None when the
        minimum is met: for figures that are left out, not fatal, without evidence (the demo's)."""
        missing = self.missing()
        if missing is None:
            return None
        hint = f"; {self.hint}" if self.hint else ""
        return f"{figure}: too little evidence, {missing}{hint}"

    def require(self, figure: str) -> None:
        """InputError naming `figure`, what is missing and the hint, unless the minimum is met (for
        data checked before a figure is computed)."""
        refusal = self.refusal(figure)
        if refusal is not None:
            raise InputError(refusal)


def require_evidence(figure: str, value: float | None, evidence: Evidence) -> float:
    """`value` as a float when `evidence` meets the minimum and `value` is finite; InputError
    otherwise, naming `figure` (e.g. "mIoU on --data 'val'"), what is missing and `evidence.hint`."""
    evidence.require(figure)
    hint = f"; {evidence.hint}" if evidence.hint else ""
    number = float("nan") if value is None else float(value)
    if not math.isfinite(number):
        raise InputError(
            f"{figure} is not a finite number ({value!r}) on {evidence.pixels} {evidence.what}{hint}"
        )
    return number


def labelled_hint(ignore_index: int | None) -> str:
    """What to do about labelled data with too few labelled pixels."""
    ignored = f"is every pixel the ignore index {ignore_index}? " if ignore_index is not None else ""
    return f"{ignored}give data with more labelled pixels"


@dataclass(frozen=True)
class ClassSet:
    """The classes one side of a meeting has: who (`owner`, e.g. "the model 'runs/x/best.pt'" or
    "'data/val/classes.txt'") and their names in id order."""

    owner: str
    names: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.names)

    def describe(self) -> str:
        shown = ", ".join(self.names[:6]) + (", ..." if self.count > 6 else "")
        return f"{self.owner} has {self.count} classes ({shown})"

    @classmethod
    def of(cls, owner: str, names: Sequence[str]) -> ClassSet:
        return cls(owner, tuple(str(n) for n in names))


def require_same_classes(first: ClassSet, second: ClassSet, fix: str) -> None:
    """InputError naming both sides and `fix` when their class counts differ. (Names are shown but
    not compared: generated names like class0 or c0 say nothing about what an id means.)"""
    if first.count != second.count:
        raise InputError(f"{first.describe()} but {second.describe()}; {fix}")


def require_data_classes(model: ClassSet, data: ClassSet, ignore_index: int | None, fix: str) -> None:
    """Labelled `data` against a `model`'s classes: the same count, or one fewer when the model's last
    class is the data's ignore label (a model with a "void" class, labels that mark void as
    unlabelled: those pixels are skipped, the void class has no truth to be scored on). Otherwise
    InputError naming both, `fix`, and, for a model with exactly one more class, the --ignore-index
    that makes the two agree."""
    if model.count == data.count or (model.count == data.count + 1 and ignore_index == data.count):
        return
    if model.count == data.count + 1:
        void = data.count
        fix = (
            f"if the model's class {void} ('{model.names[void]}') is what this data leaves unlabelled, "
            f"pass --ignore-index {void}; else {fix}"
        )
    require_same_classes(model, data, fix)
