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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeseg._cpu import usable_cores

if TYPE_CHECKING:
    import torch

__all__ = [
    "ClockSampler",
    "CpuPeak",
    "RssSampler",
    "count_macs",
    "cpu_flags",
    "cpu_peak",
    "native_precisions",
    "percentile_ms",
    "rss_mb",
    "sgemm_gflops",
]


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
    """The CPU's theoretical peak rates, per precision: cores x operations per cycle x clock.

    Attributes:
        cores: logical CPUs this process may run on (what the runtimes use).
        lanes: FP32 lanes of one vector FMA as executed (8 for AVX2, 16 for AVX-512 on Intel and on
            AMD Zen 5 (cpu family 0x1A); 8 on Zen 4, which runs 512-bit instructions as two halves).
        fma_pipes: vector FMA pipes per core (2 on every x86 core since Haswell and Zen 2).
        ghz: clock in GHz (see `clock`).
        gflops: the FP32 peak, in GFLOP/s.
        basis: how the figures were found, for people reading the report.
        by_precision: the peak of each precision the CPU computes natively, in GFLOP/s (int8 in
            operations per second): fp32 always; bf16 with AVX512-BF16 or AMX-BF16; fp16 with
            AVX512-FP16 or AMX-FP16; int8 with VNNI or AMX-INT8 (and, slower, AVX2's multiply-adds).
        clock: where `ghz` comes from ("given", "measured under load", "reported").
    """

    cores: int
    lanes: int
    fma_pipes: int
    ghz: float
    gflops: float
    basis: str
    by_precision: dict[str, float] = field(default_factory=dict)
    clock: str = "reported"

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


def cpu_flags() -> frozenset[str]:
    """The instruction-set flags of this CPU as /proc/cpuinfo lists them (empty elsewhere). Tests
    replace `_cpuinfo` to stand for another CPU."""
    info = _cpuinfo()
    return frozenset((info.get("flags") or info.get("Features") or "").split())


def native_precisions(flags: frozenset[str] | None = None) -> frozenset[str]:
    """The reduced float precisions this CPU computes natively: "bf16" (AVX512-BF16 or AMX-BF16),
    "fp16" (AVX512-FP16 or AMX-FP16). Without them a runtime emulates the format or computes fp32."""
    flags = cpu_flags() if flags is None else flags
    native = set()
    if flags & {"avx512_bf16", "amx_bf16"}:
        native.add("bf16")
    if flags & {"avx512_fp16", "amx_fp16"}:
        native.add("fp16")
    return frozenset(native)


# Per reduced precision, the first flag the CPU has decides its rate: (flags, operations per cycle and
# core as a multiple of fp32's (None: a fixed figure), the fixed figure, why). AMX: one tile multiply of
# 16x16x32 bf16 (16x16x64 int8) every 16 cycles = 1024 bf16 / 2048 int8 operations per cycle and core;
# AVX-512's dot-product instructions do 2 bf16 (4 int8) products per 32-bit lane where an FMA does 1.
_REDUCED: dict[str, tuple[tuple[frozenset[str], float | None, float, str], ...]] = {
    "bf16": (
        (frozenset({"amx_bf16"}), None, 1024.0, "AMX tiles, 1024 ops/cycle/core"),
        (frozenset({"avx512_bf16"}), 2.0, 0.0, "AVX512-BF16 dot products, 2x fp32"),
    ),
    "fp16": (
        (frozenset({"amx_fp16"}), None, 1024.0, "AMX tiles, 1024 ops/cycle/core"),
        (frozenset({"avx512_fp16"}), 2.0, 0.0, "AVX512-FP16, twice fp32's lanes"),
    ),
    "int8": (
        (frozenset({"amx_int8"}), None, 2048.0, "AMX tiles, 2048 ops/cycle/core"),
        (frozenset({"avx512_vnni", "avx_vnni"}), 4.0, 0.0, "VNNI, 4 products per 32-bit lane, 4x fp32"),
        # vpmaddubsw + vpmaddwd + vpaddd: three instructions for what one VNNI instruction does.
        (frozenset({"avx2"}), 4 / 3, 0.0, "AVX2 multiply-adds without VNNI, about 1.33x fp32"),
    ),
}


def _reduced_rates(flags: frozenset[str], fp32_per_cycle: float) -> tuple[dict[str, float], list[str]]:
    """Operations per cycle and core of bf16, fp16 and int8 where the CPU has them, and why."""
    rates: dict[str, float] = {}
    why: list[str] = []
    for precision, options in _REDUCED.items():
        for needs, multiple, fixed, reason in options:
            if flags & needs:
                rates[precision] = fp32_per_cycle * multiple if multiple else fixed
                why.append(f"{precision}: {reason}")
                break
    return rates, why


def cpu_peak(ghz: float | None = None, measured_ghz: float | None = None) -> CpuPeak:
    """Estimate the peak rates of the cores this process may use (x86 Linux in detail; other
    machines get a 4-lane FP32 estimate, flagged in `basis`). `ghz` overrides the clock;
    `measured_ghz` is the clock the cores ran at under load (`ClockSampler`), used over the clock
    the OS reports at rest (often the base clock, below what the cores reach)."""
    cores = usable_cores()
    info = _cpuinfo()
    flags = frozenset((info.get("flags") or "").split())
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
    if ghz is not None:
        clock = "given"
    elif measured_ghz:
        ghz, clock = measured_ghz, "measured under load"
    else:
        try:
            ghz, clock = float(info.get("cpu MHz", "")) / 1000, "reported"
        except ValueError:
            ghz, clock = 2.0, "unknown, 2.0 GHz assumed"
    per_cycle = lanes * fma_pipes * 2
    reduced, why = _reduced_rates(flags, per_cycle)
    by_precision = {"fp32": round(cores * per_cycle * ghz, 1)}
    by_precision.update({p: round(cores * r * ghz, 1) for p, r in reduced.items()})
    model = info.get("model name", platform.processor() or "unknown CPU")
    basis = (
        f"estimate from the CPU's family and flags, {model}: {cores} cores x {lanes} lanes ({isa})"
        f" x {fma_pipes} FMA x 2 flops x {ghz:.2f} GHz (clock {clock})"
        + (f"; {'; '.join(why)}" if why else "")
    )
    return CpuPeak(cores, lanes, fma_pipes, round(ghz, 3), by_precision["fp32"], basis, by_precision, clock)


class ClockSampler:
    """The clock the usable cores run at while the benchmark keeps them busy: /proc/cpuinfo's
    "cpu MHz" of each usable core, sampled by `sample()` (call it while work runs). On x86 Linux
    with a frequency driver that figure is measured by the kernel (APERF/MPERF); without one (many
    virtual machines) it is the nominal clock, and `measured` is False."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.measured = Path("/sys/devices/system/cpu/cpu0/cpufreq").is_dir()

    def sample(self) -> None:
        cores = _usable_cpu_ids()
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            return
        cpu, mhz = -1, []
        for line in text.splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "processor":
                cpu = int(value) if value.strip().isdigit() else -1
            elif key == "cpu MHz" and (cores is None or cpu in cores):
                try:
                    mhz.append(float(value))
                except ValueError:
                    continue
        if mhz:
            self.samples.append(sum(mhz) / len(mhz) / 1000)

    @property
    def ghz(self) -> float | None:
        """The median sampled clock in GHz when the kernel measures it, else None."""
        return float(np.median(self.samples)) if self.samples and self.measured else None


def _usable_cpu_ids() -> set[int] | None:
    return set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


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
