"""What else ran on the cores while the benchmark timed: load average, steal and other processes' share
of the usable cores, sampled once per timing round, and the one-line warning when another job
competed for the cores.

Timings taken while another job runs are slower by an amount nobody can undo afterwards; ratios of
interleaved rounds survive it better, but not entirely (a runtime that uses every core suffers more
than one that uses a single core). So the report says how busy the machine was, and warns.

- load average: the kernel's 1-minute load (runnable tasks, this benchmark's own included);
- steal: time a virtual machine's host gave the usable cores to someone else (/proc/stat);
- others' CPU: busy time on the usable cores that was not this process's (/proc/stat per core minus
  this process's own CPU time).

A run competed when the mean load average exceeded the usable cores, steal reached 1 % of the
cores' time, or other processes took 10 % of it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeseg._cpu import usable_cores

__all__ = ["LoadMonitor", "LoadSummary", "competition"]

STEAL_LIMIT = 0.01  # share of the usable cores' time
OTHERS_LIMIT = 0.10


@dataclass(frozen=True)
class CpuTicks:
    """Cumulative /proc/stat ticks of the usable cores (busy, steal, all) and this process's CPU
    seconds, at one moment."""

    busy: float
    steal: float
    total: float
    own_s: float


def _read_ticks(cores: set[int] | None = None) -> CpuTicks | None:
    """The usable cores' /proc/stat ticks and this process's CPU time; None without /proc/stat."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    cores = (
        cores
        if cores is not None
        else (set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None)
    )
    busy = steal = total = 0.0
    for line in lines:
        name, *values = line.split()
        if not name.startswith("cpu") or name == "cpu" or not name[3:].isdigit():
            continue
        if cores is not None and int(name[3:]) not in cores:
            continue
        # user nice system idle iowait irq softirq steal (guest time is already in user)
        v = [float(x) for x in values[:8]] + [0.0] * max(0, 8 - len(values))
        busy += v[0] + v[1] + v[2] + v[5] + v[6]
        steal += v[7]
        total += sum(v[:8])
    times = os.times()
    return CpuTicks(busy, steal, total, times.user + times.system)


@dataclass
class LoadSummary:
    """How busy the machine was during the timing rounds.

    Attributes:
        usable_cores: the cores this process may run on.
        load_avg: {"min", "mean", "max"} of the 1-minute load average at each round's end.
        steal: share of the usable cores' time stolen by the host (None where not measured).
        others_cpu: share of the usable cores' time other processes used (None where not measured).
        samples: rounds sampled.
    """

    usable_cores: int
    load_avg: dict[str, float] = field(default_factory=dict)
    steal: float | None = None
    others_cpu: float | None = None
    samples: int = 0

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {**asdict(self), "competed": competition(self)}


def competition(summary: LoadSummary) -> str | None:
    """One line saying that another job competed for the cores during the run, and by which
    measure; None for a quiet run."""
    why = []
    mean = summary.load_avg.get("mean")
    if mean is not None and mean > summary.usable_cores:
        why.append(f"load average {mean:.1f} on {summary.usable_cores} usable cores")
    if summary.steal is not None and summary.steal >= STEAL_LIMIT:
        why.append(f"{summary.steal:.0%} of the cores' time stolen by the host")
    if summary.others_cpu is not None and summary.others_cpu >= OTHERS_LIMIT:
        why.append(f"other processes used {summary.others_cpu:.0%} of the cores")
    if not why:
        return None
    return (
        "another job competed for the cores during the timing ("
        + "; ".join(why)
        + "): absolute times are slower than on a quiet machine, and ratios less certain (see the spreads)"
    )


class LoadMonitor:
    """Samples the load once per round (`sample()`), from the moment it is made; `summary()` says
    what it saw. The readers are arguments so that tests can stand for any machine."""

    def __init__(
        self,
        read_load: Callable[[], float] | None = None,
        read_ticks: Callable[[], CpuTicks | None] = _read_ticks,
        cores: int | None = None,
        ticks_per_second: int | None = None,
    ) -> None:
        self._read_load = read_load or _load_average
        self._read_ticks = read_ticks
        self.cores = cores or usable_cores()
        self._hz = ticks_per_second or (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)
        self._start = read_ticks()
        self._last = self._start
        self.loads: list[float] = []

    def sample(self) -> None:
        """Record the load average now and the CPU ticks so far."""
        load = self._read_load()
        if load >= 0:
            self.loads.append(load)
        self._last = self._read_ticks()

    def summary(self) -> LoadSummary:
        """The run so far."""
        out = LoadSummary(self.cores, samples=len(self.loads))
        if self.loads:
            out.load_avg = {
                "min": round(min(self.loads), 2),
                "mean": round(sum(self.loads) / len(self.loads), 2),
                "max": round(max(self.loads), 2),
            }
        a, b = self._start, self._last
        if a is not None and b is not None and b.total > a.total:
            total = b.total - a.total
            out.steal = round((b.steal - a.steal) / total, 4)
            others = (b.busy - a.busy) - (b.own_s - a.own_s) * self._hz
            out.others_cpu = round(min(1.0, max(0.0, others / total)), 4)
        return out


def _load_average() -> float:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):  # no load average on this platform
        return -1.0
