"""`edgeseg export`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg._paths import Output, check_outputs
from edgeseg.cli._app import JsonOpt, app, existing_dir, refuse_unused, writable_dir, write_json_opt
from edgeseg.cli._facts import ClassesOpt, ColorOrderOpt, IgnoreIndexOpt, MeanOpt, StdOpt, parse_facts
from edgeseg.cli._help import calib_method_help, targets_help


@app.command()
def export(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path, typer.Argument(help="Checkpoint (.pt), or an ONNX file (.onnx, e.g. from another framework).")
    ],
    target: Annotated[str, typer.Option(help=targets_help())],
    precision: Annotated[str, typer.Option(help="fp32, fp16 or int8 (see the support matrix).")] = "fp32",
    img_size: Annotated[
        str | None,
        typer.Option(help="Input size N or WxH. Default: the training size (an ONNX file: its fixed size)."),
    ] = None,
    dynamic: Annotated[bool, typer.Option(help="Dynamic batch, height and width.")] = False,
    opset: Annotated[int, typer.Option(help="ONNX opset (18..23).")] = 18,
    val_data: Annotated[
        Path | None, typer.Option(help="Labelled folder for the parity check. Default: synthetic images.")
    ] = None,
    parity_images: Annotated[
        int, typer.Option(min=1, help="Synthetic images for parity without --val-data.")
    ] = 8,
    out: Annotated[
        Path | None,
        typer.Option(callback=writable_dir, help="Bundle folder. Default: beside the checkpoint."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing bundle at --out and an existing --json file.")
    ] = False,
    calib: Annotated[
        Path | None,
        typer.Option(
            help="INT8 calibration images (folder or dataset folder). Default: the checkpoint's "
            "training folder (synthetic scenes for a model trained on them or a source that records none)."
        ),
    ] = None,
    calib_method: Annotated[str, typer.Option(help=calib_method_help())] = "minmax",
    max_drop: Annotated[
        float | None,
        typer.Option(
            help="INT8: most mIoU points to lose vs FP32 on --val-data; tries remedies, else fails."
        ),
    ] = None,
    max_class_drop: Annotated[
        float | None,
        typer.Option(
            help="INT8: most IoU points any class (0.1%+ of the labelled pixels) may lose on --val-data."
        ),
    ] = None,
    batch: Annotated[
        int | None,
        typer.Option(min=1, help="TensorRT with --dynamic: largest batch of the engine's profile (8)."),
    ] = None,
    classes: ClassesOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    color_order: ColorOrderOpt = None,
    ignore_index: IgnoreIndexOpt = None,
    fuse_prepost: Annotated[
        bool,
        typer.Option(
            help="Normalisation and argmax in the graph (uint8 frames in, ids out); TensorRT's also resizes."
        ),
    ] = False,
    json_path: JsonOpt = None,
) -> None:
    """Export a checkpoint or an ONNX file to a self-describing bundle and check it against its FP32
    reference (the PyTorch model, or the source ONNX on ONNX Runtime)."""
    from edgeseg.data import parse_img_size
    from edgeseg.exporters import ExportConfig
    from edgeseg.exporters import export as run_export

    refuse_unused(ctx, ["parity_images"], val_data is None, "with --val-data (parity runs on its images)")
    facts = parse_facts(classes, mean, std, color_order, ignore_index)
    # The bundle folder is checked by the export itself (edgeseg.exporters.export), for every caller;
    # here only what the command adds, the JSON summary, against the inputs and the bundle.
    check_outputs(
        [("CHECKPOINT", checkpoint), ("--val-data", val_data), ("--calib", calib), ("--out", out)],
        [Output("--json", json_path) if json_path else None],
        overwrite=overwrite,
    )
    existing_dir(val_data, "--val-data")
    existing_dir(calib, "--calib", "a folder of images, or a dataset folder")
    result = run_export(
        checkpoint,
        ExportConfig(
            target=target,
            precision=precision,
            img_size=parse_img_size(img_size) if img_size else None,
            dynamic=dynamic,
            opset=opset,
            val_data=str(val_data) if val_data else None,
            out=str(out) if out else None,
            overwrite=overwrite,
            parity_images=parity_images,
            calib=str(calib) if calib else None,
            calib_method=calib_method.strip().lower(),
            max_drop=max_drop,
            max_class_drop=max_class_drop,
            batch=batch,
            fuse_prepost=fuse_prepost,
        ),
        facts=facts,
        log=typer.echo,
        progress=True,
    )
    typer.echo(f"wrote {result.bundle} ({result.seconds:.1f} s)")
    typer.echo(result.parity.summary())
    drop = (result.manifest.quantization or {}).get("miou_drop_points")
    if drop is not None:
        ref = "PyTorch" if result.parity.reference == "PyTorch" else "the source ONNX"
        typer.echo(f"mIoU drop vs FP32 ({ref}) on --val-data: {drop:.2f} points")
    for note in result.notes:
        typer.echo(note)
    write_json_opt(json_path, result.to_dict())
