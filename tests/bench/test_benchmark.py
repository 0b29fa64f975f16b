"""`edgeseg benchmark`: rows, figures, report files, unavailable and failed targets, the CLI."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import re
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

from edgeseg.bench.report import COLUMNS, render_table, write_reports
from edgeseg.bench.run import BenchmarkConfig, BenchmarkReport, benchmark, parse_targets
from edgeseg.cli import main
from edgeseg.errors import EdgesegRuntimeError, InputError
from tests.helpers import make_checkpoint, make_dataset

SIZE = (64, 48)
FAST = {"runs": 4, "rounds": 2, "warmup": 1, "max_images": 6, "ceiling_seconds": 0.05, "time_budget_s": 0}
NO_BF16 = {"flags": "fma avx2", "vendor_id": "GenuineIntel", "cpu MHz": "3000.0"}  # a CPU without bf16


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("bench")
    ckpt = make_checkpoint(root / "run" / "best.pt", size=SIZE)
    data = make_dataset(root / "data", n=6, size=SIZE)
    return root, ckpt, data


@pytest.fixture(scope="module")
def report(setup: tuple[Path, Path, Path]) -> tuple[BenchmarkReport, Path, list[str]]:
    from edgeseg.bench import hardware

    root, ckpt, data = setup
    lines: list[str] = []
    cfg = BenchmarkConfig(
        targets=("onnx:fp32", "openvino:fp32"),
        data=str(data),
        out=str(root / "out"),
        frame_size=(97, 61),
        **FAST,
    )
    with pytest.MonkeyPatch.context() as mp:  # the same rows on any CPU: no bf16 rows
        mp.setattr(hardware, "_cpuinfo", lambda: NO_BF16)
        return benchmark(ckpt, cfg, log=lines.append), root / "out", lines


def test_rows_hold_measured_figures(report: tuple[BenchmarkReport, Path, list[str]]) -> None:
    rep, _, _ = report
    assert [r.name for r in rep.rows] == ["pytorch", "onnx:fp32", "openvino:fp32"]
    assert [r.backend for r in rep.rows] == ["torch", "onnxruntime", "openvino"]
    assert rep.meta["frame_size"] == [97, 61] and rep.meta["resize_kernel"] == "pillow"
    assert "Segmenter call on a 97x61 frame" in rep.meta["timing"]  # the frame timed, not the default
    # The full-size probe: every row below its ceiling, none beat it, no probe had to be raised.
    fp32 = rep.meta["ceilings"]["fp32"]
    assert fp32["gflops"] > 0 and "beaten_by" not in fp32 and "raises" not in fp32
    assert fp32["probe"] == {
        "channels": 128,
        "size": 56,
        "kernel": 3,
        "depth": 8,
        "macs": 128**2 * 9 * 56**2 * 8,
    }
    assert all(r.ceiling_share is not None and 0 < r.ceiling_share < 1 for r in rep.rows)
    assert all(r.executed_precision == "fp32" and r.ceiling_precision == "fp32" for r in rep.rows)
    layouts = rep.meta["pytorch_fp32"]  # the reference: the faster PyTorch FP32 layout, both timed
    assert layouts["ms_p50"] == min(layouts["channels_last_ms_p50"], layouts["contiguous_ms_p50"])
    assert layouts["reference"] == ("channels-last" if layouts["ms_p50"] == layouts["channels_last_ms_p50"]
                                    else "contiguous")  # fmt: skip
    base = rep.rows[0]
    assert (
        base.agreement == 1.0 and base.miou_drop == 0.0 and base.speedup is not None and base.speedup <= 1.0
    )
    for row in rep.rows:
        assert row.status == "ok" and row.reason is None
        assert row.size_mb and row.size_mb > 0
        assert 0.0 <= (row.miou or -1) <= 1.0
        assert row.model_ms_p50 and row.model_ms_p95 and row.model_ms_p95 >= row.model_ms_p50 > 0
        assert row.total_ms_p50 and row.total_ms_p95 and row.total_ms_p95 >= row.total_ms_p50 > 0
        assert row.fps == pytest.approx(1000 / row.total_ms_p50, rel=0.01)
        assert row.speedup == pytest.approx(layouts["ms_p50"] / row.model_ms_p50, rel=0.01)
        assert row.call_model == pytest.approx(row.total_ms_p50 / row.model_ms_p50, rel=0.01)
        assert set(row.spreads) >= {"speedup", "call_model", "ceiling_share", "model_ms"}
        assert row.gflops == pytest.approx(2 * rep.meta["macs"] / row.model_ms_p50 / 1e6, rel=0.02)
        assert set(row.stages_ms) == {"pre", "infer", "post"}
        assert row.executed_precision == "fp32" == rep.meta["executed_precision"][row.name]
    for row in rep.rows[1:]:  # FP32 exports decide the same class almost everywhere
        assert row.agreement is not None and row.agreement >= 0.999
        assert abs(row.miou_drop or 0) < 1.0
    assert rep.meta["macs"] > 0 and rep.meta["cpu_peak"]["gflops"] > 0 and rep.meta["images"] == 6
    assert rep.meta["eager_contiguous_ms_p50"] > 0  # the plain model(x) timed in the same rounds
    assert rep.meta["rounds_run"]["rounds"] == 2 and "time budget" in rep.meta["rounds_run"]["stopped"]
    assert rep.meta["load"]["usable_cores"] >= 1 and rep.meta["load"]["samples"] == 2


def test_report_files(report: tuple[BenchmarkReport, Path, list[str]], tmp_path: Path) -> None:
    rep, _, _ = report
    paths = write_reports(rep, tmp_path / "r")
    data = json.loads(paths["json"].read_text())
    assert set(data) == {"meta", "rows"}
    assert [r["name"] for r in data["rows"]] == ["pytorch", "onnx:fp32", "openvino:fp32"]
    expected = {attr for _, attr, _ in COLUMNS} | {"target", "precision", "reason", "path", "stages_ms"}
    assert expected <= set(data["rows"][1])
    with paths["csv"].open() as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == ["pytorch", "onnx:fp32", "openvino:fp32"]
    assert float(rows[1]["model_ms_p50"]) == rep.rows[1].model_ms_p50
    assert rows[1]["executed_precision"] == "fp32" and "speedup_spread" in rows[1]
    md = paths["md"].read_text()
    assert md.count("\n| ") >= 3 and "onnx:fp32" in md and "GFLOP/s" in md and "computed in" in md
    assert "speed-up reference: the faster PyTorch FP32 layout" in md and "load during the rounds" in md
    png = paths["png"].read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    assert not [p for p in paths["json"].parent.iterdir() if p.name.startswith(".")]  # no temp files left

    from rich.console import Console

    console = Console(record=True, width=250)
    console.print(render_table(rep))
    text = console.export_text()
    for row in rep.rows:
        assert row.name in text
    assert f"{rep.rows[1].model_ms_p50:.2f}" in text and "computed in" in text


@pytest.mark.usefixtures("small_ceilings")
def test_existing_bundles_are_reused(
    setup: tuple[Path, Path, Path], report: tuple[BenchmarkReport, Path, list[str]]
) -> None:
    root, ckpt, _ = setup
    _, out, first_log = report
    assert any(line.startswith("exporting onnx:fp32") for line in first_log)
    bundle = out / "bundles" / "onnx-fp32-64x48"
    stamp = (bundle / "edgeseg.json").stat().st_mtime_ns
    lines: list[str] = []
    cfg = BenchmarkConfig(targets=("onnx:fp32",), out=str(out), runs=2, rounds=1, warmup=0, time_budget_s=0)
    rep = benchmark(ckpt, cfg, log=lines.append)
    assert any(line.startswith("reusing") for line in lines)
    assert not any(line.startswith("exporting") for line in lines)
    assert (bundle / "edgeseg.json").stat().st_mtime_ns == stamp
    assert rep.row("onnx:fp32").status == "ok"
    # Without --data the figures are agreement only: no ground truth, so no mIoU.
    assert rep.row("onnx:fp32").miou is None and rep.row("onnx:fp32").agreement is not None

    other = make_checkpoint(root / "other" / "best.pt", size=SIZE, seed=5)  # another checkpoint
    lines.clear()
    benchmark(other, cfg, log=lines.append)
    assert any(line.startswith("exporting onnx:fp32") for line in lines)


@pytest.mark.usefixtures("small_ceilings")
def test_bundles_the_user_exported_are_reused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bundle `edgeseg export` wrote beside the checkpoint (with its own --val-data for parity) and
    one written elsewhere and named with --bundles are reused, not exported again; one exported
    with other settings is not."""
    ckpt = make_checkpoint(tmp_path / "run" / "best.pt", size=SIZE)
    val = make_dataset(tmp_path / "val", n=2, size=SIZE)
    assert main(["export", str(ckpt), "--target", "onnx", "--val-data", str(val)]) == 0
    beside = ckpt.parent / "best-onnx-fp32"
    if not beside.is_dir():  # the default name says the source and the target
        beside = next(p for p in ckpt.parent.iterdir() if (p / "edgeseg.json").is_file())
    mine = tmp_path / "mine"
    assert main(["export", str(ckpt), "--target", "openvino", "--out", str(mine / "ov")]) == 0
    other = tmp_path / "other"  # another input size: not the bundle this benchmark needs
    assert main(["export", str(ckpt), "--target", "onnx", "--img-size", "32", "--out", str(other / "b")]) == 0
    capsys.readouterr()
    out = tmp_path / "bench"
    args = ["benchmark", str(ckpt), "--targets", "onnx:fp32,openvino:fp32", "--runs", "2", "--warmup", "0",
            "--time-budget", "0", "--out", str(out), "--bundles", str(mine), "--bundles", str(other),
            "--json", str(tmp_path / "b.json")]  # fmt: skip
    assert main(args) == 0
    said = capsys.readouterr().err
    assert f"reusing {beside.resolve()} for onnx:fp32" in said, said
    assert f"reusing {(mine / 'ov').resolve()} for openvino:fp32" in said, said
    assert "exporting" not in said and not (out / "bundles").exists()
    rows = {r["name"]: r for r in json.loads((tmp_path / "b.json").read_text())["rows"]}
    assert rows["onnx:fp32"]["reused"] and rows["openvino:fp32"]["reused"] and not rows["pytorch"]["reused"]
    assert rows["onnx:fp32"]["path"] == str(beside.resolve()) and rows["onnx:fp32"]["status"] == "ok"
    assert main([*args[:-2], "--bundles", str(tmp_path / "nope")]) == 2
    assert "--bundles folder" in capsys.readouterr().err


@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed: its row is measured"
)
@pytest.mark.usefixtures("small_ceilings")
def test_unavailable_target_keeps_its_row_with_the_reason(
    setup: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    _, ckpt, _ = setup
    cfg = BenchmarkConfig(
        targets=("onnx:fp32", "tensorrt:fp16"), out=str(tmp_path), runs=2, rounds=1, warmup=0, time_budget_s=0
    )
    rep = benchmark(ckpt, cfg)
    row = rep.row("tensorrt:fp16")
    assert row.status == "not available"
    assert row.reason and "tensorrt" in row.reason.lower()
    assert row.model_ms_p50 is None and row.fps is None
    assert rep.row("onnx:fp32").status == "ok"
    data = write_reports(rep, tmp_path / "r")
    saved = json.loads(data["json"].read_text())
    saved_row = next(r for r in saved["rows"] if r["name"] == "tensorrt:fp16")
    assert saved_row["status"] == "not available"
    assert "not available: " in data["md"].read_text()


@pytest.mark.usefixtures("small_ceilings")
def test_failed_export_is_a_row(
    setup: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edgeseg.bench.reuse as reuse

    real = reuse.export

    def failing(checkpoint, config, **kw):  # type: ignore[no-untyped-def]
        if config.target == "openvino":
            raise EdgesegRuntimeError("OpenVINO could not convert the graph: boom")
        return real(checkpoint, config, **kw)

    monkeypatch.setattr(reuse, "export", failing)  # where the benchmark calls it
    _, ckpt, _ = setup
    cfg = BenchmarkConfig(
        targets=("openvino:fp32", "onnx:fp32"), out=str(tmp_path), runs=2, rounds=1, warmup=0, time_budget_s=0
    )
    rep = benchmark(ckpt, cfg)
    row = rep.row("openvino:fp32")
    assert (row.status, row.reason) == ("export failed", "OpenVINO could not convert the graph: boom")
    assert rep.row("onnx:fp32").status == "ok"
    assert not (tmp_path / "bundles" / "openvino-fp32-64x48").exists()


def test_parse_targets() -> None:
    assert parse_targets("onnx:fp32, openvino:int8") == ("onnx:fp32", "openvino:int8")
    assert parse_targets("onnx") == ("onnx:fp32", "onnx:fp16", "onnx:int8")
    every = parse_targets("all")
    assert {"onnx:int8", "openvino:fp16", "tensorrt:int8"} <= set(every) and len(every) == len(set(every))
    assert parse_targets("onnx:fp32,onnx:fp32") == ("onnx:fp32",)
    with pytest.raises(InputError, match="unknown target 'coreml'"):
        parse_targets("coreml:fp32")
    with pytest.raises(InputError, match="unknown precision 'fp64'"):
        parse_targets("onnx:fp64")


@pytest.mark.usefixtures("small_ceilings")
def test_cli(setup: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, ckpt, data = setup
    out, js = tmp_path / "out", tmp_path / "b.json"
    args = [
        "benchmark",
        str(ckpt),
        "--targets",
        "onnx:fp32",
        "--data",
        str(data),
        "--runs",
        "2",
        "--time-budget",
        "0",
    ]
    assert main([*args, "--warmup", "0", "--out", str(out), "--json", str(js)]) == 0
    printed = capsys.readouterr().out
    assert "onnx:fp32" in printed and "pytorch" in printed and "GFLOP/s" in printed
    assert {p.name for p in out.iterdir()} >= {
        "benchmark.json",
        "benchmark.csv",
        "benchmark.md",
        "benchmark.png",
    }
    assert "onnx:fp32" in [r["name"] for r in json.loads(js.read_text())["rows"]]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--targets", "coreml:fp32"], "unknown target 'coreml'"),
        (["--targets", "onnx:fp64"], "unknown precision 'fp64'"),
        (["--data", "missing-folder"], "--data folder 'missing-folder' does not exist"),
        (["--img-size", "63"], "must divide by"),
        (["--runs", "0"], "--runs"),
        (["--frame-size", "640"], "--frame-size must be WxH"),
        (["--max-spread", "0"], "--max-spread"),
    ],
)
def test_cli_bad_input(
    setup: tuple[Path, Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    _, ckpt, _ = setup
    assert main(["benchmark", str(ckpt), "--out", str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgeseg: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_count_macs_and_cpu_peak(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from edgeseg.bench import hardware as perf

    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ConvTranspose2d(8, 4, 2, stride=2)
    )
    # conv: 16*16 outputs x 8 channels x 3*3*3 taps; transposed: 16*16 inputs x 8 x 2*2 x 4 outputs
    assert perf.count_macs(net, (16, 16), 3) == 16 * 16 * 8 * 27 + 16 * 16 * 8 * 4 * 4

    monkeypatch.setattr(
        perf, "_cpuinfo", lambda: {"flags": "fma avx2", "cpu MHz": "3000.0", "vendor_id": "GenuineIntel"}
    )
    monkeypatch.setattr(perf.os, "sched_getaffinity", lambda _: {0, 1, 2, 3}, raising=False)
    peak = perf.cpu_peak()
    assert (peak.cores, peak.lanes, peak.fma_pipes, peak.ghz) == (4, 8, 2, 3.0)
    assert peak.gflops == 4 * 8 * 2 * 2 * 3.0 and peak.clock == "reported"
    assert set(peak.by_precision) == {"fp32", "int8"}  # AVX2 int8 multiply-adds; no bf16, no fp16
    assert peak.by_precision["int8"] == pytest.approx(peak.gflops * 4 / 3, rel=1e-3)
    measured = perf.cpu_peak(measured_ghz=3.5)  # the clock measured under load wins over the reported one
    assert measured.ghz == 3.5 and measured.clock == "measured under load" and measured.gflops == 4 * 32 * 3.5
    assert perf.cpu_peak(ghz=2.0, measured_ghz=3.5).ghz == 2.0  # --cpu-ghz wins over both
    monkeypatch.setattr(perf, "_cpuinfo", lambda: {"flags": "avx512f fma avx2", "vendor_id": "AuthenticAMD"})
    assert perf.cpu_peak(ghz=2.0).lanes == 8  # Zen 4 runs 512-bit FMAs as two 256-bit halves
    zen5 = {
        "flags": "avx512f fma avx2 avx512_bf16 avx512_vnni",
        "vendor_id": "AuthenticAMD",
        "cpu family": "26",
    }
    monkeypatch.setattr(perf, "_cpuinfo", lambda: zen5)
    peak = perf.cpu_peak(ghz=2.0)
    assert peak.lanes == 16 and "Zen 5" in peak.basis and peak.basis.startswith("estimate")
    assert peak.by_precision["bf16"] == 2 * peak.gflops and peak.by_precision["int8"] == 4 * peak.gflops
    amx = {"flags": "avx512f fma avx2 avx512_bf16 avx512_vnni avx512_fp16 amx_bf16 amx_int8",
           "vendor_id": "GenuineIntel"}  # fmt: skip
    monkeypatch.setattr(perf, "_cpuinfo", lambda: amx)
    peak = perf.cpu_peak(ghz=2.0)  # AMX: 1024 bf16 / 2048 int8 operations per cycle and core
    assert peak.by_precision["bf16"] == 4 * 1024 * 2.0 and peak.by_precision["int8"] == 4 * 2048 * 2.0
    assert peak.by_precision["fp16"] == 2 * peak.gflops and "AMX" in peak.basis
    assert perf.native_precisions() == {"bf16", "fp16"}
    monkeypatch.setattr(perf, "_cpuinfo", lambda: NO_BF16)
    assert perf.native_precisions() == frozenset()


@pytest.mark.usefixtures("small_ceilings")
def test_quickstart_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scaled-down quickstart: every step runs and writes its files; a second run into the same
    folder is refused and leaves it untouched. Scaled down through the CLI's options and, for the
    sizes the CLI does not offer, through QuickstartConfig's defaults: 32 training scenes (16 for
    validation) and 8 held-out ones instead of 320 and 64."""
    pytest.importorskip("cv2")
    import dataclasses

    import edgeseg.quickstart as qs

    @dataclasses.dataclass(frozen=True)
    class SmallQuickstart(qs.QuickstartConfig):
        train_images: int = 32
        eval_images: int = 8
        bench_seconds: float = 0.0

    monkeypatch.setattr(qs, "QuickstartConfig", SmallQuickstart)
    out = tmp_path / "qs"
    args = ["quickstart", "--out", str(out), "--epochs", "1", "--img-size", "64", "--runs", "2"]
    assert main([*args, "--targets", "onnx:fp32,tensorrt:int8", "--demo-frames", "12"]) == 0
    printed, said = capsys.readouterr()
    assert "quickstart finished" in printed and "onnx:fp32" in printed and "demo (" in printed
    # Up front: the stages, and the training's estimate from steps timed on this machine.
    plan = re.search(
        r"^quickstart: 4 stages: .*Training: about (\d+:\d\d) here \((\d+) steps at ([\d.]+) s", said, re.M
    )
    assert plan and int(plan.group(2)) == 8 and float(plan.group(3)) > 0, said  # 32 scenes, batch 4, 1 epoch
    assert said.index("quickstart: 4 stages") < said.index("[1/4]")
    for name in (
        "train/best.pt",
        "benchmark.json",
        "benchmark.csv",
        "benchmark.md",
        "benchmark.png",
        "demo.mp4",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    report = json.loads((out / "benchmark.json").read_text())
    rows = {r["name"]: r for r in report["rows"]}  # (and pytorch:bf16 on a CPU with native bf16)
    assert [n for n in rows if n != "pytorch:bf16"] == ["pytorch", "onnx:fp32", "tensorrt:int8"]
    assert rows["onnx:fp32"]["status"] == "ok" and rows["onnx:fp32"]["miou"] is not None
    demo = json.loads((out / "demo.json").read_text())
    assert demo["frames"] == 12 and demo["video_frames"] == 12 and demo["backend"].startswith("onnxruntime")

    before = sorted(p.name for p in out.iterdir())
    assert main(args) == 2
    assert "already holds a quickstart" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before


def test_a_probe_a_row_beats_is_raised_never_set_to_the_row() -> None:
    pytest.importorskip("onnx")
    from edgeseg.bench.ceilings import MAX_RAISES, Ceilings, Probe, apply_ceilings
    from edgeseg.bench.run import BenchRow

    first = Probe(channels=8, size=8, depth=2)
    ceilings = Ceilings({"fp32", "int8"}, seconds=0.05, probe=first)
    ceilings.time_round(2)
    assert set(ceilings.probes) >= {"fp32", "int8"} and ceilings.rounds == 1
    rate = ceilings.rate("fp32")
    assert rate is not None and math.isfinite(rate) and rate > 0
    # A row faster than the probe: the probe is raised (more channels and pixels), not the ceiling.
    assert ceilings.raise_beaten({"fp32": (rate * 1e6, "fast row")}) == ["fp32"]
    assert ceilings.probes["fp32"] == Probe(channels=16, size=16, depth=2) and ceilings.rounds == 0
    assert ceilings.raise_beaten({"int8": (0.0, "slow row")}) == []  # int8 was not beaten
    for _ in range(MAX_RAISES):
        ceilings.time_round(1)
        ceilings.raise_beaten({"fp32": (1e12, "fast row")})
    ceilings.time_round(1)
    meta = ceilings.to_meta()
    assert meta["fp32"]["raises"] == MAX_RAISES and meta["fp32"]["beaten_by"] == ["fast row"]
    assert meta["fp32"]["probe"]["channels"] == 8 * 2**MAX_RAISES
    assert "2 chained 3x3 Conv+ReLU" in meta["fp32"]["how"] and meta["int8"]["gflops"] > 0
    ceiling = meta["fp32"]["gflops"]
    rows = [
        BenchRow("slow", "onnx", "fp32", gflops=ceiling / 2, ceiling_precision="fp32"),
        BenchRow("fast", "onnx", "fp32", gflops=ceiling * 3, ceiling_precision="fp32"),
        BenchRow("fp16 as fp32", "onnx", "fp16", gflops=ceiling / 4, ceiling_precision="fp32"),
    ]
    apply_ceilings(rows, meta)
    assert rows[0].ceiling_share == 0.5 and rows[2].ceiling_share == 0.25  # against what its kernels ran
    assert rows[1].ceiling_share is None and "fast" in meta["fp32"]["beaten_by"]  # no share above 1
    assert meta["fp32"]["gflops"] == ceiling  # never the row's rate
