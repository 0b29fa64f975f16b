"""`edgeseg doctor`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli._app import JsonOpt, app, existing_dir, write_json_opt
from edgeseg.cli._facts import ClassesOpt, ColorOrderOpt, MeanOpt, StdOpt, parse_facts


@app.command()
def doctor(
    model: Annotated[Path, typer.Argument(help="Checkpoint (.pt), ONNX file (.onnx) or bundle folder.")],
    target: Annotated[
        str | None,
        typer.Option(help="Check for this target only. Default: every target (a bundle: its own)."),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(help="Check for fp32, fp16 or int8 only. Default: every precision (a bundle: its own)."),
    ] = None,
    img_size: Annotated[
        str | None, typer.Option(help="Input size N or WxH. Default: the training size (ONNX: its own).")
    ] = None,
    dynamic: Annotated[
        bool, typer.Option(help="Check the graph export --dynamic converts (dynamic batch, height, width).")
    ] = False,
    calib: Annotated[
        Path | None,
        typer.Option(
            help="Images for the FP16 activation ranges (folder or dataset folder). Default: synthetic."
        ),
    ] = None,
    images: Annotated[
        int, typer.Option(min=1, help="Images the FP16 activation ranges are measured on.")
    ] = 4,
    classes: ClassesOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    color_order: ColorOrderOpt = None,
    json_path: JsonOpt = None,
) -> int:
    """Check a model's FP32 ONNX graph for the known export traps before anything is built: Resize
    sizes and attributes, the stride, ops INT8 keeps in float, FP16 overflow, unsupported or slow ops.
    Exit code 0 without an error-level finding, 1 with one, 2 for bad input."""
    from edgeseg.data import parse_img_size
    from edgeseg.exporters.doctor_run import diagnose

    existing_dir(calib, "--calib", "a folder of images, or a dataset folder")
    facts = parse_facts(classes, mean, std, color_order)
    report = diagnose(
        model,
        target=target,
        precision=precision,
        img_size=parse_img_size(img_size) if img_size else None,
        calib=calib,
        images=images,
        facts=facts if facts.given() else None,
        dynamic=dynamic or None,
    )
    typer.echo(f"doctor: {report.checked}, for {', '.join(report.targets)} at {', '.join(report.precisions)}")
    for finding in report.findings:
        typer.echo(finding.line())
    counts = report.to_dict()["counts"]
    typer.echo(
        f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} note(s)"
        if report.findings
        else "no findings"
    )
    write_json_opt(json_path, report.to_dict())
    return 1 if report.errors else 0
