"""The benchmark's outputs: the terminal table, benchmark.json/.csv/.md and the chart (edgeseg.bench.chart).

Every file is written atomically (temporary file, then rename), so an interrupted run leaves the
previous report or none, never half of one.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from edgeseg._io import atomic_open, write_json
from edgeseg._records import RecordError, read_json
from edgeseg.bench.card import environment_lines, read_card
from edgeseg.bench.chart import plot_benchmark
from edgeseg.bench.precision import runs_as_named
from edgeseg.bench.run import BenchmarkReport, BenchRow

__all__ = ["COLUMNS", "render_table", "write_reports"]

# (header, BenchRow attribute, format) in table order; the CSV and Markdown use the same columns.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("model", "name", "{}"),
    ("backend", "backend", "{}"),
    ("computed in", "executed_precision", "{}"),
    ("status", "status", "{}"),
    ("size MB", "size_mb", "{:.2f}"),
    ("mIoU", "miou", "{:.4f}"),
    ("drop pts", "miou_drop", "{:+.2f}"),
    ("agree %", "agreement", "{:.2%}"),
    ("model p50 ms", "model_ms_p50", "{:.2f}"),
    ("model p95 ms", "model_ms_p95", "{:.2f}"),
    ("call p50 ms", "total_ms_p50", "{:.2f}"),
    ("call p95 ms", "total_ms_p95", "{:.2f}"),
    ("call/model", "call_model", "{:.2f}"),
    ("FPS", "fps", "{:.1f}"),
    ("speed-up", "speedup", "{:.2f}x"),
    ("vs bf16", "speedup_bf16", "{:.2f}x"),
    ("GFLOP/s", "gflops", "{:.1f}"),
    ("ceiling %", "ceiling_share", "{:.0%}"),
    ("peak MB", "peak_mem_mb", "{:.0f}"),
)


TEXT_COLUMNS = ("name", "backend", "executed_precision", "status")
# Ratios whose spread over the timing rounds the table prints beside them ("1.17x ±2%"); the CSV
# and JSON carry the spreads as numbers (`spreads`).
_SPREAD_SHOWN = ("speedup", "speedup_bf16", "ceiling_share", "call_model")


def _cell(row: BenchRow, attr: str, fmt: str, spreads: bool = False) -> str:
    value = getattr(row, attr)
    if value is None:
        return "-"
    text = fmt.format(value)
    text = text[:-1] if fmt.endswith("%}") else text  # "99.87" reads better in a column titled %
    if spreads and attr in _SPREAD_SHOWN and attr in row.spreads:
        text += f" ±{row.spreads[attr]:.0%}"
    return text


def _reasons(report: BenchmarkReport) -> list[str]:
    """One line per reason a row was not measured, naming the rows it applies to."""
    grouped: dict[tuple[str, str | None], list[str]] = {}
    for r in report.rows:
        if r.status != "ok":
            grouped.setdefault((r.status, r.reason), []).append(r.name)
    return [f"{', '.join(names)}: {status}: {reason}" for (status, reason), names in grouped.items()]


def render_table(report: BenchmarkReport) -> Any:
    """A rich Table of the report (print it with rich.console.Console); rows that were not measured
    show their status, and the reasons follow in the caption."""
    from rich.table import Table

    meta = report.meta
    w, h = meta["img_size"]
    caption = "\n".join(_reasons(report)) or None
    table = Table(
        title=f"edgeseg benchmark - {w}x{h} input, {meta['data']}",
        title_justify="left",
        caption=caption,
        caption_justify="left",
    )
    for header, attr, _ in COLUMNS:
        table.add_column(header, justify="left" if attr in TEXT_COLUMNS else "right", no_wrap=True)
    for row in report.rows:
        cells = [_cell(row, attr, fmt, spreads=True) for _, attr, fmt in COLUMNS]
        table.add_row(*cells, style=None if row.status == "ok" else "dim")
    return table


def summary_lines(report: BenchmarkReport) -> list[str]:
    """Plain lines saying how the figures were measured, how busy the machine was, what the CPU can
    do at most, and which rows did not run at the precision their name says."""
    meta = report.meta
    peak = meta["cpu_peak"]
    macs = meta.get("macs")
    lines = []
    competed = (meta.get("load") or {}).get("competed")
    if competed:
        lines.append(f"WARNING: {competed}")
    lines += [
        f"timing: {meta['timing']}; {meta['runs']} runs per row over the first {meta['rounds']} rounds",
        f"model: {macs / 1e9:.2f} GMAC per frame; GFLOP/s = 2 x MACs / model p50 "
        "(int8 rows: operations per second in the same units)"
        if macs
        else "model: MACs not counted (the source has no PyTorch module), so no GFLOP/s",
    ]
    lines += _rounds_lines(meta)
    lines += _reference_lines(report)
    lines += _precision_lines(report)
    estimate = ", ".join(
        f"{p} {v:.0f}" for p, v in (peak.get("by_precision") or {"fp32": peak["gflops"]}).items()
    )
    lines.append(
        f"CPU peak, estimated (GFLOP/s): {estimate} ({peak['basis']}); "
        f"torch sgemm reaches {meta['sgemm_gflops']:.0f} GFLOP/s here"
    )
    for precision, c in (meta.get("ceilings") or {}).items():
        kernels = "; ".join(f"{k}: {v}" for k, v in (c.get("kernels") or {}).items())
        beaten = c.get("beaten_by")
        note = (
            f"; NOT a peak: {', '.join(beaten)} ran faster even after {c.get('raises', 0)} raises, so "
            "they have no ceiling %"
            if beaten
            else ""
        )
        lines.append(
            f"measured {precision} ceiling: {c['gflops']:.4g} GFLOP/s ({c['runtime']}; {c['how']}"
            + (f"; kernels {kernels}" if kernels else "")
            + f"){note}"
        )
    if meta.get("ceilings"):
        lines.append(
            "ceiling % = a row's GFLOP/s / the ceiling of the precision its kernels ran at ('computed in')"
        )
    return lines


def _rounds_lines(meta: dict[str, Any]) -> list[str]:
    rounds, load = meta.get("rounds_run") or {}, meta.get("load") or {}
    out = []
    if rounds:
        widest = rounds.get("widest_spread")
        out.append(
            f"rounds: {rounds['rounds']} of {rounds['calls_per_round']} calls per row in "
            f"{rounds['seconds']:g} s; stopped: {rounds['stopped']}; widest ratio spread "
            + ("unknown" if widest is None else f"±{widest:.1%}")
            + f" (bound ±{rounds['max_spread_bound']:.0%}; ±x% by a ratio: (max - min) / 2 over the rounds)"
        )
    if load.get("load_avg"):
        avg = load["load_avg"]
        extra = ""
        if load.get("steal") is not None:
            extra = f", steal {load['steal']:.1%}, other processes {load['others_cpu']:.0%} of the cores"
        out.append(
            f"load during the rounds: load average {avg['min']:.1f}-{avg['max']:.1f} "
            f"(mean {avg['mean']:.1f}) on {load['usable_cores']} usable cores{extra}"
        )
    return out


def _reference_lines(report: BenchmarkReport) -> list[str]:
    meta = report.meta
    layouts = meta.get("pytorch_fp32")
    if layouts:
        return [
            f"speed-up reference: the faster PyTorch FP32 layout, {layouts['reference']} "
            f"({layouts['ms_p50']:.2f} ms; channels-last {layouts['channels_last_ms_p50']:.2f} ms, "
            f"contiguous `model(x)` {layouts['contiguous_ms_p50']:.2f} ms, same rounds)"
        ]
    return [f"speed-up reference: {meta.get('reference', 'the baseline row')}"]


def _precision_lines(report: BenchmarkReport) -> list[str]:
    """One line per row whose kernels did not run at the precision its name says."""

    out = []
    for r in report.rows:
        if r.status == "ok" and r.executed_precision and not runs_as_named(r.executed_precision, r.precision):
            out.append(
                f"{r.name}: its kernels ran at {r.executed_precision}, not {r.precision} ({r.backend} does "
                f"not compute {r.precision} natively on this CPU); its speed is that of {r.ceiling_precision}"
            )
    return out


def _markdown(report: BenchmarkReport) -> str:
    headers = [h for h, _, _ in COLUMNS]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in report.rows:
        lines.append(
            "| " + " | ".join(_cell(row, attr, fmt, spreads=True) for _, attr, fmt in COLUMNS) + " |"
        )
    notes = "\n".join(f"- {line}" for line in _reasons(report) + summary_lines(report))
    m = report.meta
    # The card: what the figures were measured on and with, so that two machines' reports compare.
    card = "\n".join(f"- {line}" for line in environment_lines(m))
    return (
        f"# edgeseg benchmark\n\n{m['created_at']}, checkpoint `{m['checkpoint']}`, "
        f"input {m['img_size'][0]}x{m['img_size'][1]}, data: {m['data']}\n\n"
        + "\n".join(lines)
        + f"\n\n{notes}\n\n## Environment\n\n{card}\n"
    )


REPORT_FILES = tuple(f"benchmark.{k}" for k in ("json", "csv", "md", "png"))


def is_benchmark_report(path: Path) -> bool:
    """Whether `path` is one of the report files of an earlier benchmark in its folder: its
    benchmark.json is one this module wrote (so a rerun may replace the set, and nothing else)."""
    if path.name not in REPORT_FILES:
        return False
    card = path.parent / "benchmark.json"
    try:
        read_card(read_json(card, f"'{card}'"), f"'{card}'")
    except RecordError:
        return False
    return True


def write_reports(report: BenchmarkReport, out: str | os.PathLike[str]) -> dict[str, Path]:
    """Write benchmark.json, .csv, .md and .png into `out`; returns their paths by kind."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {k: folder / name for k, name in zip(("json", "csv", "md", "png"), REPORT_FILES, strict=True)}
    write_json(paths["json"], report.to_dict())
    with atomic_open(paths["csv"], newline="") as f:
        writer = csv.writer(f)
        spread_names = [f"{k}_spread" for k in _SPREAD_SHOWN]
        writer.writerow([attr for _, attr, _ in COLUMNS] + spread_names + ["reason"])
        for row in report.rows:
            spreads = [row.spreads.get(k) for k in _SPREAD_SHOWN]
            writer.writerow([getattr(row, attr) for _, attr, _ in COLUMNS] + spreads + [row.reason or ""])
    with atomic_open(paths["md"]) as f:
        f.write(_markdown(report))
    plot_benchmark(report, paths["png"])
    return paths
