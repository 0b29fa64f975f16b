"""`edgeseg benchmark --mode throughput`: every row carries images/s next to its latency-mode FPS."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from tests.helpers import make_checkpoint, run_cli


@pytest.mark.usefixtures("small_ceilings")
def test_throughput_mode_reports_images_per_second(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = make_checkpoint(tmp_path / "run" / "best.pt")
    js = tmp_path / "b.json"
    args = [
        "benchmark",
        ckpt,
        "--targets",
        "onnx:fp32",
        "--runs",
        "2",
        "--warmup",
        "0",
        "--mode",
        "throughput",
        "--time-budget",
        "0",
    ]
    rc, out, _ = run_cli([*args, "--out", tmp_path / "out", "--json", js], capsys)
    assert rc == 0
    report = json.loads(js.read_text())
    assert report["meta"]["mode"] == "throughput"
    # (and pytorch:bf16 on a CPU with native bf16)
    assert [r["name"] for r in report["rows"] if r["name"] != "pytorch:bf16"] == ["pytorch", "onnx:fp32"]
    for row in report["rows"]:
        rate = row["images_per_s"]
        assert rate is not None and math.isfinite(rate) and rate > 0, row
        assert row["fps"] is not None and row["fps"] > 0
        assert f"throughput {row['name']}: {rate:.1f} images/s" in out


def test_latency_mode_has_no_throughput_figures_and_bad_mode_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgeseg.bench.run import BenchRow

    assert BenchRow("x", "onnx", "fp32").images_per_s is None
    ckpt = make_checkpoint(tmp_path / "best.pt")
    rc, _, err = run_cli(["benchmark", ckpt, "--mode", "fast", "--out", tmp_path / "o"], capsys)
    assert rc == 2 and "--mode must be latency or throughput" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()
