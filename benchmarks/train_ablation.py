"""One training setting changed at a time against `edgeseg train`'s defaults, on a small dataset of
train_data.py: which default helps and which hurts.

    python benchmarks/train_ablation.py synthetic [--epochs 10] [--seed 0] [--out DIR]
                                        [--variants defaults,const-lr,...]

Each variant trains through `edgeseg.training.train` with the defaults plus the TrainConfig fields
named in VARIANTS, same data, epochs and seed, and writes OUT/<dataset>-s<seed>-e<epochs>-<variant>.json
(final and best val mIoU, the curve, optimizer steps, CPU seconds of the process); a variant already
there is not rerun, so several invocations with disjoint --variants can share the cores. The table of
every variant found in OUT is printed at the end, with the reference loop's figures from
train_compare.py when its file is in OUT too.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from train_data import DATASETS, make_dataset  # noqa: E402

# variant -> TrainConfig overrides (what changes from the defaults)
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "old-defaults": {"lr_floor": 0.01},  # edgeseg 0.3: cosine down to 1 % of the peak
    "const-lr": {"lr_floor": 1.0},
    "floor-0.1": {"lr_floor": 0.1},
    "floor-0.3": {"lr_floor": 0.3},
    "lr-2e-3": {"lr": 2e-3},
    "lr-1e-3": {"lr": 1e-3},
    "lr-5e-3": {"lr": 5e-3},
    "wd-0": {"weight_decay": 0.0},
    "warmup-0": {"warmup_fraction": 0.0},
    "warmup-0.2": {"warmup_fraction": 0.2},
    "ce-only": {"dice_weight": 0.0},
    "aug-none": {"augment_ops": "none"},
    "aug-flip": {"augment_ops": "flip"},
    "aug-rot90": {"augment_ops": "rot90"},
    "aug-zoom": {"augment_ops": "zoom"},
    "aug-color": {"augment_ops": "color"},
    "aug-flip-rot90": {"augment_ops": "flip,rot90"},
    "aug-no-zoom": {"augment_ops": "flip,rot90,color"},
    "aug-no-color": {"augment_ops": "flip,rot90,zoom"},
    "aug-flip-vflip-rot90": {"augment_ops": "flip,vflip,rot90"},
    "aug-all": {"augment_ops": "flip,vflip,rot90,zoom,color"},
}


def run_variant(name: str, overrides: dict[str, Any], args: argparse.Namespace, out: Path) -> None:
    from edgeseg.training import TrainConfig, train

    train_dir, val_dir, ignore = make_dataset(args.dataset)
    cfg = TrainConfig(
        data=str(train_dir),
        val_data=str(val_dir),
        ignore_index=ignore,
        epochs=args.epochs,
        seed=args.seed,
        out=tempfile.mkdtemp(prefix="edgeseg-ablation-"),
        exist_ok=True,
        quiet=True,
    )
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = train(cfg, **overrides)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    curve = [e["miou"] for e in metrics["epochs"]]
    out.write_text(
        json.dumps(
            {
                "variant": name,
                "overrides": overrides,
                "miou": curve,
                "final": curve[-1],
                "best": max(curve),
                "batch_size": metrics["batch_size"],
                "steps": sum(e["steps"] for e in metrics["epochs"]),
                "cpu_seconds": round(cpu, 1),
                "wall_seconds": round(wall, 1),
            }
        )
    )
    print(f"{name}: final {curve[-1]:.4f}  best {max(curve):.4f}  cpu {cpu:.0f}s", flush=True)


def table(args: argparse.Namespace) -> None:
    stem = f"{args.dataset}-s{args.seed}-e{args.epochs}"
    ref = args.out / f"{stem}-reference.json"
    rows = []
    if ref.exists():
        r = json.loads(ref.read_text())
        rows.append(("reference loop", r["miou"][-1], max(r["miou"]), r.get("cpu_minutes")))
    for name in VARIANTS:
        f = args.out / f"{stem}-{name}.json"
        if f.exists():
            d = json.loads(f.read_text())
            rows.append((name, d["final"], d["best"], round(d["cpu_seconds"] / 60, 1)))
    print(f"{args.dataset}, {args.epochs} epochs, seed {args.seed}")
    print(f"{'variant':<22} {'final':>7} {'best':>7} {'CPU min':>8}")
    for name, final, best, cpu in rows:
        print(f"{name:<22} {final:7.4f} {best:7.4f} {cpu if cpu is not None else '?':>8}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset", choices=DATASETS)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "edgeseg-compare")
    args = p.parse_args()
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        p.error(f"unknown variant '{unknown[0]}'; choose from {', '.join(VARIANTS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{args.dataset}-s{args.seed}-e{args.epochs}"
    for name in names:
        out = args.out / f"{stem}-{name}.json"
        if not out.exists():
            run_variant(name, VARIANTS[name], args, out)
    table(args)


if __name__ == "__main__":
    main()
