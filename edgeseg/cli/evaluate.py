"""`edgeseg eval`: a model's scores on a labelled folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli._app import JsonOpt, OverwriteOpt, app, check_paths, existing_dir, fmt_score, write_json_opt
from edgeseg.cli._facts import (
    ClassesOpt,
    ColorOrderOpt,
    ImgSizeOpt,
    MeanOpt,
    StdOpt,
    parse_facts,
    segmenter_options,
)
from edgeseg.cli._help import backend_help, model_help
from edgeseg.errors import InputError


@app.command("eval")
def eval_(
    model: Annotated[Path, typer.Argument(help=model_help("Model to score"))],
    data: Annotated[Path, typer.Option(help="Dataset folder (images/ + masks/).")],
    ignore_index: Annotated[
        int | None, typer.Option(min=0, help="Override the model's ignore label.")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    backend: Annotated[str, typer.Option(help=backend_help())] = "auto",
    device: Annotated[
        str | None, typer.Option(help="auto/cpu/cuda for checkpoints; the backend's device else.")
    ] = None,
    img_size: ImgSizeOpt = None,
    classes: ClassesOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    color_order: ColorOrderOpt = None,
    overwrite: OverwriteOpt = False,
    json_path: JsonOpt = None,
) -> None:
    """Score a model on a labelled folder: mIoU, per-class IoU, Dice, pixel accuracy."""
    from rich.table import Table

    from edgeseg._text import console
    from edgeseg.data import parse_img_size
    from edgeseg.evaluation import evaluate

    check_paths([("MODEL", model), ("--data", data)], json_path, overwrite=overwrite)
    existing_dir(data, "--data")
    facts = parse_facts(classes, mean, std, color_order)
    options = segmenter_options(facts, parse_img_size(img_size) if img_size else None)
    from edgeseg.runtimes import artifact_kind

    if model.is_dir() or artifact_kind(model) != "checkpoint":
        report = evaluate.evaluate_artifact(
            model,
            data,
            backend=backend,
            device=device,
            ignore_index=ignore_index,
            batch_size=batch_size,
            **options,
        )
    else:
        if options:
            raise InputError(
                "--img-size, --classes, --mean, --std and --color-order apply to an ONNX file only; "
                f"checkpoint '{model}' holds its own"
            )
        from edgeseg.models.checkpoint import load_checkpoint

        report = evaluate.evaluate_checkpoint(
            load_checkpoint(model),
            data,
            ignore_index=ignore_index,
            batch_size=batch_size,
            device=device or "auto",
        )
    m = report.metrics
    table = Table(
        title=f"{model} on {data} ({report.images} images at {report.img_size[0]}x{report.img_size[1]})"
    )
    table.add_column("class")
    table.add_column("IoU", justify="right")
    table.add_column("Dice", justify="right")
    for name, iou, dice in zip(report.class_names, m.iou_per_class, m.dice_per_class, strict=True):
        table.add_row(name, fmt_score(iou), fmt_score(dice))
    out = console()
    out.print(table)
    out.print(f"mIoU {m.miou:.4f}   Dice {m.dice:.4f}   pixel accuracy {m.pixel_accuracy:.4f}")
    write_json_opt(json_path, {"model": str(model), **report.to_dict()})
    from edgeseg.data import finish_batch

    finish_batch(report.skipped, report.images, "scored (the figures above are theirs)")
