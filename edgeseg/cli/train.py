"""`edgeseg train`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from edgeseg.cli._app import (
    JsonOpt,
    app,
    check_paths,
    existing_dir,
    refuse_unused,
    writable_dir,
    write_json_opt,
)
from edgeseg.errors import InputError


@app.command()
def train(
    ctx: typer.Context,
    data: Annotated[
        Path | None, typer.Option(help="Dataset folder (images/ + masks/). Default: built-in synthetic data.")
    ] = None,
    val_data: Annotated[
        Path | None, typer.Option(help="Validation folder. Default: a seeded split of --data.")
    ] = None,
    classes: Annotated[
        int | None, typer.Option(min=1, help="Number of classes. Default: classes.txt or max mask id + 1.")
    ] = None,
    img_size: Annotated[
        str | None,
        typer.Option(help="Training size N or WxH, e.g. 256 or 480x352. Default: the data's size."),
    ] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs (default 8).")] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(min=1, help="Default: from the dataset size (at least 8 steps/epoch, 4..16)."),
    ] = None,
    lr: Annotated[
        float,
        typer.Option(
            min=0.0, help="Learning rate (AdamW; 5 % warm-up, constant, cosine to 0 over the last 25 %)."
        ),
    ] = 3e-3,
    ignore_index: Annotated[
        int | None,
        typer.Option(
            min=0, help="Mask id of unlabelled pixels, skipped by loss and metrics (e.g. 11 for CamVid)."
        ),
    ] = None,
    arch: Annotated[
        str,
        typer.Option(
            "--arch",
            "--model",
            help="unet (edgeseg's U-Net) or smp:<arch> (segmentation_models_pytorch: smp:unet, smp:fpn...).",
        ),
    ] = "unet",
    encoder: Annotated[
        str | None,
        typer.Option(help="smp:<arch> only: the encoder, e.g. resnet18, mobilenet_v2 (default resnet18)."),
    ] = None,
    encoder_weights: Annotated[
        str,
        typer.Option(help="smp:<arch> only: none, imagenet (downloads) or a .pt/.pth/.safetensors FILE."),
    ] = "none",
    depth: Annotated[
        int, typer.Option(min=1, max=6, help="Downsamplings; sizes must divide by 2**depth.")
    ] = 4,
    width: Annotated[int, typer.Option(min=1, help="Channels of the first level.")] = 16,
    upsample: Annotated[str, typer.Option(help="transpose or bilinear.")] = "transpose",
    augment: Annotated[
        bool, typer.Option(help="Augment the training images (--augment-ops says which ways).")
    ] = True,
    augment_ops: Annotated[
        str | None,
        typer.Option(
            help="Which augmentations: a comma-separated list of flip, vflip, rot90, zoom, color, "
            "or none. Default: flip,rot90."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for init, split, shuffling and augmentation.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N].")] = "auto",
    workers: Annotated[int, typer.Option(min=0, help="Data-loading worker processes.")] = 0,
    class_weights: Annotated[
        str,
        typer.Option(
            help="Cross-entropy class weights: none, auto (median frequency balancing), sqrt (its "
            "square root), sqrt-if-imbalanced (sqrt when some class is 4x rarer than the median "
            "class, else none) or w1,w2,..."
        ),
    ] = "sqrt-if-imbalanced",
    patience: Annotated[
        int | None, typer.Option(min=1, help="Stop after N epochs without a better val mIoU.")
    ] = None,
    tensorboard: Annotated[
        bool, typer.Option(help="Write TensorBoard event files beside metrics.json (extra 'tensorboard').")
    ] = False,
    bf16: Annotated[
        bool, typer.Option(help="bf16 autocast on CPU (pays only on CPUs with AVX512-BF16/AMX; measure).")
    ] = False,
    resume: Annotated[
        Path | None,
        typer.Option(help="Continue a run from its last.pt (in its folder, or in --out when given)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            callback=writable_dir, help="Run folder. Default: runs/train (runs/train2, ... if taken)."
        ),
    ] = None,
    exist_ok: Annotated[
        bool, typer.Option(help="Overwrite the run files already in --out, and an existing --json file.")
    ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress output.")] = False,
    json_path: JsonOpt = None,
) -> None:
    """Train a U-Net or an SMP model (single process, or DDP under torchrun)."""
    from edgeseg.data import parse_img_size

    # A resumed run keeps the settings it was started with; only these may be given with --resume.
    kept = {"epochs", "resume", "out", "exist_ok", "quiet", "json_path", "device", "workers"}
    refuse_unused(
        ctx,
        [p.name for p in ctx.command.params if p.name and p.name not in kept],
        resume is None,
        "with --resume: a resumed run keeps the settings it was started with (only --epochs, --out, "
        "--exist-ok, --device, --workers and --quiet apply)",
    )
    refuse_unused(
        ctx, ["depth", "width", "upsample"], not arch.strip().lower().startswith("smp:"),
        f"with --arch {arch} (an SMP model's encoder sets its depth and width; use --encoder)",
    )  # fmt: skip
    if upsample not in ("transpose", "bilinear"):
        raise InputError(f"--upsample must be 'transpose' or 'bilinear', got '{upsample}'")
    check_paths(
        [("--data", data), ("--val-data", val_data), ("--resume", resume)],
        json_path,
        overwrite=exist_ok,
        overwrite_flag="--exist-ok",
    )
    existing_dir(data, "--data")
    existing_dir(val_data, "--val-data")
    from edgeseg.training import TrainConfig
    from edgeseg.training import train as run_training

    overrides: dict[str, Any] = {"epochs": epochs} if epochs is not None else {}
    if augment_ops is not None:
        from edgeseg.data import AugmentConfig

        AugmentConfig.from_ops(augment_ops)  # an unknown name is one line before any data is read
        overrides["augment_ops"] = augment_ops
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
        arch=arch.strip().lower(),
        encoder=encoder,
        encoder_weights=encoder_weights,
        augment=augment,
        seed=seed,
        device=device,
        workers=workers,
        class_weights=_class_weights_spec(class_weights),
        patience=patience,
        tensorboard=tensorboard,
        bf16=bf16,
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
    write_json_opt(json_path, summary)


def _class_weights_spec(spec: str) -> str:
    from edgeseg.training.setup import CLASS_WEIGHT_NAMES

    spec = spec.strip()
    return spec.lower() if spec.lower() in CLASS_WEIGHT_NAMES else spec
