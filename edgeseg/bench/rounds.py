"""The benchmark's timing rounds: every loaded row's model-alone and whole-call latency, the plain
PyTorch `model(x)` and the ceiling probes, interleaved in rounds so that machine noise (another
process, thermal changes) hits all of them alike, and repeated until the ratios are stable.

After the first `config.rounds` rounds, each ratio a row reports (speed-up against the reference and
against pytorch:bf16, share of its ceiling, call/model) is computed once per round, and its *spread*
is (largest - smallest) / 2 / the ratio over all rounds: 0.03 reads "+-3 %". Rounds go on until
every spread is at most `config.max_spread`, or until `config.time_budget_s` seconds of rounds have
passed; the report says which. A row faster than its ceiling raises the ceiling's probe
(edgeseg.bench.ceilings), whose rounds then start again.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeseg.bench.hardware import percentile_ms
from edgeseg.preprocess import prepare_frame, prepare_fused_frame

if TYPE_CHECKING:
    from edgeseg.bench.ceilings import Ceilings
    from edgeseg.bench.config import BenchmarkConfig
    from edgeseg.bench.rows import BenchRow

__all__ = ["RATIOS", "Samples", "row_ratios", "spread", "time_rows"]

_now = time.perf_counter  # the rounds' clock (tests stand a fake one in)

# The ratios whose spreads decide when the rounds may stop.
RATIOS = ("speedup", "speedup_bf16", "ceiling_share", "call_model")
STAGES = ("pre", "infer", "post")


def spread(values: Sequence[float]) -> float | None:
    """(largest - smallest) / 2 / median of per-round values of one ratio; None for fewer than two
    rounds or a value that is not a positive finite number."""
    ok = [float(v) for v in values if v is not None and math.isfinite(v) and v > 0]
    if len(ok) < 2 or len(ok) != len(values):
        return None
    return (max(ok) - min(ok)) / 2 / statistics.median(ok)


@dataclass
class Samples:
    """Milliseconds per round: `model[row][round]`, `total[row][round]`, `eager[round]` (the plain
    contiguous `model(x)`), and the calls' stage timings."""

    model: dict[str, list[list[float]]] = field(default_factory=dict)
    total: dict[str, list[list[float]]] = field(default_factory=dict)
    eager: list[list[float]] = field(default_factory=list)
    stages: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    def medians(self, series: list[list[float]]) -> list[float]:
        return [statistics.median(r) for r in series if r]

    def reference(self, base: str) -> list[float]:
        """Per round, the faster of the baseline row (channels-last PyTorch, or the source on its
        runtime) and the plain contiguous `model(x)` where that was timed."""
        rows = self.medians(self.model.get(base, []))
        if not self.eager:
            return rows
        return [min(a, b) for a, b in zip(rows, self.medians(self.eager), strict=False)]


def row_ratios(
    row: BenchRow,
    samples: Samples,
    base: str,
    bf16: str | None,
    macs: int | None,
    ceiling_rounds: list[float],
) -> dict[str, list[float]]:
    """Each ratio of `row`, once per round (the ceiling's over the rounds it has, the latest)."""
    model = samples.medians(samples.model.get(row.name, []))
    total = samples.medians(samples.total.get(row.name, []))
    out: dict[str, list[float]] = {"model_ms": model, "total_ms": total}
    out["speedup"] = _ratios(samples.reference(base), model)
    if bf16 is not None:
        out["speedup_bf16"] = _ratios(samples.medians(samples.model.get(bf16, [])), model)
    out["call_model"] = _ratios(total, model)
    if macs and ceiling_rounds:
        rates = [2 * macs / m / 1e6 if m > 0 else math.nan for m in model[-len(ceiling_rounds) :]]
        out["ceiling_share"] = _ratios(rates, ceiling_rounds)
    return out


def _ratios(top: list[float], bottom: list[float]) -> list[float]:
    """Round by round top / bottom; NaN (no spread: `spread` says None) where bottom is not positive."""
    return [t / b if b > 0 else math.nan for t, b in zip(top, bottom, strict=False)]


def time_rows(
    rows: list[BenchRow],
    segs: dict[str, Any],
    frame: np.ndarray,
    config: BenchmarkConfig,
    say: Callable[[str], None],
    eager: Callable[[], object] | None,
    ceilings: Ceilings | None = None,
    macs: int | None = None,
    on_round: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Time every loaded row (model alone, whole call), `eager` (a plain `model(x)` call, None for a
    source without a PyTorch module) and the ceiling probes in interleaved rounds until the spreads
    are under `config.max_spread` or the time budget is spent; sets each row's latency figures and
    `spreads`. `on_round` runs after each round (load and clock sampling). Returns what the rounds
    did: rounds, seconds, why they stopped, the widest spread, the PyTorch FP32 layouts' medians."""

    samples = Samples()
    calls: dict[str, Callable[[], object]] = {}
    for name, seg in segs.items():
        pre = seg.preprocessing
        # A graph with pre/post inside takes the uint8 frame (at the model's size unless it resizes).
        x = prepare_fused_frame(frame, pre, "rgb") if pre.fused else prepare_frame(frame, pre, "rgb")[0]
        feed = {pre.input_name: x[None]}
        calls[name] = lambda b=seg.backend, feed=feed: b.infer(feed)
        for _ in range(config.warmup):
            calls[name]()
            seg(frame)
        samples.model[name], samples.total[name], samples.stages[name] = [], [], []
    for _ in range(config.warmup if eager else 0):
        eager()  # type: ignore[misc]
    per_round = max(1, -(-config.runs // config.rounds))
    base = rows[0].name
    bf16 = next((r.name for r in rows if r.runs_source and r.precision == "bf16" and r.name in segs), None)
    start, stopped, widest, round_no = _now(), "", None, 0
    while True:
        round_no += 1
        say(f"timing round {round_no}")
        if eager:
            samples.eager.append(_timed(eager, per_round))
        for name, seg in segs.items():
            samples.model[name].append(_timed(calls[name], per_round))
            totals = []
            for _ in range(per_round):
                res = seg(frame)
                totals.append(res.timings["total"])
                samples.stages[name].append(res.timings)
            samples.total[name].append(totals)
        if ceilings is not None:
            ceilings.time_round(per_round)
        if on_round is not None:
            on_round()
        if round_no < config.rounds:
            continue
        # Judged on the first rounds' medians, not on one round a burst of load could decide; a raised
        # probe is timed in at least one more round, budget or not (at most MAX_RAISES times).
        if ceilings is not None and macs:
            raised = ceilings.raise_beaten(_best_rows(rows, samples, macs))
            for precision in raised:
                probe = ceilings.probes[precision].describe()
                say(f"a row beat the {precision} ceiling probe: raising it to {probe}")
            if raised:
                continue
        widest = _set_spreads(rows, samples, base, bf16, macs, ceilings)
        ceilings_ready = ceilings is None or ceilings.rounds >= min(2, config.rounds)
        if widest is not None and widest <= config.max_spread and ceilings_ready:
            stopped = f"every ratio's spread within +-{config.max_spread:.0%}"
            break
        if _now() - start >= config.time_budget_s:
            stopped = f"time budget of {config.time_budget_s:g} s spent"
            break
    _set_latencies(rows, samples)
    eager_all = [s for r in samples.eager for s in r]
    base_all = [s for r in samples.model.get(base, []) for s in r]
    return {
        "rounds": round_no,
        "calls_per_round": per_round,
        "seconds": round(_now() - start, 1),
        "stopped": stopped,
        "max_spread_bound": config.max_spread,
        "widest_spread": None if widest is None else round(widest, 4),
        "eager_contiguous_ms_p50": round(percentile_ms(eager_all, 50), 3) if eager_all else None,
        "baseline_ms_p50": round(percentile_ms(base_all, 50), 3) if base_all else None,
    }


def _timed(call: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = _now()
        call()
        out.append((_now() - t0) * 1000)
    return out


def _best_rows(rows: list[BenchRow], samples: Samples, macs: int) -> dict[str, tuple[float, str]]:
    """{ceiling precision: (GFLOP/s, row)} of the fastest row of each, from all rounds so far."""
    best: dict[str, tuple[float, str]] = {}
    for row in rows:
        times = [s for r in samples.model.get(row.name, []) for s in r]
        if not times or row.ceiling_precision is None:
            continue
        gflops = 2 * macs / statistics.median(times) / 1e6
        if gflops > best.get(row.ceiling_precision, (0.0, ""))[0]:
            best[row.ceiling_precision] = (gflops, row.name)
    return best


def _set_spreads(
    rows: list[BenchRow],
    samples: Samples,
    base: str,
    bf16: str | None,
    macs: int | None,
    ceilings: Ceilings | None,
) -> float | None:
    """Each timed row's spreads; returns the widest over RATIOS (None when one is not known yet)."""
    widest: float | None = 0.0
    for row in rows:
        if row.name not in samples.model:
            continue
        ceiling_rounds: list[float] = []
        if ceilings is not None and row.ceiling_precision in ceilings.probes:
            rounds_had = ceilings.rounds_of(row.ceiling_precision)
            per_round = [ceilings.rate(row.ceiling_precision, i) for i in range(rounds_had)]
            ceiling_rounds = [c for c in per_round if c is not None]
        ratios = row_ratios(row, samples, base, bf16, macs, ceiling_rounds)
        row.spreads = {}
        for key, values in ratios.items():
            value = spread(values)
            if value is not None:
                row.spreads[key] = round(value, 4)
            if key in RATIOS and widest is not None:
                widest = None if value is None else max(widest, value)
    return widest


def _set_latencies(rows: list[BenchRow], samples: Samples) -> None:
    for row in rows:
        model = [s for r in samples.model.get(row.name, []) for s in r]
        total = [s for r in samples.total.get(row.name, []) for s in r]
        if not model:
            continue
        row.model_ms_p50 = round(percentile_ms(model, 50), 3)
        row.model_ms_p95 = round(percentile_ms(model, 95), 3)
        row.total_ms_p50 = round(percentile_ms(total, 50), 3)
        row.total_ms_p95 = round(percentile_ms(total, 95), 3)
        # 4 significant digits: a slow row (under 1 FPS) keeps its precision too
        row.fps = float(f"{1000 / row.total_ms_p50:.4g}") if row.total_ms_p50 else None
        stages = samples.stages[row.name]
        row.stages_ms = {
            k: round(float(np.mean([t[k] for t in stages])), 3) for k in ("pre", "infer", "post")
        }
