"""edgeseg's training defaults versus the plain tutorial loop (train_reference.py), over several seeds:
per seed the best-epoch and final-epoch val mIoU of both sides, their mean and spread, CPU minutes.

    python benchmarks/train_compare.py thin|road|camvid11|synthetic [--size WxH] [--epochs 30]
        [--val-images N] [--seeds 0,1,2] [--sides reference,edgeseg] [--jobs 2]
        [--set FIELD=VALUE ...] [--tag NAME]
    python benchmarks/train_compare.py --train DIR --val DIR [--ignore-index K] ...

Datasets are built by train_data.py into a cache folder (thin: grayscale thin curves, drawn there;
road, camvid11: from camvid-mini; synthetic: edgeseg's scenes); `--train/--val` takes any two
folders instead. The edgeseg side trains through the public API, `edgeseg.train(...)`, with every
option at its default except data, epochs and seed, plus the `--set` TrainConfig fields (an
ablation: `--set lr=2e-3 --set batch_size=4`). Each run is its own process with one torch thread
(`--jobs` of them at a time), and writes OUT/<dataset>-e<epochs>-<side><tag>-s<seed>.json; a run
already there is not repeated, so a table can be built up over several invocations.

edgeseg's figures: `best` is what its best.pt holds (the best epoch of the weights' moving average
when it is on, else of the raw weights), `final` the last epoch's score of those same weights;
`raw` and `ema` give both curves' best/final.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from train_data import DATASETS, SPECS, make_dataset  # noqa: E402

SIDES = ("reference", "edgeseg")


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


def worker(args: argparse.Namespace) -> None:
    """One run of one side, in this process; writes its result file."""
    import torch

    torch.set_num_threads(1)
    t0, c0 = time.perf_counter(), _cpu_seconds()
    if args.worker == "reference":
        from train_reference import train_reference

        result = train_reference(
            args.train,
            args.val,
            epochs=args.epochs,
            seed=args.seed,
            ignore_index=args.ignore_index,
            log=False,
        )
        result.update(raw=result["miou"], best=max(result["miou"]), final=result["miou"][-1])
    else:
        import edgeseg

        overrides = dict(s.split("=", 1) for s in args.set)
        run_dir = Path(tempfile.mkdtemp(prefix="edgeseg-compare-"))
        edgeseg.train(
            data=args.train,
            val_data=args.val,
            ignore_index=args.ignore_index,
            epochs=args.epochs,
            seed=args.seed,
            out=str(run_dir),
            exist_ok=True,
            quiet=True,
            **{k: _value(v) for k, v in overrides.items()},
        )
        m = json.loads((run_dir / "metrics.json").read_text())
        raw = [e["miou"] for e in m["epochs"]]
        ema = [e["ema"]["miou"] for e in m["epochs"]] if "ema" in m["epochs"][0] else None
        result = {
            "raw": raw,
            "ema": ema,
            "miou": ema or raw,
            "best": m["best_miou"],
            "best_epoch": m["best_epoch"],
            "best_weights": m.get("best_weights", "raw"),
            "final": (ema or raw)[-1],
            "batch_size": m["batch_size"],
            "steps": sum(e["steps"] for e in m["epochs"]),
            "options": overrides,
            "run_dir": str(run_dir),
        }
    result["cpu_minutes"] = round((_cpu_seconds() - c0) / 60, 2)
    result["wall_minutes"] = round((time.perf_counter() - t0) / 60, 2)
    Path(args.result).write_text(json.dumps(result))


def _launch(args: argparse.Namespace, side: str, seed: int, path: Path) -> None:
    cmd = [sys.executable, __file__, "--worker", side, "--seed", str(seed), "--result", str(path)]
    cmd += ["--train", str(args.train), "--val", str(args.val), "--epochs", str(args.epochs)]
    cmd += ["--ignore-index", str(args.ignore_index)] if args.ignore_index is not None else []
    for s in args.set:
        cmd += ["--set", s]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    log = path.with_suffix(".log")
    with log.open("w") as f:
        rc = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    print(f"{path.name}: " + ("done" if rc == 0 else f"FAILED (exit {rc}), see {log}"), flush=True)


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f} ({min(values):.4f}..{max(values):.4f})"


def report(files: dict[tuple[str, int], Path], title: str) -> None:
    runs = {key: json.loads(p.read_text()) for key, p in files.items() if p.exists()}
    print(f"\n{title}")
    print(f"{'side':<10} {'seed':>4} {'best (epoch, weights)':>26} {'final':>7} {'raw best/final':>15} "
          f"{'ema best/final':>15} {'CPU min':>8}")  # fmt: skip
    for (side, seed), r in sorted(runs.items()):
        epoch = r.get("best_epoch") or r["miou"].index(max(r["miou"])) + 1
        weights = r.get("best_weights", "raw")
        ema = r.get("ema")
        print(
            f"{side:<10} {seed:>4} {r['best']:>14.4f} ({epoch:>2}, {weights:<3}) {r['final']:>7.4f} "
            f"{max(r['raw']):>7.4f}/{r['raw'][-1]:.4f} "
            + (f"{max(ema):>7.4f}/{ema[-1]:.4f}" if ema else f"{'-':>15}")
            + f" {r['cpu_minutes']:>8.2f}"
        )
    means: dict[str, float] = {}
    sds: dict[str, float] = {}
    for side in SIDES:
        rs = [r for (s, _), r in runs.items() if s == side]
        if not rs:
            continue
        best, final = [r["best"] for r in rs], [r["final"] for r in rs]
        gap = [r["best"] - r["final"] for r in rs]
        means[side], sds[side] = statistics.mean(best), statistics.stdev(best) if len(best) > 1 else 0.0
        print(f"{side}: {len(rs)} seeds  best {_spread(best)}  final {_spread(final)}  "
              f"best - final max {max(gap) * 100:.1f} points  "
              f"CPU {statistics.mean(r['cpu_minutes'] for r in rs):.2f} min/run")  # fmt: skip
    if len(means) == 2:
        diff = means["edgeseg"] - means["reference"]
        ok = diff >= -max(sds.values())
        print(f"mean best edgeseg - reference = {diff * 100:+.1f} points "
              f"(seed spread: reference {sds['reference'] * 100:.1f}, edgeseg {sds['edgeseg'] * 100:.1f}) "
              f"-> {'within the spread or above' if ok else 'BELOW the spread'}")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset", nargs="?", choices=DATASETS)
    p.add_argument("--train", type=Path, help="training folder (instead of a named dataset)")
    p.add_argument("--val", type=Path, help="validation folder (with --train)")
    p.add_argument("--ignore-index", type=int)
    p.add_argument("--size", help="WxH (or N) for a named dataset; default its own (train_data.py)")
    p.add_argument("--val-images", type=int, help="validation images of a named dataset; default its own")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--sides", default=",".join(SIDES))
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (one torch thread each)")
    p.add_argument("--set", action="append", default=[], help="FIELD=VALUE of TrainConfig (edgeseg side)")
    p.add_argument("--tag", default="", help="name of the edgeseg variant in the result files")
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "edgeseg-compare")
    p.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    if args.dataset:
        size = None
        if args.size:
            w, _, h = args.size.lower().partition("x")
            size = (int(w), int(h or w))
        try:
            args.train, args.val, ignore = make_dataset(args.dataset, size=size, n_val=args.val_images)
        except ValueError as exc:
            p.error(str(exc))
        args.ignore_index = ignore if args.ignore_index is None else args.ignore_index
        name = args.dataset + (f"-{size[0]}x{size[1]}" if size else "")
        # Named like make_dataset's folder: the default number of val images is the same data.
        default_val = SPECS[args.dataset][1]
        name += f"-val{args.val_images}" if args.val_images not in (None, default_val) else ""
    elif args.train and args.val:
        name = f"{args.train.resolve().parent.name}-{args.train.name}"
    else:
        p.error("give a dataset name, or --train and --val")
    tag = args.tag or ("-" + "-".join(s.replace("=", "") for s in args.set) if args.set else "")
    tag = tag if not tag or tag.startswith("-") else f"-{tag}"
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    sides = [s.strip() for s in args.sides.split(",")]
    files = {
        (side, seed): args.out
        / f"{name}-e{args.epochs}-{side}{tag if side == 'edgeseg' else ''}-s{seed}.json"
        for side in sides
        for seed in seeds
    }
    todo = [(side, seed, path) for (side, seed), path in files.items() if not path.exists()]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(lambda job: _launch(args, *job), todo))
    report(files, f"{name}, {args.epochs} epochs, edgeseg {tag[1:] or 'defaults'}")


if __name__ == "__main__":
    main()
