"""Figures that relate a measured latency to the machine: model MACs, the CPU's peak FP32 rate,
latency percentiles, and the process's resident memory.

Nothing here imports torch at module level; `count_macs` imports it when called.
"""

from __future__ import annotations

import os
import platform
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeseg._cpu import usable_cores

if TYPE_CHECKING:
    import torch

__all__ = ["CpuPeak", "RssSampler", "count_macs", "cpu_peak", "percentile_ms", "rss_mb", "sgemm_gflops"]


def count_macs(model: torch.nn.Module, size: tuple[int, int], in_channels: int) -> int:
    """Multiply-accumulates of one forward pass on a 1xCxHxW input (`size` is (width, height)).

    Counts convolutions and transposed convolutions, which hold all but a fraction of a percent of a
    U-Net's arithmetic (batch norm folds into the convolutions at export; ReLU and pooling are
    comparisons); counted with forward hooks on the real model, so any width/depth is right.
    """
    import torch

    total = 0

    def conv_hook(mod: torch.nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(mod, torch.nn.Conv2d | torch.nn.ConvTranspose2d)
        kh, kw = mod.kernel_size
        if isinstance(mod, torch.nn.ConvTranspose2d):
            # Every input pixel scatters a kh x kw x out/groups patch.
            x = inputs[0]
            total += x.numel() // x.shape[0] * kh * kw * mod.out_channels // mod.groups
        else:
            total += out.numel() // out.shape[0] * kh * kw * mod.in_channels // mod.groups

    hooks = [
        m.register_forward_hook(conv_hook)
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)
    ]
    try:
        param = next(model.parameters())
        x = torch.zeros(1, in_channels, size[1], size[0], dtype=param.dtype, device=param.device)
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return int(total)


@dataclass(frozen=True)
class CpuPeak:
    """The CPU's theoretical peak FP32 rate: cores x FP32 lanes x FMA pipes x 2 flops x clock.

    Attributes:
        cores: logical CPUs this process may run on (what the runtimes use).
        lanes: FP32 lanes of one vector FMA as executed (8 for AVX2, 16 for AVX-512 on Intel and on
            AMD Zen 5 (cpu family 0x1A); 8 on Zen 4, which runs 512-bit instructions as two halves).
        fma_pipes: vector FMA pipes per core (2 on every x86 core since Haswell and Zen 2).
        ghz: clock in GHz (the current clock the kernel reports unless overridden; boost varies).
        gflops: the product, in GFLOP/s.
        basis: how the figures were found, for people reading the report.
    """

    cores: int
    lanes: int
    fma_pipes: int
    ghz: float
    gflops: float
    basis: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key and key not in info:
            info[key] = value.strip()
    return info


def cpu_peak(ghz: float | None = None) -> CpuPeak:
    """Estimate the peak FP32 GFLOP/s of the cores this process may use (x86 Linux in detail; other
    machines get a 4-lane estimate, flagged in `basis`). `ghz` overrides the clock."""
    cores = usable_cores()
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    amd = info.get("vendor_id") == "AuthenticAMD"
    try:
        family = int(info.get("cpu family", "0"))
    except ValueError:
        family = 0
    if "avx512f" in flags and not amd:
        lanes, isa = 16, "AVX-512"
    elif "avx512f" in flags and family >= 0x1A:  # Zen 5 (family 26): full 512-bit FMA datapaths
        lanes, isa = 16, "AVX-512, 512-bit datapaths (AMD Zen 5)"
    elif "avx512f" in flags:
        lanes, isa = 8, "AVX-512 as 2x256-bit (AMD Zen 4)"
    elif "avx2" in flags and "fma" in flags:
        lanes, isa = 8, "AVX2+FMA"
    else:
        lanes, isa = 4, f"128-bit SIMD ({platform.machine() or 'unknown'}; estimate)"
    fma_pipes = 2 if lanes >= 8 else 1
    clock_basis = "given"
    if ghz is None:
        try:
            ghz = float(info.get("cpu MHz", "")) / 1000
            clock_basis = "reported current clock"
        except ValueError:
            ghz, clock_basis = 2.0, "unknown clock, 2.0 GHz assumed"
    gflops = cores * lanes * fma_pipes * 2 * ghz
    model = info.get("model name", platform.processor() or "unknown CPU")
    basis = (
        f"estimate from the CPU's family and flags, {model}: {cores} cores x {lanes} lanes ({isa})"
        f" x {fma_pipes} FMA x 2 flops"
        f" x {ghz:.2f} GHz ({clock_basis})"
    )
    return CpuPeak(cores, lanes, fma_pipes, round(ghz, 3), round(gflops, 1), basis)


def sgemm_gflops(n: int = 1024, seconds: float = 0.5) -> float:
    """FP32 GFLOP/s of PyTorch's matrix multiply (n x n), the practical ceiling a convolution can
    reach on this machine; complements the theoretical `cpu_peak`."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def percentile_ms(samples: Sequence[float], q: float) -> float:
    """The q-th percentile of millisecond samples (linear interpolation)."""
    return float(np.percentile(np.asarray(samples, dtype=np.float64), q)) if samples else float("nan")


def rss_mb() -> float | None:
    """Resident memory of this process in MB, or None where /proc is not available."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


class RssSampler:
    """Peak resident memory above the level at `start`, sampled every few milliseconds in a thread
    (the high-water mark of the whole process cannot be reset between backends)."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.base = 0.0
        self.peak = 0.0
        self._readable = False

    def __enter__(self) -> RssSampler:
        start = rss_mb()
        self._readable = start is not None
        self.base = self.peak = start or 0.0
        self._thread = threading.Thread(target=self._run, name="edgeseg-rss", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, rss_mb() or 0.0)

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, rss_mb() or 0.0)

    @property
    def growth_mb(self) -> float | None:
        """Peak minus the level at start, in MB; None where RSS cannot be read."""
        return round(self.peak - self.base, 1) if self._readable else None
