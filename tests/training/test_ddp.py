"""Multi-process training with torchrun: 2 CPU processes over gloo, only rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import make_dataset


def test_torchrun_two_cpu_processes(tmp_path: Path):
    train_dir = make_dataset(tmp_path / "train", n=8)
    val_dir = make_dataset(tmp_path / "val", n=5, seed=3)  # odd count: shards of 3 and 2
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "edgeseg", "train", "--data", str(train_dir), "--val-data", str(val_dir), "--device", "cpu",
         "--img-size", "32", "--depth", "2", "--width", "4", "--batch-size", "2", "--epochs", "2",
         "--out", str(run)],
        capture_output=True, text=True, env=env, timeout=240, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 processes" in proc.stderr  # it really ran distributed
    assert sorted(p.name for p in run.iterdir()) == [
        "best.pt", "curves.png", "last.pt", "metrics.json", "samples.png"
    ]  # fmt: skip
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 2
    # The all-reduced confusion matrix must equal a single-process evaluation of the whole val set.
    from edgeseg.evaluation.evaluate import evaluate_checkpoint
    from edgeseg.models.checkpoint import load_checkpoint

    report = evaluate_checkpoint(load_checkpoint(run / "best.pt"), val_dir, device="cpu")
    assert abs(report.metrics.miou - metrics["best_miou"]) < 1e-9
