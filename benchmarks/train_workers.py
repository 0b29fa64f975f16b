"""Training steps/s of `edgeseg train` with 0, 1, 2 ... DataLoader worker processes, same data, model
and seed: what `--workers` default to.

    python benchmarks/train_workers.py TRAIN_DIR VAL_DIR [--img-size 320x240] [--workers 0,1,2]
                                       [--epochs 2] [--rounds 1] [--ignore-index K]

Each setting runs the real training loop (`edgeseg.training.train`) for --epochs epochs; the figure is
the optimizer steps per second of the epochs after the first (the first one decodes every image into
the dataset's cache with 0 workers). Rounds are interleaved, so a background job slows all settings
alike; the ratio to 0 workers is printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile


def steps_per_second(args: argparse.Namespace, workers: int) -> float:
    from edgeseg.data import parse_img_size
    from edgeseg.training import TrainConfig, train

    cfg = TrainConfig(
        data=args.train,
        val_data=args.val,
        img_size=parse_img_size(args.img_size) if args.img_size else None,
        ignore_index=args.ignore_index,
        epochs=args.epochs,
        workers=workers,
        out=tempfile.mkdtemp(prefix="edgeseg-workers-"),
        exist_ok=True,
        quiet=True,
    )
    result = train(cfg)
    later = json.loads((result.run_dir / "metrics.json").read_text())["epochs"][1:]
    return sum(e["steps"] for e in later) / sum(e["train_seconds"] for e in later)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("train")
    p.add_argument("val")
    p.add_argument("--img-size")
    p.add_argument("--ignore-index", type=int)
    p.add_argument("--workers", default="0,1,2")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1)
    args = p.parse_args()
    if args.epochs < 2:
        p.error("--epochs must be at least 2 (the first epoch fills the cache and is not counted)")
    settings = [int(w) for w in args.workers.split(",")]
    rates: dict[int, list[float]] = {w: [] for w in settings}
    for _ in range(args.rounds):
        for w in settings:
            rates[w].append(steps_per_second(args, w))
            print(f"workers {w}: {rates[w][-1]:.3f} steps/s", flush=True)
    base = statistics.median(rates[settings[0]])
    for w in settings:
        rate = statistics.median(rates[w])
        print(f"workers {w}: median {rate:.3f} steps/s, {rate / base:.2f}x workers {settings[0]}")


if __name__ == "__main__":
    main()
