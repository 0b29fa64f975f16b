"""How many CPU cores this process may use: the one count the demo's thread choice and the
benchmark's hardware model share."""

from __future__ import annotations

import os

__all__ = ["usable_cores"]


def usable_cores() -> int:
    """The cores this process may run on (at least 1).

    A container, cgroup cpuset or `taskset` may allow fewer cores than the machine has, and
    `os.cpu_count()` counts the machine's; the affinity mask counts the allowed ones, where the
    platform has one (Linux), else the machine's count is the best there is.
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
