"""Training: cross-entropy + Dice, AdamW with warm-up (then constant, or a cosine to lr_floor),
best/last checkpoints by val mIoU, resumable, single process or DDP under torchrun (only rank 0 writes)."""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from edgeseg._claims import claim
from edgeseg._guards import recorded_path
from edgeseg._io import atomic_path
from edgeseg._progress import clock, track
from edgeseg._records import Record, parse_json
from edgeseg._text import console
from edgeseg.data import default_normalization
from edgeseg.errors import InputError
from edgeseg.evaluation.evaluate import confusion_on, to_input
from edgeseg.evaluation.metrics import ConfusionMatrix
from edgeseg.models.checkpoint import Checkpoint, Normalization, load_checkpoint, save_checkpoint
from edgeseg.models.device import resolve_device
from edgeseg.models.registry import build_model
from edgeseg.training import distributed as ddp
from edgeseg.training.ema import WeightAverage, ema_decay
from edgeseg.training.losses import DiceCELoss
from edgeseg.training.record import RunRecord
from edgeseg.training.setup import (
    TrainConfig,
    TrainResult,
    auto_batch_size,
    build_datasets,
    model_spec,
    new_model,
    prepare_run_dir,
    resolve_class_weights,
)
from edgeseg.training.step import TrainingDiverged, cosine_with_warmup, train_step

__all__ = ["TrainingDiverged", "cosine_with_warmup", "train", "train_step"]


def train(config: TrainConfig | None = None, **overrides: Any) -> TrainResult:
    """Train a U-Net and write best.pt, last.pt, metrics.json, curves.png and samples.png to
    ``config.out``. Keyword arguments override fields of `config` (or of the defaults).

    With ``resume=PATH`` (a last.pt) the run continues with the settings stored in it; only
    ``epochs`` may be overridden, to extend the schedule.

    >>> from edgeseg import train
    >>> result = train(epochs=2, out="runs/tiny")  # synthetic data
    """
    cfg = replace(config or TrainConfig(), **overrides)
    # Resolved, as every recorded path is: last.pt's config and the checkpoints' training facts
    # must still name the data when the run is resumed or inspected from another folder.
    if cfg.data is not None:
        cfg.data = recorded_path(cfg.data)
    if cfg.val_data is not None:
        cfg.val_data = recorded_path(cfg.val_data)
    resumed: Checkpoint | None = None
    if cfg.resume is not None:
        resumed = load_checkpoint(cfg.resume, with_train_state=True)
        if not resumed.train_state:
            raise InputError(
                f"'{cfg.resume}' holds no training state (best.pt is weights only); resume from last.pt"
            )
        where = f"'{cfg.resume}' (its training state)"
        saved = TrainConfig.from_dict(dict(Record.parse(str(resumed.train_state["config"]), where).data))
        _refuse_changed_settings(cfg, saved, overrides)
        # The run continues with its own settings; only a longer schedule, where it runs and where
        # it writes may be asked for. Without `out` it continues in its own folder.
        epochs = overrides.get("epochs", saved.epochs)
        cfg = replace(
            saved,
            resume=cfg.resume,
            epochs=epochs,
            out=cfg.out or str(Path(cfg.resume).parent),
            exist_ok=cfg.exist_ok,
            quiet=cfg.quiet,
            device=cfg.device,
            workers=cfg.workers,
        )
    return _Trainer(cfg, resumed).run()


# What a resumed run may change: everything else is the run's own and is kept.
_RESUME_MAY_SET = {"resume", "epochs", "out", "exist_ok", "quiet", "device", "workers"}


def _refuse_changed_settings(cfg: TrainConfig, saved: TrainConfig, overrides: dict[str, Any]) -> None:
    """InputError naming the settings a resume was given that differ from the run's own: they would
    otherwise be dropped without a word."""
    default = TrainConfig()
    changed = [
        f.name
        for f in fields(TrainConfig)
        if f.name not in _RESUME_MAY_SET
        and (f.name in overrides or getattr(cfg, f.name) != getattr(default, f.name))
        and getattr(cfg, f.name) != getattr(saved, f.name)
    ]
    if changed:
        names = ", ".join(f"{n} ({getattr(cfg, n)!r}, the run has {getattr(saved, n)!r})" for n in changed)
        raise InputError(
            f"--resume continues a run with its own settings; these cannot change: {names}. "
            "Start a new run to change them"
        )


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
            # One line per message, unwrapped: logs and tests can grep it. Literal: a message may
            # hold class names or paths from the data, which are no markup.
            console(stderr=True).print(msg, soft_wrap=True)

    def run(self) -> TrainResult:
        # Only the writing rank claims the run folder; a second run to it is refused before setup.
        held = claim(self.run_dir) if self.dist.is_main else contextlib.nullcontext()
        try:
            with held:
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
        cfg = self.cfg
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed)
        self._setup()
        record = self.record
        self.log(self._describe())
        self._epoch_seconds: list[float] = []  # each finished epoch's, validation included
        try:
            for epoch in range(self.start_epoch, cfg.epochs + 1):
                te = time.perf_counter()
                train_loss = self._train_epoch(epoch)
                train_seconds = time.perf_counter() - te
                metrics = self._validate(self.model, self.val_ds, self.norm, self.num_classes, self.ignore)
                scored = {"raw": metrics}
                if self.ema is not None:
                    scored["ema"] = self._validate(
                        self.ema.module, self.val_ds, self.norm, self.num_classes, self.ignore
                    )
                row = {
                    "epoch": epoch,
                    "train_loss": train_loss,
                    "miou": metrics.miou,
                    "dice": metrics.dice,
                    "pixel_accuracy": metrics.pixel_accuracy,
                    "lr": self.optimizer.param_groups[0]["lr"],
                    "seconds": round(time.perf_counter() - te, 2),
                    "train_seconds": round(train_seconds, 3),
                    "steps": self.steps_per_epoch,
                }
                if "ema" in scored:
                    ema = scored["ema"]
                    row["ema"] = {"miou": ema.miou, "dice": ema.dice, "pixel_accuracy": ema.pixel_accuracy}
                names = self.info["class_names"]
                self._epoch_seconds.append(row["seconds"])
                improved = record.add(row, {k: m.to_dict(names) for k, m in scored.items()})
                self.log(
                    f"epoch {epoch:>3}/{cfg.epochs}  loss {train_loss:.4f}  val mIoU {metrics.miou:.4f}  "
                    f"Dice {metrics.dice:.4f}  acc {metrics.pixel_accuracy:.4f}"
                    + (f"  EMA mIoU {scored['ema'].miou:.4f}" if "ema" in scored else "")
                    + f"  {row['seconds']:.1f}s"
                    + (f"  [best, {record.best_weights}]" if improved else "")
                )
                if self.dist.is_main:
                    self._save(epoch, improved)
                if cfg.patience is not None and record.since_best() >= cfg.patience and epoch < cfg.epochs:
                    record.stopped_early = epoch
                    self.log(
                        f"early stop after epoch {epoch}: val mIoU has not improved for {cfg.patience} "
                        f"epochs (best {record.best_miou:.4f} at epoch {record.best_epoch})"
                    )
                    break
        finally:
            record.close()
        seconds = time.perf_counter() - t0
        if self.dist.is_main:
            record.write_metrics(seconds)
            record.plots(self.best_path, self.val_ds, self.device)
            self.log(
                f"best val mIoU {record.best_miou:.4f} at epoch {record.best_epoch}; {seconds:.0f}s; "
                f"wrote {self.run_dir}/"
            )
        ddp.barrier(self.dist)
        return TrainResult(
            self.run_dir, self.best_path, self.last_path, record.best_miou, record.best_epoch,
            record.history, seconds,
        )  # fmt: skip

    def _setup(self) -> None:
        """Data, model, loss, loader, optimizer, schedule and the run record (restored on resume)."""

        cfg, dev = self.cfg, self.device
        self.train_ds, self.val_ds, info = build_datasets(cfg)
        if len(self.train_ds) == 0 or len(self.val_ds) == 0:
            raise InputError("need at least one training and one validation image")
        self.info, self.ignore = info, info["ignore_index"]
        mean, std = default_normalization(info["channels"])
        self.norm = Normalization(tuple(mean), tuple(std), "RGB" if info["channels"] == 3 else "GRAY")
        mcfg = model_spec(cfg, info["channels"], info["num_classes"])
        if self.resumed is not None and self.resumed.model_config != mcfg:
            raise InputError(f"'{cfg.resume}' was trained on different data/model settings; cannot resume")
        self.num_classes = mcfg.classes
        # channels_last lets oneDNN (CPU) and cuDNN pick their fast NHWC convolutions: ~1.3x here.
        model = new_model(cfg, mcfg) if self.resumed is None else build_model(mcfg)
        self.model = model = model.to(dev, memory_format=torch.channels_last)
        self.class_weights = weights = resolve_class_weights(cfg, self.train_ds, info)
        self.loss_fn = DiceCELoss(
            mcfg.classes,
            self.ignore,
            dice_weight=cfg.dice_weight,
            class_weight=None if weights is None else torch.tensor(weights),
            dice_classes=cfg.dice_classes,
        ).to(dev)
        self._make_loader()
        if self.batch_size == 1:
            self._check_single_image_batches(mcfg)
        total = self.steps_per_epoch * cfg.epochs
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        # Warm-up and decay are sized from the real number of optimizer steps of this run.
        decay_steps = None if cfg.decay_fraction >= 1 else math.ceil(cfg.decay_fraction * total)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            cosine_with_warmup(
                total, max(1, int(cfg.warmup_fraction * total)), floor=cfg.lr_floor, decay_steps=decay_steps
            ),
        )
        self.scaler = torch.amp.GradScaler("cuda") if cfg.amp and dev.type == "cuda" else None
        facts = {
            "batch_size": self.batch_size,
            "steps_per_epoch": self.steps_per_epoch,
            "class_weights": weights,
        }
        self.record = RunRecord(self.run_dir, cfg, info, facts, write=self.dist.is_main)
        self.start_epoch = 1
        if self.resumed is not None:
            st = self.resumed.train_state or {}
            model.load_state_dict(self.resumed.state_dict)
            self.optimizer.load_state_dict(st["optimizer"])
            self.sched.load_state_dict(st["scheduler"])
            if self.scaler is not None and st.get("scaler"):
                self.scaler.load_state_dict(st["scaler"])
            history = parse_json(str(st["history"]), f"'{cfg.resume}' (its training history)")
            self.record.restore(
                history, float(st["best_miou"]), int(st["best_epoch"]), str(st.get("best_weights", "raw"))
            )
            self.start_epoch = int(st["epoch"]) + 1
            self._carry_best(Path(str(cfg.resume)).parent)
            self.log(f"resuming {cfg.resume} at epoch {self.start_epoch}/{cfg.epochs}")
        self.ema: WeightAverage | None = None
        if cfg.ema_epochs > 0:
            self.ema = WeightAverage(model, ema_decay(cfg.ema_epochs, self.steps_per_epoch, total))
            if self.resumed is not None and (self.resumed.train_state or {}).get("ema"):
                self.ema.load_state_dict(self.resumed.train_state["ema"])  # type: ignore[index]
        self.record.open_tensorboard()
        self.net: torch.nn.Module = model
        if self.dist.enabled:
            self.net = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[dev.index] if dev.type == "cuda" else None
            )
        self.ckpt = Checkpoint(
            model_config=mcfg,
            class_names=info["class_names"],
            normalization=self.norm,
            img_size=info["img_size"],
            ignore_index=self.ignore,
        )
        self.best_path, self.last_path = self.run_dir / "best.pt", self.run_dir / "last.pt"
        self.data_desc = cfg.data or f"synthetic(seed={cfg.seed})"

    def _carry_best(self, origin: Path) -> None:
        """Resumed into another folder: bring the run's best.pt along, so the new folder is a whole
        run even if no later epoch improves; the original run is left as it was."""
        best = origin / "best.pt"
        if not self.dist.is_main or not best.is_file() or origin.resolve() == self.run_dir.resolve():
            return
        import shutil

        with atomic_path(self.run_dir / "best.pt") as tmp:
            shutil.copyfile(best, tmp)

    def _make_loader(self) -> None:
        cfg = self.cfg
        self.sampler = DistributedSampler(
            self.train_ds, num_replicas=self.dist.world_size, rank=self.dist.rank, shuffle=True, seed=cfg.seed
        )
        n = len(self.sampler)
        self.batch_size = bs = min(
            cfg.batch_size or auto_batch_size(len(self.train_ds), self.dist.world_size), n
        )
        self.loader = DataLoader(
            self.train_ds,
            batch_size=bs,
            sampler=self.sampler,
            num_workers=cfg.workers,
            drop_last=n > bs,  # a 1-image last batch would skew batch norm
            pin_memory=self.device.type == "cuda",
            # Not persistent: workers must see each epoch's set_epoch() (fresh augmentation draws).
            persistent_workers=False,
        )
        self.steps_per_epoch = len(self.loader)

    def _check_single_image_batches(self, mcfg: Any) -> None:
        """Refuse, before any step, a network whose BatchNorm cannot train on batches of one image."""
        from edgeseg.models.batchnorm import single_value_batchnorm

        layer = single_value_batchnorm(self.model, self.info["channels"], self.info["img_size"])
        if layer is None:
            return
        why = (
            "the training set has 1 image per process: add images"
            if len(self.sampler) == 1
            else "use --batch-size 2 or more"
        )
        raise InputError(
            f"{mcfg.describe()} cannot train on batches of one image: its layer {layer} would normalise "
            f"a single value per channel (after a global pooling), which BatchNorm cannot; {why}"
        )

    def _describe(self) -> str:
        cfg, info = self.cfg, self.info
        return (
            f"training {self.ckpt.model_config.describe()} on {self.data_desc}: "
            f"{len(self.train_ds)} train / {len(self.val_ds)} val images, {self.num_classes} classes, "
            f"{info['img_size'][0]}x{info['img_size'][1]}, {info['channels']} channel(s), {self.device}, "
            f"batch {self.batch_size} x {self.steps_per_epoch} steps/epoch"
            + (f", {self.dist.world_size} processes" if self.dist.enabled else "")
            + (", bf16 autocast" if cfg.bf16 and self.device.type == "cpu" else "")
            + (
                f", class weights ({cfg.class_weights}) " + ",".join(f"{w:.3g}" for w in self.class_weights)
                if self.class_weights
                else ""
            )
        )

    def _train_epoch(self, epoch: int) -> float:
        """One pass over the training set; returns the mean loss over all processes."""
        dev, steps = self.device, self.steps_per_epoch
        self.sampler.set_epoch(epoch)
        self.train_ds.set_epoch(epoch)
        self.net.train()
        loss_sum = torch.zeros((), device=dev)
        bf16 = self.cfg.bf16 and dev.type == "cpu"
        quiet = self.cfg.quiet or not self.dist.is_main
        images = self.batch_size * self.dist.world_size
        with track(f"epoch {epoch}/{self.cfg.epochs}", steps, quiet=quiet) as task:
            shown = 0.0
            for step, (batch, masks) in enumerate(self.loader, 1):
                x = to_input(batch, self.norm, dev)
                y = masks.to(dev, non_blocking=True)
                loss_sum += train_step(
                    self.net, x, y, self.loss_fn, self.optimizer, self.scaler, cpu_bf16=bf16
                )
                self.sched.step()
                if self.ema is not None:
                    self.ema.update(self.model)
                # Reading the loss syncs a GPU: at most twice a second, and on the first and last step.
                if step == 1 or step == steps or task.elapsed - shown >= 0.5:
                    shown = task.elapsed
                    mean_loss = float(loss_sum) / step
                    if not self.dist.enabled:  # a rank stopping alone would leave the others waiting
                        self._check_finite(mean_loss, epoch, step)
                    task.update(step, self._step_detail(epoch, step, mean_loss, images, task.elapsed))
        train_loss = float(ddp.all_reduce_sum(loss_sum, self.dist)) / (steps * self.dist.world_size)
        self._check_finite(train_loss, epoch, steps)
        return train_loss

    def _step_detail(self, epoch: int, step: int, loss: float, images: int, elapsed: float) -> str:
        """loss, images/s, the best val mIoU so far and the time the whole run has left."""
        steps, per_step = self.steps_per_epoch, elapsed / step
        # A finished epoch's time includes validation; before the first one, estimate from the steps.
        epoch_s = self._epoch_seconds[-1] if self._epoch_seconds else per_step * steps
        run_left = per_step * (steps - step) + epoch_s * (self.cfg.epochs - epoch)
        best = f"  best val mIoU {self.record.best_miou:.4f}" if self.record.history else ""
        rate = step * images / max(elapsed, 1e-9)
        return f"loss {loss:.4f}  {rate:.1f} img/s{best}  run {clock(run_left)} left"

    def _save(self, epoch: int, improved: bool) -> None:
        """best.pt (weights only) when improved, last.pt with the training state, metrics.json."""
        ckpt, record = self.ckpt, self.record
        # The loss is measured before each step, so the last step can leave NaN weights behind a
        # finite loss; such weights are never saved (they would load as a model that says class 0).
        for name, tensor in self.model.state_dict().items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                self._check_finite(float("nan"), epoch, self.steps_per_epoch, what=f"weight '{name}'")
        ckpt.training = record.summary(self.data_desc)
        if improved:
            ckpt.training["val"] = record.best
            ckpt.training["weights"] = record.best_weights
            ckpt.train_state = None
            best = self.ema.module if record.best_weights == "ema" and self.ema is not None else self.model
            save_checkpoint(self.best_path, ckpt, best)
        # last.pt holds the raw weights (what training continues from); the average rides along.
        ckpt.training["weights"] = "raw"
        ckpt.train_state = {
            "epoch": epoch,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.sched.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "history": json.dumps(record.history),
            "best_miou": record.best_miou,
            "best_epoch": record.best_epoch,
            "best_weights": record.best_weights,
            "config": json.dumps(self.cfg.to_dict()),
        }
        if self.ema is not None:
            ckpt.train_state["ema"] = self.ema.state_dict()
        save_checkpoint(self.last_path, ckpt, self.model)
        ckpt.train_state = None
        record.write_metrics()

    def _check_finite(self, loss: float, epoch: int, step: int, what: str = "the loss") -> None:
        """Stop a diverged run with one line; last.pt (the previous epoch) is left as it was."""
        if math.isfinite(loss):
            return
        done = self.record.history[-1]["epoch"] if self.record.history else 0
        kept = (
            f"{self.last_path} still holds epoch {done}, the last good one"
            if done and self.dist.is_main
            else "no checkpoint was written"
        )
        raise TrainingDiverged(
            f"training diverged: {what} became {loss} in epoch {epoch} (by step {step}); stopped. "
            f"{kept}; lower --lr (now {self.cfg.lr:g}) and train again"
        )

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
            batch_size=self.cfg.batch_size or 8,
            device=self.device,
            indices=shard,
        )
        total = ddp.all_reduce_sum(torch.from_numpy(cm.matrix).to(self.device), self.dist)
        full = ConfusionMatrix(classes, ignore)
        full.matrix = total.cpu().numpy()
        return full.compute()
