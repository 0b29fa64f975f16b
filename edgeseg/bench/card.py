"""The benchmark card: what a benchmark ran on, so that two cards from two machines compare.

`environment()` is the fingerprint benchmark.json's `meta.environment` holds (CPU model, flags and
clocks, GPU and driver, OS, Python, the runtimes' versions, Jetson power mode), read from /proc, /sys,
`nvidia-smi` and `nvpmodel` where present; every figure that cannot be read is None, never guessed.
`run_record()` adds the exact command line and edgeseg's version and git commit. `compare_tables`
lays two cards side by side: the environment's differences, then each row's figures and B/A ratios.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from edgeseg._cpu import usable_cores
from edgeseg._records import Record, RecordError, read_json
from edgeseg._version import __version__
from edgeseg.targets import DESCRIPTORS, backend_specs

__all__ = [
    "compare_tables",
    "environment",
    "environment_lines",
    "inside_spread",
    "load_card",
    "read_card",
    "run_record",
]

# Instruction-set flags that decide which kernels the runtimes pick (of the dozens /proc lists).
_ISA_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16",
    "avx_vnni", "amx_tile", "amx_int8", "amx_bf16", "asimd", "asimddp", "sve", "i8mm", "bf16",
)  # fmt: skip
# Distributions whose versions make figures differ: the runtimes' and targets' own (from their
# descriptors; onnxruntime may come as onnxruntime-gpu) and the libraries every row uses.
_PACKAGES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    **{spec.name: spec.packages for spec in backend_specs() if spec.packages},
    **{name: (name,) for target in DESCRIPTORS for name in target.packages},
    "numpy": ("numpy",),
    "opencv": ("opencv-python", "opencv-python-headless", "opencv-contrib-python"),
}


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _run(cmd: list[str], timeout: float = 5.0) -> str | None:
    """A tool's stdout, or None when it is absent, fails or hangs."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _cpu() -> dict[str, Any]:
    info: dict[str, str] = {}
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip() and key.strip() not in info:
            info[key.strip()] = value.strip()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    mhz = info.get("cpu MHz")
    return {
        "model": info.get("model name") or platform.processor() or platform.machine() or None,
        "machine": platform.machine() or None,
        "isa_flags": [f for f in _ISA_FLAGS if f in flags],
        "usable_cores": usable_cores(),
        "logical_cpus": os.cpu_count(),
        "mhz_now": round(float(mhz)) if mhz and mhz.replace(".", "", 1).isdigit() else None,
        "mhz_max": round(int(khz) / 1000) if khz and khz.isdigit() else None,
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
    }


def _gpus() -> list[dict[str, Any]]:
    out = _run(
        ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv,noheader"]
    )
    if out:
        gpus = []
        for line in out.splitlines():
            name, driver, memory, clock = ([*(p.strip() for p in line.split(",")), "", "", ""])[:4]
            gpus.append(
                {
                    "name": name,
                    "driver": driver or None,
                    "memory": memory or None,
                    "max_sm_clock": clock or None,
                }
            )
        return gpus
    if "torch" in sys.modules:  # imported already by the benchmark; importing it here costs seconds
        torch = sys.modules["torch"]
        with contextlib.suppress(Exception):
            if torch.cuda.is_available():
                return [
                    {"name": torch.cuda.get_device_name(i), "driver": None, "cuda": torch.version.cuda}
                    for i in range(torch.cuda.device_count())
                ]
    return []


def _jetson() -> dict[str, Any] | None:
    release = _read("/etc/nv_tegra_release")
    query = _run(["nvpmodel", "-q"])
    if release is None and query is None:
        return None
    mode = None
    if query:  # "NV Power Mode: MAXN\n0"
        mode = " ".join(ln.split(":", 1)[-1].strip() for ln in query.splitlines()[:1])
    elif (conf := _read("/etc/nvpmodel.conf")) and "PM_CONFIG DEFAULT=" in conf:
        mode = "default " + conf.split("PM_CONFIG DEFAULT=", 1)[1].split()[0].strip("<>")
    return {"l4t": release.splitlines()[0] if release else None, "power_mode": mode}


def _version(names: tuple[str, ...]) -> str | None:
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(name)
    return None


def environment() -> dict[str, Any]:
    """The machine and software a benchmark runs on; None where a figure cannot be read here."""
    return {
        "cpu": _cpu(),
        "gpus": _gpus(),
        "jetson": _jetson(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": {key: _version(names) for key, names in _PACKAGES.items()},
    }


def _git_commit() -> str | None:
    """edgeseg's own source commit (with "+dirty" for local changes) when it runs from a clone."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    commit = _run(["git", "-C", str(root), "rev-parse", "HEAD"])
    if commit is None:
        return None
    dirty = _run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"])
    return commit + ("+dirty" if dirty else "")


def run_record() -> dict[str, Any]:
    """The exact command line, edgeseg's version and its git commit."""

    argv = list(sys.argv)
    first = Path(argv[0]) if argv else Path()
    # the console script, or python -m edgeseg (another package's __main__.py is not edgeseg)
    if first.name == "edgeseg" or (first.name == "__main__.py" and first.parent.name == "edgeseg"):
        command = shlex.join(["edgeseg", *argv[1:]])
    else:
        command = shlex.join([sys.executable, *argv]) if argv else None
    return {"command": command, "edgeseg_version": __version__, "git_commit": _git_commit()}


def _flat(meta: dict[str, Any]) -> dict[str, str]:
    """The card's comparable facts as 'name' -> text (environment, ceilings, run)."""
    env = meta.get("environment") or {}
    out: dict[str, str] = {}
    for key, value in (env.get("cpu") or {}).items():
        out[f"cpu {key}"] = " ".join(value) if isinstance(value, list) else str(value)
    for i, gpu in enumerate(env.get("gpus") or []):
        out[f"gpu {i}"] = ", ".join(f"{v}" for v in gpu.values() if v)
    if env.get("jetson"):
        out["jetson power mode"] = str(env["jetson"].get("power_mode"))
        out["jetson l4t"] = str(env["jetson"].get("l4t"))
    for key in ("os", "python"):
        out[key] = str(env.get(key))
    for key, value in (env.get("packages") or {}).items():
        out[key] = str(value)
    for precision, c in (meta.get("ceilings") or {}).items():
        out[f"ceiling {precision} GFLOP/s"] = f"{_num(c.get('gflops'), '{:.0f}')} ({c.get('runtime')})"
    for row, executed in (meta.get("executed_precision") or {}).items():
        out[f"{row} computed in"] = str(executed)
    load = meta.get("load") or {}
    if load.get("load_avg"):
        out["load average during the rounds"] = (
            f"{load['load_avg'].get('mean')} on {load.get('usable_cores')} cores"
        )
        out["competition"] = "yes" if load.get("competed") else "none measured"
    for key in (
        "command",
        "edgeseg_version",
        "git_commit",
        "torch_threads",
        "img_size",
        "frame_size",
        "data",
    ):
        if key in meta:
            out[key] = str(meta[key])
    return out


def environment_lines(meta: dict[str, Any]) -> list[str]:
    """The card as 'name: value' lines (benchmark.md's environment section)."""
    return [f"{k}: {v}" for k, v in _flat(meta).items()]


_CARD_ADVICE = "give two benchmark.json files that `edgeseg benchmark` wrote"
# Row figures the comparison shows: (key, upper bound); all are finite and not negative, or null.
_ROW_FIGURES = {"model_ms_p50": None, "model_ms_p95": None, "total_ms_p50": None, "total_ms_p95": None,
                "fps": None, "images_per_s": None, "speedup": None, "speedup_bf16": None, "call_model": None,
                "gflops": None, "size_mb": None, "peak_mem_mb": None, "miou": 1.0, "agreement": 1.0,
                "ceiling_share": 1.0}  # fmt: skip
_SCALAR = (str, int, float, bool)


def _fact(r: Record, key: str) -> Any:
    """An environment fact: text, number, true/false or null, or a list of texts (CPU flags)."""
    value = r.get(key, (*_SCALAR, list), default=None)
    if isinstance(value, list):
        r.texts(key)
    elif isinstance(value, float):
        r.number(key)
    return value


def _facts(r: Record, key: str) -> None:
    r.mapping(key, _fact, default=None)


def read_card(data: Any, where: str) -> dict[str, Any]:
    """Validate a benchmark card (benchmark.json: `meta` and `rows`) that `compare_tables` and the
    report readers use; returns it as plain JSON. RecordError (one line) for any other shape."""
    r = Record(data, where, _CARD_ADVICE)
    if not (r.has("meta") and r.has("rows")):
        raise RecordError(f"{where} is not a benchmark.json (no meta and rows); {_CARD_ADVICE}")
    meta = r.sub("meta")
    env = meta.sub("environment", default=None)
    if env is not None:
        _facts(env, "cpu")
        for gpu in env.subs("gpus", default=[]):
            for key in gpu.data:
                _fact(gpu, key)
        _facts(env, "jetson")
        env.text("os", default=None), env.text("python", default=None)
        _facts(env, "packages")
    ceilings = meta.sub("ceilings", default=None)
    if ceilings is not None:
        for precision in ceilings.data:
            c = ceilings.sub(precision)
            c.number("gflops", minimum=0.0, default=None)
            c.text("runtime", default=None)
    meta.mapping("executed_precision", lambda rec, key: rec.text(key), default=None)
    load = meta.sub("load", default=None)
    if load is not None:  # the load during the rounds (edgeseg.bench.load): the card shows it
        load.integer("usable_cores", minimum=1, default=None)
        load.mapping("load_avg", lambda rec, key: rec.number(key, minimum=0.0), default=None)
        load.text("competed", default=None)
    for key in ("command", "edgeseg_version", "git_commit", "data"):
        meta.text(key, default=None)
    meta.integer("torch_threads", minimum=0, default=None)
    for key in ("img_size", "frame_size"):
        meta.numbers(key, minimum=1, length=2, default=None)
    for row in r.subs("rows"):
        row.text("name")
        for key, top in _ROW_FIGURES.items():
            row.number(key, minimum=0.0, maximum=top, default=None)
        row.text("executed_precision", default=None)
        # Each ratio's spread over the rounds: the comparison judges differences against them.
        row.mapping("spreads", lambda rec, key: rec.number(key, minimum=0.0), default=None)
    return dict(r.data)


def load_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A benchmark.json, validated (`read_card`); InputError (one line) for a missing, unreadable or
    other JSON file, or one whose values are not a card's."""
    where = f"--compare: '{path}'"
    return read_card(read_json(path, where, _CARD_ADVICE), where)


def _num(value: Any, fmt: str) -> str:
    return "-" if not isinstance(value, (int, float)) or value != value else fmt.format(value)


def _pct(value: Any) -> str:
    return _num(value * 100, "{:.2f}") if isinstance(value, (int, float)) else "-"


def _ratio(a: Any, b: Any) -> str:
    ok = all(isinstance(v, (int, float)) and v == v for v in (a, b))
    return f"{b / a:.2f}x" if ok and a else "-"


def inside_spread(a: Any, b: Any, spread_a: Any, spread_b: Any) -> str:
    """Whether B differs from A by no more than the two runs' spreads together (each the relative
    half-range of that figure over its rounds): "yes (3% <= 5%)", "no (12% > 5%)", or why it cannot
    be said."""
    ok = all(isinstance(v, (int, float)) and v == v for v in (a, b))
    if not ok or not a:
        return "-"
    if not all(isinstance(v, (int, float)) for v in (spread_a, spread_b)):
        return "no spread recorded"
    diff, bound = abs(b / a - 1), spread_a + spread_b
    return f"yes ({diff:.0%} <= {bound:.0%})" if diff <= bound else f"no ({diff:.0%} > {bound:.0%})"


def compare_tables(a: dict[str, Any], b: dict[str, Any], names: tuple[str, str] = ("A", "B")) -> list[Any]:
    """Rich tables: the environment facts that differ between cards `a` and `b`, then every row
    either card has, with model p50, whole-call p50, FPS, speed-up, mIoU, agreement and B/A ratios;
    for model p50 and speed-up, whether B/A is inside the two runs' spreads (a difference inside
    them is not one the runs can tell from noise)."""
    from rich.table import Table

    fa, fb = _flat(a["meta"]), _flat(b["meta"])
    env = Table(title=f"environment: {names[0]} vs {names[1]} (differences only)", title_justify="left")
    for col in ("", names[0], names[1]):
        env.add_column(col, overflow="fold")
    for key in [*fa, *(k for k in fb if k not in fa)]:
        if fa.get(key) != fb.get(key):
            env.add_row(key, fa.get(key, "-"), fb.get(key, "-"))
    if not env.rows:
        env.add_row("(none)", "same", "same")
    rows = Table(title="rows (ratio = B / A)", title_justify="left")
    headers = ["row", "model p50 ms A", "B", "B/A", "inside spread", "call p50 ms A", "B", "B/A",
               "FPS A", "B", "B/A", "speed-up A", "B", "inside spread", "mIoU A", "B",
               "agree % A", "B"]  # fmt: skip
    for h in headers:
        rows.add_column(h, justify="left" if h == "row" else "right", no_wrap=True)
    by_a = {r.get("name"): r for r in a["rows"]}
    by_b = {r.get("name"): r for r in b["rows"]}
    for name in [*by_a, *(n for n in by_b if n not in by_a)]:
        ra, rb = by_a.get(name, {}), by_b.get(name, {})
        sa, sb = ra.get("spreads") or {}, rb.get("spreads") or {}
        cells = [str(name)]
        for key in ("model_ms_p50", "total_ms_p50", "fps"):
            fmt = "{:.1f}" if key == "fps" else "{:.2f}"
            cells += [_num(ra.get(key), fmt), _num(rb.get(key), fmt), _ratio(ra.get(key), rb.get(key))]
            if key == "model_ms_p50":
                cells.append(inside_spread(ra.get(key), rb.get(key), sa.get("model_ms"), sb.get("model_ms")))
        cells += [_num(ra.get("speedup"), "{:.2f}x"), _num(rb.get("speedup"), "{:.2f}x")]
        cells.append(
            inside_spread(ra.get("speedup"), rb.get("speedup"), sa.get("speedup"), sb.get("speedup"))
        )
        cells += [_num(ra.get("miou"), "{:.4f}"), _num(rb.get("miou"), "{:.4f}")]
        cells += [_pct(ra.get("agreement")), _pct(rb.get("agreement"))]
        rows.add_row(*cells)
    return [env, rows]
