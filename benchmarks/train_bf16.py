"""bf16 autocast versus fp32 for CPU training, in one run: steps/s and final val mIoU both ways.

bf16 pays only where the CPU multiplies bf16 natively (AVX512-BF16 or AMX); elsewhere oneDNN
emulates it and it is slower. The script prints the CPU's flags with the figures, so a result is
never read without the hardware it came from. `edgeseg train --bf16` turns it on; it is off by
default.

    python benchmarks/train_bf16.py [--epochs 6] [--images 32] [--size 96]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from edgeseg.training import train


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return sorted({f for f in line.split() if f in ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile")})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--size", type=int, default=96)
    args = p.parse_args()
    flags = cpu_flags()
    print(f"CPU flags: {' '.join(flags) or 'none of avx512f/avx512_bf16/amx_bf16'}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, bf16 in (("fp32", False), ("bf16", True)):
            r = train(epochs=args.epochs, img_size=(args.size, args.size), synthetic_train=args.images,
                      synthetic_val=args.images // 2, bf16=bf16, device="cpu", quiet=True,
                      out=str(Path(tmp) / name))  # fmt: skip
            # Median epoch, first (warm-up) epoch left out: background load hits single epochs.
            per_step = statistics.median(h["train_seconds"] / h["steps"] for h in r.history[1:])
            results[name] = (1 / per_step, r.history[-1]["miou"])
            print(f"{name}: {1 / per_step:.2f} steps/s, final val mIoU {r.history[-1]['miou']:.4f}")
    speed = results["bf16"][0] / results["fp32"][0]
    drop = (results["fp32"][1] - results["bf16"][1]) * 100
    print(f"bf16 / fp32 steps/s = {speed:.2f}; mIoU bf16 - fp32 = {-drop:+.2f} points")


if __name__ == "__main__":
    main()
