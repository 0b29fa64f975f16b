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
    ("FPS", "fps", "{:.1f}"),
    ("speed-up", "speedup", "{:.2f}x"),
    ("GFLOP/s", "gflops", "{:.1f}"),
    ("ceiling %", "ceiling_share", "{:.0%}"),
    ("peak MB", "peak_mem_mb", "{:.0f}"),
)


def _cell(row: BenchRow, attr: str, fmt: str) -> str:
    value = getattr(row, attr)
    if value is None:
        return "-"
    text = fmt.format(value)
    return text[:-1] if fmt.endswith("%}") else text  # "99.87" reads better in a column titled %


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
        text = attr in ("name", "backend", "executed_precision", "status")
        table.add_column(header, justify="left" if text else "right", no_wrap=True)
    for row in report.rows:
        table.add_row(
            *[_cell(row, attr, fmt) for _, attr, fmt in COLUMNS], style=None if row.status == "ok" else "dim"
        )
    return table


def summary_lines(report: BenchmarkReport) -> list[str]:
    """Plain lines saying how the figures were measured and what the CPU can do at most."""
    meta = report.meta
    peak = meta["cpu_peak"]
    macs = meta.get("macs")
    lines = [
        f"timing: {meta['timing']}; {meta['runs']} runs per row",
        f"model: {macs / 1e9:.2f} GMAC per frame; GFLOP/s = 2 x MACs / model p50 "
        "(int8 rows: operations per second in the same units)"
        if macs
        else "model: MACs not counted (the source has no PyTorch module), so no GFLOP/s",
        f"CPU peak FP32, estimated: {peak['gflops']:.0f} GFLOP/s ({peak['basis']}); "
        f"torch sgemm reaches {meta['sgemm_gflops']:.0f} GFLOP/s here",
    ]
    eager = meta.get("eager_contiguous_ms_p50")
    if eager:
        best = {
            p: min(
                (
                    r.model_ms_p50
                    for r in report.rows
                    if not r.reference and r.precision == p and r.model_ms_p50
                ),
                default=None,
            )
            for p in ("fp32", "int8")
        }
        vs = ", ".join(f"best {p.upper()} {eager / ms:.2f}x" for p, ms in best.items() if ms)
        lines.append(
            f"plain PyTorch eager (contiguous layout, a user's own model(x)): {eager:.2f} ms"
            + (f"; against it: {vs}" if vs else "")
        )
    fp32 = [r.gflops for r in report.rows if r.precision == "fp32" and r.gflops]
    if fp32:
        best = max(fp32)
        if best <= peak["gflops"]:
            lines.append(f"best FP32 row: {best:.0f} GFLOP/s = {best / peak['gflops']:.0%} of that estimate")
        else:  # never a share above 100 %: the estimate is what is wrong
            lines.append(
                f"best FP32 row: {best:.0f} GFLOP/s, above the estimated peak, so the estimate is wrong "
                "here (clock or datapaths); the measured ceilings below are the reference"
            )
    for precision, c in (meta.get("ceilings") or {}).items():
        raised = f"; {c['raised_by']}" if c.get("raised_by") else ""
        lines.append(
            f"measured {precision} ceiling: {c['gflops']:.0f} GFLOP/s ({c['runtime']}; {c['how']}{raised}); "
            "ceiling % = a row's GFLOP/s / its precision's ceiling"
        )
    return lines


def _markdown(report: BenchmarkReport) -> str:
    headers = [h for h, _, _ in COLUMNS]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in report.rows:
        lines.append("| " + " | ".join(_cell(row, attr, fmt) for _, attr, fmt in COLUMNS) + " |")
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
        writer.writerow([attr for _, attr, _ in COLUMNS] + ["reason"])
        for row in report.rows:
            writer.writerow([getattr(row, attr) for _, attr, _ in COLUMNS] + [row.reason or ""])
    with atomic_open(paths["md"]) as f:
        f.write(_markdown(report))
    plot_benchmark(report, paths["png"])
    return paths
