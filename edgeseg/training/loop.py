"""Training: cross-entropy + Dice, AdamW with warm-up and cosine decay, best/last checkpoints by
val mIoU, resumable, single process or DDP under torchrun (only rank 0 writes)."""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from edgeseg._io import write_json
from edgeseg.errors import InputError
from edgeseg.evaluation.evaluate import confusion_on, to_input
from edgeseg.evaluation.metrics import ConfusionMatrix
from edgeseg.models.checkpoint import Checkpoint, Normalization, load_checkpoint, save_checkpoint
from edgeseg.models.device import resolve_device
from edgeseg.models.registry import build_model
from edgeseg.training import distributed as ddp
from edgeseg.training.losses import DiceCELoss
from edgeseg.training.setup import (
    TrainConfig,
    TrainResult,
    build_datasets,
    model_spec,
    new_model,
    prepare_run_dir,
)

__all__ = ["cosine_with_warmup", "train", "train_step"]


def cosine_with_warmup(total_steps: int, warmup_steps: int, floor: float = 0.01):  # type: ignore[no-untyped-def]
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return factor


def train_step(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
) -> torch.Tensor:
    """One optimisation step; returns the (detached) loss. Shared with benchmarks/train_overhead.py."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        with torch.autocast("cuda", dtype=torch.float16):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
    return loss.detach()


def train(config: TrainConfig | None = None, **overrides: Any) -> TrainResult:
    """Train a U-Net and write best.pt, last.pt, metrics.json, curves.png and samples.png to
    ``config.out``. Keyword arguments override fields of `config` (or of the defaults).

    With ``resume=PATH`` (a last.pt) the run continues with the settings stored in it; only
    ``epochs`` may be overridden, to extend the schedule.

    >>> from edgeseg import train
    >>> result = train(epochs=2, out="runs/tiny")  # synthetic data
    """
    cfg = replace(config or TrainConfig(), **overrides)
    if cfg.data is not None:
        cfg.data = str(cfg.data)
    if cfg.val_data is not None:
        cfg.val_data = str(cfg.val_data)
    resumed: Checkpoint | None = None
    if cfg.resume is not None:
        resumed = load_checkpoint(cfg.resume, with_train_state=True)
        if not resumed.train_state:
            raise InputError(
                f"'{cfg.resume}' holds no training state (best.pt is weights only); resume from last.pt"
            )
        saved = TrainConfig.from_dict(json.loads(resumed.train_state["config"]))
        # The run continues with its own settings; only a longer schedule may be asked for.
        epochs = overrides.get("epochs", saved.epochs)
        cfg = replace(
            saved, resume=cfg.resume, epochs=epochs, out=str(Path(cfg.resume).parent), quiet=cfg.quiet
        )
    return _Trainer(cfg, resumed).run()


class _Trainer:
    def __init__(self, cfg: TrainConfig, resumed: Checkpoint | None) -> None:
        self.cfg = cfg
        self.resumed = resumed
        self.device = resolve_device(cfg.device)
        self.dist = ddp.init_distributed(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        self.run_dir = prepare_run_dir(cfg)

    def log(self, msg: str) -> None:
        if self.dist.is_main and not self.cfg.quiet:
            from rich.console import Console

            Console(stderr=True, highlight=False).print(msg)

    def run(self) -> TrainResult:
        try:
            return self._run()
        except KeyboardInterrupt:
            last = self.run_dir / "last.pt"
            if last.exists():
                self.log(f"interrupted: {last} holds the last complete epoch; continue with "
                         f"'edgeseg train --resume {last}'")  # fmt: skip
            raise
        finally:
            ddp.shutdown(self.dist)

    def _run(self) -> TrainResult:
        from edgeseg.data import default_normalization

        cfg, dev = self.cfg, self.device
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed)
        train_ds, val_ds, info = build_datasets(cfg)
        if len(train_ds) == 0 or len(val_ds) == 0:
            raise InputError("need at least one training and one validation image")
        mean, std = default_normalization(info["channels"])
        norm = Normalization(tuple(mean), tuple(std), "RGB" if info["channels"] == 3 else "GRAY")
        mcfg = model_spec(cfg, info["channels"], info["num_classes"])
        if self.resumed is not None and self.resumed.model_config != mcfg:
            raise InputError(f"'{cfg.resume}' was trained on different data/model settings; cannot resume")
        # channels_last lets oneDNN (CPU) and cuDNN pick their fast NHWC convolutions: ~1.3x here.
        model = (new_model(cfg, mcfg) if self.resumed is None else build_model(mcfg)).to(
            dev, memory_format=torch.channels_last
        )
        ignore = info["ignore_index"]
        loss_fn = DiceCELoss(mcfg.classes, ignore)

        sampler = DistributedSampler(
            train_ds, num_replicas=self.dist.world_size, rank=self.dist.rank, shuffle=True, seed=cfg.seed
        )
        bs = min(cfg.batch_size, len(sampler))
        loader = DataLoader(
            train_ds,
            batch_size=bs,
            sampler=sampler,
            num_workers=cfg.workers,
            drop_last=len(sampler) > bs,  # a 1-image last batch would skew batch norm
            pin_memory=dev.type == "cuda",
            # Not persistent: workers must see each epoch's set_epoch() (fresh augmentation draws).
            persistent_workers=False,
        )
        steps_per_epoch = len(loader)
        total = steps_per_epoch * cfg.epochs
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(
            optimizer, cosine_with_warmup(total, max(1, int(cfg.warmup_fraction * total)))
        )
        scaler = torch.amp.GradScaler("cuda") if cfg.amp and dev.type == "cuda" else None

        history: list[dict[str, Any]] = []
        best_miou, best_epoch, start_epoch = -1.0, 0, 1
        if self.resumed is not None:
            st = self.resumed.train_state or {}
            model.load_state_dict(self.resumed.state_dict)
            optimizer.load_state_dict(st["optimizer"])
            sched.load_state_dict(st["scheduler"])
            if scaler is not None and st.get("scaler"):
                scaler.load_state_dict(st["scaler"])
            history = json.loads(st["history"])
            best_miou, best_epoch = float(st["best_miou"]), int(st["best_epoch"])
            start_epoch = int(st["epoch"]) + 1
            self.log(f"resuming {cfg.resume} at epoch {start_epoch}/{cfg.epochs}")
        net: torch.nn.Module = model
        if self.dist.enabled:
            net = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[dev.index] if dev.type == "cuda" else None
            )

        ckpt = Checkpoint(
            model_config=mcfg,
            class_names=info["class_names"],
            normalization=norm,
            img_size=info["img_size"],
            ignore_index=ignore,
        )
        best_path, last_path = self.run_dir / "best.pt", self.run_dir / "last.pt"
        data_desc = cfg.data or f"synthetic(seed={cfg.seed})"
        self.log(
            f"training {mcfg.describe()} on {data_desc}: "
            f"{len(train_ds)} train / {len(val_ds)} val images, {mcfg.classes} classes, "
            f"{info['img_size'][0]}x{info['img_size'][1]}, {info['channels']} channel(s), {dev}"
            + (f", {self.dist.world_size} processes" if self.dist.enabled else "")
        )
        progress = self._progress()
        for epoch in range(start_epoch, cfg.epochs + 1):
            te = time.perf_counter()
            sampler.set_epoch(epoch)
            train_ds.set_epoch(epoch)
            net.train()
            loss_sum = torch.zeros((), device=dev)
            task = progress.add_task(
                f"epoch {epoch}/{cfg.epochs}",
                total=steps_per_epoch,
                loss=float("nan"),
                best=max(best_miou, 0),
            )
            for step, (images, masks) in enumerate(loader, 1):
                x = to_input(images, norm, dev)
                y = masks.to(dev, non_blocking=True)
                loss_sum += train_step(net, x, y, loss_fn, optimizer, scaler)
                sched.step()
                if step % 10 == 0 or step == steps_per_epoch:
                    progress.update(task, completed=step, loss=float(loss_sum) / step)
            train_seconds = time.perf_counter() - te
            train_loss = float(ddp.all_reduce_sum(loss_sum, self.dist)) / (
                steps_per_epoch * self.dist.world_size
            )
            metrics = self._validate(model, val_ds, norm, mcfg.classes, ignore)
            progress.remove_task(task)
            row = {
                "epoch": epoch,
                "train_loss": train_loss,
                "miou": metrics.miou,
                "dice": metrics.dice,
                "pixel_accuracy": metrics.pixel_accuracy,
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": round(time.perf_counter() - te, 2),
                "train_seconds": round(train_seconds, 3),
                "steps": steps_per_epoch,
            }
            history.append(row)
            improved = metrics.miou > best_miou
            if improved:
                best_miou, best_epoch = metrics.miou, epoch
            self.log(
                f"epoch {epoch:>3}/{cfg.epochs}  loss {train_loss:.4f}  val mIoU {metrics.miou:.4f}  "
                f"Dice {metrics.dice:.4f}  acc {metrics.pixel_accuracy:.4f}  {row['seconds']:.1f}s"
                + ("  [best]" if improved else "")
            )
            if self.dist.is_main:
                ckpt.training = self._summary(cfg, data_desc, epoch, best_epoch, best_miou, history, info)
                if improved:
                    ckpt.training["val"] = metrics.to_dict(info["class_names"])
                    ckpt.train_state = None
                    save_checkpoint(best_path, ckpt, model)
                ckpt.train_state = {
                    "epoch": epoch,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": sched.state_dict(),
                    "scaler": scaler.state_dict() if scaler is not None else {},
                    "history": json.dumps(history),
                    "best_miou": best_miou,
                    "best_epoch": best_epoch,
                    "config": json.dumps(cfg.to_dict()),
                }
                save_checkpoint(last_path, ckpt, model)
                ckpt.train_state = None
                self._write_metrics(history, best_epoch, best_miou, info, cfg)
        progress.stop()
        seconds = time.perf_counter() - t0
        if self.dist.is_main:
            self._write_metrics(history, best_epoch, best_miou, info, cfg, seconds)
            self._plots(history, best_path, val_ds)
            self.log(
                f"best val mIoU {best_miou:.4f} at epoch {best_epoch}; {seconds:.0f}s; wrote {self.run_dir}/"
            )
        ddp.barrier(self.dist)
        return TrainResult(self.run_dir, best_path, last_path, best_miou, best_epoch, history, seconds)

    def _progress(self):  # type: ignore[no-untyped-def]
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        console = Console(stderr=True)
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  best val mIoU {task.fields[best]:.4f}"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not (self.dist.is_main and console.is_terminal) or self.cfg.quiet,
        )
        progress.start()
        return progress

    def _validate(self, model: Any, val_ds: Any, norm: Normalization, classes: int, ignore: int | None):  # type: ignore[no-untyped-def]
        # Each rank scores its shard; summing the confusion matrices gives the exact full-set metrics.
        ddp.sync_buffers(model, self.dist)
        shard = list(range(self.dist.rank, len(val_ds), self.dist.world_size))
        cm = confusion_on(
            model,
            val_ds,
            norm=norm,
            num_classes=classes,
            ignore_index=ignore,
            batch_size=max(1, self.cfg.batch_size),
            device=self.device,
            indices=shard,
        )
        total = ddp.all_reduce_sum(torch.from_numpy(cm.matrix).to(self.device), self.dist)
        full = ConfusionMatrix(classes, ignore)
        full.matrix = total.cpu().numpy()
        return full.compute()

    @staticmethod
    def _summary(
        cfg: TrainConfig,
        data_desc: str,
        epoch: int,
        best_epoch: int,
        best_miou: float,
        history: list[dict[str, Any]],
        info: dict[str, Any],
    ) -> dict[str, Any]:
        return {
            "data": data_desc,
            "val_data": cfg.val_data,
            "epoch": epoch,
            "epochs": cfg.epochs,
            "best_epoch": best_epoch,
            "best_miou": best_miou,
            "seed": cfg.seed,
            "binary_255": info["binary_255"],
            "config": cfg.to_dict(),
        }

    def _write_metrics(
        self,
        history: list[dict[str, Any]],
        best_epoch: int,
        best_miou: float,
        info: dict[str, Any],
        cfg: TrainConfig,
        seconds: float | None = None,
    ) -> None:
        write_json(
            self.run_dir / "metrics.json",
            {
                "best_epoch": best_epoch,
                "best_miou": best_miou,
                "epochs": history,
                "class_names": info["class_names"],
                "img_size": list(info["img_size"]),
                "seconds": None if seconds is None else round(seconds, 1),
                "config": cfg.to_dict(),
            },
        )

    def _plots(self, history: list[dict[str, Any]], best_path: Path, val_ds: Any) -> None:
        from edgeseg.training.figures import plot_curves, plot_samples

        plot_curves(history, self.run_dir / "curves.png")
        best = load_checkpoint(best_path)
        plot_samples(best, val_ds, self.run_dir / "samples.png", device=self.device)
