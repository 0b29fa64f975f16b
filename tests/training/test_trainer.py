"""The trainer's rules and stops: batch size from the dataset size, class weights, the NaN-loss
stop, early stopping, TensorBoard files, the best epoch's per-class IoU in metrics.json."""

from __future__ import annotations

import builtins
import json
import math
from pathlib import Path

import pytest
import torch

from edgeseg.cli import main
from edgeseg.errors import InputError, MissingDependencyError
from edgeseg.evaluation.metrics import SegMetrics
from edgeseg.models.checkpoint import load_checkpoint
from edgeseg.training import auto_batch_size, train
from edgeseg.training.losses import DiceCELoss, class_weights_from_spec, median_frequency_weights
from tests.helpers import make_dataset

TINY = ["--img-size", "32", "--depth", "2", "--width", "4", "--quiet"]


@pytest.mark.parametrize(
    ("n_train", "world", "batch"),
    [(1, 1, 4), (8, 1, 4), (24, 1, 4), (40, 1, 4), (64, 1, 8), (123, 1, 8), (123, 2, 4), (320, 1, 16),
     (100_000, 1, 16)],
)  # fmt: skip
def test_auto_batch_size_keeps_at_least_8_steps_between_4_and_16(n_train: int, world: int, batch: int):
    assert auto_batch_size(n_train, world) == batch
    if 4 < batch < 16:  # in range: >= 8 steps per epoch, and the next size up would give fewer
        assert n_train // (batch * world) >= 8 > n_train // (2 * batch * world)


def test_median_frequency_weights_on_hand_made_masks():
    a = torch.tensor([[0, 0], [0, 1]]).numpy()  # class 0: 3 px, class 1: 1 px, 4 labelled
    b = torch.tensor([[0, 2], [2, 255]]).numpy()  # class 0: 1 px, class 2: 2 px, 3 labelled
    # freq(0) = 4/7, freq(1) = 1/4, freq(2) = 2/3; median 4/7; class 3 is absent -> 1
    weights = median_frequency_weights([a, b], num_classes=4, ignore_index=255)
    assert weights == pytest.approx([1.0, 16 / 7, 6 / 7, 1.0], rel=1e-12)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("1,2", "lists 2 values but the data has 3 classes"),
        ("1,x,2", "must be none, auto, sqrt, sqrt-if-imbalanced or 3 comma-separated numbers"),
        ("1,-1,2", "finite, non-negative"),
        ("0,0,0", "not all 0"),
        ("1,nan,1", "finite, non-negative"),
    ],
)
def test_bad_class_weights_are_input_errors(spec: str, message: str):
    with pytest.raises(InputError, match=message):
        class_weights_from_spec(spec, 3)
    assert class_weights_from_spec("none", 3) is None
    assert class_weights_from_spec("1,2.5,0", 3) == [1.0, 2.5, 0.0]


def test_auto_weights_reach_the_loss_and_metrics_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    data = make_dataset(tmp_path / "d", n=8)
    run = tmp_path / "run"
    rc = main([str(a) for a in ["train", "--data", data, "--epochs", "1", "--out", run,
                                "--class-weights", "auto", *TINY]])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    metrics = json.loads((run / "metrics.json").read_text())
    ckpt = load_checkpoint(run / "best.pt")
    # 8 images, 2 for validation: 6 train images -> batch 4 (the floor: batch norm needs it), one
    # step an epoch (a partial last batch is dropped)
    assert metrics["batch_size"] == 4 and metrics["steps_per_epoch"] == 1
    weights = metrics["class_weights"]
    assert len(weights) == 3 and min(weights) > 0 and any(w != 1.0 for w in weights)
    assert ckpt.training["class_weights"] == weights
    assert ckpt.training["data_path"] == str(data.resolve())  # the default INT8 calibration source
    # The best epoch's per-class scores, as in the epoch's row.
    assert set(metrics["best"]["iou_per_class"]) == {"class0", "class1", "class2"}
    best_row = metrics["epochs"][metrics["best_epoch"] - 1]
    assert metrics["best"] == best_row["ema_val" if metrics["best_weights"] == "ema" else "val"]
    assert (run / "curves.png").stat().st_size > 0

    rc = main([str(a) for a in ["train", "--data", data, "--out", tmp_path / "r2",
                                "--class-weights", "1,2", *TINY]])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "--class-weights lists 2 values but the data has 3 classes" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "r2").exists()


def test_weighted_loss_uses_the_weights():
    logits = torch.zeros(1, 2, 2, 2)
    target = torch.tensor([[[0, 0], [0, 1]]])
    plain = DiceCELoss(2, dice_weight=0)(logits, target)
    weighted = DiceCELoss(2, dice_weight=0, class_weight=torch.tensor([1.0, 3.0]))(logits, target)
    # Uniform logits: CE is log 2 per pixel whatever the weights (a weighted mean of equal terms).
    assert float(plain) == pytest.approx(math.log(2)) and float(weighted) == pytest.approx(math.log(2))
    logits[0, 1] = 1.0  # favour class 1: its (3x weighted) pixel now dominates the mean
    assert float(DiceCELoss(2, dice_weight=0, class_weight=torch.tensor([1.0, 3.0]))(logits, target)) < float(
        DiceCELoss(2, dice_weight=0)(logits, target)
    )


def test_nan_loss_stops_with_one_line_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    calls = {"n": 0}

    class NanAfterFirstEpoch(DiceCELoss):
        def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            calls["n"] += 1
            loss = super().forward(logits, target)
            return loss * float("nan") if calls["n"] > 3 else loss  # 3 steps an epoch (batch 2)

    monkeypatch.setattr("edgeseg.training.loop.DiceCELoss", NanAfterFirstEpoch)
    data = make_dataset(tmp_path / "d", n=8)
    run = tmp_path / "run"
    rc = main([str(a) for a in ["train", "--data", data, "--epochs", "3", "--batch-size", "2", "--out", run,
                                *TINY]])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert rc == 1
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "training diverged: the loss became nan in epoch 2" in err
    assert f"{run / 'last.pt'} still holds epoch 1, the last good one" in err and "lower --lr" in err
    last = load_checkpoint(run / "last.pt", with_train_state=True)
    assert last.train_state["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in last.state_dict.values() if t.is_floating_point())
    assert load_checkpoint(run / "best.pt").build_model("cpu") is not None
    assert [e["epoch"] for e in json.loads((run / "metrics.json").read_text())["epochs"]] == [1]


def test_early_stopping_stops_at_the_expected_epoch_on_a_plateau(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    # Val mIoU rises for two epochs, then stays flat: best = epoch 2, patience 2 -> stop after 4.
    scores = iter([0.3, 0.5, 0.5, 0.4, 0.9, 0.9])

    def fake_validate(self, model, val_ds, norm, classes, ignore):  # type: ignore[no-untyped-def]
        m = next(scores)
        return SegMetrics(m, m, m, [m] * classes, [m] * classes, 1)

    monkeypatch.setattr("edgeseg.training.loop._Trainer._validate", fake_validate)
    data = make_dataset(tmp_path / "d", n=6)
    # ema_epochs=0: one score an epoch (with the average on, both it and the raw weights are scored)
    result = train(data=str(data), img_size=(32, 32), depth=2, width=4, epochs=6, patience=2,
                   ema_epochs=0, out=str(tmp_path / "run"))  # fmt: skip
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    assert result.best_epoch == 2 and result.best_miou == 0.5
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["stopped_early"] == 4 and metrics["best"]["miou"] == 0.5
    assert "early stop after epoch 4: val mIoU has not improved for 2 epochs" in capsys.readouterr().err


def test_tensorboard_event_files_beside_metrics_json(tmp_path: Path):
    pytest.importorskip("tensorboard", reason="the 'tensorboard' extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = make_dataset(tmp_path / "d", n=6)
    run = tmp_path / "run"
    train(data=str(data), img_size=(32, 32), depth=2, width=4, epochs=2, tensorboard=True,
          out=str(run), quiet=True)  # fmt: skip
    events = list(run.glob("events.out.tfevents.*"))
    assert len(events) == 1 and (run / "metrics.json").is_file()
    acc = EventAccumulator(str(run))
    acc.Reload()
    history = json.loads((run / "metrics.json").read_text())["epochs"]
    logged = [(e.step, e.value) for e in acc.Scalars("val/miou")]
    assert logged == [(h["epoch"], pytest.approx(h["miou"], abs=1e-6)) for h in history]
    assert "train/loss" in acc.Tags()["scalars"] and "val_iou/class1" in acc.Tags()["scalars"]


def test_tensorboard_missing_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name.startswith("torch.utils.tensorboard") or name.startswith("tensorboard"):
            raise ImportError(f"No module named '{name}'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    data = make_dataset(tmp_path / "d", n=6)
    with pytest.raises(
        MissingDependencyError, match=r"--tensorboard needs .*pip install 'edgeseg\[tensorboard\]'"
    ):
        train(data=str(data), img_size=(32, 32), depth=2, width=4, epochs=1, tensorboard=True,
              out=str(tmp_path / "run"), quiet=True)  # fmt: skip
    assert not (tmp_path / "run" / "best.pt").exists()
