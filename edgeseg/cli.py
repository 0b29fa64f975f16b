"""The `edgeseg` command line. Thin: parse options, call the library, print results.

Errors the user can fix are one line on stderr with exit code 2; runtime failures exit 1; a
traceback is shown only with --debug (or EDGESEG_DEBUG=1).
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgeseg import __version__
from edgeseg.errors import EdgesegError, InputError

if TYPE_CHECKING:
    from edgeseg.manifest import Manifest

try:  # typer >= 0.22 vendors click; older releases depend on it
    from typer import TyperException as _CliException
except ImportError:  # pragma: no cover
    from click import ClickException as _CliException  # type: ignore[no-redef]

app = typer.Typer(
    name="edgeseg",
    help="Train U-Net segmentation models and deploy them to edge runtimes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgeseg {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Train U-Net segmentation models and deploy them to edge runtimes."""


def _write_json(path: Path | None, data: dict[str, Any]) -> None:
    if path is not None:
        from edgeseg._io import write_json

        write_json(path, data)


def _existing_dir(path: Path | None, flag: str) -> None:
    if path is not None and not path.is_dir():
        raise InputError(f"{flag} folder '{path}' does not exist (expected DIR/images and DIR/masks)")


JsonOpt = Annotated[Path | None, typer.Option("--json", help="Also write a machine-readable summary here.")]


@app.command()
def train(
    data: Annotated[
        Path | None, typer.Option(help="Dataset folder (images/ + masks/). Default: built-in synthetic data.")
    ] = None,
    val_data: Annotated[
        Path | None, typer.Option(help="Validation folder. Default: a seeded split of --data.")
    ] = None,
    classes: Annotated[
        int | None, typer.Option(help="Number of classes. Default: classes.txt or max mask id + 1.")
    ] = None,
    img_size: Annotated[
        str | None,
        typer.Option(help="Training size N or WxH, e.g. 256 or 480x352. Default: the data's size."),
    ] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs (default 8).")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    lr: Annotated[float, typer.Option(min=0.0, help="Peak learning rate (AdamW, cosine decay).")] = 3e-3,
    ignore_index: Annotated[
        int | None,
        typer.Option(help="Mask id of unlabelled pixels, skipped by loss and metrics (e.g. 11 for CamVid)."),
    ] = None,
    model: Annotated[str, typer.Option(help="Architecture (only 'unet').")] = "unet",
    depth: Annotated[
        int, typer.Option(min=1, max=6, help="Downsamplings; sizes must divide by 2**depth.")
    ] = 4,
    width: Annotated[int, typer.Option(min=1, help="Channels of the first level.")] = 16,
    upsample: Annotated[str, typer.Option(help="transpose or bilinear.")] = "transpose",
    augment: Annotated[
        bool, typer.Option(help="Flips, 90° rotations, scale/crop, brightness/contrast.")
    ] = True,
    seed: Annotated[int, typer.Option(help="Seed for init, split, shuffling and augmentation.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N].")] = "auto",
    workers: Annotated[int, typer.Option(min=0, help="Data-loading worker processes.")] = 0,
    resume: Annotated[Path | None, typer.Option(help="Continue a run from its last.pt.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run folder. Default: runs/train (runs/train2, ... if taken).")
    ] = None,
    exist_ok: Annotated[bool, typer.Option(help="Overwrite checkpoints already in --out.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress output.")] = False,
    json_path: JsonOpt = None,
) -> None:
    """Train a U-Net (single process, or DDP under torchrun)."""
    from edgeseg.data import parse_img_size

    if model != "unet":
        raise InputError(f"unknown --model '{model}'; available: unet")
    if upsample not in ("transpose", "bilinear"):
        raise InputError(f"--upsample must be 'transpose' or 'bilinear', got '{upsample}'")
    _existing_dir(data, "--data")
    _existing_dir(val_data, "--val-data")
    from edgeseg.training import TrainConfig
    from edgeseg.training import train as run_training

    overrides: dict[str, Any] = {"epochs": epochs} if epochs is not None else {}
    cfg = TrainConfig(
        data=str(data) if data else None,
        val_data=str(val_data) if val_data else None,
        classes=classes,
        img_size=parse_img_size(img_size) if img_size else None,
        batch_size=batch_size,
        lr=lr,
        ignore_index=ignore_index,
        depth=depth,
        width=width,
        upsample=upsample,
        augment=augment,
        seed=seed,
        device=device,
        workers=workers,
        resume=str(resume) if resume else None,
        out=str(out) if out else None,
        exist_ok=exist_ok,
        quiet=quiet,
    )
    result = run_training(cfg, **overrides)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    summary = {
        "run_dir": str(result.run_dir),
        "best_checkpoint": str(result.best_checkpoint),
        "last_checkpoint": str(result.last_checkpoint),
        "best_miou": result.best_miou,
        "best_epoch": result.best_epoch,
        "seconds": round(result.seconds, 1),
    }
    typer.echo(
        f"best val mIoU {result.best_miou:.4f} (epoch {result.best_epoch}) -> {result.best_checkpoint}"
    )
    _write_json(json_path, summary)


@app.command("eval")
def eval_(
    model: Annotated[Path, typer.Argument(help="Checkpoint (.pt), bundle folder, .onnx or .xml to score.")],
    data: Annotated[Path, typer.Option(help="Dataset folder (images/ + masks/).")],
    ignore_index: Annotated[int | None, typer.Option(help="Override the model's ignore label.")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    backend: Annotated[
        str, typer.Option(help="For exported models: auto, onnxruntime or openvino.")
    ] = "auto",
    device: Annotated[
        str | None, typer.Option(help="auto/cpu/cuda for checkpoints; the backend's device else.")
    ] = None,
    json_path: JsonOpt = None,
) -> None:
    """Score a model on a labelled folder: mIoU, per-class IoU, Dice, pixel accuracy."""
    from rich.console import Console
    from rich.table import Table

    from edgeseg import evaluate

    _existing_dir(data, "--data")
    if model.is_dir() or model.suffix.lower() in (".onnx", ".xml"):
        report = evaluate.evaluate_artifact(
            model, data, backend=backend, device=device, ignore_index=ignore_index, batch_size=batch_size
        )
    else:
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
        table.add_row(name, _fmt(iou), _fmt(dice))
    console = Console()
    console.print(table)
    console.print(f"mIoU {m.miou:.4f}   Dice {m.dice:.4f}   pixel accuracy {m.pixel_accuracy:.4f}")
    _write_json(json_path, {"model": str(model), **report.to_dict()})


def _fmt(v: float) -> str:
    return "-" if v != v else f"{v:.4f}"  # NaN: class absent from truth and prediction


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint (.pt) to export.")],
    target: Annotated[str, typer.Option(help="Deployment target; see the support matrix in the README.")],
    precision: Annotated[str, typer.Option(help="fp32, fp16 or int8 (see the support matrix).")] = "fp32",
    img_size: Annotated[
        str | None, typer.Option(help="Input size N or WxH. Default: the training size.")
    ] = None,
    dynamic: Annotated[bool, typer.Option(help="Dynamic batch, height and width.")] = False,
    opset: Annotated[int, typer.Option(help="ONNX opset (18..23).")] = 18,
    val_data: Annotated[
        Path | None, typer.Option(help="Labelled folder for the parity check. Default: synthetic images.")
    ] = None,
    parity_images: Annotated[
        int, typer.Option(min=1, help="Synthetic images for parity without --val-data.")
    ] = 8,
    out: Annotated[Path | None, typer.Option(help="Bundle folder. Default: beside the checkpoint.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing bundle at --out.")] = False,
    calib: Annotated[
        Path | None,
        typer.Option(help="INT8 calibration images (folder or dataset folder). Default: synthetic."),
    ] = None,
    calib_method: Annotated[
        str, typer.Option(help="INT8 range estimation for onnx: minmax, entropy or percentile.")
    ] = "minmax",
    max_drop: Annotated[
        float | None,
        typer.Option(
            help="INT8: most mIoU points to lose vs FP32 on --val-data; tries remedies, else fails."
        ),
    ] = None,
    json_path: JsonOpt = None,
) -> None:
    """Export a checkpoint to a self-describing bundle and check it against PyTorch."""
    from edgeseg.data import parse_img_size
    from edgeseg.exporters import ExportConfig
    from edgeseg.exporters import export as run_export

    _existing_dir(val_data, "--val-data")
    _existing_dir(calib, "--calib")
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
        ),
        log=typer.echo,
    )
    typer.echo(f"wrote {result.bundle} ({result.seconds:.1f} s)")
    typer.echo(result.parity.summary())
    drop = (result.manifest.quantization or {}).get("miou_drop_points")
    if drop is not None:
        typer.echo(f"mIoU drop vs FP32 on --val-data: {drop:.2f} points")
    _write_json(json_path, result.to_dict())


def _collect_images(inputs: list[Path]) -> list[Path]:
    from edgeseg.data import IMAGE_SUFFIXES

    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputError(f"folder '{item}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise InputError(f"image '{item}' does not exist")
    stems = [p.stem for p in files]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise InputError(
            f"{len(dupes)} image name(s) occur twice (e.g. '{dupes[0]}'): their outputs would overwrite "
            f"each other; predict them in separate runs"
        )
    return files


@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help="Checkpoint (.pt), bundle folder, .onnx or OpenVINO .xml.")],
    images: Annotated[list[Path], typer.Argument(help="Image files or folders of images.")],
    backend: Annotated[str, typer.Option(help="auto, torch, onnxruntime or openvino.")] = "auto",
    device: Annotated[str | None, typer.Option(help="Backend device (cpu, cuda, GPU, AUTO, ...).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for <stem>_mask.png and <stem>_overlay.png.")] = Path(
        "predictions"
    ),
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="Overlay opacity.")] = 0.5,
    json_path: JsonOpt = None,
) -> None:
    """Segment images: a mask PNG of class ids and a colour overlay per image."""
    import numpy as np
    from PIL import Image

    from edgeseg._io import atomic_path
    from edgeseg.data import read_image
    from edgeseg.plots import colorize
    from edgeseg.segmenter import Segmenter

    files = _collect_images(images)
    rows = []
    with Segmenter(model, backend=backend, device=device, input_format="rgb") as seg:
        k = len(seg.class_names)
        for path in files:
            image = read_image(path)  # RGB, or HxWx1 gray; the Segmenter converts to the model's channels
            result = seg(image)
            rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
            colour = colorize(result.mask, k)
            blend = np.where(result.mask[..., None] > 0, (1 - alpha) * rgb + alpha * colour, rgb).astype(
                np.uint8
            )  # class 0 (usually background) stays uncoloured
            for suffix, img in (("mask", Image.fromarray(result.mask)), ("overlay", Image.fromarray(blend))):
                with atomic_path(out / f"{path.stem}_{suffix}.png") as tmp:
                    img.save(tmp, format="PNG")
            counts = np.bincount(result.mask.ravel(), minlength=k)
            rows.append(
                {
                    "image": str(path),
                    "mask": str(out / f"{path.stem}_mask.png"),
                    "overlay": str(out / f"{path.stem}_overlay.png"),
                    "class_fraction": {
                        n: round(float(c) / result.mask.size, 4)
                        for n, c in zip(seg.class_names, counts, strict=True)
                    },
                    "timings_ms": {key: round(v, 2) for key, v in result.timings.items()},
                }
            )
            typer.echo(f"{path.name}: {result.timings['total']:.1f} ms")
        typer.echo(f"wrote {2 * len(files)} files to {out} ({seg.backend.description})")
        _write_json(json_path, {"model": str(model), "backend": seg.backend.description, "images": rows})


@app.command()
def info(
    model: Annotated[Path, typer.Argument(help="Checkpoint (.pt), bundle folder, .onnx or .xml.")],
    json_path: JsonOpt = None,
) -> None:
    """Show what a model file holds: architecture, classes, input, normalisation, training or parity."""
    if model.is_dir():
        _bundle_info(model, json_path)
        return
    if model.suffix.lower() in (".onnx", ".xml"):
        _model_file_info(model, json_path)
        return
    from edgeseg.models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(model)
    meta = ckpt.meta()
    cfg, norm, tr = meta["model"], meta["normalization"], meta["training"]
    w, h = meta["img_size"]
    lines = [
        f"{model}: edgeseg checkpoint (edgeseg {meta['edgeseg_version']})",
        f"  model      UNet(in_channels={cfg['in_channels']}, classes={cfg['classes']}, "
        f"depth={cfg['depth']}, width={cfg['width']}, upsample={cfg['upsample']})",
        f"  classes    {', '.join(meta['class_names'])}"
        + (f"  (ignore id {meta['ignore_index']})" if meta["ignore_index"] is not None else ""),
        f"  input      {w}x{h} {norm['color_order']}, mean {norm['mean']}, std {norm['std']}, "
        f"resize {norm['resize']}",
    ]
    if tr:
        lines.append(
            f"  training   {tr.get('data')}: epoch {tr.get('epoch')}/{tr.get('epochs')}, "
            f"best val mIoU {tr.get('best_miou', float('nan')):.4f} at epoch {tr.get('best_epoch')}"
        )
    typer.echo("\n".join(lines))
    _write_json(json_path, meta)


def _bundle_info(bundle: Path, json_path: Path | None) -> None:
    from edgeseg.manifest import read_manifest

    m = read_manifest(bundle)  # verifies every file's sha256
    head = (
        f"{bundle}: edgeseg bundle, {m.target} {m.precision} (schema {m.schema_version}, "
        f"edgeseg {m.edgeseg_version}), files verified"
    )
    typer.echo("\n".join([head, *_manifest_lines(m)]))
    _write_json(json_path, m.to_dict())


def _model_file_info(path: Path, json_path: Path | None) -> None:
    from edgeseg.runtimes import artifact_kind, create_backend, resolve_backend

    with create_backend(resolve_backend("auto", artifact_kind(path)), path) as backend:
        m = backend.embedded_manifest
        specs = [f"{s.name} {list(s.shape)} {s.dtype}" for s in (*backend.input_specs, *backend.output_specs)]
        lines = [f"{path}: {backend.description}", f"  tensors    {'; '.join(specs)}"]
        if m is None:
            lines.append("  no edgeseg metadata: pass mean, std, color_order (and img_size) to Segmenter")
        else:
            lines += _manifest_lines(m)
    typer.echo("\n".join(lines))
    _write_json(json_path, m.to_dict() if m is not None else {"model": str(path), "tensors": specs})


def _manifest_lines(m: Manifest) -> list[str]:
    d = m.to_dict()
    inp = d["input"]
    lines = [
        f"  model      {m.model_file}; classes {', '.join(m.class_names)}",
        f"  input      {inp['name']} {inp['layout']} {inp['width']}x{inp['height']} {inp['color_order']}, "
        f"mean {inp['mean']}, std {inp['std']}, resize {inp['resize']}"
        + (f", dynamic {d['dynamic_axes']}" if d.get("dynamic_axes") else ""),
    ]
    if d.get("tools"):  # a bare .onnx carries no tool versions
        lines.append(f"  tools      {', '.join(f'{k} {v}' for k, v in d['tools'].items())}")
    p = d.get("parity") or {}
    if p:
        text = (
            f"  parity     vs PyTorch on {p['inputs']}: max |Δlogit| {p['max_abs_logit_diff']:.2e}, "
            f"pixel agreement {p['pixel_agreement']:.4%}, mIoU vs PyTorch {p['miou_vs_pytorch']:.4f}"
        )
        if p.get("miou_artifact_vs_gt") is not None:
            text += f", mIoU vs truth {p['miou_artifact_vs_gt']:.4f} (PyTorch {p['miou_pytorch_vs_gt']:.4f})"
        lines.append(text)
    return lines


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `edgeseg` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    first_cmd = next((i for i, a in enumerate(args) if not a.startswith("-")), len(args))
    debug = "--debug" in args[:first_cmd] or os.environ.get("EDGESEG_DEBUG") == "1"
    try:
        rv = app(args=args, prog_name="edgeseg", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except EdgesegError as exc:
        if debug:
            raise
        _error(str(exc))
        return exc.exit_code
    except _CliException as exc:
        if debug:
            raise
        exit_code = getattr(exc, "exit_code", 2)
        cmd = next((a for a in args if not a.startswith("-")), None)
        hint = f" (see 'edgeseg {cmd} --help')" if cmd in _command_names() else " (see 'edgeseg --help')"
        _error(exc.format_message().replace("\n", " ") + hint)
        return exit_code
    except KeyboardInterrupt:
        _error("interrupted; files already completed were kept, nothing half-written was left")
        return 130
    except (typer.Abort, EOFError):
        _error("aborted")
        return 1
    except OSError as exc:  # a path the user gave that cannot be written or read, or a full disk
        if debug:
            raise
        _error(_os_error_message(exc))
        return 1 if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO) else 2
    except MemoryError:
        _error("out of memory; try a smaller --batch-size or --img-size")
        return 1
    except Exception as exc:  # an unexpected failure: still one line, the traceback on --debug
        if debug:
            raise
        _error(f"{type(exc).__name__}: {exc} (run again with --debug for the traceback)")
        return 1


def _os_error_message(exc: OSError) -> str:
    where = f" '{exc.filename}'" if exc.filename else ""
    what = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{what}{where}: free some space and run again (nothing half-written was kept)"
    return f"{what}{where}: choose a path you can write to (e.g. another --out) and run again"


def _command_names() -> set[str]:
    return {c.name or c.callback.__name__.rstrip("_") for c in app.registered_commands if c.callback}


def _error(msg: str) -> None:
    line = " ".join(msg.split("\n")[0].split()) if msg else "failed"
    print(f"edgeseg: error: {line}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
