"""`edgeseg train` with its defaults versus the plain PyTorch loop (train_reference.py) on the same
data, same epochs, same seed; prints both val mIoU curves and the ratio of the final values.

    python benchmarks/train_compare.py road [--epochs 40] [--seed 0] [--only reference|edgeseg]
                                           [--out DIR] [-- EXTRA edgeseg train OPTIONS]

Datasets (built by train_data.py into a cache folder): road, camvid11, synthetic. Each side writes
its curve to OUT/<dataset>-s<seed>-e<epochs>-<side>.json, and a side already there is not rerun
(delete the file, or pass another --out, to measure again), so the two sides can run one at a time.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from train_data import DATASETS, make_dataset  # noqa: E402


def run_reference(train: Path, val: Path, ignore: int | None, args: argparse.Namespace, out: Path) -> None:
    cmd = [sys.executable, str(HERE / "train_reference.py"), str(train), str(val)]
    cmd += ["--epochs", str(args.epochs), "--seed", str(args.seed), "--json", str(out)]
    cmd += ["--ignore-index", str(ignore)] if ignore is not None else []
    t0, c0 = time.perf_counter(), _children_cpu()
    subprocess.run(cmd, check=True)
    _add_minutes(out, t0, c0)


def run_edgeseg(train: Path, val: Path, ignore: int | None, args: argparse.Namespace, out: Path) -> None:
    run_dir = Path(tempfile.mkdtemp(prefix="edgeseg-compare-"))
    cmd = [sys.executable, "-m", "edgeseg", "train", "--data", str(train), "--val-data", str(val)]
    cmd += ["--epochs", str(args.epochs), "--seed", str(args.seed), "--out", str(run_dir), "--exist-ok"]
    cmd += ["--ignore-index", str(ignore)] if ignore is not None else []
    t0, c0 = time.perf_counter(), _children_cpu()
    subprocess.run(cmd + args.extra, check=True)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    out.write_text(
        json.dumps(
            {
                "miou": [e["miou"] for e in metrics["epochs"]],
                "per_class": metrics["epochs"][-1]["val"],
                "best_per_class": metrics["best"],
                "batch_size": metrics["batch_size"],
                "run_dir": str(run_dir),
                "options": args.extra,
            }
        )
    )
    _add_minutes(out, t0, c0)


def _children_cpu() -> float:
    """CPU seconds (user + system, all threads) of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _add_minutes(path: Path, t0: float, cpu0: float) -> None:
    # Wall minutes depend on what else runs on the machine; CPU minutes are the work done.
    data = json.loads(path.read_text())
    data["minutes"] = round((time.perf_counter() - t0) / 60, 1)
    data["cpu_minutes"] = round((_children_cpu() - cpu0) / 60, 2)
    path.write_text(json.dumps(data))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset", choices=DATASETS)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", choices=("reference", "edgeseg"))
    p.add_argument("--tag", default="", help="suffix for the edgeseg side's file (with EXTRA options)")
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "edgeseg-compare")
    args, extra = p.parse_known_args()  # the rest (after --) goes to edgeseg train
    args.extra = [a for a in extra if a != "--"]
    train, val, ignore = make_dataset(args.dataset)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{args.dataset}-s{args.seed}-e{args.epochs}"
    files = {
        "reference": args.out / f"{stem}-reference.json",
        "edgeseg": args.out / f"{stem}-edgeseg{args.tag}.json",
    }
    for side, runner in (("reference", run_reference), ("edgeseg", run_edgeseg)):
        if args.only in (None, side) and not files[side].exists():
            runner(train, val, ignore, args, files[side])
    curves = {s: json.loads(f.read_text()) for s, f in files.items() if f.exists()}
    print(f"{args.dataset}: {args.epochs} epochs, seed {args.seed}")
    print("epoch  " + "  ".join(f"{s:>9}" for s in curves))
    for e in range(args.epochs):
        print(
            f"{e + 1:>5}  "
            + "  ".join(f"{c['miou'][e]:9.4f}" if e < len(c["miou"]) else " " * 9 for c in curves.values())
        )
    for s, c in curves.items():
        print(
            f"{s}: final {c['miou'][-1]:.4f}  best {max(c['miou']):.4f}  {c.get('minutes', '?')} min wall, "
            f"{c.get('cpu_minutes', '?')} min CPU"
        )
    if len(curves) == 2:
        ref, es = curves["reference"]["miou"][-1], curves["edgeseg"]["miou"][-1]
        print(f"final val mIoU edgeseg / reference = {es / ref:.3f}")


if __name__ == "__main__":
    main()
