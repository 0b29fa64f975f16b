"""The options that describe an ONNX file from another framework, shared by export, eval, predict
and benchmark: what its graph cannot say about itself (classes, normalisation, channel order); and
the data option every model takes (--ignore-index: edgeseg.exporters.source_open decides which
option a source takes)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgeseg.errors import InputError

if TYPE_CHECKING:
    from edgeseg.exporters.source import SourceFacts

ClassesOpt = Annotated[
    str | None,
    typer.Option(help="ONNX without edgeseg metadata: class names (road,car,sky) or their count."),
]
MeanOpt = Annotated[
    str | None, typer.Option(help="ONNX without edgeseg metadata: per-channel mean, e.g. 0.485,0.456,0.406.")
]
StdOpt = Annotated[
    str | None, typer.Option(help="ONNX without edgeseg metadata: per-channel std, e.g. 0.229,0.224,0.225.")
]
IgnoreIndexOpt = Annotated[
    int | None,
    typer.Option(
        min=0, help="The label id of unlabelled pixels in the data (e.g. 11, 255); overrides the model's."
    ),
]
ImgSizeOpt = Annotated[
    str | None, typer.Option(help="ONNX with a dynamic input and no edgeseg metadata: size WxH.")
]
ColorOrderOpt = Annotated[
    str | None, typer.Option(help="ONNX without edgeseg metadata: the input's channels, RGB, BGR or GRAY.")
]


def _floats(text: str | None, flag: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(
            f"{flag} takes comma-separated numbers, e.g. 0.485,0.456,0.406; got '{text}'"
        ) from None
    if not values or not all(math.isfinite(v) for v in values):
        raise InputError(f"{flag} takes finite comma-separated numbers; got '{text}'")
    return values


def _classes(text: str | None) -> int | tuple[str, ...] | None:
    if text is None:
        return None
    text = text.strip()
    if text.isdigit():
        return int(text)
    names = tuple(n.strip() for n in text.split(","))
    if not all(names):
        raise InputError(f"--classes takes a count or comma-separated names, none empty; got '{text}'")
    return names


def parse_facts(
    classes: str | None,
    mean: str | None,
    std: str | None,
    color_order: str | None,
    ignore_index: int | None = None,
) -> SourceFacts:
    """The options as `SourceFacts`; InputError (one line) for a malformed value."""
    from edgeseg.exporters.source import SourceFacts

    return SourceFacts(
        classes=_classes(classes),
        mean=_floats(mean, "--mean"),
        std=_floats(std, "--std"),
        color_order=color_order.strip().upper() if color_order else None,
        ignore_index=ignore_index,
    )


def segmenter_options(facts: SourceFacts, img_size: tuple[int, int] | None) -> dict[str, Any]:
    """`Segmenter` overrides for the facts given (none for those left out)."""
    options: dict[str, Any] = {}
    if img_size is not None:
        options["img_size"] = img_size
    for key in ("mean", "std", "color_order"):
        if getattr(facts, key) is not None:
            options[key] = getattr(facts, key)
    if isinstance(facts.classes, int):
        options["classes"] = facts.classes
    elif facts.classes is not None:
        options["class_names"] = facts.classes
    return options
