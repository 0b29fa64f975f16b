"""`edgeseg.export`: the one-call Python entry point, for a model file or a live `nn.Module`."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeseg.errors import InputError
from edgeseg.exporters import ExportConfig, ExportResult
from edgeseg.exporters import export as export_file
from edgeseg.exporters.source import SourceFacts

if TYPE_CHECKING:
    from torch import nn

__all__ = ["export"]


def export(
    model: str | os.PathLike[str] | nn.Module,
    *,
    target: str,
    precision: str = "fp32",
    classes: int | Sequence[str] | None = None,
    img_size: tuple[int, int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    color_order: str = "RGB",
    ignore_index: int | None = None,
    log: Callable[[str], None] | None = None,
    **options: Any,
) -> ExportResult:
    """Export `model` for `target` at `precision` and check its parity, as `edgeseg export` does.

    `model` is a model file (a checkpoint or a file from `edgeseg.import_model`), or any
    `torch.nn.Module` with the facts `import_model` needs (`classes`, `img_size`, `mean`, `std`,
    `color_order`, and `ignore_index` if its labelled data has one) and `out=`, the bundle folder.
    `ignore_index` applies to a model file too (the label id `val_data` leaves unlabelled). A module
    is captured into a temporary model file for the export and that file is removed afterwards; to
    keep a PyTorch baseline for `eval`, `benchmark` or `demo --baseline`, write it with
    `edgeseg.import_model` and export the file.
    Other keyword arguments are `ExportConfig` fields (val_data, calib, dynamic, max_drop, ...).

    >>> edgeseg.export("runs/x/best.pt", target="openvino", precision="int8")  # doctest: +SKIP
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        if any(v is not None for v in (classes, mean, std)):
            raise InputError("classes, mean and std describe a module; a model file carries its own")
        return export_file(
            model, _config(target, precision, img_size, options), facts=_data(ignore_index), log=log
        )
    if options.get("out") is None:
        raise InputError("exporting a module needs out=, the bundle folder to write")
    if classes is None or img_size is None or mean is None or std is None:
        raise InputError("exporting a module needs classes, img_size, mean and std (see import_model)")
    from edgeseg.models.imported import import_model

    with tempfile.TemporaryDirectory(prefix="edgeseg-import-") as tmp:
        path = import_model(
            model,
            Path(tmp) / "model.pt",
            classes=classes,
            img_size=img_size,
            mean=mean,
            std=std,
            color_order=color_order,
            ignore_index=ignore_index,
        )
        return export_file(path, _config(target, precision, None, options), log=log)


def _data(ignore_index: int | None) -> Any:

    return SourceFacts(ignore_index=ignore_index) if ignore_index is not None else None


def _config(target: str, precision: str, img_size: tuple[int, int] | None, options: dict[str, Any]) -> Any:
    try:
        return ExportConfig(target=target, precision=precision, img_size=img_size, **options)
    except TypeError as exc:
        raise InputError(f"edgeseg.export: {exc}; options are ExportConfig's fields") from None
