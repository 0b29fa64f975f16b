"""What a run leaves beside its checkpoints: metrics.json (rewritten after every epoch), optional
TensorBoard event files, and the figures (curves.png, samples.png) at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeseg._io import write_json
from edgeseg.errors import MissingDependencyError
from edgeseg.training.setup import TrainConfig

__all__ = ["RunRecord"]


class RunRecord:
    """The run's history and the facts metrics.json reports about it (chosen batch size, steps per
    epoch, class weights, the best epoch's per-class scores, an early stop)."""

    def __init__(
        self, run_dir: Path, cfg: TrainConfig, info: dict[str, Any], facts: dict[str, Any], *, write: bool
    ) -> None:
        self.run_dir, self.cfg, self.info, self.facts, self.write = run_dir, cfg, info, facts, write
        self.history: list[dict[str, Any]] = []
        self.best_miou, self.best_epoch = -1.0, 0
        self.best_weights = "raw"  # which weights best.pt holds: raw, or ema (their moving average)
        self.best: dict[str, Any] | None = None
        self.stopped_early: int | None = None
        self._tb: Any = None

    def open_tensorboard(self) -> None:
        """Start the event files (with --tensorboard), after `restore` on a resumed run; fails with
        the install command before any training when the package is missing."""
        if not (self.cfg.tensorboard and self.write):
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise MissingDependencyError("tensorboard", "tensorboard", "--tensorboard") from None
        # Beside metrics.json; a resumed run adds a new event file from its first new epoch on.
        purge = len(self.history) + 1 if self.history else None
        self._tb = SummaryWriter(log_dir=str(self.run_dir), purge_step=purge)

    def restore(
        self, history: list[dict[str, Any]], best_miou: float, best_epoch: int, best_weights: str = "raw"
    ) -> None:
        self.history, self.best_miou, self.best_epoch = history, best_miou, best_epoch
        self.best_weights = best_weights
        if 0 < best_epoch <= len(history):
            row = history[best_epoch - 1]
            self.best = row.get("ema_val") if best_weights == "ema" else row.get("val")

    def add(self, row: dict[str, Any], scored: dict[str, dict[str, Any]]) -> bool:
        """Record one epoch (`scored`: SegMetrics.to_dict of the raw weights, and of their average
        under "ema" when there is one); True when the selected weights' score is the new best.

        With an average, best.pt is chosen on the average alone (as timm's and Ultralytics' trainers
        do): the raw weights' score swings from epoch to epoch, and the highest swing on a small
        validation set is luck that the next images do not repeat, while the average's curve is
        smooth, so its best epoch is one the end of the run stays close to (benchmarks/README.md)."""
        row = {**row, "val": scored["raw"]}
        if "ema" in scored:
            row["ema_val"] = scored["ema"]
        self.history.append(row)
        weights = "ema" if "ema" in scored else "raw"
        val = scored[weights]
        improved = val["miou"] > self.best_miou
        if improved:
            self.best_miou, self.best_epoch, self.best = val["miou"], row["epoch"], val
            self.best_weights = weights
        if self._tb is not None:
            step = row["epoch"]
            self._tb.add_scalar("train/loss", row["train_loss"], step)
            self._tb.add_scalar("train/lr", row["lr"], step)
            for key in ("miou", "dice", "pixel_accuracy"):
                self._tb.add_scalar(f"val/{key}", row[key], step)
            if "ema" in row:
                self._tb.add_scalar("val_ema/miou", row["ema"]["miou"], step)
            for name, iou in row["val"]["iou_per_class"].items():
                if iou is not None:
                    self._tb.add_scalar(f"val_iou/{name}", iou, step)
            self._tb.flush()
        return improved

    def since_best(self) -> int:
        return self.history[-1]["epoch"] - self.best_epoch if self.history else 0

    def summary(self, data_desc: str) -> dict[str, Any]:
        """The training facts stored in each checkpoint."""
        return {
            "data": data_desc,
            # Absolute, so an export run from anywhere finds the folder to calibrate on by default.
            "data_path": str(Path(self.cfg.data).resolve()) if self.cfg.data else None,
            "val_data": self.cfg.val_data,
            "epoch": self.history[-1]["epoch"] if self.history else 0,
            "epochs": self.cfg.epochs,
            "best_epoch": self.best_epoch,
            "best_miou": self.best_miou,
            "best_weights": self.best_weights,
            "seed": self.cfg.seed,
            "binary_255": self.info["binary_255"],
            "config": self.cfg.to_dict(),
            **self.facts,
        }

    def write_metrics(self, seconds: float | None = None) -> None:
        if not self.write:
            return
        write_json(
            self.run_dir / "metrics.json",
            {
                "best_epoch": self.best_epoch,
                "best_miou": self.best_miou,
                "best_weights": self.best_weights,
                "best": self.best,
                "stopped_early": self.stopped_early,
                **self.facts,
                "epochs": self.history,
                "class_names": self.info["class_names"],
                "img_size": list(self.info["img_size"]),
                "seconds": None if seconds is None else round(seconds, 1),
                "config": self.cfg.to_dict(),
            },
        )

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def plots(self, best_path: Path, val_ds: Any, device: Any) -> None:
        from edgeseg.models.checkpoint import load_checkpoint
        from edgeseg.training.figures import plot_curves, plot_samples

        plot_curves(self.history, self.run_dir / "curves.png", best_epoch=self.best_epoch, best=self.best)
        plot_samples(load_checkpoint(best_path), val_ds, self.run_dir / "samples.png", device=device)
