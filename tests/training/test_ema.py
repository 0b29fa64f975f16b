"""The end of a run: the moving average of the weights (scored beside the raw weights, kept in
best.pt when better, carried through --resume), the short final decay of the learning rate, and
the Dice term's choice of classes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from edgeseg.models.checkpoint import load_checkpoint
from edgeseg.training import TrainConfig, cosine_with_warmup, train
from edgeseg.training.ema import WeightAverage, ema_decay
from edgeseg.training.losses import DiceCELoss
from tests.helpers import make_dataset, run_cli

TINY = {"img_size": (32, 32), "depth": 2, "width": 4, "quiet": True}


def test_weight_average_warms_up_then_follows_its_decay():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    avg = WeightAverage(model, decay=0.5)
    weight = model[0].weight
    expected = None
    for step, value in enumerate([1.0, 3.0, 5.0, 7.0, 9.0]):
        with torch.no_grad():
            weight.fill_(value)
        model[1].num_batches_tracked.fill_(step + 1)
        avg.update(model)
        # the first update copies; then each keeps min(decay, (1 + n) / (10 + n)) of the average
        kept = min(0.5, (1 + step) / (10 + step))
        expected = value if expected is None else kept * expected + (1 - kept) * value
        assert torch.allclose(avg.module[0].weight, torch.full_like(weight, expected))
        assert int(avg.module[1].num_batches_tracked) == step + 1  # counters: the latest value
    assert ema_decay(2, 10) == pytest.approx(1 - 1 / 20)
    assert ema_decay(0.01, 10) == 0.0  # a time constant under one step keeps no history
    # at most a tenth of the run: 3 epochs of 6 steps in a 40-epoch run, but 2 steps in a 20-step one
    assert ema_decay(3, 6, total_steps=240) == pytest.approx(1 - 1 / 18)
    assert ema_decay(3, 2, total_steps=20) == pytest.approx(1 - 1 / 2)


def test_lr_decays_only_over_the_last_steps():
    factor = cosine_with_warmup(100, 10, floor=0.0, decay_steps=20)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert all(factor(s) == pytest.approx(1.0) for s in range(10, 81))
    assert factor(90) == pytest.approx(0.5) and factor(100) == pytest.approx(0.0)
    assert [factor(s) for s in range(80, 101)] == sorted((factor(s) for s in range(80, 101)), reverse=True)


def test_dice_classes_choose_which_classes_the_dice_term_averages():
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[0, :2] = 1  # class 2 is absent from this batch
    logits = torch.zeros(1, 3, 4, 4)
    logits[0, 1, :2] = 4.0  # class 1 right where it is; the background half-hearted everywhere else
    logits[0, 2, 2:] = 1.0  # some belief in the absent class: a false positive to penalise
    kinds = ("present", "foreground", "all_foreground")
    loss = {k: DiceCELoss(3, dice_classes=k)(logits, target) for k in kinds}
    ce = torch.nn.functional.cross_entropy(logits, target)
    probs = logits.softmax(1)

    def dice(c: int) -> torch.Tensor:
        onehot = (target == c).float()
        return (2 * (probs[:, c] * onehot).sum() + 1) / (probs[:, c].sum() + onehot.sum() + 1)

    assert loss["present"] == pytest.approx(float(ce + 1 - (dice(0) + dice(1)) / 2), rel=1e-5)
    assert loss["foreground"] == pytest.approx(float(ce + 1 - dice(1)), rel=1e-5)
    # MONAI's include_background=False, as the tutorial loop writes it: the absent class counts too
    assert loss["all_foreground"] == pytest.approx(float(ce + 1 - (dice(1) + dice(2)) / 2), rel=1e-5)
    assert dice(2) < 0.5  # so that term is no free pass
    with pytest.raises(ValueError, match="present, foreground or all_foreground"):
        DiceCELoss(3, dice_classes="background")


def test_runs_saved_before_these_options_resume_as_they_were():
    saved = TrainConfig().to_dict()
    for name in ("decay_fraction", "ema_epochs", "dice_classes"):
        del saved[name]
    old = TrainConfig.from_dict(saved)
    assert (old.decay_fraction, old.ema_epochs, old.dice_classes) == (1.0, 0.0, "present")


def test_a_run_scores_raw_and_averaged_weights_and_best_pt_holds_the_average(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    data = make_dataset(tmp_path / "d", n=8)
    val = make_dataset(tmp_path / "v", n=4, seed=1)
    run = tmp_path / "run"
    train(data=str(data), val_data=str(val), epochs=3, ema_epochs=1.0, out=str(run), **TINY)
    metrics = json.loads((run / "metrics.json").read_text())
    averaged = [e["ema"]["miou"] for e in metrics["epochs"]]
    assert all(0 <= e["miou"] <= 1 for e in metrics["epochs"])  # the raw weights are scored too
    # chosen on the average alone: its first best epoch, whatever the raw weights scored
    assert metrics["best_weights"] == "ema"
    assert metrics["best_epoch"] == averaged.index(max(averaged)) + 1
    assert metrics["best_miou"] == pytest.approx(max(averaged))
    assert metrics["best"]["miou"] == pytest.approx(max(averaged))
    ckpt = load_checkpoint(run / "best.pt")
    assert ckpt.training["weights"] == "ema"
    # best.pt's weights score what metrics.json says, with the same command a user runs
    rc, _, err = run_cli(["eval", run / "best.pt", "--data", val, "--json", tmp_path / "e.json"], capsys)
    assert rc == 0, err
    assert json.loads((tmp_path / "e.json").read_text())["miou"] == pytest.approx(metrics["best_miou"])
    last = load_checkpoint(run / "last.pt", with_train_state=True)
    assert last.training["weights"] == "raw" and "ema" in (last.train_state or {})


def _epoch(epoch: int, raw: float, ema: float | None) -> tuple[dict, dict]:
    row = {"epoch": epoch, "train_loss": 1.0, "miou": raw, "dice": raw, "pixel_accuracy": raw, "lr": 1e-3}
    scored = {"raw": {"miou": raw, "iou_per_class": {}}}
    if ema is not None:
        scored["ema"] = {"miou": ema, "iou_per_class": {}}
    return row, scored


@pytest.mark.parametrize(
    ("ema", "best_epoch", "weights"),
    [([0.50, 0.55, 0.60, 0.62], 4, "ema"), (None, 2, "raw")],
)
def test_best_follows_the_average_not_a_raw_spike(tmp_path: Path, ema, best_epoch: int, weights: str):
    from edgeseg.training.record import RunRecord

    record = RunRecord(tmp_path, TrainConfig(), {"class_names": []}, {}, write=False)
    raw = [0.50, 0.71, 0.58, 0.60]  # one lucky epoch, far above what the run ends at
    improved = [record.add(*_epoch(i + 1, r, None if ema is None else ema[i])) for i, r in enumerate(raw)]
    assert (record.best_epoch, record.best_weights) == (best_epoch, weights)
    assert record.best_miou == (ema or raw)[best_epoch - 1]
    assert improved == ([True, True, True, True] if ema else [True, True, False, False])
    assert record.since_best() == 4 - best_epoch  # --patience counts from the selected weights' best


def test_resume_carries_the_average_on(tmp_path: Path):
    data = make_dataset(tmp_path / "d", n=8)
    options = {"data": str(data), "epochs": 2, "ema_epochs": 1.0, "seed": 3, **TINY}
    whole = train(out=str(tmp_path / "whole"), **options)
    train(out=str(tmp_path / "part"), **{**options, "epochs": 1})
    resumed = train(resume=str(tmp_path / "part" / "last.pt"), epochs=2)
    assert resumed.history[-1]["ema"]["miou"] == pytest.approx(whole.history[-1]["ema"]["miou"])
    a = load_checkpoint(tmp_path / "whole" / "last.pt", with_train_state=True).train_state["ema"]  # type: ignore[index]
    b = load_checkpoint(tmp_path / "part" / "last.pt", with_train_state=True).train_state["ema"]  # type: ignore[index]
    assert int(a["n_averaged"]) == int(b["n_averaged"]) > 0
    for name, tensor in a["weights"].items():
        assert torch.allclose(tensor.float(), b["weights"][name].float(), atol=1e-6), name
