"""`edgeseg benchmark`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgeseg.cli._app import (
    JsonOpt,
    ResizeKernelOpt,
    app,
    check_paths,
    existing_dir,
    refuse_unused,
    writable_dir,
)
from edgeseg.cli._facts import ClassesOpt, ColorOrderOpt, IgnoreIndexOpt, MeanOpt, StdOpt, parse_facts

if TYPE_CHECKING:
    from edgeseg.bench.run import BenchmarkReport


def print_report(report: BenchmarkReport, paths: dict[str, Path]) -> None:
    """The table, how it was measured, and where the files are."""
    from edgeseg._text import console
    from edgeseg.bench.report import render_table, summary_lines

    out = console()
    if not out.is_terminal:  # a file or a pipe: full rows rather than a width nobody chose
        out = console(width=250)
    out.print(render_table(report))
    for line in summary_lines(report):
        typer.echo(line)
    if paths:
        typer.echo("wrote " + ", ".join(str(p) for p in paths.values()))


def _compare(a: Path, b: Path) -> None:
    from edgeseg._text import console
    from edgeseg.bench.card import compare_tables, load_card

    cards = load_card(a), load_card(b)
    out = console()
    if not out.is_terminal:
        out = console(width=250)
    typer.echo(f"A: {a}\nB: {b}")
    for table in compare_tables(*cards):
        out.print(table)


@app.command()
def benchmark(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path | None,
        typer.Argument(help="Checkpoint (.pt) or ONNX file (.onnx): the source, and the baseline row."),
    ] = None,
    targets: Annotated[
        str,
        typer.Option(help="target:precision list, e.g. onnx:fp32,openvino:int8; a bare target; or all."),
    ] = "all",
    data: Annotated[
        Path | None,
        typer.Option(help="Labelled folder for mIoU and its drop vs PyTorch. Default: synthetic frames."),
    ] = None,
    calib: Annotated[
        Path | None,
        typer.Option(
            help="INT8 calibration images. Default: the checkpoint's training folder (synthetic scenes "
            "for a model trained on them or a source that records none)."
        ),
    ] = None,
    img_size: Annotated[
        str | None, typer.Option(help="Input size N or WxH. Default: the training size.")
    ] = None,
    runs: Annotated[
        int, typer.Option(min=1, help="Timed calls per row (model alone, whole call) in the first 3 rounds.")
    ] = 30,
    max_spread: Annotated[
        float,
        typer.Option(
            min=0.001,
            help="More rounds until every ratio's spread over the rounds is within +-this (0.05: +-5 %).",
        ),
    ] = 0.05,
    time_budget: Annotated[
        float, typer.Option(min=0.0, help="Seconds of timing rounds after which no new round starts.")
    ] = 60.0,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed calls per row before timing.")] = 5,
    max_images: Annotated[int, typer.Option(min=1, help="Images of --data scored per row.")] = 64,
    out: Annotated[
        Path | None,
        typer.Option(
            callback=writable_dir, help="Folder for bundles and reports. Default: CKPT's folder/benchmark."
        ),
    ] = None,
    bundles: Annotated[
        list[Path] | None,
        typer.Option(
            help="A bundle, or a folder of bundles, already exported from CKPT: reused where its source, "
            "settings and tools match (repeatable). Bundles `edgeseg export` wrote beside CKPT are always "
            "looked at."
        ),
    ] = None,
    cpu_ghz: Annotated[
        float | None,
        typer.Option(min=0.1, help="CPU clock for the peak GFLOP/s figure. Default: the OS-reported clock."),
    ] = None,
    classes: ClassesOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    color_order: ColorOrderOpt = None,
    ignore_index: IgnoreIndexOpt = None,
    frame_size: Annotated[
        str, typer.Option(help="Frame size WxH the whole Segmenter call is timed on.")
    ] = "640x480",
    resize_kernel: ResizeKernelOpt = "pillow",
    overwrite: Annotated[
        bool, typer.Option(help="Replace files in --out (and --json) that another run did not write.")
    ] = False,
    compare: Annotated[
        tuple[Path, Path] | None,
        typer.Option(
            help="Print two benchmark.json cards side by side (environment differences, rows, B/A); "
            "measures nothing.",
            metavar="A.json B.json",
        ),
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            help="latency (one frame at a time), or throughput: also images/s per row with the runtime's "
            "parallel streams (predict_many)."
        ),
    ] = "latency",
    json_path: JsonOpt = None,
) -> None:
    """Export every target (reusing bundles) and measure each against the source's FP32 model (PyTorch,
    or an ONNX source on ONNX Runtime): size, mIoU, agreement, latency, FPS, speed-up, GFLOP/s,
    memory; writes benchmark.json/.csv/.md/.png with the machine's card. --compare A.json B.json
    prints two cards side by side."""
    from edgeseg.errors import InputError

    if compare is not None:
        if checkpoint is not None:
            raise InputError("--compare takes two benchmark.json files and no checkpoint")
        _compare(*compare)
        return
    if checkpoint is None:
        raise InputError("give the checkpoint or ONNX file to benchmark (or --compare A.json B.json)")
    from edgeseg._claims import claim
    from edgeseg._paths import Output
    from edgeseg.bench.report import REPORT_FILES, is_benchmark_report, write_reports
    from edgeseg.bench.run import BenchmarkConfig, parse_targets
    from edgeseg.bench.run import benchmark as run_benchmark
    from edgeseg.data import parse_img_size
    from edgeseg.preprocess import resize_kernel_choice

    refuse_unused(
        ctx, ["max_images"], data is not None, "without --data (it caps the labelled images scored)"
    )
    chosen = parse_targets(targets)
    refuse_unused(
        ctx,
        ["calib"],
        any(t.endswith(":int8") for t in chosen),
        f"without an int8 target in --targets {targets}",
    )
    out = out if out is not None else checkpoint.parent / "benchmark"
    check_paths(
        [("CKPT", checkpoint), ("--data", data), ("--calib", calib)],
        json_path,
        Output("--out", out, "folder", REPORT_FILES, ours=is_benchmark_report),
        overwrite=overwrite,
    )
    existing_dir(data, "--data")
    existing_dir(calib, "--calib", "a folder of images, or a dataset folder")
    for folder in bundles or ():
        existing_dir(folder, "--bundles", "a bundle folder, or a folder of bundles")
    from edgeseg.data import parse_frame_size

    frame = parse_frame_size(frame_size)
    config = BenchmarkConfig(
        targets=chosen,
        data=str(data) if data else None,
        calib=str(calib) if calib else None,
        img_size=parse_img_size(img_size) if img_size else None,
        runs=runs,
        rounds=min(3, runs),
        max_spread=max_spread,
        time_budget_s=time_budget,
        warmup=warmup,
        max_images=max_images,
        out=str(out) if out else None,
        cpu_ghz=cpu_ghz,
        frame_size=frame,
        mode=mode.strip().lower(),
        resize_kernel=resize_kernel_choice(resize_kernel),
        bundles=tuple(str(b) for b in bundles or ()),
    )
    facts = parse_facts(classes, mean, std, color_order, ignore_index)
    with claim(out):  # a second benchmark into the same folder is refused while this one runs
        report = run_benchmark(checkpoint, config, facts=facts, log=lambda s: typer.echo(s, err=True))
        paths = write_reports(report, report.meta["out"])
    if json_path is not None:
        from edgeseg._io import write_json

        write_json(json_path, report.to_dict())
        paths["json (--json)"] = json_path
    print_report(report, paths)
    if config.mode == "throughput":
        for row in report.rows:
            if row.images_per_s is not None:
                typer.echo(
                    f"throughput {row.name}: {row.images_per_s:.1f} images/s (latency mode {row.fps} FPS)"
                )
            elif row.throughput_reason:
                typer.echo(f"throughput {row.name}: not measured ({row.throughput_reason})")
