"""`edgeseg quickstart`: the main job on built-in data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli._app import JsonOpt, OverwriteOpt, app, check_paths, writable_dir
from edgeseg.cli.bench import print_report


@app.command()
def quickstart(
    out: Annotated[
        Path | None,
        typer.Option(
            callback=writable_dir,
            help="Folder for everything. Default: runs/quickstart (or quickstart2, ...).",
        ),
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs on the synthetic scenes.")] = 6,
    img_size: Annotated[str, typer.Option(help="Model input size N or WxH.")] = "128",
    targets: Annotated[
        str, typer.Option(help="target:precision list to export and measure, or all.")
    ] = "all",
    runs: Annotated[int, typer.Option(min=1, help="Timed calls per benchmark row.")] = 30,
    demo_frames: Annotated[int, typer.Option(min=0, help="Frames of the demo video (0: none).")] = 150,
    overwrite: OverwriteOpt = False,
    json_path: JsonOpt = None,
) -> None:
    """The whole story on built-in data: train a small U-Net, export every target this machine can,
    benchmark them against PyTorch and render a demo video. About five minutes on two CPU cores."""
    from edgeseg._paths import Output
    from edgeseg.bench.run import parse_targets
    from edgeseg.data import parse_img_size
    from edgeseg.quickstart import QuickstartConfig
    from edgeseg.quickstart import quickstart as run_quickstart

    check_paths([], json_path, Output("--out", out, "folder") if out else None, overwrite=overwrite)

    config = QuickstartConfig(
        out=str(out) if out else None,
        epochs=epochs,
        img_size=parse_img_size(img_size),
        targets=parse_targets(targets),
        runs=runs,
        demo_frames=demo_frames,
    )
    result = run_quickstart(config, log=lambda s: typer.echo(s, err=True))
    print_report(result.report, {})
    if result.demo:
        d = result.demo
        agree = (d.get("baseline") or {}).get("pixel_agreement")
        typer.echo(
            f"demo ({d['backend']}, {d['precision']}): {d['frames']} frames at {d['fps']:.1f} FPS end to end"
            f" (model {d['model_fps']:.1f} FPS)"
            + (f", pixel agreement with PyTorch {agree:.2%}" if agree is not None else "")
        )
    typer.echo(f"quickstart finished in {result.seconds:.0f} s; everything is in {result.out}:")
    typer.echo(f"  checkpoint {result.checkpoint} (val mIoU {result.train_miou:.4f})")
    for kind, path in result.files.items():
        typer.echo(f"  {kind:<13} {path}")
    typer.echo(f"  bundles       {result.out / 'bundles'}")
    if json_path is not None:
        from edgeseg._io import write_json

        write_json(
            json_path,
            {
                "out": str(result.out),
                "checkpoint": str(result.checkpoint),
                "seconds": round(result.seconds, 1),
                "files": {k: str(v) for k, v in result.files.items()},
                "demo": result.demo,
                **result.report.to_dict(),
            },
        )
