"""`edgeseg demo`: a thin command over `edgeseg.demo.run_demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli._app import (
    JsonOpt,
    OverwriteOpt,
    ResizeKernelOpt,
    app,
    check_paths,
    refuse_unused,
    writable_dir,
    writable_file,
)
from edgeseg.cli._help import backend_help, model_help
from edgeseg.data import parse_frame_size


@app.command()
def demo(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help=model_help())],
    source: Annotated[
        str,
        typer.Option(
            help="synthetic, camera index (0), video file, image folder, rtsp://... or GStreamer pipeline."
        ),
    ] = "synthetic",
    backend: Annotated[str, typer.Option(help=backend_help())] = "auto",
    device: Annotated[str | None, typer.Option(help="Backend device (cpu, cuda, GPU, AUTO, ...).")] = None,
    threads: Annotated[
        int | None,
        typer.Option(min=0, help="Model threads. Default: all cores but one; 0: the runtime's default."),
    ] = None,
    resize_kernel: ResizeKernelOpt = "pillow",
    baseline: Annotated[
        Path | None,
        typer.Option(
            help="Source to compare with: a checkpoint (PyTorch) or an .onnx (ONNX Runtime). "
            "Default: the bundle's source."
        ),
    ] = None,
    compare: Annotated[
        bool, typer.Option(help="Compare with the source (PyTorch, or ONNX Runtime) on sampled frames.")
    ] = True,
    headless: Annotated[bool, typer.Option(help="No window (for machines without a screen).")] = False,
    save: Annotated[
        Path | None,
        typer.Option(callback=writable_file, help="Write the rendered stream to this .mp4 or .avi."),
    ] = None,
    serve: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Serve a live browser view on this port (see --bind)."),
    ] = None,
    bind: Annotated[str, typer.Option(help="Address --serve listens on.")] = "127.0.0.1",
    max_frames: Annotated[int | None, typer.Option(min=1, help="Stop after N frames.")] = None,
    frame_size: Annotated[str, typer.Option(help="Synthetic source frame size WxH.")] = "640x480",
    fps: Annotated[
        float | None,
        typer.Option(min=0.1, help="Pace the synthetic source like a camera. Default: as fast as used."),
    ] = None,
    loop: Annotated[bool, typer.Option(help="Replay a video file or folder.")] = False,
    stall_timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds without a frame before reopening.")
    ] = 5.0,
    retry_seconds: Annotated[float, typer.Option(min=0.0, help="How long to retry a lost source.")] = 10.0,
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="Overlay opacity.")] = 0.5,
    hud: Annotated[bool, typer.Option(help="Draw the figures (FPS, timings, agreement); key h.")] = True,
    legend: Annotated[bool, typer.Option(help="Draw the class colour key; key l.")] = True,
    snapshot_dir: Annotated[
        Path, typer.Option(callback=writable_dir, help="Folder for snapshots (key s).")
    ] = Path("."),
    overwrite: OverwriteOpt = False,
    json_path: JsonOpt = None,
) -> None:
    """Live segmentation from a camera, video, stream, folder or synthetic scenes: overlay, class key, FPS,
    per-stage times and agreement with the PyTorch model. Keys: q quit, space pause, o overlay/mask,
    h figures, l class key, s snapshot."""
    from edgeseg._paths import Output
    from edgeseg.demo import DemoConfig, run_demo

    source_path = Path(source) if source != "synthetic" and Path(source).exists() else None
    check_paths(
        [("MODEL", model), ("--source", source_path), ("--baseline", baseline)],
        json_path,
        Output("--save", save) if save is not None else None,
        overwrite=overwrite,
    )
    synthetic = source.strip().lower() == "synthetic"
    refuse_unused(
        ctx, ["frame_size", "fps"], synthetic, f"with --source {source} (they shape synthetic frames)"
    )
    refuse_unused(
        ctx,
        ["loop"],
        Path(source).is_dir() or Path(source).is_file(),
        f"with --source {source} (it replays files)",
    )
    refuse_unused(ctx, ["bind"], serve is not None, "without --serve")
    refuse_unused(ctx, ["baseline"], compare, "with --no-compare")

    config = DemoConfig(
        source=source,
        backend=backend,
        device=device,
        threads=threads,
        resize_kernel=resize_kernel,
        baseline=baseline,
        compare=compare,
        headless=headless,
        save=save,
        serve=serve,
        bind=bind,
        max_frames=max_frames,
        json_path=json_path,
        frame_size=parse_frame_size(frame_size),
        fps=fps,
        loop=loop,
        stall_timeout=stall_timeout,
        retry_seconds=retry_seconds,
        alpha=alpha,
        hud=hud,
        legend=legend,
        snapshot_dir=snapshot_dir,
        on_message=lambda line: typer.echo(line, err=True),
    )
    summary = run_demo(model, config)
    for line in summary.lines():
        typer.echo(line)
    if json_path is not None:
        typer.echo(f"wrote {json_path}")
    if summary.missing:  # a figure the run measured on too little: reported as missing, and refused
        from edgeseg.errors import InputError

        raise InputError(summary.missing[0])

    from edgeseg.data import Skipped, finish_batch

    skipped = [Skipped(Path(s["path"]), s["reason"]) for s in summary.skipped]
    finish_batch(skipped, None, "shown")
